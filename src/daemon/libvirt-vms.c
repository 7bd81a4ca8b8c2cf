/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "libvirt-vms.h"
#include "log.h"

#if VMSIG_HAVE_LIBVIRT
#include "inode-watch.h"
#include "libvirt-backend.h"

struct vmsig_libvirt_vms {
        vmsig_libvirt *backend;
};

static bool settings_changed(const vmsig_config *old, const vmsig_config *new) {
        return old->libvirt_enabled != new->libvirt_enabled || strcmp(old->libvirt_uri, new->libvirt_uri) != 0 ||
               old->libvirt_tagged != new->libvirt_tagged || old->libvirt_monitor != new->libvirt_monitor;
}

int vmsig_libvirt_vms_apply(vmsig_libvirt_vms **v, vmsig_core *core, const vmsig_config *old,
                            const vmsig_config *new) {
        vmsig_libvirt_config config = {
                .uri = new->libvirt_uri,
                .domains = new->libvirt_tagged ? VMSIG_LIBVIRT_DOMAINS_TAGGED : VMSIG_LIBVIRT_DOMAINS_ALL,
                .monitor = new->libvirt_monitor,
        };
        int r;

        if (*v && old && !settings_changed(old, new))
                return 0;
        *v = vmsig_libvirt_vms_free(*v);
        if (!new->libvirt_enabled)
                return 0;
        *v = calloc(1, sizeof **v);
        if (!*v)
                return log_oom();
        r = vmsig_libvirt_new(core, &config, &(*v)->backend);
        /* The domains' RAM files are watched for truncation (host-ram.h). */
        if (r >= 0)
                r = inode_watches_prepare(core);
        if (r < 0) {
                *v = vmsig_libvirt_vms_free(*v);
                return log_error_errno(r, "Cannot start the libvirt backend for %s: %m", new->libvirt_uri);
        }
        log_info("libvirt backend: %s, %s domains.", new->libvirt_uri,
                 vmsig_libvirt_domains_to_string(config.domains));
        return 0;
}

vmsig_libvirt_vms *vmsig_libvirt_vms_free(vmsig_libvirt_vms *v) {
        if (!v)
                return NULL;
        vmsig_libvirt_free(v->backend);
        return mfree(v);
}

#else

int vmsig_libvirt_vms_apply(vmsig_libvirt_vms **v, vmsig_core *core, const vmsig_config *old,
                            const vmsig_config *new) {
        *v = NULL;
        if (new->libvirt_enabled && (!old || !old->libvirt_enabled))
                log_warning("%s: <libvirt> is ignored: vmsigd was built without the libvirt backend "
                            "(configure --enable-libvirt).", new->path ?: "config");
        return 0;
}

vmsig_libvirt_vms *vmsig_libvirt_vms_free(vmsig_libvirt_vms *v) {
        return NULL;
}

#endif
