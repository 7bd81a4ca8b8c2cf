/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libvirt's events driven by an sd-event loop (vmsigd's), through
 * virEventRegisterImpl: libvirt's file handles become sd-event I/O
 * sources and its timeouts time or defer sources. libvirt then needs no
 * thread of its own and nothing polls: its connections' sockets, keepalive
 * timers and event queues wake the one loop like everything else.
 *
 * Constraints, all libvirt's:
 *   - virEventRegisterImpl is process-global and cannot be undone, so one
 *     loop serves all of libvirt for the life of the process. Registering
 *     the same loop again is a no-op; another loop is refused (-EBUSY).
 *     The loop is referenced for good.
 *   - Register before the first virConnectOpen*(): a connection picks its
 *     event implementation when it is opened.
 *   - libvirt calls back into this adapter from whichever thread runs a
 *     libvirt call (the libvirt backend runs its calls on a worker
 *     thread), but sd-event is not thread-safe: a change asked from
 *     another thread is recorded under a mutex and applied by the loop's
 *     thread, which an eventfd wakes (as libvirt's own poll loop does).
 *     Callbacks (handles, timeouts, free) always run on the loop's thread,
 *     and none runs after libvirt removed its watch, even when the removal
 *     came from another thread and is not applied yet. The loop's thread
 *     is the one that registered.
 *   - Two handles on one fd are not supported (epoll holds an fd once);
 *     libvirt registers one per socket.
 *   - A removed handle's or timeout's free callback runs at a later
 *     iteration of the loop, never inside the remove call (libvirt would
 *     deadlock on its own locks); if the loop never runs again it never
 *     runs.
 */

#include <systemd/sd-event.h>

/* Makes e drive libvirt's events; 0, or -EBUSY if another loop does, or
 * a negative errno if the adapter's own source could not be added. */
int vmsig_libvirt_event_register(sd_event *e);

/* The loop that drives libvirt's events, or NULL before registration. */
sd_event *vmsig_libvirt_event_loop(void);
