/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * bench-frames: what its parts share. A probe wraps the display adapter of
 * an endpoint spec and notes when each capture comes back from the adapter
 * and when libvmsig-vgpu's completion (decode, hash, seal, publish) returns,
 * so that a frame's latency splits into capture, decode and dispatch.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "vmsig-core.h"
#include "vmsig-endpoint.h"
#include "vmsig-vgpu.h"

#define FRAMES_SAMPLES_MAX 100000
#define FRAMES_TIMEOUT_USEC (20 * UINT64_C(1000000))

/* CLOCK_MONOTONIC usec of the newest capture's stages. */
typedef struct frames_clock {
        uint64_t started;  /* the adapter's capture was called */
        uint64_t captured; /* the adapter called back */
        uint64_t decoded;  /* the library's completion returned */
        uint64_t completions;
} frames_clock;

/* Replaces the display adapter of spec with one that calls it and updates
 * *clock, which must outlive the endpoint. */
int frames_probe_wrap(vmsig_endpoint_spec *spec, frames_clock *clock);

/* Stage times of the delivered frames, usec. */
typedef struct frames_latency {
        uint64_t total[FRAMES_SAMPLES_MAX], capture[FRAMES_SAMPLES_MAX], decode[FRAMES_SAMPLES_MAX],
                dispatch[FRAMES_SAMPLES_MAX];
        size_t n;
} frames_latency;

/* A core subscriber of the frame kind for one endpoint that records the
 * latency of every live frame into lat (replays are skipped). */
typedef struct frames_watch {
        vmsig_vgpu *vgpu;
        const frames_clock *clock;
        frames_latency *lat;
        size_t skip; /* live frames not recorded first: warm-up */
        uint64_t live, bad;
        vmsig_subscriber *sub;
} frames_watch;

int frames_watch_start(frames_watch *w, vmsig_core *core, vmsig_id endpoint);
void frames_watch_stop(frames_watch *w);

/* Runs the loop until *flag or the timeout; -ETIMEDOUT then. */
int frames_run_until(sd_event *e, const bool *flag, uint64_t timeout_usec);
/* Runs the loop for usec. */
int frames_run_for(sd_event *e, uint64_t usec);
/* "label p50 p99" lines and the "@" fields of one latency record. */
void frames_print_latency(const char *label, frames_latency *lat);
void frames_at_latency(frames_latency *lat);

#if BENCH_FRAMES_QEMU
/* The QEMU part: direct screendump vs the library, frames/s and CPU. */
int frames_qemu_main(const char *binary, unsigned frames, unsigned runs, unsigned seconds);
#endif
