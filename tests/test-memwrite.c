/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memwrite on a hand-built guest: RAM in a memfd with a hole in the GPA
 * space, x86-64 page tables written into it, and every rejected write
 * checked against a snapshot of the whole file. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <glib.h>

#include "event-loop.h"
#include "memwrite.h"
#include "vt-util.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define FILE_SIZE (8 * MiB)

/* GPA [0, 4M) at file offset 0, a hole at [4M, 5M), [5M, 8M) at 4M. The
 * last MiB of the file is no guest memory at all. */
static const vmsig_gpa_range test_ranges[] = {
        { .gpa = 0, .size = 4 * MiB, .offset = 0 },
        { .gpa = 5 * MiB, .size = 3 * MiB, .offset = 4 * MiB },
};

/* Page tables, all in the first range where GPA == file offset. */
#define PML4 UINT64_C(0x1000)
#define PDPT_LO UINT64_C(0x2000)
#define PD_LO UINT64_C(0x3000)
#define PT_LO UINT64_C(0x4000)
#define PDPT_HI UINT64_C(0x5000)
#define PD_HI UINT64_C(0x6000)
#define PT_HI UINT64_C(0x7000)
#define PDPT_EDGE UINT64_C(0x8000)
#define PD_EDGE UINT64_C(0x9000)
#define PT_EDGE UINT64_C(0xA000)
#define HOLE_TABLE UINT64_C(0x480000) /* a "table" in the RAM hole */
/* 5-level paging: a PML5 whose entries 0 and 511 reuse the 4-level PML4,
 * and a second PML4 for VAs only 5 levels make canonical. */
#define PML5 UINT64_C(0xB000)
#define PML4_57 UINT64_C(0xC000)

#define P_RW UINT64_C(0x3)
#define PS (UINT64_C(1) << 7)
#define PAT_LARGE (UINT64_C(1) << 12)
#define NX (UINT64_C(1) << 63)
#define AVAILABLE_HIGH UINT64_C(0x07F0000000000000) /* bits 52..58 */

/* CR3 with PWT and PCD set: only bits 12..51 name the PML4. */
#define DTB (PML4 | 0x18)
#define DTB5 (PML5 | 0x18)

/* VA -> GPA layout built by build_page_tables():
 *   0x10000           4K -> 0x20000
 *   0x11000           4K, PTE not present
 *   0x12000           4K -> 0x3FF000 (last page of the first range)
 *   0x13000           4K -> 0x500000 (first page of the second range)
 *   0x14000           4K -> 0x400000 (in the hole)
 *   0x15000           4K -> 0x21000, with NX, PAT and high bits set
 *   0x1FF000          4K -> 0x24000, next to the 2M page
 *   2M                2M -> 6M, with the PAT bit set
 *   4M                PDE not present
 *   6M                PDE points at a table in the hole
 *   1G                1G -> 0, with the PAT bit set; RAM only up to 8M
 *   2G                PDPTE not present
 *   3G                PDPTE points at a table in the hole
 *   512G              PML4E not present
 *   0x7FFFFFFFF000    4K -> 0x23000, the top of the lower half, through a
 *                     PML4E with bit 7 set
 *   0xFFFFFFFFFFFFF000 4K -> 0x22000, the top of the address space, through
 *                     a PML4E with NX and high bits set
 *
 * Through the PML5 (5 levels) everything below 2^48 and from
 * 0xFFFF000000000000 up translates as with 4 levels (PML5E 0 and 511 ->
 * PML4), and:
 *   0x0001000000010000 4K -> 0x20000, PML5E 1 (with bit 7 set) -> PML4_57,
 *                     whose entry 0 reuses PDPT_LO
 *   0x00FF000000000000 PML5E 255, not present: the top of the lower half
 *   0xFF00000000000000 PML5E 256, not present: the bottom of the upper half
 *   0xFF11000000000000 PML5E 273 points at a table in the hole */
#define VA_4K UINT64_C(0x10000)
#define VA_NP UINT64_C(0x11000)
#define VA_LAST UINT64_C(0x12000)
#define VA_FIRST UINT64_C(0x13000)
#define VA_HOLE UINT64_C(0x14000)
#define VA_FLAGS UINT64_C(0x15000)
#define VA_BEFORE_2M UINT64_C(0x1FF000)
#define VA_2M (2 * MiB)
#define VA_PDE_NP (4 * MiB)
#define VA_PDE_HOLE (6 * MiB)
#define VA_1G (1 * GiB)
#define VA_PDPTE_NP (2 * GiB)
#define VA_PDPTE_HOLE (3 * GiB)
#define VA_PML4E_NP (512 * GiB)
#define VA_EDGE UINT64_C(0x7FFFFFFFF000)
#define VA_TOP UINT64_C(0xFFFFFFFFFFFFF000)
#define VA5_LOW UINT64_C(0x0001000000010000)
#define VA5_LOW_TOP UINT64_C(0x00FF000000000000)
#define VA5_HIGH_BOTTOM UINT64_C(0xFF00000000000000)
#define VA5_HOLE UINT64_C(0xFF11000000000000)

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(vmsig_memwrite_plan, vmsig_memwrite_plan_done)

typedef struct Fixture {
        int fd;      /* read-write: the test's own view */
        int read_fd; /* read-only, as the daemon holds it */
        vmsig_guest_mem mem;
        uint8_t *snapshot;
} Fixture;

/* The file offset of a GPA in the test layout. */
static uint64_t off(uint64_t gpa) {
        if (gpa < 4 * MiB)
                return gpa;
        g_assert_cmpuint(gpa, >=, 5 * MiB);
        g_assert_cmpuint(gpa, <, 8 * MiB);
        return gpa - MiB;
}

static void write_at(int fd, uint64_t offset, const void *data, size_t len) {
        g_assert_cmpint(pwrite(fd, data, len, (off_t) offset), ==, (ssize_t) len);
}

static void read_at(int fd, uint64_t offset, void *buf, size_t len) {
        g_assert_cmpint(pread(fd, buf, len, (off_t) offset), ==, (ssize_t) len);
}

static void set_entry(Fixture *f, uint64_t table, unsigned index, uint64_t value) {
        uint64_t le = htole64(value);

        write_at(f->fd, off(table + index * 8), &le, sizeof le);
}

static void build_page_tables(Fixture *f) {
        static const uint8_t zero[4096];
        static const uint64_t tables[] = { PML4,   PDPT_LO, PD_LO,   PT_LO, PDPT_HI, PD_HI,
                                           PT_HI, PDPT_EDGE, PD_EDGE, PT_EDGE, PML5,    PML4_57 };

        for (size_t i = 0; i < G_N_ELEMENTS(tables); i++)
                write_at(f->fd, off(tables[i]), zero, sizeof zero);

        set_entry(f, PML4, 0, PDPT_LO | P_RW);
        /* Bit 7 of a PML4E is reserved, not a 512G page. */
        set_entry(f, PML4, 255, PDPT_EDGE | PS | P_RW);
        /* NX and high bits in a table entry are no address bits either. */
        set_entry(f, PML4, 511, PDPT_HI | NX | AVAILABLE_HIGH | P_RW);

        set_entry(f, PDPT_LO, 0, PD_LO | P_RW);
        set_entry(f, PDPT_LO, 1, 0 | PS | PAT_LARGE | P_RW);
        set_entry(f, PDPT_LO, 3, HOLE_TABLE | P_RW);

        set_entry(f, PD_LO, 0, PT_LO | P_RW);
        set_entry(f, PD_LO, 1, (6 * MiB) | PS | PAT_LARGE | P_RW);
        set_entry(f, PD_LO, 3, HOLE_TABLE | P_RW);

        set_entry(f, PT_LO, 0x10, 0x20000 | P_RW);
        set_entry(f, PT_LO, 0x11, 0x20000); /* an address, but not present */
        set_entry(f, PT_LO, 0x12, 0x3FF000 | P_RW);
        set_entry(f, PT_LO, 0x13, 0x500000 | P_RW);
        set_entry(f, PT_LO, 0x14, 0x400000 | P_RW);
        /* Bit 7 of a PTE is PAT, not PS. */
        set_entry(f, PT_LO, 0x15, 0x21000 | NX | AVAILABLE_HIGH | PS | P_RW);
        set_entry(f, PT_LO, 0x1FF, 0x24000 | P_RW);

        set_entry(f, PDPT_EDGE, 511, PD_EDGE | P_RW);
        set_entry(f, PD_EDGE, 511, PT_EDGE | P_RW);
        set_entry(f, PT_EDGE, 511, 0x23000 | P_RW);

        set_entry(f, PDPT_HI, 511, PD_HI | P_RW);
        set_entry(f, PD_HI, 511, PT_HI | P_RW);
        set_entry(f, PT_HI, 511, 0x22000 | P_RW);

        set_entry(f, PML5, 0, PML4 | P_RW);
        /* Bit 7 of a PML5E is reserved too, and NX no address bit. */
        set_entry(f, PML5, 1, PML4_57 | PS | NX | P_RW);
        set_entry(f, PML5, 273, HOLE_TABLE | P_RW);
        set_entry(f, PML5, 511, PML4 | P_RW);
        set_entry(f, PML4_57, 0, PDPT_LO | P_RW);
}

static int open_read_only(int fd) {
        char path[64];
        int r;

        g_snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        r = open(path, O_RDONLY | O_CLOEXEC);
        g_assert_cmpint(r, >=, 0);
        return r;
}

static void fixture_setup(Fixture *f, gconstpointer data) {
        g_autofree uint8_t *fill = g_malloc(FILE_SIZE);

        f->fd = memfd_create("guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        g_assert_cmpint(f->fd, >=, 0);
        /* A pattern everywhere, so a stray write shows. */
        for (size_t i = 0; i < FILE_SIZE; i++)
                fill[i] = (uint8_t) (i * 7 + (i >> 12) + 3);
        write_at(f->fd, 0, fill, FILE_SIZE);
        build_page_tables(f);
        f->read_fd = open_read_only(f->fd);
        f->mem = (vmsig_guest_mem) {
                .read_fd = f->read_fd,
                .ranges = test_ranges,
                .n_ranges = G_N_ELEMENTS(test_ranges),
                .ram_size = FILE_SIZE,
                .write = vmsig_memwrite_pwrite,
                .userdata = VMSIG_FD_TO_PTR(f->fd),
        };
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        g_free(f->snapshot);
        g_assert_cmpint(close(f->read_fd), ==, 0);
        g_assert_cmpint(close(f->fd), ==, 0);
}

/* Remember the whole file; the expected state after a write is the
 * snapshot patched with expect(). */
static void snapshot(Fixture *f) {
        g_free(f->snapshot);
        f->snapshot = g_malloc(FILE_SIZE);
        read_at(f->fd, 0, f->snapshot, FILE_SIZE);
}

static void expect(Fixture *f, uint64_t offset, const void *data, size_t len) {
        g_assert_cmpuint(offset + len, <=, FILE_SIZE);
        memcpy(f->snapshot + offset, data, len);
}

static void assert_file_matches(Fixture *f) {
        g_autofree uint8_t *now = g_malloc(FILE_SIZE);

        read_at(f->fd, 0, now, FILE_SIZE);
        for (size_t i = 0; i < FILE_SIZE; i++)
                if (now[i] != f->snapshot[i])
                        g_error("file offset 0x%zx: 0x%02x, expected 0x%02x", i, now[i], f->snapshot[i]);
}

static void fill_data(uint8_t *buf, size_t len, uint8_t seed) {
        for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t) (seed + i * 13);
}

static void assert_failure(const vmsig_memwrite_failure *fl, vmsig_memwrite_error error, uint64_t address) {
        g_assert_cmpint(fl->error, ==, error);
        g_assert_cmphex(fl->address, ==, address);
}

/* --- GPA lookup ------------------------------------------------------------ */

static void test_lookup(Fixture *f, gconstpointer data) {
        uint64_t o = 0, avail = 0;

        g_assert_cmpint(vmsig_gpa_to_offset(&f->mem, 0x1234, 1, &o), ==, 0);
        g_assert_cmphex(o, ==, 0x1234);
        g_assert_cmpint(vmsig_gpa_to_offset(&f->mem, 5 * MiB + 0x10, 16, &o), ==, 0);
        g_assert_cmphex(o, ==, 4 * MiB + 0x10);
        g_assert_cmpint(vmsig_gpa_to_offset(&f->mem, 4 * MiB - 8, 8, &o), ==, 0);
        g_assert_cmphex(o, ==, 4 * MiB - 8);
        g_assert_cmpint(vmsig_gpa_to_offset(&f->mem, 8 * MiB - 1, 1, &o), ==, 0);
        g_assert_cmphex(o, ==, 7 * MiB - 1);

        /* Into, inside and past the hole, past the end, the very top. */
        g_assert_cmpint(vmsig_gpa_to_offset(&f->mem, 4 * MiB - 8, 9, &o), ==, -ERANGE);
        g_assert_cmpint(vmsig_gpa_to_offset(&f->mem, 4 * MiB, 1, &o), ==, -ERANGE);
        g_assert_cmpint(vmsig_gpa_to_offset(&f->mem, 5 * MiB - 1, 1, &o), ==, -ERANGE);
        g_assert_cmpint(vmsig_gpa_to_offset(&f->mem, 5 * MiB - 1, 2, &o), ==, -ERANGE);
        g_assert_cmpint(vmsig_gpa_to_offset(&f->mem, 8 * MiB, 1, &o), ==, -ERANGE);
        g_assert_cmpint(vmsig_gpa_to_offset(&f->mem, 8 * MiB - 1, 2, &o), ==, -ERANGE);
        g_assert_cmpint(vmsig_gpa_to_offset(&f->mem, UINT64_MAX, 1, &o), ==, -ERANGE);
        g_assert_cmpint(vmsig_gpa_to_offset(&f->mem, 0x1000, 0, &o), ==, -EINVAL);

        g_assert_cmpint(vmsig_gpa_lookup(&f->mem, 5 * MiB + 0x10, &o, &avail), ==, 0);
        g_assert_cmphex(o, ==, 4 * MiB + 0x10);
        g_assert_cmphex(avail, ==, 3 * MiB - 0x10);
        g_assert_cmpint(vmsig_gpa_lookup(&f->mem, 4 * MiB, &o, &avail), ==, -ERANGE);
}

static void test_lookup_clamped(void) {
        /* A file shorter than its ranges, a range past the file, and one
         * at the top of the address space. */
        static const vmsig_gpa_range ranges[] = {
                { .gpa = 0, .size = 4 * MiB, .offset = 0 },
                { .gpa = 5 * MiB, .size = 3 * MiB, .offset = 4 * MiB },
                { .gpa = 16 * MiB, .size = MiB, .offset = 8 * MiB },
                { .gpa = UINT64_MAX - 0xFFF, .size = 0x1000, .offset = 0 },
        };
        vmsig_guest_mem m = { .read_fd = -1, .ranges = ranges, .n_ranges = G_N_ELEMENTS(ranges), .ram_size = 6 * MiB };
        uint64_t o = 0, avail = 0;

        g_assert_cmpint(vmsig_gpa_lookup(&m, 5 * MiB, &o, &avail), ==, 0);
        g_assert_cmphex(o, ==, 4 * MiB);
        g_assert_cmphex(avail, ==, 2 * MiB);
        g_assert_cmpint(vmsig_gpa_to_offset(&m, 7 * MiB - 1, 1, &o), ==, 0);
        g_assert_cmpint(vmsig_gpa_to_offset(&m, 7 * MiB, 1, &o), ==, -ERANGE);
        g_assert_cmpint(vmsig_gpa_to_offset(&m, 16 * MiB, 1, &o), ==, -ERANGE);

        g_assert_cmpint(vmsig_gpa_lookup(&m, UINT64_MAX - 1, &o, &avail), ==, 0);
        g_assert_cmphex(o, ==, 0xFFE);
        g_assert_cmphex(avail, ==, 1);
        g_assert_cmpint(vmsig_gpa_lookup(&m, UINT64_MAX, &o, &avail), ==, -ERANGE);

        m.ram_size = 0;
        g_assert_cmpint(vmsig_gpa_lookup(&m, 0, &o, &avail), ==, -ERANGE);
}

/* --- translation ------------------------------------------------------------- */

static void assert_translates(Fixture *f, uint64_t dtb, uint64_t va, uint64_t gpa, uint64_t page_size) {
        vmsig_memwrite_failure fl;
        uint64_t g = 0, size = 0;

        g_assert_cmpint(vmsig_va_translate(&f->mem, dtb, 4, va, &g, &size, &fl), ==, 0);
        g_assert_cmphex(g, ==, gpa);
        g_assert_cmphex(size, ==, page_size);
        g_assert_cmpint(fl.error, ==, VMSIG_MEMWRITE_OK);
}

static void test_translate_4k(Fixture *f, gconstpointer data) {
        uint64_t g = 0;

        assert_translates(f, DTB, VA_4K, 0x20000, 4 * KiB);
        assert_translates(f, DTB, VA_4K + 0xABC, 0x20ABC, 4 * KiB);
        assert_translates(f, DTB, VA_4K + 0xFFF, 0x20FFF, 4 * KiB);
        assert_translates(f, DTB, VA_LAST + 0x10, 0x3FF010, 4 * KiB);
        assert_translates(f, DTB, VA_FIRST + 4, 0x500004, 4 * KiB);
        /* Present, though the page is not RAM: translation is about tables. */
        assert_translates(f, DTB, VA_HOLE + 8, 0x400008, 4 * KiB);
        /* NX, PAT and the high available bits are no address bits. */
        assert_translates(f, DTB, VA_FLAGS + 0x123, 0x21123, 4 * KiB);
        assert_translates(f, DTB, VA_EDGE + 0xFFF, 0x23FFF, 4 * KiB);
        assert_translates(f, DTB, VA_TOP + 8, 0x22008, 4 * KiB);
        /* CR3's no-flush bit 63 and PCID bits do not move the PML4. */
        assert_translates(f, PML4 | NX | 0xFFF, VA_4K + 1, 0x20001, 4 * KiB);

        g_assert_cmpint(vmsig_va_translate(&f->mem, DTB, 4, VA_4K + 2, &g, NULL, NULL), ==, 0);
        g_assert_cmphex(g, ==, 0x20002);
}

static void test_translate_2m(Fixture *f, gconstpointer data) {
        assert_translates(f, DTB, VA_2M, 6 * MiB, 2 * MiB);
        /* Offsets above bit 12 show that the PAT bit was masked off. */
        assert_translates(f, DTB, VA_2M + 0x1ABCDE, 6 * MiB + 0x1ABCDE, 2 * MiB);
        assert_translates(f, DTB, VA_2M + 2 * MiB - 1, 8 * MiB - 1, 2 * MiB);
}

static void test_translate_1g(Fixture *f, gconstpointer data) {
        assert_translates(f, DTB, VA_1G, 0, GiB);
        assert_translates(f, DTB, VA_1G + 0x123456, 0x123456, GiB);
        assert_translates(f, DTB, VA_1G + 0x5ABCDE, 0x5ABCDE, GiB);
        assert_translates(f, DTB, VA_1G + GiB - 1, GiB - 1, GiB);
}

static void assert_unmapped(Fixture *f, uint64_t va, unsigned level, uint64_t entry_gpa) {
        vmsig_memwrite_failure fl;
        uint64_t g = 0xdead, size = 0xdead;

        g_assert_cmpint(vmsig_va_translate(&f->mem, DTB, 4, va, &g, &size, &fl), ==, -EFAULT);
        assert_failure(&fl, VMSIG_MEMWRITE_UNMAPPED, va);
        g_assert_cmpuint(fl.level, ==, level);
        g_assert_cmphex(fl.gpa, ==, entry_gpa);
        g_assert_cmphex(g, ==, 0xdead);
        g_assert_cmphex(size, ==, 0xdead);
}

static void test_translate_unmapped(Fixture *f, gconstpointer data) {
        assert_unmapped(f, 0, 1, PT_LO);
        assert_unmapped(f, VA_NP + 0x234, 1, PT_LO + 0x11 * 8);
        assert_unmapped(f, VA_PDE_NP + 5, 2, PD_LO + 2 * 8);
        assert_unmapped(f, VA_PDPTE_NP, 3, PDPT_LO + 2 * 8);
        assert_unmapped(f, VA_PML4E_NP + 0x1000, 4, PML4 + 1 * 8);
        /* The first canonical address of the upper half: PML4E 256. */
        assert_unmapped(f, UINT64_C(0xFFFF800000000000), 4, PML4 + 256 * 8);
        /* A present entry pointing at a table outside RAM. */
        assert_unmapped(f, VA_PDE_HOLE + 0x3000, 1, HOLE_TABLE + 3 * 8);
        assert_unmapped(f, VA_PDPTE_HOLE, 2, HOLE_TABLE);
}

static void test_translate_errors(Fixture *f, gconstpointer data) {
        static const uint64_t non_canonical[] = {
                UINT64_C(0x0000800000000000),
                UINT64_C(0xFFFF7FFFFFFFFFFF),
                UINT64_C(0x8000000000000000),
                UINT64_C(0x00FF000000001000),
                UINT64_C(0x7FFFFFFFFFFFFFFF),
        };
        vmsig_memwrite_failure fl;
        uint64_t g;

        for (size_t i = 0; i < G_N_ELEMENTS(non_canonical); i++) {
                g_assert_cmpint(vmsig_va_translate(&f->mem, DTB, 4, non_canonical[i], &g, NULL, &fl), ==,
                                -EADDRNOTAVAIL);
                assert_failure(&fl, VMSIG_MEMWRITE_NON_CANONICAL, non_canonical[i]);
        }

        g_assert_cmpint(vmsig_va_translate(&f->mem, 0, 4, VA_4K, &g, NULL, &fl), ==, -ENXIO);
        assert_failure(&fl, VMSIG_MEMWRITE_NO_DTB, VA_4K);

        /* Reading a table fails. */
        vmsig_guest_mem m = f->mem;
        m.read_fd = -1;
        g_assert_cmpint(vmsig_va_translate(&m, DTB, 4, VA_4K, &g, NULL, &fl), ==, -EBADF);
        assert_failure(&fl, VMSIG_MEMWRITE_IO, VA_4K);
        g_assert_cmpint(fl.errnum, ==, EBADF);

        /* ram_size promises more than the file has. */
        static const vmsig_gpa_range big[] = { { .gpa = 0, .size = 16 * MiB, .offset = 0 } };
        m = f->mem;
        m.ranges = big;
        m.n_ranges = 1;
        m.ram_size = 16 * MiB;
        g_assert_cmpint(vmsig_va_translate(&m, 12 * MiB, 4, VA_4K, &g, NULL, &fl), ==, -EIO);
        assert_failure(&fl, VMSIG_MEMWRITE_IO, VA_4K);
        g_assert_cmpint(fl.errnum, ==, EIO);
}

/* 4-level canonical checks stay as they were: what 5 levels would accept
 * is non-canonical with 4, whatever the tables hold. */
static void test_translate_4level_canonical(Fixture *f, gconstpointer data) {
        static const uint64_t only_5[] = { VA5_LOW, VA5_LOW_TOP, VA5_HIGH_BOTTOM, VA5_HOLE,
                                           UINT64_C(0xFFFF7FFFFFFFF000) };
        vmsig_memwrite_failure fl;
        uint64_t g;

        for (size_t i = 0; i < G_N_ELEMENTS(only_5); i++) {
                g_assert_cmpint(vmsig_va_translate(&f->mem, DTB, 4, only_5[i], &g, NULL, &fl), ==, -EADDRNOTAVAIL);
                assert_failure(&fl, VMSIG_MEMWRITE_NON_CANONICAL, only_5[i]);
        }
}

static void assert_translates5(Fixture *f, uint64_t va, uint64_t gpa, uint64_t page_size) {
        vmsig_memwrite_failure fl;
        uint64_t g = 0, size = 0;

        g_assert_cmpint(vmsig_va_translate(&f->mem, DTB5, 5, va, &g, &size, &fl), ==, 0);
        g_assert_cmphex(g, ==, gpa);
        g_assert_cmphex(size, ==, page_size);
        g_assert_cmpint(fl.error, ==, VMSIG_MEMWRITE_OK);
}

static void assert_unmapped5(Fixture *f, uint64_t va, unsigned level, uint64_t entry_gpa) {
        vmsig_memwrite_failure fl;
        uint64_t g = 0xdead;

        g_assert_cmpint(vmsig_va_translate(&f->mem, DTB5, 5, va, &g, NULL, &fl), ==, -EFAULT);
        assert_failure(&fl, VMSIG_MEMWRITE_UNMAPPED, va);
        g_assert_cmpuint(fl.level, ==, level);
        g_assert_cmphex(fl.gpa, ==, entry_gpa);
        g_assert_cmphex(g, ==, 0xdead);
}

static void test_translate_5level(Fixture *f, gconstpointer data) {
        /* Below 2^48 and from 0xFFFF000000000000 on, through PML5E 0 and
         * 511, the same as with 4 levels. */
        assert_translates5(f, VA_4K + 0xABC, 0x20ABC, 4 * KiB);
        assert_translates5(f, VA_2M + 0x1ABCDE, 6 * MiB + 0x1ABCDE, 2 * MiB);
        assert_translates5(f, VA_1G + 0x123456, 0x123456, GiB);
        assert_translates5(f, VA_EDGE + 0xFFF, 0x23FFF, 4 * KiB);
        assert_translates5(f, VA_TOP + 8, 0x22008, 4 * KiB);
        /* Canonical only with 5 levels, through a PML5E with PS and NX. */
        assert_translates5(f, VA5_LOW + 0x10, 0x20010, 4 * KiB);
        /* The PML4E 256 of the 4-level layout is 0xFFFF800000000000 here. */
        assert_unmapped5(f, UINT64_C(0xFFFF800000000000), 4, PML4 + 256 * 8);
        assert_unmapped5(f, VA5_LOW + 0x1000, 1, PT_LO + 0x11 * 8);
        assert_unmapped5(f, VA5_LOW + 512 * GiB, 4, PML4_57 + 1 * 8);
        assert_unmapped5(f, VA5_LOW_TOP, 5, PML5 + 255 * 8);
        assert_unmapped5(f, VA5_LOW_TOP + UINT64_C(0xFFFFFFFFFFFF), 5, PML5 + 255 * 8);
        assert_unmapped5(f, VA5_HIGH_BOTTOM, 5, PML5 + 256 * 8);
        assert_unmapped5(f, UINT64_C(0x0002000000000000), 5, PML5 + 2 * 8);
        /* A PML5E pointing at a table outside RAM. */
        assert_unmapped5(f, VA5_HOLE + 0x1000, 4, HOLE_TABLE);
}

static void test_translate_5level_errors(Fixture *f, gconstpointer data) {
        static const uint64_t non_canonical[] = {
                UINT64_C(0x0100000000000000),
                UINT64_C(0xFEFFFFFFFFFFFFFF),
                UINT64_C(0x8000000000000000),
                UINT64_C(0x7FFFFFFFFFFFFFFF),
                UINT64_C(0x01FF000000001000),
        };
        static const unsigned bad_levels[] = { 0, 1, 2, 3, 6, 57, UINT_MAX };
        vmsig_memwrite_failure fl;
        uint64_t g = 0xdead;

        for (size_t i = 0; i < G_N_ELEMENTS(non_canonical); i++) {
                g_assert_cmpint(vmsig_va_translate(&f->mem, DTB5, 5, non_canonical[i], &g, NULL, &fl), ==,
                                -EADDRNOTAVAIL);
                assert_failure(&fl, VMSIG_MEMWRITE_NON_CANONICAL, non_canonical[i]);
        }
        g_assert_cmpint(vmsig_va_translate(&f->mem, 0, 5, VA_4K, &g, NULL, &fl), ==, -ENXIO);
        assert_failure(&fl, VMSIG_MEMWRITE_NO_DTB, VA_4K);

        /* Neither 4 nor 5 levels: refused before anything else, even a
         * missing DTB or an empty write. */
        for (size_t i = 0; i < G_N_ELEMENTS(bad_levels); i++) {
                g_auto(vmsig_memwrite_plan) p = {};
                uint8_t d[4] = {};

                g_assert_cmpint(vmsig_va_translate(&f->mem, DTB, bad_levels[i], VA_4K, &g, NULL, &fl), ==, -EINVAL);
                assert_failure(&fl, VMSIG_MEMWRITE_IO, VA_4K);
                g_assert_cmpint(fl.errnum, ==, EINVAL);
                g_assert_cmpint(vmsig_va_translate(&f->mem, 0, bad_levels[i], VA_4K, &g, NULL, NULL), ==, -EINVAL);
                g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, bad_levels[i], VA_4K, d, sizeof d, 64,
                                                           &fl),
                                ==, -EINVAL);
                assert_failure(&fl, VMSIG_MEMWRITE_IO, VA_4K);
                g_assert_cmpint(fl.errnum, ==, EINVAL);
                g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, 0, bad_levels[i], VA_4K, d, 0, 64, NULL), ==,
                                -EINVAL);
                g_assert_cmpuint(p.n_segments, ==, 0);
                g_assert_cmpuint(p.total, ==, 0);
        }
        g_assert_cmphex(g, ==, 0xdead);
}

/* --- physical writes ------------------------------------------------------------- */

static void apply_ok(Fixture *f, vmsig_memwrite_plan *p) {
        vmsig_memwrite_failure fl;

        g_assert_cmpint(vmsig_memwrite_plan_apply(p, &f->mem, &fl), ==, 0);
        g_assert_cmpint(fl.error, ==, VMSIG_MEMWRITE_OK);
}

static void test_write_gpa(Fixture *f, gconstpointer data) {
        g_auto(vmsig_memwrite_plan) p = {};
        uint8_t a[100], b[64], c[VMSIG_MEMWRITE_MAX_DEFAULT];

        fill_data(a, sizeof a, 1);
        fill_data(b, sizeof b, 2);
        fill_data(c, sizeof c, 3);
        snapshot(f);

        g_assert_cmpint(vmsig_memwrite_plan_add_gpa(&p, &f->mem, 0x30000, a, sizeof a, VMSIG_MEMWRITE_MAX_DEFAULT,
                                                    NULL), ==, 0);
        g_assert_cmpint(vmsig_memwrite_plan_add_gpa(&p, &f->mem, 5 * MiB + 0x100, b, sizeof b,
                                                    VMSIG_MEMWRITE_MAX_DEFAULT, NULL), ==, 0);
        /* Exactly max_write, ending at the last byte of RAM. */
        g_assert_cmpint(vmsig_memwrite_plan_add_gpa(&p, &f->mem, 8 * MiB - sizeof c, c, sizeof c,
                                                    VMSIG_MEMWRITE_MAX_DEFAULT, NULL), ==, 0);
        g_assert_cmpuint(p.n_segments, ==, 3);
        g_assert_cmpuint(p.total, ==, sizeof a + sizeof b + sizeof c);

        /* Planning writes nothing. */
        assert_file_matches(f);

        apply_ok(f, &p);
        expect(f, 0x30000, a, sizeof a);
        expect(f, 4 * MiB + 0x100, b, sizeof b);
        expect(f, 7 * MiB - sizeof c, c, sizeof c);
        assert_file_matches(f);
}

static void test_write_gpa_split(Fixture *f, gconstpointer data) {
        /* Contiguous in GPA, swapped in the file: one write, two places. */
        static const vmsig_gpa_range swapped[] = {
                { .gpa = 0, .size = MiB, .offset = MiB },
                { .gpa = MiB, .size = MiB, .offset = 0 },
        };
        g_auto(vmsig_memwrite_plan) p = {};
        vmsig_guest_mem m = f->mem;
        uint8_t d[16];

        m.ranges = swapped;
        m.n_ranges = G_N_ELEMENTS(swapped);
        fill_data(d, sizeof d, 4);
        snapshot(f);

        g_assert_cmpint(vmsig_memwrite_plan_add_gpa(&p, &m, MiB - 8, d, sizeof d, VMSIG_MEMWRITE_MAX_DEFAULT, NULL),
                        ==, 0);
        g_assert_cmpuint(p.n_segments, ==, 2);
        g_assert_cmphex(p.segments[0].offset, ==, 2 * MiB - 8);
        g_assert_cmphex(p.segments[0].address, ==, MiB - 8);
        g_assert_cmphex(p.segments[1].offset, ==, 0);
        g_assert_cmphex(p.segments[1].address, ==, MiB);
        g_assert_cmpint(vmsig_memwrite_plan_apply(&p, &m, NULL), ==, 0);
        expect(f, 2 * MiB - 8, d, 8);
        expect(f, 0, d + 8, 8);
        assert_file_matches(f);
}

static void assert_gpa_rejected(Fixture *f, uint64_t gpa, size_t len, size_t max_write, int r,
                                vmsig_memwrite_error error, uint64_t address) {
        g_auto(vmsig_memwrite_plan) p = {};
        g_autofree uint8_t *d = g_malloc0(MAX(len, 1));
        vmsig_memwrite_failure fl;

        fill_data(d, len, 5);
        snapshot(f);
        g_assert_cmpint(vmsig_memwrite_plan_add_gpa(&p, &f->mem, gpa, d, len, max_write, &fl), ==, r);
        assert_failure(&fl, error, address);
        if (error == VMSIG_MEMWRITE_OUT_OF_RANGE)
                g_assert_cmphex(fl.gpa, ==, address);
        g_assert_cmpuint(p.n_segments, ==, 0);
        g_assert_cmpuint(p.total, ==, 0);
        /* The plan is empty: applying it must not write anything either. */
        apply_ok(f, &p);
        assert_file_matches(f);
}

static void test_write_gpa_hole(Fixture *f, gconstpointer data) {
        const size_t max = VMSIG_MEMWRITE_MAX_DEFAULT;

        /* The first byte that is not RAM, wherever the write starts. */
        assert_gpa_rejected(f, 4 * MiB - 16, 32, max, -ERANGE, VMSIG_MEMWRITE_OUT_OF_RANGE, 4 * MiB);
        assert_gpa_rejected(f, 4 * MiB + 100, 8, max, -ERANGE, VMSIG_MEMWRITE_OUT_OF_RANGE, 4 * MiB + 100);
        assert_gpa_rejected(f, 5 * MiB - 1, 8, max, -ERANGE, VMSIG_MEMWRITE_OUT_OF_RANGE, 5 * MiB - 1);
        assert_gpa_rejected(f, 8 * MiB - 4, 8, max, -ERANGE, VMSIG_MEMWRITE_OUT_OF_RANGE, 8 * MiB);
        assert_gpa_rejected(f, 8 * MiB, 1, max, -ERANGE, VMSIG_MEMWRITE_OUT_OF_RANGE, 8 * MiB);
        assert_gpa_rejected(f, UINT64_MAX - 3, 8, max, -ERANGE, VMSIG_MEMWRITE_OUT_OF_RANGE, UINT64_MAX - 3);
}

static void test_length(Fixture *f, gconstpointer data) {
        g_auto(vmsig_memwrite_plan) p = {};
        const size_t max = VMSIG_MEMWRITE_MAX_DEFAULT;
        uint8_t d[VMSIG_MEMWRITE_MAX_DEFAULT + 1] = {};
        vmsig_memwrite_failure fl;

        assert_gpa_rejected(f, 0x30000, 0, max, -EINVAL, VMSIG_MEMWRITE_EMPTY, 0x30000);
        assert_gpa_rejected(f, 0x30000, max + 1, max, -EMSGSIZE, VMSIG_MEMWRITE_TOO_LONG, 0x30000);
        assert_gpa_rejected(f, 0x30000, 17, 16, -EMSGSIZE, VMSIG_MEMWRITE_TOO_LONG, 0x30000);
        /* Length is checked before the address. */
        assert_gpa_rejected(f, 4 * MiB, 0, max, -EINVAL, VMSIG_MEMWRITE_EMPTY, 4 * MiB);

        snapshot(f);
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_4K, d, 0, max, &fl), ==, -EINVAL);
        assert_failure(&fl, VMSIG_MEMWRITE_EMPTY, VA_4K);
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_4K, d, max + 1, max, &fl), ==, -EMSGSIZE);
        assert_failure(&fl, VMSIG_MEMWRITE_TOO_LONG, VA_4K);
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, 0, 4, VA_4K, d, 0, max, &fl), ==, -EINVAL);
        assert_failure(&fl, VMSIG_MEMWRITE_EMPTY, VA_4K);
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, 0, 4, VA_4K, d, 4, max, &fl), ==, -ENXIO);
        assert_failure(&fl, VMSIG_MEMWRITE_NO_DTB, VA_4K);
        g_assert_cmpuint(p.n_segments, ==, 0);

        /* A configured max_write, both ways. */
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_4K, d, 16, 16, NULL), ==, 0);
        g_assert_cmpint(vmsig_memwrite_plan_add_gpa(&p, &f->mem, 0x30000, d, max + 1, max + 1, NULL), ==, 0);
        g_assert_cmpuint(p.n_segments, ==, 2);
}

/* --- virtual writes ------------------------------------------------------------ */

static void test_write_va(Fixture *f, gconstpointer data) {
        g_auto(vmsig_memwrite_plan) p = {};
        const size_t max = VMSIG_MEMWRITE_MAX_DEFAULT;
        uint8_t a[64], b[32], c[16], d[8], e[16], g[32], h[4096];

        fill_data(a, sizeof a, 10);
        fill_data(b, sizeof b, 11);
        fill_data(c, sizeof c, 12);
        fill_data(d, sizeof d, 13);
        fill_data(e, sizeof e, 14);
        fill_data(g, sizeof g, 15);
        fill_data(h, sizeof h, 16);
        snapshot(f);

        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_4K + 0x100, a, sizeof a, max, NULL), ==, 0);
        g_assert_cmpuint(p.n_segments, ==, 1);
        /* Two pages, contiguous in VA, on both sides of the RAM hole. */
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_FIRST - 16, b, sizeof b, max, NULL), ==, 0);
        g_assert_cmpuint(p.n_segments, ==, 3);
        g_assert_cmphex(p.segments[2].address, ==, VA_FIRST);
        /* From a 4K page into a 2M page. */
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_2M - 8, c, sizeof c, max, NULL), ==, 0);
        /* The end of the 2M page. */
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_2M + 2 * MiB - 8, d, sizeof d, max, NULL),
                        ==, 0);
        /* Inside the 1G page, in both RAM ranges. */
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_1G + 0x30000, e, sizeof e, max, NULL), ==,
                        0);
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_1G + 5 * MiB + 0x40000, h, sizeof h, max,
                                                   NULL), ==, 0);
        /* The top of the address space. */
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_TOP + 4096 - sizeof g, g, sizeof g, max,
                                                   NULL), ==, 0);
        assert_file_matches(f);

        apply_ok(f, &p);
        expect(f, 0x20100, a, sizeof a);
        expect(f, 0x3FFFF0, b, 16);
        expect(f, off(0x500000), b + 16, 16);
        expect(f, 0x24FF8, c, 8);
        expect(f, off(6 * MiB), c + 8, 8);
        expect(f, off(8 * MiB - 8), d, sizeof d);
        expect(f, 0x30000, e, sizeof e);
        expect(f, off(5 * MiB + 0x40000), h, sizeof h);
        expect(f, 0x22000 + 4096 - sizeof g, g, sizeof g);
        assert_file_matches(f);
}

static void assert_va_rejected(Fixture *f, uint64_t va, size_t len, size_t max_write, int r,
                               vmsig_memwrite_error error, uint64_t address) {
        g_auto(vmsig_memwrite_plan) p = {};
        g_autofree uint8_t *d = g_malloc0(MAX(len, 1));
        vmsig_memwrite_failure fl;

        fill_data(d, len, 6);
        snapshot(f);
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, va, d, len, max_write, &fl), ==, r);
        assert_failure(&fl, error, address);
        g_assert_cmpuint(p.n_segments, ==, 0);
        g_assert_cmpuint(p.total, ==, 0);
        apply_ok(f, &p);
        assert_file_matches(f);
}

static void test_write_va_unmapped(Fixture *f, gconstpointer data) {
        const size_t max = VMSIG_MEMWRITE_MAX_DEFAULT;
        vmsig_memwrite_failure fl;

        /* The first page is fine, the second one's PTE is not present. */
        assert_va_rejected(f, VA_NP - 16, 32, max, -EFAULT, VMSIG_MEMWRITE_UNMAPPED, VA_NP);
        /* From the 2M page into a missing PDE. */
        assert_va_rejected(f, VA_PDE_NP - 4, 8, max, -EFAULT, VMSIG_MEMWRITE_UNMAPPED, VA_PDE_NP);
        assert_va_rejected(f, VA_PDPTE_NP + 8, 8, max, -EFAULT, VMSIG_MEMWRITE_UNMAPPED, VA_PDPTE_NP + 8);
        assert_va_rejected(f, VA_PML4E_NP, 1, max, -EFAULT, VMSIG_MEMWRITE_UNMAPPED, VA_PML4E_NP);

        /* The level and the entry come along. */
        g_auto(vmsig_memwrite_plan) p = {};
        uint8_t d[32] = {};
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_NP - 16, d, sizeof d, max, &fl), ==,
                        -EFAULT);
        g_assert_cmpuint(fl.level, ==, 1);
        g_assert_cmphex(fl.gpa, ==, PT_LO + 0x11 * 8);
}

static void test_write_va_out_of_ram(Fixture *f, gconstpointer data) {
        g_auto(vmsig_memwrite_plan) p = {};
        const size_t max = VMSIG_MEMWRITE_MAX_DEFAULT;
        vmsig_memwrite_failure fl;
        uint8_t d[16] = {};

        /* Mapped, but to the RAM hole: the VA and the GPA are named. */
        assert_va_rejected(f, VA_FIRST + 4096 - 8, 16, max, -ERANGE, VMSIG_MEMWRITE_OUT_OF_RANGE, VA_HOLE);
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_HOLE + 4, d, sizeof d, max, &fl), ==,
                        -ERANGE);
        assert_failure(&fl, VMSIG_MEMWRITE_OUT_OF_RANGE, VA_HOLE + 4);
        g_assert_cmphex(fl.gpa, ==, 0x400004);

        /* Inside one 1G page, running from RAM into the hole. */
        assert_va_rejected(f, VA_1G + 4 * MiB - 4, 8, max, -ERANGE, VMSIG_MEMWRITE_OUT_OF_RANGE, VA_1G + 4 * MiB);
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_1G + 8 * MiB - 8, d, sizeof d, max, &fl), ==,
                        -ERANGE);
        assert_failure(&fl, VMSIG_MEMWRITE_OUT_OF_RANGE, VA_1G + 8 * MiB);
        g_assert_cmphex(fl.gpa, ==, 8 * MiB);
        g_assert_cmpuint(p.n_segments, ==, 0);
}

static void test_write_va_canonical(Fixture *f, gconstpointer data) {
        const size_t max = VMSIG_MEMWRITE_MAX_DEFAULT;

        /* The last mapped bytes of the lower half, then the hole. */
        assert_va_rejected(f, VA_EDGE + 4096 - 4, 8, max, -EADDRNOTAVAIL, VMSIG_MEMWRITE_NON_CANONICAL,
                           UINT64_C(0x0000800000000000));
        assert_va_rejected(f, UINT64_C(0x0000800000000000), 1, max, -EADDRNOTAVAIL, VMSIG_MEMWRITE_NON_CANONICAL,
                           UINT64_C(0x0000800000000000));
        assert_va_rejected(f, UINT64_C(0xFFFF7FFFFFFFFFFC), 8, max, -EADDRNOTAVAIL, VMSIG_MEMWRITE_NON_CANONICAL,
                           UINT64_C(0xFFFF7FFFFFFFFFFC));
        /* Past the top: the byte after 2^64 - 1 wraps to 0. */
        assert_va_rejected(f, UINT64_MAX - 3, 8, max, -EADDRNOTAVAIL, VMSIG_MEMWRITE_NON_CANONICAL, 0);
}

static void test_write_va_5level(Fixture *f, gconstpointer data) {
        g_auto(vmsig_memwrite_plan) p = {};
        vmsig_memwrite_failure fl;
        uint8_t a[24], b[16], c[8];

        fill_data(a, sizeof a, 0x51);
        fill_data(b, sizeof b, 0x52);
        fill_data(c, sizeof c, 0x53);
        snapshot(f);
        /* Only canonical with 5 levels; across the 4K page into 0x21000's
         * neighbour is not mapped, so stay inside. */
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB5, 5, VA5_LOW + 0x200, a, sizeof a, 64, NULL), ==,
                        0);
        expect(f, 0x20200, a, sizeof a);
        /* The top of the address space, through PML5E 511. */
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB5, 5, VA_TOP + 4096 - sizeof b, b, sizeof b, 64,
                                                   NULL),
                        ==, 0);
        expect(f, 0x23000 - sizeof b, b, sizeof b);
        /* A 5-level miss leaves the plan as it was. */
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB5, 5, VA5_HIGH_BOTTOM, c, sizeof c, 64, &fl), ==,
                        -EFAULT);
        assert_failure(&fl, VMSIG_MEMWRITE_UNMAPPED, VA5_HIGH_BOTTOM);
        g_assert_cmpuint(fl.level, ==, 5);
        g_assert_cmpuint(p.n_segments, ==, 2);
        /* The same VA with 4 levels is no address at all. */
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA5_LOW, c, sizeof c, 64, &fl), ==,
                        -EADDRNOTAVAIL);
        g_assert_cmpuint(p.n_segments, ==, 2);
        apply_ok(f, &p);
        assert_file_matches(f);
}

/* --- batches --------------------------------------------------------------------- */

typedef struct entry {
        bool virtual;
        uint64_t address;
        size_t len;
} entry;

/* Adds every entry as MemWriteBatch would; returns the index that failed
 * or -1. */
static int add_batch(Fixture *f, vmsig_memwrite_plan *p, const entry *e, size_t n, uint8_t (*data)[64],
                     vmsig_memwrite_failure *fl) {
        for (size_t i = 0; i < n; i++) {
                int r;

                g_assert_cmpuint(e[i].len, <=, 64);
                fill_data(data[i], e[i].len, (uint8_t) (20 + i));
                if (e[i].virtual)
                        r = vmsig_memwrite_plan_add_va(p, &f->mem, DTB, 4, e[i].address, data[i], e[i].len,
                                                       VMSIG_MEMWRITE_MAX_DEFAULT, fl);
                else
                        r = vmsig_memwrite_plan_add_gpa(p, &f->mem, e[i].address, data[i], e[i].len,
                                                        VMSIG_MEMWRITE_MAX_DEFAULT, fl);
                if (r < 0)
                        return (int) i;
        }
        return -1;
}

static void test_batch_bad_entry(Fixture *f, gconstpointer data) {
        static const entry batch[] = {
                { false, 0x30000, 64 },
                { true, VA_4K + 0x100, 16 },
                { true, VA_FIRST - 16, 32 },
                { false, 5 * MiB, 8 },
                /* Its first page gets planned before the second fails. */
                { true, VA_NP - 16, 32 },
                { false, 0x31000, 8 },
        };
        g_auto(vmsig_memwrite_plan) p = {};
        uint8_t buf[G_N_ELEMENTS(batch)][64];
        vmsig_memwrite_failure fl;

        snapshot(f);
        g_assert_cmpint(add_batch(f, &p, batch, G_N_ELEMENTS(batch), buf, &fl), ==, 4);
        assert_failure(&fl, VMSIG_MEMWRITE_UNMAPPED, VA_NP);
        /* The failed add left no segment behind. */
        g_assert_cmpuint(p.n_segments, ==, 5);
        g_assert_cmpuint(p.total, ==, 64 + 16 + 32 + 8);
        /* The batch is dropped without applying: not a byte changed. */
        vmsig_memwrite_plan_done(&p);
        assert_file_matches(f);
}

static void test_batch_good(Fixture *f, gconstpointer data) {
        static const entry batch[] = {
                { false, 0x30000, 64 },
                { true, VA_4K + 0x100, 16 },
                { true, VA_FIRST - 16, 32 },
                { false, 5 * MiB, 8 },
                { true, VA_2M + 0x1000, 40 },
                { true, VA_1G + 0x30010, 8 }, /* overlaps the first entry: later wins */
        };
        g_auto(vmsig_memwrite_plan) p = {};
        uint8_t buf[G_N_ELEMENTS(batch)][64];
        vmsig_memwrite_failure fl;

        snapshot(f);
        g_assert_cmpint(add_batch(f, &p, batch, G_N_ELEMENTS(batch), buf, &fl), ==, -1);
        apply_ok(f, &p);
        expect(f, 0x30000, buf[0], 64);
        expect(f, 0x20100, buf[1], 16);
        expect(f, 0x3FFFF0, buf[2], 16);
        expect(f, off(0x500000), buf[2] + 16, 16);
        expect(f, off(5 * MiB), buf[3], 8);
        expect(f, off(6 * MiB + 0x1000), buf[4], 40);
        expect(f, 0x30010, buf[5], 8);
        assert_file_matches(f);
}

/* --- apply ----------------------------------------------------------------------- */

typedef struct flaky {
        int fd;
        unsigned calls;
        unsigned fail_call; /* 1-based */
} flaky;

/* Writes half of the fail_call-th segment, then reports EIO. */
static int flaky_write(void *userdata, uint64_t offset, const void *data, size_t len) {
        flaky *w = userdata;

        if (++w->calls == w->fail_call) {
                g_assert_cmpint(vmsig_memwrite_pwrite(VMSIG_FD_TO_PTR(w->fd), offset, data, len / 2), ==, 0);
                return -EIO;
        }
        return vmsig_memwrite_pwrite(VMSIG_FD_TO_PTR(w->fd), offset, data, len);
}

static void test_apply_rollback(Fixture *f, gconstpointer data) {
        g_auto(vmsig_memwrite_plan) p = {};
        flaky w = { .fd = f->fd, .fail_call = 3 };
        vmsig_guest_mem m = f->mem;
        vmsig_memwrite_failure fl;
        uint8_t a[32], b[32], c[32];

        m.write = flaky_write;
        m.userdata = &w;
        fill_data(a, sizeof a, 30);
        fill_data(b, sizeof b, 31);
        fill_data(c, sizeof c, 32);
        snapshot(f);

        g_assert_cmpint(vmsig_memwrite_plan_add_gpa(&p, &m, 0x30000, a, sizeof a, 64, NULL), ==, 0);
        /* Two segments; the second of them fails. */
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &m, DTB, 4, VA_FIRST - 16, b, sizeof b, 64, NULL), ==, 0);
        g_assert_cmpint(vmsig_memwrite_plan_add_gpa(&p, &m, 0x30010, c, sizeof c, 64, NULL), ==, 0);
        g_assert_cmpuint(p.n_segments, ==, 4);

        g_assert_cmpint(vmsig_memwrite_plan_apply(&p, &m, &fl), ==, -EIO);
        assert_failure(&fl, VMSIG_MEMWRITE_IO, VA_FIRST);
        g_assert_cmpint(fl.errnum, ==, EIO);
        /* Three writes, then the three segments put back. */
        g_assert_cmpuint(w.calls, ==, 6);
        assert_file_matches(f);

        /* Reading the old contents fails: nothing gets written at all. */
        w = (flaky) { .fd = f->fd };
        m.read_fd = -1;
        g_assert_cmpint(vmsig_memwrite_plan_apply(&p, &m, &fl), ==, -EBADF);
        assert_failure(&fl, VMSIG_MEMWRITE_IO, 0x30000);
        g_assert_cmpuint(w.calls, ==, 0);
        assert_file_matches(f);
}

/* --- writers --------------------------------------------------------------------- */

static void test_pwrite(void) {
        int fd = memfd_create("pwrite", MFD_CLOEXEC);
        int ro;
        uint8_t d[200], back[200];
        struct rlimit old, small;
        void (*old_handler)(int);

        g_assert_cmpint(fd, >=, 0);
        fill_data(d, sizeof d, 40);
        g_assert_cmpint(vmsig_memwrite_pwrite(VMSIG_FD_TO_PTR(fd), 1000, d, sizeof d), ==, 0);
        read_at(fd, 1000, back, sizeof back);
        g_assert_cmpmem(back, sizeof back, d, sizeof d);

        g_assert_cmpint(vmsig_memwrite_pwrite(VMSIG_FD_TO_PTR(-1), 0, d, 1), ==, -EBADF);
        ro = open_read_only(fd);
        g_assert_cmpint(vmsig_memwrite_pwrite(VMSIG_FD_TO_PTR(ro), 0, d, 1), ==, -EBADF);
        g_assert_cmpint(close(ro), ==, 0);
        g_assert_cmpint(vmsig_memwrite_pwrite(VMSIG_FD_TO_PTR(fd), UINT64_MAX - 4, d, 1), ==, -EOVERFLOW);

        /* A file size limit turns the write short and then into EFBIG: the
         * helper goes on after the short write and reports the error. */
        g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &old), ==, 0);
        if (old.rlim_max != RLIM_INFINITY && old.rlim_max < 2000) {
                g_assert_cmpint(close(fd), ==, 0);
                g_test_skip("RLIMIT_FSIZE hard limit too low");
                return;
        }
        old_handler = signal(SIGXFSZ, SIG_IGN);
        small = (struct rlimit) { .rlim_cur = 1100, .rlim_max = old.rlim_max };
        g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &small), ==, 0);
        int r = vmsig_memwrite_pwrite(VMSIG_FD_TO_PTR(fd), 1050, d, 100);
        g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &old), ==, 0);
        signal(SIGXFSZ, old_handler);
        g_assert_cmpint(r, ==, -EFBIG);
        read_at(fd, 1050, back, 50);
        g_assert_cmpmem(back, 50, d, 50);
        g_assert_cmpint(close(fd), ==, 0);
}

static void test_memcpy_writer(void) {
        uint8_t buf[64] = {}, d[16];
        vmsig_memwrite_mapping map = { .base = buf, .size = sizeof buf };

        fill_data(d, sizeof d, 50);
        g_assert_cmpint(vmsig_memwrite_memcpy(&map, 48, d, 16), ==, 0);
        g_assert_cmpmem(buf + 48, 16, d, 16);
        g_assert_cmpint(vmsig_memwrite_memcpy(&map, 49, d, 16), ==, -ERANGE);
        g_assert_cmpint(vmsig_memwrite_memcpy(&map, UINT64_MAX, d, 1), ==, -ERANGE);
}

/* A sealed memfd takes no write(2) any more, only stores through a shared
 * mapping made before the seal: the reason the writer is a callback. */
static void test_sealed(Fixture *f, gconstpointer data) {
        g_auto(vmsig_memwrite_plan) p = {};
        vmsig_memwrite_mapping map = { .size = FILE_SIZE };
        vmsig_memwrite_failure fl;
        uint8_t a[32], b[16], back[32];

        map.base = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
        g_assert_true(map.base != MAP_FAILED);
        if (fcntl(f->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE) < 0) {
                g_assert_cmpint(errno, ==, EINVAL);
                g_assert_cmpint(munmap(map.base, FILE_SIZE), ==, 0);
                g_test_skip("F_SEAL_FUTURE_WRITE not supported");
                return;
        }

        /* The fixture's writer is pwrite on the memfd: refused now. */
        fill_data(a, sizeof a, 60);
        fill_data(b, sizeof b, 61);
        g_assert_cmpint(pwrite(f->fd, a, 1, 0x30000), ==, -1);
        g_assert_cmpint(errno, ==, EPERM);
        g_assert_cmpint(vmsig_memwrite_pwrite(VMSIG_FD_TO_PTR(f->fd), 0x30000, a, 1), ==, -EPERM);
        g_assert_true(mmap(NULL, 4096, PROT_WRITE, MAP_SHARED, f->fd, 0) == MAP_FAILED);
        g_assert_cmpint(errno, ==, EPERM);

        f->mem.write = vmsig_memwrite_memcpy;
        f->mem.userdata = &map;
        snapshot(f);
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_FIRST - 16, a, sizeof a, 64, NULL), ==, 0);
        g_assert_cmpint(vmsig_memwrite_plan_add_gpa(&p, &f->mem, 0x30000, b, sizeof b, 64, NULL), ==, 0);
        g_assert_cmpint(vmsig_memwrite_plan_apply(&p, &f->mem, &fl), ==, 0);

        /* Through the read-only fd, as the daemon would read it back. */
        read_at(f->read_fd, 0x3FFFF0, back, 16);
        g_assert_cmpmem(back, 16, a, 16);
        read_at(f->read_fd, off(0x500000), back, 16);
        g_assert_cmpmem(back, 16, a + 16, 16);
        expect(f, 0x3FFFF0, a, 16);
        expect(f, off(0x500000), a + 16, 16);
        expect(f, 0x30000, b, sizeof b);
        assert_file_matches(f);

        /* A rejected write stays rejected with this writer too. */
        vmsig_memwrite_plan_done(&p);
        snapshot(f);
        g_assert_cmpint(vmsig_memwrite_plan_add_va(&p, &f->mem, DTB, 4, VA_NP - 16, a, sizeof a, 64, &fl), ==, -EFAULT);
        assert_failure(&fl, VMSIG_MEMWRITE_UNMAPPED, VA_NP);
        g_assert_cmpint(vmsig_memwrite_plan_apply(&p, &f->mem, NULL), ==, 0);
        assert_file_matches(f);

        g_assert_cmpint(munmap(map.base, FILE_SIZE), ==, 0);
}

/* --- misc ---------------------------------------------------------------------- */

static void test_from_memctx(void) {
        g_autofree vmsig_memctx *c = g_malloc0(sizeof(vmsig_memctx) + 2 * sizeof(vmsig_gpa_range));
        int token;

        c->ram_fd = 42;
        c->ram_size = FILE_SIZE;
        c->n_ranges = 2;
        memcpy(c->ranges, test_ranges, sizeof test_ranges);

        vmsig_guest_mem m = vmsig_guest_mem_from_memctx(c, vmsig_memwrite_pwrite, &token);
        g_assert_cmpint(m.read_fd, ==, 42);
        g_assert_true(m.ranges == c->ranges);
        g_assert_cmpuint(m.n_ranges, ==, 2);
        g_assert_cmpuint(m.ram_size, ==, FILE_SIZE);
        g_assert_true(m.write == vmsig_memwrite_pwrite);
        g_assert_true(m.userdata == &token);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);

        VT_TEST_ADD("/memwrite/lookup", test_lookup);
        g_test_add_func("/memwrite/lookup-clamped", test_lookup_clamped);
        VT_FIXTURE_TESTS("/memwrite/translate/", test_translate_4k, test_translate_2m, test_translate_1g,
                         test_translate_unmapped, test_translate_errors, test_translate_4level_canonical,
                         test_translate_5level, test_translate_5level_errors);
        VT_TEST_ADD("/memwrite/va/write-5level", test_write_va_5level);
        VT_TEST_ADD("/memwrite/gpa/write", test_write_gpa);
        VT_TEST_ADD("/memwrite/gpa/split", test_write_gpa_split);
        VT_TEST_ADD("/memwrite/gpa/hole", test_write_gpa_hole);
        VT_TEST_ADD("/memwrite/length", test_length);
        VT_TEST_ADD("/memwrite/va/write", test_write_va);
        VT_TEST_ADD("/memwrite/va/unmapped", test_write_va_unmapped);
        VT_TEST_ADD("/memwrite/va/out-of-ram", test_write_va_out_of_ram);
        VT_TEST_ADD("/memwrite/va/canonical", test_write_va_canonical);
        VT_FIXTURE_TESTS("/memwrite/batch/", test_batch_bad_entry, test_batch_good);
        VT_TEST_ADD("/memwrite/apply/rollback", test_apply_rollback);
        g_test_add_func("/memwrite/writer/pwrite", test_pwrite);
        g_test_add_func("/memwrite/writer/memcpy", test_memcpy_writer);
        VT_TEST_ADD("/memwrite/writer/sealed", test_sealed);
        VT_TESTS("/memwrite/", test_from_memctx);
        return g_test_run();
}
