/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Display images (RAW, binary PPM, PNG) to XRGB8888. Every header field is
 * checked before anything is allocated from it: the image comes from the
 * hypervisor, which a guest may have influenced. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "vgpu-internal.h"

int vgpu_blob_read_into(const vmsig_display_image *image, uint8_t *buf) {
        size_t done = 0;

        while (done < image->size) {
                ssize_t n = pread(image->fd, buf + done, image->size - done, (off_t) done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EBADMSG; /* shorter than announced */
                done += (size_t) n;
        }
        return 0;
}

static int check_size(uint64_t width, uint64_t height) {
        if (width == 0 || height == 0)
                return -EBADMSG;
        if (width > VMSIG_VGPU_PIXELS_MAX || height > VMSIG_VGPU_PIXELS_MAX || width * height > VMSIG_VGPU_PIXELS_MAX)
                return -EFBIG;
        return 0;
}

/* Each format's decoder: with dst NULL, checks the image and gives its size
 * in *width and *height; with dst, decodes into it an image of the size
 * they say, which the first call gave. */

/* --- RAW: XRGB8888 rows of stride bytes ------------------------------------- */

static int raw_decode(const vgpu_blob *b, uint32_t *width, uint32_t *height, uint8_t *dst) {
        const vmsig_display_image *i = b->image;
        int r;

        if (dst) {
                for (uint32_t y = 0; y < *height; y++)
                        memcpy(dst + (size_t) y * *width * 4, b->data + (size_t) y * i->stride, (size_t) *width * 4);
                return 0;
        }
        r = check_size(i->width, i->height);
        if (r < 0)
                return r;
        if (i->stride < (uint64_t) i->width * 4)
                return -EBADMSG;
        /* The last row need not be padded to the stride. */
        if ((uint64_t) i->stride * (i->height - 1) + (uint64_t) i->width * 4 > b->size)
                return -EBADMSG;
        *width = i->width;
        *height = i->height;
        return 0;
}

/* --- PPM: "P6" WS width WS height WS maxval, one WS, width*height RGB -------- */

typedef struct ppm_header {
        uint32_t width, height, maxval;
        size_t offset; /* of the pixels */
} ppm_header;

static bool is_ws(uint8_t c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Whitespace and comments ("#" to the end of the line) before a field. */
static void ppm_skip(const vgpu_blob *b, size_t *pos) {
        while (*pos < b->size) {
                if (is_ws(b->data[*pos]))
                        (*pos)++;
                else if (b->data[*pos] == '#')
                        while (*pos < b->size && b->data[*pos] != '\n')
                                (*pos)++;
                else
                        break;
        }
}

static int ppm_number(const vgpu_blob *b, size_t *pos, uint32_t *ret) {
        uint64_t v = 0;
        size_t start;

        ppm_skip(b, pos);
        start = *pos;
        while (*pos < b->size && b->data[*pos] >= '0' && b->data[*pos] <= '9') {
                v = v * 10 + (uint64_t) (b->data[*pos] - '0');
                /* A dimension this long is too big whatever it says. */
                if (v > UINT32_MAX)
                        return -EFBIG;
                (*pos)++;
        }
        if (*pos == start || *pos >= b->size || !is_ws(b->data[*pos]))
                return -EBADMSG;
        *ret = (uint32_t) v;
        return 0;
}

static int ppm_parse(const vgpu_blob *b, ppm_header *h) {
        size_t pos = 2;
        int r;

        if (b->size < 2 || b->data[0] != 'P' || b->data[1] != '6')
                return -EBADMSG;
        r = ppm_number(b, &pos, &h->width);
        if (r >= 0)
                r = ppm_number(b, &pos, &h->height);
        if (r >= 0)
                r = ppm_number(b, &pos, &h->maxval);
        if (r < 0)
                return r;
        /* Exactly one whitespace byte ends the header. */
        h->offset = pos + 1;
        /* Only 8 bits a channel: 16-bit PPM (maxval > 255) and scaled
         * values are not what a screendump is. */
        if (h->maxval != 255)
                return -EBADMSG;
        r = check_size(h->width, h->height);
        if (r < 0)
                return r;
        if (b->size < h->offset || b->size - h->offset != (uint64_t) h->width * h->height * 3)
                return -EBADMSG;
        return 0;
}

static int ppm_decode(const vgpu_blob *b, uint32_t *width, uint32_t *height, uint8_t *dst) {
        ppm_header h;
        int r = ppm_parse(b, &h);

        if (r < 0)
                return r;
        if (!dst) {
                *width = h.width;
                *height = h.height;
                return 0;
        }
        if (h.width != *width || h.height != *height)
                return -EBADMSG;
        const uint8_t *src = b->data + h.offset;
        for (size_t i = 0, n = (size_t) h.width * h.height; i < n; i++, src += 3, dst += 4) {
                dst[0] = src[2];
                dst[1] = src[1];
                dst[2] = src[0];
                dst[3] = 0xff;
        }
        return 0;
}

/* --- PNG, with libpng's simplified API ------------------------------------ */

static int png_decode(const vgpu_blob *b, uint32_t *width, uint32_t *height, uint8_t *dst) {
        png_image img = { .version = PNG_IMAGE_VERSION };
        int r;

        if (!png_image_begin_read_from_memory(&img, b->data, b->size)) {
                png_image_free(&img);
                return -EBADMSG;
        }
        if (dst)
                r = img.width == *width && img.height == *height ? 0 : -EBADMSG;
        else
                r = check_size(img.width, img.height);
        if (r >= 0 && !dst) {
                *width = img.width;
                *height = img.height;
        }
        if (r < 0 || !dst) {
                png_image_free(&img);
                return r;
        }
        /* BGRA in memory is XRGB8888 little-endian, alpha in the X byte. A
         * file cut short or with a bad CRC fails here, with img freed. */
        img.format = PNG_FORMAT_BGRA;
        if (!png_image_finish_read(&img, NULL, dst, (png_int_32) (*width * 4), NULL))
                return -EBADMSG;
        return 0;
}

static int decode(const vgpu_blob *b, uint32_t *width, uint32_t *height, uint8_t *dst) {
        switch (b->image->encoding) {
        case VMSIG_IMAGE_RAW:
                return raw_decode(b, width, height, dst);
        case VMSIG_IMAGE_PPM:
                return ppm_decode(b, width, height, dst);
        case VMSIG_IMAGE_PNG:
                return png_decode(b, width, height, dst);
        default:
                return -EBADMSG;
        }
}

int vgpu_decode_size(const vgpu_blob *b, uint32_t *ret_width, uint32_t *ret_height) {
        return decode(b, ret_width, ret_height, NULL);
}

int vgpu_decode_pixels(const vgpu_blob *b, uint32_t width, uint32_t height, uint8_t *dst) {
        assert(dst);
        return decode(b, &width, &height, dst);
}
