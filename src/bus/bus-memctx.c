/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memctx subscriptions on org.vmsig.Endpoint: SubscribeMemctx() hands out
 * the current datum (the retained replay) with the read-only RAM fd, and
 * the subscriber is then told of every new epoch and DTB, until it
 * unsubscribes, leaves the bus, or the endpoint goes. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bus-client.h"
#include "bus-errors.h"
#include "bus-front-internal.h"
#include "bus-memctx.h"
#include "fd-util.h"
#include "log.h"
#include "memctx.h"

struct bus_memctx_sub {
        bus_client *client;
        /* Says that the endpoint's memctx is wanted: while it is, the
         * bootstrap keeps checking the published root. The signals go out
         * from the front's own delivery, in the order of every other. */
        vmsig_subscriber *core_sub;
};

static int on_datum(vmsig_subscriber *sub, const vmsig_delivery *d, void *userdata) {
        return VMSIG_DELIVER_OK;
}

static bus_memctx_sub *sub_free(bus_memctx_sub *s) {
        if (!s)
                return NULL;
        s->core_sub = vmsig_subscriber_free(s->core_sub);
        bus_client_free(s->client);
        return mfree(s);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(bus_memctx_sub *, sub_free);

/* Ends s: out of the front's map, then freed. */
static void sub_end(bus_memctx_sub *s) {
        hashmap_remove(s->client->front->memctx_subs, s->client->key);
        sub_free(s);
}

void bus_memctx_subscriber_gone(vmsig_bus_front *f, const char *name) {
        bus_memctx_sub *s;

        HASHMAP_FOREACH(s, f->memctx_subs, st)
                if (bus_client_is_gone(s->client, name)) {
                        log_debug("memctx subscriber %s of '%s' left the bus.", s->client->label,
                                  vmsig_endpoint_get_name(s->client->endpoint));
                        sub_end(s);
                }
}

/* Subscribes the caller of m to ep's memctx; <0 with error set when over
 * its quota. */
static int sub_new(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep, sd_bus_error *error) {
        _cleanup_(sub_freep) bus_memctx_sub *s = calloc(1, sizeof *s);
        int r = s ? bus_client_new(f, m, ep, BUS_QUOTA_SUBSCRIPTIONS, error, &s->client) : -ENOMEM;

        if (r >= 0)
                r = bus_client_subscribe(s->client, f->memctx_subs, VMSIG_KIND_MEMCTX, on_datum, s, "subscribe-memctx",
                                         &s->core_sub);
        if (r < 0)
                return r;
        TAKE_PTR(s);
        return 0;
}

static int append_datum(sd_bus_message *reply, const vmsig_memctx *m, int ram_fd) {
        int r = sd_bus_message_append(reply, "httt", ram_fd, m->dtb, m->epoch, m->ram_size);

        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ttt)");
        for (size_t i = 0; r >= 0 && i < m->n_ranges; i++)
                r = sd_bus_message_append(reply, "(ttt)", m->ranges[i].gpa, m->ranges[i].size, m->ranges[i].offset);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

/* The reply holds a copy of ram_fd; the caller keeps and closes its own. */
static int reply_datum(sd_bus_message *m, const vmsig_memctx *datum, int ram_fd) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = append_datum(reply, datum, ram_fd);
        return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

int bus_memctx_require_adapter(vmsig_endpoint *ep, sd_bus_error *error) {
        const char *why = vmsig_endpoint_get_memctx_absence(ep);

        if (why)
                return sd_bus_error_setf(error, VMSIG_ERROR_NOT_SUPPORTED, "Endpoint '%s' has no memory context: %s",
                                         vmsig_endpoint_get_name(ep), why);
        /* Not "not yet": the backend knows it will not come, and why. */
        why = vmsig_endpoint_get_memctx_failure(ep);
        if (why)
                return sd_bus_error_setf(error, VMSIG_ERROR_RAM_UNAVAILABLE,
                                         "vmsigd cannot give endpoint '%s' a memory context: %s",
                                         vmsig_endpoint_get_name(ep), why);
        return 0;
}

int bus_memctx_method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        vmsig_bus_front *f = be->front;
        const vmsig_memctx *datum;
        _cleanup_close_ int ram_fd = -1;
        int r;

        assert(m);
        assert(be);

        r = bus_endpoint_require_attached(be->endpoint, error);
        if (r >= 0)
                r = bus_memctx_require_adapter(be->endpoint, error);
        if (r < 0)
                return r;
        /* Once per subscription: the fd is what is granted. */
        r = bus_auth_check(f->auth, m, VMSIG_CAP_MEMCTX, be->endpoint, false, error);
        if (r <= 0)
                return bus_auth_handler_return(r);
        datum = vmsig_memctx_get(f->core, vmsig_endpoint_get_id(be->endpoint));
        if (datum && !vmsig_memctx_ram_intact(datum->ram_fd, datum->ram_size))
                return sd_bus_error_setf(error, VMSIG_ERROR_RAM_UNAVAILABLE,
                                         "The guest RAM file of '%s' is shorter than the guest's RAM: guest "
                                         "memory is unavailable.", vmsig_endpoint_get_name(be->endpoint));
        if (!datum || datum->invalidated)
                return sd_bus_error_setf(error, VMSIG_ERROR_NOT_SUPPORTED, "Endpoint '%s' has no memory context yet.",
                                         vmsig_endpoint_get_name(be->endpoint));
        /* Each subscriber gets an open file description of its own: a dup
         * shares the file offset and the status flags (O_APPEND, O_NONBLOCK,
         * O_DIRECT) with every other subscriber and with vmsigd itself. The
         * reopen reaches the same inode, read-only: a memfd keeps its seals,
         * a file its mode. Before anything is counted or subscribed: a
         * failure changes nothing. */
        ram_fd = fd_reopen(datum->ram_fd, O_RDONLY);
        if (ram_fd < 0)
                return sd_bus_error_setf(error, VMSIG_ERROR_RAM_UNAVAILABLE,
                                         "Cannot open the guest RAM of '%s' for this "
                                         "subscriber: %s", vmsig_endpoint_get_name(be->endpoint),
                                         strerror(-ram_fd));
        /* Subscribing again is harmless: the caller gets the datum again. */
        if (!bus_client_lookup(f->memctx_subs, f, m, be->endpoint)) {
                r = sub_new(f, m, be->endpoint, error);
                if (r < 0)
                        return r;
        }
        return reply_datum(m, datum, ram_fd);
}

int bus_memctx_method_unsubscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        vmsig_bus_front *f = be->front;
        bus_memctx_sub *s = bus_client_lookup(f->memctx_subs, f, m, be->endpoint);

        assert(m);
        assert(be);

        if (!s)
                return bus_client_not_subscribed(error, "memory context", be->endpoint);
        sub_end(s);
        return sd_bus_reply_method_return(m, NULL);
}

void bus_memctx_on_event(vmsig_bus_front *f, vmsig_endpoint *ep, const char *path, const vmsig_memctx *m) {
        bus_memctx_sub *s;

        /* Unicast: the DTB is the subscribers' business only. */
        HASHMAP_FOREACH(s, f->memctx_subs, st) {
                if (s->client->endpoint != ep)
                        continue;
                if (m->invalidated)
                        bus_client_signal(s->client, path, VMSIG_BUS_ENDPOINT_INTERFACE, "MemctxInvalidated", "t",
                                          m->epoch);
                else
                        bus_client_signal(s->client, path, VMSIG_BUS_ENDPOINT_INTERFACE, "MemctxChanged", "tt",
                                          m->epoch, m->dtb);
        }
}

void bus_memctx_endpoint_gone(vmsig_bus_front *f, vmsig_endpoint *ep) {
        bus_memctx_sub *s;

        HASHMAP_FOREACH(s, f->memctx_subs, st)
                if (bus_client_holds_on(s->client, ep))
                        sub_end(s);
}
