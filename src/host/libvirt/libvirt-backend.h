/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The libvirt host backend: libvirt-managed domains through libvirt's
 * public C API, its only interface to libvirt (no status files, no socket
 * of libvirt's). One object per libvirt connection (URI); it finds the
 * domains and attaches an endpoint for each.
 *
 * Discovery
 *   It connects to the URI (default qemu:///system), lists the running
 *   domains and follows libvirt's lifecycle and reboot events
 *   (virConnectDomainEventRegisterAny), driven by vmsigd's loop
 *   (libvirt-event.h). Which domains: all running ones, or only those
 *   tagged with an element of vmsig's namespace in their <metadata>:
 *
 *     <metadata><vmsig:vm xmlns:vmsig="https://vmsig.org/xmlns/libvirt/1.0"/></metadata>
 *
 *   The endpoint's name is the domain's, its uuid the domain's, its
 *   Backend "libvirt". A domain that stops is reported shut off (killed
 *   when destroyed) and detached.
 *
 * Connection
 *   When libvirtd goes away (libvirt's close callback; a libvirtd that
 *   stops answering misses 3 keepalives 5 s apart) the endpoints stay,
 *   with their paths, uuids and leases: the domains' QEMUs still run. It
 *   reconnects with backoff (100 ms doubling to 5 s); then it lists again:
 *   gone domains detach, new ones attach, states are brought up to date.
 *   A libvirtd absent at start is one warning, and the domains attach when
 *   it answers.
 *
 * Blocking calls
 *   libvirt's calls block (a destroy takes seconds, any domain call waits
 *   behind a running job for up to 30 s), so every call runs on one worker
 *   thread (libvirt-worker.h), in order, and is answered on the loop.
 *
 * Adapters of an endpoint
 *   host:    Pause -> virDomainSuspend, Resume -> virDomainResume, Reset
 *            -> virDomainReset, PowerOff -> virDomainShutdown, Kill ->
 *            virDomainDestroy; done when libvirt returns. State follows
 *            libvirt's events, never what was asked; a REBOOT event is a
 *            guest reset. libvirt's errors complete with -EIO and
 *            "libvirt: <its message>", -EBADFD when the domain is gone.
 *            No vCPU registers: they need QEMU's monitor.
 *   input:   KEY events (QKeyCode numbers, keys.h) through
 *            virDomainSendKey, Linux keycodes: keys pressed together go
 *            in one call, which presses them, holds them 10 ms and
 *            releases them all (libvirt cannot hold a key between calls).
 *            Pointer events (and keys sent with them) go through QEMU's
 *            monitor (input-send-event), -EOPNOTSUPP saying so without it.
 *            All wait on the worker in turn; when the input lease ends,
 *            those not sent yet are dropped and what input-send-event left
 *            held down is released.
 *   display: virDomainScreenshot, the stream read on the worker into a
 *            sealed memfd; PNG or PPM as QEMU writes it. One capture at a
 *            time (-EBUSY).
 *   memctx:  the guest RAM of the domain's QEMU process (libvirt-ram.h),
 *            looked for on the worker among the processes of the user
 *            libvirt runs QEMU as (libvirt-seclabel.h), its map asked of
 *            QEMU's monitor or computed from the machine type
 *            (libvirt-xml.h); without shared RAM memctx is absent from
 *            the endpoint's Capabilities (libvirt-memctx.c).
 */

#include <stdbool.h>

#include "vmsig-core.h"

#define VMSIG_LIBVIRT_URI_DEFAULT "qemu:///system"
#define VMSIG_LIBVIRT_NS "https://vmsig.org/xmlns/libvirt/1.0"
#define VMSIG_LIBVIRT_BACKOFF_MIN_USEC (100ULL * 1000ULL)
#define VMSIG_LIBVIRT_BACKOFF_MAX_USEC (5ULL * 1000ULL * 1000ULL)

typedef enum vmsig_libvirt_domains {
        VMSIG_LIBVIRT_DOMAINS_ALL,
        VMSIG_LIBVIRT_DOMAINS_TAGGED,
        _VMSIG_LIBVIRT_DOMAINS_MAX,
} vmsig_libvirt_domains;

typedef struct vmsig_libvirt_config {
        const char *uri; /* NULL: VMSIG_LIBVIRT_URI_DEFAULT */
        vmsig_libvirt_domains domains;
        /* QEMU's monitor through virDomainQemuMonitorCommand where libvirt
         * has no API; kept for the passthrough, not used yet. */
        bool monitor;
} vmsig_libvirt_config;

typedef struct vmsig_libvirt vmsig_libvirt;

/* Registers libvirt's events on the core's loop and starts connecting;
 * returns before libvirt answered. */
int vmsig_libvirt_new(vmsig_core *core, const vmsig_libvirt_config *config, vmsig_libvirt **ret);
/* Detaches its endpoints and closes the connection (waiting for the
 * libvirt call under way, if any). */
vmsig_libvirt *vmsig_libvirt_free(vmsig_libvirt *lv);

/* Whether the connection is up (the last listing came back). */
bool vmsig_libvirt_is_connected(vmsig_libvirt *lv);
const char *vmsig_libvirt_get_uri(vmsig_libvirt *lv);

const char *vmsig_libvirt_domains_to_string(vmsig_libvirt_domains d);
vmsig_libvirt_domains vmsig_libvirt_domains_from_string(const char *s);
