/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the parts of libvmsig-vgpu share; nothing here is exported (the
 * library exports only vmsig_vgpu_*). */

#include <stddef.h>
#include <stdint.h>

#include "vmsig-vgpu.h"

/* An image read out of its fd, before decoding. */
typedef struct vgpu_blob {
        const uint8_t *data;
        size_t size;
        const vmsig_display_image *image;
} vgpu_blob;

/* The encoded image may be somewhat larger than its raw pixels (PNG that
 * does not compress, a RAW stride with padding), never much larger. */
#define VGPU_IMAGE_BYTES_MAX ((size_t) VMSIG_VGPU_PIXELS_MAX * 4u + (1u << 20))

/* Reads image->size bytes from image->fd at offset 0 into buf (that big).
 * -EBADMSG when the fd holds less. */
int vgpu_blob_read_into(const vmsig_display_image *image, uint8_t *buf);

/* The display's dimensions from the image header, validated: -EBADMSG for a
 * malformed header, -EFBIG past VMSIG_VGPU_PIXELS_MAX. */
int vgpu_decode_size(const vgpu_blob *b, uint32_t *ret_width, uint32_t *ret_height);
/* Decodes the pixels into dst as XRGB8888 with a stride of width * 4;
 * width and height are those vgpu_decode_size() returned. */
int vgpu_decode_pixels(const vgpu_blob *b, uint32_t width, uint32_t height, uint8_t *dst);

uint64_t vgpu_hash(const uint8_t *p, size_t n, uint32_t width, uint32_t height);

/* Buffers a display keeps from one capture to the next. */
typedef struct vgpu_scratch {
        uint8_t *blob, *pixels;
        size_t blob_size, pixels_size;
} vgpu_scratch;
void vgpu_scratch_done(vgpu_scratch *s);

/* Decoded pixels (XRGB8888, stride width * 4, X set to 0xff) and their
 * hash; data points into the scratch buffers. */
typedef struct vgpu_pixels {
        const uint8_t *data;
        uint32_t width, height;
        uint64_t hash;
} vgpu_pixels;

/* Checks and decodes image into s: -EBADMSG for a malformed image, -EFBIG
 * past VMSIG_VGPU_PIXELS_MAX. */
int vgpu_frame_decode(const vmsig_display_image *image, vgpu_scratch *s, vgpu_pixels *ret);
/* A new sealed frame (seq and timestamp 0) holding px. */
int vgpu_frame_seal(const vgpu_pixels *px, vmsig_frame *ret);

/* A heap frame, the payload object of a FRAME event. */
void vgpu_frame_object_free(void *object);
