/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-lease.h"
#include "ctl-util.h"

struct ctl_lease {
        sd_bus *bus;
        char *endpoint; /* name, for messages */
        char *class;
        char *path;
        int fd;
        char *revoked; /* the reason, once LeaseRevoked came */
        sd_bus_slot *revoked_slot;
};

static int on_lease_revoked(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        ctl_lease *l = userdata;
        const char *reason;

        /* The match is set before the lease exists, so check the path. */
        if (!l->path || strcmp(sd_bus_message_get_path(m), l->path) != 0 || l->revoked)
                return 0;
        if (sd_bus_message_read(m, "s", &reason) < 0)
                reason = "no reason given";
        l->revoked = strdup(reason);
        ctl_error(-ECONNRESET, "The %s lease of '%s' was revoked: %s.", l->class, l->endpoint, reason);
        if (sd_bus_get_event(l->bus))
                (void) sd_event_exit(sd_bus_get_event(l->bus), -ECONNRESET);
        return 0;
}

static ctl_lease *lease_new(sd_bus *bus, const char *name, const char *class) {
        ctl_lease *l = calloc(1, sizeof *l);

        if (!l)
                return NULL;
        l->fd = -1;
        l->bus = sd_bus_ref(bus);
        l->endpoint = strdup(name);
        l->class = strdup(class);
        if (!l->endpoint || !l->class)
                return ctl_lease_release(l);
        return l;
}

static int call_acquire(ctl_lease *l, const char *endpoint_path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *path;
        int r, fd;

        r = sd_bus_message_new_method_call(l->bus, &m, VMSIG_BUS_NAME, endpoint_path, VMSIG_BUS_ENDPOINT_INTERFACE,
                                           "AcquireLease");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", l->class);
        if (r >= 0)
                r = ctl_append_flag_option(m, "force", arg.force);
        if (r < 0)
                return ctl_error(r, "Failed to build the AcquireLease call: %m");
        r = sd_bus_call(l->bus, m, 0, &error, &reply);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to acquire the %s lease of '%s'", l->class, l->endpoint);
        r = sd_bus_message_read(reply, "oh", &path, &fd);
        if (r < 0)
                return ctl_error(r, "Failed to parse the reply of AcquireLease: %m");
        /* The fd belongs to the reply; the lease lives as long as ours. */
        l->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (l->fd < 0)
                return ctl_error(-errno, "Failed to keep the lease fd: %m");
        l->path = strdup(path);
        return l->path ? 0 : ctl_error(-ENOMEM, "Out of memory.");
}

int ctl_lease_acquire(sd_bus *bus, const char *name, const char *endpoint_path, const char *class, ctl_lease **ret) {
        _cleanup_(ctl_lease_releasep) ctl_lease *l = NULL;
        int r;

        r = ctl_require_fd_passing(bus);
        if (r < 0)
                return r;
        l = lease_new(bus, name, class);
        if (!l)
                return ctl_error(-ENOMEM, "Out of memory.");
        /* Listen before asking: a revocation may follow the grant at once. */
        r = sd_bus_match_signal(bus, &l->revoked_slot, ctl_service_sender(bus), NULL, VMSIG_BUS_LEASE_INTERFACE,
                                "LeaseRevoked", on_lease_revoked, l);
        if (r < 0)
                return ctl_error(r, "Failed to watch for lease revocation: %m");
        r = call_acquire(l, endpoint_path);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

/* vmsigd closed its end of the lease pipe: the lease is over. */
static int on_lease_hangup(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ctl_lease *l = userdata;

        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        /* vmsigd sends LeaseRevoked before it closes the pipe, but the
         * signal takes the longer way, through the bus. A round trip to
         * vmsigd brings in everything it sent before; then dispatch it. */
        (void) sd_bus_call_method(l->bus, VMSIG_BUS_NAME, VMSIG_BUS_PATH, "org.freedesktop.DBus.Peer", "Ping",
                                  NULL, NULL, NULL);
        while (!l->revoked && sd_bus_process(l->bus, NULL) > 0)
                ;
        if (!l->revoked)
                return sd_event_exit(sd_event_source_get_event(s),
                                     ctl_error(-ECONNRESET, "The %s lease of '%s' ended: vmsigd closed it.",
                                               l->class, l->endpoint));
        return 0;
}

static void announce(const ctl_lease *l, bool print_path) {
        /* The path on stdout is for scripts, which read it through a pipe:
         * flush it now, not when we exit. */
        if (print_path) {
                printf("%s\n", l->path);
                fflush(stdout);
        }
        ctl_info("Holding the %s lease of '%s' (%s); press Ctrl-C to release it.", l->class, l->endpoint, l->path);
}

int ctl_lease_hold(ctl_lease *l, bool print_path) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(sd_event_source_unrefp) sd_event_source *hangup = NULL;
        int r;

        r = ctl_event_new(&e);
        if (r < 0)
                return r;
        /* Ours is the read end of a pipe vmsigd never writes into. Events
         * 0: EPOLLHUP, vmsigd closing its end, is always reported. */
        r = sd_event_add_io(e, &hangup, l->fd, 0, on_lease_hangup, l);
        if (r >= 0)
                r = sd_bus_attach_event(l->bus, e, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return ctl_error(r, "Failed to set up the event loop: %m");
        (void) sd_bus_set_exit_on_disconnect(l->bus, true);
        announce(l, print_path);
        r = sd_event_loop(e);
        (void) sd_bus_detach_event(l->bus);
        if (r > 0) /* sd-bus ends the loop with 1 when the bus goes */
                return ctl_error(-ECONNRESET, "Lost the connection to the bus; the %s lease of '%s' ended.", l->class,
                                 l->endpoint);
        return r;
}

static void release(ctl_lease *l) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        /* An explicit Release is answered only once the lease is over, so
         * whatever we run next finds it free; closing the fd alone would
         * race with vmsigd noticing. */
        r = sd_bus_call_method(l->bus, VMSIG_BUS_NAME, l->path, VMSIG_BUS_LEASE_INTERFACE, "Release", &error, NULL, NULL);
        /* Gone already (revoked, or a reset took it): nothing to give back. */
        if (r < 0 && !sd_bus_error_has_names(&error, SD_BUS_ERROR_UNKNOWN_OBJECT, "org.vmsig.Error.NotLeaseHolder") &&
            sd_bus_is_open(l->bus) > 0)
                ctl_bus_error(&error, r, "Failed to release the %s lease of '%s'", l->class, l->endpoint);
}

ctl_lease *ctl_lease_release(ctl_lease *l) {
        if (!l)
                return NULL;
        if (l->path && !l->revoked)
                release(l);
        l->fd = safe_close(l->fd);
        sd_bus_slot_unref(l->revoked_slot);
        sd_bus_unref(l->bus);
        free(l->endpoint);
        free(l->class);
        free(l->path);
        free(l->revoked);
        return mfree(l);
}
