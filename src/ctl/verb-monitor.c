/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* monitor: one line per signal of org.vmsig (roster, lifecycle, memctx,
 * bootstrap and lease events), as text or as JSON lines, until Ctrl-C. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-event.h"
#include "ctl-util.h"

typedef struct monitor {
        sd_bus *bus;
        const char *name;  /* only this endpoint, or NULL for all */
        char *filter_path; /* its object when we started, NULL if none */
        int failed;        /* < 0: a part asked for was refused */
} monitor;

/* By name: a VM added again has a new object path. */
static bool wanted(monitor *mon, const ctl_event *e) {
        return !mon->name || (e->endpoint && strcmp(e->endpoint, mon->name) == 0);
}

static bool is_denied(const sd_bus_error *error) {
        return sd_bus_error_has_names(error, SD_BUS_ERROR_ACCESS_DENIED, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED);
}

/* --memctx: MemctxChanged and MemctxInvalidated go to subscribers only.
 * Being refused them is an error: the monitor would go on without the
 * memctx events it was asked for, and nobody would know. An endpoint that
 * has no memctx or went away meanwhile is only said. */
static int subscribe_memctx(monitor *mon, const char *path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *name = ctl_endpoint_name_from_path(path);
        int r;

        /* We want the signals, not the RAM: the fd goes with the reply. */
        r = sd_bus_call_method(mon->bus, VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, "SubscribeMemctx", &error,
                               &reply, NULL);
        if (r >= 0)
                return 0;
        ctl_bus_error(&error, r, "Failed to subscribe to the memory context of '%s'", name ?: path);
        return is_denied(&error) ? r : 0;
}

/* A refused memctx subscription after the start ends the monitor with
 * that error. */
static void fail_monitor(monitor *mon, int r) {
        sd_event *e = sd_bus_get_event(mon->bus);

        mon->failed = r;
        if (e)
                (void) sd_event_exit(e, r);
}

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        monitor *mon = userdata;
        ctl_event e = {};
        int r;

        r = ctl_event_parse(m, &e);
        if (r < 0) {
                fprintf(stderr, "Failed to parse a signal of %s: %s\n", VMSIG_BUS_NAME, strerror(-r));
                ctl_event_done(&e);
                return 0;
        }
        e.endpoint = ctl_endpoint_name_from_path(e.path);
        if (wanted(mon, &e)) {
                ctl_event_print(&e);
                if (arg.memctx && strcmp(e.signal, "EndpointAdded") == 0) {
                        r = subscribe_memctx(mon, e.path);
                        if (r < 0)
                                fail_monitor(mon, r);
                }
        }
        ctl_event_done(&e);
        return 0;
}

static int subscribe_all_memctx(monitor *mon) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name, *state, *path;
        uint32_t vmid;
        int r;

        r = ctl_require_fd_passing(mon->bus);
        if (r < 0)
                return r;
        if (mon->name) {
                return mon->filter_path ? subscribe_memctx(mon, mon->filter_path) : 0;
        }
        r = sd_bus_call_method(mon->bus, VMSIG_BUS_NAME, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "ListEndpoints",
                               &error, &reply, NULL);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to list endpoints");
        r = sd_bus_message_enter_container(reply, 'a', "(suso)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(suso)", &name, &vmid, &state, &path)) > 0) {
                r = subscribe_memctx(mon, path);
                if (r < 0)
                        return r;
        }
        return r < 0 ? ctl_error(r, "Failed to parse the list of endpoints: %m") : 0;
}

/* vmsigd coming and going (NameOwnerChanged of org.vmsig): its endpoints
 * come and go with it, and memctx subscriptions are to be taken again. */
static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        monitor *mon = userdata;
        ctl_event e = { .signal = "NameOwnerChanged", .path = VMSIG_BUS_NAME, .category = "service" };
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        ctl_event_add_string(&e, "old_owner", old_owner);
        ctl_event_add_string(&e, "new_owner", new_owner);
        ctl_event_print(&e);
        ctl_event_done(&e);
        if (arg.memctx && *new_owner) {
                int r = subscribe_all_memctx(mon);
                if (r < 0)
                        fail_monitor(mon, r);
        }
        return 0;
}

/* NAME need not exist yet, the monitor may be waiting for it; but a name
 * vmsigd calls invalid will never come. */
static int resolve_filter(monitor *mon) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(mon->bus, VMSIG_BUS_NAME, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "GetEndpoint",
                               &error, &reply, "s", mon->name);
        if (r < 0 && !sd_bus_error_has_name(&error, "org.vmsig.Error.NoSuchEndpoint"))
                return ctl_bus_error(&error, r, "Failed to look up endpoint '%s'", mon->name);
        if (r < 0) {
                ctl_info("No endpoint '%s' yet; waiting for it.", mon->name);
                return 0;
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return ctl_error(r, "Failed to parse the reply of GetEndpoint: %m");
        mon->filter_path = strdup(path);
        return mon->filter_path ? 0 : ctl_error(-ENOMEM, "Out of memory.");
}

static int run_loop(monitor *mon) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL, *owner_slot = NULL;
        int r;

        /* One rule for everything vmsigd sends; the match is in place (the
         * call waits for AddMatch) before we say we are ready. */
        r = sd_bus_add_match(mon->bus, &slot,
                             ctl_service_sender(mon->bus)
                                     ? "type='signal',sender='" VMSIG_BUS_NAME "',path_namespace='/org/vmsig'"
                                     : "type='signal',path_namespace='/org/vmsig'",
                             on_signal, mon);
        /* On the private socket there is no bus to come and go from. */
        if (r >= 0 && ctl_service_sender(mon->bus))
                r = sd_bus_add_match(mon->bus, &owner_slot,
                                     "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                     "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" VMSIG_BUS_NAME
                                     "'",
                                     on_owner_changed, mon);
        if (r < 0)
                return ctl_error(r, "Failed to subscribe to the signals of " VMSIG_BUS_NAME ": %m");
        if (arg.memctx) {
                r = subscribe_all_memctx(mon);
                if (r < 0)
                        return r;
        }
        r = ctl_event_new(&e);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(mon->bus, e, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return ctl_error(r, "Failed to set up the event loop: %m");
        (void) sd_bus_set_exit_on_disconnect(mon->bus, true);
        ctl_info("Monitoring %s%s%s; press Ctrl-C to stop.", mon->name ? "endpoint '" : VMSIG_BUS_NAME,
                 mon->name ? mon->name : "", mon->name ? "'" : "");
        r = sd_event_loop(e);
        (void) sd_bus_detach_event(mon->bus);
        if (mon->failed < 0)
                return mon->failed;
        if (r > 0)
                return ctl_error(-ECONNRESET, "Lost the connection to the bus.");
        return r;
}

int verb_monitor(int argc, char **argv) {
        monitor mon = { .name = argc > 1 ? argv[1] : NULL };
        int r;

        /* Only a memctx subscription needs authorization. */
        r = ctl_acquire_bus(arg.memctx, &mon.bus);
        if (r >= 0 && mon.name)
                r = resolve_filter(&mon);
        if (r >= 0)
                r = run_loop(&mon);
        free(mon.filter_path);
        return r;
}
