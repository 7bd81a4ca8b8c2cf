/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the HMP parsers of the QEMU backend (qmp-hmp.h):
 * the input is what a hostile or broken QEMU answers to "info registers"
 * or "info mtree -f" through human-monitor-command.
 *
 * Checks, beyond "no crash, no leak": the return is one the header names;
 * on failure nothing is written to the outputs (they hold sentinels); a
 * map that parses is sorted by GPA, disjoint, merged (no two neighbours
 * contiguous in both GPA and file offset), within the file without
 * overflow, at most QMP_HMP_MAX_RANGES long, and each range begins and
 * ends where a line of the text does; the registers parsed are written in
 * the text; an empty region or one with a blank or a control character is
 * -EINVAL and nothing else is; a larger file never turns a map that parses
 * into one that does not; and parsing the same text again, from another
 * buffer with junk after its NUL, gives the same answer (both parsers stop
 * at the first NUL). The arguments of human-monitor-command carry any text
 * unchanged.
 *
 * Input:
 *   byte 0    bit 0: "info mtree -f" (else "info registers");
 *             bits 1-2: the region, see regions[] (3: from the input, a
 *             u8 length mod 33, then the name's bytes);
 *             bits 3-5: the size of the RAM file, see file_sizes[] (7: u64
 *             from the input);
 *             bit 6: the text starts with a FlatView of "memory" with
 *             generated entries of the region, as many as a u16 from the
 *             input says (mod 2048), see generate_entries()
 *   the rest  the text; a NUL in it ends it for the parsers
 *
 * Seeds: tests/data/fuzz-hmp (QEMU 7.2 under TCG: q35 with 3 GiB, pc with
 * 3584 MiB, firmware, Debian's kernel with 4 and 5 levels, -a with two
 * CPUs; broken and hostile variants; generated maps of QMP_HMP_MAX_RANGES
 * ranges and of one more).
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>

#include "fuzz.h"
#include "macro.h"
#include "qmp-hmp.h"

#define GIB (UINT64_C(1) << 30)
#define MIB (UINT64_C(1) << 20)
#define PAGE UINT64_C(0x1000)
#define REGION_MAX 32

enum {
        FLAG_MTREE = 1 << 0,
        REGION_SHIFT = 1,
        SIZE_SHIFT = 3,
        FLAG_GENERATED = 1 << 6,
};

/* Generated entries: up to twice the ranges a map may have. */
#define GENERATED_MAX (2 * QMP_HMP_MAX_RANGES)
#define GENERATED_PREFIX 128
#define GENERATED_LINE (2 + 16 + 1 + 16 + sizeof " (prio 0, ram): " + REGION_MAX + 2 + 16 + 2)

static const char *const regions[3] = { "ram0", "pc.ram", "pc.bios" };
/* The seeds' machines, nothing, a byte, and the largest. */
static const uint64_t file_sizes[7] = {
        3 * GIB, 3584 * MIB, 512 * MIB, 0, 1, UINT64_MAX, UINT64_C(1) << 63,
};

static const vmsig_vcpu_state REGS_SENTINEL = {
        .cr0 = UINT64_C(0xa5a5a5a5a5a5a5a5),
        .cr3 = UINT64_C(0x5a5a5a5a5a5a5a5a),
        .cr4 = UINT64_C(0xa5a5a5a5a5a5a5a5),
        .efer = UINT64_C(0x5a5a5a5a5a5a5a5a),
};
/* Never dereferenced: only compared, to see that a failure left *ret alone. */
static vmsig_gpa_range ranges_sentinel[1];
#define N_SENTINEL ((size_t) 0x5a5a5a5a)

/* The text again, in a buffer of its own, with something after its NUL
 * that would change the answer if it were read. */
static char *copy_with_tail(const char *text, size_t len, const char *tail) {
        size_t n = strlen(tail);
        char *copy = malloc(len + 1 + n + 1);

        fuzz_check(copy);
        memcpy(copy, text, len + 1);
        memcpy(copy + len + 1, tail, n + 1);
        return copy;
}

/* --- info registers --- */

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Whether "NAME=" followed by 1 to 16 hex digits worth value (and no more
 * digits) is somewhere in text. */
static bool text_has_register(const char *text, const char *name, uint64_t value) {
        size_t n = strlen(name);

        for (const char *p = text; (p = strstr(p, name)); p++) {
                uint64_t v = 0;
                size_t k = 0;

                for (const char *q = p + n; k <= 16 && hex_digit(*q) >= 0; q++, k++)
                        v = v << 4 | (uint64_t) hex_digit(*q);
                if (k >= 1 && k <= 16 && v == value)
                        return true;
        }
        return false;
}

static void run_registers(const char *text, size_t len) {
        vmsig_vcpu_state regs = REGS_SENTINEL, again = REGS_SENTINEL;
        _cleanup_free_ char *copy = NULL;
        int r, r2;

        r = qmp_hmp_parse_registers(text, &regs);
        fuzz_check(r == 0 || r == -EBADMSG);
        if (r < 0)
                fuzz_check(memcmp(&regs, &REGS_SENTINEL, sizeof regs) == 0);
        else {
                fuzz_check(text_has_register(text, "CR0=", regs.cr0));
                fuzz_check(text_has_register(text, "CR3=", regs.cr3));
                fuzz_check(text_has_register(text, "CR4=", regs.cr4));
                fuzz_check(text_has_register(text, "EFER=", regs.efer));
        }

        /* A complete block after the NUL would make a cut-off text parse. */
        copy = copy_with_tail(text, len, "\r\nCR0=1 CR3=2 CR4=3\r\nEFER=4\r\n");
        r2 = qmp_hmp_parse_registers(copy, &again);
        fuzz_check(r2 == r);
        fuzz_check(memcmp(&again, &regs, sizeof regs) == 0);
}

/* --- info mtree -f --- */

static bool region_is_valid(const char *region) {
        if (region[0] == '\0')
                return false;
        for (const char *c = region; *c; c++)
                if ((unsigned char) *c <= ' ' || *c == 0x7f)
                        return false;
        return true;
}

/* The addresses that entry lines of the text start and end at, sorted:
 * "  START-END (prio ", 16 hex digits each, in either case as the parser
 * takes them. What a line says after that does not matter here. */
typedef struct EntryLines {
        uint64_t *starts, *ends;
        size_t n;
} EntryLines;

static bool hex16(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        for (size_t i = 0; i < 16; i++) {
                int d = hex_digit(s[i]);
                if (d < 0)
                        return false;
                v = v << 4 | (uint64_t) d;
        }
        *ret = v;
        return true;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static void entry_lines(const char *text, EntryLines *ret) {
        size_t allocated = 0;

        *ret = (EntryLines) {};
        for (const char *line = text; *line;) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t) (nl - line) : strlen(line);
                uint64_t start, end;

                if (len >= 2 + 16 + 1 + 16 + 7 && memcmp(line, "  ", 2) == 0 && hex16(line + 2, &start) &&
                    line[18] == '-' && hex16(line + 19, &end) && memcmp(line + 35, " (prio ", 7) == 0) {
                        if (ret->n == allocated) {
                                allocated = MAX(allocated * 2, (size_t) 64);
                                ret->starts = realloc(ret->starts, allocated * sizeof(uint64_t));
                                ret->ends = realloc(ret->ends, allocated * sizeof(uint64_t));
                                fuzz_check(ret->starts && ret->ends);
                        }
                        ret->starts[ret->n] = start;
                        ret->ends[ret->n++] = end;
                }
                line += nl ? len + 1 : len;
        }
        if (ret->n > 0) {
                qsort(ret->starts, ret->n, sizeof(uint64_t), cmp_u64);
                qsort(ret->ends, ret->n, sizeof(uint64_t), cmp_u64);
        }
}

static bool contains(const uint64_t *sorted, size_t n, uint64_t v) {
        return n > 0 && bsearch(&v, sorted, n, sizeof v, cmp_u64);
}

static void check_map(const char *text, const char *region, uint64_t file_size, const vmsig_gpa_range *ranges,
                      size_t n) {
        EntryLines lines;

        fuzz_check(ranges);
        fuzz_check(n >= 1 && n <= QMP_HMP_MAX_RANGES);
        fuzz_check(strstr(text, region));
        entry_lines(text, &lines);
        for (size_t i = 0; i < n; i++) {
                const vmsig_gpa_range *g = &ranges[i];

                fuzz_check(g->size >= 1);
                /* Within the file: offset + size <= file_size, unwrapped. */
                fuzz_check(g->size <= file_size && g->offset <= file_size - g->size);
                /* The last byte of the range has an address. */
                fuzz_check(g->gpa <= UINT64_MAX - (g->size - 1));
                /* A merged range starts where an entry did and ends where
                 * one did. */
                fuzz_check(contains(lines.starts, lines.n, g->gpa));
                fuzz_check(contains(lines.ends, lines.n, g->gpa + (g->size - 1)));
                if (i == 0)
                        continue;
                const vmsig_gpa_range *prev = &ranges[i - 1];
                /* Sorted and disjoint: the previous one ends before this
                 * one starts. */
                fuzz_check(prev->gpa < g->gpa && g->gpa - prev->gpa >= prev->size);
                /* Merged: contiguous in GPA and in the file is one range. */
                fuzz_check(!(g->gpa - prev->gpa == prev->size && prev->offset + prev->size == g->offset));
        }
        free(lines.starts);
        free(lines.ends);
}

static bool maps_equal(const vmsig_gpa_range *a, size_t n_a, const vmsig_gpa_range *b, size_t n_b) {
        if (n_a != n_b)
                return false;
        for (size_t i = 0; i < n_a; i++)
                if (a[i].gpa != b[i].gpa || a[i].size != b[i].size || a[i].offset != b[i].offset)
                        return false;
        return true;
}

/* Parses text, checking that a failure writes nothing: r, and the map in
 * *ret and *ret_n (NULL and 0 on failure). */
static int parse_mtree(const char *text, const char *region, uint64_t file_size, vmsig_gpa_range **ret,
                       size_t *ret_n) {
        vmsig_gpa_range *ranges = ranges_sentinel;
        size_t n = N_SENTINEL;
        int r;

        r = qmp_hmp_parse_mtree(text, region, file_size, &ranges, &n);
        fuzz_check(r == 0 || r == -EBADMSG || r == -ERANGE || r == -E2BIG || r == -ENOENT || r == -EINVAL ||
                   r == -ENOMEM);
        if (r < 0) {
                fuzz_check(ranges == ranges_sentinel && n == N_SENTINEL);
                ranges = NULL;
                n = 0;
        }
        *ret = ranges;
        *ret_n = n;
        return r;
}

static void run_mtree(const char *text, size_t len, const char *region, uint64_t file_size) {
        _cleanup_free_ vmsig_gpa_range *ranges = NULL, *again = NULL, *larger = NULL;
        _cleanup_free_ char *copy = NULL;
        size_t n, n_again, n_larger;
        int r, r2;

        r = parse_mtree(text, region, file_size, &ranges, &n);
        fuzz_check((r == -EINVAL) == !region_is_valid(region));
        if (r == 0)
                check_map(text, region, file_size, ranges, n);

        /* After the NUL: another FlatView of "memory" (two would be
         * -EBADMSG), and an entry that would end one cut off. */
        copy = copy_with_tail(text, len,
                              "\r\n  0000000000000000-0000000000000fff (prio 0, ram): ram0\r\n\r\n"
                              "FlatView #9\r\n AS \"memory\", root: system\r\n Root memory region: system\r\n");
        r2 = parse_mtree(copy, region, file_size, &again, &n_again);
        fuzz_check(r2 == r);
        fuzz_check(maps_equal(ranges, n, again, n_again));

        /* The file's size bounds the ranges and nothing else. */
        if (r == 0 && file_size != UINT64_MAX) {
                r2 = parse_mtree(text, region, UINT64_MAX, &larger, &n_larger);
                fuzz_check(r2 == 0);
                fuzz_check(maps_equal(ranges, n, larger, n_larger));
        }
}

/* The arguments built for a command line carry it unchanged. */
static void run_command(const char *text) {
        json_object *args = qmp_hmp_command(text), *v;

        fuzz_check(args);
        fuzz_check(json_object_object_get_ex(args, "command-line", &v));
        fuzz_check(strcmp(json_object_get_string(v), text) == 0);
        json_object_put(args);
}

/* The map of a machine with many holes, which no seed of a sensible size
 * holds: n entries of the region, a page each with a page of hole after
 * it, at offsets that do not continue each other either. */
static size_t generate_entries(char *buf, size_t n, const char *region) {
        size_t len = (size_t) sprintf(buf, "FlatView #0\r\n AS \"memory\", root: system\r\n"
                                           " Root memory region: system\r\n");

        for (size_t i = 0; i < n; i++) {
                uint64_t gpa = i * 2 * PAGE;

                len += (size_t) sprintf(buf + len,
                                        "  %016" PRIx64 "-%016" PRIx64 " (prio 0, ram): %s @%016" PRIx64 "\r\n", gpa,
                                        gpa + PAGE - 1, region, (uint64_t) (n - i) * 2 * PAGE);
        }
        return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzInput in = { .p = data, .left = size };
        uint8_t flags = fuzz_u8(&in);
        unsigned region_index = (flags >> REGION_SHIFT) & 3, size_index = (flags >> SIZE_SHIFT) & 7;
        char region[REGION_MAX + 1] = {};
        _cleanup_free_ char *text = NULL;
        size_t n_generated = 0, len = 0;
        uint64_t file_size;

        if (region_index < ELEMENTSOF(regions))
                strcpy(region, regions[region_index]);
        else
                (void) fuzz_take(&in, region, fuzz_u8(&in) % (REGION_MAX + 1));
        file_size = size_index < ELEMENTSOF(file_sizes) ? file_sizes[size_index] : fuzz_u64(&in);
        if (flags & FLAG_GENERATED)
                n_generated = fuzz_u16(&in) % GENERATED_MAX;

        /* The parsers take a C string: the text ends at the input's end or
         * at its first NUL. */
        text = malloc(GENERATED_PREFIX + n_generated * GENERATED_LINE + in.left + 1);
        fuzz_check(text);
        if (n_generated > 0)
                len = generate_entries(text, n_generated, region);
        memcpy(text + len, in.p, in.left);
        text[len + in.left] = '\0';

        if (flags & FLAG_MTREE)
                run_mtree(text, strlen(text), region, file_size);
        else
                run_registers(text, strlen(text));
        run_command(text);
        return 0;
}

void fuzz_teardown(void) {
}
