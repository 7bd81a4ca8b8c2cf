/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The settings of an address-space bootstrap (bootstrap.h), alone: a
 * backend's spec carries them without pulling in the bootstrap. */

#include <stdint.h>

#include "memctx.h"

typedef struct vmsig_bootstrap_config {
        uint64_t backoff_initial_usec; /* default 250 ms */
        uint64_t backoff_max_usec;     /* default 8 s: the longest wait, jitter included */
        uint64_t vcpu_interval_usec;   /* default 250 ms: the vCPU is looked at this often until ready */
        uint64_t revalidate_usec;      /* default 2 s: a published root is checked this often while watched */
        uint64_t scan_budget;          /* bytes per loop iteration */
        unsigned fail_first;           /* fail injection: the first N attempts fail */
        vmsig_guest_os guest_os;       /* pinned; UNKNOWN: detected */
} vmsig_bootstrap_config;

#define VMSIG_BOOTSTRAP_BACKOFF_INITIAL_USEC (250 * UINT64_C(1000))
#define VMSIG_BOOTSTRAP_BACKOFF_MAX_USEC (8 * UINT64_C(1000000))
#define VMSIG_BOOTSTRAP_VCPU_INTERVAL_USEC (250 * UINT64_C(1000))
#define VMSIG_BOOTSTRAP_REVALIDATE_USEC (2 * UINT64_C(1000000))
/* The wait after a failed attempt is at least this many times the CPU the
 * attempt took (under 0.5 % of a core), within backoff_max_usec. */
#define VMSIG_BOOTSTRAP_CPU_SHARE 200
