/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the parsers of libvirt-ram.h: the input is what a
 * QEMU process's /proc/PID/maps or /proc/PID/cmdline could hold (the
 * names in maps are file names anyone may choose, a command line is the
 * process's own to rewrite); and for libvirt-seclabel.h's reader of a
 * domain's XML (whose <seclabel> an admin writes).
 *
 * Checks, beyond "no crash, no leak": a maps line parses (0) or is
 * -EBADMSG and then nothing was written; one that parses has end > start
 * and a name that is the line's tail; the scan's result is 0, -ENOENT,
 * -ENOTUNIQ, or an error of a line (-EBADMSG, -E2BIG), and a mapping it
 * gives is shared, writable, from offset 0 and not empty; the command-line
 * check agrees with a plain search for "-uuid\0UUID\0", case aside; the
 * DAC label is 0 with a uid that is not (uid_t) -1, -ENOENT or -EBADMSG,
 * with words, and a text without "<domain" is never 0.
 *
 * The memory layout from a domain's XML (libvirt-xml.h): 0 with one or
 * two ranges that start at GPA 0, put any second one at 4 GiB right after
 * the first in the file and add up to the RAM; or a refusal (-EOPNOTSUPP,
 * -EBADMSG, -EINVAL) with a reason and nothing written. The same XML's
 * DAC label (the capabilities fixed, their default +107:+107).
 *
 * Input: byte 0 bit 1: domain XML, with byte 1 the RAM size in 128 MiB
 * steps (1..256), for both readers; else bit 0: a command line (else
 * maps text, lines split at '\n'); the rest is the text.
 */
#include <errno.h>
#include <strings.h>

#include "fuzz.h"
#include "libvirt-ram.h"
#include "libvirt-seclabel.h"
#include "libvirt-xml.h"
#include "macro.h"

#define UUID "e35dcde6-7395-4b24-9f09-57df7c9d8d64"

static void check_line(const char *line, size_t len) {
        _cleanup_free_ libvirt_ram_vma *v = malloc(sizeof *v);
        int r;

        fuzz_check(v);
        memset(v, 0x5a, sizeof *v);
        r = libvirt_ram_parse_maps_line(line, len, v);
        fuzz_check(r == 0 || r == -EBADMSG);
        if (r < 0) {
                fuzz_check(v->start == UINT64_C(0x5a5a5a5a5a5a5a5a));
                return;
        }
        fuzz_check(v->end > v->start);
        fuzz_check(strlen(v->name) <= len && memcmp(v->name, line + len - strlen(v->name), strlen(v->name)) == 0);
}

static void fuzz_maps(const char *text, size_t size) {
        _cleanup_free_ libvirt_ram_scan *s = malloc(sizeof *s);
        const libvirt_ram_vma *v;
        int r = 0;

        fuzz_check(s);
        libvirt_ram_scan_init(s);
        for (const char *p = text, *end = text + size; p < end && r == 0;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len = nl ? (size_t) (nl - p) : (size_t) (end - p);

                check_line(p, len);
                r = libvirt_ram_scan_feed(s, p, len);
                fuzz_check(r == 0 || r == -EBADMSG || r == -E2BIG);
                p += len + 1;
        }
        if (r < 0)
                return;
        r = libvirt_ram_scan_result(s, &v);
        fuzz_check(r == 0 || r == -ENOENT || r == -ENOTUNIQ);
        if (r == 0)
                fuzz_check(v->shared && v->writable && v->offset == 0 && v->end > v->start && v->name[0] == '/');
}

/* The plain way: every "-uuid" argument followed by a whole argument. */
static bool has_uuid_plainly(const char *text, size_t size) {
        const size_t k = sizeof "-uuid", u = sizeof UUID; /* NULs included */

        for (size_t i = 0; i + k + u <= size; i++)
                if ((i == 0 || text[i - 1] == '\0') && memcmp(text + i, "-uuid", k) == 0 &&
                    strncasecmp(text + i + k, UUID, u - 1) == 0 && text[i + k + u - 1] == '\0')
                        return true;
        return false;
}

static void fuzz_xml(FuzzInput *in, uint64_t ram) {
        vmsig_gpa_range r[QEMU_RAM_LAYOUT_MAX_RANGES] = { { 1, 1, 1 }, { 1, 1, 1 } };
        char msg[LIBVIRT_RAM_MESSAGE_MAX] = "";
        size_t n = 77;
        int k;

        k = libvirt_xml_ram_layout((const char *) in->p, in->left, ram, r, &n, msg, sizeof msg);
        fuzz_check(k == 0 || k == -EOPNOTSUPP || k == -EBADMSG || k == -EINVAL);
        if (k < 0) {
                fuzz_check(msg[0] != '\0' && n == 77 && r[0].gpa == 1);
                return;
        }
        fuzz_check(n >= 1 && n <= 2 && r[0].gpa == 0 && r[0].offset == 0);
        fuzz_check(n == 1 ? r[0].size == ram
                          : r[1].gpa == UINT64_C(1) << 32 && r[1].offset == r[0].size && r[0].size + r[1].size == ram);
}

static const char caps[] = "<capabilities><host><secmodel><model>dac</model><doi>0</doi>"
                           "<baselabel type='qemu'>+107:+107</baselabel></secmodel></host></capabilities>";

static void fuzz_seclabel(const char *data, size_t size) {
        _cleanup_free_ char *xml = strndup(data, size);
        char msg[LIBVIRT_SECLABEL_MESSAGE_MAX] = "";
        uid_t uid = (uid_t) -1;
        int r;

        fuzz_check(xml);
        r = libvirt_seclabel_qemu_uid(xml, caps, &uid, msg, sizeof msg);
        fuzz_check(r == 0 || r == -ENOENT || r == -EBADMSG);
        fuzz_check(r == 0 ? uid != (uid_t) -1 : msg[0] != '\0');
        fuzz_check(r != 0 || strstr(xml, "<domain"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzInput in = { data, size };
        uint8_t mode = fuzz_u8(&in);

        if (mode & 2) {
                uint64_t ram = ((uint64_t) fuzz_u8(&in) + 1) << 27;

                fuzz_seclabel((const char *) in.p, in.left);
                fuzz_xml(&in, ram);
        } else if (mode & 1)
                fuzz_check(libvirt_ram_cmdline_has_uuid((const char *) in.p, in.left, UUID) ==
                           has_uuid_plainly((const char *) in.p, in.left));
        else
                fuzz_maps((const char *) in.p, in.left);
        return 0;
}

void fuzz_teardown(void) {
}
