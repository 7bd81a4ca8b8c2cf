/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-client.h"
#include "bus-errors.h"
#include "bus-front-internal.h"
#include "log.h"

int bus_client_new(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep, bus_quota_kind quota,
                   sd_bus_error *error, bus_client **ret) {
        _cleanup_(bus_client_freep) bus_client *c = NULL;
        bus_peer *caller;
        int r;

        assert(f);
        assert(m);
        assert(ep);
        assert(ret);

        caller = bus_auth_caller(f->auth, m);
        if (!caller)
                return -ESRCH;
        r = bus_auth_quota_take(f->auth, caller, quota, error);
        if (r < 0)
                return r;
        c = calloc(1, sizeof *c);
        if (!c) {
                bus_auth_quota_release(f->auth, caller->uid, quota);
                return -ENOMEM;
        }
        *c = (bus_client) {
                .front = f,
                .endpoint = vmsig_endpoint_ref(ep),
                .label = strdup(bus_front_peer_label(f, m)),
                .peer = { .name = strdup(caller->name), .uid = caller->uid, .pid = caller->pid },
                .key = bus_client_key(f, m, ep),
                .on_bus = sd_bus_message_get_sender(m) != NULL,
                .quota = quota,
        };
        if (!c->label || !c->peer.name || !c->key)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

bus_client *bus_client_free(bus_client *c) {
        if (!c)
                return NULL;
        bus_auth_quota_release(c->front->auth, c->peer.uid, c->quota);
        vmsig_endpoint_unref(c->endpoint);
        free(c->peer.name);
        free(c->label);
        free(c->key);
        return mfree(c);
}

bool bus_client_is_gone(const bus_client *c, const char *name) {
        assert(c);
        assert(name);

        return c->on_bus && strcmp(c->label, name) == 0;
}

bool bus_client_holds_on(const bus_client *c, const vmsig_endpoint *ep) {
        assert(c);

        return !ep || c->endpoint == ep;
}

char *bus_client_key(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep) {
        char *k = NULL;

        assert(f);
        assert(m);
        assert(ep);

        return asprintf(&k, "%s\n%s", vmsig_endpoint_get_name(ep), bus_front_peer_label(f, m)) < 0 ? NULL : k;
}

void *bus_client_lookup(Hashmap *subs, vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep) {
        _cleanup_free_ char *key = bus_client_key(f, m, ep);

        return key ? hashmap_get(subs, key) : NULL;
}

int bus_client_not_subscribed(sd_bus_error *error, const char *what, vmsig_endpoint *ep) {
        return sd_bus_error_setf(error, VMSIG_ERROR_NOT_SUBSCRIBED, "You are not subscribed to the %s of '%s'.", what,
                                 vmsig_endpoint_get_name(ep));
}

int bus_client_subscribe(bus_client *c, Hashmap *subs, uint32_t kind, vmsig_deliver_fn fn, void *userdata,
                         const char *operation, vmsig_subscriber **ret) {
        vmsig_filter filter = { .kinds = VMSIG_KIND_MASK(kind), .endpoint = vmsig_endpoint_get_id(c->endpoint) };
        int r;

        assert(c);
        assert(subs);
        assert(fn);
        assert(ret);

        r = vmsig_core_subscribe(c->front->core, &filter, 0, fn, userdata, ret);
        if (r >= 0)
                r = hashmap_put(subs, c->key, userdata);
        if (r < 0)
                return r;
        bus_auth_audit_operation(&c->peer, operation, c->endpoint, 0, NULL);
        return 0;
}

void bus_client_signal(const bus_client *c, const char *path, const char *interface, const char *member,
                       const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *sig = NULL;
        va_list ap;
        int r;

        assert(c);
        assert(path);
        assert(member);

        r = sd_bus_message_new_signal(c->front->bus, &sig, path, interface, member);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(sig, types, ap);
                va_end(ap);
        }
        if (r >= 0 && c->on_bus)
                r = sd_bus_message_set_destination(sig, c->label);
        if (r >= 0)
                r = sd_bus_send(c->front->bus, sig, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot send %s to %s: %m", member, c->label);
}
