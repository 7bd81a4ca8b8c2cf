/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "memwrite.h"

#define PTE_PRESENT (UINT64_C(1) << 0)
#define PTE_PS (UINT64_C(1) << 7)
/* Physical address bits 12..51 of an entry (and of CR3). */
#define PTE_ADDR_MASK UINT64_C(0x000FFFFFFFFFF000)
#define PAGE_SIZE_4K (UINT64_C(1) << 12)

static const char *const error_names[_VMSIG_MEMWRITE_ERROR_MAX] = {
        [VMSIG_MEMWRITE_OK] = "ok",
        [VMSIG_MEMWRITE_EMPTY] = "empty",
        [VMSIG_MEMWRITE_TOO_LONG] = "too-long",
        [VMSIG_MEMWRITE_OUT_OF_RANGE] = "out-of-range",
        [VMSIG_MEMWRITE_UNMAPPED] = "unmapped",
        [VMSIG_MEMWRITE_NON_CANONICAL] = "non-canonical",
        [VMSIG_MEMWRITE_NO_DTB] = "no-dtb",
        [VMSIG_MEMWRITE_IO] = "io",
};

static const int error_errnos[_VMSIG_MEMWRITE_ERROR_MAX] = {
        [VMSIG_MEMWRITE_EMPTY] = EINVAL,
        [VMSIG_MEMWRITE_TOO_LONG] = EMSGSIZE,
        [VMSIG_MEMWRITE_OUT_OF_RANGE] = ERANGE,
        [VMSIG_MEMWRITE_UNMAPPED] = EFAULT,
        [VMSIG_MEMWRITE_NON_CANONICAL] = EADDRNOTAVAIL,
        [VMSIG_MEMWRITE_NO_DTB] = ENXIO,
};

const char *vmsig_memwrite_error_to_string(vmsig_memwrite_error e) {
        if ((unsigned) e >= _VMSIG_MEMWRITE_ERROR_MAX)
                return NULL;
        return error_names[e];
}

static int fail(vmsig_memwrite_failure *f, vmsig_memwrite_error e, uint64_t address) {
        *f = (vmsig_memwrite_failure) { .error = e, .address = address };
        return -error_errnos[e];
}

static int fail_io(vmsig_memwrite_failure *f, int r, uint64_t address) {
        *f = (vmsig_memwrite_failure) { .error = VMSIG_MEMWRITE_IO, .address = address, .errnum = -r };
        return r;
}

int vmsig_pread_full(int fd, void *buf, size_t len, uint64_t offset) {
        uint8_t *p = buf;

        while (len > 0) {
                if (offset > INT64_MAX)
                        return -EOVERFLOW;
                ssize_t n = pread(fd, p, len, (off_t) offset);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO; /* the file is shorter than ram_size says */
                p += n;
                len -= (size_t) n;
                offset += (uint64_t) n;
        }
        return 0;
}

int vmsig_memwrite_pwrite(void *userdata, uint64_t offset, const void *data, size_t len) {
        int fd = VMSIG_PTR_TO_FD(userdata);
        const uint8_t *p = data;

        while (len > 0) {
                if (offset > INT64_MAX)
                        return -EOVERFLOW;
                ssize_t n = pwrite(fd, p, len, (off_t) offset);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
                offset += (uint64_t) n;
        }
        return 0;
}

int vmsig_memwrite_memcpy(void *userdata, uint64_t offset, const void *data, size_t len) {
        const vmsig_memwrite_mapping *map = userdata;

        if (offset > map->size || len > map->size - offset)
                return -ERANGE;
        memcpy((uint8_t *) map->base + offset, data, len);
        return 0;
}

/* --- GPA -> file offset ---------------------------------------------------- */

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
                r = fail(f, VMSIG_MEMWRITE_UNMAPPED, va);
                f->gpa = entry_gpa;
                f->level = level;
                return r;
        }
        r = vmsig_pread_full(m->read_fd, &raw, sizeof raw, offset);
        if (r < 0)
                return fail_io(f, r, va);
        *ret = le64toh(raw);
        return 0;
}

static int walk(const vmsig_guest_mem *m, uint64_t dtb, unsigned levels, uint64_t va, uint64_t *ret_gpa,
                uint64_t *ret_page_size, vmsig_memwrite_failure *f) {
        uint64_t table = dtb & PTE_ADDR_MASK;

        for (unsigned level = levels; level >= 1; level--) {
                unsigned shift = level_shift(level);
                uint64_t entry_gpa = table + ((va >> shift) & 511) * 8;
                uint64_t e;
                int r;

                r = read_entry(m, entry_gpa, level, va, &e, f);
                if (r < 0)
                        return r;
                if (!(e & PTE_PRESENT)) {
                        r = fail(f, VMSIG_MEMWRITE_UNMAPPED, va);
                        f->gpa = entry_gpa;
                        f->level = level;
                        return r;
                }
                /* PS means a leaf only in a PDPTE (1G) or a PDE (2M); in a
                 * PTE bit 7 is PAT, in a PML4E or a PML5E it is reserved. */
                if (level == 1 || ((level == 2 || level == 3) && (e & PTE_PS))) {
                        uint64_t size = UINT64_C(1) << shift;
                        /* Bit 12 of a large page entry is PAT, not address. */
                        *ret_gpa = (e & PTE_ADDR_MASK & ~(size - 1)) | (va & (size - 1));
                        *ret_page_size = size;
                        return 0;
                }
                table = e & PTE_ADDR_MASK;
        }
        __builtin_unreachable();
}

int vmsig_va_translate(const vmsig_guest_mem *m, uint64_t dtb, unsigned levels, uint64_t va, uint64_t *ret_gpa,
                       uint64_t *ret_page_size, vmsig_memwrite_failure *ret_failure) {
        vmsig_memwrite_failure dummy;
        vmsig_memwrite_failure *f = ret_failure ?: &dummy;
        uint64_t gpa, size;
        int r;

        *f = (vmsig_memwrite_failure) {};
        /* The paging mode comes from the guest's CR4 through the caller;
         * anything else is a caller's mistake, reported like a failed
         * read so that no caller mistakes it for an unmapped address. */
        if (levels != 4 && levels != 5)
                return fail_io(f, -EINVAL, va);
        if (dtb == 0)
                return fail(f, VMSIG_MEMWRITE_NO_DTB, va);
        if (!va_is_canonical(va, levels))
                return fail(f, VMSIG_MEMWRITE_NON_CANONICAL, va);
        r = walk(m, dtb, levels, va, &gpa, &size, f);
        if (r < 0)
                return r;
        if (ret_gpa)
                *ret_gpa = gpa;
        if (ret_page_size)
                *ret_page_size = size;
        return 0;
}

/* --- plans ------------------------------------------------------------------- */

void vmsig_memwrite_plan_done(vmsig_memwrite_plan *p) {
        free(p->segments);
        *p = (vmsig_memwrite_plan) {};
}

static int plan_push(vmsig_memwrite_plan *p, uint64_t offset, const void *data, size_t len, uint64_t address) {
        if (p->n_segments == p->n_allocated) {
                size_t n = MAX(p->n_allocated * 2, (size_t) 8);
                vmsig_memwrite_segment *s = reallocarray(p->segments, n, sizeof *s);
                if (!s)
                        return -ENOMEM;
                p->segments = s;
                p->n_allocated = n;
        }
        p->segments[p->n_segments++] = (vmsig_memwrite_segment) {
                .offset = offset,
                .data = data,
                .len = len,
                .address = address,
        };
        return 0;
}

/* Splits [gpa, gpa + len) at range boundaries. address is what the caller
 * called gpa (a VA for a virtual write), for the failure. */
static int plan_push_gpa(vmsig_memwrite_plan *p, const vmsig_guest_mem *m, uint64_t gpa, const uint8_t *data,
                         size_t len, uint64_t address, vmsig_memwrite_failure *f) {
        while (len > 0) {
                uint64_t offset, avail;
                int r;

                if (vmsig_gpa_lookup(m, gpa, &offset, &avail) < 0) {
                        r = fail(f, VMSIG_MEMWRITE_OUT_OF_RANGE, address);
                        f->gpa = gpa;
                        return r;
                }
                size_t n = (size_t) MIN((uint64_t) len, avail);
                r = plan_push(p, offset, data, n, address);
                if (r < 0)
                        return fail_io(f, r, address);
                gpa += n;
                address += n;
                data += n;
                len -= n;
        }
        return 0;
}

static int check_length(const vmsig_memwrite_plan *p, size_t len, size_t max_write, uint64_t address,
                        vmsig_memwrite_failure *f) {
        if (len == 0)
                return fail(f, VMSIG_MEMWRITE_EMPTY, address);
        if (len > max_write)
                return fail(f, VMSIG_MEMWRITE_TOO_LONG, address);
        /* Apply saves a copy of everything it overwrites. */
        if (len > SIZE_MAX - p->total)
                return fail_io(f, -ENOMEM, address);
        return 0;
}

int vmsig_memwrite_plan_add_gpa(vmsig_memwrite_plan *p, const vmsig_guest_mem *m, uint64_t gpa, const void *data,
                                size_t len, size_t max_write, vmsig_memwrite_failure *ret_failure) {
        vmsig_memwrite_failure dummy;
        vmsig_memwrite_failure *f = ret_failure ?: &dummy;
        size_t n_segments = p->n_segments;
        int r;

        *f = (vmsig_memwrite_failure) {};
        r = check_length(p, len, max_write, gpa, f);
        if (r < 0)
                return r;
        r = plan_push_gpa(p, m, gpa, data, len, gpa, f);
        if (r < 0) {
                p->n_segments = n_segments;
                return r;
        }
        p->total += len;
        return 0;
}

/* One page (or the part of it the write covers) at a time, in address
 * order, so the failure names the first byte that fails. */
static int plan_push_va(vmsig_memwrite_plan *p, const vmsig_guest_mem *m, uint64_t dtb, unsigned levels,
                        uint64_t va, const uint8_t *data, size_t len, vmsig_memwrite_failure *f) {
        while (len > 0) {
                uint64_t gpa, size;
                int r;

                r = vmsig_va_translate(m, dtb, levels, va, &gpa, &size, f);
                if (r < 0)
                        return r;
                size_t n = (size_t) MIN((uint64_t) len, size - (va & (size - 1)));
                r = plan_push_gpa(p, m, gpa, data, n, va, f);
                if (r < 0)
                        return r;
                va += n;
                data += n;
                len -= n;
                /* The byte after 2^64 - 1 does not exist; report the
                 * address it wrapped to. */
                if (len > 0 && va == 0)
                        return fail(f, VMSIG_MEMWRITE_NON_CANONICAL, va);
        }
        return 0;
}

int vmsig_memwrite_plan_add_va(vmsig_memwrite_plan *p, const vmsig_guest_mem *m, uint64_t dtb, unsigned levels,
                               uint64_t va, const void *data, size_t len, size_t max_write,
                               vmsig_memwrite_failure *ret_failure) {
        vmsig_memwrite_failure dummy;
        vmsig_memwrite_failure *f = ret_failure ?: &dummy;
        size_t n_segments = p->n_segments;
        int r;

        *f = (vmsig_memwrite_failure) {};
        if (levels != 4 && levels != 5)
                return fail_io(f, -EINVAL, va);
        r = check_length(p, len, max_write, va, f);
        if (r < 0)
                return r;
        r = plan_push_va(p, m, dtb, levels, va, data, len, f);
        if (r < 0) {
                p->n_segments = n_segments;
                return r;
        }
        p->total += len;
        return 0;
}

/* Puts back segments [0, n) from the saved contents. Best effort: a guest
 * that wrote there meanwhile loses that, but never gets half a plan. */
static void plan_restore(const vmsig_memwrite_plan *p, const vmsig_guest_mem *m, const uint8_t *saved, size_t n) {
        size_t pos = 0;

        for (size_t i = 0; i < n; i++) {
                const vmsig_memwrite_segment *s = &p->segments[i];

                (void) m->write(m->userdata, s->offset, saved + pos, s->len);
                pos += s->len;
        }
}

int vmsig_memwrite_plan_apply(const vmsig_memwrite_plan *p, const vmsig_guest_mem *m,
                              vmsig_memwrite_failure *ret_failure) {
        vmsig_memwrite_failure dummy;
        vmsig_memwrite_failure *f = ret_failure ?: &dummy;
        _cleanup_free_ uint8_t *saved = NULL;
        size_t pos = 0;
        int r;

        *f = (vmsig_memwrite_failure) {};
        if (p->n_segments == 0)
                return 0;
        saved = malloc(p->total);
        if (!saved)
                return fail_io(f, -ENOMEM, p->segments[0].address);

        for (size_t i = 0; i < p->n_segments; i++) {
                const vmsig_memwrite_segment *s = &p->segments[i];

                r = vmsig_pread_full(m->read_fd, saved + pos, s->len, s->offset);
                if (r < 0)
                        return fail_io(f, r, s->address);
                pos += s->len;
        }

        for (size_t i = 0; i < p->n_segments; i++) {
                const vmsig_memwrite_segment *s = &p->segments[i];

                r = m->write(m->userdata, s->offset, s->data, s->len);
                if (r < 0) {
                        /* The failed segment may be half written too. */
                        plan_restore(p, m, saved, i + 1);
                        return fail_io(f, r, s->address);
                }
        }
        return 0;
}
