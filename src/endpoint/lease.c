/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "endpoint-internal.h"
#include "string-table.h"
#include "time-util.h"

static const char *const vmsig_lease_class_table[_VMSIG_LEASE_CLASS_MAX] = {
        [VMSIG_LEASE_INPUT] = "input",
        [VMSIG_LEASE_POWER] = "power",
        [VMSIG_LEASE_MEMWRITE] = "memory-write",
};

/* Lease ids are never reused while the daemon runs, so a stale lease
 * object can never match a newer lease of the same class. */
static uint64_t next_lease_id = 1;

DEFINE_STRING_TABLE_LOOKUP(vmsig_lease_class, vmsig_lease_class);

/* When a lease was acquired is wall-clock time, shown to people;
 * time-util.h's now_usec() is CLOCK_MONOTONIC. */
static uint64_t realtime_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static void publish(vmsig_endpoint *ep, vmsig_lease_class c, vmsig_lease_change change, const vmsig_lease_info *l,
                    const char *reason) {
        vmsig_lease_payload p = { .class = c, .change = change, .lease = *l };

        if (reason)
                strncpy(p.reason, reason, sizeof p.reason - 1);
        (void) vmsig_core_publish(vmsig_endpoint_get_core(ep), VMSIG_KIND_LEASE, vmsig_endpoint_get_id(ep),
                                  (uint32_t) c, &p, sizeof p);
}

int vmsig_endpoint_lease_acquire(vmsig_endpoint *ep, vmsig_lease_class c, const vmsig_lease_holder *holder,
                                 vmsig_lease_info *ret, vmsig_lease_info *ret_holder) {
        vmsig_lease_info *l;

        if ((unsigned) c >= _VMSIG_LEASE_CLASS_MAX || !holder || !holder->name ||
            strlen(holder->name) >= VMSIG_HOLDER_MAX)
                return -EINVAL;
        if (!vmsig_endpoint_is_attached(ep))
                return -ENODEV;
        l = &endpoint_leases(ep)[c];
        if (l->id != 0) {
                if (ret_holder)
                        *ret_holder = *l;
                return -EBUSY;
        }
        *l = (vmsig_lease_info) {
                .id = next_lease_id++,
                .uid = holder->uid,
                .pid = holder->pid,
                .acquired_at = realtime_usec(),
        };
        strcpy(l->holder, holder->name);
        /* A comm is at most 15 characters; a longer one is cut. */
        if (holder->command)
                snprintf(l->command, sizeof l->command, "%s", holder->command);
        publish(ep, c, VMSIG_LEASE_ACQUIRED, l, NULL);
        if (ret)
                *ret = *l;
        return 0;
}

/* Input still waiting for the VM was sent under the lease that ends: it
 * must not reach the guest under nobody's, or the next holder's, lease. */
static void drop_queued_input(vmsig_endpoint *ep, vmsig_lease_change how, const char *reason) {
        char msg[160];

        snprintf(msg, sizeof msg, "Input for '%s' was dropped before it reached the guest: the input lease was %s%s%s%s.",
                 vmsig_endpoint_get_name(ep), how == VMSIG_LEASE_RELEASED ? "released" : "revoked",
                 reason ? " (" : "", reason ?: "", reason ? ")" : "");
        vmsig_endpoint_cancel_input(ep, msg);
}

int vmsig_endpoint_lease_end(vmsig_endpoint *ep, vmsig_lease_class c, uint64_t id, vmsig_lease_change how,
                             const char *reason) {
        vmsig_lease_info *l, old;

        if ((unsigned) c >= _VMSIG_LEASE_CLASS_MAX || how == VMSIG_LEASE_ACQUIRED)
                return -EINVAL;
        l = &endpoint_leases(ep)[c];
        if (id == 0 || l->id != id)
                return -ESRCH;
        old = *l;
        *l = (vmsig_lease_info) {};
        if (c == VMSIG_LEASE_INPUT)
                drop_queued_input(ep, how, reason);
        publish(ep, c, how, &old, reason);
        return 0;
}

void vmsig_endpoint_lease_revoke_all(vmsig_endpoint *ep, const char *reason) {
        for (unsigned c = 0; c < _VMSIG_LEASE_CLASS_MAX; c++) {
                const vmsig_lease_info *l = &endpoint_leases(ep)[c];
                if (l->id != 0)
                        (void) vmsig_endpoint_lease_end(ep, (vmsig_lease_class) c, l->id, VMSIG_LEASE_REVOKED,
                                                        reason);
        }
}

const vmsig_lease_info *vmsig_endpoint_lease_get(vmsig_endpoint *ep, vmsig_lease_class c) {
        const vmsig_lease_info *l;

        if ((unsigned) c >= _VMSIG_LEASE_CLASS_MAX)
                return NULL;
        l = &endpoint_leases(ep)[c];
        return l->id != 0 ? l : NULL;
}
