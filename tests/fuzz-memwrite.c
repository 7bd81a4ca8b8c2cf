/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the planning behind MemWrite, MemWriteVirtual and
 * MemWriteBatch on hostile page tables: the input is a small guest (its
 * GPA map, its CR3, the page-table entries in its RAM) and up to four
 * writes planned into one plan, then applied. Tables may point at
 * themselves, at each other in cycles, outside RAM, or be huge entries at
 * any level; none of it may crash, read out of bounds or loop.
 *
 * What a plan claims must hold up:
 *   - a write that was added is covered in order by segments inside the
 *     RAM file, and each sampled byte (the ends of every segment and both
 *     sides of every 4K boundary) lands where translating that byte alone
 *     says it does;
 *   - a write that failed left the plan as it was, and the failure names
 *     a byte that does fail for that reason, with every byte before it
 *     fine;
 *   - applying changes exactly the planned bytes, later writes winning;
 *     a writer failing halfway leaves the RAM as it was.
 *
 * Input (integers little-endian):
 *   u8   flags: bit 0 the GPA map from the input (else GPA == offset over
 *        the file), bit 1 ram_size 2 KiB short of the file, bit 2 the
 *        writer fails on call (flags >> 4) (then succeeds again)
 *   with bit 0: u8 number of ranges - 1 (mod 4), then per range: gpa u32
 *        (pages; with bit 31 set, counted down from 2^64), size u16 and
 *        offset u16 (pages); a range that is empty, wraps or overlaps an
 *        earlier one in GPA space is left out, as discovery refuses it
 *   u64  dtb (CR3, flag and PCID bits included)
 *   u8   number of writes - 1 (mod 4), then per write: u8 kind (bit 0:
 *        virtual), u64 address, u16 length (mod MAX_WRITE + 2)
 *   then page-table entries until the end: u8 page (mod RAM_PAGES), u16
 *        index (mod 512), u64 value
 *
 * Seeds: tests/data/fuzz-memwrite (self-maps, cycles, huge entries at
 * every level, writes across pages and ranges).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "macro.h"
#include "memwrite.h"

#define PAGE UINT64_C(4096)
#define RAM_PAGES 16
#define RAM_SIZE (RAM_PAGES * PAGE)
#define MAX_RANGES 4
#define MAX_WRITES 4
#define MAX_WRITE 4096

enum {
        FLAG_RANGES = 1 << 0,
        FLAG_SHORT = 1 << 1,
        FLAG_WRITER_FAILS = 1 << 2,
};

typedef struct Write {
        bool virtual;
        uint64_t address;
        size_t len;
        uint8_t data[MAX_WRITE + 1];
} Write;

typedef struct Guest {
        vmsig_gpa_range ranges[MAX_RANGES];
        vmsig_guest_mem mem;
        uint64_t dtb;
        Write writes[MAX_WRITES];
        size_t n_writes;
        int fail_call; /* the writer call that fails, -1: none */
        int calls;
} Guest;

static int ram_fd = -1;

static void ram_reset(void) {
        if (ram_fd < 0) {
                ram_fd = memfd_create("fuzz-memwrite", MFD_CLOEXEC);
                if (ram_fd < 0)
                        abort();
        }
        if (ftruncate(ram_fd, 0) < 0 || ftruncate(ram_fd, (off_t) RAM_SIZE) < 0)
                abort();
}

static void ram_read(uint8_t buf[static RAM_SIZE]) {
        if (vmsig_pread_full(ram_fd, buf, RAM_SIZE, 0) < 0)
                abort();
}

/* A writer that fails once, on purpose, after writing half: the failed
 * segment may be half written, and apply must put it back. */
static int writer(void *userdata, uint64_t offset, const void *data, size_t len) {
        Guest *g = userdata;

        if (g->calls++ == g->fail_call) {
                (void) vmsig_memwrite_pwrite(VMSIG_FD_TO_PTR(ram_fd), offset, data, len / 2);
                return -EIO;
        }
        return vmsig_memwrite_pwrite(VMSIG_FD_TO_PTR(ram_fd), offset, data, len);
}

/* What every producer of a GPA map guarantees (the discovery readers
 * refuse anything else): ranges of at least a page that neither wrap nor
 * overlap in GPA space, so a GPA has one file offset. */
static bool range_fits(const vmsig_gpa_range *r, const vmsig_gpa_range *kept, size_t n) {
        if (r->size == 0 || r->gpa + r->size < r->gpa || r->offset + r->size < r->offset)
                return false;
        for (size_t i = 0; i < n; i++)
                if (r->gpa < kept[i].gpa + kept[i].size && kept[i].gpa < r->gpa + r->size)
                        return false;
        return true;
}

static size_t parse_ranges(FuzzInput *in, vmsig_gpa_range ranges[static MAX_RANGES]) {
        size_t n = fuzz_u8(in) % MAX_RANGES + 1, kept = 0;

        for (size_t i = 0; i < n; i++) {
                uint32_t gpa = fuzz_u32(in);
                vmsig_gpa_range r = {
                        .gpa = gpa & 0x80000000u ? 0 - ((uint64_t) (gpa & 0x7FFFFFFFu) + 1) * PAGE : (uint64_t) gpa * PAGE,
                        .size = (uint64_t) fuzz_u16(in) * PAGE,
                        .offset = (uint64_t) fuzz_u16(in) * PAGE,
                };

                if (range_fits(&r, ranges, kept))
                        ranges[kept++] = r;
        }
        return kept;
}

static void parse_writes(FuzzInput *in, Guest *g) {
        g->n_writes = fuzz_u8(in) % MAX_WRITES + 1;
        for (size_t i = 0; i < g->n_writes; i++) {
                Write *w = &g->writes[i];

                w->virtual = fuzz_u8(in) & 1;
                w->address = fuzz_u64(in);
                w->len = fuzz_u16(in) % (MAX_WRITE + 2);
                /* Distinct per write, so a byte that lands wrong shows. */
                for (size_t j = 0; j < w->len; j++)
                        w->data[j] = (uint8_t) (0xA0 + i * 0x11 + j * 7);
        }
}

static void write_entries(FuzzInput *in, uint64_t file_size) {
        while (in->left >= 11) {
                uint64_t page = fuzz_u8(in) % RAM_PAGES, index = fuzz_u16(in) % 512;
                uint64_t value = htole64(fuzz_u64(in)), offset = page * PAGE + index * 8;

                if (offset + 8 <= file_size && pwrite(ram_fd, &value, 8, (off_t) offset) != 8)
                        abort();
        }
}

static void parse(FuzzInput *in, Guest *g) {
        uint8_t flags = fuzz_u8(in);

        g->mem = (vmsig_guest_mem) {
                .read_fd = ram_fd,
                .ranges = g->ranges,
                .ram_size = RAM_SIZE - (flags & FLAG_SHORT ? PAGE / 2 : 0),
                .write = writer,
                .userdata = g,
        };
        if (flags & FLAG_RANGES)
                g->mem.n_ranges = parse_ranges(in, g->ranges);
        else {
                g->ranges[0] = (vmsig_gpa_range) { .gpa = 0, .size = RAM_SIZE, .offset = 0 };
                g->mem.n_ranges = 1;
        }
        g->dtb = fuzz_u64(in);
        parse_writes(in, g);
        g->fail_call = flags & FLAG_WRITER_FAILS ? flags >> 4 : -1;
        write_entries(in, RAM_SIZE);
}

/* Where byte i of w goes by itself, or a failure. */
static int locate(const Guest *g, const Write *w, uint64_t i, uint64_t *ret_offset, vmsig_memwrite_failure *f) {
        uint64_t gpa = w->address + i, avail;
        int r;

        *f = (vmsig_memwrite_failure) {};
        if (w->virtual) {
                r = vmsig_va_translate(&g->mem, g->dtb, 4, w->address + i, &gpa, NULL, f);
                if (r < 0)
                        return r;
        }
        f->gpa = gpa;
        r = vmsig_gpa_lookup(&g->mem, gpa, ret_offset, &avail);
        if (r < 0)
                f->error = VMSIG_MEMWRITE_OUT_OF_RANGE;
        return r;
}

static void check_byte(const Guest *g, const Write *w, uint64_t i, uint64_t expect_offset) {
        vmsig_memwrite_failure f;
        uint64_t offset;

        fuzz_check(locate(g, w, i, &offset, &f) == 0);
        fuzz_check(offset == expect_offset);
}

/* The segments [first, n) are w, in order, inside the file. */
static void check_added(const Guest *g, const vmsig_memwrite_plan *p, size_t first, const Write *w) {
        uint64_t covered = 0;

        for (size_t s = first; s < p->n_segments; s++) {
                const vmsig_memwrite_segment *seg = &p->segments[s];

                fuzz_check(seg->len > 0 && seg->data == w->data + covered && seg->address == w->address + covered);
                fuzz_check(seg->offset < g->mem.ram_size && seg->len <= g->mem.ram_size - seg->offset);
                check_byte(g, w, covered, seg->offset);
                check_byte(g, w, covered + seg->len - 1, seg->offset + seg->len - 1);
                /* Both sides of each 4K boundary inside the segment. */
                for (uint64_t i = PAGE - ((w->address + covered) & (PAGE - 1)); i < seg->len; i += PAGE) {
                        check_byte(g, w, covered + i - 1, seg->offset + i - 1);
                        check_byte(g, w, covered + i, seg->offset + i);
                }
                covered += seg->len;
        }
        fuzz_check(covered == w->len);
}

static void check_failure_kind(const Guest *g, const Write *w, const vmsig_memwrite_failure *f) {
        switch (f->error) {
        case VMSIG_MEMWRITE_EMPTY:
                fuzz_check(w->len == 0 && f->address == w->address);
                break;
        case VMSIG_MEMWRITE_TOO_LONG:
                fuzz_check(w->len > MAX_WRITE && f->address == w->address);
                break;
        case VMSIG_MEMWRITE_NO_DTB:
                fuzz_check(w->virtual && g->dtb == 0);
                break;
        case VMSIG_MEMWRITE_NON_CANONICAL:
                fuzz_check(w->virtual);
                break;
        case VMSIG_MEMWRITE_UNMAPPED:
                fuzz_check(w->virtual && f->level >= 1 && f->level <= 4);
                break;
        case VMSIG_MEMWRITE_OUT_OF_RANGE:
                break;
        default:
                fuzz_check(!"an I/O failure while planning from a memfd");
        }
}

/* The failure names a byte of w that fails the same way when located by
 * itself, and the byte before it (if part of w) was fine. A write that
 * wraps past 2^64 names the address it wrapped to, 0. */
static void check_failed(const Guest *g, const Write *w, const vmsig_memwrite_failure *f) {
        vmsig_memwrite_failure again;
        uint64_t i = f->address - w->address, offset;

        check_failure_kind(g, w, f);
        if (f->error == VMSIG_MEMWRITE_EMPTY || f->error == VMSIG_MEMWRITE_TOO_LONG ||
            f->error == VMSIG_MEMWRITE_NO_DTB)
                return;
        if (f->error == VMSIG_MEMWRITE_NON_CANONICAL && f->address == 0 && w->address != 0) {
                fuzz_check(w->address + w->len - 1 < w->address);
                return;
        }
        fuzz_check(i < w->len);
        fuzz_check(locate(g, w, i, &offset, &again) < 0);
        fuzz_check(again.error == f->error);
        if (f->error == VMSIG_MEMWRITE_UNMAPPED)
                fuzz_check(again.level == f->level && again.gpa == f->gpa);
        if (f->error == VMSIG_MEMWRITE_OUT_OF_RANGE)
                fuzz_check(again.gpa == f->gpa);
        if (i > 0)
                fuzz_check(locate(g, w, i - 1, &offset, &again) == 0);
}

static void plan_all(Guest *g, vmsig_memwrite_plan *p) {
        for (size_t i = 0; i < g->n_writes; i++) {
                const Write *w = &g->writes[i];
                size_t n = p->n_segments, total = p->total;
                vmsig_memwrite_failure f;
                int r;

                r = w->virtual ? vmsig_memwrite_plan_add_va(p, &g->mem, g->dtb, 4, w->address, w->data, w->len,
                                                            MAX_WRITE, &f)
                               : vmsig_memwrite_plan_add_gpa(p, &g->mem, w->address, w->data, w->len, MAX_WRITE, &f);
                if (r >= 0) {
                        fuzz_check(p->total == total + w->len);
                        check_added(g, p, n, w);
                } else {
                        fuzz_check(p->n_segments == n && p->total == total);
                        fuzz_check(r == -EINVAL || r == -EMSGSIZE || r == -ERANGE || r == -EFAULT ||
                                   r == -EADDRNOTAVAIL || r == -ENXIO);
                        check_failed(g, w, &f);
                }
        }
}

static void check_apply(Guest *g, const vmsig_memwrite_plan *p) {
        static uint8_t before[RAM_SIZE], expect[RAM_SIZE], after[RAM_SIZE];
        vmsig_memwrite_failure f;
        int r;

        ram_read(before);
        memcpy(expect, before, RAM_SIZE);
        for (size_t s = 0; s < p->n_segments; s++)
                memcpy(expect + p->segments[s].offset, p->segments[s].data, p->segments[s].len);
        r = vmsig_memwrite_plan_apply(p, &g->mem, &f);
        ram_read(after);
        if (r >= 0)
                fuzz_check(memcmp(after, expect, RAM_SIZE) == 0);
        else {
                fuzz_check(g->fail_call >= 0 && r == -EIO && f.error == VMSIG_MEMWRITE_IO && f.errnum == EIO);
                fuzz_check(memcmp(after, before, RAM_SIZE) == 0);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Guest g;
        FuzzInput in = { .p = data, .left = size };
        vmsig_memwrite_plan plan = {};

        ram_reset();
        g = (Guest) {};
        parse(&in, &g);
        plan_all(&g, &plan);
        check_apply(&g, &plan);
        vmsig_memwrite_plan_done(&plan);
        return 0;
}

void fuzz_teardown(void) {
        ram_fd = safe_close(ram_fd);
}
