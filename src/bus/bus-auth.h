/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Authorization of bus calls: each method that acts needs one capability,
 * each capability is one polkit action; reading (properties,
 * GetManagedObjects, ListEndpoints, GetEndpoint, GetEndpointByVmid) is
 * public and checks nothing. The order of a check is the per-uid
 * allow-list, then root (always allowed, also without polkit), then a grant
 * this peer already holds, then an asynchronous polkit query. Every
 * decision leaves an audit record.
 *
 * The convention of checks. Every check that may have to wait for an
 * answer (polkit, the bus driver's credentials of a peer) returns, as
 * systemd's bus-polkit.c does:
 *   >0: allowed, or done: go on;
 *    0: pending: the handler returns 1 (bus_auth_handler_return()) and is
 *       called again with the same message once the answer is in; or the
 *       caller left the bus meanwhile, and that ends the call unanswered;
 *   <0: refused, or failed: error is set, the handler returns it.
 * bus_auth_check(), bus_auth_audit_refusal(), bus_front_require_lease()
 * and bus_peers_get() follow it. */

#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-admission.h"
#include "bus-audit.h"
#include "bus-peers.h"
#include "vmsig-endpoint.h"

typedef enum vmsig_cap {
        VMSIG_CAP_MEMCTX,
        VMSIG_CAP_LEASE_INPUT,
        VMSIG_CAP_LEASE_POWER,
        VMSIG_CAP_LEASE_MEMWRITE,
        VMSIG_CAP_LIFECYCLE,
        VMSIG_CAP_ADMIN,
        VMSIG_CAP_FRAMES,
        _VMSIG_CAP_MAX,
} vmsig_cap;

const char *vmsig_cap_action(vmsig_cap cap);
/* The "class" polkit detail: the lease class or the capability's name. */
const char *vmsig_cap_class(vmsig_cap cap);

typedef struct bus_auth bus_auth;

/* polkit is reached over system_bus. */
int bus_auth_new(sd_event *event, sd_bus *system_bus, bus_auth **ret);
bus_auth *bus_auth_free(bus_auth *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(bus_auth *, bus_auth_free);
int bus_auth_configure(bus_auth *a, const bus_admission_config *c);
bus_admission *bus_auth_admission(bus_auth *a);
bus_peers *bus_auth_peers(bus_auth *a);

/* Authorizes m for cap on ep (NULL for daemon-wide capabilities), in the
 * convention of checks: 1 granted, 0 pending, <0 denied. With remember
 * (only with an ep), a grant is kept for that endpoint while the peer is
 * on the bus (for capabilities used over and over inside a lease), so
 * later calls cost no polkit round trip. Nothing daemon-wide is kept:
 * org.vmsig.admin is asked every time, and reading is public. */
int bus_auth_check(bus_auth *a, sd_bus_message *m, vmsig_cap cap, vmsig_endpoint *ep, bool remember,
                   sd_bus_error *error);

/* What a method handler returns when a check did not allow (r <= 0): 1
 * (handled, the reply comes later) while pending, else the error. */
static inline int bus_auth_handler_return(int r) {
        return r == 0 ? 1 : r;
}

/* Records that m was refused on cap for reason (a token such as
 * "not-lease-holder"), as a denied decision, in the convention of checks:
 * 1 recorded, 0 pending (the caller's credentials), <0 error set. */
int bus_auth_audit_refusal(bus_auth *a, sd_bus_message *m, vmsig_cap cap, vmsig_endpoint *ep, const char *reason,
                           sd_bus_error *error);

/* The caller of m, once bus_auth_check() returned 1 for it. */
bus_peer *bus_auth_caller(bus_auth *a, sd_bus_message *m);

/* Counts one unit of k against the caller's uid: -EDQUOT with
 * org.vmsig.Error.QuotaExceeded when it holds its limit already. */
int bus_auth_quota_take(bus_auth *a, const bus_peer *peer, bus_quota_kind k, sd_bus_error *error);
void bus_auth_quota_release(bus_auth *a, uid_t uid, bus_quota_kind k);

/* One audit record for a destructive operation done for peer. range may be
 * NULL; for MEMWRITE it is {address, length}. */
void bus_auth_audit_operation(const bus_peer *peer, const char *operation, vmsig_endpoint *ep, int result,
                              const uint64_t range[2]);
