/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vmsig.Lease objects, /org/vmsig/lease/<id>: a lease held through this
 * connection, in the manner of logind's TakeControl and Inhibit. A lease
 * ends on Release(), when its holder closes the fd it got, when the holder
 * leaves the bus, or when it is revoked (forced, detach, reset). */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-client.h"
#include "bus-errors.h"
#include "bus-front-internal.h"
#include "bus-lease.h"
#include "bus-util.h"
#include "log.h"

struct bus_lease {
        bus_client *holder;
        vmsig_lease_class class;
        vmsig_lease_info info;
        char *path;
        int fd;                  /* the pipe's write end, never written: EPOLLERR on it ends the lease */
        sd_event_source *hangup;
};

/* Property getters. */

static const char *lease_endpoint_path(const bus_lease *l) {
        bus_endpoint *be = bus_front_lookup(l->holder->front, vmsig_endpoint_get_name(l->holder->endpoint));
        return be ? be->path : "/";
}

BUS_DEFINE_PROPERTY_GETTER(property_get_class, bus_lease, "s", vmsig_lease_class_to_string(u->class));
BUS_DEFINE_PROPERTY_GETTER(property_get_endpoint, bus_lease, "o", lease_endpoint_path(u));
BUS_DEFINE_PROPERTY_GETTER(property_get_holder, bus_lease, "s", u->info.holder);
BUS_DEFINE_PROPERTY_GETTER(property_get_holder_command, bus_lease, "s", u->info.command);

/* Lifetime. */

static bus_lease *bus_lease_free(bus_lease *l) {
        if (!l)
                return NULL;
        hashmap_remove_uint64(l->holder->front->leases, l->info.id);
        l->hangup = sd_event_source_disable_unref(l->hangup);
        l->fd = safe_close(l->fd);
        bus_client_free(l->holder);
        free(l->path);
        return mfree(l);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(bus_lease *, bus_lease_free);

/* Ends the lease in the endpoint, audited as released by its holder; the
 * LEASE event then comes back to the front, which removes the object (see
 * bus_lease_on_event()). */
static void bus_lease_release(bus_lease *l, const char *reason) {
        bus_auth_audit_operation(&l->holder->peer, "release-lease", l->holder->endpoint, 0, NULL);
        (void) vmsig_endpoint_lease_end(l->holder->endpoint, l->class, l->info.id, VMSIG_LEASE_RELEASED, reason);
}

static int on_hangup(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        bus_lease *l = userdata;

        /* EPOLLERR stays raised on our end: watch no more, even should the
         * lease have ended some other way meanwhile. */
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        log_debug("Holder of lease %" PRIu64 " closed its fd.", l->info.id);
        bus_lease_release(l, "fd-closed");
        vmsig_core_flush(l->holder->front->core);
        return 0;
}

static bool lease_is_current(const bus_lease *l) {
        const vmsig_lease_info *cur = vmsig_endpoint_lease_get(l->holder->endpoint, l->class);
        return cur && cur->id == l->info.id;
}

/* The front learns from bus-peers that name left the bus. */
void bus_lease_holder_gone(vmsig_bus_front *f, const char *name) {
        bus_lease *l;

        /* The LEASE events remove the objects, at the flush. */
        HASHMAP_FOREACH(l, f->leases, st)
                if (bus_client_is_gone(l->holder, name) && lease_is_current(l)) {
                        log_debug("Holder of lease %" PRIu64 " left the bus.", l->info.id);
                        bus_lease_release(l, "holder-gone");
                }
        vmsig_core_flush(f->core);
}

/* Methods. */

static int method_release(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_lease *l = userdata;
        vmsig_bus_front *f = l->holder->front;
        const char *caller = bus_front_peer_label(f, m);
        int r;

        assert(m);
        assert(l);

        if (!caller || strcmp(caller, l->info.holder) != 0) {
                r = bus_auth_audit_refusal(f->auth, m, bus_lease_class_cap(l->class), l->holder->endpoint,
                                           "not-lease-holder", error);
                if (r <= 0)
                        return bus_auth_handler_return(r);
                return sd_bus_error_setf(error, VMSIG_ERROR_NOT_LEASE_HOLDER,
                                         "Only the holder %s may release this lease.", l->info.holder);
        }
        bus_lease_release(l, "released");
        /* LeaseReleased and PropertiesChanged go out before the reply. */
        vmsig_core_flush(f->core);
        return sd_bus_reply_method_return(m, NULL);
}

/* The id a path label names: its decimal digits as bus_lease_create() wrote
 * them, so that no other spelling ("007") reaches the same lease. */
static int lease_id_from_label(const char *label, uint64_t *ret) {
        char canonical[24];
        char *end;
        uint64_t id;

        if (label[0] < '1' || label[0] > '9')
                return -EINVAL;
        errno = 0;
        id = strtoull(label, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        snprintf(canonical, sizeof canonical, "%" PRIu64, id);
        if (strcmp(canonical, label) != 0)
                return -EINVAL;
        *ret = id;
        return 0;
}

int bus_lease_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                   sd_bus_error *error) {
        _cleanup_free_ char *label = NULL;
        vmsig_bus_front *f = userdata;
        uint64_t id;
        int r;

        r = sd_bus_path_decode(path, VMSIG_BUS_LEASE_PREFIX, &label);
        if (r <= 0)
                return r;
        r = lease_id_from_label(label, &id);
        if (r < 0)
                return 0;
        return bus_object_found(hashmap_get_uint64(f->leases, id), found);
}

int bus_lease_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        vmsig_bus_front *f = userdata;
        return bus_hashmap_paths(f->leases, offsetof(bus_lease, path), nodes);
}

/* Creation, for AcquireLease. */

static int watch_holder(bus_lease *l, int *ret_fd) {
        _cleanup_close_ int read_end = -1;
        int pipefd[2], r;

        /* The holder gets the read end of a pipe we never write into: it has
         * nothing to read, and no way to hand us data to spend our time on
         * (a holder that drowned a readable end kept vmsigd busy reading).
         * Once every copy of its end is closed, our write end reports
         * EPOLLERR, which epoll reports whether asked for or not: we ask for
         * nothing else. */
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        read_end = pipefd[0];
        l->fd = pipefd[1];
        r = sd_event_add_io(sd_bus_get_event(l->holder->front->bus), &l->hangup, l->fd, 0, on_hangup, l);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(read_end);
        return 0;
}

int bus_lease_create(bus_client **holder, vmsig_lease_class c, const vmsig_lease_info *info, const char **ret_path,
                     int *ret_fd) {
        _cleanup_(bus_lease_freep) bus_lease *l = NULL;
        vmsig_bus_front *f;
        char label[24];
        int r;

        assert(holder && *holder);
        assert(info);
        assert(ret_path);
        assert(ret_fd);

        l = calloc(1, sizeof *l);
        if (!l) {
                *holder = bus_client_free(*holder);
                return -ENOMEM;
        }
        /* Freeing l from here on removes info->id from the map: one lease
         * of that id is there already only if the endpoint reused an id,
         * which it never does. */
        l->holder = TAKE_PTR(*holder);
        l->fd = -1;
        l->class = c;
        l->info = *info;
        f = l->holder->front;
        snprintf(label, sizeof label, "%" PRIu64, info->id);
        r = sd_bus_path_encode(VMSIG_BUS_LEASE_PREFIX, label, &l->path);
        if (r >= 0)
                r = hashmap_put_uint64(f->leases, l->info.id, l);
        if (r >= 0)
                r = watch_holder(l, ret_fd);
        if (r < 0)
                return r;
        /* Leases are managed objects under /org/vmsig like the endpoints. */
        (void) sd_bus_emit_object_added(f->bus, l->path);
        *ret_path = l->path;
        TAKE_PTR(l);
        return 0;
}

/* The endpoint ended a lease (ours or another front's): if it was ours,
 * the object goes, and a revoked holder is told why. */
void bus_lease_on_event(vmsig_bus_front *f, const vmsig_lease_payload *p) {
        bus_lease *l;

        if (p->change == VMSIG_LEASE_ACQUIRED)
                return;
        l = hashmap_get_uint64(f->leases, p->lease.id);
        if (!l)
                return;
        /* Only the holder needs to hear it. */
        if (p->change == VMSIG_LEASE_REVOKED)
                bus_client_signal(l->holder, l->path, VMSIG_BUS_LEASE_INTERFACE, "LeaseRevoked", "s", p->reason);
        /* Built from the object as it still exists. */
        (void) sd_bus_emit_object_removed(f->bus, l->path);
        bus_lease_free(l);
}

void bus_lease_free_all(vmsig_bus_front *f) {
        bus_lease *l;

        /* A front goes away with its connection: its holders are gone too.
         * Out of the map first: the event may not reach us again (we are
         * unsubscribing). */
        while ((l = hashmap_steal_first(f->leases))) {
                if (vmsig_endpoint_is_attached(l->holder->endpoint))
                        (void) vmsig_endpoint_lease_end(l->holder->endpoint, l->class, l->info.id,
                                                        VMSIG_LEASE_RELEASED, "holder-gone");
                bus_lease_free(l);
        }
}

const sd_bus_vtable bus_lease_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Class", "s", property_get_class, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Endpoint", "o", property_get_endpoint, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Holder", "s", property_get_holder, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HolderUID", "u", NULL, offsetof(bus_lease, info.uid), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HolderPID", "u", NULL, offsetof(bus_lease, info.pid), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HolderCommand", "s", property_get_holder_command, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AcquiredAt", "t", NULL, offsetof(bus_lease, info.acquired_at), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD("Release", NULL, NULL, method_release, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("LeaseRevoked", SD_BUS_ARGS("s", reason), 0),
        SD_BUS_VTABLE_END,
};
