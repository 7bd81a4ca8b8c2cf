/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-frames (issue 9): the guest's screen as frames.
 *
 *   --case stub  In process: a core, libvmsig-vgpu at rate 60 and a running
 *                stub VM (WxH, its test pattern changes on every capture),
 *                one core subscriber of the frame kind. For each live frame,
 *                capture-to-delivery latency = the time the subscriber has
 *                it - the frame's timestamp (capture start), split with a
 *                probe around the display adapter into capture (the stub
 *                drawing), decode+hash+seal+publish (the library's
 *                completion) and dispatch (the core's queue to the
 *                subscriber). p50/p99 of FRAMES frames after a warm-up;
 *                the process's CPU time per capture.
 *   --case bus   Against vmsigd on $DBUS_SYSTEM_BUS_ADDRESS (stub endpoint
 *                --endpoint, frames on): SubscribeFrames, then GetFrame
 *                round trips (a sealed memfd each) vs EchoFd of
 *                bench/echo-service, alternating ABBA as bench-memctx does.
 *                The D-Bus API does not carry a frame's capture time, so
 *                the bus leg is measured apart from the capture: this is
 *                what vmsigd adds between a frame and a client.
 *                FrameChanged signals are counted for a second too (the
 *                subscriber-side rate).
 *   --case qemu  (armed build) a real QEMU under TCG with -vga std, frames
 *                per second through the library vs direct screendump, and
 *                CPU per frame; see frames-qemu.c.
 *
 * Lines starting with "@ frames" are for bench/run.sh.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "bench-lib.h"
#include "frames.h"
#include "stub.h"

#define ENDPOINT_INTERFACE VMSIG_BUS_ENDPOINT_INTERFACE

static frames_latency latency;

/* --- in process, a stub --------------------------------------------------------- */

/* The timed frames, after a warm-up: the report of the stub case. */
static int stub_measure(sd_event *event, vmsig_vgpu *vgpu, frames_watch *w, unsigned width, unsigned height,
                        unsigned frames) {
        vmsig_vgpu_stats s0, s1;
        uint64_t t0, t1, cpu0, cpu1;
        int r = 0;

        while (w->live < w->skip && r >= 0)
                r = sd_event_run(event, 100000);
        vmsig_vgpu_get_stats(vgpu, &s0);
        t0 = now_usec();
        cpu0 = bench_self_cpu_usec();
        while (latency.n + w->bad < frames && r >= 0)
                r = sd_event_run(event, 100000);
        cpu1 = bench_self_cpu_usec();
        t1 = now_usec();
        vmsig_vgpu_get_stats(vgpu, &s1);
        if (r < 0)
                return r;

        uint64_t captures = s1.captures - s0.captures;
        double fps = captures / ((t1 - t0) / 1e6), cpu_us = captures ? (double) (cpu1 - cpu0) / captures : 0;
        printf("  stub %ux%u: %" PRIu64 " captures in %.2f s (%.1f/s, rate %.0f), %" PRIu64 " published, %" PRIu64
               " errors, %" PRIu64 " frames with a stale clock\n",
               width, height, captures, (t1 - t0) / 1e6, fps, VMSIG_VGPU_RATE_MAX, s1.published - s0.published,
               s1.errors - s0.errors, w->bad);
        frames_print_latency("stub", &latency);
        printf("  stub     CPU of this process per capture: %.0f us (%.1f %% of a CPU at %.1f/s)\n", cpu_us,
               (double) (cpu1 - cpu0) / (t1 - t0) * 100, fps);
        printf("@ frames-stub-%ux%u", width, height);
        frames_at_latency(&latency);
        printf(" fps=%.1f cpu_us=%.0f errors=%" PRIu64 "\n", fps, cpu_us, s1.errors - s0.errors);
        return s1.errors != s0.errors || w->bad > 0 || latency.n == 0 ? -EIO : 0;
}

static int stub_latency(unsigned width, unsigned height, unsigned frames) {
        vmsig_stub_spec spec = { .name = "screen", .ram_size = 1 << 20, .initial_state = VMSIG_STATE_RUNNING,
                                 .display_width = width, .display_height = height };
        vmsig_vgpu_config config = { .rate = VMSIG_VGPU_RATE_MAX };
        sd_event *event = NULL;
        vmsig_core *core = NULL;
        vmsig_vgpu *vgpu = NULL;
        vmsig_endpoint *ep = NULL;
        vmsig_endpoint_spec es;
        frames_clock clock = {};
        frames_watch w = { .clock = &clock, .lat = &latency, .skip = 10 };
        int r;

        r = sd_event_new(&event);
        if (r >= 0)
                r = vmsig_core_new(event, &core);
        if (r >= 0)
                r = vmsig_vgpu_new(core, &config, &vgpu);
        if (r >= 0)
                r = vmsig_stub_new(&spec, &es, NULL);
        if (r >= 0)
                r = frames_probe_wrap(&es, &clock);
        if (r >= 0)
                r = vmsig_core_attach_endpoint(core, &es, &ep);
        if (r < 0)
                fprintf(stderr, "bench-frames: cannot set up the stub VM: %s\n", strerror(-r));
        w.vgpu = vgpu;
        if (r >= 0)
                r = frames_watch_start(&w, core, vmsig_endpoint_get_id(ep));
        if (r >= 0) {
                r = stub_measure(event, vgpu, &w, width, height, frames);
                frames_watch_stop(&w);
        }
        if (ep)
                (void) vmsig_core_detach_endpoint(core, ep);
        vmsig_vgpu_free(vgpu);
        vmsig_core_free(core);
        sd_event_unref(event);
        return r;
}

/* --- through vmsigd ------------------------------------------------------------------ */

typedef struct frame_reply {
        int fd; /* owned by the message */
        uint32_t width, height, stride;
        const char *format;
        uint64_t seq;
} frame_reply;

/* One call of a method without arguments; the reply is read with
 * signature (its first field an fd) into ret when given. */
static int call_method(sd_bus *bus, const bench_method *t, frame_reply *ret) {
        sd_bus_message *m = NULL, *reply = NULL;
        frame_reply f = { .fd = -1 };
        int r;

        r = sd_bus_message_new_method_call(bus, &m, t->destination, t->path, t->interface, t->member);
        if (r >= 0)
                r = bench_call(bus, m, &reply);
        if (r >= 0 && t->reply_type == 'f')
                r = sd_bus_message_read(reply, "huuust", &f.fd, &f.width, &f.height, &f.stride, &f.format, &f.seq);
        else if (r >= 0 && t->reply_type == 'h')
                r = sd_bus_message_read(reply, "h", &f.fd);
        if (r >= 0 && t->reply_type && f.fd < 0)
                r = -EBADF;
        if (r >= 0 && ret)
                *ret = f;
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        return r;
}

static int call_side(sd_bus *bus, const void *userdata) {
        int r = call_method(bus, userdata, NULL);
        /* FrameChanged signals queue up while we wait for replies. */
        return r < 0 ? r : bench_drain(bus);
}

static int on_frame_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        (*(uint64_t *) userdata)++;
        return 0;
}

/* FrameChanged signals in a second: the rate a subscriber sees. */
static int count_signals(sd_bus *bus, const char *path, uint64_t *ret) {
        sd_bus_slot *slot = NULL;
        uint64_t n = 0, end = now_usec() + 1000000, now;
        int r;

        r = sd_bus_match_signal(bus, &slot, "org.vmsig", path, ENDPOINT_INTERFACE, "FrameChanged", on_frame_changed, &n);
        while (r >= 0 && (now = now_usec()) < end) {
                r = sd_bus_process(bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(bus, end - now);
        }
        sd_bus_slot_unref(slot);
        *ret = n;
        return r < 0 ? r : 0;
}

static int bus_getframe(const char *endpoint, unsigned calls, unsigned warmup, unsigned runs) {
        sd_bus *bus = NULL;
        char *path = NULL;
        frame_reply f;
        uint64_t tv[BENCH_RUNS_MAX], te[BENCH_RUNS_MAX], signals = 0;
        int fds_before, fds_after, r;

        path = bench_endpoint_path(endpoint);
        r = path ? bench_open_system(&bus) : -ENOMEM;
        if (r < 0)
                goto finish;
        const bench_method subscribe = { "org.vmsig", path, ENDPOINT_INTERFACE, "SubscribeFrames", NULL, NULL, 'f' };
        const bench_method get = { "org.vmsig", path, ENDPOINT_INTERFACE, "GetFrame", NULL, NULL, 'f' };
        const bench_method unsubscribe = { "org.vmsig", path, ENDPOINT_INTERFACE, "UnsubscribeFrames", NULL, NULL, 0 };
        const bench_method echo = { BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, "EchoFd", NULL, NULL, 'h' };

        r = call_method(bus, &subscribe, &f);
        if (r < 0)
                goto finish;
        printf("  bus      %s: %ux%u stride %u %s, seq %" PRIu64 "\n", endpoint, f.width, f.height, f.stride, f.format,
               f.seq);
        r = count_signals(bus, path, &signals);
        if (r < 0)
                goto finish;
        fds_before = bench_count_fds();
        r = bench_compare(&(bench_side) { bus, call_side, &get }, &(bench_side) { bus, call_side, &echo }, calls, warmup,
                          runs, tv, te);
        fds_after = bench_count_fds();
        if (r >= 0)
                r = call_method(bus, &unsubscribe, NULL);
        if (r < 0)
                goto finish;

        bench_ratio x = bench_ratio_of(calls, tv, te, runs);
        printf("  bus      FrameChanged signals in 1 s while subscribed: %" PRIu64 "\n", signals);
        printf("  bus      vmsigd GetFrame %7.0f calls/s (%.1f us)  echo EchoFd %7.0f calls/s (%.1f us)"
               "  ratio vmsigd/echo time %.3f",
               x.a, 1e6 / x.a, x.b, 1e6 / x.b, x.ratio);
        bench_print_runs("vmsigd", "echo", calls, tv, te, runs);
        printf("  bus      fds open before %d, after %d\n", fds_before, fds_after);
        printf("@ frames-bus vmsigd_cps=%.0f echo_cps=%.0f vmsigd_us=%.1f echo_us=%.1f ratio=%.3f signals_1s=%" PRIu64
               " fd_leak=%d\n",
               x.a, x.b, 1e6 / x.a, 1e6 / x.b, x.ratio, signals, fds_after - fds_before);
        if (fds_after != fds_before)
                r = -EBADF;
finish:
        free(path);
        sd_bus_flush_close_unref(bus);
        return r;
}

/* --- main ------------------------------------------------------------------------------ */

int main(int argc, char *argv[]) {
        const char *what = NULL, *endpoint = "screen", *qemu = getenv("VMSIG_QEMU");
        unsigned width = 720, height = 400, frames = 300, calls = 5000, warmup = 500, runs = 3, seconds = 5;
        const bench_option options[] = {
                BENCH_OPT_S("case", &what),
                BENCH_OPT_U("width", &width, VMSIG_STUB_DISPLAY_MIN, VMSIG_STUB_DISPLAY_MAX),
                BENCH_OPT_U("height", &height, VMSIG_STUB_DISPLAY_MIN, VMSIG_STUB_DISPLAY_MAX),
                BENCH_OPT_U("frames", &frames, 1, FRAMES_SAMPLES_MAX),
                BENCH_OPT_S("endpoint", &endpoint),
                BENCH_OPT_CALLS(&calls),
                BENCH_OPT_WARMUP(&warmup),
                BENCH_OPT_RUNS(&runs),
                BENCH_OPT_S("qemu", &qemu),
                BENCH_OPT_U("seconds", &seconds, 1, 3600),
                {},
        };
        static const char usage[] =
                "bench-frames --case stub [--width W --height H] [--frames N]\n"
                "bench-frames --case bus [--endpoint NAME] [--calls N] [--warmup N] [--runs N]\n"
                "bench-frames --case qemu [--qemu BINARY] [--frames N] [--runs N] [--seconds S]\n"
                "Frames (issue 9): capture-to-delivery latency in process, GetFrame vs EchoFd through\n"
                "vmsigd, and frames/s and CPU per frame through the library vs direct QMP screendump.\n";
        int r;

        bench_parse_options(argc, argv, options, usage);
#if !BENCH_FRAMES_QEMU
        /* Accepted so that one command line fits both builds. */
        (void) qemu;
        (void) seconds;
#endif
        if (!what) {
                fputs(usage, stdout);
                return EXIT_FAILURE;
        }
        if (strcmp(what, "stub") == 0)
                r = stub_latency(width, height, frames);
        else if (strcmp(what, "bus") == 0)
                r = bus_getframe(endpoint, calls, warmup, runs);
#if BENCH_FRAMES_QEMU
        else if (strcmp(what, "qemu") == 0)
                r = frames_qemu_main(qemu && *qemu ? qemu : "qemu-system-x86_64", frames, runs, seconds);
#endif
        else {
                fprintf(stderr, "bench-frames: no case \"%s\" in this build\n", what);
                return EXIT_FAILURE;
        }
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
