/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-memory.h beyond what test-memwrite covers (lookups and walks): the
 * RAM file read and written in full, a little-endian qword at any
 * alignment, one PTE address mask, and a guest memory with its own copy of
 * the ranges, as a scan or a probe keeps. */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>

#include "guest-memory.h"
#include "memwrite.h"
#include "vt-util.h"

static void test_full_io(void) {
        uint8_t out[10000], in[10000];
        int fd = memfd_create("guest-memory", MFD_CLOEXEC);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(ftruncate(fd, 16384), ==, 0);
        for (size_t i = 0; i < sizeof out; i++)
                out[i] = (uint8_t) (i * 7);
        g_assert_cmpint(vmsig_pwrite_full(fd, out, sizeof out, 100), ==, 0);
        g_assert_cmpint(vmsig_pread_full(fd, in, sizeof in, 100), ==, 0);
        g_assert_cmpmem(in, sizeof in, out, sizeof out);
        /* The file ends first: -EIO, not a short read. */
        g_assert_cmpint(vmsig_pread_full(fd, in, sizeof in, 16384 - 10), ==, -EIO);
        g_assert_cmpint(vmsig_pread_full(fd, in, 1, (uint64_t) INT64_MAX + 1), ==, -EOVERFLOW);
        g_assert_cmpint(vmsig_pwrite_full(fd, out, 1, (uint64_t) INT64_MAX + 1), ==, -EOVERFLOW);
        g_assert_cmpint(vmsig_pread_full(fd, in, 0, 0), ==, 0);
        close(fd);
}

static void test_load_le64(void) {
        const uint8_t raw[9] = { 0xff, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x88 };

        g_assert_cmphex(vmsig_load_le64(raw + 1), ==, UINT64_C(0x8807060504030201));
}

static void test_masks(void) {
        uint64_t pte = UINT64_C(0x8000000012345067);

        g_assert_cmphex(pte & VMSIG_PTE_ADDR_MASK, ==, UINT64_C(0x12345000));
        g_assert_true(pte & VMSIG_PTE_PRESENT);
        g_assert_false(pte & VMSIG_PTE_PS);
        g_assert_cmphex(pte & ~VMSIG_PTE_ACCESSED_DIRTY, ==, UINT64_C(0x8000000012345007));
        g_assert_cmphex(VMSIG_PAGE_SIZE_4K, ==, 4096);
}

static void test_copy(void) {
        vmsig_gpa_range ranges[] = { { .gpa = 0x1000, .size = 0x2000, .offset = 0 } };
        int token;
        vmsig_guest_mem m = { .read_fd = 7, .ranges = ranges, .n_ranges = 1, .ram_size = 0x2000,
                              .write = vmsig_memwrite_pwrite, .userdata = &token };
        vmsig_guest_mem copy, none;
        uint64_t offset;

        g_assert_cmpint(vmsig_guest_mem_copy(&m, &copy), ==, 0);
        /* The caller's ranges may go: the copy has its own. */
        g_assert_true(copy.ranges != ranges);
        ranges[0] = (vmsig_gpa_range) {};
        g_assert_cmpint(copy.read_fd, ==, 7);
        g_assert_cmpuint(copy.n_ranges, ==, 1);
        g_assert_cmpuint(copy.ram_size, ==, 0x2000);
        g_assert_true(copy.write == vmsig_memwrite_pwrite);
        g_assert_true(copy.userdata == &token);
        g_assert_cmpint(vmsig_gpa_to_offset(&copy, 0x1800, 8, &offset), ==, 0);
        g_assert_cmphex(offset, ==, 0x800);
        g_assert_cmpint(vmsig_gpa_to_offset(&copy, 0x800, 8, NULL), ==, -ERANGE);
        vmsig_guest_mem_copy_done(&copy);
        g_assert_null(copy.ranges);
        g_assert_cmpuint(copy.n_ranges, ==, 0);

        /* No ranges: nothing to copy, nothing is RAM. */
        m.n_ranges = 0;
        g_assert_cmpint(vmsig_guest_mem_copy(&m, &none), ==, 0);
        g_assert_null(none.ranges);
        g_assert_cmpint(vmsig_gpa_lookup(&none, 0x1000, NULL, NULL), ==, -ERANGE);
        vmsig_guest_mem_copy_done(&none);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/guest-memory/", test_full_io, test_load_le64, test_masks, test_copy);
        return g_test_run();
}
