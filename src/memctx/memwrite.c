/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "memwrite.h"

int vmsig_memwrite_pwrite(void *userdata, uint64_t offset, const void *data, size_t len) {
        return vmsig_pwrite_full(VMSIG_PTR_TO_FD(userdata), data, len, offset);
}

int vmsig_memwrite_memcpy(void *userdata, uint64_t offset, const void *data, size_t len) {
        const vmsig_memwrite_mapping *map = userdata;

        if (offset > map->size || len > map->size - offset)
                return -ERANGE;
        memcpy((uint8_t *) map->base + offset, data, len);
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
                        r = vmsig_memwrite_fail(f, VMSIG_MEMWRITE_OUT_OF_RANGE, address);
                        f->gpa = gpa;
                        return r;
                }
                size_t n = (size_t) MIN((uint64_t) len, avail);
                r = plan_push(p, offset, data, n, address);
                if (r < 0)
                        return vmsig_memwrite_fail_io(f, r, address);
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
                return vmsig_memwrite_fail(f, VMSIG_MEMWRITE_EMPTY, address);
        if (len > max_write)
                return vmsig_memwrite_fail(f, VMSIG_MEMWRITE_TOO_LONG, address);
        /* Apply saves a copy of everything it overwrites. */
        if (len > SIZE_MAX - p->total)
                return vmsig_memwrite_fail_io(f, -ENOMEM, address);
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
                        return vmsig_memwrite_fail(f, VMSIG_MEMWRITE_NON_CANONICAL, va);
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
                return vmsig_memwrite_fail_io(f, -EINVAL, va);
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
                return vmsig_memwrite_fail_io(f, -ENOMEM, p->segments[0].address);

        for (size_t i = 0; i < p->n_segments; i++) {
                const vmsig_memwrite_segment *s = &p->segments[i];

                r = vmsig_pread_full(m->read_fd, saved + pos, s->len, s->offset);
                if (r < 0)
                        return vmsig_memwrite_fail_io(f, r, s->address);
                pos += s->len;
        }

        for (size_t i = 0; i < p->n_segments; i++) {
                const vmsig_memwrite_segment *s = &p->segments[i];

                r = m->write(m->userdata, s->offset, s->data, s->len);
                if (r < 0) {
                        /* The failed segment may be half written too. */
                        plan_restore(p, m, saved, i + 1);
                        return vmsig_memwrite_fail_io(f, r, s->address);
                }
        }
        return 0;
}
