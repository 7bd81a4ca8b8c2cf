/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vmsig.Lease objects, /org/vmsig/lease/<id>: a lease held through this
 * connection, in the manner of logind's TakeControl and Inhibit. A lease
 * ends on Release(), when its holder closes the fd it got, when the holder
 * leaves the bus, or when it is revoked (forced, detach, reset). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-errors.h"
#include "bus-front-internal.h"
#include "bus-lease.h"
#include "bus-util.h"
#include "log.h"

struct bus_lease {
        vmsig_bus_front *front;
        vmsig_endpoint *endpoint;
        vmsig_lease_class class;
        vmsig_lease_info info;
        char *path;
        char key[24];            /* the id, as the front's map key */
        bus_peer holder;         /* a copy, for audit after the peer left */
        int fd;                  /* the pipe's write end, never written: EPOLLERR on it ends the lease */
        sd_event_source *hangup;
        bool on_bus;             /* not a private connection: the holder has a unique name */
};

/* Property getters. */

static int property_get_class(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_lease *l = userdata;
        return sd_bus_message_append(reply, "s", vmsig_lease_class_to_string(l->class));
}

static int property_get_endpoint(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_lease *l = userdata;
        bus_endpoint *be = bus_front_lookup(l->front, vmsig_endpoint_get_name(l->endpoint));
        return sd_bus_message_append(reply, "o", be ? be->path : "/");
}

static int property_get_holder(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_lease *l = userdata;
        return sd_bus_message_append(reply, "s", l->info.holder);
}

static int property_get_acquired_at(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_lease *l = userdata;
        return sd_bus_message_append(reply, "t", l->info.acquired_at);
}

/* Lifetime. */

static void bus_lease_free(bus_lease *l) {
        hashmap_remove(l->front->leases, l->key);
        bus_auth_quota_release(l->front->auth, l->holder.uid, BUS_QUOTA_LEASES);
        l->hangup = sd_event_source_disable_unref(l->hangup);
        l->fd = safe_close(l->fd);
        vmsig_endpoint_unref(l->endpoint);
        free(l->holder.name);
        free(l->path);
        free(l);
}

/* Ends the lease in the endpoint; the LEASE event then comes back to the
 * front, which removes the object (see bus_lease_on_event()). */
static int bus_lease_end(bus_lease *l, vmsig_lease_change how, const char *reason) {
        return vmsig_endpoint_lease_end(l->endpoint, l->class, l->info.id, how, reason);
}

static int on_hangup(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        bus_lease *l = userdata;

        /* EPOLLERR stays raised on our end: watch no more, even should the
         * lease have ended some other way meanwhile. */
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        log_debug("Holder of lease %s closed its fd.", l->key);
        bus_auth_audit_operation(&l->holder, "release-lease", l->endpoint, 0, NULL);
        (void) bus_lease_end(l, VMSIG_LEASE_RELEASED, "fd-closed");
        vmsig_core_flush(l->front->core);
        return 0;
}

/* The front learns from bus-peers that name left the bus. */
void bus_lease_holder_gone(vmsig_bus_front *f, const char *name) {
        bus_lease *l;
        bool again = true;

        while (again) {
                again = false;
                HASHMAP_FOREACH(l, f->leases, st)
                        if (l->on_bus && strcmp(l->info.holder, name) == 0 &&
                            vmsig_endpoint_lease_get(l->endpoint, l->class) &&
                            vmsig_endpoint_lease_get(l->endpoint, l->class)->id == l->info.id) {
                                log_debug("Holder of lease %s left the bus.", l->key);
                                bus_auth_audit_operation(&l->holder, "release-lease", l->endpoint, 0, NULL);
                                /* The LEASE event removes the object later;
                                 * the map does not change under us here. */
                                (void) bus_lease_end(l, VMSIG_LEASE_RELEASED, "holder-gone");
                                again = true;
                                break;
                        }
        }
        vmsig_core_flush(f->core);
}

/* Methods. */

static int method_release(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_lease *l = userdata;
        const char *caller = bus_front_peer_label(l->front, m);
        int r;

        if (!caller || strcmp(caller, l->info.holder) != 0) {
                r = bus_auth_audit_refusal(l->front->auth, m, bus_lease_class_cap(l->class), l->endpoint,
                                           "not-lease-holder", error);
                if (r <= 0)
                        return r == 0 ? 1 : r;
                return vmsig_bus_error_setf(error, -EPERM, "Only the holder %s may release this lease.",
                                            l->info.holder);
        }
        bus_auth_audit_operation(&l->holder, "release-lease", l->endpoint, 0, NULL);
        (void) bus_lease_end(l, VMSIG_LEASE_RELEASED, "released");
        /* LeaseReleased and PropertiesChanged go out before the reply. */
        vmsig_core_flush(l->front->core);
        return sd_bus_reply_method_return(m, NULL);
}

int bus_lease_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                   sd_bus_error *error) {
        _cleanup_free_ char *key = NULL;
        vmsig_bus_front *f = userdata;
        bus_lease *l;
        int r;

        r = sd_bus_path_decode(path, VMSIG_BUS_LEASE_PREFIX, &key);
        if (r <= 0)
                return r;
        l = hashmap_get(f->leases, key);
        if (!l)
                return 0;
        *found = l;
        return 1;
}

static const char *lease_path(const void *value) {
        return ((const bus_lease *) value)->path;
}

int bus_lease_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        vmsig_bus_front *f = userdata;
        return bus_hashmap_paths(f->leases, lease_path, nodes);
}

/* Creation, for AcquireLease. */

static int watch_holder(bus_lease *l, sd_bus_message *m, int *ret_fd) {
        int pipefd[2], r;

        /* The holder gets the read end of a pipe we never write into: it has
         * nothing to read, and no way to hand us data to spend our time on
         * (a holder that drowned a readable end kept vmsigd busy reading).
         * Once every copy of its end is closed, our write end reports
         * EPOLLERR, which epoll reports whether asked for or not: we ask for
         * nothing else. */
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        l->fd = pipefd[1];
        r = sd_event_add_io(sd_bus_get_event(l->front->bus), &l->hangup, l->fd, 0, on_hangup, l);
        l->on_bus = sd_bus_message_get_sender(m) != NULL;
        if (r < 0) {
                safe_close(pipefd[0]);
                return r;
        }
        *ret_fd = pipefd[0];
        return 0;
}

static int bus_lease_new(vmsig_bus_front *f, vmsig_endpoint *ep, vmsig_lease_class c, const vmsig_lease_info *info,
                         const bus_peer *holder, bus_lease **ret) {
        bus_lease *l = calloc(1, sizeof *l);
        int r;

        if (!l)
                return -ENOMEM;
        l->front = f;
        l->fd = -1;
        l->class = c;
        l->info = *info;
        l->endpoint = vmsig_endpoint_ref(ep);
        l->holder = *holder;
        l->holder.name = strdup(holder->name);
        l->holder.gids = NULL;
        l->holder.n_gids = 0;
        snprintf(l->key, sizeof l->key, "%" PRIu64, info->id);
        r = l->holder.name ? sd_bus_path_encode(VMSIG_BUS_LEASE_PREFIX, l->key, &l->path) : -ENOMEM;
        if (r >= 0)
                r = hashmap_put(f->leases, l->key, l);
        if (r < 0) {
                free(l->holder.name);
                free(l->path);
                vmsig_endpoint_unref(l->endpoint);
                free(l);
                return r;
        }
        *ret = l;
        return 0;
}

int bus_lease_create(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep, vmsig_lease_class c,
                     const vmsig_lease_info *info, const bus_peer *holder, const char **ret_path, int *ret_fd) {
        bus_lease *l;
        int r;

        r = bus_lease_new(f, ep, c, info, holder, &l);
        if (r < 0)
                return r;
        r = watch_holder(l, m, ret_fd);
        if (r < 0) {
                bus_lease_free(l);
                return r;
        }
        /* Leases are managed objects under /org/vmsig like the endpoints. */
        (void) sd_bus_emit_object_added(f->bus, l->path);
        *ret_path = l->path;
        return 0;
}

/* The endpoint ended a lease (ours or another front's): if it was ours,
 * the object goes, and a revoked holder is told why. */
void bus_lease_on_event(vmsig_bus_front *f, const vmsig_lease_payload *p) {
        char key[24];
        bus_lease *l;

        if (p->change == VMSIG_LEASE_ACQUIRED)
                return;
        snprintf(key, sizeof key, "%" PRIu64, p->lease.id);
        l = hashmap_get(f->leases, key);
        if (!l)
                return;
        if (p->change == VMSIG_LEASE_REVOKED) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *s = NULL;
                int r = sd_bus_message_new_signal(f->bus, &s, l->path, VMSIG_BUS_LEASE_INTERFACE, "LeaseRevoked");
                if (r >= 0)
                        r = sd_bus_message_append(s, "s", p->reason);
                /* Only the holder needs to hear it (a private connection
                 * has nobody else). */
                if (r >= 0 && l->on_bus)
                        r = sd_bus_message_set_destination(s, l->holder.name);
                if (r >= 0)
                        r = sd_bus_send(f->bus, s, NULL);
                if (r < 0)
                        log_debug_errno(r, "Cannot tell %s that its lease was revoked: %m", l->holder.name);
        }
        /* Built from the object as it still exists. */
        (void) sd_bus_emit_object_removed(f->bus, l->path);
        bus_lease_free(l);
}

void bus_lease_free_all(vmsig_bus_front *f) {
        bus_lease *l;

        /* A front goes away with its connection: its holders are gone too. */
        while (hashmap_size(f->leases) > 0) {
                HASHMAP_FOREACH(l, f->leases, st)
                        break;
                if (vmsig_endpoint_is_attached(l->endpoint))
                        (void) bus_lease_end(l, VMSIG_LEASE_RELEASED, "holder-gone");
                /* The event may not reach us again (we are unsubscribing). */
                if (hashmap_get(f->leases, l->key) == l)
                        bus_lease_free(l);
        }
}

const sd_bus_vtable bus_lease_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Class", "s", property_get_class, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Endpoint", "o", property_get_endpoint, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Holder", "s", property_get_holder, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AcquiredAt", "t", property_get_acquired_at, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD("Release", NULL, NULL, method_release, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("LeaseRevoked", SD_BUS_ARGS("s", reason), 0),
        SD_BUS_VTABLE_END,
};
