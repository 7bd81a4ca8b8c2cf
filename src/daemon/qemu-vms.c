/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-vms.h"
#include "inode-watch.h"
#include "log.h"
#include "macro.h"

#if VMSIG_HAVE_QMP
#include "discovery.h"
#include "qmp.h"

struct vmsig_qemu_vms {
        vmsig_core *core;
        vmsig_discovery *discovery;
        vmsig_bootstrap_config bootstrap;
};

static int on_attach(const vmsig_vm_description *desc, void *userdata) {
        vmsig_qemu_vms *d = userdata;
        vmsig_qmp_spec spec = {
                .name = desc->name,
                .uuid = desc->uuid,
                .qmp_socket = desc->qmp_socket,
                .ram_path = desc->ram_path,
                .ranges = desc->ranges,
                .n_ranges = desc->n_ranges,
                .bootstrap_config = d->bootstrap,
        };
        vmsig_endpoint_spec ep_spec;
        vmsig_endpoint *ep;
        int r;

        spec.bootstrap_config.guest_os = desc->guest_os;
        r = vmsig_qmp_new(&spec, &ep_spec, NULL);
        if (r >= 0)
                r = vmsig_core_attach_endpoint(d->core, &ep_spec, &ep);
        if (r < 0)
                return log_warning_errno(r, "%s: cannot attach VM '%s': %m", desc->file, desc->name);
        log_info("Attached VM '%s' from %s as vmid %u.", desc->name, desc->file, vmsig_endpoint_get_vmid(ep));
        return 0;
}

static void on_detach(const char *name, void *userdata) {
        vmsig_qemu_vms *d = userdata;
        vmsig_endpoint *ep = vmsig_core_find_endpoint_by_name(d->core, name);

        if (!ep)
                return;
        log_info("Detaching VM '%s': its description went away.", name);
        (void) vmsig_core_detach_endpoint(d->core, ep);
}

static const vmsig_discovery_ops discovery_ops = {
        .attach = on_attach,
        .detach = on_detach,
};

int vmsig_qemu_vms_new(vmsig_core *core, const vmsig_config *config, vmsig_qemu_vms **ret) {
        vmsig_qemu_vms *d;
        int r;

        *ret = NULL;
        if (!config->trigger_dir)
                return 0;
        d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->core = core;
        d->bootstrap.backoff_max_usec = (uint64_t) config->bootstrap_backoff_max_ms * 1000;
        r = vmsig_discovery_new(core, config->trigger_dir, &discovery_ops, d, &d->discovery);
        if (r < 0) {
                free(d);
                return log_error_errno(r, "Cannot watch %s for VMs: %m", config->trigger_dir);
        }
        /* The guests' RAM files are watched for truncation (host-ram.h). */
        r = inode_watches_prepare(core);
        if (r < 0) {
                vmsig_qemu_vms_free(d);
                return log_error_errno(r, "Cannot set up the watches of guest RAM files: %m");
        }
        *ret = d;
        return 0;
}

vmsig_qemu_vms *vmsig_qemu_vms_free(vmsig_qemu_vms *d) {
        if (!d)
                return NULL;
        vmsig_discovery_free(d->discovery);
        return mfree(d);
}

static bool same(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int vmsig_qemu_vms_reload(vmsig_qemu_vms **d, vmsig_core *core, const vmsig_config *old,
                            const vmsig_config *new) {
        if (*d && same(old->trigger_dir, new->trigger_dir)) {
                vmsig_discovery_rescan((*d)->discovery);
                return 0;
        }
        /* Another directory: what was found in the old one goes. */
        *d = vmsig_qemu_vms_free(*d);
        return vmsig_qemu_vms_new(core, new, d);
}

#else

int vmsig_qemu_vms_new(vmsig_core *core, const vmsig_config *config, vmsig_qemu_vms **ret) {
        *ret = NULL;
        if (config->trigger_dir)
                log_debug("Built without the QMP backend (configure --enable-qmp): no VM discovery.");
        return 0;
}

vmsig_qemu_vms *vmsig_qemu_vms_free(vmsig_qemu_vms *d) {
        return NULL;
}

int vmsig_qemu_vms_reload(vmsig_qemu_vms **d, vmsig_core *core, const vmsig_config *old,
                            const vmsig_config *new) {
        return vmsig_qemu_vms_new(core, new, d);
}

#endif
