/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "macro.h"
#include "qmp-display.h"

static const char png_magic[8] = "\x89PNG\r\n\x1a\n";

struct qmp_display {
        char *name;
        bool ppm_only;
        bool png_refused; /* by the QEMU of this connection */

        /* the capture under way */
        bool busy;
        vmsig_display_done_fn done;
        void *userdata;
        int memfd;
        int wfd; /* QEMU's descriptor shares its file offset */
        int64_t fdset_id; /* -1 until add-fd answered */
        bool png;         /* what screendump was asked for */
};

int qmp_display_new(const char *name, qmp_display **ret) {
        qmp_display *d = calloc(1, sizeof *d);

        if (!d)
                return -ENOMEM;
        *d = (qmp_display) { .memfd = -1, .wfd = -1, .fdset_id = -1 };
        d->name = strdup(name);
        if (!d->name) {
                free(d);
                return -ENOMEM;
        }
        *ret = d;
        return 0;
}

qmp_display *qmp_display_free(qmp_display *d) {
        if (!d)
                return NULL;
        safe_close(d->memfd);
        safe_close(d->wfd);
        free(d->name);
        return mfree(d);
}

void qmp_display_set_ppm_only(qmp_display *d, bool ppm_only) {
        d->ppm_only = ppm_only;
}

void qmp_display_connected(qmp_display *d) {
        d->png_refused = false;
}

bool qmp_display_is_busy(const qmp_display *d) {
        return d->busy;
}

static void on_removed(qmp_conn *c, const qmp_reply *reply, void *userdata) {
        qmp_display *d = userdata;

        /* A connection that went away took the fdset's use with it: QEMU
         * closes what it still holds of ours when no monitor is left. */
        if (reply->error < 0 && qmp_conn_is_ready(c))
                log_warning("QEMU of '%s' kept a screendump descriptor: %s", d->name, reply->message);
}

/* Once QEMU is done with the memfd, whatever it answered. */
static void remove_fdset(qmp_display *d, qmp_conn *c) {
        json_object *args;

        if (d->fdset_id < 0 || !qmp_conn_is_ready(c))
                return;
        args = json_object_new_object();
        if (!args || json_object_object_add(args, "fdset-id", json_object_new_int64(d->fdset_id)) < 0) {
                json_object_put(args);
                log_oom();
                return;
        }
        (void) qmp_conn_execute(c, "remove-fd", args, on_removed, d);
}

/* What QEMU wrote, sealed: the image must not change while it is passed
 * on, and QEMU still holds a writable descriptor until remove-fd. */
static int image_check(qmp_display *d, vmsig_display_image *ret, const char **ret_message) {
        char head[sizeof png_magic] = {};
        struct stat st;
        ssize_t n;

        if (fcntl(d->memfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
            fstat(d->memfd, &st) < 0) {
                *ret_message = "Cannot seal the screendump of QEMU.";
                return -errno;
        }
        if (st.st_size == 0) {
                *ret_message = "QEMU answered screendump but wrote no image.";
                return -EIO;
        }
        n = pread(d->memfd, head, sizeof head, 0);
        if (n < 0) {
                *ret_message = "Cannot read the screendump of QEMU.";
                return -errno;
        }
        if (d->png ? (size_t) n < sizeof png_magic || memcmp(head, png_magic, sizeof png_magic) != 0
                   : n < 2 || memcmp(head, "P6", 2) != 0) {
                *ret_message = d->png ? "QEMU's screendump is not a PNG image."
                                      : "QEMU's screendump is not a PPM image.";
                return -EIO;
        }
        *ret = (vmsig_display_image) {
                .fd = d->memfd,
                .size = (size_t) st.st_size,
                .encoding = d->png ? VMSIG_IMAGE_PNG : VMSIG_IMAGE_PPM,
        };
        return 0;
}

/* The capture is over; done may start the next one, or detach. */
static void finish(qmp_display *d, qmp_conn *c, int error, const char *message) {
        vmsig_display_image image;
        vmsig_result result = { .error = error, .message = message };
        _cleanup_close_ int memfd = -1;
        vmsig_display_done_fn done = d->done;
        void *userdata = d->userdata;

        remove_fdset(d, c);
        if (result.error == 0)
                result.error = image_check(d, &image, &result.message);
        if (result.error < 0)
                log_debug("Screendump of '%s' failed: %s", d->name, result.message ? result.message : "");
        memfd = TAKE_FD(d->memfd);
        d->wfd = safe_close(d->wfd);
        d->busy = false;
        d->done = NULL;
        d->userdata = NULL;
        d->fdset_id = -1;
        done(&result, result.error == 0 ? &image : NULL, userdata);
}

/* A QEMU before 7.1 knows no format argument; one without libpng says
 * so. Anything else about the format is a real error. */
static bool refused_png(const char *message) {
        return message && (strstr(message, "Parameter 'format' is unexpected") || strstr(message, "PNG support"));
}

static void dump(qmp_display *d, qmp_conn *c);

static void on_dumped(qmp_conn *c, const qmp_reply *reply, void *userdata) {
        qmp_display *d = userdata;

        /* Still connected: it was QEMU's answer, not a lost connection. */
        if (reply->error < 0 && d->png && qmp_conn_is_ready(c) && refused_png(reply->message)) {
                log_info("QEMU of '%s' cannot write PNG screendumps (%s); asking for PPM.", d->name,
                         reply->message);
                d->png_refused = true;
                return dump(d, c);
        }
        finish(d, c, reply->error, reply->message);
}

static void dump(qmp_display *d, qmp_conn *c) {
        json_object *args = json_object_new_object();
        char filename[64];
        int r;

        d->png = !d->ppm_only && !d->png_refused;
        snprintf(filename, sizeof filename, "/dev/fdset/%" PRIi64, d->fdset_id);
        /* QEMU opens it with O_TRUNC, which a passed descriptor ignores,
         * and writes at the offset its copy of wfd shares with ours: an
         * attempt that failed half way must leave nothing behind. */
        if (ftruncate(d->memfd, 0) < 0 || lseek(d->wfd, 0, SEEK_SET) < 0) {
                json_object_put(args);
                return finish(d, c, -errno, "Cannot empty the screendump memfd.");
        }
        if (!args || json_object_object_add(args, "filename", json_object_new_string(filename)) < 0 ||
            (d->png && json_object_object_add(args, "format", json_object_new_string("png")) < 0)) {
                json_object_put(args);
                return finish(d, c, -ENOMEM, NULL);
        }
        r = qmp_conn_execute(c, "screendump", args, on_dumped, d);
        if (r < 0)
                finish(d, c, r, "Cannot send screendump to QEMU.");
}

static void on_added(qmp_conn *c, const qmp_reply *reply, void *userdata) {
        qmp_display *d = userdata;
        json_object *id = NULL;

        if (reply->error < 0)
                return finish(d, c, reply->error, reply->message);
        if (!json_object_object_get_ex(reply->result, "fdset-id", &id) || !json_object_is_type(id, json_type_int) ||
            json_object_get_int64(id) < 0)
                return finish(d, c, -EIO, "QEMU's answer to add-fd names no fdset.");
        d->fdset_id = json_object_get_int64(id);
        dump(d, c);
}

/* A memfd of ours, and a write-only descriptor of it for QEMU: it refuses
 * an fdset member whose access mode is not the one it opens with. */
static int open_memfd(int *ret_memfd, int *ret_wfd) {
        _cleanup_close_ int memfd = -1, wfd = -1;

        memfd = memfd_create("vmsig-screendump", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (memfd < 0)
                return -errno;
        wfd = fd_reopen(memfd, O_WRONLY);
        if (wfd < 0)
                return wfd;
        *ret_memfd = TAKE_FD(memfd);
        *ret_wfd = TAKE_FD(wfd);
        return 0;
}

int qmp_display_capture(qmp_display *d, qmp_conn *c, vmsig_display_done_fn done, void *userdata) {
        _cleanup_close_ int memfd = -1, wfd = -1;
        json_object *args;
        int r;

        if (d->busy)
                return -EBUSY;
        r = open_memfd(&memfd, &wfd);
        if (r < 0)
                return r;
        args = json_object_new_object();
        if (!args || json_object_object_add(args, "opaque", json_object_new_string("vmsigd screendump")) < 0) {
                json_object_put(args);
                return -ENOMEM;
        }
        r = qmp_conn_execute_with_fd(c, "add-fd", args, wfd, on_added, d);
        if (r < 0)
                return r;
        d->busy = true;
        d->done = done;
        d->userdata = userdata;
        d->memfd = TAKE_FD(memfd);
        d->wfd = TAKE_FD(wfd);
        d->fdset_id = -1;
        return 0;
}
