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

/* Reads image->size bytes from image->fd at offset 0 into a new buffer.
 * -EFBIG past VGPU_IMAGE_BYTES_MAX, -EBADMSG when the fd holds less. */
int vgpu_blob_read(const vmsig_display_image *image, uint8_t **ret);

/* The display's dimensions from the image header, validated: -EBADMSG for a
 * malformed header, -EFBIG past VMSIG_VGPU_PIXELS_MAX. */
int vgpu_decode_size(const vgpu_blob *b, uint32_t *ret_width, uint32_t *ret_height);
/* Decodes the pixels into dst as XRGB8888 with a stride of width * 4;
 * width and height are those vgpu_decode_size() returned. */
int vgpu_decode_pixels(const vgpu_blob *b, uint32_t width, uint32_t height, uint8_t *dst);

uint64_t vgpu_hash(const uint8_t *p, size_t n, uint32_t width, uint32_t height);

/* A heap frame, the payload object of a FRAME event. */
void vgpu_frame_object_free(void *object);
