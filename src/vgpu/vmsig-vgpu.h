/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libvmsig-vgpu: vgpu perception, the guest's screen as a datum.
 *
 * A plugin library on the public core API only (vmsig-core.h,
 * vmsig-endpoint.h). It registers the event kind "frame" (bulk, retained)
 * and, for every endpoint that has a display adapter, captures the display
 * while at least one core subscriber wants that kind for that endpoint
 * (vmsig_core_set_demand_hook()), at most config.rate times a second. With
 * no subscriber it keeps no timer: an idle daemon makes no wakeups for it.
 *
 * Each distinct frame is published as one FRAME event whose payload is a
 * vmsig_frame: a sealed, read-only memfd of XRGB8888 pixels. A frame whose
 * pixels hash the same as the previous one of its endpoint is not
 * published again. The newest frame is retained and replayed to late
 * subscribers.
 *
 * The daemon loads the library at run time (dlopen) and calls
 * vmsig_vgpu_new(); in-process users link it. Frames keep a reference into
 * the library (the payload's free function), so unload it only after the
 * core is gone.
 */

#include <stdint.h>

#include "vmsig-core.h"
#include "vmsig-endpoint.h"

#define VMSIG_VGPU_KIND_NAME "frame"
/* Little-endian 32-bit pixels: bytes B, G, R, X. */
#define VMSIG_VGPU_FORMAT_XRGB8888 "XRGB8888"
#define VMSIG_VGPU_RATE_DEFAULT 2.0
#define VMSIG_VGPU_RATE_MAX 60.0
/* Larger displays are refused (-EFBIG), so a hostile image header cannot make
 * the daemon allocate without bound. */
#define VMSIG_VGPU_PIXELS_MAX (8192u * 8192u)

/* The FRAME payload. */
typedef struct vmsig_frame {
        int fd; /* sealed memfd (F_SEAL_WRITE|SHRINK|GROW|SEAL), height * stride bytes */
        uint32_t width, height, stride;
        char format[16];    /* VMSIG_VGPU_FORMAT_XRGB8888 */
        uint64_t seq;       /* per endpoint, from 1: the how-manieth distinct frame */
        uint64_t timestamp; /* CLOCK_MONOTONIC usec of the capture */
        uint64_t hash;      /* of the pixels */
} vmsig_frame;

typedef struct vmsig_vgpu_config {
        double rate; /* captures per second per endpoint, at most; 0: the default */
} vmsig_vgpu_config;

typedef struct vmsig_vgpu_stats {
        uint64_t captures;  /* completed captures */
        uint64_t published; /* distinct frames published */
        uint64_t unchanged; /* captures equal to the previous frame */
        uint64_t errors;    /* failed captures or undecodable images */
        uint64_t active;    /* endpoints being captured now */
} vmsig_vgpu_stats;

typedef struct vmsig_vgpu vmsig_vgpu;

/* Registers the frame kind; -EEXIST if another instance did. */
int vmsig_vgpu_new(vmsig_core *core, const vmsig_vgpu_config *config, vmsig_vgpu **ret);
vmsig_vgpu *vmsig_vgpu_free(vmsig_vgpu *v);
/* The kind number of "frame" in this core. */
uint32_t vmsig_vgpu_kind(vmsig_vgpu *v);
void vmsig_vgpu_get_stats(vmsig_vgpu *v, vmsig_vgpu_stats *ret);
/* A new rate (0: the default) for the next captures, as on a reload;
 * -ERANGE past VMSIG_VGPU_RATE_MAX. */
int vmsig_vgpu_set_rate(vmsig_vgpu *v, double rate);

/* Decodes an image into a new sealed frame (seq, timestamp left 0); for
 * tools and tests. -EBADMSG for a malformed image, -EFBIG past
 * VMSIG_VGPU_PIXELS_MAX. */
int vmsig_vgpu_frame_from_image(const vmsig_display_image *image, vmsig_frame *ret);
