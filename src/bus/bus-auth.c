/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-auth.h"
#include "bus-errors.h"
#include "bus-polkit.h"
#include "log.h"
#include "macro.h"

struct bus_auth {
        bus_peers *peers;
        bus_polkit *polkit;
        bus_admission *admission;
};

static const struct {
        const char *action;
        const char *class;
} caps[_VMSIG_CAP_MAX] = {
        [VMSIG_CAP_MEMCTX] = { "org.vmsig.memctx", "memctx" },
        [VMSIG_CAP_LEASE_INPUT] = { "org.vmsig.lease-input", "input" },
        [VMSIG_CAP_LEASE_POWER] = { "org.vmsig.lease-power", "power" },
        [VMSIG_CAP_LEASE_MEMWRITE] = { "org.vmsig.lease-memwrite", "memory-write" },
        [VMSIG_CAP_LIFECYCLE] = { "org.vmsig.lifecycle", "lifecycle" },
        [VMSIG_CAP_ADMIN] = { "org.vmsig.admin", "admin" },
        [VMSIG_CAP_FRAMES] = { "org.vmsig.frames", "frames" },
};

const char *vmsig_cap_action(vmsig_cap cap) {
        return (unsigned) cap < _VMSIG_CAP_MAX ? caps[cap].action : NULL;
}

const char *vmsig_cap_class(vmsig_cap cap) {
        return (unsigned) cap < _VMSIG_CAP_MAX ? caps[cap].class : NULL;
}

/* The unit of the pending-call quota that ask_polkit() took for a query. */
static void on_polkit_query_end(uid_t uid, void *userdata) {
        bus_auth *a = userdata;

        bus_admission_release(a->admission, uid, BUS_QUOTA_PENDING_CALLS);
}

static void on_peer_gone(const char *name, void *userdata) {
        bus_auth *a = userdata;

        bus_polkit_sender_gone(a->polkit, name);
}

int bus_auth_new(sd_event *event, sd_bus *system_bus, bus_auth **ret) {
        _cleanup_(bus_auth_freep) bus_auth *a = calloc(1, sizeof *a);
        int r;

        assert(event);
        assert(system_bus);
        assert(ret);

        if (!a)
                return -ENOMEM;
        r = bus_peers_new(event, system_bus, &a->peers);
        if (r >= 0)
                r = bus_polkit_new(event, system_bus, &a->polkit);
        if (r >= 0)
                r = bus_admission_new(&a->admission);
        if (r >= 0)
                r = bus_peers_add_gone_hook(a->peers, on_peer_gone, a);
        if (r < 0)
                return r;
        bus_polkit_set_query_end(a->polkit, on_polkit_query_end, a);
        *ret = TAKE_PTR(a);
        return 0;
}

bus_auth *bus_auth_free(bus_auth *a) {
        if (!a)
                return NULL;
        if (a->peers)
                bus_peers_remove_gone_hook(a->peers, on_peer_gone, a);
        /* polkit queries release their quota into the admission table. */
        a->polkit = bus_polkit_free(a->polkit);
        a->admission = bus_admission_free(a->admission);
        a->peers = bus_peers_free(a->peers);
        return mfree(a);
}

int bus_auth_configure(bus_auth *a, const bus_admission_config *c) {
        return bus_admission_configure(a->admission, c);
}

bus_admission *bus_auth_admission(bus_auth *a) {
        return a->admission;
}

bus_peers *bus_auth_peers(bus_auth *a) {
        return a->peers;
}

static void audit_decision(const bus_peer *peer, vmsig_cap cap, vmsig_endpoint *ep, bool granted,
                           const char *reason) {
        bus_audit_log(&(bus_audit_record) {
                .uid = peer->uid,
                .pid = peer->pid,
                .sender = peer->name,
                .action = vmsig_cap_action(cap),
                .endpoint = ep ? vmsig_endpoint_get_name(ep) : NULL,
                .result = granted ? "granted" : "denied",
                .reason = reason,
        });
}

static int deny(const bus_peer *peer, vmsig_cap cap, vmsig_endpoint *ep, const char *reason, sd_bus_error *error,
                int r) {
        audit_decision(peer, cap, ep, false, reason);
        return r;
}

static bool grant_kept(const bus_peer *peer, vmsig_cap cap, vmsig_endpoint *ep) {
        uint64_t bit = UINT64_C(1) << cap, id;

        if (!ep)
                return false;
        id = vmsig_endpoint_get_id(ep);
        for (size_t i = 0; i < ELEMENTSOF(peer->granted_on); i++)
                if (peer->granted_on[i].endpoint == id)
                        return peer->granted_on[i].caps & bit;
        return false;
}

/* A grant on an endpoint is kept for that endpoint only: the polkit check
 * had its name in the details, and rules may differ per endpoint. */
static void grant_keep(bus_peer *peer, vmsig_cap cap, vmsig_endpoint *ep) {
        uint64_t bit = UINT64_C(1) << cap, id;
        size_t n = ELEMENTSOF(peer->granted_on), i;

        assert(ep);
        id = vmsig_endpoint_get_id(ep);
        for (i = 0; i < n && peer->granted_on[i].endpoint != 0; i++)
                if (peer->granted_on[i].endpoint == id) {
                        peer->granted_on[i].caps |= bit;
                        return;
                }
        /* Full: the oldest is forgotten, and asked for again when used. */
        if (i == n) {
                memmove(peer->granted_on, peer->granted_on + 1, (n - 1) * sizeof peer->granted_on[0]);
                i = n - 1;
        }
        peer->granted_on[i].endpoint = id;
        peer->granted_on[i].caps = bit;
}

static int grant(bus_peer *peer, vmsig_cap cap, vmsig_endpoint *ep, bool remember, const char *reason) {
        if (remember)
                grant_keep(peer, cap, ep);
        audit_decision(peer, cap, ep, true, reason);
        return 1;
}

static const char *verdict_reason(bus_polkit_verdict v, const sd_bus_error *e) {
        if (v == BUS_POLKIT_UNAVAILABLE)
                return "no-polkit";
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
                return "interactive-required";
        return "polkit";
}

static int ask_polkit(bus_auth *a, sd_bus_message *m, bus_peer *peer, vmsig_cap cap, vmsig_endpoint *ep,
                      bool remember, sd_bus_error *error) {
        char vmid[16] = "";
        const char *endpoint = ep ? vmsig_endpoint_get_name(ep) : "";
        bus_polkit_verdict v;

        if (ep)
                snprintf(vmid, sizeof vmid, "%u", vmsig_endpoint_get_vmid(ep));
        const char *details[] = {
                "endpoint", endpoint, "vmid", vmid, "class", vmsig_cap_class(cap), NULL,
        };
        int r;

        /* Each query in flight is a pending call of the requester: one unit
         * is taken when it starts, and the query gives it back when it
         * ends (on_polkit_query_end()). When the call runs again with the
         * answer, the unit is the query's still, and nothing is taken or
         * given back here. */
        if (!bus_polkit_has_query(a->polkit, m, vmsig_cap_action(cap))) {
                r = bus_auth_quota_take(a, peer, BUS_QUOTA_PENDING_CALLS, error);
                if (r < 0)
                        return deny(peer, cap, ep, "quota", error, r);
        }

        v = bus_polkit_verify(a->polkit, m, peer->uid, vmsig_cap_action(cap), details, error);
        switch (v) {
        case BUS_POLKIT_PENDING:
                return 0;
        case BUS_POLKIT_GRANTED:
                return grant(peer, cap, ep, remember, "polkit");
        default:
                return deny(peer, cap, ep, verdict_reason(v, error), error, -EACCES);
        }
}

int bus_auth_check(bus_auth *a, sd_bus_message *m, vmsig_cap cap, vmsig_endpoint *ep, bool remember,
                   sd_bus_error *error) {
        bus_peer *peer;
        int r;

        /* Grants are kept per endpoint only: nothing daemon-wide is held. */
        assert(!remember || ep);
        r = bus_peers_get(a->peers, m, &peer, error);
        if (r <= 0)
                return r;
        if (!bus_admission_allowed(a->admission, peer->uid, peer->gids, peer->n_gids)) {
                sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                  "Access denied: uid %u is not on vmsigd's allow-list.", (unsigned) peer->uid);
                return deny(peer, cap, ep, "allow-list", error, -EACCES);
        }
        /* Held grants (lifecycle on an endpoint, a lease class's calls on
         * it) are not checked or audited again. */
        if (grant_kept(peer, cap, ep))
                return 1;
        /* Root may do anything, with or without polkit, as with systemd's
         * daemons; that is also the only identity on the private socket. */
        if (peer->uid == 0)
                return grant(peer, cap, ep, remember, "root");
        if (!sd_bus_message_get_sender(m)) {
                sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Access denied: the private socket is for root.");
                return deny(peer, cap, ep, "p2p-not-root", error, -EACCES);
        }
        return ask_polkit(a, m, peer, cap, ep, remember, error);
}

int bus_auth_audit_refusal(bus_auth *a, sd_bus_message *m, vmsig_cap cap, vmsig_endpoint *ep, const char *reason,
                           sd_bus_error *error) {
        bus_peer *peer;
        int r = bus_peers_get(a->peers, m, &peer, error);

        if (r <= 0)
                return r;
        audit_decision(peer, cap, ep, false, reason);
        return 1;
}

bus_peer *bus_auth_caller(bus_auth *a, sd_bus_message *m) {
        bus_peer *peer = NULL;

        return bus_peers_get(a->peers, m, &peer, NULL) > 0 ? peer : NULL;
}

int bus_auth_quota_take(bus_auth *a, const bus_peer *peer, bus_quota_kind k, sd_bus_error *error) {
        int r = bus_admission_take(a->admission, peer->uid, k);

        if (r == -EDQUOT)
                return sd_bus_error_setf(error, VMSIG_ERROR_QUOTA_EXCEEDED,
                                         "Quota exceeded: uid %u already holds %u %s.",
                                         (unsigned) peer->uid, bus_admission_limit(a->admission, k),
                                         bus_quota_kind_to_string(k));
        if (r < 0)
                return sd_bus_error_set_errno(error, r);
        return 0;
}

void bus_auth_quota_release(bus_auth *a, uid_t uid, bus_quota_kind k) {
        bus_admission_release(a->admission, uid, k);
}

void bus_auth_audit_operation(const bus_peer *peer, const char *operation, vmsig_endpoint *ep, int result,
                              const uint64_t range[2]) {
        bus_audit_log(&(bus_audit_record) {
                .uid = peer->uid,
                .pid = peer->pid,
                .sender = peer->name,
                .action = operation,
                .endpoint = ep ? vmsig_endpoint_get_name(ep) : NULL,
                .result = result >= 0 ? "ok" : "failed",
                .reason = result >= 0 ? NULL : strerrorname_np(-result),
                .has_range = range != NULL,
                .address = range ? range[0] : 0,
                .length = range ? range[1] : 0,
        });
}
