/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-frames --case qemu: a real QEMU (TCG, q35, -vga std, no boot
 * device: SeaBIOS's 720x400 text screen) with two QMP sockets, one for the
 * QEMU backend in this process and one for a direct client.
 *
 *   direct   a blocking QMP client: screendump (PNG) to a file, read the
 *            file, decode it with libpng to 32-bit pixels; back to back.
 *   library  the QEMU endpoint attached in process (the QMP backend: add-fd
 *            of a memfd, screendump into it), each image through
 *            vmsig_vgpu_frame_from_image() (decode, hash, sealed memfd);
 *            back to back, no rate limit: the library's cost per frame.
 *   vgpu     the same endpoint, libvmsig-vgpu at its highest rate (60) and
 *            one core subscriber: completed captures per second (an
 *            unchanged screen is captured but not republished, so captures
 *            are counted, not frames), and capture-to-delivery latency.
 *
 * direct and library alternate RUNS times (medians reported); each side
 * times FRAMES frames. CPU per frame: this process (CLOCK_PROCESS_CPUTIME_ID)
 * and QEMU (/proc/PID/stat, clock ticks).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <png.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench-lib.h"
#include "frames.h"
#include "qmp.h"

typedef struct side_cost {
        uint64_t wall, self_cpu, qemu_cpu; /* usec for all frames of a run */
} side_cost;

typedef struct ctx {
        bench_qemu q;
        bench_qmp *direct;
        char dump[256];
        sd_event *event;
        vmsig_core *core;
        vmsig_vgpu *vgpu;
        vmsig_endpoint *ep;
        vmsig_qmp *qmp;
        frames_clock clock;
        unsigned char *file, *pixels;
        size_t file_size;
        bool done;
        int error;
        uint32_t width, height;
} ctx;

/* One screendump read back and decoded, as a direct client does it. */
static int direct_frame(ctx *c) {
        char args[400];
        png_image png = { .version = PNG_IMAGE_VERSION };
        struct stat st;
        int fd, r;

        snprintf(args, sizeof args, "{\"filename\":\"%s\",\"format\":\"png\"}", c->dump);
        r = bench_qmp_execute(c->direct, "screendump", args, NULL);
        if (r < 0)
                return r;
        fd = open(c->dump, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || st.st_size <= 0) {
                close(fd);
                return -EIO;
        }
        if ((size_t) st.st_size > c->file_size) {
                free(c->file);
                c->file = malloc((size_t) st.st_size);
                if (!c->file) {
                        close(fd);
                        return -ENOMEM;
                }
                c->file_size = (size_t) st.st_size;
        }
        r = pread(fd, c->file, (size_t) st.st_size, 0) == st.st_size ? 0 : -EIO;
        close(fd);
        if (r < 0)
                return r;
        if (!png_image_begin_read_from_memory(&png, c->file, (size_t) st.st_size))
                return -EBADMSG;
        png.format = PNG_FORMAT_BGRA;
        if (!c->pixels) {
                c->pixels = malloc(PNG_IMAGE_SIZE(png));
                c->width = png.width, c->height = png.height;
        }
        if (!c->pixels || png.width != c->width || png.height != c->height) {
                png_image_free(&png);
                return -EBADMSG;
        }
        if (!png_image_finish_read(&png, NULL, c->pixels, 0, NULL))
                return -EBADMSG;
        return 0;
}

static void on_image(const vmsig_result *result, const vmsig_display_image *image, void *userdata) {
        ctx *c = userdata;
        vmsig_frame fr;

        c->done = true;
        c->error = result->error;
        if (c->error < 0 || !image)
                return;
        c->error = vmsig_vgpu_frame_from_image(image, &fr);
        if (c->error < 0)
                return;
        if (fr.width != c->width || fr.height != c->height)
                c->error = -EBADMSG;
        close(fr.fd);
}

/* One capture through the QEMU backend and the library's decoder. */
static int library_frame(ctx *c) {
        int r;

        c->done = false;
        r = vmsig_endpoint_capture_display(c->ep, on_image, c);
        if (r >= 0)
                r = frames_run_until(c->event, &c->done, FRAMES_TIMEOUT_USEC);
        return r < 0 ? r : c->error;
}

static int run_side(ctx *c, int (*frame)(ctx *c), unsigned frames, side_cost *ret) {
        uint64_t t0 = now_usec(), s0 = bench_self_cpu_usec(), q0 = bench_proc_cpu_usec(c->q.pid);
        int r;

        for (unsigned i = 0; i < frames; i++) {
                r = frame(c);
                if (r < 0)
                        return r;
        }
        ret->wall = now_usec() - t0;
        ret->self_cpu = bench_self_cpu_usec() - s0;
        ret->qemu_cpu = bench_proc_cpu_usec(c->q.pid) - q0;
        return 0;
}

static int setup(ctx *c, const char *binary) {
        vmsig_qmp_spec spec = { .name = "screen" };
        vmsig_vgpu_config config = { .rate = VMSIG_VGPU_RATE_MAX };
        vmsig_endpoint_spec es;
        int r;

        r = bench_qemu_start(&c->q, &(bench_qemu_spec) { .binary = binary, .ram_mib = 128, .vga = "std" });
        if (r < 0) {
                fprintf(stderr, "bench-frames: cannot start %s: %s\n", binary, strerror(-r));
                return r;
        }
        snprintf(c->dump, sizeof c->dump, "%s/screen.png", c->q.dir);
        r = bench_qmp_open(c->q.bench_sock, &c->direct);
        if (r >= 0)
                r = sd_event_new(&c->event);
        if (r >= 0)
                r = vmsig_core_new(c->event, &c->core);
        if (r >= 0)
                r = vmsig_vgpu_new(c->core, &config, &c->vgpu);
        spec.qmp_socket = c->q.vmsigd_sock;
        if (r >= 0)
                r = vmsig_qmp_new(&spec, &es, &c->qmp);
        if (r >= 0)
                r = frames_probe_wrap(&es, &c->clock);
        if (r >= 0)
                r = vmsig_core_attach_endpoint(c->core, &es, &c->ep);
        for (uint64_t end = now_usec() + FRAMES_TIMEOUT_USEC; r >= 0 && !vmsig_qmp_is_connected(c->qmp);)
                r = now_usec() > end ? -ETIMEDOUT : sd_event_run(c->event, 10000);
        /* SeaBIOS finds no boot device and its text screen stands still. */
        if (r >= 0)
                r = frames_run_for(c->event, 3000000);
        if (r < 0)
                fprintf(stderr, "bench-frames: cannot set up the QEMU endpoint: %s\n", strerror(-r));
        return r;
}

static void teardown(ctx *c) {
        if (c->ep)
                (void) vmsig_core_detach_endpoint(c->core, c->ep);
        if (c->event)
                (void) frames_run_for(c->event, 20000);
        vmsig_vgpu_free(c->vgpu);
        vmsig_core_free(c->core);
        sd_event_unref(c->event);
        bench_qmp_close(c->direct);
        bench_qemu_stop(&c->q);
        free(c->file);
        free(c->pixels);
}

static uint64_t median_of(const side_cost *v, unsigned runs, size_t field) {
        uint64_t x[BENCH_RUNS_MAX];

        for (unsigned i = 0; i < runs; i++)
                x[i] = *(const uint64_t *) ((const char *) &v[i] + field);
        return bench_median(x, runs);
}

static frames_latency vgpu_latency;

/* libvmsig-vgpu at 60/s for seconds: completed captures and latency. */
static int run_vgpu(ctx *c, unsigned seconds) {
        frames_watch w = { .vgpu = c->vgpu, .clock = &c->clock, .lat = &vgpu_latency };
        vmsig_vgpu_stats s0, s1;
        uint64_t t0, t1, cpu0, cpu1, q0, q1, busy0, busy1;
        int r;

        r = frames_watch_start(&w, c->core, vmsig_endpoint_get_id(c->ep));
        if (r < 0)
                return r;
        r = frames_run_for(c->event, 500000);
        vmsig_vgpu_get_stats(c->vgpu, &s0);
        busy0 = c->clock.completions;
        t0 = now_usec(), cpu0 = bench_self_cpu_usec(), q0 = bench_proc_cpu_usec(c->q.pid);
        /* The probe's stage times of every capture, unchanged ones too. */
        uint64_t capture_sum = 0, decode_sum = 0, seen = c->clock.completions;
        for (uint64_t end = t0 + seconds * UINT64_C(1000000), now; r >= 0 && (now = now_usec()) < end;) {
                r = sd_event_run(c->event, end - now);
                if (c->clock.completions != seen) {
                        seen = c->clock.completions;
                        capture_sum += c->clock.captured - c->clock.started;
                        decode_sum += c->clock.decoded - c->clock.captured;
                }
        }
        t1 = now_usec(), cpu1 = bench_self_cpu_usec(), q1 = bench_proc_cpu_usec(c->q.pid);
        vmsig_vgpu_get_stats(c->vgpu, &s1);
        busy1 = c->clock.completions;
        frames_watch_stop(&w);
        if (r < 0)
                return r;

        uint64_t captures = s1.captures - s0.captures, n = busy1 - busy0;
        double cps = captures / ((t1 - t0) / 1e6);
        double per_capture_ms = n ? (capture_sum + decode_sum) / 1e3 / n : 0;
        printf("  vgpu     rate %.0f: %" PRIu64 " captures in %.2f s = %.1f captures/s (%" PRIu64 " published, %" PRIu64
               " unchanged, %" PRIu64 " errors)\n",
               VMSIG_VGPU_RATE_MAX, captures, (t1 - t0) / 1e6, cps, s1.published - s0.published,
               s1.unchanged - s0.unchanged, s1.errors - s0.errors);
        printf("  vgpu     per capture: screendump %.2f ms + decode/hash/seal %.2f ms = %.2f ms; the %.0f/s cap %s\n",
               n ? capture_sum / 1e3 / n : 0, n ? decode_sum / 1e3 / n : 0, per_capture_ms, VMSIG_VGPU_RATE_MAX,
               per_capture_ms < 1000 / VMSIG_VGPU_RATE_MAX ? "binds (a capture takes less than an interval)"
                                                           : "does not bind (captures are slower than 60/s)");
        printf("  vgpu     CPU per capture: this process %.0f us, QEMU %.0f us\n",
               captures ? (double) (cpu1 - cpu0) / captures : 0, captures ? (double) (q1 - q0) / captures : 0);
        if (vgpu_latency.n > 0)
                frames_print_latency("vgpu", &vgpu_latency);
        printf("@ frames-qemu-vgpu captures_per_s=%.1f capture_ms=%.2f decode_ms=%.2f self_cpu_us=%.0f qemu_cpu_us=%.0f"
               " errors=%" PRIu64,
               cps, n ? capture_sum / 1e3 / n : 0, n ? decode_sum / 1e3 / n : 0,
               captures ? (double) (cpu1 - cpu0) / captures : 0, captures ? (double) (q1 - q0) / captures : 0,
               s1.errors - s0.errors);
        if (vgpu_latency.n > 0)
                frames_at_latency(&vgpu_latency);
        printf("\n");
        return s1.errors != s0.errors || captures == 0 ? -EIO : 0;
}

int frames_qemu_main(const char *binary, unsigned frames, unsigned runs, unsigned seconds) {
        ctx c = {};
        side_cost direct[BENCH_RUNS_MAX], library[BENCH_RUNS_MAX];
        int r;

        r = setup(&c, binary);
        /* One of each first: the warm-up, and the screen's size. */
        if (r >= 0)
                r = direct_frame(&c);
        if (r >= 0)
                r = library_frame(&c);
        for (unsigned i = 0; r >= 0 && i < 2 * runs; i++)
                r = bench_abba(i) == 0 ? run_side(&c, direct_frame, frames, &direct[i / 2])
                                       : run_side(&c, library_frame, frames, &library[i / 2]);
        if (r < 0) {
                fprintf(stderr, "bench-frames: %s\n", strerror(-r));
                teardown(&c);
                return r;
        }

        uint64_t dw = median_of(direct, runs, offsetof(side_cost, wall)),
                 lw = median_of(library, runs, offsetof(side_cost, wall));
        double dfps = frames / (dw / 1e6), lfps = frames / (lw / 1e6);
        double ds = (double) median_of(direct, runs, offsetof(side_cost, self_cpu)) / frames,
               ls = (double) median_of(library, runs, offsetof(side_cost, self_cpu)) / frames,
               dq = (double) median_of(direct, runs, offsetof(side_cost, qemu_cpu)) / frames,
               lq = (double) median_of(library, runs, offsetof(side_cost, qemu_cpu)) / frames;
        printf("  qemu     %ux%u screen, %u frames a side, median of %u runs (ABBA)\n", c.width, c.height, frames, runs);
        printf("  qemu     direct  screendump+read+libpng  %6.1f frames/s  (%.2f ms)  CPU/frame: bench %.0f us, QEMU %.0f us\n",
               dfps, 1e3 / dfps, ds, dq);
        printf("  qemu     library QMP backend+vgpu decode %6.1f frames/s  (%.2f ms)  CPU/frame: bench %.0f us, QEMU %.0f us\n",
               lfps, 1e3 / lfps, ls, lq);
        printf("  qemu     ratio library/direct frames/s %.3f\n", lfps / dfps);
        printf("@ frames-qemu direct_fps=%.1f library_fps=%.1f ratio=%.3f direct_self_cpu_us=%.0f library_self_cpu_us=%.0f"
               " direct_qemu_cpu_us=%.0f library_qemu_cpu_us=%.0f width=%u height=%u\n",
               dfps, lfps, lfps / dfps, ds, ls, dq, lq, c.width, c.height);
        r = run_vgpu(&c, seconds);
        teardown(&c);
        return r;
}
