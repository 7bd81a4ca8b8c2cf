/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Leases taken with Endpoint.AcquireLease(): held as long as their fd is
 * open, given back with Lease.Release(). */

#include <stdbool.h>
#include <systemd/sd-bus.h>

typedef struct ctl_lease ctl_lease;

/* Takes the class lease of the endpoint name (at endpoint_path); --force
 * takes it from its holder. Failures, such as LeaseBusy naming the
 * holder, are printed. */
int ctl_lease_acquire(sd_bus *bus, const char *name, const char *endpoint_path, const char *class, ctl_lease **ret);
/* Holds the lease until SIGINT or SIGTERM (returns 0), or until it ends
 * otherwise: revoked, or vmsigd gone (says so, returns <0). Once Ctrl-C
 * is caught it says so on stderr, and print_path prints the lease object
 * on stdout: who waits for either may then send the signal. */
int ctl_lease_hold(ctl_lease *l, bool print_path);
/* Gives the lease back (if it is still ours) and frees l. */
ctl_lease *ctl_lease_release(ctl_lease *l);

static inline void ctl_lease_releasep(ctl_lease **l) {
        ctl_lease_release(*l);
}
