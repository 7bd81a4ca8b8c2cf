/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The QEMU host backend. vmsigd is the one QMP client of a QEMU: it
 * connects to the -qmp unix socket from the loop, never blocking, and
 * reconnects with backoff whenever the socket goes away, so QEMU may start
 * after vmsigd, be restarted, or exit. The endpoint's state follows what
 * QEMU says (query-status on every connection, then the STOP, RESUME,
 * RESET and SHUTDOWN events), never what we asked for. A QEMU that is gone
 * makes the endpoint shut off.
 *
 *   host:   Pause -> stop, Resume -> cont, Reset -> system_reset,
 *           PowerOff -> system_powerdown, Kill -> quit; done when QEMU
 *           answers. The vCPU's control registers from info registers
 *           (human-monitor-command, qmp-hmp.h). QMP
 *           errors complete with -EIO and "QEMU: <class>: <desc>".
 *   input:  one input-send-event per inject call (see below for codes),
 *           one at a time: the others wait in vmsigd, where the end of the
 *           input lease drops them (-ECANCELED).
 *   memctx: the guest RAM is QEMU's memory-backend-file (share=on): a
 *           read-only fd of it for the memctx datum, a private writable one
 *           for write_ram, and the address-space bootstrap. Where the file
 *           sits in guest-physical space comes from QEMU on every connection
 *           (qmp-ram-map.h), and the datum with it; a map given in the spec
 *           wins, and then the datum comes at attach if the file is there.
 *           A new epoch (and a new bootstrap) on every guest reset and for
 *           every new QEMU process (told apart by its pid); QEMU going away
 *           ends the epoch and stops the bootstrap.
 *   display: screendump into a memfd passed to QEMU (add-fd), PNG where
 *           QEMU writes it, else PPM (see qmp-display.h); one capture at a
 *           time, a second one is refused with -EBUSY. QMP errors (no
 *           display device, say) complete with -EIO and QEMU's words.
 *
 * QEMU is taken to be gone when nothing listens on the socket (ENOENT,
 * ECONNREFUSED), or when the connection drops after a SHUTDOWN event.
 * Until it comes back, lifecycle, input and display requests complete with
 * -EBADFD; while merely reconnecting, with -EIO. A request in flight when
 * the connection drops completes with -EIO, and with -ENODEV when the
 * endpoint is detached.
 *
 * Input codes (vmsig_input_event):
 *   KEY:    QEMU's QKeyCode number (1 "shift" .. 149 "lang2", as QEMU's
 *           query-qmp-schema lists them; 0 "unmapped" is refused).
 *   BUTTON: 0 left, 1 right, 2 middle, 3 side, 4 extra (the evdev order
 *           from BTN_LEFT).
 *   REL:    0 x, 1 y: a delta; 2 wheel: clicks, positive up, at most
 *           VMSIG_QMP_WHEEL_MAX either way.
 *   ABS:    0 x, 1 y: 0..32767.
 * An event outside these fails the whole call with -EINVAL, before
 * anything is sent.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bootstrap-config.h"
#include "memctx.h"
#include "vmsig-endpoint.h"

#define VMSIG_QMP_WHEEL_MAX 16

typedef struct vmsig_qmp vmsig_qmp;

typedef struct vmsig_qmp_spec {
        const char *name;
        sd_id128_t uuid;        /* SD_ID128_NULL: a random one */
        const char *qmp_socket; /* QEMU's -qmp unix:PATH,server=on,wait=off */
        /* QEMU's memory-backend-file mem-path, share=on; NULL: no memctx
         * adapter. It should not be readable by others (start QEMU with
         * umask 077); a warning is logged when it is. */
        const char *ram_path;
        const vmsig_gpa_range *ranges; /* GPA -> file offset; NULL: asked of QEMU (flat if it cannot tell) */
        size_t n_ranges;
        vmsig_bootstrap_config bootstrap_config; /* zeros: the defaults */
        /* Screendumps in PPM even where QEMU writes PNG: no decoder
         * needed, but a text screen takes 844 KiB instead of 3. */
        bool display_ppm;
} vmsig_qmp_spec;

/* Fills *ret with the endpoint spec (its adapters) of a QEMU VM, ready
 * for vmsig_core_attach_endpoint(); its initial state is unknown until
 * QEMU answers. Nothing is opened before the attach. If ret_qmp is given it
 * receives a borrowed pointer, valid until the endpoint is reaped. */
int vmsig_qmp_new(const vmsig_qmp_spec *spec, vmsig_endpoint_spec *ret, vmsig_qmp **ret_qmp);

/* Whether the QMP connection is up and negotiated. */
bool vmsig_qmp_is_connected(vmsig_qmp *q);

/* The QKeyCode name of a KEY code, or NULL; and back (-EINVAL). */
const char *vmsig_qmp_qcode_to_name(uint32_t code);
int vmsig_qmp_qcode_from_name(const char *name);
