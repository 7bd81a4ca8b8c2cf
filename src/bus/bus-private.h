/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The private socket: the same objects as on the system bus, served
 * peer-to-peer (sd-bus server mode, like systemd's private socket) for
 * high-rate controls. Only uid 0 is admitted, by SO_PEERCRED. */

#include <systemd/sd-event.h>

#include "bus-front.h"
#include "macro.h"
#include "vmsig-core.h"

typedef struct vmsig_bus_private vmsig_bus_private;

int vmsig_bus_private_new(sd_event *event, vmsig_core *core, const vmsig_bus_context *ctx, const char *path,
                          vmsig_bus_private **ret);
/* Closes every connection and removes the socket file. */
vmsig_bus_private *vmsig_bus_private_free(vmsig_bus_private *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(vmsig_bus_private *, vmsig_bus_private_free);
size_t vmsig_bus_private_connections(const vmsig_bus_private *p);
