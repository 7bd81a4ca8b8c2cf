/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* detect-linux on hand-built guests: RAM in a memfd with a hole, filled
 * with junk, and x86-64 page tables laid out as Linux lays them out (a
 * kernel image mapped with 2 MiB and 4 KiB pages in the top 2 GiB, the
 * banner in .rodata, init_mm's root in .data, PTI's root pairs, 5 levels),
 * then broken in the ways a guest can break them. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>

#include "detect-linux.h"
#include "event-loop.h"
#include "memwrite.h"
#include "vt-util.h"

#define FILE_SIZE (48 * MiB)

/* GPA [0, 32M) at file offset 0, a hole at [32M, 40M), [40M, 56M) at 32M. */
static const vmsig_gpa_range test_ranges[] = {
        { .gpa = 0, .size = 32 * MiB, .offset = 0 },
        { .gpa = 40 * MiB, .size = 16 * MiB, .offset = 32 * MiB },
};
#define HOLE (34 * MiB)
#define BEYOND (64 * MiB)

#define P_RW UINT64_C(0x3)
#define AD UINT64_C(0x60)
#define PS (UINT64_C(1) << 7)
#define NX (UINT64_C(1) << 63)

/* The kernel, 4 levels:
 *   K_ROOT, U_ROOT  the PTI pair: the kernel root maps FILLERS more
 *                   kernel-half entries (the direct map, vmalloc, ...),
 *                   the user root only the image, through its own tables
 *   IMAGE_VA        PDE 208 of PDPTE 510: .text, 2M at TEXT
 *   IMAGE_VA + 2M   .rodata, 2M at RODATA, the banner at +0x1A0
 *   IMAGE_VA + 4M   .data and .bss, 4K pages at DATA + i * 4K (PT index i);
 *                   init_mm's root at DATA_INIT_MM (PT index 2), the
 *                   kernel log quoting another banner at PT index 8 */
#define K_ROOT UINT64_C(0x100000)
#define U_ROOT UINT64_C(0x101000)
#define PDPT UINT64_C(0x102000)
#define PD UINT64_C(0x103000)
#define PT UINT64_C(0x104000)
#define U_PDPT UINT64_C(0x105000)
#define U_PD UINT64_C(0x106000)
#define FILLER UINT64_C(0x110000)
#define FILLERS 4
#define SCRATCH UINT64_C(0x180000) /* for tables of single tests */
#define PML5 UINT64_C(0x120000)
#define PML4_57 UINT64_C(0x121000)

#define IMAGE_VA UINT64_C(0xFFFFFFFF9A000000)
#define IMAGE_PDE 208
#define TEXT (16 * MiB)
#define RODATA (18 * MiB)
#define DATA (20 * MiB)
#define DATA_INIT_MM (DATA + 2 * 4 * KiB)
#define DATA_INIT_MM5 (DATA + 4 * 4 * KiB)
#define DATA_LOG (DATA + 8 * 4 * KiB)
#define BANNER_OFFSET 0x1A0
#define BANNER_GPA (RODATA + BANNER_OFFSET)
#define BANNER_VA (IMAGE_VA + 2 * MiB + BANNER_OFFSET)
#define RELEASE "6.1.0-57-cloud-amd64"
#define BANNER "Linux version " RELEASE " (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0)"

typedef struct Fixture {
        int fd;
        vmsig_guest_mem s;
} Fixture;

static uint64_t off(uint64_t gpa) {
        if (gpa < 32 * MiB)
                return gpa;
        g_assert_cmpuint(gpa, >=, 40 * MiB);
        g_assert_cmpuint(gpa, <, 56 * MiB);
        return gpa - 8 * MiB;
}

static void write_at(Fixture *f, uint64_t gpa, const void *data, size_t len) {
        g_assert_cmpint(pwrite(f->fd, data, len, (off_t) off(gpa)), ==, (ssize_t) len);
}

static void write_str(Fixture *f, uint64_t gpa, const char *s) {
        write_at(f, gpa, s, strlen(s));
}

static void set_entry(Fixture *f, uint64_t table, unsigned index, uint64_t value) {
        uint64_t le = htole64(value);

        write_at(f, table + index * 8, &le, sizeof le);
}

static void zero_page(Fixture *f, uint64_t gpa) {
        static const uint8_t zero[4096];

        write_at(f, gpa, zero, sizeof zero);
}

static void copy_page(Fixture *f, uint64_t from, uint64_t to) {
        uint8_t buf[4096];

        g_assert_cmpint(pread(f->fd, buf, sizeof buf, (off_t) off(from)), ==, sizeof buf);
        write_at(f, to, buf, sizeof buf);
}

static void build_kernel(Fixture *f) {
        static const uint64_t tables[] = { K_ROOT, U_ROOT, PDPT, PD, PT, U_PDPT, U_PD, PML5, PML4_57 };

        for (size_t i = 0; i < G_N_ELEMENTS(tables); i++)
                zero_page(f, tables[i]);
        for (unsigned i = 0; i < FILLERS; i++) {
                zero_page(f, FILLER + i * 4096);
                set_entry(f, K_ROOT, 256 + 17 * i, (FILLER + i * 4096) | P_RW | NX);
        }
        /* The user half: something, which the probe does not care about. */
        set_entry(f, K_ROOT, 0, FILLER | P_RW);
        set_entry(f, U_ROOT, 0, FILLER | P_RW);
        set_entry(f, K_ROOT, 511, PDPT | P_RW | AD);
        set_entry(f, PDPT, 510, PD | P_RW);
        set_entry(f, PD, IMAGE_PDE, TEXT | PS | P_RW);
        set_entry(f, PD, IMAGE_PDE + 1, RODATA | PS | NX | 0x1);
        set_entry(f, PD, IMAGE_PDE + 2, PT | P_RW);
        for (unsigned i = 0; i < 16; i++)
                set_entry(f, PT, i, (DATA + i * 4096) | P_RW | NX);
        write_str(f, BANNER_GPA, BANNER);
        /* The kernel log in .bss quotes a banner too, later in VA order. */
        write_str(f, DATA_LOG + 0x10, "Linux version 9.9.9-log (someone) #1");
        copy_page(f, K_ROOT, DATA_INIT_MM);
        /* The CPU set accessed in one copy only. */
        set_entry(f, DATA_INIT_MM, 511, PDPT | P_RW);

        /* PTI's user root: the text and .rodata again, through its own
         * tables, and nothing else of the kernel half. */
        set_entry(f, U_ROOT, 511, U_PDPT | P_RW);
        set_entry(f, U_PDPT, 510, U_PD | P_RW);
        set_entry(f, U_PD, IMAGE_PDE, TEXT | PS | P_RW);
        set_entry(f, U_PD, IMAGE_PDE + 1, RODATA | PS | 0x1);

        /* 5 levels: PML5E 511 -> PML4E 511 -> the same PDPT. */
        set_entry(f, PML5, 300, FILLER | P_RW);
        set_entry(f, PML5, 420, (FILLER + 4096) | P_RW);
        set_entry(f, PML5, 511, PML4_57 | P_RW);
        set_entry(f, PML4_57, 511, PDPT | P_RW);
}

static void fixture_setup(Fixture *f, gconstpointer data) {
        g_autofree uint8_t *fill = g_malloc(FILE_SIZE);
        uint64_t x = UINT64_C(0x9E3779B97F4A7C15);

        f->fd = memfd_create("guest-ram", MFD_CLOEXEC);
        g_assert_cmpint(f->fd, >=, 0);
        /* Junk everywhere: half of any qword the probe should not trust
         * has the present bit. */
        for (size_t i = 0; i < FILE_SIZE; i += 8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                memcpy(fill + i, &x, 8);
        }
        g_assert_cmpint(pwrite(f->fd, fill, FILE_SIZE, 0), ==, FILE_SIZE);
        build_kernel(f);
        f->s = (vmsig_guest_mem) {
                .read_fd = f->fd,
                .ranges = test_ranges,
                .n_ranges = G_N_ELEMENTS(test_ranges),
                .ram_size = FILE_SIZE,
        };
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        g_assert_cmpint(close(f->fd), ==, 0);
}

static int probe(Fixture *f, uint64_t cr3, unsigned levels, uint64_t budget, vmsig_linux_result *ret,
                 vmsig_linux_probe_stats *ret_stats) {
        vmsig_linux_probe *p = NULL;
        vmsig_linux_result again;
        unsigned steps = 0;
        int r;

        g_assert_cmpint(vmsig_linux_probe_new(&f->s, cr3, levels, &p), ==, 0);
        do {
                r = vmsig_linux_probe_step(p, budget, ret);
                /* However the tables point, the probe ends. */
                g_assert_cmpuint(++steps, <, 100000);
        } while (r == 0);
        /* Done is done: the same answer again, nothing read. */
        g_assert_cmpint(vmsig_linux_probe_step(p, budget, &again), ==, r);
        if (r > 0)
                g_assert_cmpmem(&again, sizeof again, ret, sizeof *ret);
        if (ret_stats)
                vmsig_linux_probe_get_stats(p, ret_stats);
        vmsig_linux_probe_free(p);
        return r;
}

static void assert_probe_fails(Fixture *f, uint64_t cr3, unsigned levels) {
        vmsig_linux_result r;

        g_assert_cmpint(probe(f, cr3, levels, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, NULL), ==, -ENOENT);
        g_assert_cmpint(probe(f, cr3, levels, VMSIG_LINUX_MIN_BUDGET, &r, NULL), ==, -ENOENT);
}

static void assert_found(Fixture *f, const vmsig_linux_result *r, uint64_t root, uint64_t cr3_root, unsigned levels) {
        g_assert_cmphex(r->root, ==, root);
        g_assert_cmphex(r->cr3_root, ==, cr3_root);
        g_assert_cmpuint(r->levels, ==, levels);
        g_assert_cmphex(r->banner_va, ==, BANNER_VA);
        g_assert_cmphex(r->banner_gpa, ==, BANNER_GPA);
        g_assert_cmpstr(r->release, ==, RELEASE);
        g_assert_cmpint(vmsig_linux_check(&f->s, r), ==, 1);
}

/* A probe from cr3 (4 levels, the default budget) finds root under
 * cr3_root; st may be NULL. */
static void probe_finds(Fixture *f, uint64_t cr3, vmsig_linux_result *r, vmsig_linux_probe_stats *st, uint64_t root,
                        uint64_t cr3_root) {
        g_assert_cmpint(probe(f, cr3, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, r, st), ==, 1);
        assert_found(f, r, root, cr3_root, 4);
}

/* --- the kernel as built ------------------------------------------------------- */

static void test_found(Fixture *f, gconstpointer data) {
        vmsig_linux_result r, small;
        vmsig_linux_probe_stats st;

        probe_finds(f, K_ROOT, &r, &st, DATA_INIT_MM, K_ROOT);
        g_assert_true(r.init_mm);
        g_assert_false(r.pti);
        g_assert_cmpuint(r.kernel_entries, ==, FILLERS + 1);
        g_assert_cmpuint(st.roots, ==, 1);
        /* The text, .rodata, and .data up to init_mm's root; the root, the
         * PDPT, the PD and the PT. */
        g_assert_cmpuint(st.searched, ==, 4 * MiB + 3 * 4096);
        g_assert_cmpuint(st.bytes_read, ==, st.searched + 4 * 4096);

        /* In the smallest steps, the same. */
        g_assert_cmpint(probe(f, K_ROOT, 4, VMSIG_LINUX_MIN_BUDGET, &small, &st), ==, 1);
        g_assert_cmpmem(&small, sizeof small, &r, sizeof r);
        g_assert_cmpuint(st.steps, >, 4 * MiB / VMSIG_LINUX_MIN_BUDGET);

        /* CR3's PCID and flag bits, and bits above 51, name no other root. */
        g_assert_cmpint(probe(f, K_ROOT | 0x18 | UINT64_C(0x8000000000000000), 4, VMSIG_LINUX_MIN_BUDGET, &small,
                              NULL),
                        ==, 1);
        g_assert_cmpmem(&small, sizeof small, &r, sizeof r);

        /* From init_mm's root itself: itself. */
        probe_finds(f, DATA_INIT_MM, &r, NULL, DATA_INIT_MM, DATA_INIT_MM);
        g_assert_true(r.init_mm);
}

static void test_no_init_mm(Fixture *f, gconstpointer data) {
        vmsig_linux_result r;
        vmsig_linux_probe_stats st;

        /* A page that differs in one entry present in both is no copy. */
        set_entry(f, DATA_INIT_MM, 256, (FILLER + 0x8000) | P_RW);
        probe_finds(f, K_ROOT, &r, &st, K_ROOT, K_ROOT);
        g_assert_false(r.init_mm);
        /* Searched on to the end of the image for it. */
        g_assert_cmpuint(st.searched, ==, 4 * MiB + 16 * 4096);
}

static void test_init_mm_ldt(Fixture *f, gconstpointer data) {
        vmsig_linux_result r;

        /* The process CR3 names has its LDT mapped: one entry more than
         * init_mm's. */
        set_entry(f, K_ROOT, 300, FILLER | P_RW);
        probe_finds(f, K_ROOT, &r, NULL, DATA_INIT_MM, K_ROOT);
        /* Two more are no longer the same kernel half. */
        set_entry(f, K_ROOT, 301, FILLER | P_RW);
        probe_finds(f, K_ROOT, &r, NULL, K_ROOT, K_ROOT);
        /* Nor is a page with an entry the root lacks. */
        set_entry(f, K_ROOT, 300, 0);
        set_entry(f, K_ROOT, 301, 0);
        set_entry(f, DATA_INIT_MM, 302, FILLER | P_RW);
        probe_finds(f, K_ROOT, &r, NULL, K_ROOT, K_ROOT);
}

/* --- PTI ----------------------------------------------------------------------- */

static void test_pti_user_root(Fixture *f, gconstpointer data) {
        vmsig_linux_result r;
        vmsig_linux_probe_stats st;

        probe_finds(f, U_ROOT, &r, &st, DATA_INIT_MM, K_ROOT);
        g_assert_true(r.pti);
        g_assert_true(r.init_mm);
        g_assert_cmpuint(st.roots, ==, 1);

        /* Under PTI init_mm's root is a pair too: a copy at an odd page is
         * something else. */
        copy_page(f, DATA_INIT_MM, DATA_INIT_MM - 4096);
        zero_page(f, DATA_INIT_MM);
        probe_finds(f, U_ROOT, &r, NULL, K_ROOT, K_ROOT);
        g_assert_true(r.pti);
        /* Without PTI, it may be anywhere. */
        probe_finds(f, K_ROOT, &r, NULL, DATA_INIT_MM - 4096, K_ROOT);
}

static void test_pti_kernel_root_invalid(Fixture *f, gconstpointer data) {
        vmsig_linux_result r;
        vmsig_linux_probe_stats st;

        /* More kernel-half entries than the user root, but no kernel image
         * under it: the user root is what there is. */
        set_entry(f, K_ROOT, 511, (FILLER + 4096) | P_RW);
        probe_finds(f, U_ROOT, &r, &st, U_ROOT, U_ROOT);
        g_assert_false(r.pti);
        g_assert_false(r.init_mm);
        g_assert_cmpuint(r.kernel_entries, ==, 1);
        g_assert_cmpuint(st.roots, ==, 2);

        /* Junk below: its "entries" lead outside RAM and count for nothing. */
        copy_page(f, 8 * MiB, K_ROOT);
        probe_finds(f, U_ROOT, &r, &st, U_ROOT, U_ROOT);
        g_assert_false(r.pti);
        g_assert_cmpuint(st.roots, ==, 1);
}

static void test_odd_root_without_pti(Fixture *f, gconstpointer data) {
        vmsig_linux_result r;
        vmsig_linux_probe_stats st;

        /* A kernel without PTI: roots at odd pages, and below one another
         * process's root with the same kernel half. No better, not tried. */
        copy_page(f, K_ROOT, U_ROOT);
        g_assert_cmpint(probe(f, U_ROOT, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, &st), ==, 1);
        g_assert_false(r.pti);
        g_assert_cmphex(r.cr3_root, ==, U_ROOT);
        g_assert_cmphex(r.root, ==, DATA_INIT_MM);
        g_assert_cmpuint(st.roots, ==, 1);
}

/* --- 5 levels ------------------------------------------------------------------ */

static void test_5level(Fixture *f, gconstpointer data) {
        vmsig_linux_result r;

        g_assert_cmpint(probe(f, PML5, 5, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, NULL), ==, 1);
        assert_found(f, &r, PML5, PML5, 5);
        g_assert_false(r.init_mm);
        g_assert_cmpuint(r.kernel_entries, ==, 3);

        copy_page(f, PML5, DATA_INIT_MM5);
        g_assert_cmpint(probe(f, PML5, 5, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, NULL), ==, 1);
        assert_found(f, &r, DATA_INIT_MM5, PML5, 5);
        g_assert_true(r.init_mm);

        /* The wrong mode either way finds no kernel image. */
        assert_probe_fails(f, PML5, 4);
        assert_probe_fails(f, K_ROOT, 5);
}

/* --- the banner ---------------------------------------------------------------- */

/* "Linux version " and a release of len characters, "6aaa...", then " (". */
static char *long_banner(size_t len) {
        g_autofree char *release = g_strnfill(len, 'a');

        release[0] = '6';
        return g_strdup_printf("Linux version %s (", release);
}

static void test_banner_lookalikes(Fixture *f, gconstpointer data) {
        g_autofree char *too_long = long_banner(VMSIG_LINUX_RELEASE_MAX + 1), *longest = long_banner(64);
        const char *const bad[] = {
                "Linux version x6.1 (",   /* no digit first */
                "Linux version 6.1.0 x",  /* no " (" */
                "Linux version 6.1.0  (", /* two spaces */
                "Linux version  6.1.0 (", /* no release */
                "Linux version 6.1/0 (",  /* a character uname would not give */
                "Linux version 6.1.0\n(",
                too_long, /* more than a utsname holds */
        };
        vmsig_linux_result r;
        uint64_t gpa = TEXT + 0x1000;

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                write_str(f, gpa, bad[i]);
                gpa += strlen(bad[i]) + 3;
        }
        /* 64 is fine, in .text too: the first plausible one wins. */
        write_str(f, TEXT + 0x10000, longest);
        g_assert_cmpint(probe(f, K_ROOT, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, NULL), ==, 1);
        g_assert_cmphex(r.banner_va, ==, IMAGE_VA + 0x10000);
        g_assert_cmpuint(strlen(r.release), ==, 64);
        g_assert_cmpint(vmsig_linux_check(&f->s, &r), ==, 1);

        /* Without the real one, the kernel log's comes next. */
        write_str(f, TEXT + 0x10000, "Linux version _");
        write_str(f, BANNER_GPA, "Linux version -");
        g_assert_cmpint(probe(f, K_ROOT, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, NULL), ==, 1);
        g_assert_cmpstr(r.release, ==, "9.9.9-log");
        g_assert_cmphex(r.banner_gpa, ==, DATA_LOG + 0x10);
        /* And with none at all, nothing. */
        write_str(f, DATA_LOG + 0x10, "Linux version ?");
        assert_probe_fails(f, K_ROOT, 4);
}

static void test_banner_across_pages(Fixture *f, gconstpointer data) {
        vmsig_linux_result r;

        write_str(f, BANNER_GPA, "Linux version ?");
        /* Across two 4K pages, contiguous in VA and GPA (PT 5 and 6). */
        write_str(f, DATA + 6 * 4096 - 20, BANNER);
        g_assert_cmpint(probe(f, K_ROOT, 4, VMSIG_LINUX_MIN_BUDGET, &r, NULL), ==, 1);
        g_assert_cmphex(r.banner_va, ==, IMAGE_VA + 4 * MiB + 6 * 4096 - 20);
        g_assert_cmphex(r.banner_gpa, ==, DATA + 6 * 4096 - 20);
        g_assert_cmpint(vmsig_linux_check(&f->s, &r), ==, 1);

        /* Contiguous in VA only: the second half lies elsewhere. */
        set_entry(f, PT, 6, (DATA + 15 * 4096) | P_RW);
        write_str(f, DATA + 15 * 4096, BANNER + 20);
        g_assert_cmpint(probe(f, K_ROOT, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, NULL), ==, 1);
        g_assert_cmpstr(r.release, ==, "9.9.9-log");

        /* Across a chunk of the search (256 KiB) inside a 2M page, at every
         * budget. */
        write_str(f, TEXT + 256 * KiB - 17, BANNER);
        for (uint64_t budget = VMSIG_LINUX_MIN_BUDGET; budget <= VMSIG_LINUX_MIN_BUDGET + 8 * KiB; budget += 4 * KiB) {
                g_assert_cmpint(probe(f, K_ROOT, 4, budget, &r, NULL), ==, 1);
                g_assert_cmphex(r.banner_gpa, ==, TEXT + 256 * KiB - 17);
        }
        g_assert_cmpint(probe(f, K_ROOT, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, NULL), ==, 1);
        g_assert_cmphex(r.banner_gpa, ==, TEXT + 256 * KiB - 17);
}

/* --- nothing to find, and hostile tables -------------------------------------- */

static void test_not_a_kernel(Fixture *f, gconstpointer data) {
        vmsig_linux_result r;
        vmsig_linux_probe_stats st;

        /* The decompressor: an identity map, nothing in the kernel half. */
        zero_page(f, SCRATCH);
        set_entry(f, SCRATCH, 0, PDPT | P_RW);
        assert_probe_fails(f, SCRATCH, 4);
        assert_probe_fails(f, SCRATCH, 5);
        g_assert_cmpint(probe(f, SCRATCH, 4, VMSIG_LINUX_MIN_BUDGET, &r, &st), ==, -ENOENT);
        g_assert_cmpuint(st.searched, ==, 0);
        g_assert_cmpuint(st.bytes_read, ==, 4096);

        /* Firmware: CR3 0 (page 0 is junk here), junk pages, the text. */
        assert_probe_fails(f, 0, 4);
        assert_probe_fails(f, 8 * MiB, 4);
        assert_probe_fails(f, 8 * MiB, 5);
        assert_probe_fails(f, BANNER_GPA & ~UINT64_C(0xFFF), 4);

        /* Not RAM at all. */
        assert_probe_fails(f, HOLE, 4);
        assert_probe_fails(f, HOLE | 0x1000, 4);
        assert_probe_fails(f, BEYOND, 5);
        assert_probe_fails(f, UINT64_MAX, 4);
        assert_probe_fails(f, UINT64_C(0x000FFFFFFFFFF000), 5);
}

static void test_tables_outside_ram(Fixture *f, gconstpointer data) {
        /* Each level in turn leads into the hole, past RAM, and to the top
         * of the physical address space. */
        static const struct {
                uint64_t table;
                unsigned index;
                uint64_t flags;
        } breaks[] = {
                { K_ROOT, 511, 0 }, { PDPT, 510, 0 }, { PDPT, 510, PS }, { PD, IMAGE_PDE + 1, PS },
                { PD, IMAGE_PDE + 2, 0 }, { PT, 2, 0 },
        };
        /* Only the 1 GiB-aligned ones for a 1 GiB page: one in the hole
         * would be one at 0. */
        static const uint64_t to[] = { GiB, 3 * GiB, UINT64_C(0x000FFFFFC0000000), HOLE, BEYOND };

        for (size_t i = 0; i < G_N_ELEMENTS(breaks); i++)
                for (size_t j = 0; j < G_N_ELEMENTS(to); j++) {
                        vmsig_linux_result r;
                        int expect;

                        if (breaks[i].flags == PS && breaks[i].table == PDPT && to[j] % GiB != 0)
                                continue;
                        build_kernel(f);
                        write_str(f, DATA_LOG + 0x10, "Linux version ?");
                        set_entry(f, breaks[i].table, breaks[i].index, to[j] | breaks[i].flags | P_RW);
                        /* Data pages are no loss: the banner is found, init_mm not. */
                        expect = breaks[i].table == K_ROOT || breaks[i].table == PDPT ||
                                                 (breaks[i].table == PD && breaks[i].index == IMAGE_PDE + 1)
                                         ? -ENOENT
                                         : 1;
                        g_assert_cmpint(probe(f, K_ROOT, 4, VMSIG_LINUX_MIN_BUDGET, &r, NULL), ==, expect);
                        if (expect > 0)
                                assert_found(f, &r, K_ROOT, K_ROOT, 4);
                }

        /* A banner cut off by the end of RAM, the next page mapped past it. */
        build_kernel(f);
        set_entry(f, PT, 9, (56 * MiB - 4096) | P_RW);
        set_entry(f, PT, 10, (56 * MiB) | P_RW);
        write_str(f, BANNER_GPA, "Linux version ?");
        write_str(f, DATA_LOG + 0x10, "Linux version ?");
        write_at(f, 56 * MiB - 20, BANNER, 20);
        assert_probe_fails(f, K_ROOT, 4);
}

static void test_cycles(Fixture *f, gconstpointer data) {
        vmsig_linux_result r;
        vmsig_linux_probe_stats st;

        /* Tables that are each other: the PDPTE names the PDPT, the PDEs
         * the PD and the root, the PTEs the tables. */
        set_entry(f, PDPT, 510, PDPT | P_RW);
        for (unsigned i = 0; i < 512; i++)
                set_entry(f, PDPT, i == 510 ? 511 : i, (i & 1 ? K_ROOT : PDPT) | P_RW);
        assert_probe_fails(f, K_ROOT, 4);

        build_kernel(f);
        for (unsigned i = 0; i < 512; i++)
                set_entry(f, PD, i, (i & 1 ? PD : K_ROOT) | P_RW);
        g_assert_cmpint(probe(f, K_ROOT, 4, VMSIG_LINUX_MIN_BUDGET, &r, &st), ==, -ENOENT);
        /* Once per table read, once per page searched: 1 + 512 PTs. */
        g_assert_cmpuint(st.bytes_read, <=, (3 + 512) * 4096 + 512 * 512 * 4096);

        /* All of the image range one 2 MiB page without a banner, a
         * thousand times over: the search limit ends it. */
        build_kernel(f);
        for (unsigned i = 0; i < 512; i++)
                set_entry(f, PD, i, TEXT | PS | P_RW);
        g_assert_cmpint(probe(f, K_ROOT, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, &st), ==, -ENOENT);
        g_assert_cmpuint(st.searched, ==, VMSIG_LINUX_SEARCH_LIMIT);

        /* A 1 GiB page over all of RAM and the hole: RAM is searched, the
         * hole and what lies past RAM skipped. */
        build_kernel(f);
        set_entry(f, PDPT, 510, 0 | PS | P_RW);
        write_str(f, 45 * MiB + 0x800, BANNER);
        g_assert_cmpint(probe(f, K_ROOT, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, &st), ==, 1);
        /* The first in VA order: the one in .rodata at its GPA. */
        g_assert_cmphex(r.banner_va, ==, UINT64_C(0xFFFFFFFF80000000) + BANNER_GPA);
        g_assert_cmphex(r.banner_gpa, ==, BANNER_GPA);
        write_str(f, BANNER_GPA, "Linux version ?");
        write_str(f, DATA_LOG + 0x10, "Linux version ?");
        g_assert_cmpint(probe(f, K_ROOT, 4, VMSIG_LINUX_MIN_BUDGET, &r, &st), ==, 1);
        g_assert_cmphex(r.banner_gpa, ==, 45 * MiB + 0x800);
        g_assert_cmpint(vmsig_linux_check(&f->s, &r), ==, 1);
        write_str(f, 45 * MiB + 0x800, "Linux version ?");
        g_assert_cmpint(probe(f, K_ROOT, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, &st), ==, -ENOENT);
        g_assert_cmpuint(st.searched, ==, 48 * MiB);
}

/* --- the API's edges ----------------------------------------------------------- */

static void test_arguments(Fixture *f, gconstpointer data) {
        static const unsigned bad_levels[] = { 0, 3, 6 };
        vmsig_linux_probe *p = NULL;
        vmsig_linux_result r;

        for (size_t i = 0; i < G_N_ELEMENTS(bad_levels); i++) {
                g_assert_cmpint(vmsig_linux_probe_new(&f->s, K_ROOT, bad_levels[i], &p), ==, -EINVAL);
                g_assert_null(p);
        }
        g_assert_cmpint(vmsig_linux_probe_new(&f->s, K_ROOT, 4, &p), ==, 0);
        g_assert_cmpint(vmsig_linux_probe_step(p, VMSIG_LINUX_MIN_BUDGET - 1, &r), ==, -EINVAL);
        g_assert_cmpint(vmsig_linux_probe_step(p, 0, &r), ==, -EINVAL);
        g_assert_null(vmsig_linux_probe_free(p));
        g_assert_null(vmsig_linux_probe_free(NULL));

        g_assert_cmpint(vmsig_linux_probe_all(&f->s, K_ROOT, 4, &r), ==, 1);
        assert_found(f, &r, DATA_INIT_MM, K_ROOT, 4);
        g_assert_cmpint(vmsig_linux_probe_all(&f->s, K_ROOT, 7, &r), ==, -EINVAL);
        g_assert_cmpint(vmsig_linux_probe_all(&f->s, HOLE, 4, &r), ==, -ENOENT);
}

static void test_read_errors(Fixture *f, gconstpointer data) {
        vmsig_guest_mem s = f->s;
        vmsig_linux_result r;
        vmsig_linux_probe *p = NULL;

        g_assert_cmpint(vmsig_linux_probe_all(&f->s, K_ROOT, 4, &r), ==, 1);
        s.read_fd = -1;
        g_assert_cmpint(vmsig_linux_probe_new(&s, K_ROOT, 4, &p), ==, 0);
        g_assert_cmpint(vmsig_linux_probe_step(p, VMSIG_LINUX_MIN_BUDGET, &r), ==, -EBADF);
        /* Sticky. */
        g_assert_cmpint(vmsig_linux_probe_step(p, VMSIG_LINUX_MIN_BUDGET, &r), ==, -EBADF);
        vmsig_linux_probe_free(p);
        g_assert_cmpint(vmsig_linux_probe_all(&f->s, K_ROOT, 4, &r), ==, 1);
        g_assert_cmpint(vmsig_linux_check(&s, &r), ==, -EBADF);

        /* A file shorter than ram_size says. */
        g_assert_cmpint(ftruncate(f->fd, (off_t) (20 * MiB)), ==, 0);
        g_assert_cmpint(vmsig_linux_probe_all(&f->s, K_ROOT, 4, &r), ==, -EIO);
}

static void test_check(Fixture *f, gconstpointer data) {
        vmsig_linux_result r, bad;

        g_assert_cmpint(vmsig_linux_probe_all(&f->s, U_ROOT, 4, &r), ==, 1);
        g_assert_cmpint(vmsig_linux_check(&f->s, &r), ==, 1);

        bad = r;
        bad.levels = 3;
        g_assert_cmpint(vmsig_linux_check(&f->s, &bad), ==, -EINVAL);
        bad = r;
        bad.release[0] = '\0';
        g_assert_cmpint(vmsig_linux_check(&f->s, &bad), ==, -EINVAL);
        bad = r;
        memset(bad.release, 'a', sizeof bad.release);
        g_assert_cmpint(vmsig_linux_check(&f->s, &bad), ==, -EINVAL);
        bad = r;
        bad.release[0] = '5';
        g_assert_cmpint(vmsig_linux_check(&f->s, &bad), ==, 0);
        bad = r;
        bad.banner_gpa = HOLE;
        g_assert_cmpint(vmsig_linux_check(&f->s, &bad), ==, 0);
        bad = r;
        bad.root = 0;
        g_assert_cmpint(vmsig_linux_check(&f->s, &bad), ==, 0);
        bad = r;
        bad.levels = 5;
        g_assert_cmpint(vmsig_linux_check(&f->s, &bad), ==, 0);

        /* A new boot: the banner moved. */
        write_str(f, BANNER_GPA, "Linux version 6.1.0-58-cloud-amd64 (");
        g_assert_cmpint(vmsig_linux_check(&f->s, &r), ==, 0);
        write_str(f, BANNER_GPA, BANNER);
        g_assert_cmpint(vmsig_linux_check(&f->s, &r), ==, 1);
        /* The root was freed and reused: the image no longer maps. */
        zero_page(f, r.root);
        g_assert_cmpint(vmsig_linux_check(&f->s, &r), ==, 0);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);

        VT_TEST_ADD("/detect-linux/found", test_found);
        VT_TEST_ADD("/detect-linux/init-mm/none", test_no_init_mm);
        VT_TEST_ADD("/detect-linux/init-mm/ldt", test_init_mm_ldt);
        VT_FIXTURE_TESTS("/detect-linux/pti/", test_pti_user_root, test_pti_kernel_root_invalid,
                         test_odd_root_without_pti);
        VT_TEST_ADD("/detect-linux/5level", test_5level);
        VT_FIXTURE_TESTS("/detect-linux/banner/", test_banner_lookalikes, test_banner_across_pages);
        VT_TEST_ADD("/detect-linux/hostile/not-a-kernel", test_not_a_kernel);
        VT_TEST_ADD("/detect-linux/hostile/outside-ram", test_tables_outside_ram);
        VT_TEST_ADD("/detect-linux/hostile/cycles", test_cycles);
        VT_FIXTURE_TESTS("/detect-linux/", test_arguments, test_read_errors, test_check);
        return g_test_run();
}
