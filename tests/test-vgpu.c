/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libvmsig-vgpu in process, against a fake display adapter that counts its
 * captures and the stub backend's display: decoding RAW, PPM and PNG, bad
 * images, sealed frames, unchanged frames, retention, the rate, demand and
 * an endpoint that goes while a capture is in flight. */
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "config-file.h"
#include "stub.h"
#include "vmsig-core.h"
#include "vmsig-endpoint.h"
#include "vmsig-vgpu.h"
/* Last: it brings GLib, whose MIN and MAX macro.h would redefine. */
#include "event-loop.h"
#include "vt-util.h"

/* --- images ------------------------------------------------------------------ */

typedef struct image {
        vmsig_image_encoding encoding;
        GByteArray *data;
        uint32_t width, height, stride; /* RAW */
} image;

/* The pixel at (x, y) of pattern n, as 0x00RRGGBB. */
static uint32_t pattern(uint32_t n, uint32_t x, uint32_t y) {
        return ((x * 7 + n * 31) & 0xff) << 16 | ((y * 13 + n) & 0xff) << 8 | ((x ^ y ^ n) & 0xff);
}

static void image_clear(image *i) {
        if (i->data)
                g_byte_array_unref(i->data);
        *i = (image) {};
}

/* RAW rows of stride bytes; the padding holds garbage that must not count. */
static void image_raw(image *i, uint32_t w, uint32_t h, uint32_t stride, uint32_t n) {
        image_clear(i);
        *i = (image) { .encoding = VMSIG_IMAGE_RAW, .data = g_byte_array_new(), .width = w, .height = h, .stride = stride };
        g_byte_array_set_size(i->data, stride * h);
        memset(i->data->data, 0xa5 + n, i->data->len);
        for (uint32_t y = 0; y < h; y++)
                for (uint32_t x = 0; x < w; x++) {
                        uint32_t p = pattern(n, x, y);
                        memcpy(i->data->data + y * stride + x * 4, &p, 4);
                }
}

static void image_ppm_header(image *i, const char *header) {
        image_clear(i);
        *i = (image) { .encoding = VMSIG_IMAGE_PPM, .data = g_byte_array_new() };
        g_byte_array_append(i->data, (const guint8 *) header, strlen(header));
}

static void image_ppm(image *i, uint32_t w, uint32_t h, uint32_t n) {
        g_autofree char *header = g_strdup_printf("P6\n# a comment\n%u %u\n255\n", w, h);

        image_ppm_header(i, header);
        for (uint32_t y = 0; y < h; y++)
                for (uint32_t x = 0; x < w; x++) {
                        uint32_t p = pattern(n, x, y);
                        guint8 rgb[3] = { p >> 16, p >> 8, p };
                        g_byte_array_append(i->data, rgb, 3);
                }
}

static void image_png(image *i, uint32_t w, uint32_t h, uint32_t n) {
        g_autofree guint8 *rgb = g_malloc((size_t) w * h * 3);
        png_image png = { .version = PNG_IMAGE_VERSION, .width = w, .height = h, .format = PNG_FORMAT_RGB };
        png_alloc_size_t size = 0;

        for (uint32_t y = 0; y < h; y++)
                for (uint32_t x = 0; x < w; x++) {
                        uint32_t p = pattern(n, x, y);
                        guint8 *o = rgb + ((size_t) y * w + x) * 3;
                        o[0] = p >> 16, o[1] = p >> 8, o[2] = p;
                }
        g_assert_true(png_image_write_to_memory(&png, NULL, &size, 0, rgb, 0, NULL));
        image_clear(i);
        *i = (image) { .encoding = VMSIG_IMAGE_PNG, .data = g_byte_array_sized_new(size) };
        g_byte_array_set_size(i->data, size);
        g_assert_true(png_image_write_to_memory(&png, i->data->data, &size, 0, rgb, 0, NULL));
        g_byte_array_set_size(i->data, size);
}

/* The image as a display adapter hands it over: in an fd of its own. */
static int image_fd(const image *i) {
        int fd = memfd_create("test-image", MFD_CLOEXEC);

        g_assert_cmpint(fd, >=, 0);
        if (i->data->len > 0)
                g_assert_cmpint(write(fd, i->data->data, i->data->len), ==, (ssize_t) i->data->len);
        return fd;
}

static int decode(const image *i, vmsig_frame *ret) {
        vmsig_display_image di = { .fd = image_fd(i), .size = i->data->len, .encoding = i->encoding,
                                   .width = i->width, .height = i->height, .stride = i->stride };
        int r = vmsig_vgpu_frame_from_image(&di, ret);

        close(di.fd);
        return r;
}

/* The frame shows pattern n. */
static void assert_pixels(const vmsig_frame *fr, uint32_t w, uint32_t h, uint32_t n) {
        const uint8_t *p;

        g_assert_cmpuint(fr->width, ==, w);
        g_assert_cmpuint(fr->height, ==, h);
        g_assert_cmpuint(fr->stride, ==, w * 4);
        g_assert_cmpstr(fr->format, ==, VMSIG_VGPU_FORMAT_XRGB8888);
        g_assert_cmpint(lseek(fr->fd, 0, SEEK_END), ==, (off_t) fr->stride * h);
        p = mmap(NULL, (size_t) fr->stride * h, PROT_READ, MAP_SHARED, fr->fd, 0);
        g_assert_true(p != MAP_FAILED);
        for (uint32_t y = 0; y < h; y++)
                for (uint32_t x = 0; x < w; x++) {
                        const uint8_t *px = p + (size_t) y * fr->stride + x * 4;
                        uint32_t want = pattern(n, x, y);
                        /* Bytes B, G, R, X. */
                        g_assert_cmphex(px[0], ==, want & 0xff);
                        g_assert_cmphex(px[1], ==, (want >> 8) & 0xff);
                        g_assert_cmphex(px[2], ==, (want >> 16) & 0xff);
                        g_assert_cmphex(px[3], ==, 0xff);
                }
        munmap((void *) p, (size_t) fr->stride * h);
}

/* --- decoding ------------------------------------------------------------------- */

static void test_decode_formats(void) {
        image i = {};
        vmsig_frame a, b, c;

        image_raw(&i, 37, 11, 37 * 4 + 12, 3);
        g_assert_cmpint(decode(&i, &a), ==, 0);
        assert_pixels(&a, 37, 11, 3);
        image_ppm(&i, 37, 11, 3);
        g_assert_cmpint(decode(&i, &b), ==, 0);
        assert_pixels(&b, 37, 11, 3);
        image_png(&i, 37, 11, 3);
        g_assert_cmpint(decode(&i, &c), ==, 0);
        assert_pixels(&c, 37, 11, 3);
        /* The same pixels hash the same whatever the encoding. */
        g_assert_cmphex(a.hash, ==, b.hash);
        g_assert_cmphex(a.hash, ==, c.hash);
        g_assert_cmpuint(a.seq, ==, 0);
        g_assert_cmpuint(a.timestamp, ==, 0);
        image_png(&i, 37, 11, 4);
        close(c.fd);
        g_assert_cmpint(decode(&i, &c), ==, 0);
        g_assert_cmphex(a.hash, !=, c.hash);
        close(a.fd);
        close(b.fd);
        close(c.fd);
        image_clear(&i);
}

static uint32_t crc32_of(const guint8 *p, size_t n) {
        uint32_t c = 0xffffffffu;

        for (size_t i = 0; i < n; i++) {
                c ^= p[i];
                for (int k = 0; k < 8; k++)
                        c = (c >> 1) ^ (0xedb88320u & -(c & 1));
        }
        return ~c;
}

static void pad(image *i, size_t n) {
        g_autofree guint8 *zero = g_malloc0(n);

        g_byte_array_append(i->data, zero, n);
}

/* Bad PPMs: numbers 0 to 10. */
static bool bad_ppm(unsigned n, image *i, int *ret_error) {
        switch (n) {
        case 0: /* truncated PPM */
                image_ppm(i, 8, 8, 1);
                g_byte_array_set_size(i->data, i->data->len - 1);
                return true;
        case 1: /* PPM with a byte too many */
                image_ppm(i, 8, 8, 1);
                g_byte_array_append(i->data, (const guint8 *) "x", 1);
                return true;
        case 2:
                image_ppm_header(i, "P6\n8 8\n65535\n");
                pad(i, 8 * 8 * 6);
                return true;
        case 3:
                image_ppm_header(i, "P6\n8 8\n127\n");
                pad(i, 8 * 8 * 3);
                return true;
        case 4:
                image_ppm_header(i, "P3\n1 1\n255\n0 0 0\n");
                return true;
        case 5:
                image_ppm_header(i, "P6\n0 8\n255\n");
                return true;
        case 6:
                image_ppm_header(i, "P6\n-8 8\n255\n");
                return true;
        case 7:
                image_ppm_header(i, "P6\n8 8 255");
                return true;
        case 8: /* huge, with nothing behind the header */
                image_ppm_header(i, "P6\n100000 100000\n255\n");
                *ret_error = -EFBIG;
                return true;
        case 9:
                image_ppm_header(i, "P6\n99999999999999999999 1\n255\n");
                *ret_error = -EFBIG;
                return true;
        case 10:
                image_ppm_header(i, "");
                return true;
        default:
                return false;
        }
}

/* Bad PNGs: 11 to 14. */
static bool bad_png(unsigned n, image *i, int *ret_error) {
        switch (n) {
        case 11: /* truncated PNG */
                image_png(i, 16, 16, 1);
                g_byte_array_set_size(i->data, i->data->len / 2);
                return true;
        case 12: { /* PNG with its dimensions overwritten: 65536 x 65536 */
                static const guint8 big[8] = { 0, 1, 0, 0, 0, 1, 0, 0 };
                image_png(i, 16, 16, 1);
                memcpy(i->data->data + 16, big, sizeof big);
                /* With a valid CRC, so that only the size is wrong. */
                uint32_t crc = GUINT32_TO_BE(crc32_of(i->data->data + 12, 17));
                memcpy(i->data->data + 29, &crc, 4);
                *ret_error = -EFBIG;
                return true;
        }
        case 13: /* PNG with a corrupt header CRC */
                image_png(i, 16, 16, 1);
                i->data->data[20] ^= 0xff;
                return true;
        case 14: /* not a PNG */
                image_ppm(i, 4, 4, 1);
                i->encoding = VMSIG_IMAGE_PNG;
                return true;
        default:
                return false;
        }
}

/* Bad RAW images: 15 to 19. */
static bool bad_raw(unsigned n, image *i, int *ret_error) {
        switch (n) {
        case 15: /* RAW stride below a row */
                image_raw(i, 8, 8, 8 * 4, 1);
                i->stride = 8 * 4 - 1;
                return true;
        case 16: /* RAW shorter than its rows */
                image_raw(i, 8, 8, 8 * 4, 1);
                g_byte_array_set_size(i->data, i->data->len - 1);
                return true;
        case 17:
                image_raw(i, 8, 8, 8 * 4, 1);
                i->width = 9000, i->height = 9000;
                *ret_error = -EFBIG;
                return true;
        case 18:
                image_raw(i, 8, 8, 8 * 4, 1);
                i->height = 0;
                return true;
        case 19:
                image_raw(i, 8, 8, 8 * 4, 1);
                i->encoding = _VMSIG_IMAGE_ENCODING_MAX;
                return true;
        default:
                return false;
        }
}

/* Makes bad image number n into i, with the error it must give; false past
 * the last. */
static bool bad_image(unsigned n, image *i, int *ret_error) {
        *ret_error = -EBADMSG;
        return bad_ppm(n, i, ret_error) || bad_png(n, i, ret_error) || bad_raw(n, i, ret_error);
}

static void test_decode_malformed(void) {
        image i = {};
        int error;

        for (unsigned n = 0; bad_image(n, &i, &error); n++) {
                vmsig_frame fr = { .fd = -1 };
                g_test_message("bad image %u", n);
                g_assert_cmpint(decode(&i, &fr), ==, error);
                g_assert_cmpint(fr.fd, ==, -1);
        }
        image_clear(&i);
}

static void test_sealed(void) {
        g_autofree char *path = NULL;
        image i = {};
        vmsig_frame fr;
        int fd;

        image_raw(&i, 16, 16, 64, 1);
        g_assert_cmpint(decode(&i, &fr), ==, 0);
        g_assert_cmpint(fcntl(fr.fd, F_GET_SEALS), ==, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
        g_assert_cmpint(write(fr.fd, "x", 1), <, 0);
        g_assert_cmpint(pwrite(fr.fd, "x", 1, 0), <, 0);
        g_assert_cmpint(ftruncate(fr.fd, 0), <, 0);
        g_assert_cmpint(ftruncate(fr.fd, 1 << 20), <, 0);
        g_assert_true(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fr.fd, 0) == MAP_FAILED);
        g_assert_cmpint(fcntl(fr.fd, F_ADD_SEALS, 0), <, 0);
        /* A new open file description is no way around the seals. */
        path = g_strdup_printf("/proc/self/fd/%d", fr.fd);
        fd = open(path, O_RDWR | O_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(write(fd, "x", 1), <, 0);
        g_assert_true(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        close(fd);
        assert_pixels(&fr, 16, 16, 1);
        close(fr.fd);
        image_clear(&i);
}

/* --- the fake display ------------------------------------------------------------ */

typedef struct Fixture Fixture;

typedef struct request {
        vmsig_display_done_fn done;
        void *userdata;
} request;

/* Counters live in the fixture, so they outlive the adapter. */
struct Fixture {
        VT_CORE_MEMBERS;
        vmsig_vgpu *vgpu;
        image image;
        uint64_t delay_usec; /* of every capture */
        unsigned started, in_flight, max_in_flight;
        GQueue requests;
        sd_event_source *complete;
        bool adapter_freed;
        vmsig_subscriber *sub;
        GArray *frames; /* vmsig_frame, fds dup'ed */
        unsigned replays;
};

static void fake_finish(Fixture *f, request *q, int error) {
        vmsig_result res = { .error = error, .message = error < 0 ? "test" : NULL };
        vmsig_display_image di = { .fd = -1 };

        f->in_flight--;
        if (error == 0) {
                di = (vmsig_display_image) { .fd = image_fd(&f->image), .size = f->image.data->len,
                                             .encoding = f->image.encoding, .width = f->image.width,
                                             .height = f->image.height, .stride = f->image.stride };
        }
        q->done(&res, error == 0 ? &di : NULL, q->userdata);
        if (di.fd >= 0)
                close(di.fd);
        g_free(q);
}

static int on_fake_complete(sd_event_source *s, uint64_t usec, void *userdata) {
        Fixture *f = userdata;
        request *q = g_queue_pop_head(&f->requests);

        if (q)
                fake_finish(f, q, 0);
        if (!g_queue_is_empty(&f->requests))
                g_assert_cmpint(sd_event_source_set_enabled(f->complete, SD_EVENT_ONESHOT), >=, 0);
        return 0;
}

static int fake_capture(void *data, vmsig_display_done_fn done, void *userdata) {
        Fixture *f = data;
        request *q = g_new0(request, 1);
        uint64_t now;

        *q = (request) { done, userdata };
        g_queue_push_tail(&f->requests, q);
        f->started++;
        f->in_flight++;
        f->max_in_flight = MAX(f->max_in_flight, f->in_flight);
        g_assert_cmpint(sd_event_now(f->event, CLOCK_MONOTONIC, &now), >=, 0);
        if (!f->complete)
                g_assert_cmpint(sd_event_add_time(f->event, &f->complete, CLOCK_MONOTONIC, now + f->delay_usec, 1,
                                                  on_fake_complete, f), >=, 0);
        else
                g_assert_cmpint(sd_event_source_set_time(f->complete, now + f->delay_usec), >=, 0);
        g_assert_cmpint(sd_event_source_set_enabled(f->complete, SD_EVENT_ONESHOT), >=, 0);
        return 0;
}

/* As the endpoint contract asks: whatever is pending ends with -ENODEV. */
static void fake_detach(void *data, vmsig_endpoint *ep) {
        Fixture *f = data;
        request *q;

        while ((q = g_queue_pop_head(&f->requests)))
                fake_finish(f, q, -ENODEV);
        f->complete = sd_event_source_disable_unref(f->complete);
}

static void fake_free(void *data) {
        Fixture *f = data;

        f->adapter_freed = true;
}

static const vmsig_display_ops fake_display_ops = {
        .base = { .detach = fake_detach, .free = fake_free },
        .capture = fake_capture,
};

static vmsig_endpoint *attach_fake(Fixture *f, const char *name, bool display) {
        vmsig_endpoint_spec spec = { .name = name, .initial_state = VMSIG_STATE_RUNNING };
        vmsig_endpoint *ep;

        if (display)
                spec.adapters[VMSIG_ADAPTER_DISPLAY] = (vmsig_adapter) { &fake_display_ops.base, f };
        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &spec, &ep), ==, 0);
        return ep;
}

static void run_for(Fixture *f, uint64_t usec) {
        vt_event_run_for(f->event, usec);
}

/* Runs the loop until cond holds; timing-insensitive, so that it also
 * passes under valgrind. */
#define WAIT(f, cond)                                                                     \
        do {                                                                              \
                for (unsigned _n = 0; !(cond); _n++) {                                    \
                        g_assert_cmpuint(_n, <, 2000);                                    \
                        g_assert_cmpint(sd_event_run((f)->event, 10000), >=, 0);          \
                }                                                                         \
        } while (0)

static int on_frame(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        Fixture *f = userdata;
        vmsig_frame fr;

        g_assert_cmpuint(d->event->kind, ==, vmsig_vgpu_kind(f->vgpu));
        g_assert_cmpuint(d->event->payload_size, ==, sizeof fr);
        memcpy(&fr, d->event->payload, sizeof fr);
        fr.fd = fcntl(fr.fd, F_DUPFD_CLOEXEC, 3);
        g_assert_cmpint(fr.fd, >=, 0);
        g_array_append_val(f->frames, fr);
        if (d->replay)
                f->replays++;
        return VMSIG_DELIVER_OK;
}

static int on_other(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        return VMSIG_DELIVER_OK;
}

static void subscribe(Fixture *f, vmsig_id endpoint) {
        vmsig_filter filter = { .kinds = VMSIG_KIND_MASK(vmsig_vgpu_kind(f->vgpu)), .endpoint = endpoint };

        g_assert_null(f->sub);
        g_assert_cmpint(vmsig_core_subscribe(f->core, &filter, 0, on_frame, f, &f->sub), ==, 0);
}

static void unsubscribe(Fixture *f) {
        f->sub = vmsig_subscriber_free(f->sub);
}

static vmsig_vgpu_stats stats(Fixture *f) {
        vmsig_vgpu_stats st;

        vmsig_vgpu_get_stats(f->vgpu, &st);
        return st;
}

static const vmsig_frame *last_frame(Fixture *f) {
        g_assert_cmpuint(f->frames->len, >, 0);
        return &g_array_index(f->frames, vmsig_frame, f->frames->len - 1);
}

static void fixture_setup(Fixture *f, gconstpointer data) {
        const double *rate = data;
        vmsig_vgpu_config config = { .rate = rate ? *rate : 20 };

        vt_core_start(&f->event, &f->core);
        g_assert_cmpint(vmsig_vgpu_new(f->core, &config, &f->vgpu), ==, 0);
        f->frames = g_array_new(false, true, sizeof(vmsig_frame));
        image_raw(&f->image, 32, 16, 128, 1);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        unsubscribe(f);
        f->vgpu = vmsig_vgpu_free(f->vgpu);
        vmsig_core_free(f->core);
        f->complete = sd_event_source_disable_unref(f->complete);
        g_assert_true(g_queue_is_empty(&f->requests));
        for (guint i = 0; i < f->frames->len; i++)
                close(g_array_index(f->frames, vmsig_frame, i).fd);
        g_array_unref(f->frames);
        image_clear(&f->image);
        sd_event_unref(f->event);
}

/* --- capturing ------------------------------------------------------------------- */

static void test_kind(Fixture *f, gconstpointer data) {
        vmsig_vgpu *other = NULL;
        vmsig_vgpu_config bad = { .rate = VMSIG_VGPU_RATE_MAX + 1 };

        g_assert_cmpint(vmsig_core_find_kind(f->core, VMSIG_VGPU_KIND_NAME), ==, (int) vmsig_vgpu_kind(f->vgpu));
        g_assert_cmpint(vmsig_vgpu_new(f->core, NULL, &other), ==, -EEXIST);
        g_assert_null(other);
        g_assert_cmpint(vmsig_vgpu_new(f->core, &bad, &other), ==, -ERANGE);
        g_assert_cmpint(vmsig_vgpu_set_rate(f->vgpu, -1), ==, -ERANGE);
        g_assert_cmpint(vmsig_vgpu_set_rate(f->vgpu, VMSIG_VGPU_RATE_MAX + 1), ==, -ERANGE);
}

static void test_frames(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_fake(f, "alpha", true);
        vmsig_id id = vmsig_endpoint_get_id(ep);
        struct timespec ts;
        uint64_t before;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        before = (uint64_t) ts.tv_sec * 1000000u + ts.tv_nsec / 1000;
        subscribe(f, id);
        WAIT(f, f->frames->len == 1);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        const vmsig_frame *fr = last_frame(f);
        assert_pixels(fr, 32, 16, 1);
        g_assert_cmpuint(fr->seq, ==, 1);
        g_assert_cmpuint(fr->timestamp, >=, before);
        g_assert_cmpuint(fr->timestamp, <=, (uint64_t) ts.tv_sec * 1000000u + ts.tv_nsec / 1000);
        g_assert_cmpint(fcntl(fr->fd, F_GET_SEALS), ==, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);

        /* The same picture again: captured, not published. */
        WAIT(f, stats(f).unchanged >= 2);
        g_assert_cmpuint(f->frames->len, ==, 1);
        g_assert_cmpuint(stats(f).published, ==, 1);
        g_assert_cmpuint(stats(f).captures, ==, stats(f).published + stats(f).unchanged);

        /* A new one, in another encoding. */
        image_ppm(&f->image, 20, 10, 2);
        WAIT(f, f->frames->len == 2);
        assert_pixels(last_frame(f), 20, 10, 2);
        g_assert_cmpuint(last_frame(f)->seq, ==, 2);
        image_png(&f->image, 20, 10, 3);
        WAIT(f, f->frames->len == 3);
        assert_pixels(last_frame(f), 20, 10, 3);
        g_assert_cmpuint(last_frame(f)->seq, ==, 3);
        g_assert_cmpuint(stats(f).errors, ==, 0);
        g_assert_cmpuint(stats(f).active, ==, 1);
}

static void test_malformed(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_fake(f, "alpha", true);
        uint64_t errors = 0;
        int error;

        subscribe(f, vmsig_endpoint_get_id(ep));
        for (unsigned n = 0; bad_image(n, &f->image, &error); n++) {
                /* A capture that started before the image changed
                 * completes with the new one: wait for one more. */
                unsigned started = f->started;
                WAIT(f, f->started > started + 1 && stats(f).errors > errors + 1);
                errors = stats(f).errors;
        }
        g_assert_cmpuint(f->frames->len, ==, 0);
        g_assert_cmpuint(stats(f).published, ==, 0);
        g_assert_null(vmsig_core_get_retained(f->core, vmsig_endpoint_get_id(ep), vmsig_vgpu_kind(f->vgpu), 0));
        /* And a good one after all that. */
        image_raw(&f->image, 8, 8, 32, 5);
        WAIT(f, f->frames->len == 1);
        assert_pixels(last_frame(f), 8, 8, 5);
        g_assert_cmpuint(last_frame(f)->seq, ==, 1);
}

static void test_replay(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_fake(f, "alpha", true);
        vmsig_id id = vmsig_endpoint_get_id(ep);
        uint64_t hash;

        subscribe(f, id);
        WAIT(f, f->frames->len == 1);
        hash = last_frame(f)->hash;
        unsubscribe(f);
        WAIT(f, f->in_flight == 0);
        run_for(f, 100000);

        /* A late subscriber gets the frame at once, before any capture. */
        unsigned started = f->started;
        subscribe(f, 0);
        vmsig_core_flush(f->core);
        g_assert_cmpuint(f->frames->len, ==, 2);
        g_assert_cmpuint(f->replays, ==, 1);
        g_assert_cmpuint(f->started, ==, started);
        g_assert_cmphex(last_frame(f)->hash, ==, hash);
        g_assert_cmpuint(last_frame(f)->seq, ==, 1);
        assert_pixels(last_frame(f), 32, 16, 1);
        /* Unchanged: the capture this subscriber started publishes nothing. */
        WAIT(f, f->started > started && f->in_flight == 0);
        g_assert_cmpuint(f->frames->len, ==, 2);
}

static const double rate_5 = 5;

static void test_rate(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_fake(f, "alpha", true);

        /* Slow captures, so that a second one would overlap if allowed. */
        f->delay_usec = 150000;
        subscribe(f, vmsig_endpoint_get_id(ep));
        run_for(f, 1000000);
        g_test_message("%u captures in 1 s at rate 5", f->started);
        g_assert_cmpuint(f->started, <=, 6);
        g_assert_cmpuint(f->started, >=, 3);
        g_assert_cmpuint(f->max_in_flight, ==, 1);

        /* Captures slower than the interval: the next starts when the last
         * one is back, never two at a time. */
        f->delay_usec = 300000;
        unsigned started = f->started;
        run_for(f, 1000000);
        g_assert_cmpuint(f->started - started, <=, 4);
        g_assert_cmpuint(f->max_in_flight, ==, 1);

        /* A new rate takes effect on the next capture. */
        f->delay_usec = 0;
        g_assert_cmpint(vmsig_vgpu_set_rate(f->vgpu, 1), ==, 0);
        run_for(f, 400000);
        started = f->started;
        run_for(f, 1000000);
        g_assert_cmpuint(f->started - started, <=, 2);
}

static void test_demand(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_fake(f, "alpha", true);
        vmsig_endpoint *plain = attach_fake(f, "plain", false);
        vmsig_subscriber *other = NULL;
        vmsig_filter every_kind = { .endpoint = vmsig_endpoint_get_id(ep) };
        vmsig_filter other_endpoint = { .kinds = VMSIG_KIND_MASK(vmsig_vgpu_kind(f->vgpu)),
                                        .endpoint = vmsig_endpoint_get_id(plain) };

        /* Nobody asks: no capture, no timer. */
        run_for(f, 300000);
        g_assert_cmpuint(f->started, ==, 0);
        g_assert_cmpuint(stats(f).active, ==, 0);
        /* Subscribers of every kind, or of another endpoint, do not ask
         * for these frames either. */
        g_assert_cmpint(vmsig_core_subscribe(f->core, &every_kind, 0, on_other, f, &other), ==, 0);
        run_for(f, 100000);
        g_assert_cmpuint(f->started, ==, 0);
        other = vmsig_subscriber_free(other);
        g_assert_cmpint(vmsig_core_subscribe(f->core, &other_endpoint, 0, on_other, f, &other), ==, 0);
        run_for(f, 100000);
        g_assert_cmpuint(f->started, ==, 0);
        g_assert_cmpuint(stats(f).active, ==, 0);
        other = vmsig_subscriber_free(other);

        subscribe(f, 0);
        WAIT(f, f->started > 0);
        g_assert_cmpuint(stats(f).active, ==, 1);
        unsubscribe(f);
        WAIT(f, f->in_flight == 0); /* a capture in flight may still finish */
        run_for(f, 10000);
        unsigned started = f->started;
        g_assert_cmpuint(stats(f).active, ==, 0);
        run_for(f, 300000);
        g_assert_cmpuint(f->started, ==, started);
        g_assert_cmpuint(f->in_flight, ==, 0);

        /* Wanted again. */
        subscribe(f, vmsig_endpoint_get_id(ep));
        WAIT(f, f->started == started + 1);
        g_assert_cmpuint(stats(f).active, ==, 1);
}

static void test_unwanted_in_flight(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_fake(f, "alpha", true);

        f->delay_usec = 100000;
        subscribe(f, vmsig_endpoint_get_id(ep));
        WAIT(f, f->in_flight == 1);
        unsubscribe(f);
        WAIT(f, f->in_flight == 0);
        run_for(f, 100000);
        /* It finished, and was dropped unseen. */
        g_assert_cmpuint(f->in_flight, ==, 0);
        g_assert_cmpuint(stats(f).captures, ==, 0);
        g_assert_cmpuint(stats(f).published, ==, 0);
        g_assert_cmpuint(f->started, ==, 1);
}

static void test_detach_in_flight(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_fake(f, "alpha", true);

        f->delay_usec = 100000;
        subscribe(f, vmsig_endpoint_get_id(ep));
        WAIT(f, f->in_flight == 1);
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, 0);
        g_assert_cmpuint(f->in_flight, ==, 0);
        run_for(f, 200000);
        g_assert_true(f->adapter_freed);
        g_assert_cmpuint(stats(f).active, ==, 0);
        g_assert_cmpuint(stats(f).published, ==, 0);
        g_assert_cmpuint(f->frames->len, ==, 0);
        g_assert_cmpuint(f->started, ==, 1);
}

/* The instance goes (daemon shutdown) while a capture is in flight; the
 * capture ends when the endpoint is detached after it. */
static void test_free_in_flight(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_fake(f, "alpha", true);

        f->delay_usec = 100000;
        subscribe(f, vmsig_endpoint_get_id(ep));
        WAIT(f, f->in_flight == 1);
        unsubscribe(f);
        f->vgpu = vmsig_vgpu_free(f->vgpu);
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, 0);
        g_assert_cmpuint(f->in_flight, ==, 0);
}

static void test_stub(Fixture *f, gconstpointer data) {
        vmsig_stub_spec spec = { .name = "stub", .ram_size = 1 << 20, .initial_state = VMSIG_STATE_RUNNING,
                                 .display_width = 64, .display_height = 48 };
        vmsig_endpoint_spec ep_spec;
        vmsig_endpoint *ep;

        g_assert_cmpint(vmsig_stub_new(&spec, &ep_spec, NULL), ==, 0);
        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &ep_spec, &ep), ==, 0);
        subscribe(f, vmsig_endpoint_get_id(ep));
        /* A running stub shows a new picture on every capture. */
        WAIT(f, f->frames->len >= 3);
        for (guint i = 0; i < f->frames->len; i++) {
                const vmsig_frame *fr = &g_array_index(f->frames, vmsig_frame, i);
                g_assert_cmpuint(fr->width, ==, 64);
                g_assert_cmpuint(fr->height, ==, 48);
                g_assert_cmpuint(fr->stride, ==, 256);
                g_assert_cmpuint(fr->seq, ==, i + 1);
                if (i > 0)
                        g_assert_cmphex(fr->hash, !=, g_array_index(f->frames, vmsig_frame, i - 1).hash);
        }
        g_assert_cmpuint(stats(f).errors, ==, 0);
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, 0);
        run_for(f, 100000);
        g_assert_cmpuint(stats(f).active, ==, 0);
}

/* --- <frames> in vmsigd.conf -------------------------------------------------- */

static int load_config(const char *xml, vmsig_config **ret, char **error) {
        g_autofree char *path = NULL;
        g_autoptr(GError) e = NULL;
        int fd = g_file_open_tmp("vmsigd-XXXXXX.conf", &path, &e);
        int r;

        g_assert_no_error(e);
        close(fd);
        g_assert_true(g_file_set_contents(path, xml, -1, NULL));
        r = vmsig_config_load(path, ret, error);
        g_unlink(path);
        return r;
}

static void test_config(void) {
        static const struct {
                const char *xml;
                bool enabled;
                double rate;
        } good[] = {
                { "<vmsigd/>", true, VMSIG_VGPU_RATE_DEFAULT },
                { "<vmsigd><frames/></vmsigd>", true, VMSIG_VGPU_RATE_DEFAULT },
                { "<vmsigd><frames rate=\"0.5\"/></vmsigd>", true, 0.5 },
                { "<vmsigd><frames rate=\"60\" enabled=\"yes\"/></vmsigd>", true, 60 },
                { "<vmsigd><frames enabled=\"no\"/></vmsigd>", false, VMSIG_VGPU_RATE_DEFAULT },
        };
        static const struct {
                const char *xml;
                const char *says;
        } bad[] = {
                { "<vmsigd>\n<frames rate=\"0\"/>\n</vmsigd>", ":2: rate=\"0\" is not a number" },
                { "<vmsigd>\n<frames rate=\"60.01\"/>\n</vmsigd>", ":2: rate=\"60.01\"" },
                { "<vmsigd>\n<frames rate=\"-1\"/>\n</vmsigd>", ":2: rate=\"-1\"" },
                { "<vmsigd>\n<frames rate=\"1e1\"/>\n</vmsigd>", ":2: rate=\"1e1\"" },
                { "<vmsigd>\n<frames rate=\"nan\"/>\n</vmsigd>", ":2: rate=\"nan\"" },
                { "<vmsigd>\n<frames rate=\"1.2.3\"/>\n</vmsigd>", ":2: rate=\"1.2.3\"" },
                { "<vmsigd>\n<frames rate=\"\"/>\n</vmsigd>", ":2: rate=\"\"" },
                { "<vmsigd>\n<frames enabled=\"false\"/>\n</vmsigd>", ":2: enabled=\"false\" is not one of yes or no." },
                { "<vmsigd>\n<frames rate=\"5.\"/>\n</vmsigd>", "schema" },
                { "<vmsigd>\n<frames bogus=\"1\"/>\n</vmsigd>", "schema" },
                { "<vmsigd>\n<frames/><frames/>\n</vmsigd>", "schema" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
                vmsig_config *c = NULL;
                g_autofree char *error = NULL;

                g_assert_cmpint(load_config(good[i].xml, &c, &error), ==, 0);
                g_assert_cmpint(c->frames_enabled, ==, good[i].enabled);
                g_assert_cmpfloat(c->frames_rate, ==, good[i].rate);
                vmsig_config_free(c);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                vmsig_config *c = NULL;
                g_autofree char *error = NULL;

                g_test_message("%s", bad[i].xml);
                g_assert_cmpint(load_config(bad[i].xml, &c, &error), <, 0);
                g_test_message("error: %s", error);
                g_assert_null(c);
                /* Every line names the file and what is wrong; libxml2's
                 * schema messages differ between versions. */
                if (!g_str_equal(bad[i].says, "schema"))
                        g_assert_nonnull(strstr(error, bad[i].says));
                g_assert_null(strchr(error, '\n'));
        }
}

#define ADD(path, fn, data) g_test_add(path, Fixture, data, fixture_setup, fn, fixture_teardown)

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/vgpu/decode/", test_decode_formats, test_decode_malformed, test_sealed);
        g_test_add_func("/vgpu/config", test_config);
        VT_FIXTURE_TESTS("/vgpu/", test_kind, test_frames, test_malformed, test_replay);
        ADD("/vgpu/rate", test_rate, &rate_5);
        VT_FIXTURE_TESTS("/vgpu/", test_demand, test_unwanted_in_flight, test_detach_in_flight, test_free_in_flight,
                         test_stub);
        return g_test_run();
}
