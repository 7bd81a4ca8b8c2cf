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

typedef struct bad_file {
        const char *what;
        const char *prefix, *suffix; /* around the name: NULL, NULL is "", ".xml" */
        unsigned mode;
} bad_file;

static const bad_file bad_files[] = {
        { "truncated XML", NULL, NULL, 0600 },
        { "wrong root element", NULL, NULL, 0600 },
        { "invalid VM name", NULL, NULL, 0600 },
        { "no <ram>", NULL, NULL, 0600 },
        { "relative QMP socket path", NULL, NULL, 0600 },
        { "unknown element", NULL, NULL, 0600 },
        { "overlapping GPA ranges", NULL, NULL, 0600 },
        { "GPA map beyond the RAM file", NULL, NULL, 0600 },
        { "writable by everyone", NULL, NULL, 0666 },
        { "symbolic link to a valid file", NULL, NULL, 0600 },
        { "larger than 4 MiB", NULL, NULL, 0600 },
        { "external entity (XXE)", NULL, NULL, 0600 },
        { "nested entity expansion", NULL, NULL, 0600 },
        { "dotfile", ".", ".xml", 0600 },
        { "not *.xml", NULL, ".txt", 0600 },
        { "empty", NULL, NULL, 0600 },
        { "binary garbage", NULL, NULL, 0600 },
        { "RAM path is a directory", NULL, NULL, 0600 },
        { "QMP socket path is a regular file", NULL, NULL, 0600 },
        { "name of a configured stub", NULL, NULL, 0600 },
        { "name of 65 characters", NULL, NULL, 0600 },
        { "GPA range not page aligned", NULL, NULL, 0600 },
};

static struct {
        sd_event_source *timer;
        unsigned next;
        char path[4096];
        bool written;
} bad;

/* The valid body of a trigger file, with one of its parts replaced. */
static int valid(char *buf, size_t size, const char *name, const char *sock, const char *ram, const char *extra) {
        return snprintf(buf, size, "<vm name=\"%s\">\n  <qmp socket=\"%s\"/>\n  <ram path=\"%s\"/>\n%s</vm>\n", name,
                        sock, ram, extra);
}

static const char laughs[] =
        "<!DOCTYPE vm [\n"
        " <!ENTITY a \"aaaaaaaaaa\">\n"
        " <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
        " <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
        " <!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">\n"
        " <!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">\n"
        " <!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">\n"
        "]>\n";

/* The text of bad file k; its length, or -1. */
static int bad_text(load_ctx *ctx, unsigned k, const char *name, char *buf, size_t size) {
        char sock[4096], ram[4096];

        snprintf(sock, sizeof sock, "%s/qmp/decoy.sock", ctx->dir);
        snprintf(ram, sizeof ram, "%s/ram/decoy.ram", ctx->dir);
        switch (k) {
        case 0:
                return snprintf(buf, size, "<vm name=\"%s\">\n  <qmp socket=\"%s\"/>\n  <ram pa", name, sock);
        case 1:
                return snprintf(buf, size, "<domain name=\"%s\"><qmp socket=\"%s\"/><ram path=\"%s\"/></domain>\n",
                                name, sock, ram);
        case 2:
                return valid(buf, size, "bad name!", sock, ram, "");
        case 3:
                return snprintf(buf, size, "<vm name=\"%s\">\n  <qmp socket=\"%s\"/>\n</vm>\n", name, sock);
        case 4:
                return valid(buf, size, name, "qmp/decoy.sock", ram, "");
        case 5:
                return valid(buf, size, name, sock, ram, "  <cdrom path=\"/dev/sr0\"/>\n");
        case 6:
                return valid(buf, size, name, sock, ram,
                             "  <gpa-map>\n    <range gpa=\"0x0\" size=\"0x200000\" offset=\"0x0\"/>\n"
                             "    <range gpa=\"0x100000\" size=\"0x200000\" offset=\"0x200000\"/>\n  </gpa-map>\n");
        case 7:
                return valid(buf, size, name, sock, ram,
                             "  <gpa-map><range gpa=\"0x0\" size=\"0x10000000\" offset=\"0x0\"/></gpa-map>\n");
        case 11:
                return snprintf(buf, size,
                                "<!DOCTYPE vm [<!ENTITY x SYSTEM \"file:///etc/hostname\">]>\n"
                                "<vm name=\"&x;\"><qmp socket=\"%s\"/><ram path=\"%s\"/></vm>\n",
                                sock, ram);
        case 12:
                return snprintf(buf, size, "%s<vm name=\"&f;\"><qmp socket=\"%s\"/><ram path=\"%s\"/></vm>\n", laughs,
                                sock, ram);
        case 15:
                return 0;
        case 16:
                for (size_t i = 0; i < 512 && i < size; i++)
                        buf[i] = (char) (load_rand(&ctx->rng) | 0x80);
                return 512;
        case 17:
                snprintf(ram, sizeof ram, "%s/ram", ctx->dir);
                return valid(buf, size, name, sock, ram, "");
        case 18:
                return valid(buf, size, name, ram, ram, "");
        case 19:
                return valid(buf, size, "lc00", sock, ram, "");
        case 20:
                return valid(buf, size, "b234567890123456789012345678901234567890123456789012345678901234x", sock, ram,
                             "");
        case 21:
                return valid(buf, size, name, sock, ram,
                             "  <gpa-map><range gpa=\"0x10\" size=\"0x1000\" offset=\"0x0\"/></gpa-map>\n");
        default: /* valid content; the defect is the file itself */
                return valid(buf, size, name, sock, ram, "");
        }
}

/* More than vmsigd reads (4 MiB), valid otherwise. */
static int write_oversize(load_ctx *ctx, const char *path, const char *name) {
        size_t size = (5u << 20) + 4096;
        char *text = malloc(size);
        int n, r;

        if (!text)
                return -ENOMEM;
        n = snprintf(text, size, "<!-- ");
        memset(text + n, 'x', (5u << 20));
        n += (int) (5u << 20);
        n += snprintf(text + n, size - (size_t) n, " -->\n");
        n += bad_text(ctx, 99, name, text + n, size - (size_t) n);
        r = load_write_file(path, text, (size_t) n, 0600);
        free(text);
        return r;
}

/* A valid file outside the directory, and a link to it inside. */
static int write_symlink(load_ctx *ctx, const char *path, const char *name) {
        char target[4096], text[8192];
        int n = bad_text(ctx, 99, name, text, sizeof text), r;

        snprintf(target, sizeof target, "%s/%s-target.xml", ctx->dir, name);
        r = load_write_file(target, text, (size_t) n, 0600);
        if (r >= 0 && symlink(target, path) < 0)
                r = -errno;
        return r;
}

static int write_bad(load_ctx *ctx, unsigned k, const char *path, const char *name) {
        char text[16384];
        int n;

        if (k == 9)
                return write_symlink(ctx, path, name);
        if (k == 10)
                return write_oversize(ctx, path, name);
        n = bad_text(ctx, k, name, text, sizeof text);
        return n < 0 ? -EINVAL : load_write_file(path, text, (size_t) n, bad_files[k].mode);
}

static void schedule(load_ctx *ctx, uint64_t usec);

static int on_bad_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        load_ctx *ctx = userdata;
        char name[32];
        unsigned k;

        if (bad.written) {
                (void) unlink(bad.path);
                bad.written = false;
                schedule(ctx, BAD_INTERVAL_USEC - BAD_LIFETIME_USEC);
                return 0;
        }
        if (ctx->stopping)
                return 0;
        k = bad.next % BENCH_ELEMENTS(bad_files);
        snprintf(name, sizeof name, "bad%u", bad.next++);
        snprintf(bad.path, sizeof bad.path, "%s/vms.d/%s%s%s", ctx->dir, bad_files[k].prefix ?: "", name,
                 bad_files[k].suffix ?: ".xml");
        if (write_bad(ctx, k, bad.path, name) < 0)
                load_fail(ctx, "cannot write bad trigger file %s (%s)", bad.path, bad_files[k].what);
        else
                ctx->n.bad_trigger_files++;
        bad.written = true;
        schedule(ctx, BAD_LIFETIME_USEC);
        return 0;
}

static void schedule(load_ctx *ctx, uint64_t usec) {
        if (!bad.timer) {
                (void) sd_event_add_time_relative(ctx->event, &bad.timer, CLOCK_MONOTONIC, usec, 1000, on_bad_timer,
                                                  ctx);
                return;
        }
        (void) sd_event_source_set_time_relative(bad.timer, usec);
        (void) sd_event_source_set_enabled(bad.timer, SD_EVENT_ONESHOT);
}

void load_vms_bad_files_start(load_ctx *ctx) {
        schedule(ctx, BAD_INTERVAL_USEC);
}

void load_vms_bad_files_stop(load_ctx *ctx) {
        if (bad.written)
                (void) unlink(bad.path);
        bad.written = false;
        bad.timer = sd_event_source_disable_unref(bad.timer);
}
