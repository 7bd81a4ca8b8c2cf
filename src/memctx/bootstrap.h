/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The address-space bootstrap of one endpoint: finds the root of the
 * guest kernel's page tables and publishes it in memctx with a new epoch,
 * but only a root that is live and confirmed.
 *
 * RAM is no witness of what runs. A reset keeps it: the previous boot's
 * System EPROCESS, its page tables and its banner stay intact while the
 * firmware runs and while the next kernel builds its tables elsewhere. So
 * a root is published only when two independent witnesses agree:
 *
 *  Windows  the System EPROCESS (found by a chunked scan of all of RAM,
 *           with its list neighbours pointing back and a DTB that passes
 *           the PML4 check, self-reference included: detect.h) and the
 *           vCPU, whose CR3 must run on the same kernel half. A copy left
 *           by an earlier boot fails the second and the scan goes on past
 *           it. Method "eprocess+self-ref+cr3".
 *  Linux    the vCPU's CR3 (the user root of page-table isolation masked
 *           to the kernel one), confirmed by a walk that finds the
 *           "Linux version " banner mapped in its kernel half
 *           (detect-linux.h). Method "cr3+banner".
 *
 * The vCPU comes from the host seam (vmsig_endpoint_read_vcpu()). A vCPU
 * with paging off, or on tables that map nothing in the kernel half (an
 * identity map), is in the firmware, a boot loader or a kernel's
 * decompressor: the state is then "booting" and nothing is looked for,
 * whatever RAM holds. It is looked at
 * every vcpu_interval_usec until a root is published, which costs a
 * hypervisor round trip; the first look with paging on after paging off,
 * and a CR3 not tried before, start an attempt at once, so a booting
 * kernel is found within a scan of its RAM. Otherwise attempts follow an
 * exponential backoff from backoff_initial_usec to backoff_max_usec, jitter
 * included, so many VMs do not scan in lockstep.
 *
 * Where the registers cannot be read (a host seam without read_vcpu), the
 * second witness for Windows is liveness: the System EPROCESS is seen by
 * two attempts at the same place with different contents, as a running
 * kernel's is and a copy left in RAM by an earlier boot is not. Method
 * "eprocess+self-ref+live". Linux cannot be bootstrapped without CR3.
 *
 * A published root stays under watch: while someone wants the endpoint's
 * memctx or holds its memory-write lease, every revalidate_usec the
 * structures that confirmed it are checked again in RAM (EPROCESS and
 * self-reference, or the banner) and the vCPU is asked again (paging on,
 * the same kernel half). Nobody watching, no wakeups. Before every write
 * through a virtual address the RAM part is checked too
 * (vmsig_bootstrap_verify()). A root that fails is withdrawn at once (a new
 * epoch without a root: MemctxInvalidated) and the bootstrap starts over.
 *
 * Progress is a retained BOOTSTRAP event per endpoint. Every timer is one
 * timerfd registered with the core under its own cookie, and every scan
 * goes in steps of scan_budget bytes, one per loop iteration.
 */

#include <stdbool.h>
#include <stdint.h>

#include "bootstrap-config.h"
#include "detect.h"
#include "memctx.h"

typedef enum vmsig_bootstrap_state {
        VMSIG_BOOTSTRAP_IDLE,      /* not running (disabled, or detached) */
        VMSIG_BOOTSTRAP_SEARCHING, /* an attempt is running */
        VMSIG_BOOTSTRAP_RETRYING,  /* waiting for the next attempt */
        VMSIG_BOOTSTRAP_READY,     /* found, confirmed and published */
        VMSIG_BOOTSTRAP_ERROR,     /* the guest RAM cannot be read (its file shrank) */
        VMSIG_BOOTSTRAP_BOOTING,   /* the vCPU runs no kernel: firmware, boot loader, decompressor */
        _VMSIG_BOOTSTRAP_STATE_MAX,
} vmsig_bootstrap_state;

const char *vmsig_bootstrap_state_to_string(vmsig_bootstrap_state s);

#define VMSIG_BOOTSTRAP_RELEASE_MAX 64

/* The BOOTSTRAP payload. */
typedef struct vmsig_bootstrap_payload {
        vmsig_bootstrap_state state;
        unsigned attempts; /* since the last (re)start */
        uint64_t dtb;      /* READY only */
        uint32_t witnesses;
        /* READY: the OS found; otherwise the pinned one, or unknown. */
        vmsig_guest_os os;
        /* READY: Linux's release ("6.1.0-28-cloud-amd64"), or for Windows
         * the first build of the EPROCESS layout found ("19041"). */
        char release[VMSIG_BOOTSTRAP_RELEASE_MAX + 1];
} vmsig_bootstrap_payload;

typedef struct vmsig_bootstrap vmsig_bootstrap;

/* The wait before the next attempt after step failed ones (1, 2, ...):
 * backoff_initial_usec doubled per step, with rnd (0..1000 of it count)
 * spreading it over -25%..+25%, and never more than backoff_max_usec. */
uint64_t vmsig_bootstrap_backoff_usec(const vmsig_bootstrap_config *c, unsigned step, uint32_t rnd);

/* For the memctx adapter of ep, whose source it publishes to. Does not
 * start; config may be NULL for the defaults. */
int vmsig_bootstrap_new(vmsig_endpoint *ep, vmsig_memctx_source *source, const vmsig_bootstrap_config *config,
                        vmsig_bootstrap **ret);
/* Starts over from attempt 1 (at once, from the loop): a reset guest, a
 * new QEMU. Whatever was in flight is forgotten. */
int vmsig_bootstrap_start(vmsig_bootstrap *b);
vmsig_bootstrap *vmsig_bootstrap_free(vmsig_bootstrap *b);

/* The search for the root starts over (a new guest, a new QEMU): *b from
 * attempt 1, created first for source from config if there is none yet and
 * a config is given; with neither, the bootstrap is published as idle. */
int vmsig_bootstrap_restart(vmsig_endpoint *ep, vmsig_memctx_source *source, const vmsig_bootstrap_config *config,
                            vmsig_bootstrap **b);
/* A guest reset, for a memctx adapter, which every backend treats alike:
 * RAM no longer witnesses the root, so the current epoch ends (a new one
 * without a root) and the search starts over (vmsig_bootstrap_restart()). */
int vmsig_bootstrap_guest_reset(vmsig_endpoint *ep, vmsig_memctx_source *source,
                                const vmsig_bootstrap_config *config, vmsig_bootstrap **b);

/* For a write through a virtual address, now: 1 if a root is published
 * and the RAM still holds what confirmed it; else 0, and a root that
 * failed is withdrawn first (a new epoch without one). */
int vmsig_bootstrap_verify(vmsig_bootstrap *b);

vmsig_bootstrap_state vmsig_bootstrap_get_state(const vmsig_bootstrap *b);
unsigned vmsig_bootstrap_get_attempts(const vmsig_bootstrap *b);

/* The retained BOOTSTRAP payload of an endpoint, or NULL. */
const vmsig_bootstrap_payload *vmsig_bootstrap_get(vmsig_core *c, vmsig_id endpoint);
/* Publishes a state for an endpoint without a bootstrap (disabled: IDLE;
 * a root given by configuration: READY, with the config witness). */
int vmsig_bootstrap_publish_fixed(vmsig_endpoint *ep, vmsig_bootstrap_state state, uint64_t dtb);
