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

/* Decodes straight into the memfd's pages, then seals. F_SEAL_WRITE is
 * refused while a writable shared mapping exists, so the mapping goes
 * first. */
static int frame_fill(int fd, const vgpu_blob *b, uint32_t width, uint32_t height, uint64_t *ret_hash) {
        size_t len = (size_t) width * height * 4;
        uint8_t *p;
        int r;

        if (ftruncate(fd, (off_t) len) < 0)
                return -errno;
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        r = vgpu_decode_pixels(b, width, height, p);
        if (r >= 0) {
                /* The X byte is padding: whatever the source had there
                 * (alpha, garbage) must not make equal pictures differ. */
                for (size_t i = 3; i < len; i += 4)
                        p[i] = 0xff;
                *ret_hash = vgpu_hash(p, len, width, height);
        }
        (void) munmap(p, len);
        if (r < 0)
                return r;
        if (fcntl(fd, F_ADD_SEALS, FRAME_SEALS) < 0)
                return -errno;
        return 0;
}

int vmsig_vgpu_frame_from_image(const vmsig_display_image *image, vmsig_frame *ret) {
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_close_ int fd = -1;
        uint32_t width, height;
        uint64_t hash = 0;
        int r;

        if (!image || !ret)
                return -EINVAL;
        r = vgpu_blob_read(image, &data);
        if (r < 0)
                return r;
        vgpu_blob b = { .data = data, .size = image->size, .image = image };
        r = vgpu_decode_size(&b, &width, &height);
        if (r < 0)
                return r;
        fd = memfd_create("vmsig-frame", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        r = frame_fill(fd, &b, width, height, &hash);
        if (r < 0)
                return r;
        *ret = (vmsig_frame) {
                .fd = TAKE_FD(fd),
                .width = width,
                .height = height,
                .stride = width * 4,
                .format = VMSIG_VGPU_FORMAT_XRGB8888,
                .hash = hash,
        };
        return 0;
}

void vgpu_frame_object_free(void *object) {
        vmsig_frame *f = object;

        if (!f)
                return;
        safe_close(f->fd);
        free(f);
}
