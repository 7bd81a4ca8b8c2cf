/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The self-healing address-space bootstrap of one endpoint: finds the
 * System DTB in guest RAM (detect.h) and publishes it in memctx with a new
 * epoch. A guest that is still booting has nothing to find yet; rather than
 * giving up, the bootstrap retries on a one-shot timerfd (an adapter fd
 * registered with the core under its own cookie) with exponential backoff
 * and jitter, running the full EPROCESS scan only every Nth attempt and in
 * chunks, one per loop iteration. A guest reset starts it over.
 *
 * Its progress is a retained BOOTSTRAP event per endpoint.
 */

#include <stdbool.h>
#include <stdint.h>

#include "detect.h"
#include "memctx.h"

typedef enum vmsig_bootstrap_state {
        VMSIG_BOOTSTRAP_IDLE,      /* not running (disabled, or detached) */
        VMSIG_BOOTSTRAP_SEARCHING, /* an attempt is running */
        VMSIG_BOOTSTRAP_RETRYING,  /* waiting for the next attempt */
        VMSIG_BOOTSTRAP_READY,     /* found and published */
        VMSIG_BOOTSTRAP_ERROR,     /* the guest RAM cannot be read (its file shrank) */
        _VMSIG_BOOTSTRAP_STATE_MAX,
} vmsig_bootstrap_state;

const char *vmsig_bootstrap_state_to_string(vmsig_bootstrap_state s);

/* The BOOTSTRAP payload. */
typedef struct vmsig_bootstrap_payload {
        vmsig_bootstrap_state state;
        unsigned attempts; /* since the last (re)start */
        vmsig_detect_method method;
        uint64_t dtb;
} vmsig_bootstrap_payload;

typedef struct vmsig_bootstrap_config {
        uint64_t backoff_initial_usec; /* default 250 ms */
        uint64_t backoff_max_usec;     /* default 8 s */
        unsigned full_scan_every;      /* attempts; default 4 (the 1st, 5th, ...) */
        uint64_t scan_budget;          /* bytes per loop iteration */
        unsigned fail_first;           /* fail injection: the first N attempts fail */
} vmsig_bootstrap_config;

#define VMSIG_BOOTSTRAP_BACKOFF_INITIAL_USEC (250 * UINT64_C(1000))
#define VMSIG_BOOTSTRAP_BACKOFF_MAX_USEC (8 * UINT64_C(1000000))
#define VMSIG_BOOTSTRAP_FULL_SCAN_EVERY 4

typedef struct vmsig_bootstrap vmsig_bootstrap;

/* For the memctx adapter of ep, whose source it publishes to. Does not
 * start; config may be NULL for the defaults. */
int vmsig_bootstrap_new(vmsig_endpoint *ep, vmsig_memctx_source *source, const vmsig_bootstrap_config *config,
                        vmsig_bootstrap **ret);
/* Starts over from attempt 1 (at once, from the loop). */
int vmsig_bootstrap_start(vmsig_bootstrap *b);
vmsig_bootstrap *vmsig_bootstrap_free(vmsig_bootstrap *b);

vmsig_bootstrap_state vmsig_bootstrap_get_state(const vmsig_bootstrap *b);
unsigned vmsig_bootstrap_get_attempts(const vmsig_bootstrap *b);

/* The retained BOOTSTRAP payload of an endpoint, or NULL. */
const vmsig_bootstrap_payload *vmsig_bootstrap_get(vmsig_core *c, vmsig_id endpoint);
/* Publishes a state for an endpoint without a bootstrap (disabled: IDLE;
 * a root given by configuration: READY). */
int vmsig_bootstrap_publish_fixed(vmsig_endpoint *ep, vmsig_bootstrap_state state, uint64_t dtb);
