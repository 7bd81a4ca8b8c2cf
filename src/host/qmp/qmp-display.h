/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The display adapter of the QEMU backend: QMP screendump into a memfd of
 * vmsigd's. QEMU opens what screendump names itself, so the memfd goes to
 * it by fd passing: add-fd (a writable descriptor, since QEMU matches the
 * access mode against the O_WRONLY it opens with), screendump to
 * /dev/fdset/N, then remove-fd. No file of the guest's screen is ever on
 * a file system.
 *
 * PNG is asked for (QEMU >= 7.1, built with libpng). A QEMU that refuses
 * the format argument, or has no PNG, gets asked for PPM instead; that is
 * remembered until the next connection, which may be another QEMU.
 *
 * One capture at a time per VM: a second one while the first is under way
 * is refused with -EBUSY. The image handed to done is the memfd, sealed
 * (F_SEAL_WRITE|SHRINK|GROW|SEAL) once QEMU is done with it, so nobody it
 * is passed on to can change it; it is closed when done returns.
 */

#include <stdbool.h>

#include "qmp-conn.h"
#include "vmsig-endpoint.h"

typedef struct qmp_display qmp_display;

int qmp_display_new(const char *name, qmp_display **ret);
qmp_display *qmp_display_free(qmp_display *d);

/* Ask for PPM only, even of a QEMU that writes PNG. */
void qmp_display_set_ppm_only(qmp_display *d, bool ppm_only);
/* A new QMP connection: PNG may be offered again. */
void qmp_display_connected(qmp_display *d);
bool qmp_display_is_busy(const qmp_display *d);

/* Starts a capture on c, which must be ready. done comes from the loop,
 * when QEMU answered or the connection failed (with the connection's
 * error: -EIO when it was lost, the error given to qmp_conn_free() when it
 * was freed). -EBUSY while another capture is under way. */
int qmp_display_capture(qmp_display *d, qmp_conn *c, vmsig_display_done_fn done, void *userdata);
