/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The address-space bootstrap's detector on synthetic guests from
 * guest-image.c: every way in, every trap, the >4G split, the chunked scan
 * and its budget, and how fast it all is. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "detect.h"
#include "guest-image.h"
#include "vt-util.h"

#define PAGE UINT64_C(0x1000)

/* Above the PML4 scan's 16 MiB: only the stub or the EPROCESS finds it. */
#define HIGH_DTB (32 * MiB)

typedef struct Image {
        GuestImageSpec spec;
        GuestImageInfo info;
        GuestImage img;
        vmsig_guest_mem src;
} Image;

static void image_open(Image *im) {
        g_assert_cmpint(guest_image_create(&im->spec, &im->img), ==, 0);
        g_assert_cmpint(guest_image_info(&im->spec, &im->info), ==, 0);
        im->src = (vmsig_guest_mem) {
                .read_fd = im->img.ro_fd,
                .ranges = im->img.ranges,
                .n_ranges = im->img.n_ranges,
                .ram_size = im->img.ram_size,
        };
}

static void image_close(Image *im) {
        guest_image_done(&im->img);
}

/* A guest with nothing but what the test adds. */
static void spec_empty(GuestImageSpec *spec) {
        guest_image_spec_init(spec);
        spec->dtb = 0;
        spec->build = 0;
        spec->stub = GUEST_IMAGE_STUB_NONE;
}

/* A guest whose root lies high, without the low stub, and with the
 * EPROCESS decoys below the real one: only the EPROCESS scan finds it. */
static void spec_decoys(GuestImageSpec *spec) {
        guest_image_spec_init(spec);
        spec->dtb = HIGH_DTB;
        spec->stub = GUEST_IMAGE_STUB_NONE;
        spec->decoys = 0x2800000;
}

static void write_u64(Image *im, uint64_t gpa, uint64_t v) {
        uint64_t offset, le = htole64(v);

        g_assert_cmpint(guest_image_offset(&im->img, gpa, &offset), ==, 0);
        g_assert_cmpint(pwrite(im->img.fd, &le, sizeof le, (off_t) offset), ==, (ssize_t) sizeof le);
}

/* The PML4 scan in steps of the smallest budget finds what the one-shot
 * scan finds, and says when the low 16 MiB hold nothing. */
static void test_pml4_steps(void) {
        Image im = {};
        vmsig_detect_result res = {}, once;
        uint64_t cursor = 0;
        unsigned steps = 0;
        int r;

        spec_empty(&im.spec);
        im.spec.dtb = 0x1AA000;
        im.spec.lookalike = 0x100000;
        image_open(&im);
        g_assert_cmpint(vmsig_detect_pml4_scan(&im.src, &once), ==, 1);
        while ((r = vmsig_detect_pml4_scan_step(&im.src, &cursor, VMSIG_DETECT_SCAN_MIN_BUDGET, &res)) == 0)
                steps++;
        g_assert_cmpint(r, ==, 1);
        g_assert_cmpuint(steps, >=, 0x1AA000 / VMSIG_DETECT_SCAN_MIN_BUDGET - 1);
        g_assert_cmphex(res.dtb, ==, once.dtb);
        g_assert_cmpuint(res.self_ref, ==, once.self_ref);
        image_close(&im);

        /* Nothing: every step reads about its budget, then -ENOENT, also on
         * a call after that. */
        spec_empty(&im.spec);
        im.spec.ram_size = 32 * MiB;
        im.spec.populate = true;
        image_open(&im);
        cursor = 0;
        steps = 0;
        res = (vmsig_detect_result) { .dtb = 1234 };
        while ((r = vmsig_detect_pml4_scan_step(&im.src, &cursor, VMSIG_DETECT_SCAN_MIN_BUDGET, &res)) == 0)
                steps++;
        g_assert_cmpint(r, ==, -ENOENT);
        g_assert_cmpuint(steps + 1, ==, VMSIG_DETECT_PML4_SCAN_LIMIT / VMSIG_DETECT_SCAN_MIN_BUDGET);
        g_assert_cmphex(cursor, ==, VMSIG_DETECT_PML4_SCAN_LIMIT);
        g_assert_cmphex(res.dtb, ==, 1234); /* untouched */
        g_assert_cmpint(vmsig_detect_pml4_scan_step(&im.src, &cursor, VMSIG_DETECT_SCAN_MIN_BUDGET, &res), ==,
                        -ENOENT);
        image_close(&im);
}

static uint64_t read_u64(Image *im, uint64_t gpa) {
        uint64_t offset, le;

        g_assert_cmpint(guest_image_offset(&im->img, gpa, &offset), ==, 0);
        g_assert_cmpint(pread(im->img.fd, &le, sizeof le, (off_t) offset), ==, (ssize_t) sizeof le);
        return le64toh(le);
}

static void assert_nothing(Image *im) {
        vmsig_detect_result res;

        g_assert_cmpint(vmsig_detect_low_stub(&im->src, &res), ==, 0);
        g_assert_cmpint(res.method, ==, VMSIG_DETECT_NONE);
        g_assert_cmpint(vmsig_detect_pml4_scan(&im->src, &res), ==, 0);
        g_assert_cmpint(res.method, ==, VMSIG_DETECT_NONE);
        g_assert_cmpint(vmsig_detect_all(&im->src, true, &res), ==, 0);
        g_assert_cmpint(res.method, ==, VMSIG_DETECT_NONE);
        g_assert_cmpuint(res.dtb, ==, 0);
}

/* The full scan through vmsig_detect_all(), which must name the EPROCESS
 * the spec placed. */
static void assert_eprocess(Image *im, vmsig_detect_result *res) {
        g_assert_cmpint(vmsig_detect_all(&im->src, true, res), ==, 1);
        g_assert_cmpstr(vmsig_detect_method_to_string(res->method), ==, "eprocess");
        g_assert_cmphex(res->dtb, ==, im->spec.dtb);
        g_assert_cmpuint(res->self_ref, ==, im->spec.self_ref);
        g_assert_cmpuint(res->build, ==, im->spec.build);
        g_assert_cmphex(res->eprocess_gpa, ==, im->spec.eprocess);
        g_assert_cmphex(res->eprocess_va, ==, im->info.eprocess_va);
}

/* --- basics ----------------------------------------------------------------------- */

static void test_method_strings(void) {
        g_assert_cmpstr(vmsig_detect_method_to_string(VMSIG_DETECT_NONE), ==, "none");
        g_assert_cmpstr(vmsig_detect_method_to_string(VMSIG_DETECT_LOW_STUB), ==, "low-stub");
        g_assert_cmpstr(vmsig_detect_method_to_string(VMSIG_DETECT_PML4_SCAN), ==, "pml4-scan");
        g_assert_cmpstr(vmsig_detect_method_to_string(VMSIG_DETECT_EPROCESS), ==, "eprocess");
        g_assert_null(vmsig_detect_method_to_string(_VMSIG_DETECT_METHOD_MAX));
        g_assert_null(vmsig_detect_method_to_string((vmsig_detect_method) -1));
}

/* Every write fits MemWrite (at most 4 KiB, one page), and replaying the
 * list gives the same RAM as the memfd. */
static void test_guest_image_writes(void) {
        GuestImageSpec spec;
        GuestImageWrite *w = NULL;
        size_t n = 0;
        Image a = {}, b = {};
        g_autofree uint8_t *ra = g_malloc(64 * MiB), *rb = g_malloc(64 * MiB);

        guest_image_spec_init(&spec);
        spec.layout = GUEST_IMAGE_LAYOUT_FLAT;
        spec.stub = GUEST_IMAGE_STUB_BOOT_LOADER;
        spec.boot_dtb = 0xA00000;
        spec.lookalike = 0x100000;
        spec.decoys = 0x2800000;
        spec.firmware = true;
        g_assert_cmpint(guest_image_build(&spec, &w, &n), ==, 0);
        g_assert_cmpuint(n, >, 256);
        for (size_t i = 0; i < n; i++) {
                g_assert_cmpuint(w[i].len, >, 0);
                g_assert_cmpuint(w[i].len, <=, GUEST_IMAGE_MAX_WRITE);
                g_assert_cmpuint(w[i].gpa / PAGE, ==, (w[i].gpa + w[i].len - 1) / PAGE);
                g_assert_cmpuint(w[i].gpa + w[i].len, <=, spec.ram_size);
        }

        a.spec = spec;
        image_open(&a);
        b.spec = spec;
        b.spec.firmware = false;
        b.spec.stub = GUEST_IMAGE_STUB_NONE;
        b.spec.build = 0;
        b.spec.dtb = 0;
        b.spec.lookalike = 0;
        b.spec.decoys = 0;
        image_open(&b);
        g_assert_cmpint(guest_image_apply(&b.img, w, n), ==, 0);
        g_assert_cmpint(pread(a.img.fd, ra, 64 * MiB, 0), ==, (ssize_t) (64 * MiB));
        g_assert_cmpint(pread(b.img.fd, rb, 64 * MiB, 0), ==, (ssize_t) (64 * MiB));
        g_assert_true(memcmp(ra, rb, 64 * MiB) == 0);
        guest_image_writes_free(w, n);
        image_close(&a);
        image_close(&b);
}

static void test_guest_image_errors(void) {
        GuestImageSpec spec;
        GuestImageWrite *w = NULL;
        size_t n = 0;

        guest_image_spec_init(&spec);
        spec.self_ref = 255;
        g_assert_cmpint(guest_image_build(&spec, &w, &n), ==, -EINVAL);
        guest_image_spec_init(&spec);
        spec.build = 9200;
        g_assert_cmpint(guest_image_build(&spec, &w, &n), ==, -EINVAL);
        guest_image_spec_init(&spec);
        spec.dtb += 8;
        g_assert_cmpint(guest_image_build(&spec, &w, &n), ==, -EINVAL);
        guest_image_spec_init(&spec);
        spec.eprocess = 64 * MiB - 0x100;
        g_assert_cmpint(guest_image_build(&spec, &w, &n), ==, -ERANGE);
        /* In the QEMU hole between 3G and 4G. */
        guest_image_spec_init(&spec);
        spec.ram_size = 5 * GiB;
        spec.eprocess = 3 * GiB + 0x80;
        g_assert_cmpint(guest_image_build(&spec, &w, &n), ==, -ERANGE);
}

/* --- the PML4 check ------------------------------------------------------------------ */

static void pml4_fixture(Image *im) {
        guest_image_spec_init(&im->spec);
        im->spec.stub = GUEST_IMAGE_STUB_NONE;
        im->spec.build = 0;
        image_open(im);
}

static bool pml4_ok(Image *im) {
        unsigned self_ref = 0;
        int r = vmsig_detect_pml4_check(&im->src, im->spec.dtb, &self_ref);

        g_assert_cmpint(r, >=, 0);
        g_assert_true((r > 0) == vmsig_detect_pml4_valid(&im->src, im->spec.dtb));
        if (r > 0)
                g_assert_cmpuint(self_ref, ==, im->spec.self_ref);
        return r > 0;
}

static void test_pml4_valid(void) {
        Image im = {};

        pml4_fixture(&im);
        g_assert_true(pml4_ok(&im));
        /* Not page-aligned, not RAM, not a table. */
        g_assert_false(vmsig_detect_pml4_valid(&im.src, im.spec.dtb + 8));
        g_assert_false(vmsig_detect_pml4_valid(&im.src, 64 * MiB));
        g_assert_false(vmsig_detect_pml4_valid(&im.src, UINT64_MAX & ~(PAGE - 1)));
        g_assert_false(vmsig_detect_pml4_valid(&im.src, 0));
        g_assert_false(vmsig_detect_pml4_valid(&im.src, im.spec.dtb + PAGE));
        image_close(&im);
}

static void test_pml4_self_ref(void) {
        Image im = {};
        uint64_t dtb, self;

        pml4_fixture(&im);
        dtb = im.spec.dtb;
        self = read_u64(&im, dtb + im.spec.self_ref * 8);

        /* The flags must be exactly 0x063. */
        write_u64(&im, dtb + im.spec.self_ref * 8, self | 0x4);
        g_assert_false(pml4_ok(&im));
        /* The PFN must be the page itself. */
        write_u64(&im, dtb + im.spec.self_ref * 8, self + PAGE);
        g_assert_false(pml4_ok(&im));
        /* NX and the software bits do not matter. */
        write_u64(&im, dtb + im.spec.self_ref * 8, self | UINT64_C(0x7FF0000000000000));
        g_assert_true(pml4_ok(&im));
        /* In the user half it is no Windows table. */
        write_u64(&im, dtb + im.spec.self_ref * 8, 0);
        write_u64(&im, dtb + 0x10 * 8, self);
        g_assert_false(pml4_ok(&im));
        /* Nor with two of them. */
        write_u64(&im, dtb + 0x10 * 8, 0);
        write_u64(&im, dtb + im.spec.self_ref * 8, self);
        write_u64(&im, dtb + 0x1FE * 8, self);
        g_assert_false(pml4_ok(&im));
        write_u64(&im, dtb + 0x1FE * 8, 0);
        g_assert_true(pml4_ok(&im));
        image_close(&im);
}

static void test_pml4_entries(void) {
        Image im = {};
        uint64_t dtb, e;

        pml4_fixture(&im);
        dtb = im.spec.dtb;
        /* 7 valid kernel entries besides the self-reference: drop one,
         * still 6. */
        write_u64(&im, dtb + im.info.pool_index * 8, 0);
        g_assert_true(pml4_ok(&im));
        /* 5 is one short, and the self-reference does not make up for it:
         * it maps no kernel memory (a look-alike passed on it once). */
        e = read_u64(&im, dtb + 0x108 * 8);
        write_u64(&im, dtb + 0x108 * 8, e & ~UINT64_C(1));
        g_assert_false(pml4_ok(&im));
        /* A PS bit makes an entry invalid. */
        write_u64(&im, dtb + 0x108 * 8, e | 0x80);
        g_assert_false(pml4_ok(&im));
        write_u64(&im, dtb + 0x108 * 8, e);
        g_assert_true(pml4_ok(&im));
        /* A present entry must point into RAM, in either half... */
        write_u64(&im, dtb + 0x20 * 8, (64 * MiB) | 0x7);
        g_assert_false(pml4_ok(&im));
        write_u64(&im, dtb + 0x20 * 8, 0);
        write_u64(&im, dtb + 0x1E0 * 8, (UINT64_C(1) << 51) | 0x3);
        g_assert_false(pml4_ok(&im));
        /* ...a non-present one may hold anything. */
        write_u64(&im, dtb + 0x1E0 * 8, UINT64_C(0xDEADBEEF000));
        g_assert_true(pml4_ok(&im));
        image_close(&im);
}

static void test_pml4_zeros(void) {
        Image im = {};
        uint64_t dtb;
        unsigned user_used, kernel_used;

        pml4_fixture(&im);
        dtb = im.spec.dtb;
        /* 128 zeros in each half pass, 127 do not; non-present junk fills
         * the rest. */
        user_used = 1;
        for (unsigned i = 1; user_used < 128; i++, user_used++)
                write_u64(&im, dtb + i * 8, UINT64_C(0xDEAD0000) | (i << 12));
        g_assert_true(pml4_ok(&im));
        write_u64(&im, dtb + 128 * 8, 0xBAD0000);
        g_assert_false(pml4_ok(&im));
        write_u64(&im, dtb + 128 * 8, 0);
        g_assert_true(pml4_ok(&im));

        kernel_used = 0;
        for (unsigned i = 256; i < 512; i++)
                if (read_u64(&im, dtb + i * 8) != 0)
                        kernel_used++;
        for (unsigned i = 256; kernel_used < 128; i++)
                if (read_u64(&im, dtb + i * 8) == 0) {
                        write_u64(&im, dtb + i * 8, UINT64_C(0xBEEF0000) | ((uint64_t) i << 12));
                        kernel_used++;
                }
        g_assert_true(pml4_ok(&im));
        for (unsigned i = 256; i < 512; i++)
                if (read_u64(&im, dtb + i * 8) == 0) {
                        write_u64(&im, dtb + i * 8, 0xBAD0000);
                        break;
                }
        g_assert_false(pml4_ok(&im));
        image_close(&im);
}

/* --- negative images ----------------------------------------------------------------- */

static void test_all_zero(void) {
        Image im = {};

        spec_empty(&im.spec);
        image_open(&im);
        assert_nothing(&im);
        image_close(&im);
}

static void test_firmware_only(void) {
        for (uint32_t seed = 1; seed <= 4; seed++) {
                Image im = {};

                spec_empty(&im.spec);
                im.spec.firmware = true;
                im.spec.seed = seed;
                image_open(&im);
                g_assert_cmphex(read_u64(&im, 0x1000), !=, 0);
                assert_nothing(&im);
                image_close(&im);
        }
}

static void scan_to_end(const vmsig_guest_mem *src, uint64_t budget, int expect, vmsig_detect_result *res,
                        vmsig_detect_scan_stats *stats) {
        vmsig_detect_scan *scan = NULL;
        int r;

        g_assert_cmpint(vmsig_detect_scan_new(src, &scan), ==, 0);
        while ((r = vmsig_detect_scan_step(scan, budget, res)) == 0)
                ;
        g_assert_cmpint(r, ==, expect);
        vmsig_detect_scan_get_stats(scan, stats);
        vmsig_detect_scan_free(scan);
}

static void test_system_decoys(void) {
        Image im = {};
        vmsig_detect_result res;
        vmsig_detect_scan_stats one, chunked;

        spec_decoys(&im.spec);
        im.spec.build = 0;
        image_open(&im);
        assert_nothing(&im);

        /* The four aligned names were checked, in one go and in steps too
         * small to verify two in a row: none skipped, none twice. */
        scan_to_end(&im.src, UINT64_MAX, -ENOENT, &res, &one);
        g_assert_cmpuint(one.candidates, ==, 4);
        g_assert_cmpuint(one.scanned, ==, one.total);
        scan_to_end(&im.src, VMSIG_DETECT_SCAN_MIN_BUDGET, -ENOENT, &res, &chunked);
        g_assert_cmpuint(chunked.candidates, ==, 4);
        g_assert_cmpuint(chunked.scanned, >=, chunked.total);
        image_close(&im);
}

static void test_decoys_then_real(void) {
        Image im = {};
        vmsig_detect_result res;
        vmsig_detect_scan_stats stats;

        spec_decoys(&im.spec);
        image_open(&im);
        assert_eprocess(&im, &res);
        scan_to_end(&im.src, VMSIG_DETECT_SCAN_MIN_BUDGET, 1, &res, &stats);
        g_assert_cmpuint(stats.candidates, ==, 5);
        g_assert_cmphex(res.eprocess_gpa, ==, im.spec.eprocess);
        image_close(&im);
}

static void test_pml4_lookalike(void) {
        Image im = {};
        vmsig_detect_result res;

        /* Alone in the first 16 MiB: nothing. */
        spec_empty(&im.spec);
        im.spec.dtb = HIGH_DTB;
        im.spec.lookalike = 0x100000;
        image_open(&im);
        g_assert_false(vmsig_detect_pml4_valid(&im.src, im.spec.lookalike));
        assert_nothing(&im);
        image_close(&im);

        /* Before the real one: the real one. */
        spec_empty(&im.spec);
        im.spec.dtb = 0x1AA000;
        im.spec.lookalike = 0x100000;
        image_open(&im);
        g_assert_cmpint(vmsig_detect_pml4_scan(&im.src, &res), ==, 1);
        g_assert_cmpstr(vmsig_detect_method_to_string(res.method), ==, "pml4-scan");
        g_assert_cmphex(res.dtb, ==, 0x1AA000);
        g_assert_cmpuint(res.self_ref, ==, 0x1ED);
        g_assert_cmphex(res.kernel_hint, ==, 0);
        g_assert_cmpint(vmsig_detect_all(&im.src, false, &res), ==, 1);
        g_assert_cmpint(res.method, ==, VMSIG_DETECT_PML4_SCAN);
        image_close(&im);
}

static void test_stub_unaligned(void) {
        Image im = {};
        vmsig_detect_result res;

        spec_empty(&im.spec);
        im.spec.dtb = HIGH_DTB;
        im.spec.stub = GUEST_IMAGE_STUB_UNALIGNED;
        image_open(&im);
        g_assert_cmphex(read_u64(&im, 0x10A0), ==, HIGH_DTB + 0x10);
        assert_nothing(&im);
        image_close(&im);

        /* With the table in reach of the PML4 scan, that finds it. */
        spec_empty(&im.spec);
        im.spec.stub = GUEST_IMAGE_STUB_UNALIGNED;
        im.spec.dtb = 0x1AA000;
        image_open(&im);
        g_assert_cmpint(vmsig_detect_low_stub(&im.src, &res), ==, 0);
        g_assert_cmpint(vmsig_detect_all(&im.src, true, &res), ==, 1);
        g_assert_cmpint(res.method, ==, VMSIG_DETECT_PML4_SCAN);
        g_assert_cmphex(res.dtb, ==, 0x1AA000);
        image_close(&im);
}

/* Stubs with one field wrong each. */
static void test_stub_fields(void) {
        static const struct {
                uint64_t offset, value;
        } bad[] = {
                { 0x00, UINT64_C(0x00000001000600EB) }, /* not a jmp */
                { 0x00, UINT64_C(0x00000002000600E9) },
                { 0x00, UINT64_C(0x00000001000700E9) },
                { 0x70, UINT64_C(0xFFFFF00000000000) }, /* bit 43 clear */
                { 0x70, UINT64_C(0x7FFFF80000000000) }, /* bit 63 clear */
                { 0x70, UINT64_C(0xFFFFF80242400001) }, /* bit 0 set */
                { 0x70, UINT64_C(0xFFFFF80242400002) }, /* bit 1 set */
                { 0xA0, 0 },
                { 0xA0, UINT64_C(0x1AA008) },
                { 0xA0, UINT64_C(0x1AB000) },         /* a page, but no PML4 */
                { 0xA0, 64 * MiB },                   /* past RAM */
                { 0xA0, UINT64_C(0x80000000001AA000) }, /* high bits */
        };
        Image im = {};
        vmsig_detect_result res;

        guest_image_spec_init(&im.spec);
        im.spec.build = 0;
        image_open(&im);
        g_assert_cmpint(vmsig_detect_low_stub(&im.src, &res), ==, 1);
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                uint64_t saved = read_u64(&im, 0x1000 + bad[i].offset);

                write_u64(&im, 0x1000 + bad[i].offset, bad[i].value);
                g_assert_cmpint(vmsig_detect_low_stub(&im.src, &res), ==, 0);
                write_u64(&im, 0x1000 + bad[i].offset, saved);
        }
        /* The byte after the jmp opcode is free. */
        write_u64(&im, 0x1000, UINT64_C(0x0000000100060FE9));
        g_assert_cmpint(vmsig_detect_low_stub(&im.src, &res), ==, 1);
        image_close(&im);
}

/* --- positive images ----------------------------------------------------------------- */

static void test_low_stub(void) {
        static const uint64_t pages[] = { 0x1000, 0x13000, 0x9F000, 0xFF000 };

        for (size_t i = 0; i < G_N_ELEMENTS(pages); i++) {
                Image im = {};
                vmsig_detect_result res;

                guest_image_spec_init(&im.spec);
                im.spec.stub_page = pages[i];
                im.spec.firmware = true; /* around the stub */
                image_open(&im);
                g_assert_cmpint(vmsig_detect_low_stub(&im.src, &res), ==, 1);
                g_assert_cmpstr(vmsig_detect_method_to_string(res.method), ==, "low-stub");
                g_assert_cmphex(res.dtb, ==, im.spec.dtb);
                g_assert_cmphex(res.kernel_hint, ==, im.info.kernel_base);
                g_assert_cmpuint(res.self_ref, ==, 0x1ED);
                g_assert_cmpuint(res.build, ==, 0);
                g_assert_cmpint(vmsig_detect_all(&im.src, false, &res), ==, 1);
                g_assert_cmpint(res.method, ==, VMSIG_DETECT_LOW_STUB);
                image_close(&im);
        }
}

static void test_low_stub_page_zero(void) {
        Image im = {};

        guest_image_spec_init(&im.spec);
        im.spec.dtb = HIGH_DTB;
        im.spec.build = 0;
        im.spec.stub_page = 0;
        image_open(&im);
        assert_nothing(&im);
        image_close(&im);

        /* At 1 MiB it is past the low stub's area. */
        guest_image_spec_init(&im.spec);
        im.spec.dtb = HIGH_DTB;
        im.spec.build = 0;
        im.spec.stub_page = MiB;
        image_open(&im);
        assert_nothing(&im);
        image_close(&im);
}

static void test_eprocess_build(gconstpointer data) {
        Image im = {};
        vmsig_detect_result res;

        guest_image_spec_init(&im.spec);
        im.spec.build = GPOINTER_TO_UINT(data);
        im.spec.dtb = HIGH_DTB;
        im.spec.stub = GUEST_IMAGE_STUB_NONE;
        image_open(&im);
        g_assert_cmpint(vmsig_detect_low_stub(&im.src, &res), ==, 0);
        g_assert_cmpint(vmsig_detect_pml4_scan(&im.src, &res), ==, 0);
        g_assert_cmpint(vmsig_detect_all(&im.src, false, &res), ==, 0);
        assert_eprocess(&im, &res);
        g_assert_cmphex(res.kernel_hint, ==, 0);
        image_close(&im);
}

/* An EPROCESS whose links lie in the page after its start. */
static void test_eprocess_straddles(void) {
        Image im = {};
        vmsig_detect_result res;

        guest_image_spec_init(&im.spec);
        im.spec.dtb = HIGH_DTB;
        im.spec.stub = GUEST_IMAGE_STUB_NONE;
        im.spec.eprocess = 0x3A5F000 - 0x100;
        image_open(&im);
        assert_eprocess(&im, &res);
        image_close(&im);
}

/* Each field of the real EPROCESS broken in turn. */
static void test_eprocess_fields(void) {
        Image im = {};
        vmsig_detect_result res;
        uint64_t base;

        guest_image_spec_init(&im.spec);
        im.spec.dtb = HIGH_DTB;
        im.spec.stub = GUEST_IMAGE_STUB_NONE;
        image_open(&im);
        base = im.spec.eprocess;
        const struct {
                uint64_t gpa, value;
        } bad[] = {
                { base + im.info.pid_offset, 0 },
                { base + im.info.pid_offset, 8 },
                { base + im.info.links_offset, 0 },
                { base + im.info.links_offset, im.info.head_va & UINT64_C(0x7FFFFFFFFFFF) }, /* user half */
                { base + im.info.links_offset, im.info.head_va + 4 },                        /* unaligned */
                { base + im.info.links_offset + 8, 0 },
                { base + 0x28, 0 },
                { base + 0x28, HIGH_DTB | 0x2 },
                { base + 0x28, HIGH_DTB + PAGE },
                /* the name's tail */
                { base + im.info.name_offset + 8, 0x41 },
                { base + im.info.name_offset, UINT64_C(0x00006D6574737973) }, /* "system" */
                /* the list head no longer pointing back */
                { im.spec.kernel_image + (im.info.head_va - im.info.kernel_base), 0 },
                { im.spec.kernel_image + (im.info.head_va - im.info.kernel_base) + 8, 0 },
        };

        assert_eprocess(&im, &res);
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                uint64_t saved = read_u64(&im, bad[i].gpa);

                write_u64(&im, bad[i].gpa, bad[i].value);
                g_assert_cmpint(vmsig_detect_all(&im.src, true, &res), ==, 0);
                write_u64(&im, bad[i].gpa, saved);
        }
        assert_eprocess(&im, &res);

        /* Links pointing at themselves: no process list. */
        uint64_t self = im.info.eprocess_va + im.info.links_offset;
        write_u64(&im, base + im.info.links_offset, self);
        write_u64(&im, base + im.info.links_offset + 8, self);
        g_assert_cmpint(vmsig_detect_all(&im.src, true, &res), ==, 0);
        image_close(&im);
}

static void test_self_ref_index(unsigned self_ref) {
        Image im = {};
        vmsig_detect_result res;

        g_test_message("self-reference at 0x%X", self_ref);
        guest_image_spec_init(&im.spec);
        im.spec.self_ref = self_ref;
        image_open(&im);
        g_assert_cmpint(vmsig_detect_low_stub(&im.src, &res), ==, 1);
        g_assert_cmpuint(res.self_ref, ==, self_ref);
        g_assert_cmpint(vmsig_detect_pml4_scan(&im.src, &res), ==, 1);
        g_assert_cmpuint(res.self_ref, ==, self_ref);
        assert_eprocess(&im, &res);
        g_assert_cmphex(res.kernel_hint, ==, im.info.kernel_base);
        image_close(&im);
}

static void test_self_ref_1ed(void) {
        test_self_ref_index(0x1ED);
}

static void test_self_ref_random(void) {
        /* Since 1607 anywhere in the kernel half, the pool and kernel
         * image slots included (guest-image moves those). */
        test_self_ref_index(256);
        test_self_ref_index(511);
        test_self_ref_index(0x100);
        test_self_ref_index(0x1F0);
        for (int i = 0; i < 4; i++)
                test_self_ref_index((unsigned) g_test_rand_int_range(256, 512));
}

static void test_split_above_4g(void) {
        Image im = {};
        vmsig_detect_result res;
        uint64_t offset;

        guest_image_spec_init(&im.spec);
        im.spec.ram_size = 5 * GiB;
        im.spec.dtb = 4 * GiB + 0x1AA000;
        im.spec.kernel_image = 4 * GiB + 0x2200000;
        im.spec.eprocess = 4 * GiB + 0x3A5E080;
        image_open(&im);
        g_assert_cmpuint(im.img.n_ranges, ==, 2);
        g_assert_cmphex(im.img.ranges[1].gpa, ==, 4 * GiB);
        g_assert_cmphex(im.img.ranges[1].offset, ==, 3 * GiB);
        g_assert_cmpint(guest_image_offset(&im.img, im.spec.dtb, &offset), ==, 0);
        g_assert_cmphex(offset, ==, 3 * GiB + 0x1AA000);

        g_assert_cmpint(vmsig_detect_low_stub(&im.src, &res), ==, 1);
        g_assert_cmphex(res.dtb, ==, im.spec.dtb);
        g_assert_cmpint(vmsig_detect_pml4_scan(&im.src, &res), ==, 0);
        assert_eprocess(&im, &res);
        g_assert_cmphex(res.kernel_hint, ==, im.info.kernel_base);
        /* Read as if flat, the table is not where the GPA says. */
        vmsig_gpa_range flat = { 0, 5 * GiB, 0 };
        vmsig_guest_mem wrong = im.src;
        wrong.ranges = &flat;
        wrong.n_ranges = 1;
        g_assert_false(vmsig_detect_pml4_valid(&wrong, im.spec.dtb));
        image_close(&im);
}

/* The stub still holds the boot loader's table; the EPROCESS has the
 * real one, and wins. */
static void test_boot_loader_loses(void) {
        Image im = {};
        vmsig_detect_result res;

        guest_image_spec_init(&im.spec);
        im.spec.stub = GUEST_IMAGE_STUB_BOOT_LOADER;
        im.spec.boot_dtb = 0xA00000;
        image_open(&im);
        g_assert_true(vmsig_detect_pml4_valid(&im.src, im.spec.boot_dtb));
        g_assert_cmpint(vmsig_detect_low_stub(&im.src, &res), ==, 1);
        g_assert_cmphex(res.dtb, ==, im.spec.boot_dtb);
        g_assert_cmpint(vmsig_detect_all(&im.src, false, &res), ==, 1);
        g_assert_cmphex(res.dtb, ==, im.spec.boot_dtb);
        assert_eprocess(&im, &res);
        g_assert_cmphex(res.kernel_hint, ==, im.info.kernel_base);
        image_close(&im);
}

/* --- the chunked scan --------------------------------------------------------------------- */

/* rchar of /proc/self/io: what this process read(2) and pread(2) so far.
 * Reading the file counts too, after the fact: *ret_len says by how
 * much. */
static bool proc_rchar(uint64_t *ret, size_t *ret_len) {
        char buf[512];
        int fd = open("/proc/self/io", O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = 0;
        *ret_len = (size_t) n;
        return sscanf(buf, "rchar: %" G_GUINT64_FORMAT, ret) == 1;
}

static void test_scan_chunked(void) {
        const uint64_t budget = VMSIG_DETECT_SCAN_MIN_BUDGET;
        Image im = {};
        vmsig_detect_scan *scan = NULL;
        vmsig_detect_result res = {}, again = {};
        vmsig_detect_scan_stats stats;
        uint64_t prev_read = 0, max_read = 0;
        bool have_rchar = !g_getenv("VMSIG_VALGRIND"); /* valgrind reads files of its own */
        unsigned steps = 0;
        int r;

        spec_decoys(&im.spec);
        im.spec.eprocess = 60 * MiB + 0x80;
        im.spec.populate = true; /* no holes to skip */
        image_open(&im);

        g_assert_cmpint(vmsig_detect_scan_new(&im.src, &scan), ==, 0);
        g_assert_cmpint(vmsig_detect_scan_step(scan, budget - 1, &res), ==, -EINVAL);
        do {
                uint64_t rc0 = 0, rc1 = 0;
                size_t len0 = 0, len1 = 0;

                if (have_rchar)
                        have_rchar = proc_rchar(&rc0, &len0);
                r = vmsig_detect_scan_step(scan, budget, &res);
                if (have_rchar) {
                        have_rchar = proc_rchar(&rc1, &len1);
                        g_assert_cmpuint(rc1 - rc0 - len0, <=, budget);
                }
                vmsig_detect_scan_get_stats(scan, &stats);
                g_assert_cmpuint(stats.bytes_read - prev_read, <=, budget);
                max_read = MAX(max_read, stats.bytes_read - prev_read);
                prev_read = stats.bytes_read;
                steps++;
        } while (r == 0);
        g_assert_cmpint(r, ==, 1);
        g_assert_cmphex(res.eprocess_gpa, ==, im.spec.eprocess);
        g_assert_cmphex(res.dtb, ==, HIGH_DTB);
        g_assert_cmpuint(steps, ==, stats.steps);
        g_assert_cmpuint(steps, >=, (60 * MiB) / budget);
        g_assert_cmpuint(stats.candidates, ==, 5);
        g_test_message("%u steps of at most %" G_GUINT64_FORMAT " bytes (max read %" G_GUINT64_FORMAT
                       ", /proc/self/io %s)",
                       steps, budget, max_read, have_rchar ? "agrees" : "not checked");

        /* Found stays found, without reading more. */
        g_assert_cmpint(vmsig_detect_scan_step(scan, budget, &again), ==, 1);
        g_assert_true(memcmp(&res, &again, sizeof res) == 0);
        g_assert_cmpint(vmsig_detect_scan_step(scan, 0, &again), ==, 1);
        vmsig_detect_scan_get_stats(scan, &stats);
        g_assert_cmpuint(stats.bytes_read, ==, prev_read);
        vmsig_detect_scan_free(scan);
        image_close(&im);
}

static void test_scan_not_found(void) {
        Image im = {};
        vmsig_detect_scan *scan = NULL;
        vmsig_detect_result res = { .dtb = 1234 };
        vmsig_detect_scan_stats stats;
        int r;

        /* All holes: one step, nothing read. */
        spec_empty(&im.spec);
        im.spec.ram_size = 16 * MiB;
        image_open(&im);
        g_assert_cmpint(vmsig_detect_scan_new(&im.src, &scan), ==, 0);
        g_assert_cmpint(vmsig_detect_scan_step(scan, VMSIG_DETECT_SCAN_MIN_BUDGET, &res), ==, -ENOENT);
        vmsig_detect_scan_get_stats(scan, &stats);
        g_assert_cmpuint(stats.scanned, ==, 16 * MiB);
        g_assert_cmpuint(stats.skipped, ==, 16 * MiB);
        g_assert_cmpuint(stats.bytes_read, ==, 0);
        g_assert_cmpuint(stats.steps, ==, 1);
        vmsig_detect_scan_free(scan);
        image_close(&im);

        /* All data. */
        spec_empty(&im.spec);
        im.spec.ram_size = 16 * MiB;
        im.spec.populate = true;
        image_open(&im);
        g_assert_cmpint(vmsig_detect_scan_new(&im.src, &scan), ==, 0);
        while ((r = vmsig_detect_scan_step(scan, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &res)) == 0)
                ;
        g_assert_cmpint(r, ==, -ENOENT);
        g_assert_cmpuint(res.dtb, ==, 1234); /* untouched */
        vmsig_detect_scan_get_stats(scan, &stats);
        g_assert_cmpuint(stats.scanned, ==, 16 * MiB);
        g_assert_cmpuint(stats.total, ==, 16 * MiB);
        g_assert_cmpuint(stats.skipped, ==, 0);
        g_assert_cmpuint(stats.bytes_read, ==, 16 * MiB);
        /* Each step leaves room for a verification it did not need, and
         * pays for looking for holes. */
        g_assert_cmpuint(stats.steps, >=, 16 * MiB / VMSIG_DETECT_SCAN_BUDGET_DEFAULT);
        g_assert_cmpuint(stats.steps, <=, 2 * 16 * MiB / VMSIG_DETECT_SCAN_BUDGET_DEFAULT);
        g_assert_cmpint(vmsig_detect_scan_step(scan, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &res), ==, -ENOENT);
        g_assert_null(vmsig_detect_scan_free(scan));
        g_assert_null(vmsig_detect_scan_free(NULL));

        /* No ranges at all. */
        vmsig_guest_mem none = im.src;
        none.n_ranges = 0;
        g_assert_cmpint(vmsig_detect_scan_new(&none, &scan), ==, 0);
        g_assert_cmpint(vmsig_detect_scan_step(scan, VMSIG_DETECT_SCAN_MIN_BUDGET, &res), ==, -ENOENT);
        vmsig_detect_scan_free(scan);
        g_assert_cmpint(vmsig_detect_all(&none, true, &res), ==, 0);
        image_close(&im);
}

/* Only what the guest touched is read. */
static void test_scan_holes(void) {
        Image im = {};
        vmsig_detect_result res;
        vmsig_detect_scan_stats stats;

        spec_decoys(&im.spec);
        image_open(&im);
        scan_to_end(&im.src, VMSIG_DETECT_SCAN_MIN_BUDGET, 1, &res, &stats);
        g_assert_cmphex(res.eprocess_gpa, ==, im.spec.eprocess);
        g_assert_cmpuint(stats.candidates, ==, 5);
        /* A chunk from each page of data on. */
        g_assert_cmpuint(stats.bytes_read, <, MiB);
        g_assert_cmpuint(stats.skipped, >, 58 * MiB);
        g_test_message("read %" G_GUINT64_FORMAT " bytes in %u steps, skipped %" G_GUINT64_FORMAT " MiB",
                       stats.bytes_read, stats.steps, stats.skipped / MiB);
        image_close(&im);
}

/* The name in the last qword of a page, the rest of it in a hole. */
static void test_eprocess_name_at_page_end(void) {
        Image im = {};
        vmsig_detect_result res;
        uint64_t name, offset;

        guest_image_spec_init(&im.spec);
        im.spec.dtb = HIGH_DTB;
        im.spec.stub = GUEST_IMAGE_STUB_NONE;
        im.spec.eprocess = 0x3A5EFF8 - 0x5A8;
        image_open(&im);
        name = im.spec.eprocess + im.info.name_offset;
        g_assert_cmphex(name & (PAGE - 1), ==, 0xFF8);
        g_assert_cmpint(guest_image_offset(&im.img, name + 8, &offset), ==, 0);
        g_assert_cmpint(fallocate(im.img.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) offset, (off_t) PAGE),
                        ==, 0);
        g_assert_cmpint(lseek(im.img.fd, (off_t) offset, SEEK_HOLE), ==, (off_t) offset);
        assert_eprocess(&im, &res);
        image_close(&im);
}

/* A name at every 8-byte-aligned position the scan could cut wrongly:
 * chunk ends, range ends and unaligned range starts. */
static void test_scan_ranges(void) {
        Image im = {};
        vmsig_detect_result res;
        vmsig_detect_scan_stats stats;

        guest_image_spec_init(&im.spec);
        im.spec.stub = GUEST_IMAGE_STUB_NONE;
        im.spec.dtb = HIGH_DTB;
        /* 0x...080 + 0x5A8: the name sits at 0x...628. */
        im.spec.eprocess = 48 * MiB + 0x80;
        image_open(&im);
        /* The EPROCESS in a second range with an unaligned start, and a
         * third one reaching past the end of the file (not RAM there). */
        vmsig_gpa_range ranges[] = {
                { .gpa = 0, .size = 48 * MiB, .offset = 0 },
                { .gpa = 48 * MiB + 0x103, .size = 16 * MiB - 0x103, .offset = 48 * MiB + 0x103 },
                { .gpa = 80 * MiB, .size = 64 * MiB, .offset = 60 * MiB },
        };
        vmsig_guest_mem src = im.src;
        src.ranges = ranges;
        src.n_ranges = G_N_ELEMENTS(ranges);
        /* The name is RAM, the start of the structure is not. */
        g_assert_cmpint(vmsig_detect_all(&src, true, &res), ==, 0);
        scan_to_end(&src, VMSIG_DETECT_SCAN_MIN_BUDGET, -ENOENT, &res, &stats);
        g_assert_cmpuint(stats.candidates, ==, 1);
        ranges[1].gpa = 48 * MiB;
        ranges[1].size = 16 * MiB;
        ranges[1].offset = 48 * MiB;
        g_assert_cmpint(vmsig_detect_all(&src, true, &res), ==, 1);
        g_assert_cmphex(res.eprocess_gpa, ==, im.spec.eprocess);
        scan_to_end(&src, VMSIG_DETECT_SCAN_MIN_BUDGET, 1, &res, &stats);
        /* The third range has 4 MiB inside the file. */
        g_assert_cmpuint(stats.total, ==, 68 * MiB);
        image_close(&im);
}

/* A file shorter than ram_size claims: reading fails, and says so. */
static void test_io_error(void) {
        Image im = {};
        vmsig_detect_scan *scan = NULL;
        vmsig_detect_result res;
        int r;

        spec_empty(&im.spec);
        im.spec.ram_size = 8 * MiB;
        image_open(&im);
        vmsig_gpa_range big = { 0, 16 * MiB, 0 };
        vmsig_guest_mem src = im.src;
        src.ranges = &big;
        src.ram_size = 16 * MiB;
        g_assert_cmpint(vmsig_detect_pml4_scan(&src, &res), ==, -EIO);
        g_assert_cmpint(vmsig_detect_all(&src, true, &res), ==, -EIO);
        g_assert_cmpint(vmsig_detect_scan_new(&src, &scan), ==, 0);
        while ((r = vmsig_detect_scan_step(scan, VMSIG_DETECT_SCAN_MIN_BUDGET, &res)) == 0)
                ;
        g_assert_cmpint(r, ==, -EIO);
        g_assert_cmpint(vmsig_detect_scan_step(scan, VMSIG_DETECT_SCAN_MIN_BUDGET, &res), ==, -EIO);
        vmsig_detect_scan_free(scan);

        /* A closed fd. */
        src = im.src;
        src.read_fd = -1;
        g_assert_cmpint(vmsig_detect_all(&src, true, &res), ==, -EBADF);
        image_close(&im);
}

/* --- speed ------------------------------------------------------------------------------ */

static double elapsed_ms(gint64 start) {
        return (double) (g_get_monotonic_time() - start) / 1000.0;
}

/* What reading the ranges costs, without looking at the bytes. */
static double read_pass_ms(const Image *im, size_t chunk) {
        g_autofree uint8_t *buf = g_malloc(chunk);
        gint64 start = g_get_monotonic_time();

        for (size_t i = 0; i < im->img.n_ranges; i++) {
                const vmsig_gpa_range *r = &im->img.ranges[i];

                for (uint64_t pos = 0; pos < r->size; pos += chunk) {
                        size_t n = (size_t) MIN((uint64_t) chunk, r->size - pos);
                        g_assert_cmpint(pread(im->img.ro_fd, buf, n, (off_t) (r->offset + pos)), ==, (ssize_t) n);
                }
        }
        return elapsed_ms(start);
}

/* The whole scan in steps of the default budget. */
static double scan_ms(const Image *im, double *ret_step_max, vmsig_detect_scan_stats *ret_stats) {
        vmsig_detect_scan *scan = NULL;
        vmsig_detect_result res;
        gint64 start = g_get_monotonic_time();
        int r;

        *ret_step_max = 0;
        g_assert_cmpint(vmsig_detect_scan_new(&im->src, &scan), ==, 0);
        do {
                gint64 s = g_get_monotonic_time();
                r = vmsig_detect_scan_step(scan, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &res);
                *ret_step_max = MAX(*ret_step_max, elapsed_ms(s));
        } while (r == 0);
        double ms = elapsed_ms(start);
        g_assert_cmpint(r, ==, 1);
        g_assert_cmphex(res.eprocess_gpa, ==, im->spec.eprocess);
        vmsig_detect_scan_get_stats(scan, ret_stats);
        vmsig_detect_scan_free(scan);
        return ms;
}

/* The EPROCESS near the top of RAM, so that a scan goes through all of
 * it. */
static void speed_spec(GuestImageSpec *spec, uint64_t size) {
        uint64_t top = size > 3 * GiB ? 4 * GiB + (size - 3 * GiB) : size;

        guest_image_spec_init(spec);
        spec->ram_size = size;
        spec->dtb = top - 16 * MiB;
        spec->kernel_image = top - 8 * MiB;
        spec->eprocess = top - 2 * MiB + 0x80;
        spec->firmware = true;
        spec->decoys = 0x2800000;
}

static void speed_report(const Image *im, const char *what) {
        vmsig_detect_scan_stats stats;
        double step_max, scan, pass, pass_1m;

        /* Best of three each: the machine may be busy with other things. */
        scan = pass = pass_1m = G_MAXDOUBLE;
        for (int i = 0; i < 3; i++) {
                pass = MIN(pass, read_pass_ms(im, 256 * KiB));
                pass_1m = MIN(pass_1m, read_pass_ms(im, MiB));
                scan = MIN(scan, scan_ms(im, &step_max, &stats));
        }
        g_test_message("%s guest of %" G_GUINT64_FORMAT " MiB: EPROCESS scan %.1f ms (%u steps of %" G_GUINT64_FORMAT
                       " MiB, longest %.2f ms, read %" G_GUINT64_FORMAT " MiB, skipped %" G_GUINT64_FORMAT
                       " MiB); plain pread pass %.1f ms (256 KiB reads), %.1f ms (1 MiB reads); scan/pass %.2f",
                       what, im->spec.ram_size / MiB, scan, stats.steps, VMSIG_DETECT_SCAN_BUDGET_DEFAULT / MiB,
                       step_max, stats.bytes_read / MiB, stats.skipped / MiB, pass, pass_1m,
                       scan / MIN(pass, pass_1m));
}

static void test_speed(void) {
        /* valgrind would take minutes over 4 GiB. */
        bool valgrind = g_getenv("VMSIG_VALGRIND") != NULL;
        Image sparse = {}, full = {};
        vmsig_detect_result res;
        double stub_ms = 0, stub_max = 0, pml4_ms;
        const int stub_runs = 50;
        gint64 start;

        speed_spec(&sparse.spec, valgrind ? 256 * MiB : 4 * GiB);
        image_open(&sparse);
        for (int i = 0; i < stub_runs; i++) {
                start = g_get_monotonic_time();
                g_assert_cmpint(vmsig_detect_low_stub(&sparse.src, &res), ==, 1);
                double ms = elapsed_ms(start);
                stub_ms += ms / stub_runs;
                stub_max = MAX(stub_max, ms);
        }
        start = g_get_monotonic_time();
        g_assert_cmpint(vmsig_detect_pml4_scan(&sparse.src, &res), ==, 0);
        pml4_ms = elapsed_ms(start);
        g_test_message("low stub: %.3f ms average, %.3f ms max over %d runs; PML4 scan of 16 MiB: %.2f ms", stub_ms,
                       stub_max, stub_runs, pml4_ms);
        speed_report(&sparse, "sparse");
        image_close(&sparse);

        /* Every page touched, as in a guest that has run for a while. */
        speed_spec(&full.spec, valgrind ? 64 * MiB : 256 * MiB);
        full.spec.populate = true;
        image_open(&full);
        speed_report(&full, "populated");
        image_close(&full);
}

/* A root found is checked again cheaply: the System EPROCESS still says
 * the same; a change to its DirectoryTableBase, its name or the root's
 * self-reference fails it. */
static void test_eprocess_verify(void) {
        Image im = {};
        vmsig_detect_result res, other;
        uint64_t fp1, fp2;

        guest_image_spec_init(&im.spec);
        image_open(&im);
        g_assert_cmpint(vmsig_detect_all(&im.src, true, &res), ==, 1);
        g_assert_cmpint(vmsig_detect_eprocess_verify(&im.src, &res), ==, 1);
        g_assert_cmpint(vmsig_detect_eprocess_fingerprint(&im.src, &res, &fp1), ==, 0);
        /* A field a running kernel changes: another fingerprint, still valid. */
        write_u64(&im, im.spec.eprocess + 0x30, 42);
        g_assert_cmpint(vmsig_detect_eprocess_fingerprint(&im.src, &res, &fp2), ==, 0);
        g_assert_cmphex(fp1, !=, fp2);
        g_assert_cmpint(vmsig_detect_eprocess_verify(&im.src, &res), ==, 1);
        /* Another DTB. */
        write_u64(&im, im.spec.eprocess + 0x28, 0x10000);
        g_assert_cmpint(vmsig_detect_eprocess_verify(&im.src, &res), ==, 0);
        write_u64(&im, im.spec.eprocess + 0x28, im.spec.dtb);
        g_assert_cmpint(vmsig_detect_eprocess_verify(&im.src, &res), ==, 1);
        /* No self-reference any more. */
        write_u64(&im, im.spec.dtb + im.spec.self_ref * 8, 0);
        g_assert_cmpint(vmsig_detect_eprocess_verify(&im.src, &res), ==, 0);
        /* Not an EPROCESS result. */
        other = (vmsig_detect_result) { .method = VMSIG_DETECT_PML4_SCAN, .dtb = im.spec.dtb };
        g_assert_cmpint(vmsig_detect_eprocess_verify(&im.src, &other), ==, -EINVAL);
        image_close(&im);
}

/* Two tables map the same kernel when their kernel halves agree but for
 * their own self-references and the accessed and dirty bits; one entry
 * more in one of them (Linux's LDT under PTI) is allowed, two are not. */
static void test_same_kernel(void) {
        Image im = {};
        const uint64_t copy = 0x300000;
        uint8_t page[4096];
        uint64_t offset, e;

        guest_image_spec_init(&im.spec);
        image_open(&im);
        /* A process's table: a copy with its own self-reference. */
        g_assert_cmpint(guest_image_offset(&im.img, im.spec.dtb, &offset), ==, 0);
        g_assert_cmpint(pread(im.img.fd, page, sizeof page, (off_t) offset), ==, (ssize_t) sizeof page);
        g_assert_cmpint(guest_image_offset(&im.img, copy, &offset), ==, 0);
        g_assert_cmpint(pwrite(im.img.fd, page, sizeof page, (off_t) offset), ==, (ssize_t) sizeof page);
        write_u64(&im, copy + im.spec.self_ref * 8, copy | 0x63);
        g_assert_cmpint(vmsig_detect_same_kernel(&im.src, im.spec.dtb, copy), ==, 1);
        g_assert_cmpint(vmsig_detect_same_kernel(&im.src, im.spec.dtb, copy | 0xFFF), ==, 1); /* CR3 flags */
        /* The user half is the process's own business. */
        write_u64(&im, copy + 8, 0x777007);
        g_assert_cmpint(vmsig_detect_same_kernel(&im.src, im.spec.dtb, copy), ==, 1);
        /* Accessed and dirty. */
        memcpy(&e, page + im.info.pool_index * 8, sizeof e);
        write_u64(&im, copy + im.info.pool_index * 8, le64toh(e) ^ 0x60);
        g_assert_cmpint(vmsig_detect_same_kernel(&im.src, im.spec.dtb, copy), ==, 1);
        /* One entry only one has; then two. */
        write_u64(&im, copy + 0x1F8 * 8, 0x500007);
        g_assert_cmpint(vmsig_detect_same_kernel(&im.src, im.spec.dtb, copy), ==, 1);
        write_u64(&im, copy + 0x1F9 * 8, 0x501007);
        g_assert_cmpint(vmsig_detect_same_kernel(&im.src, im.spec.dtb, copy), ==, 0);
        write_u64(&im, copy + 0x1F9 * 8, 0);
        /* Another kernel's entry where both have one. */
        write_u64(&im, copy + im.info.kernel_index * 8, 0x600063);
        g_assert_cmpint(vmsig_detect_same_kernel(&im.src, im.spec.dtb, copy), ==, 0);
        /* A kernel's table has a kernel half; an identity map has none. */
        g_assert_cmpint(vmsig_detect_kernel_entries(&im.src, im.spec.dtb), ==, 8); /* 7 and the self-reference */
        g_assert_cmpint(vmsig_detect_kernel_entries(&im.src, im.spec.dtb | 0x18), ==, 8); /* CR3 flag bits */
        g_assert_cmpint(vmsig_detect_kernel_entries(&im.src, 0x310000), ==, 0);
        g_assert_cmpint(vmsig_detect_kernel_entries(&im.src, UINT64_C(1) << 40), ==, 0);
        /* Empty kernel halves name no kernel; a root outside RAM neither. */
        g_assert_cmpint(vmsig_detect_same_kernel(&im.src, 0x310000, 0x311000), ==, 0);
        g_assert_cmpint(vmsig_detect_same_kernel(&im.src, im.spec.dtb, UINT64_C(1) << 40), ==, 0);
        image_close(&im);
}

/* After a find the scan goes on past it: the next System EPROCESS, then
 * the end. */
static void test_scan_resume(void) {
        Image im = {};
        vmsig_detect_scan *scan = NULL;
        vmsig_detect_result res;
        int r;

        guest_image_spec_init(&im.spec);
        image_open(&im);
        g_assert_cmpint(vmsig_detect_scan_new(&im.src, &scan), ==, 0);
        while ((r = vmsig_detect_scan_step(scan, VMSIG_DETECT_SCAN_MIN_BUDGET, &res)) == 0)
                ;
        g_assert_cmpint(r, ==, 1);
        g_assert_cmphex(res.eprocess_gpa, ==, im.spec.eprocess);
        vmsig_detect_scan_resume(scan);
        while ((r = vmsig_detect_scan_step(scan, VMSIG_DETECT_SCAN_MIN_BUDGET, &res)) == 0)
                ;
        g_assert_cmpint(r, ==, -ENOENT);
        vmsig_detect_scan_free(scan);
        image_close(&im);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);

        VT_TESTS("/detect/", test_method_strings);
        VT_TESTS("/detect/guest-image/", test_guest_image_writes, test_guest_image_errors);
        VT_TESTS("/detect/pml4/", test_pml4_valid, test_pml4_self_ref, test_pml4_entries, test_pml4_zeros,
                 test_pml4_steps);
        VT_TESTS("/detect/negative/", test_all_zero, test_firmware_only, test_system_decoys, test_pml4_lookalike);
        g_test_add_func("/detect/negative/stub-unaligned-dtb", test_stub_unaligned);
        g_test_add_func("/detect/negative/stub-fields", test_stub_fields);
        g_test_add_func("/detect/negative/stub-page-zero", test_low_stub_page_zero);
        g_test_add_func("/detect/low-stub", test_low_stub);
        g_test_add_data_func("/detect/eprocess/7601", GUINT_TO_POINTER(7601), test_eprocess_build);
        g_test_add_data_func("/detect/eprocess/18362", GUINT_TO_POINTER(18362), test_eprocess_build);
        g_test_add_data_func("/detect/eprocess/19041", GUINT_TO_POINTER(19041), test_eprocess_build);
        g_test_add_func("/detect/eprocess/straddles-page", test_eprocess_straddles);
        VT_TESTS("/detect/eprocess/", test_eprocess_name_at_page_end, test_eprocess_fields, test_decoys_then_real);
        g_test_add_func("/detect/self-ref/0x1ed", test_self_ref_1ed);
        g_test_add_func("/detect/self-ref/random", test_self_ref_random);
        g_test_add_func("/detect/split-above-4g", test_split_above_4g);
        g_test_add_func("/detect/boot-loader-dtb-loses", test_boot_loader_loses);
        VT_TESTS("/detect/scan/", test_scan_chunked, test_scan_not_found, test_scan_ranges, test_scan_holes);
        VT_TESTS("/detect/", test_io_error, test_speed);
        VT_TESTS("/detect/check/", test_eprocess_verify, test_same_kernel);
        g_test_add_func("/detect/scan/resume", test_scan_resume);
        return g_test_run();
}
