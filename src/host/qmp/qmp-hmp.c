/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "qmp-hmp.h"

/* One line of text: [*ret, *ret + *ret_len), without its "\n" or "\r\n".
 * false at the end of the text. */
static bool next_line(const char **cursor, const char **ret, size_t *ret_len) {
        const char *p = *cursor, *nl;
        size_t len;

        if (*p == '\0')
                return false;
        nl = strchr(p, '\n');
        len = nl ? (size_t) (nl - p) : strlen(p);
        *cursor = nl ? nl + 1 : p + len;
        if (len > 0 && p[len - 1] == '\r')
                len--;
        *ret = p;
        *ret_len = len;
        return true;
}

static bool has_prefix(const char *s, size_t len, const char *prefix) {
        size_t n = strlen(prefix);
        return len >= n && memcmp(s, prefix, n) == 0;
}

static bool is_equal(const char *s, size_t len, const char *t) {
        return len == strlen(t) && memcmp(s, t, len) == 0;
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Exactly len hex digits, 1 to 16 of them: nothing more can be a 64-bit
 * value, so no check for overflow is needed beyond the count. */
static bool parse_hex(const char *s, size_t len, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > 16)
                return false;
        for (size_t i = 0; i < len; i++) {
                int d = hex_digit(s[i]);
                if (d < 0)
                        return false;
                v = v << 4 | (uint64_t) d;
        }
        *ret = v;
        return true;
}

/* 1 to max_digits decimal digits and nothing else; the value is not needed. */
static bool is_decimal(const char *s, size_t len, size_t max_digits) {
        if (len == 0 || len > max_digits)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

/* --- info registers --- */

enum {
        REG_CR0,
        REG_CR3,
        REG_CR4,
        REG_EFER,
        _REG_MAX,
};

static const char *const register_prefix[_REG_MAX] = {
        [REG_CR0] = "CR0=",
        [REG_CR3] = "CR3=",
        [REG_CR4] = "CR4=",
        [REG_EFER] = "EFER=",
};

/* One blank-separated "NAME=VALUE" token; anything that is not one of ours
 * (EAX=, CR2=, "ES", "=0000", "[-------]") is left alone. */
static int parse_register_token(const char *tok, size_t len, uint64_t values[static _REG_MAX], unsigned *seen) {
        for (unsigned r = 0; r < _REG_MAX; r++) {
                size_t n = strlen(register_prefix[r]);

                if (!has_prefix(tok, len, register_prefix[r]))
                        continue;
                /* Twice in one CPU's block is no output of QEMU's: which
                 * one would be true? */
                if (*seen & (1u << r))
                        return -EBADMSG;
                if (!parse_hex(tok + n, len - n, &values[r]))
                        return -EBADMSG;
                *seen |= 1u << r;
                return 0;
        }
        return 0;
}

int qmp_hmp_parse_registers(const char *text, vmsig_vcpu_state *ret) {
        uint64_t values[_REG_MAX] = {};
        unsigned seen = 0;
        bool header = false;
        const char *line;
        size_t len;
        int r;

        assert(text);
        assert(ret);

        for (const char *cursor = text; next_line(&cursor, &line, &len);) {
                if (has_prefix(line, len, "CPU#")) {
                        /* The next CPU's block begins: only the first one
                         * is the one asked about. A block without a header
                         * (older QEMUs) ends here too. */
                        if (header || seen != 0)
                                break;
                        if (!is_decimal(line + 4, len - 4, 9))
                                return -EBADMSG;
                        header = true;
                        continue;
                }
                for (size_t i = 0; i < len;) {
                        size_t start;

                        while (i < len && line[i] == ' ')
                                i++;
                        start = i;
                        while (i < len && line[i] != ' ')
                                i++;
                        r = parse_register_token(line + start, i - start, values, &seen);
                        if (r < 0)
                                return r;
                }
        }
        if (seen != (1u << _REG_MAX) - 1)
                return -EBADMSG;

        *ret = (vmsig_vcpu_state) {
                .cr0 = values[REG_CR0],
                .cr3 = values[REG_CR3],
                .cr4 = values[REG_CR4],
                .efer = values[REG_EFER],
        };
        return 0;
}

/* --- info mtree -f --- */

typedef struct mtree_entry {
        uint64_t start, end; /* inclusive, as QEMU prints them */
        uint64_t offset;
        bool ours; /* named after the region */
} mtree_entry;

/* QEMU prints every address as "%016" PRIx64: exactly 16 digits. */
static bool take_hex16(const char **p, const char *end, uint64_t *ret) {
        if (end - *p < 16 || !parse_hex(*p, 16, ret))
                return false;
        *p += 16;
        return true;
}

static bool take_literal(const char **p, const char *end, const char *literal) {
        size_t n = strlen(literal);

        if ((size_t) (end - *p) < n || memcmp(*p, literal, n) != 0)
                return false;
        *p += n;
        return true;
}

/* The run of characters from set at *p, at least 1 and at most max. */
static bool take_span(const char **p, const char *end, const char *set, size_t max, const char **ret,
                      size_t *ret_len) {
        const char *q = *p;

        while (q < end && (size_t) (q - *p) < max && *q != '\0' && strchr(set, *q))
                q++;
        if (q == *p || (q < end && (size_t) (q - *p) == max && *q != '\0' && strchr(set, *q)))
                return false;
        *ret = *p;
        *ret_len = (size_t) (q - *p);
        *p = q;
        return true;
}

#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define ALNUM LOWER "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

/* "  START-END (prio N, TYPE): NAME[ @OFFSET][ ACCEL...]", from QEMU's
 * mtree_print_flatview(). The name of a region may contain blanks, so a
 * line is ours only if the name is region followed by the end or a blank;
 * what follows it then must be what QEMU appends: the offset in the region
 * when it is not 0, and the names of accelerators that map the range
 * (" KVM"). */
static int parse_range_line(const char *line, size_t len, const char *region, mtree_entry *ret) {
        const char *p = line, *end = line + len, *type, *word;
        size_t type_len, word_len, n = strlen(region);
        mtree_entry e = {};

        /* No control characters: a "\r" in a name would make it another
         * name than it looks like. */
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) line[i] < 0x20 || line[i] == 0x7f)
                        return -EBADMSG;

        if (!take_literal(&p, end, "  ") || !take_hex16(&p, end, &e.start) || !take_literal(&p, end, "-") ||
            !take_hex16(&p, end, &e.end) || !take_literal(&p, end, " (prio "))
                return -EBADMSG;
        (void) take_literal(&p, end, "-");
        if (!take_span(&p, end, "0123456789", 10, &word, &word_len) || !take_literal(&p, end, ", ") ||
            !take_span(&p, end, LOWER "/-", 16, &type, &type_len) || !take_literal(&p, end, "): "))
                return -EBADMSG;
        if (e.end < e.start)
                return -EBADMSG;

        if ((size_t) (end - p) < n || memcmp(p, region, n) != 0 || (end - p > (ptrdiff_t) n && p[n] != ' '))
                goto done;
        p += n;
        e.ours = true;

        /* Read-only (shadowed by the firmware) or not, it is the file. */
        if (!is_equal(type, type_len, "ram") && !is_equal(type, type_len, "rom") &&
            !is_equal(type, type_len, "nv-ram") && !is_equal(type, type_len, "nv-rom"))
                return -EBADMSG;
        if (take_literal(&p, end, " @") && !take_hex16(&p, end, &e.offset))
                return -EBADMSG;
        while (p < end)
                if (!take_literal(&p, end, " ") || !take_span(&p, end, ALNUM, 32, &word, &word_len))
                        return -EBADMSG;
done:
        *ret = e;
        return 0;
}

/* Appends an entry of the region, or extends the last range if the entry
 * continues it both in GPA and in the file. Entries come sorted and
 * disjoint (the caller checked), so start - 1 cannot wrap and neither can
 * offset + size, which is within the file. */
static int add_entry(const mtree_entry *e, uint64_t file_size, vmsig_gpa_range **ranges, size_t *n,
                     size_t *allocated, uint64_t *last_end) {
        vmsig_gpa_range *last = *n > 0 ? &(*ranges)[*n - 1] : NULL;
        uint64_t size;

        /* end - start + 1 would wrap for [0, 2^64); compared before the +1,
         * no range can be larger than the file anyway. */
        if (e->end - e->start >= file_size)
                return -ERANGE;
        size = e->end - e->start + 1;
        if (e->offset > file_size - size)
                return -ERANGE;

        if (last && e->start - 1 == *last_end && last->offset + last->size == e->offset) {
                last->size += size;
                *last_end = e->end;
                return 0;
        }
        if (*n >= QMP_HMP_MAX_RANGES)
                return -E2BIG;
        if (*n == *allocated) {
                size_t m = MIN(MAX(*allocated * 2, (size_t) 8), (size_t) QMP_HMP_MAX_RANGES);
                vmsig_gpa_range *p = realloc(*ranges, m * sizeof(vmsig_gpa_range));
                if (!p)
                        return -ENOMEM;
                *ranges = p;
                *allocated = m;
        }
        (*ranges)[(*n)++] = (vmsig_gpa_range) { .gpa = e->start, .size = size, .offset = e->offset };
        *last_end = e->end;
        return 0;
}

/* The parse of an info mtree -f text, a line at a time. */
typedef struct mtree_parser {
        const char *region;
        uint64_t file_size;
        vmsig_gpa_range *ranges;
        size_t n, allocated;
        uint64_t last_end, region_end;
        bool in_memory, memory_seen, any_entry;
        enum {
                BETWEEN, /* before the first FlatView, or after one's blank line */
                HEADER,  /* its " AS" lines */
                ENTRIES, /* after " Root memory region:" */
        } where;
} mtree_parser;

/* A backend's id is a QOM id: never empty, no blanks, no control
 * characters. The id may come from QEMU too, so this is an error, not an
 * assertion: nothing such could be matched in a line. */
static bool region_is_valid(const char *region) {
        if (region[0] == '\0')
                return false;
        for (const char *c = region; *c; c++)
                if ((unsigned char) *c <= ' ' || *c == 0x7f)
                        return false;
        return true;
}

static int parse_header_line(mtree_parser *p, const char *line, size_t len) {
        if (has_prefix(line, len, " AS \"")) {
                const char *name = line + 5, *quote = memchr(name, '"', len - 5);

                if (!quote || !has_prefix(quote, (size_t) (line + len - quote), "\", root: "))
                        return -EBADMSG;
                if (is_equal(name, (size_t) (quote - name), "memory")) {
                        /* Two maps of the one address space: which is it? */
                        if (p->memory_seen)
                                return -EBADMSG;
                        p->memory_seen = p->in_memory = true;
                }
        } else if (has_prefix(line, len, " Root memory region: "))
                p->where = ENTRIES;
        else
                return -EBADMSG;
        return 0;
}

static int parse_entry_line(mtree_parser *p, const char *line, size_t len) {
        mtree_entry e;
        int r;

        if (len == 0) {
                p->where = BETWEEN;
                return 0;
        }
        if (is_equal(line, len, "  No rendered FlatView"))
                return 0;
        if (!has_prefix(line, len, "  "))
                return -EBADMSG;
        /* The other address spaces (I/O, SMM, DMA) are not what the vCPUs
         * see: their lines are not read. */
        if (!p->in_memory)
                return 0;
        r = parse_range_line(line, len, p->region, &e);
        if (r < 0)
                return r;
        /* A FlatView is sorted and disjoint; anything else is no map of
         * QEMU's, and merging relies on it. */
        if (p->any_entry && e.start <= p->last_end)
                return -EBADMSG;
        p->any_entry = true;
        p->last_end = e.end;
        if (!e.ours)
                return 0;
        return add_entry(&e, p->file_size, &p->ranges, &p->n, &p->allocated, &p->region_end);
}

static int parse_mtree_line(mtree_parser *p, const char *line, size_t len) {
        if (has_prefix(line, len, "FlatView #")) {
                if (p->where == HEADER || !is_decimal(line + 10, len - 10, 9))
                        return -EBADMSG;
                p->where = HEADER;
                p->in_memory = false;
                return 0;
        }
        switch (p->where) {
        case BETWEEN:
                return len != 0 ? -EBADMSG : 0;
        case HEADER:
                return parse_header_line(p, line, len);
        case ENTRIES:
                return parse_entry_line(p, line, len);
        }
        return -EBADMSG;
}

int qmp_hmp_parse_mtree(const char *text, const char *region, uint64_t file_size, vmsig_gpa_range **ret,
                        size_t *ret_n) {
        mtree_parser p = { .region = region, .file_size = file_size, .where = BETWEEN };
        const char *line;
        size_t len;
        int r = 0;

        assert(text);
        assert(region);
        assert(ret);
        assert(ret_n);

        if (!region_is_valid(region))
                return -EINVAL;
        for (const char *cursor = text; r >= 0 && next_line(&cursor, &line, &len);)
                r = parse_mtree_line(&p, line, len);
        /* Cut off after "FlatView #n", or never the address space asked about. */
        if (r >= 0 && (p.where == HEADER || !p.memory_seen))
                r = -EBADMSG;
        if (r >= 0 && p.n == 0)
                r = -ENOENT;
        if (r < 0) {
                free(p.ranges);
                return r;
        }
        *ret = p.ranges;
        *ret_n = p.n;
        return 0;
}

json_object *qmp_hmp_command(const char *command_line) {
        json_object *args = json_object_new_object();

        if (args && json_object_object_add(args, "command-line", json_object_new_string(command_line)) < 0)
                args = (json_object_put(args), NULL);
        return args;
}

/* The registers of an answer to human-monitor-command "info registers":
 * 0, or the reply's error (or -EBADMSG) and its words in *ret_message
 * (borrowed from reply, or static). */
static int registers_reply(const qmp_reply *reply, vmsig_vcpu_state *ret, const char **ret_message) {
        const char *text;

        if (reply->error < 0) {
                *ret_message = reply->message;
                return reply->error;
        }
        text = json_object_get_string(reply->result);
        /* The parser stops at a NUL: a text with one would read short. */
        if (!text || (size_t) json_object_get_string_len(reply->result) != strlen(text) ||
            qmp_hmp_parse_registers(text, ret) < 0) {
                *ret_message = "QEMU's info registers answer has no control registers.";
                return -EBADMSG;
        }
        return 0;
}

/* A vCPU read in flight: whom its answer goes to. */
typedef struct vcpu_read {
        vmsig_vcpu_done_fn done;
        void *userdata;
} vcpu_read;

static void on_registers(const qmp_reply *reply, void *userdata) {
        vcpu_read rd = *(vcpu_read *) userdata;
        const char *message = NULL;
        vmsig_vcpu_state vcpu;
        int r;

        free(userdata);
        r = registers_reply(reply, &vcpu, &message);
        rd.done(&(vmsig_result) { .error = r, .message = message }, r < 0 ? NULL : &vcpu, rd.userdata);
}

int qmp_hmp_read_vcpu(const qmp_monitor *monitor, vmsig_vcpu_done_fn done, void *userdata) {
        vcpu_read *rd;
        int r;

        assert(monitor);
        if (!done)
                return -EINVAL;
        rd = malloc(sizeof *rd);
        if (!rd)
                return -ENOMEM;
        *rd = (vcpu_read) { .done = done, .userdata = userdata };
        r = qmp_monitor_execute(monitor, "human-monitor-command", qmp_hmp_command("info registers"), on_registers, rd);
        if (r < 0)
                free(rd);
        return r;
}
