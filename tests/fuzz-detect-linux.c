/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the Linux probe (detect-linux.h): the input is a
 * small guest RAM (1 MiB in a memfd, GPA == file offset, maybe with a hole
 * in the map), a CR3 and the paging levels. The probe runs in steps of the
 * least budget and in one call (vmsig_linux_probe_all()), and must:
 *  - finish within a number of steps that the header's bounds give (two
 *    roots, 1 + 2 + 1 + 512 tables and VMSIG_LINUX_SEARCH_LIMIT bytes of
 *    pages each), every step but the last reading most of its budget, none
 *    more than it and a root's top tables; and answer the same ever after;
 *  - give the same answer in steps as in one call (unless a read failed:
 *    reads of other sizes fail at other points), and write *ret only when
 *    it found something;
 *  - when it found something, have found what the header says: the levels
 *    asked for, CR3's root or (PTI) the 8 KiB-aligned one below it when
 *    that maps more of the kernel half, init_mm's root sharing its kernel
 *    half, a release that is one, "Linux version <release> (" at
 *    banner_gpa, banner_va in the kernel image's range translating to it
 *    under both roots (walked here, independently of memwrite.c), and
 *    vmsig_linux_check() agreeing (and disagreeing with a result moved
 *    off the banner);
 *  - neither crash, nor leak, nor read out of bounds.
 *
 * The RAM is described rather than given, so that random bytes form page
 * tables that point inside it (a random 64-bit entry almost never does).
 * Input (integers little-endian):
 *   byte 0    flags: bit 0 five levels (else four); bit 1 the map claims a
 *             page more than the file has (reads there fail with EIO);
 *             bit 2 CR3's page is past RAM (+ 256 pages); bit 3 the map has
 *             a hole, [HOLE_START, HOLE_END)
 *   byte 1    CR3's page (of 256)
 *   u16       CR3's low 12 bits (the PCID); bit 15 sets bit 63 (NOFLUSH)
 *   records   until the input ends, an op byte, then by op & 3:
 *     0 entry   table page u8, index u16 (mod 512), target page u8, bits
 *               u8: the 8-byte entry at that index, see entry_value()
 *     1 bytes   page u8, offset u16 (mod 4096), length u8, the bytes
 *     2 banner  page u8, offset u16 (mod 4096), variant u8: banners[]
 *     3 copy    from page u8, to page u8: the page, or with op bit 2 only
 *               its kernel half (entries 256..511)
 *   Writes go on across page boundaries and stop at the end of RAM.
 *
 * Seeds: tests/data/fuzz-detect-linux, written by this file built with
 * -DFUZZ_WRITE_SEEDS (and tests/fuzz-util.c):
 *   clang -D_GNU_SOURCE -Isrc/shared -Isrc/core -Isrc/endpoint -Isrc/memctx -Itests \
 *     -DFUZZ_WRITE_SEEDS tests/fuzz-detect-linux.c tests/fuzz-util.c src/memctx/detect-linux.c \
 *     src/memctx/detect.c src/memctx/guest-memory.c src/shared/fd-util.c -o write-seeds && \
 *     ./write-seeds tests/data/fuzz-detect-linux
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <unistd.h>

#include "detect-linux.h"
#include "fuzz.h"
#include "macro.h"

#define PAGE UINT64_C(0x1000)
#define RAM_PAGES 256
#define RAM_SIZE (RAM_PAGES * PAGE)

#define PTE_PRESENT (UINT64_C(1) << 0)
#define PTE_RW_US (UINT64_C(3) << 1)
#define PTE_ACCESSED_DIRTY (UINT64_C(3) << 5)
#define PTE_PS (UINT64_C(1) << 7)
#define PTE_PAT_LARGE (UINT64_C(1) << 12)
#define PTE_HIGH (UINT64_C(1) << 51)
#define PTE_NX (UINT64_C(1) << 63)
#define PTE_ADDR_MASK UINT64_C(0x000FFFFFFFFFF000)

/* Where the header says the kernel image and its banner are. */
#define IMAGE_VA UINT64_C(0xFFFFFFFF80000000)
#define IMAGE_END UINT64_C(0xFFFFFFFFC0000000)
#define BANNER_PREFIX "Linux version "

/* The header's bounds: a root tried costs at most 1 + 2 + 1 + 512 table
 * reads and VMSIG_LINUX_SEARCH_LIMIT bytes of pages; two roots at most. */
#define ROOTS_MAX 2
#define BYTES_PER_ROOT ((1 + 2 + 1 + 512) * PAGE + VMSIG_LINUX_SEARCH_LIMIT)
#define BYTES_MAX (ROOTS_MAX * BYTES_PER_ROOT)
/* A step reads its budget, and when it starts on a root, that root's top
 * tables, four at most, on top. */
#define STEP_BYTES_MAX (VMSIG_LINUX_MIN_BUDGET + 4 * PAGE)
/* A step that returns 0 stopped because less than a table's worth of its
 * budget was left: whatever comes next, a table or a page, costs that.
 * Anything earlier would be a step that returns having done next to
 * nothing, and a caller stepping forever. */
#define STEP_BYTES_MIN (VMSIG_LINUX_MIN_BUDGET - PAGE + 1)
#define STEPS_MAX (BYTES_MAX / STEP_BYTES_MIN + 2)

enum {
        FLAG_FIVE_LEVELS = 1 << 0,
        FLAG_SHORT_FILE = 1 << 1,
        FLAG_CR3_PAST_RAM = 1 << 2,
        FLAG_HOLE = 1 << 3,
};

/* With FLAG_HOLE, this is no RAM (the map has two ranges, GPA == file
 * offset still): a large page over it is searched on both sides. */
#define HOLE_START UINT64_C(0x80000)
#define HOLE_END UINT64_C(0xC0000)

enum {
        OP_ENTRY,
        OP_BYTES,
        OP_BANNER,
        OP_COPY,
        OP_COPY_KERNEL_HALF = 1 << 2,
};

enum {
        ENTRY_PRESENT = 1 << 0,
        ENTRY_PS = 1 << 1,
        ENTRY_ACCESSED_DIRTY = 1 << 2,
        ENTRY_PAST_RAM = 1 << 3, /* the target + 256 pages: just past RAM, or the page the file lacks */
        ENTRY_NX = 1 << 4,
        ENTRY_PAT_LARGE = 1 << 5,
        ENTRY_RW_US = 1 << 6,
        ENTRY_HIGH = 1 << 7, /* bit 51: far outside RAM */
};

/* What the kernel's .rodata holds, and what looks like it but is not. */
static const char *const banners[8] = {
        "Linux version 6.1.0-x (builder) #1 SMP PREEMPT_DYNAMIC Debian 6.1.0-x\n",
        ("Linux version 6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) "
         "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 (2025-11-09)\n"),
        "Linux version x.6.1 (builder)",   /* not a digit first */
        "Linux version 6.1.0-x",           /* cut off before " (" */
        "Linux version 6.1.0-x(builder)",  /* no blank */
        "Linux version  (builder)",        /* no release */
        /* 64 characters, the most uname -r gives */
        "Linux version 6.1.0-0123456789012345678901234567890123456789012345678901234567 (b)",
        /* 65 */
        "Linux version 6.1.0-01234567890123456789012345678901234567890123456789012345678 (b)",
};

typedef struct Ram {
        uint8_t bytes[RAM_SIZE];
        bool dirty[RAM_PAGES];
        uint64_t map_size; /* what the map claims: RAM_SIZE, or a page more than the file */
        vmsig_gpa_range ranges[2];
        size_t n_ranges;
} Ram;

static Ram ram;
static int ram_fd = -1, ram_ro_fd = -1;

static uint64_t entry_value(unsigned target, uint8_t bits) {
        uint64_t e = ((uint64_t) target + (bits & ENTRY_PAST_RAM ? RAM_PAGES : 0)) * PAGE;

        e |= bits & ENTRY_PRESENT ? PTE_PRESENT : 0;
        e |= bits & ENTRY_PS ? PTE_PS : 0;
        e |= bits & ENTRY_ACCESSED_DIRTY ? PTE_ACCESSED_DIRTY : 0;
        e |= bits & ENTRY_NX ? PTE_NX : 0;
        e |= bits & ENTRY_PAT_LARGE ? PTE_PAT_LARGE : 0;
        e |= bits & ENTRY_RW_US ? PTE_RW_US : 0;
        e |= bits & ENTRY_HIGH ? PTE_HIGH : 0;
        return e;
}

static void ram_write(uint64_t gpa, const void *data, size_t len) {
        if (gpa >= RAM_SIZE)
                return;
        len = (size_t) MIN((uint64_t) len, RAM_SIZE - gpa);
        if (len == 0)
                return;
        memcpy(ram.bytes + gpa, data, len);
        for (uint64_t p = gpa / PAGE; p <= (gpa + len - 1) / PAGE; p++)
                ram.dirty[p] = true;
}

static void apply_record(FuzzInput *in) {
        uint8_t op = fuzz_u8(in);

        switch (op & 3) {
        case OP_ENTRY: {
                unsigned table = fuzz_u8(in), index = fuzz_u16(in) % 512, target = fuzz_u8(in);
                uint64_t e = htole64(entry_value(target, fuzz_u8(in)));

                ram_write(table * PAGE + index * 8, &e, sizeof e);
                break;
        }
        case OP_BYTES: {
                unsigned page = fuzz_u8(in), offset = fuzz_u16(in) % PAGE;
                size_t len = fuzz_u8(in);

                len = MIN(len, in->left);

                ram_write(page * PAGE + offset, in->p, len);
                in->p += len;
                in->left -= len;
                break;
        }
        case OP_BANNER: {
                unsigned page = fuzz_u8(in), offset = fuzz_u16(in) % PAGE;
                const char *b = banners[fuzz_u8(in) % ELEMENTSOF(banners)];

                ram_write(page * PAGE + offset, b, strlen(b));
                break;
        }
        case OP_COPY: {
                unsigned from = fuzz_u8(in), to = fuzz_u8(in);
                size_t start = op & OP_COPY_KERNEL_HALF ? PAGE / 2 : 0;

                if (from != to)
                        ram_write(to * PAGE + start, ram.bytes + from * PAGE + start, PAGE - start);
                break;
        }
        }
}

/* A fresh file for each input, written where the input wrote: a memfd's
 * holes read as zeroes. */
static void ram_flush(void) {
        char path[64];

        if (ram_fd < 0) {
                ram_fd = memfd_create("fuzz-linux-ram", MFD_CLOEXEC);
                fuzz_check(ram_fd >= 0);
                snprintf(path, sizeof path, "/proc/self/fd/%d", ram_fd);
                ram_ro_fd = open(path, O_RDONLY | O_CLOEXEC);
                fuzz_check(ram_ro_fd >= 0);
        }
        fuzz_check(ftruncate(ram_fd, 0) == 0 && ftruncate(ram_fd, (off_t) RAM_SIZE) == 0);
        for (unsigned p = 0; p < RAM_PAGES; p++)
                if (ram.dirty[p])
                        fuzz_check(pwrite(ram_fd, ram.bytes + p * PAGE, PAGE, (off_t) (p * PAGE)) == (ssize_t) PAGE);
}

static uint64_t ram_u64(uint64_t gpa) {
        uint64_t v;

        memcpy(&v, ram.bytes + gpa, sizeof v);
        return le64toh(v);
}

/* --- what a result claims, checked against the RAM ---------------------- */

static void ram_map(uint8_t flags) {
        ram.map_size = RAM_SIZE + (flags & FLAG_SHORT_FILE ? PAGE : 0);
        if (flags & FLAG_HOLE) {
                ram.ranges[0] = (vmsig_gpa_range) { .gpa = 0, .size = HOLE_START, .offset = 0 };
                ram.ranges[1] = (vmsig_gpa_range) {
                        .gpa = HOLE_END,
                        .size = ram.map_size - HOLE_END,
                        .offset = HOLE_END,
                };
                ram.n_ranges = 2;
        } else {
                ram.ranges[0] = (vmsig_gpa_range) { .gpa = 0, .size = ram.map_size, .offset = 0 };
                ram.n_ranges = 1;
        }
}

static vmsig_guest_mem ram_source(void) {
        return (vmsig_guest_mem) {
                .read_fd = ram_ro_fd,
                .ranges = ram.ranges,
                .n_ranges = ram.n_ranges,
                .ram_size = ram.map_size,
        };
}

/* A GPA the map calls RAM, as detect.h defines it. */
static bool is_ram(uint64_t gpa) {
        return gpa < ram.map_size && !(ram.n_ranges == 2 && gpa >= HOLE_START && gpa < HOLE_END);
}

/* [gpa, gpa + len) in one range of the map and in the file. */
static bool in_one_range(uint64_t gpa, uint64_t len) {
        return len > 0 && gpa < RAM_SIZE && len <= RAM_SIZE - gpa && is_ram(gpa) && is_ram(gpa + len - 1) &&
               (ram.n_ranges == 1 || (gpa < HOLE_START) == (gpa + len - 1 < HOLE_START));
}

/* The page walk of the SDM, on the harness's copy of RAM: PS makes a leaf
 * in a PDPTE and a PDE only, a table must be in the file. */
static bool translate(uint64_t root, unsigned levels, uint64_t va, uint64_t *ret) {
        uint64_t table = root & PTE_ADDR_MASK;

        for (unsigned level = levels; level >= 1; level--) {
                unsigned shift = 12 + 9 * (level - 1);
                uint64_t e;

                if (!in_one_range(table, PAGE))
                        return false;
                e = ram_u64(table + ((va >> shift) & 511) * 8);
                if (!(e & PTE_PRESENT))
                        return false;
                if (level == 1 || ((level == 2 || level == 3) && (e & PTE_PS))) {
                        uint64_t size = UINT64_C(1) << shift;

                        *ret = (e & PTE_ADDR_MASK & ~(size - 1)) | (va & (size - 1));
                        return true;
                }
                table = e & PTE_ADDR_MASK;
        }
        return false;
}

/* Present entries 256..511 that lead into RAM. */
static unsigned kernel_entries(uint64_t root) {
        unsigned n = 0;

        for (unsigned i = 256; i < 512; i++) {
                uint64_t e = ram_u64(root + i * 8);

                n += (e & PTE_PRESENT) && is_ram(e & PTE_ADDR_MASK);
        }
        return n;
}

static uint64_t normalized(uint64_t e) {
        return e & PTE_PRESENT ? e & ~PTE_ACCESSED_DIRTY : 0;
}

/* init_mm's root: the kernel half of root's, entry for entry, accessed and
 * dirty aside, but for at most one entry present only in root. */
static bool shares_kernel_half(uint64_t init_mm, uint64_t root) {
        unsigned only_in_root = 0;

        for (unsigned i = 256; i < 512; i++) {
                uint64_t a = normalized(ram_u64(init_mm + i * 8)), b = normalized(ram_u64(root + i * 8));

                if (a == b)
                        continue;
                if (a != 0 || only_in_root++ > 0)
                        return false;
        }
        return true;
}

static bool is_release_char(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' ||
               c == '+' || c == '~' || c == '-';
}

static void check_found(const vmsig_guest_mem *s, uint64_t cr3, unsigned levels, const vmsig_linux_result *r) {
        size_t n = strnlen(r->release, sizeof r->release);
        char banner[sizeof BANNER_PREFIX + VMSIG_LINUX_RELEASE_MAX + 2];
        vmsig_linux_result moved;
        uint64_t gpa, len;

        fuzz_check(r->levels == levels);
        fuzz_check((r->root & (PAGE - 1)) == 0 && in_one_range(r->root, PAGE));
        fuzz_check((r->cr3_root & (PAGE - 1)) == 0 && in_one_range(r->cr3_root, PAGE));

        /* The root CR3 led to: its own, or with PTI the kernel one below,
         * which maps more of the kernel half. */
        fuzz_check(r->kernel_entries == kernel_entries(r->cr3_root));
        if (r->pti) {
                fuzz_check((cr3 & PTE_ADDR_MASK & PAGE) != 0 && in_one_range(cr3 & PTE_ADDR_MASK, PAGE));
                fuzz_check(r->cr3_root == (cr3 & PTE_ADDR_MASK) - PAGE);
                fuzz_check(r->kernel_entries > kernel_entries(cr3 & PTE_ADDR_MASK));
        } else
                fuzz_check(r->cr3_root == (cr3 & PTE_ADDR_MASK));
        if (r->init_mm) {
                fuzz_check(shares_kernel_half(r->root, r->cr3_root));
                if (r->pti)
                        fuzz_check((r->root & (2 * PAGE - 1)) == 0);
        } else
                fuzz_check(r->root == r->cr3_root);

        /* A release as uname -r gives it. */
        fuzz_check(n >= 1 && n <= VMSIG_LINUX_RELEASE_MAX);
        fuzz_check(r->release[0] >= '0' && r->release[0] <= '9');
        for (size_t i = 0; i < n; i++)
                fuzz_check(is_release_char(r->release[i]));

        /* The banner is where the result says, whole, in RAM, and mapped
         * there in the kernel image under both roots. */
        len = (uint64_t) snprintf(banner, sizeof banner, BANNER_PREFIX "%s (", r->release);
        fuzz_check(in_one_range(r->banner_gpa, len));
        fuzz_check(memcmp(ram.bytes + r->banner_gpa, banner, len) == 0);
        fuzz_check(r->banner_va >= IMAGE_VA && r->banner_va < IMAGE_END);
        fuzz_check(translate(r->root, levels, r->banner_va, &gpa) && gpa == r->banner_gpa);
        fuzz_check(translate(r->cr3_root, levels, r->banner_va, &gpa) && gpa == r->banner_gpa);

        fuzz_check(vmsig_linux_check(s, r) == 1);
        /* The check looks: one byte off, "inux version" is no banner. */
        moved = *r;
        moved.banner_gpa++;
        fuzz_check(vmsig_linux_check(s, &moved) == 0);
        moved = *r;
        moved.levels = 3;
        fuzz_check(vmsig_linux_check(s, &moved) == -EINVAL);
        moved = *r;
        moved.release[0] = '\0';
        fuzz_check(vmsig_linux_check(s, &moved) == -EINVAL);
}

/* --- the probe ------------------------------------------------------------ */

static void result_fill(vmsig_linux_result *r) {
        memset(r, 0xA5, sizeof *r);
}

static bool result_untouched(const vmsig_linux_result *r) {
        vmsig_linux_result sentinel;

        result_fill(&sentinel);
        return memcmp(r, &sentinel, sizeof *r) == 0;
}

/* Field by field: padding is no part of a result. */
static bool results_equal(const vmsig_linux_result *a, const vmsig_linux_result *b) {
        return a->root == b->root && a->cr3_root == b->cr3_root && a->levels == b->levels && a->pti == b->pti &&
               a->init_mm == b->init_mm && a->kernel_entries == b->kernel_entries && a->banner_va == b->banner_va &&
               a->banner_gpa == b->banner_gpa && strcmp(a->release, b->release) == 0;
}

static int probe_stepped(const vmsig_guest_mem *s, uint64_t cr3, unsigned levels, vmsig_linux_result *ret) {
        static char sentinel;
        vmsig_linux_probe *p = NULL, *q = (vmsig_linux_probe *) &sentinel;
        vmsig_linux_probe_stats stats;
        vmsig_linux_result res, again;
        uint64_t prev = 0;
        unsigned steps = 0;
        int r;

        fuzz_check(vmsig_linux_probe_new(s, cr3, 3, &q) == -EINVAL && q == (vmsig_linux_probe *) &sentinel);
        fuzz_check(vmsig_linux_probe_new(s, cr3, levels, &p) == 0 && p);
        result_fill(&res);
        fuzz_check(vmsig_linux_probe_step(p, VMSIG_LINUX_MIN_BUDGET - 1, &res) == -EINVAL);
        fuzz_check(result_untouched(&res));

        do {
                r = vmsig_linux_probe_step(p, VMSIG_LINUX_MIN_BUDGET, &res);
                steps++;
                vmsig_linux_probe_get_stats(p, &stats);
                fuzz_check(stats.bytes_read - prev <= STEP_BYTES_MAX);
                if (r == 0) {
                        fuzz_check(stats.bytes_read - prev >= STEP_BYTES_MIN);
                        fuzz_check(result_untouched(&res));
                }
                prev = stats.bytes_read;
                fuzz_check(steps <= STEPS_MAX);
        } while (r == 0);

        fuzz_check(stats.steps == steps);
        fuzz_check(stats.roots <= ROOTS_MAX);
        fuzz_check(stats.searched <= stats.roots * VMSIG_LINUX_SEARCH_LIMIT);
        fuzz_check(stats.bytes_read <= BYTES_MAX);

        /* Done is done: the same answer, nothing read. */
        result_fill(&again);
        fuzz_check(vmsig_linux_probe_step(p, VMSIG_LINUX_MIN_BUDGET, &again) == r);
        if (r == 1)
                fuzz_check(results_equal(&again, &res));
        else
                fuzz_check(result_untouched(&again) && result_untouched(&res));
        vmsig_linux_probe_get_stats(p, &stats);
        fuzz_check(stats.steps == steps && stats.bytes_read == prev);

        vmsig_linux_probe_free(p);
        *ret = res;
        return r;
}

/* The first 4 bytes of the input. */
typedef struct Header {
        uint8_t flags;
        unsigned levels;
        uint64_t cr3;
} Header;

static Header take_header(FuzzInput *in) {
        Header h = { .flags = fuzz_u8(in) };
        uint64_t page = fuzz_u8(in) + (h.flags & FLAG_CR3_PAST_RAM ? RAM_PAGES : 0);
        uint16_t low = fuzz_u16(in);

        h.levels = h.flags & FLAG_FIVE_LEVELS ? 5 : 4;
        h.cr3 = page * PAGE | (low & 0xFFF) | (low & 0x8000 ? UINT64_C(1) << 63 : 0);
        return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzInput in = { .p = data, .left = size };
        Header h = take_header(&in);
        vmsig_linux_result stepped, all;
        int r_stepped, r_all;

        memset(&ram, 0, sizeof ram);
        ram_map(h.flags);
        while (in.left > 0)
                apply_record(&in);
        ram_flush();
        vmsig_guest_mem s = ram_source();

        r_stepped = probe_stepped(&s, h.cr3, h.levels, &stepped);
        result_fill(&all);
        r_all = vmsig_linux_probe_all(&s, h.cr3, h.levels, &all);
        /* Only the page the file lacks can fail a read. */
        fuzz_check(r_all == 1 || r_all == -ENOENT || (r_all == -EIO && (h.flags & FLAG_SHORT_FILE)));
        fuzz_check(r_stepped == 1 || r_stepped == -ENOENT || (r_stepped == -EIO && (h.flags & FLAG_SHORT_FILE)));
        if (r_stepped == 1)
                check_found(&s, h.cr3, h.levels, &stepped);
        if (r_all == 1)
                check_found(&s, h.cr3, h.levels, &all);
        else
                fuzz_check(result_untouched(&all));
        /* Reads of other sizes run into the page the file lacks at other
         * points: one probe may fail before the banner that the other
         * found just ahead of it. Without a failed read, the budget
         * changes nothing. */
        if (r_stepped != -EIO && r_all != -EIO) {
                fuzz_check(r_stepped == r_all);
                if (r_all == 1)
                        fuzz_check(results_equal(&stepped, &all));
        }
        return 0;
}

void fuzz_teardown(void) {
        ram_fd = safe_close(ram_fd);
        ram_ro_fd = safe_close(ram_ro_fd);
}

#ifdef FUZZ_WRITE_SEEDS
/* --- the seeds -------------------------------------------------------------- */

typedef struct Seed {
        uint8_t bytes[4096];
        size_t len;
} Seed;

static void put(Seed *s, const void *data, size_t len) {
        if (s->len + len > sizeof s->bytes)
                abort();
        memcpy(s->bytes + s->len, data, len);
        s->len += len;
}

static void put_u8(Seed *s, unsigned v) {
        uint8_t b = (uint8_t) v;

        put(s, &b, 1);
}

static void put_u16(Seed *s, unsigned v) {
        uint16_t w = htole16((uint16_t) v);

        put(s, &w, 2);
}

static void seed_begin(Seed *s, uint8_t flags, unsigned cr3_page, unsigned pcid) {
        s->len = 0;
        put_u8(s, flags);
        put_u8(s, cr3_page);
        put_u16(s, pcid);
}

static void seed_entry(Seed *s, unsigned table, unsigned index, unsigned target, unsigned bits) {
        put_u8(s, OP_ENTRY);
        put_u8(s, table);
        put_u16(s, index);
        put_u8(s, target);
        put_u8(s, bits);
}

static void seed_banner(Seed *s, unsigned page, unsigned offset, unsigned variant) {
        put_u8(s, OP_BANNER);
        put_u8(s, page);
        put_u16(s, offset);
        put_u8(s, variant);
}

static void seed_copy(Seed *s, unsigned from, unsigned to, bool kernel_half) {
        put_u8(s, OP_COPY | (kernel_half ? OP_COPY_KERNEL_HALF : 0));
        put_u8(s, from);
        put_u8(s, to);
}

#define P ENTRY_PRESENT
#define PS (ENTRY_PRESENT | ENTRY_PS)

/* The kernel image's tables under a 4-level root: PML4[511] -> PDPT 0x11,
 * PDPT[510] -> PD 0x12, PD[0] -> PT 0x13, whose entries map pages[] at
 * 0xffffffff80000000 on. */
static void seed_image(Seed *s, unsigned root, const unsigned *pages, size_t n) {
        seed_entry(s, root, 511, 0x11, P | ENTRY_RW_US);
        seed_entry(s, 0x11, 510, 0x12, P | ENTRY_RW_US);
        seed_entry(s, 0x11, 511, 0x70, P); /* the fixmap: not searched */
        seed_entry(s, 0x12, 0, 0x13, P | ENTRY_RW_US);
        for (size_t i = 0; i < n; i++)
                seed_entry(s, 0x13, (unsigned) i, pages[i], P | ENTRY_NX);
}

/* A few more kernel-half entries (direct map, vmalloc, vmemmap) and user
 * ones, as a root has. */
static void seed_root_body(Seed *s, unsigned root) {
        seed_entry(s, root, 0, 0x80, P | ENTRY_RW_US);
        seed_entry(s, root, 255, 0x81, P | ENTRY_RW_US);
        seed_entry(s, root, 273, 0x82, P | ENTRY_RW_US);
        seed_entry(s, root, 338, 0x83, P | ENTRY_RW_US);
        seed_entry(s, root, 488, 0x84, P | ENTRY_RW_US);
}

static int write_seed(const char *dir, const char *name, const Seed *seed) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = fopen(path, "we");
        if (!f)
                return -errno;
        if (fwrite(seed->bytes, 1, seed->len, f) != seed->len) {
                fclose(f);
                return -EIO;
        }
        if (fclose(f) != 0)
                return -errno;

        /* Say what the seed leads to, for whoever names it. */
        LLVMFuzzerTestOneInput(seed->bytes, seed->len);
        vmsig_guest_mem s = ram_source();
        vmsig_linux_result res = {};
        FuzzInput in = { .p = seed->bytes, .left = seed->len };
        Header h = take_header(&in);
        int r = vmsig_linux_probe_all(&s, h.cr3, h.levels, &res);
        printf("%s: %zu bytes: %d root 0x%" PRIx64 " cr3_root 0x%" PRIx64 "%s%s entries %u banner 0x%" PRIx64
               " at 0x%" PRIx64 " \"%s\"\n",
               name, seed->len, r, res.root, res.cr3_root, res.pti ? " pti" : "", res.init_mm ? " init_mm" : "",
               res.kernel_entries, res.banner_va, res.banner_gpa, res.release);
        return 0;
}

/* 4-level paging: a plain kernel, a process, PTI. */
static int seeds_4_level(const char *dir) {
        Seed s;
        int r = 0;

        /* CR3 is init_mm's root, 4 KiB pages, the banner in the second. */
        seed_begin(&s, 0, 0x10, 0);
        seed_root_body(&s, 0x10);
        seed_image(&s, 0x10, (const unsigned[]) { 0x20, 0x21, 0x22, 0x10 }, 4);
        seed_banner(&s, 0x21, 0x100, 0);
        r |= write_seed(dir, "4-level", &s);

        /* A process's root (PCID 5, odd page: the one below is no kernel
         * root) with an LDT entry of its own, init_mm's root in the image
         * with accessed and dirty bits that differ. */
        seed_begin(&s, 0, 0x31, 5);
        seed_root_body(&s, 0x14);
        seed_image(&s, 0x14, (const unsigned[]) { 0x20, 0x21, 0x22, 0x23, 0x14 }, 5);
        seed_banner(&s, 0x22, 0x7C0, 1);
        seed_copy(&s, 0x14, 0x31, true);
        seed_entry(&s, 0x31, 511, 0x11, P | ENTRY_RW_US | ENTRY_ACCESSED_DIRTY);
        seed_entry(&s, 0x31, 0x1F7, 0x85, P | ENTRY_RW_US); /* the LDT remap */
        seed_entry(&s, 0x31, 0, 0x86, P | ENTRY_RW_US);
        r |= write_seed(dir, "4-level-process", &s);

        /* PTI: CR3 is the user root 0x41 (PCID 0x801), which maps only
         * the entry text and the CPU entry area of the kernel half; the
         * kernel root 0x40 below it has all of init_mm's (0x16, 8 KiB
         * aligned, in the image). */
        seed_begin(&s, 0, 0x41, 0x801);
        seed_root_body(&s, 0x16);
        seed_image(&s, 0x16, (const unsigned[]) { 0x20, 0x21, 0x16, 0x17 }, 4);
        seed_banner(&s, 0x20, 0x0, 0);
        seed_copy(&s, 0x16, 0x40, true);
        seed_entry(&s, 0x41, 0, 0x87, P | ENTRY_RW_US);
        seed_entry(&s, 0x41, 508, 0x88, P);
        seed_entry(&s, 0x41, 511, 0x89, P);
        r |= write_seed(dir, "4-level-pti", &s);
        return r;
}

/* 5-level paging, and the same walked with 4 levels. */
static int seeds_5_level(const char *dir) {
        Seed s;
        int r = 0;

        /* 5 levels, PML5 0x50 -> PML4 0x51 -> PDPT 0x52 -> PD 0x53, whose
         * entry 2 is a 2 MiB page at 0 (half of it RAM) with Debian's
         * banner; the PML5 is in it, so it is init_mm's too. */
        seed_begin(&s, FLAG_FIVE_LEVELS, 0x50, 0);
        seed_entry(&s, 0x50, 0, 0x80, P | ENTRY_RW_US);
        seed_entry(&s, 0x50, 511, 0x51, P | ENTRY_RW_US);
        seed_entry(&s, 0x51, 511, 0x52, P | ENTRY_RW_US);
        seed_entry(&s, 0x51, 273, 0x82, P | ENTRY_RW_US);
        seed_entry(&s, 0x52, 510, 0x53, P | ENTRY_RW_US);
        seed_entry(&s, 0x52, 511, 0x70, P);
        seed_entry(&s, 0x53, 2, 0x00, PS | ENTRY_ACCESSED_DIRTY);
        seed_banner(&s, 0x08, 0x40, 1);
        r |= write_seed(dir, "5-level-2m", &s);

        /* The same walked with 4 levels: PML5[511] taken for the PML4,
         * PML4[510] for PDPTE 510. No banner there. */
        s.bytes[0] &= (uint8_t) ~FLAG_FIVE_LEVELS;
        r |= write_seed(dir, "5-level-walked-as-4", &s);

        /* PTI with 5 levels: the user root maps nothing of the kernel. */
        seed_begin(&s, FLAG_FIVE_LEVELS, 0x5B, 0x802);
        seed_entry(&s, 0x5A, 511, 0x51, P | ENTRY_RW_US);
        seed_entry(&s, 0x5A, 0x1FF - 1, 0x88, P);
        seed_entry(&s, 0x51, 511, 0x52, P | ENTRY_RW_US);
        seed_entry(&s, 0x52, 510, 0x53, P | ENTRY_RW_US);
        seed_entry(&s, 0x53, 0, 0x54, P);
        seed_entry(&s, 0x54, 0, 0x20, P);
        seed_entry(&s, 0x54, 1, 0x5A, P);
        seed_banner(&s, 0x20, 0xF00, 0);
        seed_entry(&s, 0x5B, 0, 0x87, P | ENTRY_RW_US);
        r |= write_seed(dir, "5-level-pti", &s);
        return r;
}

/* Large pages, banners across pages, holes, short files, cycles. */
static int seeds_odd(const char *dir) {
        Seed s;
        int r = 0;

        /* A 1 GiB page at 0 for PDPTE 510; a decoy banner first (no
         * digit), the real one in the next page. */
        seed_begin(&s, 0, 0x10, 0);
        seed_root_body(&s, 0x10);
        seed_entry(&s, 0x10, 511, 0x11, P | ENTRY_RW_US);
        seed_entry(&s, 0x11, 510, 0x00, PS | ENTRY_PAT_LARGE);
        seed_banner(&s, 0x06, 0x10, 2);
        seed_banner(&s, 0x07, 0x20, 0);
        r |= write_seed(dir, "4-level-1g", &s);

        /* Banners across page boundaries: one over pages contiguous in VA
         * but not in GPA (not a banner there), one over pages contiguous
         * in both. */
        seed_begin(&s, 0, 0x10, 0);
        seed_root_body(&s, 0x10);
        seed_image(&s, 0x10, (const unsigned[]) { 0x20, 0x25, 0x22, 0x23 }, 4);
        seed_banner(&s, 0x20, 0xFF0, 0);
        seed_banner(&s, 0x22, 0xFF8, 1);
        r |= write_seed(dir, "4-level-straddling", &s);

        /* A 2 MiB page over a hole in the map, the banner after it. */
        seed_begin(&s, FLAG_HOLE, 0x10, 0);
        seed_root_body(&s, 0x10);
        seed_entry(&s, 0x10, 511, 0x11, P | ENTRY_RW_US);
        seed_entry(&s, 0x11, 510, 0x12, P | ENTRY_RW_US);
        seed_entry(&s, 0x12, 0, 0x00, PS);
        seed_banner(&s, 0x90, 0x10, 0); /* in the hole: not RAM, not searched */
        seed_banner(&s, 0xD0, 0x10, 1);
        r |= write_seed(dir, "4-level-hole", &s);

        /* The PT is the page the file lacks: the read fails. */
        seed_begin(&s, FLAG_SHORT_FILE, 0x10, 0);
        seed_root_body(&s, 0x10);
        seed_image(&s, 0x10, (const unsigned[]) { 0x20 }, 1);
        seed_entry(&s, 0x12, 0, 0x00, P | ENTRY_PAST_RAM);
        seed_banner(&s, 0x20, 0, 0);
        r |= write_seed(dir, "short-file", &s);

        /* Tables that are each other and themselves: the root is its own
         * PDPT, PD and PT, so the image maps the root only. */
        seed_begin(&s, 0, 0x10, 0);
        seed_entry(&s, 0x10, 511, 0x10, P);
        seed_entry(&s, 0x10, 510, 0x10, P);
        seed_entry(&s, 0x10, 0, 0x10, P);
        seed_banner(&s, 0x10, 0x800, 0);
        r |= write_seed(dir, "self-referencing", &s);
        return r;
}

int main(int argc, char **argv) {
        int r = 0;

        if (argc != 2) {
                fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
                return 2;
        }
        r |= seeds_4_level(argv[1]);
        r |= seeds_5_level(argv[1]);
        r |= seeds_odd(argv[1]);
        fuzz_teardown();
        return r < 0 ? 1 : 0;
}
#endif
