/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The D-Bus front: serves the core's roster as org.vmsig objects. It learns
 * about endpoints only from core events, so what clients see on the bus
 * follows the event order. */

#include <systemd/sd-bus.h>

#include "bus-auth.h"
#include "vmsig-core.h"

typedef struct vmsig_bus_front vmsig_bus_front;

/* What every front shares with the daemon; it outlives the fronts. */
typedef struct vmsig_bus_context {
        bus_auth *auth;
        /* Manager.Reload(): 0, or <0 with *error a "FILE:LINE: problem". */
        int (*reload)(void *userdata, char **error);
        void *userdata;
        size_t max_write; /* bytes per MemWrite (entry) */
} vmsig_bus_context;

/* Registers the objects on bus and subscribes to the core; one front per
 * connection (the system bus, each private-socket peer). Does not take the
 * bus name: the daemon does, once the initial roster is published. */
int vmsig_bus_front_new(vmsig_core *core, sd_bus *bus, const vmsig_bus_context *ctx, vmsig_bus_front **ret);
vmsig_bus_front *vmsig_bus_front_free(vmsig_bus_front *f);
/* Names the peer of a private connection (lease holder, audit). */
int vmsig_bus_front_set_peer_label(vmsig_bus_front *f, const char *label);
