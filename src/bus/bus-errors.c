/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "bus-errors.h"

/* EmptyWrite and NoAddressSpace are only ever named: no errno of a lower
 * layer means either, so none is paired with them, and an errno from the
 * host never comes out as one of them. */
const sd_bus_error_map vmsig_bus_errors[] = {
        SD_BUS_ERROR_MAP(VMSIG_ERROR_NO_SUCH_ENDPOINT, ENXIO),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_ENDPOINT_DETACHED, ENODEV),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_INVALID_ARGUMENT, EINVAL),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_INVALID_STATE, EBADFD),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_NOT_SUPPORTED, EOPNOTSUPP),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_HOST, EIO),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_LIMIT_EXCEEDED, ENOSPC),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_QUOTA_EXCEEDED, EDQUOT),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_INVALID_CONFIGURATION, EBADMSG),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_LEASE_BUSY, EBUSY),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_NOT_LEASE_HOLDER, EPERM),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_LEASE_REVOKED, ECANCELED),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_NOT_SUBSCRIBED, ENOENT),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_WRITE_TOO_LONG, EMSGSIZE),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_OUT_OF_RANGE, ERANGE),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_UNMAPPED_ADDRESS, EFAULT),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_STALE_EPOCH, ESTALE),
        SD_BUS_ERROR_MAP(VMSIG_ERROR_RAM_UNAVAILABLE, ENOMEDIUM),
        SD_BUS_ERROR_MAP_END,
};

int vmsig_bus_errors_register(void) {
        return sd_bus_error_add_map(vmsig_bus_errors);
}

static const char *error_name(int error) {
        for (const sd_bus_error_map *m = vmsig_bus_errors; m->name; m++)
                if (m->code == abs(error))
                        return m->name;
        return NULL;
}

int vmsig_bus_error_set_errnof(sd_bus_error *e, int error, const char *fmt, ...) {
        const char *name = error_name(error);
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (name)
                return sd_bus_error_set(e, name, msg);
        return sd_bus_error_set_errnof(e, error, "%s", msg);
}
