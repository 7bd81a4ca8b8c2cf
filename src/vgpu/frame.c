/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A decoded display image as a sealed memfd: once sealed, nobody (not even
 * vmsigd) can change the pixels a subscriber was handed, so one fd can be
 * passed to every subscriber without copies. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fd-util.h"
#include "macro.h"
#include "vgpu-internal.h"

#define FRAME_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* 64-bit words through a multiply-xorshift mix: one pass over a 1024x768
 * frame takes well under a millisecond, and equal pixels (the common case
 * of an idle desktop) are all it has to recognise. */
uint64_t vgpu_hash(const uint8_t *p, size_t n, uint32_t width, uint32_t height) {
        uint64_t h = UINT64_C(0x9e3779b97f4a7c15) ^ ((uint64_t) width << 32 | height);
        size_t i = 0;

        for (; i + 8 <= n; i += 8) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                h = (h ^ w) * UINT64_C(0xff51afd7ed558ccd);
                h ^= h >> 32;
        }
        for (; i < n; i++)
                h = (h ^ p[i]) * UINT64_C(0x100000001b3);
        h ^= h >> 33;
        h *= UINT64_C(0xc4ceb9fe1a85ec53);
        return h ^ (h >> 33);
}

/* Grows *buf to at least size bytes. The buffers are kept from one capture
 * to the next: fresh pages cost a fault each, and on a virtualised host the
 * faults of a new 1 MiB buffer cost more than decoding into it. */
static int scratch_reserve(uint8_t **buf, size_t *have, size_t size) {
        uint8_t *grown;

        if (*have >= size)
                return 0;
        grown = realloc(*buf, size);
        if (!grown)
                return -ENOMEM;
        *buf = grown;
        *have = size;
        return 0;
}

void vgpu_scratch_done(vgpu_scratch *s) {
        s->blob = mfree(s->blob);
        s->pixels = mfree(s->pixels);
        s->blob_size = s->pixels_size = 0;
}

int vgpu_frame_decode(const vmsig_display_image *image, vgpu_scratch *s, vgpu_pixels *ret) {
        uint32_t width, height;
        size_t len;
        int r;

        if (image->fd < 0 || image->size == 0)
                return -EBADMSG;
        if (image->size > VGPU_IMAGE_BYTES_MAX)
                return -EFBIG;
        r = scratch_reserve(&s->blob, &s->blob_size, image->size);
        if (r >= 0)
                r = vgpu_blob_read_into(image, s->blob);
        if (r < 0)
                return r;
        vgpu_blob b = { .data = s->blob, .size = image->size, .image = image };
        r = vgpu_decode_size(&b, &width, &height);
        if (r < 0)
                return r;
        len = (size_t) width * height * 4;
        r = scratch_reserve(&s->pixels, &s->pixels_size, len);
        if (r >= 0)
                r = vgpu_decode_pixels(&b, width, height, s->pixels);
        if (r < 0)
                return r;
        /* The X byte is padding: whatever the source had there (alpha,
         * garbage) must not make equal pictures differ. */
        for (size_t i = 3; i < len; i += 4)
                s->pixels[i] = 0xff;
        *ret = (vgpu_pixels) {
                .data = s->pixels,
                .width = width,
                .height = height,
                .hash = vgpu_hash(s->pixels, len, width, height),
        };
        return 0;
}

int vgpu_frame_seal(const vgpu_pixels *px, vmsig_frame *ret) {
        size_t len = (size_t) px->width * px->height * 4;
        _cleanup_close_ int fd = -1;
        int r;

        fd = memfd_create("vmsig-frame", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        /* write(), not a shared mapping: the kernel fills the pages without
         * a fault per page, and F_SEAL_WRITE needs no writable mapping. */
        r = loop_write(fd, px->data, len);
        if (r < 0)
                return r;
        if (fcntl(fd, F_ADD_SEALS, FRAME_SEALS) < 0)
                return -errno;
        *ret = (vmsig_frame) {
                .fd = TAKE_FD(fd),
                .width = px->width,
                .height = px->height,
                .stride = px->width * 4,
                .format = VMSIG_VGPU_FORMAT_XRGB8888,
                .hash = px->hash,
        };
        return 0;
}

int vmsig_vgpu_frame_from_image(const vmsig_display_image *image, vmsig_frame *ret) {
        vgpu_scratch s = {};
        vgpu_pixels px;
        int r;

        if (!image || !ret)
                return -EINVAL;
        r = vgpu_frame_decode(image, &s, &px);
        if (r >= 0)
                r = vgpu_frame_seal(&px, ret);
        vgpu_scratch_done(&s);
        return r;
}

void vgpu_frame_object_free(void *object) {
        vmsig_frame *f = object;

        if (!f)
                return;
        safe_close(f->fd);
        free(f);
}
