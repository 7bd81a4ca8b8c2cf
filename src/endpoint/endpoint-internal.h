/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Between the parts of the endpoint module; not for adapters or fronts. */

#include <string.h>

#include "vmsig-endpoint.h"


/* The endpoint's lease table, _VMSIG_LEASE_CLASS_MAX entries. */
vmsig_lease_info *endpoint_leases(vmsig_endpoint *ep);
