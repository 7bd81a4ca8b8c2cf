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
 * Virtual addresses are translated through x86-64 4-level paging (CR3 =
 * DTB, PML4 -> PDPT -> PD -> PT) or 5-level paging (CR4.LA57: CR3 = DTB,
 * PML5 -> PML4 -> PDPT -> PD -> PT) with 4K, 2M (PDE.PS) and 1G (PDPTE.PS)
 * pages. The caller says which (levels, 4 or 5, from the vCPU's CR4; see
 * vmsig_vcpu_paging_levels()): the tables do not tell. A VA is canonical
 * when bits 63..47 (4 levels) or 63..56 (5 levels) all equal the highest
 * translated bit. Only the present bit is honoured: NX, protection keys,
 * the write-protect and user bits and reserved bits (PS in a PML4E or a
 * PML5E too) are ignored, since the daemon writes as the host, not as
 * guest code. Accessed and dirty bits are not set, so a guest may not
 * write back a clean file-backed page the daemon changed.
 */

#include <stddef.h>
#include <stdint.h>

#include "memctx.h"

#define VMSIG_MEMWRITE_MAX_DEFAULT 4096

typedef enum vmsig_memwrite_error {
        VMSIG_MEMWRITE_OK,
        VMSIG_MEMWRITE_EMPTY,         /* no data (-EINVAL) */
        VMSIG_MEMWRITE_TOO_LONG,      /* more than max_write bytes (-EMSGSIZE) */
        VMSIG_MEMWRITE_OUT_OF_RANGE,  /* a byte's GPA is not guest RAM (-ERANGE) */
        VMSIG_MEMWRITE_UNMAPPED,      /* no present entry at some level (-EFAULT) */
        VMSIG_MEMWRITE_NON_CANONICAL, /* a VA is not canonical, or the write wraps past 2^64 (-EADDRNOTAVAIL) */
        VMSIG_MEMWRITE_NO_DTB,        /* a virtual write before the DTB is known (-ENXIO) */
        VMSIG_MEMWRITE_IO,            /* reading a table or the RAM, or writing, failed (-errnum) */
        _VMSIG_MEMWRITE_ERROR_MAX,
} vmsig_memwrite_error;

/* Every failing call returns a negative errno and, if asked for, fills
 * this in. */
typedef struct vmsig_memwrite_failure {
        vmsig_memwrite_error error;
        /* The first byte that failed, as the caller gave it: a GPA for a
         * physical write, a VA for a virtual one. EMPTY, TOO_LONG and
         * NO_DTB concern the whole write: its start. */
        uint64_t address;
        /* OUT_OF_RANGE: the GPA of that byte. UNMAPPED: the GPA of the
         * entry that ended the walk (not present, or itself not in RAM). */
        uint64_t gpa;
        unsigned level; /* UNMAPPED: 5 = PML5E, 4 = PML4E, 3 = PDPTE, 2 = PDE, 1 = PTE */
        int errnum;     /* IO: the errno (EINVAL for levels other than 4 or 5) */
} vmsig_memwrite_failure;

const char *vmsig_memwrite_error_to_string(vmsig_memwrite_error e);

/* Writes len bytes at offset of the RAM file in full, or returns a negative
 * errno. */
typedef int (*vmsig_memwrite_writer)(void *userdata, uint64_t offset, const void *data, size_t len);

/* Guest memory as seen by the daemon. Reads (page tables, the contents a
 * failed apply restores) go through read_fd; writes through the writer, so
 * the caller decides how bytes get in: vmsig_memwrite_pwrite() on a private
 * writable fd of file-backed RAM, or vmsig_memwrite_memcpy() into a shared
 * mapping made before a sealed memfd got F_SEAL_FUTURE_WRITE, where a
 * write(2) on the fd would fail with EPERM. */
typedef struct vmsig_guest_mem {
        int read_fd;
        const vmsig_gpa_range *ranges;
        size_t n_ranges;
        uint64_t ram_size; /* bytes of the RAM file; a range past it is not RAM */
        vmsig_memwrite_writer write;
        void *userdata;
} vmsig_guest_mem;

/* The guest memory of a memctx datum, which keeps owning the fd. */
static inline vmsig_guest_mem vmsig_guest_mem_from_memctx(const vmsig_memctx *c, vmsig_memwrite_writer write,
                                                          void *userdata) {
        return (vmsig_guest_mem) {
                .read_fd = c->ram_fd,
                .ranges = c->ranges,
                .n_ranges = c->n_ranges,
                .ram_size = c->ram_size,
                .write = write,
                .userdata = userdata,
        };
}

/* The file offset of gpa and how many bytes from there on are RAM in the
 * same range and contiguous in the file; -ERANGE if gpa is not RAM. */
int vmsig_gpa_lookup(const vmsig_guest_mem *m, uint64_t gpa, uint64_t *ret_offset, uint64_t *ret_avail);
/* The file offset of [gpa, gpa + len) if it lies in one range; -ERANGE if
 * not (use a plan to write across ranges), -EINVAL if len is 0. */
int vmsig_gpa_to_offset(const vmsig_guest_mem *m, uint64_t gpa, uint64_t len, uint64_t *ret_offset);

/* Translates va through the tables rooted at dtb (a CR3 value: the PCID and
 * flag bits are ignored), a PML4 if levels is 4, a PML5 if it is 5; any
 * other levels gives -EINVAL (an IO failure with errnum EINVAL), before
 * anything is read. ret_page_size is 4K, 2M or 1G; the page holding va
 * starts at ret_gpa & ~(ret_page_size - 1). ret_failure may be NULL. */
int vmsig_va_translate(const vmsig_guest_mem *m, uint64_t dtb, unsigned levels, uint64_t va, uint64_t *ret_gpa,
                       uint64_t *ret_page_size, vmsig_memwrite_failure *ret_failure);

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

/* Reads len bytes at offset in full, retrying short reads and EINTR; -EIO
 * when the file ends first. Shared with the detector. */
int vmsig_pread_full(int fd, void *buf, size_t len, uint64_t offset);

/* Writers. vmsig_memwrite_pwrite() takes the fd as its userdata, see
 * VMSIG_FD_TO_PTR(), and retries short writes and EINTR. */
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
