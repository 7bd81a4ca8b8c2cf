/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "bus-audit.h"
#include "bus-auth.h"
#include "bus-front.h"
#include "bus-names.h"
#include "bus-private.h"
#include "config-file.h"
#include "daemon.h"
#include "qemu-vms.h"
#include "log.h"
#include "memory-trim.h"
#include "libvirt-vms.h"
#include "plugins.h"
#include "stub.h"


struct vmsig_daemon {
        vmsig_daemon_options opts;
        sd_event *event;
        sd_bus *bus;
        vmsig_core *core;
        bus_auth *auth;
        vmsig_bus_context bus_context;
        vmsig_bus_front *front;
        vmsig_bus_private *private;
        vmsig_qemu_vms *discovered;
        vmsig_libvirt_vms *libvirt;
        vmsig_config *config;
        memory_trim *trim;
        vmsig_plugins *plugins;
};

static int load_config(vmsig_daemon *d, vmsig_config **ret, char **ret_error) {
        _cleanup_free_ char *error = NULL;
        int r;

        r = vmsig_config_load(d->opts.config_path, ret, &error);
        if (r == -ENOENT && !d->opts.config_explicit) {
                log_info("No configuration at %s, using defaults.", d->opts.config_path);
                return vmsig_config_new_default(ret);
        }
        if (r < 0) {
                log_error_errno(r, "%s", error ? error : "Cannot load the configuration.");
                if (ret_error)
                        *ret_error = TAKE_PTR(error);
                return r;
        }
        if ((*ret)->warning)
                log_warning("%s", (*ret)->warning);
        return 0;
}

static bool stub_vm_changed(const vmsig_stub_vm_config *a, const vmsig_stub_vm_config *b) {
        return a->ram_size != b->ram_size || !sd_id128_equal(a->uuid, b->uuid) || a->latency_usec != b->latency_usec ||
               a->dtb != b->dtb || a->bootstrap != b->bootstrap || a->fail_boots != b->fail_boots ||
               a->no_vcpu_registers != b->no_vcpu_registers || a->guest_os != b->guest_os;
}

static void attach_stub_vm(vmsig_daemon *d, const vmsig_stub_vm_config *vm) {
        vmsig_stub_spec spec = {
                .name = vm->name,
                .uuid = vm->uuid,
                .ram_size = vm->ram_size,
                .initial_state = vm->initial_state,
                .latency_usec = vm->latency_usec,
                .dtb = vm->dtb,
                .bootstrap = vm->bootstrap,
                .bootstrap_config = {
                        .fail_first = vm->fail_boots,
                        .backoff_max_usec = (uint64_t) d->config->bootstrap_backoff_max_ms * 1000,
                        .guest_os = vm->guest_os,
                },
                .no_vcpu_registers = vm->no_vcpu_registers,
        };
        vmsig_endpoint_spec ep_spec;
        vmsig_endpoint *ep;
        int r;

        r = vmsig_stub_new(&spec, &ep_spec, NULL);
        if (r >= 0)
                r = vmsig_core_attach_endpoint(d->core, &ep_spec, &ep);
        if (r < 0) {
                log_error_errno(r, "%s:%u: cannot attach stub VM '%s': %m", d->config ? d->config->path : "config",
                                vm->line, vm->name);
                return;
        }
        log_info("Attached stub VM '%s' as vmid %u.", vm->name, vmsig_endpoint_get_vmid(ep));
}

static void detach_endpoint(vmsig_daemon *d, vmsig_endpoint *ep, const char *why) {
        log_info("Detaching '%s' (vmid %u): %s.", vmsig_endpoint_get_name(ep), vmsig_endpoint_get_vmid(ep), why);
        (void) vmsig_core_detach_endpoint(d->core, ep);
}

/* Bring the endpoints in line with a new configuration: stub VMs that were
 * removed or changed go, new or changed ones come. Running VMs that did not
 * change are left alone. */
static void apply_stub_vms(vmsig_daemon *d, const vmsig_config *old, const vmsig_config *new) {
        for (size_t i = 0; old && i < old->n_stub_vms; i++) {
                const vmsig_stub_vm_config *o = &old->stub_vms[i], *n = vmsig_config_find_stub(new, o->name);
                vmsig_endpoint *ep = vmsig_core_find_endpoint_by_name(d->core, o->name);
                if (ep && (!n || stub_vm_changed(o, n)))
                        detach_endpoint(d, ep, n ? "its configuration changed" : "it was removed from the configuration");
        }
        for (size_t i = 0; i < new->n_stub_vms; i++)
                if (!vmsig_core_find_endpoint_by_name(d->core, new->stub_vms[i].name))
                        attach_stub_vm(d, &new->stub_vms[i]);
}

static const char *private_socket_path(const vmsig_daemon *d, const vmsig_config *c) {
        const char *path = d->opts.private_socket ? d->opts.private_socket : c->private_socket;
        return path && *path ? path : NULL;
}

/* The socket is replaced only when its path changed, so a reload does not
 * cut off the private connections. */
static int apply_private_socket(vmsig_daemon *d, const vmsig_config *old, const vmsig_config *new) {
        const char *path = private_socket_path(d, new), *old_path = old ? private_socket_path(d, old) : NULL;
        int r;

        if (old && d->private && path && old_path && strcmp(path, old_path) == 0)
                return 0;
        d->private = vmsig_bus_private_free(d->private);
        if (!path)
                return 0;
        r = vmsig_bus_private_new(d->event, d->core, &d->bus_context, path, &d->private);
        if (r == -EEXIST)
                return log_error_errno(r, "Cannot listen on the private socket %s: something that is not a socket "
                                       "is in the way, and vmsigd removes only a socket.", path);
        if (r < 0)
                return log_error_errno(r, "Cannot listen on the private socket %s: %m", path);
        log_debug("Serving the private socket %s.", path);
        return 0;
}

static int apply_admission(vmsig_daemon *d, const vmsig_config *c) {
        const vmsig_admission_config *a = &c->admission;
        bus_admission_config ac = {
                .limits = {
                        [BUS_QUOTA_PENDING_CALLS] = a->max_pending_calls,
                        [BUS_QUOTA_SUBSCRIPTIONS] = a->max_subscriptions,
                        [BUS_QUOTA_LEASES] = a->max_leases,
                },
                .allow_uids = a->allow_uids,
                .n_allow_uids = a->n_allow_uids,
                .allow_gids = a->allow_gids,
                .n_allow_gids = a->n_allow_gids,
        };

        bus_audit_set_target(bus_audit_target_from_string(c->audit_target));
        return bus_auth_configure(d->auth, &ac);
}

static int apply_config(vmsig_daemon *d, vmsig_config *new) {
        vmsig_config *old = d->config;
        int r;

        if (d->opts.log_level < 0)
                log_set_max_level(new->log_level);
        r = apply_admission(d, new);
        if (r < 0)
                log_error_errno(r, "Cannot apply the admission settings: %m");
        /* At start-up the socket follows the bus name (see
         * vmsig_daemon_new()), so a second instance never touches it. */
        if (r >= 0 && old)
                r = apply_private_socket(d, old, new);
        vmsig_core_set_queue_limit(d->core, new->queue_limit);
        vmsig_core_set_max_endpoints(d->core, new->max_endpoints);
        d->bus_context.max_write = new->max_write;
        d->config = new;
        if (old)
                vmsig_plugins_reload(d->plugins, old, new);
        apply_stub_vms(d, old, new);
        if (r >= 0)
                r = old ? vmsig_qemu_vms_reload(&d->discovered, d->core, old, new)
                        : vmsig_qemu_vms_new(d->core, new, &d->discovered);
        if (r >= 0)
                r = vmsig_libvirt_vms_apply(&d->libvirt, d->core, old, new);
        vmsig_config_free(old);
        return r;
}

/* SIGHUP and Manager.Reload(): a file that does not load changes nothing. */
static int reload(void *userdata, char **ret_error) {
        vmsig_daemon *d = userdata;
        vmsig_config *new = NULL;
        int r;

        (void) sd_notify(false, "RELOADING=1\nSTATUS=Reloading configuration...");
        r = load_config(d, &new, ret_error);
        if (r < 0)
                log_warning("Keeping the previous configuration.");
        else {
                (void) apply_config(d, new);
                log_info("Configuration reloaded from %s.", d->opts.config_path);
        }
        (void) sd_notify(false, "READY=1\nSTATUS=Running.");
        return r;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) reload(userdata, NULL);
        return 0;
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        vmsig_daemon *d = userdata;
        log_info("Received %s, shutting down.", strsignal((int) si->ssi_signo));
        return sd_event_exit(d->event, 0);
}

static int setup_signals(vmsig_daemon *d) {
        static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
        sigset_t mask;
        int r;

        /* sd-event takes signals through a signalfd, which needs them
         * blocked for normal delivery. */
        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                sigaddset(&mask, sigs[i]);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        r = sd_event_add_signal(d->event, NULL, SIGTERM, on_terminate, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, NULL, SIGINT, on_terminate, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, NULL, SIGHUP, on_sighup, d);
        return r;
}

static int setup_bus(vmsig_daemon *d) {
        int r;

        r = sd_bus_open_system(&d->bus);
        if (r < 0)
                return log_error_errno(r, "Cannot connect to the system bus: %m");
        r = sd_bus_attach_event(d->bus, d->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Cannot attach the bus to the event loop: %m");
        /* Losing the bus ends the loop with a failure code: systemd restarts
         * us, and the roster is rebuilt from configuration and discovery. */
        r = sd_bus_set_exit_on_disconnect(d->bus, true);
        if (r < 0)
                return r;
        r = bus_auth_new(d->event, d->bus, &d->auth);
        if (r < 0)
                return log_error_errno(r, "Cannot set up authorization: %m");
        d->bus_context = (vmsig_bus_context) { .auth = d->auth, .reload = reload, .userdata = d };
        r = vmsig_bus_front_new(d->core, d->bus, &d->bus_context, &d->front);
        if (r < 0)
                return log_error_errno(r, "Cannot register the bus objects: %m");
        return 0;
}

static int take_name(vmsig_daemon *d) {
        int r;

        /* Publish the initial roster first, so that a client that sees the
         * name appear also sees every configured endpoint. */
        vmsig_core_flush(d->core);
        r = sd_bus_request_name(d->bus, VMSIG_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Cannot own the bus name %s: %m", VMSIG_BUS_NAME);
        return 0;
}

int vmsig_daemon_new(const vmsig_daemon_options *opts, vmsig_daemon **ret) {
        vmsig_config *config = NULL;
        vmsig_daemon *d;
        int r;

        d = calloc(1, sizeof *d);
        if (!d)
                return log_oom();
        d->opts = *opts;
        if (opts->log_level >= 0)
                log_set_max_level(opts->log_level);

        r = load_config(d, &config, NULL);
        if (r < 0)
                goto fail;
        r = sd_event_default(&d->event);
        if (r >= 0)
                r = setup_signals(d);
        if (r >= 0)
                r = memory_trim_new(d->event, &d->trim);
        if (r >= 0)
                r = vmsig_core_new(d->event, &d->core);
        /* Before any endpoint attaches, so that every display is seen. */
        if (r >= 0)
                r = vmsig_plugins_new(d->core, config, &d->plugins);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the event loop: %m");
                vmsig_config_free(config);
                goto fail;
        }
        r = setup_bus(d);
        if (r < 0) {
                vmsig_config_free(config);
                goto fail;
        }
        /* A private socket that cannot be set up at start is fatal: it is
         * configured, and silently running without it hides the problem. */
        r = apply_config(d, config);
        if (r >= 0)
                r = take_name(d);
        if (r >= 0)
                r = apply_private_socket(d, NULL, d->config);
        if (r < 0)
                goto fail;

        *ret = d;
        return 0;
fail:
        vmsig_daemon_free(d);
        return r;
}

int vmsig_daemon_run(vmsig_daemon *d) {
        int r;

        (void) sd_notify(false, "READY=1\nSTATUS=Running.");
        log_info("vmsigd " PACKAGE_VERSION " running with %zu endpoints.", vmsig_core_endpoint_count(d->core));
        r = sd_event_loop(d->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        if (r > 0) {
                log_error("Lost the connection to the system bus, exiting.");
                return -ECONNRESET;
        }
        (void) sd_notify(false, "STOPPING=1");
        return 0;
}

static void detach_all(vmsig_daemon *d) {
        vmsig_endpoint *ep;

        while ((ep = vmsig_core_next_endpoint(d->core, NULL)))
                (void) vmsig_core_detach_endpoint(d->core, ep);
        /* Pending calls are answered during detach; let the removals reach
         * the bus before the front goes away. */
        vmsig_core_flush(d->core);
}

vmsig_daemon *vmsig_daemon_free(vmsig_daemon *d) {
        if (!d)
                return NULL;
        d->discovered = vmsig_qemu_vms_free(d->discovered);
        d->libvirt = vmsig_libvirt_vms_free(d->libvirt);
        if (d->core)
                detach_all(d);
        d->private = vmsig_bus_private_free(d->private);
        d->front = vmsig_bus_front_free(d->front);
        d->auth = bus_auth_free(d->auth);
        d->bus = sd_bus_flush_close_unref(d->bus);
        vmsig_plugins_stop(d->plugins);
        d->core = vmsig_core_free(d->core);
        d->plugins = vmsig_plugins_free(d->plugins);
        d->trim = memory_trim_free(d->trim);
        d->event = sd_event_unref(d->event);
        vmsig_config_free(d->config);
        return mfree(d);
}
