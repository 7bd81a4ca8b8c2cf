/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest-memory.h"
#include "macro.h"

static const int error_errnos[_VMSIG_MEMWRITE_ERROR_MAX] = {
        [VMSIG_MEMWRITE_EMPTY] = EINVAL,
        [VMSIG_MEMWRITE_TOO_LONG] = EMSGSIZE,
        [VMSIG_MEMWRITE_OUT_OF_RANGE] = ERANGE,
        [VMSIG_MEMWRITE_UNMAPPED] = EFAULT,
        [VMSIG_MEMWRITE_NON_CANONICAL] = EADDRNOTAVAIL,
        [VMSIG_MEMWRITE_NO_DTB] = ENXIO,
};

int vmsig_memwrite_fail(vmsig_memwrite_failure *f, vmsig_memwrite_error e, uint64_t address) {
        *f = (vmsig_memwrite_failure) { .error = e, .address = address };
        return -error_errnos[e];
}

int vmsig_memwrite_fail_io(vmsig_memwrite_failure *f, int r, uint64_t address) {
        *f = (vmsig_memwrite_failure) { .error = VMSIG_MEMWRITE_IO, .address = address, .errnum = -r };
        return r;
}

/* --- the RAM file ---------------------------------------------------------------- */

/* One pread(2) or pwrite(2) loop for both directions. */
static int transfer_full(int fd, void *buf, size_t len, uint64_t offset, bool write) {
        uint8_t *p = buf;

        while (len > 0) {
                if (offset > INT64_MAX)
                        return -EOVERFLOW;
                ssize_t n = write ? pwrite(fd, p, len, (off_t) offset) : pread(fd, p, len, (off_t) offset);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO; /* reading: the file is shorter than ram_size says */
                p += n;
                len -= (size_t) n;
                offset += (uint64_t) n;
        }
        return 0;
}

int vmsig_pread_full(int fd, void *buf, size_t len, uint64_t offset) {
        return transfer_full(fd, buf, len, offset, false);
}

int vmsig_pwrite_full(int fd, const void *buf, size_t len, uint64_t offset) {
        /* Only read from: write is set. */
        return transfer_full(fd, (void *) buf, len, offset, true);
}

/* --- GPA -> file offset ---------------------------------------------------- */

int vmsig_gpa_ranges_dup(const vmsig_gpa_range *ranges, size_t n, vmsig_gpa_range **ret) {
        *ret = NULL;
        if (n == 0)
                return 0;
        *ret = memdup_array(ranges, n, sizeof **ret);
        return *ret ? 0 : -ENOMEM;
}

int vmsig_guest_mem_copy(const vmsig_guest_mem *m, vmsig_guest_mem *ret) {
        vmsig_gpa_range *ranges;
        int r;

        r = vmsig_gpa_ranges_dup(m->ranges, m->n_ranges, &ranges);
        if (r < 0)
                return r;
        *ret = *m;
        ret->ranges = ranges;
        return 0;
}

void vmsig_guest_mem_copy_done(vmsig_guest_mem *m) {
        /* The copy's own: vmsig_guest_mem_copy() allocated it. */
        free((vmsig_gpa_range *) m->ranges);
        m->ranges = NULL;
        m->n_ranges = 0;
}

int vmsig_gpa_lookup(const vmsig_guest_mem *m, uint64_t gpa, uint64_t *ret_offset, uint64_t *ret_avail) {
        for (size_t i = 0; i < m->n_ranges; i++) {
                const vmsig_gpa_range *r = &m->ranges[i];

                if (gpa < r->gpa || gpa - r->gpa >= r->size)
                        continue;
                uint64_t delta = gpa - r->gpa;
                /* A range reaching past the file is not RAM there: writing
                 * would grow the file or fault on the mapping. */
                if (r->offset >= m->ram_size || delta >= m->ram_size - r->offset)
                        continue;
                uint64_t avail = MIN(r->size - delta, m->ram_size - r->offset - delta);
                /* Keep the last byte of the address space out of RAM, so the
                 * end of a segment never wraps. */
                avail = MIN(avail, UINT64_MAX - gpa);
                if (avail == 0)
                        continue;
                if (ret_offset)
                        *ret_offset = r->offset + delta;
                if (ret_avail)
                        *ret_avail = avail;
                return 0;
        }
        return -ERANGE;
}

int vmsig_gpa_to_offset(const vmsig_guest_mem *m, uint64_t gpa, uint64_t len, uint64_t *ret_offset) {
        uint64_t offset, avail;

        if (len == 0)
                return -EINVAL;
        if (vmsig_gpa_lookup(m, gpa, &offset, &avail) < 0 || avail < len)
                return -ERANGE;
        if (ret_offset)
                *ret_offset = offset;
        return 0;
}

/* --- VA -> GPA --------------------------------------------------------------- */

static bool va_is_canonical(uint64_t va, unsigned levels) {
        /* Bits 63..47 (4 levels) or 63..56 (5 levels) are all copies of
         * the highest bit the walk translates. */
        unsigned shift = levels == 5 ? 56 : 47;
        uint64_t top = va >> shift;
        return top == 0 || top == (UINT64_MAX >> shift);
}

static unsigned level_shift(unsigned level) {
        return 12 + 9 * (level - 1);
}

static int read_entry(const vmsig_guest_mem *m, uint64_t entry_gpa, unsigned level, uint64_t va, uint64_t *ret,
                      vmsig_memwrite_failure *f) {
        uint64_t offset, raw;
        int r;

        /* A table outside RAM gives no translation, like a missing entry. */
        if (vmsig_gpa_to_offset(m, entry_gpa, sizeof raw, &offset) < 0) {
                r = vmsig_memwrite_fail(f, VMSIG_MEMWRITE_UNMAPPED, va);
                f->gpa = entry_gpa;
                f->level = level;
                return r;
        }
        r = vmsig_pread_full(m->read_fd, &raw, sizeof raw, offset);
        if (r < 0)
                return vmsig_memwrite_fail_io(f, r, va);
        *ret = le64toh(raw);
        return 0;
}

static int walk(const vmsig_guest_mem *m, uint64_t dtb, unsigned levels, uint64_t va, uint64_t *ret_gpa,
                uint64_t *ret_page_size, vmsig_memwrite_failure *f) {
        uint64_t table = dtb & VMSIG_PTE_ADDR_MASK;

        for (unsigned level = levels; level >= 1; level--) {
                unsigned shift = level_shift(level);
                uint64_t entry_gpa = table + ((va >> shift) & 511) * 8;
                uint64_t e = 0;
                int r;

                r = read_entry(m, entry_gpa, level, va, &e, f);
                if (r < 0)
                        return r;
                if (!(e & VMSIG_PTE_PRESENT)) {
                        r = vmsig_memwrite_fail(f, VMSIG_MEMWRITE_UNMAPPED, va);
                        f->gpa = entry_gpa;
                        f->level = level;
                        return r;
                }
                /* PS means a leaf only in a PDPTE (1G) or a PDE (2M); in a
                 * PTE bit 7 is PAT, in a PML4E or a PML5E it is reserved. */
                if (level == 1 || ((level == 2 || level == 3) && (e & VMSIG_PTE_PS))) {
                        uint64_t size = UINT64_C(1) << shift;
                        /* Bit 12 of a large page entry is PAT, not address. */
                        *ret_gpa = (e & VMSIG_PTE_ADDR_MASK & ~(size - 1)) | (va & (size - 1));
                        *ret_page_size = size;
                        return 0;
                }
                table = e & VMSIG_PTE_ADDR_MASK;
        }
        __builtin_unreachable();
}

int vmsig_va_translate(const vmsig_guest_mem *m, uint64_t dtb, unsigned levels, uint64_t va, uint64_t *ret_gpa,
                       uint64_t *ret_page_size, vmsig_memwrite_failure *ret_failure) {
        vmsig_memwrite_failure dummy;
        vmsig_memwrite_failure *f = ret_failure ?: &dummy;
        uint64_t gpa = 0, size = 0;
        int r;

        *f = (vmsig_memwrite_failure) {};
        /* The paging mode comes from the guest's CR4 through the caller;
         * anything else is a caller's mistake, reported like a failed
         * read so that no caller mistakes it for an unmapped address. */
        if (levels != 4 && levels != 5)
                return vmsig_memwrite_fail_io(f, -EINVAL, va);
        if (dtb == 0)
                return vmsig_memwrite_fail(f, VMSIG_MEMWRITE_NO_DTB, va);
        if (!va_is_canonical(va, levels))
                return vmsig_memwrite_fail(f, VMSIG_MEMWRITE_NON_CANONICAL, va);
        r = walk(m, dtb, levels, va, &gpa, &size, f);
        if (r < 0)
                return r;
        if (ret_gpa)
                *ret_gpa = gpa;
        if (ret_page_size)
                *ret_page_size = size;
        return 0;
}
