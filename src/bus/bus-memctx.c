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

#include "bus-errors.h"
#include "bus-front-internal.h"
#include "bus-memctx.h"
#include "fd-util.h"
#include "log.h"
#include "memctx.h"

struct bus_memctx_sub {
        vmsig_bus_front *front;
        vmsig_endpoint *endpoint;
        char *key;        /* "<endpoint>\n<subscriber>" */
        char *subscriber; /* unique name or private label */
        uid_t uid;
        bool on_bus; /* not a private connection: the subscriber has a unique name */
        /* Says that the endpoint's memctx is wanted: while it is, the
         * bootstrap keeps checking the published root. The signals go out
         * from the front's own delivery, in the order of every other. */
        vmsig_subscriber *core_sub;
};

static char *sub_key(vmsig_endpoint *ep, const char *subscriber) {
        char *k = NULL;
        return asprintf(&k, "%s\n%s", vmsig_endpoint_get_name(ep), subscriber) < 0 ? NULL : k;
}

static int on_datum(vmsig_subscriber *sub, const vmsig_delivery *d, void *userdata) {
        return VMSIG_DELIVER_OK;
}

static void sub_free(bus_memctx_sub *s) {
        s->core_sub = vmsig_subscriber_free(s->core_sub);
        hashmap_remove(s->front->memctx_subs, s->key);
        bus_auth_quota_release(s->front->auth, s->uid, BUS_QUOTA_SUBSCRIPTIONS);
        vmsig_endpoint_unref(s->endpoint);
        free(s->subscriber);
        free(s->key);
        free(s);
}

static bool subscribed_on_bus_as(const void *value, const void *name) {
        const bus_memctx_sub *s = value;
        return s->on_bus && strcmp(s->subscriber, name) == 0;
}

void bus_memctx_subscriber_gone(vmsig_bus_front *f, const char *name) {
        bus_memctx_sub *s;

        while ((s = hashmap_find(f->memctx_subs, subscribed_on_bus_as, name))) {
                log_debug("memctx subscriber %s of '%s' left the bus.", s->subscriber,
                          vmsig_endpoint_get_name(s->endpoint));
                sub_free(s);
        }
}

static int sub_new(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep, const bus_peer *caller,
                   bus_memctx_sub **ret) {
        bus_memctx_sub *s = calloc(1, sizeof *s);
        vmsig_filter filter = { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_MEMCTX), .endpoint = vmsig_endpoint_get_id(ep) };
        int r;

        if (!s)
                return -ENOMEM;
        s->front = f;
        s->uid = caller->uid;
        s->endpoint = vmsig_endpoint_ref(ep);
        s->subscriber = strdup(bus_front_peer_label(f, m));
        s->key = s->subscriber ? sub_key(ep, s->subscriber) : NULL;
        r = s->key ? 0 : -ENOMEM;
        s->on_bus = sd_bus_message_get_sender(m) != NULL;
        if (r >= 0)
                r = vmsig_core_subscribe(f->core, &filter, 0, on_datum, s, &s->core_sub);
        if (r >= 0)
                r = hashmap_put(f->memctx_subs, s->key, s);
        if (r < 0) {
                vmsig_subscriber_free(s->core_sub);
                vmsig_endpoint_unref(s->endpoint);
                free(s->subscriber);
                free(s->key);
                free(s);
                return r;
        }
        *ret = s;
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

int bus_memctx_method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        vmsig_bus_front *f = be->front;
        const vmsig_memctx *datum;
        _cleanup_free_ char *key = NULL;
        _cleanup_close_ int ram_fd = -1;
        bus_memctx_sub *s;
        bus_peer *caller;
        int r;

        if (!vmsig_endpoint_is_attached(be->endpoint))
                return vmsig_bus_error_setf(error, -ENODEV, "Endpoint '%s' was detached.",
                                            vmsig_endpoint_get_name(be->endpoint));
        /* Once per subscription: the fd is what is granted. */
        r = bus_auth_check(f->auth, m, VMSIG_CAP_MEMCTX, be->endpoint, false, error);
        if (r <= 0)
                return bus_auth_handler_return(r);
        datum = vmsig_memctx_get(f->core, vmsig_endpoint_get_id(be->endpoint));
        if (datum && !vmsig_memctx_ram_intact(datum->ram_fd, datum->ram_size))
                return vmsig_bus_error_setf(error, -ENOMEDIUM,
                                            "The guest RAM file of '%s' is shorter than the guest's RAM: guest "
                                            "memory is unavailable.", vmsig_endpoint_get_name(be->endpoint));
        if (!datum || datum->invalidated)
                return vmsig_bus_error_setf(error, -EOPNOTSUPP, "Endpoint '%s' has no memory context yet.",
                                            vmsig_endpoint_get_name(be->endpoint));
        caller = bus_auth_caller(f->auth, m);
        key = caller ? sub_key(be->endpoint, bus_front_peer_label(f, m)) : NULL;
        if (!key)
                return -ENOMEM;
        /* Each subscriber gets an open file description of its own: a dup
         * shares the file offset and the status flags (O_APPEND, O_NONBLOCK,
         * O_DIRECT) with every other subscriber and with vmsigd itself. The
         * reopen reaches the same inode, read-only: a memfd keeps its seals,
         * a file its mode. Before anything is counted or subscribed: a
         * failure changes nothing. */
        ram_fd = fd_reopen(datum->ram_fd, O_RDONLY);
        if (ram_fd < 0)
                return vmsig_bus_error_setf(error, -ENOMEDIUM, "Cannot open the guest RAM of '%s' for this "
                                            "subscriber: %s", vmsig_endpoint_get_name(be->endpoint),
                                            strerror(-ram_fd));
        /* Subscribing again is harmless: the caller gets the datum again. */
        if (!hashmap_get(f->memctx_subs, key)) {
                r = bus_auth_quota_take(f->auth, caller, BUS_QUOTA_SUBSCRIPTIONS, error);
                if (r < 0)
                        return r;
                r = sub_new(f, m, be->endpoint, caller, &s);
                if (r < 0) {
                        bus_auth_quota_release(f->auth, caller->uid, BUS_QUOTA_SUBSCRIPTIONS);
                        return r;
                }
                bus_auth_audit_operation(caller, "subscribe-memctx", be->endpoint, 0, NULL);
        }
        return reply_datum(m, datum, ram_fd);
}

int bus_memctx_method_unsubscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        vmsig_bus_front *f = be->front;
        _cleanup_free_ char *key = sub_key(be->endpoint, bus_front_peer_label(f, m));
        bus_memctx_sub *s;

        if (!key)
                return -ENOMEM;
        s = hashmap_get(f->memctx_subs, key);
        if (!s)
                return vmsig_bus_error_setf(error, -ENOENT, "You are not subscribed to the memory context of '%s'.",
                                            vmsig_endpoint_get_name(be->endpoint));
        sub_free(s);
        return sd_bus_reply_method_return(m, NULL);
}

static void send_to(bus_memctx_sub *s, const char *path, const char *member, const vmsig_memctx *m) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *sig = NULL;
        int r;

        r = sd_bus_message_new_signal(s->front->bus, &sig, path, VMSIG_BUS_ENDPOINT_INTERFACE, member);
        if (r >= 0)
                r = m->invalidated ? sd_bus_message_append(sig, "t", m->epoch)
                                   : sd_bus_message_append(sig, "tt", m->epoch, m->dtb);
        /* Unicast: the DTB is the subscribers' business only. */
        if (r >= 0 && s->on_bus)
                r = sd_bus_message_set_destination(sig, s->subscriber);
        if (r >= 0)
                r = sd_bus_send(s->front->bus, sig, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot send %s to %s: %m", member, s->subscriber);
}

void bus_memctx_on_event(vmsig_bus_front *f, vmsig_endpoint *ep, const char *path, const vmsig_memctx *m) {
        bus_memctx_sub *s;

        HASHMAP_FOREACH(s, f->memctx_subs, st)
                if (s->endpoint == ep)
                        send_to(s, path, m->invalidated ? "MemctxInvalidated" : "MemctxChanged", m);
}

static bool subscribed_to(const void *value, const void *ep) {
        const bus_memctx_sub *s = value;
        return !ep || s->endpoint == ep;
}

void bus_memctx_endpoint_gone(vmsig_bus_front *f, vmsig_endpoint *ep) {
        bus_memctx_sub *s;

        while ((s = hashmap_find(f->memctx_subs, subscribed_to, ep)))
                sub_free(s);
}
