/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dump-memctx: the memory context of an endpoint (SubscribeMemctx), and
 * guest RAM saved through its read-only fd. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl-json.h"
#include "ctl-pager.h"
#include "ctl-util.h"
#include "fd-util.h"

#define COPY_BUFFER_SIZE (1u << 20)
#define LABEL_WIDTH 8

typedef struct memctx_range {
        uint64_t gpa, size, offset;
} memctx_range;

typedef struct memctx {
        int fd;
        uint64_t dtb, epoch, size;
        memctx_range *ranges;
        size_t n_ranges;
        uint64_t saved; /* bytes written by --save */
} memctx;

static int read_ranges(sd_bus_message *m, memctx *c) {
        memctx_range range;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(ttt)");
        while (r >= 0 && (r = sd_bus_message_read(m, "(ttt)", &range.gpa, &range.size, &range.offset)) > 0) {
                memctx_range *grown = reallocarray(c->ranges, c->n_ranges + 1, sizeof *grown);
                if (!grown)
                        return -ENOMEM;
                c->ranges = grown;
                c->ranges[c->n_ranges++] = range;
        }
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

static int subscribe(sd_bus *bus, const char *name, const char *path, memctx *c) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r, fd;

        r = sd_bus_call_method(bus, VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, "SubscribeMemctx", &error, &reply,
                               NULL);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to get the memory context of '%s'", name);
        r = sd_bus_message_read(reply, "httt", &fd, &c->dtb, &c->epoch, &c->size);
        if (r >= 0)
                r = read_ranges(reply, c);
        if (r < 0)
                return ctl_error(r, "Failed to parse the memory context of '%s': %m", name);
        c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        return c->fd < 0 ? ctl_error(-errno, "Failed to keep the RAM fd: %m") : 0;
}

static void unsubscribe(sd_bus *bus, const char *path) {
        /* Leaving the bus ends it too; this just says we are done now. */
        (void) sd_bus_call_method(bus, VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, "UnsubscribeMemctx", NULL, NULL,
                                  NULL);
}

/* size bytes of the RAM fd from offset, appended to out. */
static int copy_out(int ram_fd, uint64_t offset, uint64_t size, int out, uint8_t *buf) {
        while (size > 0) {
                ssize_t n = pread(ram_fd, buf, MIN((uint64_t) COPY_BUFFER_SIZE, size), (off_t) offset);
                int r;

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO; /* the RAM region is shorter than vmsigd said */
                r = loop_write(out, buf, (size_t) n);
                if (r < 0)
                        return r;
                offset += (uint64_t) n;
                size -= (uint64_t) n;
        }
        return 0;
}

static const memctx_range *find_range(const memctx *c, uint64_t gpa) {
        for (size_t i = 0; i < c->n_ranges; i++)
                if (gpa >= c->ranges[i].gpa && gpa - c->ranges[i].gpa < c->ranges[i].size)
                        return &c->ranges[i];
        return NULL;
}

/* A --range, through the guest-physical map: it may span several RAM
 * ranges, as long as there is no hole. */
static int save_range(memctx *c, const ctl_range *want, int out, uint8_t *buf) {
        uint64_t gpa = want->gpa, left = want->size;

        while (left > 0) {
                const memctx_range *m = find_range(c, gpa);
                uint64_t n;
                int r;

                if (!m)
                        return ctl_error(-ERANGE, "0x%" PRIx64 " is not guest RAM.", gpa);
                n = MIN(left, m->size - (gpa - m->gpa));
                r = copy_out(c->fd, m->offset + (gpa - m->gpa), n, out, buf);
                if (r < 0)
                        return ctl_error(r, "Failed to save 0x%" PRIx64 "..0x%" PRIx64 ": %m", gpa, gpa + n - 1);
                gpa += n;
                left -= n;
                c->saved += n;
        }
        return 0;
}

static int save_ram(memctx *c) {
        _cleanup_free_ uint8_t *buf = malloc(COPY_BUFFER_SIZE);
        _cleanup_close_ int out = -1;
        int r = 0;

        if (!buf)
                return ctl_error(-ENOMEM, "Out of memory.");
        /* Guest RAM may hold secrets: the file is for its owner only. */
        out = open(arg.save, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600);
        if (out < 0)
                return ctl_error(-errno, "Failed to create '%s': %m", arg.save);
        if (arg.n_ranges == 0) {
                /* The whole region, as the fd holds it. */
                r = copy_out(c->fd, 0, c->size, out, buf);
                if (r < 0)
                        return ctl_error(r, "Failed to save guest RAM to '%s': %m", arg.save);
                c->saved = c->size;
        }
        for (size_t i = 0; r >= 0 && i < arg.n_ranges; i++)
                r = save_range(c, &arg.ranges[i], out, buf);
        if (r >= 0 && fsync(out) < 0 && errno != EINVAL)
                r = ctl_error(-errno, "Failed to write '%s': %m", arg.save);
        return r;
}

static void print_text(const char *name, const memctx *c) {
        char bytes[CTL_BYTES_MAX];

        printf("%*s: %s\n", LABEL_WIDTH, "Endpoint", name);
        printf("%*s: %" PRIu64 "\n", LABEL_WIDTH, "Epoch", c->epoch);
        if (c->dtb)
                printf("%*s: 0x%" PRIx64 "\n", LABEL_WIDTH, "DTB", c->dtb);
        else
                printf("%*s: none yet\n", LABEL_WIDTH, "DTB");
        printf("%*s: %s (%" PRIu64 " bytes)\n", LABEL_WIDTH, "Size", ctl_format_bytes(bytes, c->size), c->size);
        for (size_t i = 0; i < c->n_ranges; i++) {
                const memctx_range *m = &c->ranges[i];
                printf("%*s: 0x%" PRIx64 "-0x%" PRIx64 " (%s) at fd offset 0x%" PRIx64 "\n", LABEL_WIDTH,
                       i == 0 ? "Ranges" : "", m->gpa, m->gpa + m->size - 1, ctl_format_bytes(bytes, m->size),
                       m->offset);
        }
        if (arg.save)
                printf("%*s: %" PRIu64 " bytes to %s\n", LABEL_WIDTH, "Saved", c->saved, arg.save);
}

static void print_json(const char *name, const memctx *c) {
        json_writer w;

        json_init(&w, stdout, arg.json == CTL_JSON_PRETTY);
        json_object_begin(&w);
        json_field_string(&w, "endpoint", name);
        json_field_uint(&w, "epoch", c->epoch);
        json_field_uint(&w, "dtb", c->dtb);
        json_field_uint(&w, "size", c->size);
        json_key(&w, "ranges");
        json_array_begin(&w);
        for (size_t i = 0; i < c->n_ranges; i++) {
                json_object_begin(&w);
                json_field_uint(&w, "gpa", c->ranges[i].gpa);
                json_field_uint(&w, "size", c->ranges[i].size);
                json_field_uint(&w, "offset", c->ranges[i].offset);
                json_object_end(&w);
        }
        json_array_end(&w);
        if (arg.save) {
                json_key(&w, "saved");
                json_object_begin(&w);
                json_field_string(&w, "file", arg.save);
                json_field_uint(&w, "bytes", c->saved);
                json_object_end(&w);
        }
        json_object_end(&w);
        fputc('\n', stdout);
}

int verb_dump_memctx(int argc, char **argv) {
        _cleanup_free_ char *path = NULL;
        const char *name = argv[1];
        memctx c = { .fd = -1 };
        sd_bus *bus;
        int r;

        r = ctl_open_endpoint(name, true, &bus, &path);
        if (r >= 0)
                r = subscribe(bus, name, path, &c);
        if (r >= 0 && arg.save)
                r = save_ram(&c);
        if (r >= 0) {
                ctl_pager_open();
                if (arg.json)
                        print_json(name, &c);
                else
                        print_text(name, &c);
        }
        if (c.fd >= 0)
                unsubscribe(bus, path);
        safe_close(c.fd);
        free(c.ranges);
        return r;
}
