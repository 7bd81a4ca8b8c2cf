/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The stub host backend: a simulated VM with memfd RAM, a lifecycle state
 * machine, an input sink that records what was injected and a display. It
 * behaves like a real backend: every request completes later, from the
 * loop, through an eventfd registered with the core, and invalid
 * transitions fail.
 *
 * The display shows a test pattern that is a function of the guest state,
 * the number of resets and a clock that ticks once per capture while the
 * guest runs: a running VM shows a new frame on every capture, a paused one
 * the same frame again, a shut-off one a dark pattern. It is drawn only
 * when captured, so an idle stub never wakes up for it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bootstrap-config.h"
#include "vmsig-endpoint.h"

typedef struct vmsig_stub vmsig_stub;

typedef struct vmsig_stub_spec {
        const char *name;
        sd_id128_t uuid; /* SD_ID128_NULL: a random one */
        uint64_t ram_size;
        vmsig_state initial_state;
        uint64_t latency_usec; /* how long each request takes; 0: next iteration */
        uint64_t dtb; /* the address-space root to report, as if bootstrapped; 0: none */
        /* Look for the root in the RAM, as with a real guest (a test or a
         * tool writes the guest's structures into it); off by default,
         * since a simulated VM has no guest OS to find. */
        bool bootstrap;
        vmsig_bootstrap_config bootstrap_config; /* fail_first: fail injection */
        /* The display, VMSIG_STUB_DISPLAY_MIN..MAX pixels a side; 0: 640
         * wide, 480 high. */
        uint32_t display_width, display_height;
        /* A host that cannot read vCPU registers: read_vcpu fails with
         * -EOPNOTSUPP. */
        bool no_vcpu_registers;
} vmsig_stub_spec;

/*
 * The simulated vCPU runs the same tiny guest program the tests boot in
 * QEMU (tests/guest/longmode.S): after a start or a reset it is in the
 * firmware, paging off, for VMSIG_STUB_FIRMWARE_USEC; then it waits, still
 * with paging off, until the qword at VMSIG_STUB_MAILBOX_MAGIC_GPA holds
 * VMSIG_STUB_MAILBOX_MAGIC, and then runs in 4-level long mode with the
 * CR3 it finds at VMSIG_STUB_MAILBOX_CR3_GPA, until the next reset. A
 * guest image "boots" by writing its tables, then the CR3, then the magic.
 * A stub with a fixed root (dtb) runs on it from the start. A shut-off
 * stub has no vCPU to read.
 */
#define VMSIG_STUB_FIRMWARE_USEC (200 * UINT64_C(1000))
#define VMSIG_STUB_MAILBOX_MAGIC_GPA 0x500
#define VMSIG_STUB_MAILBOX_CR3_GPA 0x508
#define VMSIG_STUB_MAILBOX_MAGIC UINT64_C(0x3352436769736d76) /* "vmsigCR3" */

#define VMSIG_STUB_DISPLAY_MIN 16u
#define VMSIG_STUB_DISPLAY_MAX 4096u

/* Fills *ret with the endpoint spec (every adapter role) of a new stub VM,
 * ready for vmsig_core_attach_endpoint(). If ret_stub is given it receives
 * a borrowed pointer, valid until the endpoint is reaped. */
int vmsig_stub_new(const vmsig_stub_spec *spec, vmsig_endpoint_spec *ret, vmsig_stub **ret_stub);

/* What the input sink recorded, oldest first (bounded; oldest dropped). */
const vmsig_input_event *vmsig_stub_input_log(vmsig_stub *s, size_t *n);
/* The RAM fd the stub keeps for itself (-1 when detached). It is sealed
 * with F_SEAL_FUTURE_WRITE: guest memory changes only through the memctx
 * adapter's write_ram (vmsig_endpoint_write_ram()). */
int vmsig_stub_ram_fd(vmsig_stub *s);
