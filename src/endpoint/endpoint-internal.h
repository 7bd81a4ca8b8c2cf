/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Between the parts of the endpoint module; not for adapters or fronts. */

#include <string.h>

#include "vmsig-endpoint.h"

/* The names of an enum's values, in a table of n: the name of i, or NULL
 * out of range; the value named s, or n when none is. */
static inline const char *name_table_to_string(const char *const *table, unsigned n, unsigned i) {
        return i < n ? table[i] : NULL;
}

static inline unsigned name_table_from_string(const char *const *table, unsigned n, const char *s) {
        for (unsigned i = 0; s && i < n; i++)
                if (strcmp(s, table[i]) == 0)
                        return i;
        return n;
}

/* The endpoint's lease table, _VMSIG_LEASE_CLASS_MAX entries. */
vmsig_lease_info *endpoint_leases(vmsig_endpoint *ep);
