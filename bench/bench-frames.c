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
 *   --case qemu  (armed build) a real QEMU under TCG with -vga std, frames
 *                per second through the library vs direct screendump, and
 *                CPU per frame; see frames-qemu.c.
 *   The bus leg, GetFrame through vmsigd against EchoFd, is measured
 *   apart from the capture (the D-Bus API does not carry a frame's
 *   capture time): bench-calls frames-bus.
 *
 * Lines starting with "@ frames" are for bench/run.sh.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "bench-lib.h"
#include "frames.h"
#include "stub.h"

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

/* --- main ------------------------------------------------------------------------------ */

int main(int argc, char *argv[]) {
        const char *what = NULL, *qemu = getenv("VMSIG_QEMU");
        unsigned width = 720, height = 400, frames = 300, runs = 3, seconds = 5;
        const bench_option options[] = {
                BENCH_OPT_S("case", &what),
                BENCH_OPT_U("width", &width, VMSIG_STUB_DISPLAY_MIN, VMSIG_STUB_DISPLAY_MAX),
                BENCH_OPT_U("height", &height, VMSIG_STUB_DISPLAY_MIN, VMSIG_STUB_DISPLAY_MAX),
                BENCH_OPT_U("frames", &frames, 1, FRAMES_SAMPLES_MAX),
                BENCH_OPT_RUNS(&runs),
                BENCH_OPT_S("qemu", &qemu),
                BENCH_OPT_U("seconds", &seconds, 1, 3600),
                {},
        };
        static const char usage[] =
                "bench-frames --case stub [--width W --height H] [--frames N]\n"
                "bench-frames --case qemu [--qemu BINARY] [--frames N] [--runs N] [--seconds S]\n"
                "Frames (issue 9): capture-to-delivery latency in process, and frames/s and CPU per\n"
                "frame through the library vs direct QMP screendump (GetFrame: bench-calls frames-bus).\n";
        int r;

        bench_parse_options(argc, argv, options, usage);
#if !BENCH_FRAMES_QEMU
        /* Accepted so that one command line fits both builds. */
        (void) qemu;
        (void) runs;
        (void) seconds;
#endif
        if (!what) {
                fputs(usage, stdout);
                return EXIT_FAILURE;
        }
        if (strcmp(what, "stub") == 0)
                r = stub_latency(width, height, frames);
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
