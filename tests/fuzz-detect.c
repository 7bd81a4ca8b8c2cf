/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the detector: the input becomes the RAM of a guest
 * (a 1 MiB memfd) and its GPA map, and vmsig_detect_all() and a chunked
 * scan must neither crash nor read out of bounds, must agree with each
 * other, and whatever they report must hold up.
 *
 * Input (integers little-endian):
 *   byte 0    flags: bit 0 records (else raw), bit 1 ranges from the
 *             input (else GPA == file offset over all of ram_size), bit 2
 *             ram_size one page past the end of the file (reads may fail
 *             with EIO then), bit 3 a chunked scan with the least budget
 *   byte 1    with bit 1: number of ranges - 1 (mod 4), then per range
 *             gpa u32 (x 16; with bit 31 set: 2^64 - 1 - (v & 0x7FFFFFFF)
 *             x 16), size u32, offset u32
 *   raw       u16 page (mod 256), then bytes copied there
 *   records   { offset u32 (mod 1 MiB), len u16, bytes[len] } ...,
 *             each cut at the end of the file
 *
 * Built with libFuzzer by a build configured with --enable-fuzzers
 * (scripts/fuzz.sh detect), from Makefile.am's tests/fuzz-detect.
 * With -DFUZZ_STANDALONE and tests/fuzz-main.c it is a plain program that
 * runs the files (or the files in the directories) it is given, by default
 * $VMSIG_SRCDIR/tests/data/fuzz-detect, and prints TAP. With
 * -DFUZZ_WRITE_SEEDS (and tests/guest-image.c) it writes the seeds of that
 * directory from guest-image specs into the directory it is given.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "detect.h"
#include "fuzz.h"
#include "macro.h"

#define FUZZ_RAM_SIZE (UINT64_C(1) << 20)
#define PAGE UINT64_C(0x1000)
#define MAX_RANGES 4

enum {
        FLAG_RECORDS = 1 << 0,
        FLAG_RANGES = 1 << 1,
        FLAG_SHORT_FILE = 1 << 2,
        FLAG_CHUNKED = 1 << 3,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input, consumed from the front. */
typedef struct Input {
        const uint8_t *p;
        size_t left;
} Input;

static bool take(Input *in, void *buf, size_t n) {
        if (in->left < n)
                return false;
        memcpy(buf, in->p, n);
        in->p += n;
        in->left -= n;
        return true;
}

static uint32_t take_u32(Input *in) {
        uint32_t v = 0;

        (void) take(in, &v, sizeof v);
        return le32toh(v);
}

static uint16_t take_u16(Input *in) {
        uint16_t v = 0;

        (void) take(in, &v, sizeof v);
        return le16toh(v);
}

static uint8_t take_u8(Input *in) {
        uint8_t v = 0;

        (void) take(in, &v, sizeof v);
        return v;
}

static size_t parse_ranges(Input *in, uint8_t flags, uint64_t ram_size, vmsig_gpa_range ranges[static MAX_RANGES]) {
        if (!(flags & FLAG_RANGES)) {
                ranges[0] = (vmsig_gpa_range) { .gpa = 0, .size = ram_size, .offset = 0 };
                return 1;
        }
        size_t n = take_u8(in) % MAX_RANGES + 1;
        for (size_t i = 0; i < n; i++) {
                uint32_t gpa = take_u32(in);

                ranges[i].gpa = gpa & 0x80000000u ? UINT64_MAX - (uint64_t) (gpa & 0x7FFFFFFFu) * 16
                                                  : (uint64_t) gpa * 16;
                ranges[i].size = take_u32(in);
                ranges[i].offset = take_u32(in);
        }
        return n;
}

static void write_at(int fd, uint64_t offset, const uint8_t *buf, size_t len) {
        if (offset >= FUZZ_RAM_SIZE)
                return;
        len = (size_t) MIN((uint64_t) len, FUZZ_RAM_SIZE - offset);
        if (pwrite(fd, buf, len, (off_t) offset) != (ssize_t) len)
                abort();
}

static void fill_ram(int fd, Input *in, uint8_t flags) {
        if (!(flags & FLAG_RECORDS)) {
                uint64_t page = take_u16(in) % (FUZZ_RAM_SIZE / PAGE);
                write_at(fd, page * PAGE, in->p, in->left);
                return;
        }
        while (in->left >= 6) { /* a record header */
                uint64_t offset = take_u32(in) % FUZZ_RAM_SIZE;
                size_t len = take_u16(in);

                len = MIN(len, in->left);

                write_at(fd, offset, in->p, len);
                in->p += len;
                in->left -= len;
        }
}

/* The RAM file, zeroed for each input. Kept: a memfd per input costs more
 * than the detection. */
static int ram_fd = -1, ram_ro_fd = -1;

static void ram_reset(void) {
        char path[64];

        if (ram_fd < 0) {
                ram_fd = memfd_create("fuzz-ram", MFD_CLOEXEC);
                if (ram_fd < 0)
                        abort();
                snprintf(path, sizeof path, "/proc/self/fd/%d", ram_fd);
                ram_ro_fd = open(path, O_RDONLY | O_CLOEXEC);
                if (ram_ro_fd < 0)
                        abort();
        }
        if (ftruncate(ram_fd, 0) < 0 || ftruncate(ram_fd, (off_t) FUZZ_RAM_SIZE) < 0)
                abort();
}

static bool known_build(unsigned build) {
        return build == 7601 || build == 18362 || build == 19041;
}

/* What a result claims must be true of the RAM. */
static void check_result(const vmsig_guest_mem *s, const vmsig_detect_result *res) {
        unsigned self_ref = 0;

        fuzz_check(res->method > VMSIG_DETECT_NONE && res->method < _VMSIG_DETECT_METHOD_MAX);
        fuzz_check((res->dtb & (PAGE - 1)) == 0);
        fuzz_check(vmsig_detect_pml4_check(s, res->dtb, &self_ref) == 1);
        fuzz_check(self_ref == res->self_ref && self_ref >= 256 && self_ref <= 511);
        if (res->method == VMSIG_DETECT_EPROCESS) {
                fuzz_check(known_build(res->build));
                fuzz_check((res->eprocess_va >> 47) == (UINT64_MAX >> 47));
        } else
                fuzz_check(res->build == 0 && res->eprocess_gpa == 0 && res->eprocess_va == 0);
        if (res->method == VMSIG_DETECT_LOW_STUB)
                fuzz_check((res->kernel_hint & UINT64_C(0xFFFFF80000000003)) == UINT64_C(0xFFFFF80000000000));
        if (res->method == VMSIG_DETECT_PML4_SCAN)
                fuzz_check(res->kernel_hint == 0 && res->dtb < VMSIG_DETECT_PML4_SCAN_LIMIT);
}

/* The scan in the smallest steps finds what the one-shot scan found:
 * chunk boundaries neither hide nor invent a candidate. */
static void check_chunked(const vmsig_guest_mem *s, int expect, const vmsig_detect_result *expect_res,
                          bool may_fail) {
        vmsig_detect_scan *scan = NULL;
        vmsig_detect_scan_stats stats;
        vmsig_detect_result res = {};
        uint64_t prev = 0;
        int r;

        fuzz_check(vmsig_detect_scan_new(s, &scan) == 0);
        do {
                r = vmsig_detect_scan_step(scan, VMSIG_DETECT_SCAN_MIN_BUDGET, &res);
                vmsig_detect_scan_get_stats(scan, &stats);
                fuzz_check(stats.bytes_read - prev <= VMSIG_DETECT_SCAN_MIN_BUDGET);
                prev = stats.bytes_read;
        } while (r == 0);
        vmsig_detect_scan_free(scan);
        if (may_fail && (r < 0 && r != -ENOENT))
                return;
        fuzz_check(r == expect);
        if (r == 1)
                fuzz_check(memcmp(&res, expect_res, sizeof res) == 0);
}

static void run(const vmsig_guest_mem *s, uint8_t flags) {
        bool may_fail = flags & FLAG_SHORT_FILE;
        vmsig_detect_result stub, all, scan_res;
        vmsig_detect_scan *scan = NULL;
        int r_stub, r_all, r_scan;

        r_stub = vmsig_detect_low_stub(s, &stub);
        r_all = vmsig_detect_all(s, true, &all);
        if (!may_fail)
                fuzz_check(r_stub >= 0 && r_all >= 0);
        if (r_stub < 0 || r_all < 0)
                return;
        if (r_stub > 0) {
                check_result(s, &stub);
                fuzz_check(r_all == 1);
        }
        if (r_all == 0)
                fuzz_check(all.method == VMSIG_DETECT_NONE && all.dtb == 0);
        else
                check_result(s, &all);

        /* The EPROCESS scan alone, in one step and in many. */
        fuzz_check(vmsig_detect_scan_new(s, &scan) == 0);
        r_scan = vmsig_detect_scan_step(scan, UINT64_MAX, &scan_res);
        vmsig_detect_scan_free(scan);
        if (r_scan == 1) {
                check_result(s, &scan_res);
                fuzz_check(all.method == VMSIG_DETECT_EPROCESS && all.dtb == scan_res.dtb);
        } else if (r_scan == -ENOENT)
                fuzz_check(all.method != VMSIG_DETECT_EPROCESS);
        else
                fuzz_check(may_fail);
        if ((flags & FLAG_CHUNKED) && (r_scan == 1 || r_scan == -ENOENT))
                check_chunked(s, r_scan, &scan_res, may_fail);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Input in = { .p = data, .left = size };
        vmsig_gpa_range ranges[MAX_RANGES];
        uint8_t flags = take_u8(&in);
        uint64_t ram_size = FUZZ_RAM_SIZE + (flags & FLAG_SHORT_FILE ? PAGE : 0);
        size_t n_ranges = parse_ranges(&in, flags, ram_size, ranges);

        ram_reset();
        fill_ram(ram_fd, &in, flags);
        vmsig_guest_mem s = {
                .read_fd = ram_ro_fd,
                .ranges = ranges,
                .n_ranges = n_ranges,
                .ram_size = ram_size,
        };
        run(&s, flags);
        return 0;
}


#if defined(FUZZ_WRITE_SEEDS)
#include "guest-image.h"

/* Records of the non-zero runs of the writes: RAM starts out zero. */
static int encode(const GuestImageSpec *spec, uint8_t flags, uint8_t **ret, size_t *ret_len) {
        GuestImageWrite *w = NULL;
        size_t n = 0, len = 1, cap = 1 << 16;
        uint8_t *out = malloc(cap);
        int r;

        if (!out)
                return -ENOMEM;
        r = guest_image_build(spec, &w, &n);
        if (r < 0) {
                free(out);
                return r;
        }
        out[0] = flags | FLAG_RECORDS;
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < w[i].len;) {
                        if (w[i].data[j] == 0) {
                                j++;
                                continue;
                        }
                        size_t k = j;
                        while (k < w[i].len && w[i].data[k] != 0)
                                k++;
                        uint32_t offset = htole32((uint32_t) (w[i].gpa + j));
                        uint16_t run = htole16((uint16_t) (k - j));
                        if (len + 6 + (k - j) > cap)
                                abort();
                        memcpy(out + len, &offset, 4);
                        memcpy(out + len + 4, &run, 2);
                        memcpy(out + len + 6, w[i].data + j, k - j);
                        len += 6 + (k - j);
                        j = k;
                }
        guest_image_writes_free(w, n);
        *ret = out;
        *ret_len = len;
        return 0;
}

/* Everything in the 1 MiB, the low stub's area included. */
static void seed_spec(GuestImageSpec *spec) {
        guest_image_spec_init(spec);
        spec->ram_size = FUZZ_RAM_SIZE;
        spec->layout = GUEST_IMAGE_LAYOUT_FLAT;
        spec->dtb = 0x9A000; /* tables up to 0xA6000 */
        spec->kernel_image = 0; /* a 2 MiB page over all of RAM, the head at 0xC3A80 */
        spec->eprocess = 0xD0080;
}

static int write_seed(const char *dir, const char *name, const GuestImageSpec *spec, uint8_t flags) {
        _cleanup_free_ uint8_t *buf = NULL;
        char path[4096];
        size_t len;
        FILE *f;
        int r;

        r = encode(spec, flags, &buf, &len);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = fopen(path, "we");
        if (!f)
                return -errno;
        if (fwrite(buf, 1, len, f) != len) {
                fclose(f);
                return -EIO;
        }
        if (fclose(f) != 0)
                return -errno;
        /* Say what the seed leads to, for whoever names it. */
        LLVMFuzzerTestOneInput(buf, len);
        uint64_t ram_size = FUZZ_RAM_SIZE + (flags & FLAG_SHORT_FILE ? PAGE : 0);
        vmsig_gpa_range range = { .gpa = 0, .size = ram_size, .offset = 0 };
        vmsig_guest_mem s = { .read_fd = ram_ro_fd, .ranges = &range, .n_ranges = 1, .ram_size = ram_size };
        vmsig_detect_result res;
        r = vmsig_detect_all(&s, true, &res);
        printf("%s: %zu bytes: %d %s dtb 0x%" PRIx64 " build %u\n", path, len, r,
               vmsig_detect_method_to_string(res.method), res.dtb, res.build);
        return 0;
}

int main(int argc, char **argv) {
        GuestImageSpec spec;
        int r = 0;

        if (argc != 2) {
                fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
                return 2;
        }
        seed_spec(&spec);
        r |= write_seed(argv[1], "seed-19041-stub", &spec, FLAG_CHUNKED);
        seed_spec(&spec);
        spec.build = 7601;
        spec.stub = GUEST_IMAGE_STUB_NONE;
        spec.decoys = 0xE0000;
        r |= write_seed(argv[1], "seed-7601-decoys", &spec, FLAG_CHUNKED);
        seed_spec(&spec);
        spec.build = 18362;
        spec.self_ref = 0x1A3;
        spec.stub = GUEST_IMAGE_STUB_BOOT_LOADER;
        spec.boot_dtb = 0x70000;
        r |= write_seed(argv[1], "seed-18362-boot-loader", &spec, 0);
        seed_spec(&spec);
        spec.build = 0;
        spec.stub = GUEST_IMAGE_STUB_UNALIGNED;
        spec.lookalike = 0x60000;
        r |= write_seed(argv[1], "seed-lookalike-unaligned-stub", &spec, 0);
        seed_spec(&spec);
        spec.eprocess = 0xD1000 - 0x100; /* across a page */
        r |= write_seed(argv[1], "seed-19041-straddling", &spec, FLAG_CHUNKED);
        /* Nothing to find early: the scans read into the page the file
         * does not have. */
        seed_spec(&spec);
        spec.build = 0;
        spec.stub = GUEST_IMAGE_STUB_NONE;
        r |= write_seed(argv[1], "seed-short-file", &spec, FLAG_SHORT_FILE | FLAG_CHUNKED);
        return r < 0 ? 1 : 0;
}

#elif defined(FUZZ_STANDALONE)
/* tests/fuzz-main.c runs the seeds; the RAM outlives each input. */
void fuzz_teardown(void) {
        ram_fd = safe_close(ram_fd);
        ram_ro_fd = safe_close(ram_ro_fd);
}
#endif
