/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "macro.h"

/* Every error vmsigd returns on the bus. An error is named where it
 * happens, for what happened there:
 *
 *         return sd_bus_error_setf(error, VMSIG_ERROR_NO_SUCH_ENDPOINT, "No endpoint named '%s'.", name);
 *
 * and never chosen from whichever -errno a lower layer returned, except
 * where that -errno is the whole story: the result of a host operation,
 * or the endpoint refusing one (vmsig_bus_error_set_errnof()). Most names
 * are paired with one errno in vmsig_bus_errors, so that
 * sd_bus_error_setf() returns it and sd_bus_error_get_errno() (audit
 * records) reads it back. */
#define VMSIG_ERROR_NO_SUCH_ENDPOINT "org.vmsig.Error.NoSuchEndpoint"
#define VMSIG_ERROR_ENDPOINT_DETACHED "org.vmsig.Error.EndpointDetached"
#define VMSIG_ERROR_INVALID_ARGUMENT "org.vmsig.Error.InvalidArgument"
#define VMSIG_ERROR_INVALID_STATE "org.vmsig.Error.InvalidState"
#define VMSIG_ERROR_NOT_SUPPORTED "org.vmsig.Error.NotSupported"
#define VMSIG_ERROR_HOST "org.vmsig.Error.Host"
#define VMSIG_ERROR_LIMIT_EXCEEDED "org.vmsig.Error.LimitExceeded"
#define VMSIG_ERROR_QUOTA_EXCEEDED "org.vmsig.Error.QuotaExceeded"
#define VMSIG_ERROR_INVALID_CONFIGURATION "org.vmsig.Error.InvalidConfiguration"
#define VMSIG_ERROR_LEASE_BUSY "org.vmsig.Error.LeaseBusy"
#define VMSIG_ERROR_NOT_LEASE_HOLDER "org.vmsig.Error.NotLeaseHolder"
#define VMSIG_ERROR_LEASE_REVOKED "org.vmsig.Error.LeaseRevoked"
#define VMSIG_ERROR_NOT_SUBSCRIBED "org.vmsig.Error.NotSubscribed"
#define VMSIG_ERROR_EMPTY_WRITE "org.vmsig.Error.EmptyWrite"
#define VMSIG_ERROR_WRITE_TOO_LONG "org.vmsig.Error.WriteTooLong"
#define VMSIG_ERROR_OUT_OF_RANGE "org.vmsig.Error.OutOfRange"
#define VMSIG_ERROR_UNMAPPED_ADDRESS "org.vmsig.Error.UnmappedAddress"
#define VMSIG_ERROR_NO_ADDRESS_SPACE "org.vmsig.Error.NoAddressSpace"
#define VMSIG_ERROR_STALE_EPOCH "org.vmsig.Error.StaleEpoch"
#define VMSIG_ERROR_RAM_UNAVAILABLE "org.vmsig.Error.RamUnavailable"

extern const sd_bus_error_map vmsig_bus_errors[];

/* Registers the map with sd-bus (name -> errno for sd_bus_error_get_errno). */
int vmsig_bus_errors_register(void);
/* Sets e from a lower layer's -errno (see above): our name when the errno
 * has one, else sd-bus's. Returns error. */
int vmsig_bus_error_set_errnof(sd_bus_error *e, int error, const char *fmt, ...) _printf_(3, 4);
