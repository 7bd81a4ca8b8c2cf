/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Bad trigger files, written into vmsigd's trigger directory one after the
 * other while the load runs, each removed again 150 ms later. Each has
 * exactly one defect; everything else about it is valid and points at a
 * decoy QEMU that is listening. So a file that vmsigd wrongly accepts shows
 * up as an endpoint nobody expects, or as a connection to the decoy. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "load.h"

#define BAD_INTERVAL_USEC 250000
#define BAD_LIFETIME_USEC 150000
#define OVERSIZE (5u << 20) /* more than the 4 MiB vmsigd reads of a file */

typedef enum bad_how {
        BAD_TEXT,     /* the valid text but for the fields below */
        BAD_BINARY,   /* 512 random bytes, none of them ASCII */
        BAD_SYMLINK,  /* a symbolic link to a valid file outside the directory */
        BAD_OVERSIZE, /* a valid file after a comment of OVERSIZE bytes */
} bad_how;

/* One defect. The fields left out are those of a valid file: the file's
 * own name (badN), the decoy's socket and RAM file, <vm>, mode 0600. */
typedef struct bad_file {
        const char *what;
        bad_how how;
        const char *doctype; /* before the root element */
        const char *root;
        const char *name;
        const char *sock; /* under the run's directory */
        const char *ram;  /* under it; "": no <ram> */
        bool relative;    /* the socket's path relative, not under the directory */
        const char *extra; /* after <ram> */
        size_t cut;        /* bytes cut off the end */
        unsigned mode;
        const char *prefix, *suffix; /* around the file's name; NULL, NULL is "", ".xml" */
} bad_file;

static const char laughs[] =
        "<!DOCTYPE vm [\n"
        " <!ENTITY a \"aaaaaaaaaa\">\n"
        " <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
        " <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
        " <!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">\n"
        " <!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">\n"
        " <!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">\n"
        "]>\n";

static const bad_file bad_files[] = {
        { "truncated XML", .cut = 24 },
        { "wrong root element", .root = "domain" },
        { "invalid VM name", .name = "bad name!" },
        { "no <ram>", .ram = "" },
        { "relative QMP socket path", .relative = true },
        { "unknown element", .extra = "  <cdrom path=\"/dev/sr0\"/>\n" },
        { "overlapping GPA ranges",
          .extra = "  <gpa-map>\n    <range gpa=\"0x0\" size=\"0x200000\" offset=\"0x0\"/>\n"
                   "    <range gpa=\"0x100000\" size=\"0x200000\" offset=\"0x200000\"/>\n  </gpa-map>\n" },
        { "GPA map beyond the RAM file",
          .extra = "  <gpa-map><range gpa=\"0x0\" size=\"0x10000000\" offset=\"0x0\"/></gpa-map>\n" },
        { "writable by everyone", .mode = 0666 },
        { "symbolic link to a valid file", .how = BAD_SYMLINK },
        { "larger than 4 MiB", .how = BAD_OVERSIZE },
        { "external entity (XXE)", .doctype = "<!DOCTYPE vm [<!ENTITY x SYSTEM \"file:///etc/hostname\">]>\n",
          .name = "&x;" },
        { "nested entity expansion", .doctype = laughs, .name = "&f;" },
        { "dotfile", .prefix = "." },
        { "not *.xml", .suffix = ".txt" },
        { "empty", .cut = SIZE_MAX },
        { "binary garbage", .how = BAD_BINARY },
        { "RAM path is a directory", .ram = "ram" },
        { "QMP socket path is a regular file", .sock = "ram/decoy.ram" },
        { "name of a configured stub", .name = "lc00" },
        { "name of 65 characters", .name = "b234567890123456789012345678901234567890123456789012345678901234x" },
        { "GPA range not page aligned",
          .extra = "  <gpa-map><range gpa=\"0x10\" size=\"0x1000\" offset=\"0x0\"/></gpa-map>\n" },
};

static const bad_file valid_file = { .what = "valid" };

static struct {
        sd_event_source *timer;
        unsigned next;
        char path[4096];
        bool written;
} bad;

/* The text of b (BAD_TEXT) named name; its length, or -1. */
static int bad_text(load_ctx *ctx, const bad_file *b, const char *name, char *buf, size_t size) {
        const char *root = b->root ?: "vm";
        char sock[4096], ram[4096] = "";
        int n;

        if (b->relative)
                snprintf(sock, sizeof sock, "qmp/decoy.sock");
        else
                snprintf(sock, sizeof sock, "%s/%s", ctx->dir, b->sock ?: "qmp/decoy.sock");
        if (!b->ram || b->ram[0])
                snprintf(ram, sizeof ram, "  <ram path=\"%s/%s\"/>\n", ctx->dir, b->ram ?: "ram/decoy.ram");
        n = snprintf(buf, size, "%s<%s name=\"%s\">\n  <qmp socket=\"%s\"/>\n%s%s</%s>\n", b->doctype ?: "", root,
                     b->name ?: name, sock, ram, b->extra ?: "", root);
        if (n < 0 || (size_t) n >= size)
                return -1;
        return (size_t) n > b->cut ? n - (int) b->cut : 0;
}

/* A valid file after a comment longer than what vmsigd reads. */
static int write_oversize(const char *path, const char *valid, size_t len) {
        char *text = malloc(OVERSIZE + 10 + len);
        int r;

        if (!text)
                return -ENOMEM;
        memcpy(text, "<!-- ", 5);
        memset(text + 5, 'x', OVERSIZE);
        memcpy(text + 5 + OVERSIZE, " -->\n", 5);
        memcpy(text + 10 + OVERSIZE, valid, len);
        r = load_write_file(path, text, OVERSIZE + 10 + len, 0600);
        free(text);
        return r;
}

static int write_bad(load_ctx *ctx, const bad_file *b, const char *path, const char *name) {
        char text[16384], target[4096];
        int n = bad_text(ctx, b->how == BAD_TEXT ? b : &valid_file, name, text, sizeof text), r;

        if (n < 0)
                return -EINVAL;
        switch (b->how) {
        case BAD_BINARY:
                for (size_t i = 0; i < 512; i++)
                        text[i] = (char) (load_rand(&ctx->rng) | 0x80);
                return load_write_file(path, text, 512, 0600);
        case BAD_SYMLINK:
                snprintf(target, sizeof target, "%s/%s-target.xml", ctx->dir, name);
                r = load_write_file(target, text, (size_t) n, 0600);
                return r >= 0 && symlink(target, path) < 0 ? -errno : r;
        case BAD_OVERSIZE:
                return write_oversize(path, text, (size_t) n);
        default:
                return load_write_file(path, text, (size_t) n, b->mode ?: 0600);
        }
}

static int on_bad_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        load_ctx *ctx = userdata;
        const bad_file *b = &bad_files[bad.next % BENCH_ELEMENTS(bad_files)];
        char name[32];

        if (bad.written) {
                (void) unlink(bad.path);
                bad.written = false;
                (void) load_timer(ctx, &bad.timer, BAD_INTERVAL_USEC - BAD_LIFETIME_USEC, 1000, on_bad_timer, ctx);
                return 0;
        }
        if (ctx->stopping)
                return 0;
        snprintf(name, sizeof name, "bad%u", bad.next++);
        snprintf(bad.path, sizeof bad.path, "%s/vms.d/%s%s%s", ctx->dir, b->prefix ?: "", name, b->suffix ?: ".xml");
        if (write_bad(ctx, b, bad.path, name) < 0)
                load_fail(ctx, "cannot write bad trigger file %s (%s)", bad.path, b->what);
        else
                ctx->n.bad_trigger_files++;
        bad.written = true;
        (void) load_timer(ctx, &bad.timer, BAD_LIFETIME_USEC, 1000, on_bad_timer, ctx);
        return 0;
}

void load_vms_bad_files_start(load_ctx *ctx) {
        (void) load_timer(ctx, &bad.timer, BAD_INTERVAL_USEC, 1000, on_bad_timer, ctx);
}

void load_vms_bad_files_stop(load_ctx *ctx) {
        if (bad.written)
                (void) unlink(bad.path);
        bad.written = false;
        bad.timer = sd_event_source_disable_unref(bad.timer);
}
