/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "detect.h"
#include "fd-util.h"
#include "macro.h"
#include "string-table.h"

#define PAGE_SIZE_4K VMSIG_PAGE_SIZE_4K
#define PAGE_MASK_4K (PAGE_SIZE_4K - 1)
#define PML4_ENTRIES 512
#define KERNEL_HALF 256

#define SELF_REF_FLAGS UINT64_C(0x063) /* present, rw, accessed, dirty */

#define PML4_MIN_KERNEL_ENTRIES 6
#define PML4_MIN_ZEROS_PER_HALF 128

/* PROCESSOR_START_BLOCK */
#define STUB_JMP_MASK UINT64_C(0xFFFFFFFFFFFF00FF)
#define STUB_JMP UINT64_C(0x00000001000600E9)
#define STUB_HINT_OFFSET 0x70
#define STUB_HINT_MASK UINT64_C(0xFFFFF80000000003)
#define STUB_HINT_VALUE UINT64_C(0xFFFFF80000000000)
#define STUB_DTB_OFFSET 0xA0
#define STUB_SIZE (STUB_DTB_OFFSET + 8)

/* "System\0\0", the first 8 bytes of ImageFileName, as a little-endian
 * qword. */
#define NAME_QWORD UINT64_C(0x00006D6574737953)
#define NAME_LEN 15
#define EPROCESS_DTB_OFFSET 0x28
#define SYSTEM_PID 4

/* What a scan step charges for looking for the next data in the file (a
 * SEEK_DATA before each chunk), so that a file of many small holes cannot
 * keep a step busy with syscalls. */
#define SEEK_COST UINT64_C(4096)

/* Bytes the scans read per pread; of 32 KiB to 2 MiB, 256 KiB measured
 * fastest (the syscall costs little next to the copy). */
#define SCAN_CHUNK (UINT64_C(256) << 10)

typedef struct eprocess_layout {
        unsigned build;
        uint16_t pid;
        uint16_t links;
        uint16_t name;
} eprocess_layout;

/* Windows 7 SP1; 10 1903 and 1909; 10 2004 to 22H2 and 11. */
static const eprocess_layout layouts[] = {
        { .build = 7601, .pid = 0x180, .links = 0x188, .name = 0x2E0 },
        { .build = 18362, .pid = 0x2E8, .links = 0x2F0, .name = 0x450 },
        { .build = 19041, .pid = 0x440, .links = 0x448, .name = 0x5A8 },
};

/* What verifying one candidate may read at most, per layout: the
 * structure up to the end of the name, the PML4, three translations of at
 * most four entries each, and the two neighbours' pointers. */
#define LAYOUT_NAME_MAX 0x5A8 /* the largest name offset above */
#define TRANSLATE_COST (4 * 8)
#define VERIFY_COST_MAX (3 * (LAYOUT_NAME_MAX + NAME_LEN + PAGE_SIZE_4K + 3 * TRANSLATE_COST + 2 * 8))

_Static_assert(VMSIG_DETECT_SCAN_MIN_BUDGET >= VERIFY_COST_MAX + SEEK_COST + PAGE_SIZE_4K,
               "a step must fit a candidate and some scanning");

static const char *const vmsig_detect_method_table[_VMSIG_DETECT_METHOD_MAX] = {
        [VMSIG_DETECT_NONE] = "none",
        [VMSIG_DETECT_LOW_STUB] = "low-stub",
        [VMSIG_DETECT_PML4_SCAN] = "pml4-scan",
        [VMSIG_DETECT_EPROCESS] = "eprocess",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(vmsig_detect_method, vmsig_detect_method);

/* --- reading ------------------------------------------------------------------ */

/* Guest memory as memwrite sees it (for the lookups and translations, never
 * for writing), and a count of what was read, to keep a scan step within
 * its budget. */
typedef struct detect_io {
        vmsig_guest_mem mem;
        uint64_t n_read; /* bytes */
        uint64_t work;   /* bytes, and seeks at SEEK_COST: what a budget limits */
} detect_io;

static detect_io detect_io_make(const vmsig_guest_mem *m) {
        return (detect_io) { .mem = *m };
}

static int read_file(detect_io *io, uint64_t offset, void *buf, size_t len) {
        io->n_read += len;
        io->work += len;
        return vmsig_pread_full(io->mem.read_fd, buf, len, offset);
}

/* -ERANGE if [gpa, gpa + len) is not RAM in one piece. */
static int read_gpa(detect_io *io, uint64_t gpa, void *buf, size_t len) {
        uint64_t offset;

        if (vmsig_gpa_to_offset(&io->mem, gpa, len, &offset) < 0)
                return -ERANGE;
        return read_file(io, offset, buf, len);
}

/* read_gpa() for a look at memory that may not be RAM, where that is no
 * error but no match: 1 read, 0 not RAM, or the read error. */
static int read_gpa_if_ram(detect_io *io, uint64_t gpa, void *buf, size_t len) {
        int r = read_gpa(io, gpa, buf, len);

        if (r == -ERANGE)
                return 0;
        return r < 0 ? r : 1;
}

static bool page_in_ram(const detect_io *io, uint64_t gpa) {
        return vmsig_gpa_to_offset(&io->mem, gpa, PAGE_SIZE_4K, NULL) >= 0;
}

/* --- the PML4 check ------------------------------------------------------------ */

static bool is_self_ref(uint64_t e, uint64_t gpa) {
        return (e & 0xFFF) == SELF_REF_FLAGS && (e & VMSIG_PTE_ADDR_MASK) == gpa;
}

/* The check on a page already read; see detect.h. */
static bool pml4_check_page(const detect_io *io, uint64_t gpa, const uint8_t *page, unsigned *ret_self_ref) {
        unsigned zeros[2] = {}, kernel_valid = 0, self_ref = 0;
        bool have_self_ref = false;

        for (unsigned i = 0; i < PML4_ENTRIES; i++) {
                uint64_t e = vmsig_load_le64(page + i * 8);
                bool kernel = i >= KERNEL_HALF;

                if (e == 0) {
                        zeros[kernel]++;
                        continue;
                }
                if (is_self_ref(e, gpa)) {
                        /* Windows maps itself once, in the kernel half. */
                        if (!kernel || have_self_ref)
                                return false;
                        have_self_ref = true;
                        self_ref = i;
                }
                /* A non-present entry may be a software PTE: no PFN to
                 * check, but it is no valid entry either. */
                if (!(e & VMSIG_PTE_PRESENT))
                        continue;
                if (!page_in_ram(io, e & VMSIG_PTE_ADDR_MASK))
                        return false;
                /* PS in a PML4E is reserved: the CPU would fault. The
                 * self-reference maps no kernel memory: a look-alike with
                 * one entry too few must not pass on it. */
                if (kernel && !(e & VMSIG_PTE_PS) && !(have_self_ref && self_ref == i))
                        kernel_valid++;
        }
        if (!have_self_ref || kernel_valid < PML4_MIN_KERNEL_ENTRIES || zeros[0] < PML4_MIN_ZEROS_PER_HALF ||
            zeros[1] < PML4_MIN_ZEROS_PER_HALF)
                return false;
        if (ret_self_ref)
                *ret_self_ref = self_ref;
        return true;
}

/* A cheap first filter for scans: a self-reference in the kernel half. */
static bool page_has_self_ref(uint64_t gpa, const uint8_t *page) {
        for (unsigned i = KERNEL_HALF; i < PML4_ENTRIES; i++)
                /* The low byte first: most pages fail there. */
                if (page[i * 8] == (SELF_REF_FLAGS & 0xFF) && is_self_ref(vmsig_load_le64(page + i * 8), gpa))
                        return true;
        return false;
}

static int pml4_check(detect_io *io, uint64_t gpa, unsigned *ret_self_ref) {
        uint8_t page[PAGE_SIZE_4K];
        int r;

        if ((gpa & PAGE_MASK_4K) || !page_in_ram(io, gpa))
                return 0;
        r = read_gpa(io, gpa, page, sizeof page);
        if (r < 0)
                return r;
        return pml4_check_page(io, gpa, page, ret_self_ref);
}

int vmsig_detect_pml4_check(const vmsig_guest_mem *m, uint64_t gpa, unsigned *ret_self_ref) {
        detect_io io = detect_io_make(m);

        return pml4_check(&io, gpa, ret_self_ref);
}

bool vmsig_detect_pml4_valid(const vmsig_guest_mem *m, uint64_t gpa) {
        return vmsig_detect_pml4_check(m, gpa, NULL) > 0;
}

/* --- the low stub ---------------------------------------------------------------- */

static int stub_check(detect_io *io, uint64_t page, vmsig_detect_result *ret) {
        uint8_t stub[STUB_SIZE];
        unsigned self_ref;
        int r;

        r = read_gpa_if_ram(io, page, stub, sizeof stub);
        if (r <= 0)
                return r;

        uint64_t jmp = vmsig_load_le64(stub), hint = vmsig_load_le64(stub + STUB_HINT_OFFSET),
                 dtb = vmsig_load_le64(stub + STUB_DTB_OFFSET);
        if ((jmp & STUB_JMP_MASK) != STUB_JMP || (hint & STUB_HINT_MASK) != STUB_HINT_VALUE)
                return 0;
        /* No masking of an unaligned DTB: that is no stub of ours. */
        if (dtb == 0 || (dtb & PAGE_MASK_4K))
                return 0;
        r = pml4_check(io, dtb, &self_ref);
        if (r <= 0)
                return r;
        *ret = (vmsig_detect_result) {
                .method = VMSIG_DETECT_LOW_STUB,
                .dtb = dtb,
                .kernel_hint = hint,
                .self_ref = self_ref,
        };
        return 1;
}

int vmsig_detect_low_stub(const vmsig_guest_mem *m, vmsig_detect_result *ret) {
        detect_io io = detect_io_make(m);

        *ret = (vmsig_detect_result) {};
        for (uint64_t page = PAGE_SIZE_4K; page < VMSIG_DETECT_STUB_LIMIT; page += PAGE_SIZE_4K) {
                int r = stub_check(&io, page, ret);
                if (r != 0)
                        return r;
        }
        return 0;
}

/* --- the PML4 scan ---------------------------------------------------------------- */

/* Pages [gpa, gpa + len) of one range, all read into buf. */
static int pml4_scan_pages(detect_io *io, uint64_t gpa, const uint8_t *buf, size_t len, vmsig_detect_result *ret) {
        for (size_t i = 0; i < len; i += PAGE_SIZE_4K) {
                unsigned self_ref;

                if (!page_has_self_ref(gpa + i, buf + i) || !pml4_check_page(io, gpa + i, buf + i, &self_ref))
                        continue;
                *ret = (vmsig_detect_result) {
                        .method = VMSIG_DETECT_PML4_SCAN,
                        .dtb = gpa + i,
                        .self_ref = self_ref,
                };
                return 1;
        }
        return 0;
}

/* The whole pages of RAM in [*cursor, limit), read through the range that
 * holds each, in GPA order, until about budget bytes were read; *cursor
 * says where to go on. */
static int pml4_scan_span(detect_io *io, uint8_t *buf, uint64_t *cursor, uint64_t limit, uint64_t budget,
                          vmsig_detect_result *ret) {
        uint64_t gpa = *cursor, read = 0;

        while (gpa < limit && read < budget) {
                uint64_t offset, avail;
                int r;

                if (vmsig_gpa_lookup(&io->mem, gpa, &offset, &avail) < 0) {
                        gpa += PAGE_SIZE_4K;
                        continue;
                }
                uint64_t want = MIN(MIN(avail, limit - gpa), MIN(SCAN_CHUNK, MAX(budget - read, PAGE_SIZE_4K)));
                size_t len = (size_t) want & ~PAGE_MASK_4K;
                if (len == 0) { /* RAM ends inside this page */
                        gpa += PAGE_SIZE_4K;
                        continue;
                }
                r = read_file(io, offset, buf, len);
                if (r < 0)
                        return r;
                r = pml4_scan_pages(io, gpa, buf, len, ret);
                if (r != 0)
                        return r;
                gpa += len;
                read += len;
        }
        *cursor = gpa;
        return 0;
}

int vmsig_detect_pml4_scan_step(const vmsig_guest_mem *m, uint64_t *cursor, uint64_t budget_bytes,
                                vmsig_detect_result *ret) {
        detect_io io = detect_io_make(m);
        _cleanup_free_ uint8_t *buf = NULL;
        vmsig_detect_result found = {};
        int r;

        if (*cursor >= VMSIG_DETECT_PML4_SCAN_LIMIT)
                return -ENOENT;
        buf = malloc(SCAN_CHUNK);
        if (!buf)
                return -ENOMEM;
        r = pml4_scan_span(&io, buf, cursor, VMSIG_DETECT_PML4_SCAN_LIMIT, budget_bytes, &found);
        if (r > 0) {
                *ret = found;
                return 1;
        }
        if (r < 0)
                return r;
        return *cursor >= VMSIG_DETECT_PML4_SCAN_LIMIT ? -ENOENT : 0;
}

int vmsig_detect_pml4_scan(const vmsig_guest_mem *m, vmsig_detect_result *ret) {
        uint64_t cursor = 0;
        int r;

        *ret = (vmsig_detect_result) {};
        r = vmsig_detect_pml4_scan_step(m, &cursor, UINT64_MAX, ret);
        return r == -ENOENT ? 0 : r;
}

/* --- the System EPROCESS ---------------------------------------------------------- */

static bool is_kernel_pointer(uint64_t va) {
        /* Canonical with bit 47 set, and 8-byte aligned like a LIST_ENTRY. */
        return (va >> 47) == (UINT64_MAX >> 47) && (va & 7) == 0;
}

/* 1 and the GPA of va, 0 if va has no translation (not mapped, not RAM),
 * or a read error. */
static int translate(detect_io *io, uint64_t dtb, uint64_t va, uint64_t *ret_gpa) {
        vmsig_memwrite_failure f;
        int r;

        io->n_read += TRANSLATE_COST;
        io->work += TRANSLATE_COST;
        r = vmsig_va_translate(&io->mem, dtb, 4, va, ret_gpa, NULL, &f);
        if (r >= 0)
                return 1;
        return f.error == VMSIG_MEMWRITE_IO ? r : 0;
}

/* Reads the qword at va; 1, 0 if it is not mapped, or a read error. */
static int read_va_u64(detect_io *io, uint64_t dtb, uint64_t va, uint64_t *ret) {
        uint8_t raw[8];
        uint64_t gpa;
        int r;

        r = translate(io, dtb, va, &gpa);
        if (r <= 0)
                return r;
        r = read_gpa_if_ram(io, gpa, raw, sizeof raw);
        if (r <= 0)
                return r;
        *ret = vmsig_load_le64(raw);
        return 1;
}

/* The neighbours in ActiveProcessLinks both point back at one VA, which
 * maps to links_gpa. Returns 1 and that VA, 0, or a read error. */
static int list_check(detect_io *io, uint64_t dtb, uint64_t flink, uint64_t blink, uint64_t links_gpa,
                      uint64_t *ret_self) {
        uint64_t self, back, gpa;
        int r;

        r = read_va_u64(io, dtb, flink + 8, &self); /* Flink->Blink */
        if (r <= 0)
                return r;
        r = read_va_u64(io, dtb, blink, &back); /* Blink->Flink */
        if (r <= 0)
                return r;
        /* A list of its own (links pointing at itself) is no process list. */
        if (back != self || !is_kernel_pointer(self) || self == flink || self == blink)
                return 0;
        r = translate(io, dtb, self, &gpa);
        if (r <= 0)
                return r;
        if (gpa != links_gpa)
                return 0;
        *ret_self = self;
        return 1;
}

static bool name_matches(const uint8_t *name) {
        static const uint8_t system[NAME_LEN] = "System";

        return memcmp(name, system, NAME_LEN) == 0;
}

/* Whether the name at name_gpa belongs to a System EPROCESS of layout l. */
static int eprocess_check(detect_io *io, const eprocess_layout *l, uint64_t name_gpa, vmsig_detect_result *ret) {
        uint8_t buf[LAYOUT_NAME_MAX + NAME_LEN];
        uint64_t self;
        unsigned self_ref;
        int r;

        if (name_gpa < l->name)
                return 0;
        uint64_t base = name_gpa - l->name;
        r = read_gpa_if_ram(io, base, buf, l->name + NAME_LEN);
        if (r <= 0)
                return r;

        uint64_t pid = vmsig_load_le64(buf + l->pid), flink = vmsig_load_le64(buf + l->links),
                 blink = vmsig_load_le64(buf + l->links + 8), dtb = vmsig_load_le64(buf + EPROCESS_DTB_OFFSET);
        if (!name_matches(buf + l->name) || pid != SYSTEM_PID || !is_kernel_pointer(flink) ||
            !is_kernel_pointer(blink) || dtb == 0 || (dtb & PAGE_MASK_4K))
                return 0;
        r = pml4_check(io, dtb, &self_ref);
        if (r <= 0)
                return r;
        r = list_check(io, dtb, flink, blink, base + l->links, &self);
        if (r <= 0)
                return r;
        *ret = (vmsig_detect_result) {
                .method = VMSIG_DETECT_EPROCESS,
                .dtb = dtb,
                .self_ref = self_ref,
                .build = l->build,
                .eprocess_gpa = base,
                .eprocess_va = self - l->links,
        };
        return 1;
}

static int candidate_check(detect_io *io, uint64_t name_gpa, vmsig_detect_result *ret) {
        for (size_t i = 0; i < ELEMENTSOF(layouts); i++) {
                int r = eprocess_check(io, &layouts[i], name_gpa, ret);
                if (r != 0)
                        return r;
        }
        return 0;
}

/* Whether one of the 8 qwords at p is the name, without a branch per
 * qword: d = qword ^ name is 0 exactly when bit 63 of (d - 1) & ~d is
 * set. */
static bool block_has_name(const uint8_t *p) {
        uint64_t acc = 0;

        for (unsigned j = 0; j < 8; j++) {
                uint64_t d = vmsig_load_le64(p + 8 * j) ^ NAME_QWORD;
                acc |= (d - 1) & ~d;
        }
        return acc >> 63;
}

static size_t find_name_blocks(const uint8_t *buf, size_t len, size_t i) {
        for (;;) {
                while (i + 64 <= len && !block_has_name(buf + i))
                        i += 64;
                size_t end = MIN(i + 64, len);
                for (; i + 8 <= end; i += 8)
                        if (vmsig_load_le64(buf + i) == NAME_QWORD)
                                return i;
                if (i + 8 > len)
                        return len;
        }
}

/* The first i' >= i with i' = i (mod 8) where buf holds "System\0\0", or
 * len. memchr() runs at memory speed over what cannot start the name; a
 * buffer dense in 'S' (more than one per 64 bytes) goes on in blocks of
 * qwords, so that no content makes the search much slower than that. */
static size_t find_name(const uint8_t *buf, size_t len, size_t i) {
        size_t misses = 0;

        while (i + 8 <= len) {
                if (misses > len / 64)
                        return find_name_blocks(buf, len, i);
                const uint8_t *p = memchr(buf + i, 'S', len - 7 - i);
                if (!p)
                        return len;
                size_t k = (size_t) (p - buf), skew = (k - i) % 8;
                if (skew == 0 && vmsig_load_le64(p) == NAME_QWORD)
                        return k;
                i = k + 8 - skew;
                misses++;
        }
        return len;
}

/* --- the chunked scan ---------------------------------------------------------------- */

struct vmsig_detect_scan {
        detect_io io; /* its mem a copy of the caller's (vmsig_guest_mem_copy) */
        /* A private open file description of the RAM for SEEK_DATA, or -1:
         * seeking moves the file position, which every dup of the caller's
         * fd shares (each memctx subscriber's, each client's). */
        int seek_fd;
        size_t range;                  /* the range being searched */
        uint64_t pos;                  /* bytes of it done */
        int state; /* 0 searching, 1 found, or the error every step returns */
        vmsig_detect_result result;
        vmsig_detect_scan_stats stats;
        uint8_t buf[]; /* SCAN_CHUNK */
};

/* The bytes of range i that are in the file, as vmsig_gpa_lookup() sees
 * them. */
static uint64_t range_size(const vmsig_detect_scan *scan, size_t i) {
        const vmsig_gpa_range *r = &scan->io.mem.ranges[i];
        uint64_t ram_size = scan->io.mem.ram_size;

        if (r->offset >= ram_size)
                return 0;
        return MIN(MIN(r->size, ram_size - r->offset), UINT64_MAX - r->gpa);
}

/* A file that cannot tell its holes, or cannot be reopened, is read in
 * full: find_data() finds out on first use. */
static int open_for_seeking(int fd) {
        int seek_fd = fd >= 0 ? fd_reopen(fd, O_RDONLY) : -1;

        return seek_fd < 0 ? -1 : seek_fd;
}

vmsig_detect_scan *vmsig_detect_scan_free(vmsig_detect_scan *scan) {
        if (!scan)
                return NULL;
        safe_close(scan->seek_fd);
        vmsig_guest_mem_copy_done(&scan->io.mem);
        return mfree(scan);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(vmsig_detect_scan *, vmsig_detect_scan_free);

int vmsig_detect_scan_new(const vmsig_guest_mem *m, vmsig_detect_scan **ret) {
        _cleanup_(vmsig_detect_scan_freep) vmsig_detect_scan *scan = NULL;
        int r;

        /* One allocation, the chunk buffer at its end left uncleared: a
         * step reads into it before it searches. */
        scan = malloc(sizeof *scan + SCAN_CHUNK);
        if (!scan)
                return -ENOMEM;
        *scan = (vmsig_detect_scan) { .seek_fd = -1 };
        r = vmsig_guest_mem_copy(m, &scan->io.mem);
        if (r < 0)
                return r;
        scan->seek_fd = open_for_seeking(m->read_fd);
        for (size_t i = 0; i < scan->io.mem.n_ranges; i++)
                scan->stats.total += range_size(scan, i);
        *ret = TAKE_PTR(scan);
        return 0;
}

void vmsig_detect_scan_resume(vmsig_detect_scan *scan) {
        assert(scan);
        if (scan->state != 1)
                return;
        /* Past the name of the one found: the position is on it. */
        scan->pos += 8;
        scan->stats.scanned += 8;
        scan->state = 0;
}

void vmsig_detect_scan_get_stats(const vmsig_detect_scan *scan, vmsig_detect_scan_stats *ret) {
        *ret = scan->stats;
        ret->bytes_read = scan->io.n_read;
}

/* Skips finished ranges; false at the end of RAM. */
static bool scan_next_range(vmsig_detect_scan *scan) {
        while (scan->range < scan->io.mem.n_ranges && scan->pos >= range_size(scan, scan->range)) {
                scan->range++;
                scan->pos = 0;
        }
        return scan->range < scan->io.mem.n_ranges;
}

/* Where the next data at or after offset starts: the end of the file if
 * only a hole follows (or offset, past it: the read shall fail then).
 * -EOPNOTSUPP if the file cannot tell. No SEEK_HOLE: on a memfd that
 * walks the whole extent of data, 5 ms for 512 MiB, while SEEK_DATA at
 * data returns at once. */
static int find_data(int fd, uint64_t offset, uint64_t *ret) {
        struct stat st;
        off_t data;

        if (offset > INT64_MAX)
                return -EOPNOTSUPP;
        data = lseek(fd, (off_t) offset, SEEK_DATA);
        if (data >= 0) {
                if ((uint64_t) data < offset)
                        return -EOPNOTSUPP;
                *ret = (uint64_t) data;
                return 0;
        }
        if (errno != ENXIO)
                return -EOPNOTSUPP;
        if (fstat(fd, &st) < 0)
                return -errno;
        *ret = MAX((uint64_t) st.st_size, offset);
        return 0;
}

/* Moves past a hole in the file: pages the guest never touched read as
 * zeros and hold no name. 1 if it moved, 0 if there is data here (or no
 * way to know), or an error. */
static int scan_skip_hole(vmsig_detect_scan *scan) {
        const vmsig_gpa_range *range = &scan->io.mem.ranges[scan->range];
        uint64_t offset = range->offset + scan->pos, rest = range_size(scan, scan->range) - scan->pos;
        uint64_t data = 0;
        int r;

        if (scan->seek_fd < 0)
                return 0;
        scan->io.work += SEEK_COST;
        r = find_data(scan->seek_fd, offset, &data);
        if (r == -EOPNOTSUPP) {
                scan->seek_fd = safe_close(scan->seek_fd);
                return 0;
        }
        if (r < 0)
                return r;
        uint64_t skip = MIN(data - offset, rest);
        scan->pos += skip;
        scan->stats.scanned += skip;
        scan->stats.skipped += skip;
        return skip > 0;
}

/* The hits in buf (the len bytes at scan->pos of the current range), each
 * verified while the budget (limit, in io.work terms) holds one more
 * verification. Returns 1 if found, 0 with scan->pos past the chunk, or
 * -EAGAIN with scan->pos on a hit that has to wait for the next step. */
static int scan_chunk(vmsig_detect_scan *scan, size_t len, uint64_t limit) {
        uint64_t gpa = scan->io.mem.ranges[scan->range].gpa + scan->pos;
        size_t i = (size_t) (-gpa & 7);

        for (;; i += 8) {
                i = find_name(scan->buf, len, i);
                if (i >= len)
                        break;
                if (limit - scan->io.work < VERIFY_COST_MAX) {
                        scan->pos += i;
                        return -EAGAIN;
                }
                scan->stats.candidates++;
                int r = candidate_check(&scan->io, gpa + i, &scan->result);
                if (r != 0) {
                        scan->pos += i;
                        return r;
                }
        }
        scan->pos += len;
        return 0;
}

/* How much of the current range to read next: at most a chunk, and what
 * leaves room for verifying a candidate. A chunk that stops short of the
 * range end stops at an 8-byte-aligned GPA, so no qword of the name is
 * cut in two. A hole after the data here is read like data. */
static size_t scan_chunk_len(const vmsig_detect_scan *scan, uint64_t left) {
        uint64_t gpa = scan->io.mem.ranges[scan->range].gpa + scan->pos;
        uint64_t rest = range_size(scan, scan->range) - scan->pos;
        uint64_t len = MIN(MIN(rest, SCAN_CHUNK), left - VERIFY_COST_MAX);

        if (len < rest)
                len = ((gpa + len) & ~UINT64_C(7)) - gpa;
        return (size_t) len;
}

static int scan_run(vmsig_detect_scan *scan, uint64_t budget) {
        uint64_t limit = scan->io.work + MIN(budget, UINT64_MAX - scan->io.work);
        int r;

        while (scan_next_range(scan)) {
                /* Room for a seek, a qword and a verification. */
                if (limit - scan->io.work < SEEK_COST + 8 + VERIFY_COST_MAX)
                        return 0;
                r = scan_skip_hole(scan);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;

                const vmsig_gpa_range *range = &scan->io.mem.ranges[scan->range];
                uint64_t start = scan->pos;
                size_t len = scan_chunk_len(scan, limit - scan->io.work);

                r = read_file(&scan->io, range->offset + scan->pos, scan->buf, len);
                if (r < 0)
                        return r;
                r = scan_chunk(scan, len, limit);
                scan->stats.scanned += scan->pos - start;
                if (r == -EAGAIN)
                        return 0;
                if (r != 0)
                        return r;
        }
        return -ENOENT;
}

int vmsig_detect_scan_step(vmsig_detect_scan *scan, uint64_t budget_bytes, vmsig_detect_result *ret) {
        if (scan->state == 0) {
                if (budget_bytes < VMSIG_DETECT_SCAN_MIN_BUDGET)
                        return -EINVAL;
                scan->stats.steps++;
                scan->state = scan_run(scan, budget_bytes);
        }
        if (scan->state == 1)
                *ret = scan->result;
        return scan->state;
}

/* --- checks of a root already found ----------------------------------------------------- */

static const eprocess_layout *layout_of(unsigned build) {
        for (size_t i = 0; i < ELEMENTSOF(layouts); i++)
                if (layouts[i].build == build)
                        return &layouts[i];
        return NULL;
}

int vmsig_detect_eprocess_verify(const vmsig_guest_mem *m, const vmsig_detect_result *found) {
        const eprocess_layout *l;
        detect_io io = detect_io_make(m);
        vmsig_detect_result now;
        int r;

        assert(found);
        l = layout_of(found->build);
        if (found->method != VMSIG_DETECT_EPROCESS || !l)
                return -EINVAL;
        r = eprocess_check(&io, l, found->eprocess_gpa + l->name, &now);
        if (r <= 0)
                return r;
        return now.dtb == found->dtb && now.eprocess_va == found->eprocess_va;
}

int vmsig_detect_eprocess_fingerprint(const vmsig_guest_mem *m, const vmsig_detect_result *found,
                                      uint64_t *ret) {
        uint8_t buf[LAYOUT_NAME_MAX + NAME_LEN];
        const eprocess_layout *l;
        detect_io io = detect_io_make(m);
        uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */
        int r;

        assert(found && ret);
        l = layout_of(found->build);
        if (found->method != VMSIG_DETECT_EPROCESS || !l)
                return -EINVAL;
        size_t len = (size_t) l->name + NAME_LEN;
        r = read_gpa(&io, found->eprocess_gpa, buf, len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < len; i++)
                h = (h ^ buf[i]) * UINT64_C(0x100000001b3);
        *ret = h;
        return 0;
}

int vmsig_detect_kernel_entries(const vmsig_guest_mem *m, uint64_t root) {
        uint8_t page[PAGE_SIZE_4K];
        detect_io io = detect_io_make(m);
        int n = 0, r;

        r = read_gpa_if_ram(&io, root & VMSIG_PTE_ADDR_MASK, page, sizeof page);
        if (r <= 0)
                return r;
        for (unsigned i = KERNEL_HALF; i < PML4_ENTRIES; i++)
                n += !!(vmsig_load_le64(page + i * 8) & VMSIG_PTE_PRESENT);
        return n;
}

int vmsig_detect_same_kernel(const vmsig_guest_mem *m, uint64_t root_a, uint64_t root_b) {
        uint8_t a[PAGE_SIZE_4K], b[PAGE_SIZE_4K];
        detect_io io = detect_io_make(m);
        unsigned present = 0, only_one = 0;
        int r;

        root_a &= VMSIG_PTE_ADDR_MASK;
        root_b &= VMSIG_PTE_ADDR_MASK;
        r = read_gpa_if_ram(&io, root_a, a, sizeof a);
        if (r <= 0)
                return r;
        if (root_a == root_b)
                memcpy(b, a, sizeof b);
        else {
                r = read_gpa_if_ram(&io, root_b, b, sizeof b);
                if (r <= 0)
                        return r;
        }
        for (unsigned i = KERNEL_HALF; i < PML4_ENTRIES; i++) {
                uint64_t ea = vmsig_load_le64(a + i * 8), eb = vmsig_load_le64(b + i * 8);

                /* Each table's self-reference names itself: it agrees when
                 * both have one at the same index. */
                if (is_self_ref(ea, root_a) && is_self_ref(eb, root_b))
                        continue;
                /* The CPU sets accessed (and dirty) as it walks each copy. */
                if ((ea & ~VMSIG_PTE_ACCESSED_DIRTY) == (eb & ~VMSIG_PTE_ACCESSED_DIRTY)) {
                        present += !!(ea & VMSIG_PTE_PRESENT);
                        continue;
                }
                /* One entry only one of them has: Linux maps a process's
                 * LDT in its own kernel half under page-table isolation. */
                if ((ea != 0 && eb != 0) || only_one++ > 0)
                        return 0;
        }
        /* Two empty kernel halves (zeroed pages) name no kernel at all. */
        return present > 0;
}

/* --- everything at once --------------------------------------------------------------- */

static int eprocess_scan(const vmsig_guest_mem *m, vmsig_detect_result *ret) {
        vmsig_detect_scan *scan = NULL;
        int r;

        r = vmsig_detect_scan_new(m, &scan);
        if (r < 0)
                return r;
        r = vmsig_detect_scan_step(scan, UINT64_MAX, ret);
        vmsig_detect_scan_free(scan);
        return r == -ENOENT ? 0 : r;
}

int vmsig_detect_all(const vmsig_guest_mem *m, bool full_scan, vmsig_detect_result *ret) {
        vmsig_detect_result cheap, eprocess;
        int r;

        r = vmsig_detect_low_stub(m, &cheap);
        if (r == 0)
                r = vmsig_detect_pml4_scan(m, &cheap);
        if (r < 0)
                return r;
        if (full_scan) {
                int k = eprocess_scan(m, &eprocess);
                if (k < 0)
                        return k;
                if (k > 0) {
                        /* The stub's hint names the kernel whichever table
                         * the stub pointed at. */
                        if (cheap.method == VMSIG_DETECT_LOW_STUB)
                                eprocess.kernel_hint = cheap.kernel_hint;
                        *ret = eprocess;
                        return 1;
                }
        }
        *ret = cheap;
        return r;
}
