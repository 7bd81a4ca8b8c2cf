/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* screenshot: the current frame of an endpoint's screen (SubscribeFrames),
 * saved as PNG with libpng. */
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl-json.h"
#include "ctl-util.h"

#define FRAME_FORMAT "XRGB8888"

typedef struct frame {
        int fd;
        uint32_t width, height, stride;
        const char *format;
        uint64_t seq;
        const uint8_t *pixels;
        size_t size; /* mapped */
} frame;

static int subscribe(sd_bus *bus, const char *name, const char *path, sd_bus_message **ret_reply, frame *f) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, "SubscribeFrames", &error,
                               ret_reply, NULL);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to get the screen of '%s'", name);
        r = sd_bus_message_read(*ret_reply, "huuust", &f->fd, &f->width, &f->height, &f->stride, &f->format,
                                &f->seq);
        return r < 0 ? ctl_error(r, "Failed to parse the frame of '%s': %m", name) : 0;
}

static void unsubscribe(sd_bus *bus, const char *path) {
        /* Leaving the bus ends it too; this just says we are done now. */
        (void) sd_bus_call_method(bus, VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, "UnsubscribeFrames", NULL, NULL,
                                  NULL);
}

/* The frame's pixels, after checking that the fd holds what the reply says. */
static int map_frame(const char *name, frame *f) {
        struct stat st;
        void *p;

        if (strcmp(f->format, FRAME_FORMAT) != 0)
                return ctl_error(-EPROTO, "The frame of '%s' is in format '%s', not %s.", name, f->format,
                                 FRAME_FORMAT);
        if (f->width == 0 || f->height == 0 || f->stride / 4 < f->width)
                return ctl_error(-EPROTO, "The frame of '%s' has a bad geometry: %ux%u, stride %u.", name, f->width,
                                 f->height, f->stride);
        if (fstat(f->fd, &st) < 0)
                return ctl_error(-errno, "Failed to inspect the frame fd: %m");
        f->size = (size_t) f->stride * f->height;
        if ((uint64_t) st.st_size < f->size)
                return ctl_error(-EPROTO, "The frame fd of '%s' holds %lld bytes, not %zu.", name,
                                 (long long) st.st_size, f->size);
        p = mmap(NULL, f->size, PROT_READ, MAP_SHARED, f->fd, 0);
        if (p == MAP_FAILED)
                return ctl_error(-errno, "Failed to map the frame: %m");
        f->pixels = p;
        return 0;
}

static void on_png_error(png_structp png, png_const_charp message) {
        fprintf(stderr, "libpng: %s\n", message);
        png_longjmp(png, 1);
}

/* XRGB8888 (bytes B, G, R, X) to 8-bit RGB: libpng swaps and strips. */
static int encode_png(FILE *out, const frame *f) {
        png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, on_png_error, NULL);
        png_infop info = png ? png_create_info_struct(png) : NULL;
        int r = -ENOMEM;

        if (!info)
                goto done;
        r = -EIO;
        if (setjmp(png_jmpbuf(png)))
                goto done;
        png_init_io(png, out);
        png_set_IHDR(png, info, f->width, f->height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        png_set_bgr(png);
        png_set_filler(png, 0, PNG_FILLER_AFTER);
        for (uint32_t y = 0; y < f->height; y++)
                png_write_row(png, f->pixels + (size_t) y * f->stride);
        png_write_end(png, NULL);
        r = 0;
done:
        png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
        return r;
}

/* Where the PNG goes, opened before anything is asked of vmsigd, so that a
 * file that cannot be written fails before a password is typed. A file we
 * created is removed again if no frame comes; one that existed is left as
 * it was until the PNG is ready. "-" is standard output. */
typedef struct output {
        const char *file;
        int fd;
        bool created;
        bool to_stdout;
} output;

static int output_open(output *o, const char *file) {
        *o = (output) { .file = file, .fd = -1 };
        if (strcmp(file, "-") == 0) {
                if (isatty(STDOUT_FILENO))
                        return ctl_error(-EINVAL, "Refusing to write a PNG to a terminal: redirect standard output.");
                o->to_stdout = true;
                o->fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
                return o->fd < 0 ? ctl_error(-errno, "Failed to use standard output: %m") : 0;
        }
        /* The screen may show secrets: a new file is for its owner only. */
        o->fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
        o->created = o->fd >= 0;
        if (o->fd < 0 && errno == EEXIST)
                o->fd = open(file, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (o->fd < 0)
                return ctl_error(-errno, "Failed to create '%s': %m", file);
        return 0;
}

/* After a failure: a file we created goes, an older one stays. */
static void output_abandon(output *o) {
        if (o->created)
                (void) unlink(o->file);
        o->fd = safe_close(o->fd);
}

static int save_png(output *o, const frame *f) {
        FILE *out;
        int r;

        if (!o->to_stdout && ftruncate(o->fd, 0) < 0)
                return ctl_error(-errno, "Failed to write '%s': %m", o->file);
        out = fdopen(o->fd, "w");
        if (!out)
                return ctl_error(-errno, "Failed to open '%s': %m", o->file);
        o->fd = -1;
        r = encode_png(out, f);
        if (fflush(out) != 0 && r >= 0)
                r = -errno;
        if (fclose(out) != 0 && r >= 0)
                r = -errno;
        return r < 0 ? ctl_error(r, "Failed to write '%s': %m", o->file) : 0;
}

/* With the PNG on standard output, what was saved is said on standard
 * error. */
static void print_result(const char *name, const output *o, const frame *f) {
        FILE *where = o->to_stdout ? stderr : stdout;
        json_writer w;

        /* Informational, unless asked for as JSON. */
        if (!arg.json && arg.quiet)
                return;
        if (!arg.json) {
                fprintf(where, "Saved frame %llu of '%s' (%ux%u) to %s\n", (unsigned long long) f->seq, name, f->width,
                        f->height, o->to_stdout ? "standard output" : o->file);
                return;
        }
        json_init(&w, where, arg.json == CTL_JSON_PRETTY);
        json_object_begin(&w);
        json_field_string(&w, "endpoint", name);
        json_field_string(&w, "file", o->file);
        json_field_uint(&w, "seq", f->seq);
        json_field_uint(&w, "width", f->width);
        json_field_uint(&w, "height", f->height);
        json_object_end(&w);
        fputc('\n', where);
}

int verb_screenshot(int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = NULL;
        const char *name = argv[1], *file = argv[2];
        frame f = { .fd = -1 };
        output o;
        sd_bus *bus;
        int r;

        r = output_open(&o, file);
        if (r >= 0)
                r = ctl_open_endpoint(name, true, &bus, &path);
        if (r >= 0)
                r = subscribe(bus, name, path, &reply, &f);
        if (r >= 0)
                r = map_frame(name, &f);
        if (r >= 0)
                r = save_png(&o, &f);
        if (r >= 0)
                print_result(name, &o, &f);
        else
                output_abandon(&o);
        if (f.pixels)
                munmap((void *) f.pixels, f.size);
        if (reply)
                unsubscribe(bus, path);
        return r;
}
