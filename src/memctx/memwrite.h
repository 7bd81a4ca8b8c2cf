/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * memwrite: all-or-nothing writes into guest memory, the pure part of
 * MemWrite, MemWriteVirtual and MemWriteBatch (no D-Bus, no event loop).
 *
 * A write is first planned: every byte is checked (length, canonical VA,
 * a present translation at every page-table level, a GPA inside guest RAM)
 * and turned into segments of the RAM file. A plan collects any number of
 * writes; only once every one of them was added does the caller apply it.
 * An add that fails leaves the plan as it was and names the first byte that
 * failed, so a batch is rejected as a whole without a byte written.
 *
 * "Atomic" means all-or-nothing with respect to validation, not with
 * respect to running vCPUs: the tables are walked as they are in RAM at the
 * time of the add, and a guest that is not paused may see a write land
 * piecewise. Plan and apply in one go.
 *
 * Virtual addresses are translated as guest-memory.h says. Accessed and
 * dirty bits are not set, so a guest may not write back a clean
 * file-backed page the daemon changed.
 */

#include <stddef.h>
#include <stdint.h>

#include "guest-memory.h"

#define VMSIG_MEMWRITE_MAX_DEFAULT 4096

typedef struct vmsig_memwrite_segment {
        uint64_t offset;  /* in the RAM file */
        const void *data; /* borrowed */
        size_t len;
        uint64_t address; /* its first byte as the caller gave it, for errors */
} vmsig_memwrite_segment;

/* Validated segments, applied in order: where writes overlap the later one
 * wins. Zero-initialise; release with vmsig_memwrite_plan_done(). The data
 * is borrowed and must stay valid until the plan is applied. */
typedef struct vmsig_memwrite_plan {
        vmsig_memwrite_segment *segments;
        size_t n_segments;
        size_t n_allocated;
        size_t total; /* bytes over all segments, to bound a batch */
} vmsig_memwrite_plan;

void vmsig_memwrite_plan_done(vmsig_memwrite_plan *p);

/* Adds the write of len bytes at a GPA or a VA (translated page by page
 * through dtb with levels, as for vmsig_va_translate(); levels is checked
 * first). 1 <= len <= max_write. On failure the plan is unchanged.
 * ret_failure may be NULL. */
int vmsig_memwrite_plan_add_gpa(vmsig_memwrite_plan *p, const vmsig_guest_mem *m, uint64_t gpa, const void *data,
                                size_t len, size_t max_write, vmsig_memwrite_failure *ret_failure);
int vmsig_memwrite_plan_add_va(vmsig_memwrite_plan *p, const vmsig_guest_mem *m, uint64_t dtb, unsigned levels,
                               uint64_t va, const void *data, size_t len, size_t max_write,
                               vmsig_memwrite_failure *ret_failure);

/* Writes every segment through m->write. Validation already happened, so
 * what is left to fail is I/O: the contents are read before anything is
 * written, and if the writer fails halfway the segments written so far are
 * put back (best effort, through the same writer). ret_failure may be
 * NULL. */
int vmsig_memwrite_plan_apply(const vmsig_memwrite_plan *p, const vmsig_guest_mem *m,
                              vmsig_memwrite_failure *ret_failure);

/* Writers, the one way bytes get into guest RAM: a plan's, and a host
 * backend's write_ram (QEMU's RAM file through pwrite, the stub's sealed
 * memfd through its mapping). vmsig_memwrite_pwrite() takes the fd as its
 * userdata, see VMSIG_FD_TO_PTR(), and retries short writes and EINTR. */
#define VMSIG_FD_TO_PTR(fd) ((void *) (intptr_t) (fd))
#define VMSIG_PTR_TO_FD(p) ((int) (intptr_t) (p))
int vmsig_memwrite_pwrite(void *userdata, uint64_t offset, const void *data, size_t len);

/* A shared writable mapping of the whole RAM file. The file must not
 * shrink under it (F_SEAL_SHRINK), or a write faults with SIGBUS. */
typedef struct vmsig_memwrite_mapping {
        void *base;
        uint64_t size;
} vmsig_memwrite_mapping;

/* Takes a vmsig_memwrite_mapping as its userdata; -ERANGE past its end. */
int vmsig_memwrite_memcpy(void *userdata, uint64_t offset, const void *data, size_t len);
