/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * guest-memory: the guest's RAM as the daemon reads it, shared by the
 * detectors (read-only), the bootstrap and memwrite: which file offset a
 * guest-physical address (GPA) is at, how a virtual address (VA) translates
 * through the guest's page tables, and reading the RAM file in full.
 *
 * Virtual addresses are translated through x86-64 4-level paging (CR3 =
 * DTB, PML4 -> PDPT -> PD -> PT) or 5-level paging (CR4.LA57: CR3 = DTB,
 * PML5 -> PML4 -> PDPT -> PD -> PT) with 4K, 2M (PDE.PS) and 1G (PDPTE.PS)
 * pages. The caller says which (levels, 4 or 5, from the vCPU's CR4; see
 * vmsig_vcpu_paging_levels()): the tables do not tell. A VA is canonical
 * when bits 63..47 (4 levels) or 63..56 (5 levels) all equal the highest
 * translated bit. Only the present bit is honoured: NX, protection keys,
 * the write-protect and user bits and reserved bits (PS in a PML4E or a
 * PML5E too) are ignored, since the daemon acts as the host, not as guest
 * code. Accessed and dirty bits are never set.
 */

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "memctx.h"
#include "vmsig-endpoint.h"

/* x86-64 page-table entries. */
#define VMSIG_PAGE_SIZE_4K UINT64_C(0x1000)
#define VMSIG_PTE_PRESENT (UINT64_C(1) << 0)
#define VMSIG_PTE_PS (UINT64_C(1) << 7)
/* Accessed and dirty: the CPU sets them in each copy of an entry on its
 * own, so they tell nothing about which tables are the same. */
#define VMSIG_PTE_ACCESSED_DIRTY (UINT64_C(3) << 5)
/* Physical address bits 12..51 of an entry (and of CR3). */
#define VMSIG_PTE_ADDR_MASK UINT64_C(0x000FFFFFFFFFF000)

/* Page-table isolation (Linux's PTI, Windows' KVA shadow): the user root
 * is the kernel root + 4 KiB, the two in one 8 KiB-aligned pair. */
#define VMSIG_PTI_USER_OFFSET VMSIG_PAGE_SIZE_4K
#define VMSIG_PTI_PAIR_MASK (2 * VMSIG_PAGE_SIZE_4K - 1)

_Static_assert(VMSIG_PTE_ADDR_MASK == VMSIG_CR3_ROOT_MASK, "a CR3 names its root as an entry names its table");

/* A little-endian qword of guest memory, at any alignment. */
static inline uint64_t vmsig_load_le64(const uint8_t *p) {
        uint64_t v;

        memcpy(&v, p, sizeof v);
        return le64toh(v);
}

/* Why an access to guest memory failed. A translation fails with
 * UNMAPPED, NON_CANONICAL, NO_DTB or IO; the others are memwrite's
 * (memwrite.h), whose failures these are. */
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

/* Fill *f with a failure of error e at address and return its negative
 * errno; for IO, with the negative errno r. */
int vmsig_memwrite_fail(vmsig_memwrite_failure *f, vmsig_memwrite_error e, uint64_t address);
int vmsig_memwrite_fail_io(vmsig_memwrite_failure *f, int r, uint64_t address);

/* Writes len bytes at offset of the RAM file in full, or returns a negative
 * errno. */
typedef int (*vmsig_memwrite_writer)(void *userdata, uint64_t offset, const void *data, size_t len);

/* Guest memory as seen by the daemon. Reads (page tables, the contents a
 * failed apply restores) go through read_fd; writes, memwrite's only,
 * through the writer, so the caller decides how bytes get in:
 * vmsig_memwrite_pwrite() on a private writable fd of file-backed RAM, or
 * vmsig_memwrite_memcpy() into a shared mapping made before a sealed memfd
 * got F_SEAL_FUTURE_WRITE, where a write(2) on the fd would fail with
 * EPERM. A reader leaves write NULL. */
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

/* A copy of n ranges (NULL for none); -ENOMEM. */
int vmsig_gpa_ranges_dup(const vmsig_gpa_range *ranges, size_t n, vmsig_gpa_range **ret);

/* *ret = *m, but with ranges of its own: for a job (a scan, a probe) that
 * outlives the caller's description of the guest. The fd stays the
 * caller's, open until the job ends. -ENOMEM; free the copy with
 * vmsig_guest_mem_copy_done(), and only a copy. */
int vmsig_guest_mem_copy(const vmsig_guest_mem *m, vmsig_guest_mem *ret);
void vmsig_guest_mem_copy_done(vmsig_guest_mem *m);

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

/* Reads len bytes at offset in full, retrying short reads and EINTR; -EIO
 * when the file ends first. */
int vmsig_pread_full(int fd, void *buf, size_t len, uint64_t offset);
/* Writes len bytes at offset in full, retrying short writes and EINTR. */
int vmsig_pwrite_full(int fd, const void *buf, size_t len, uint64_t offset);
