/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The D-Bus front: serves the core's roster as org.vmsig objects. It learns
 * about endpoints only from core events, so what clients see on the bus
 * follows the event order. */

#include <systemd/sd-bus.h>

#include "bus-auth.h"
#include "vmsig-core.h"

typedef struct vmsig_bus_front vmsig_bus_front;

/* Registers the objects on bus and subscribes to the core; one front per
 * connection (the system bus, each private-socket peer). Calls are
 * authorized through auth, which outlives the front. Does not take the bus
 * name: the daemon does, once the initial roster is published. */
int vmsig_bus_front_new(vmsig_core *core, sd_bus *bus, bus_auth *auth, vmsig_bus_front **ret);
vmsig_bus_front *vmsig_bus_front_free(vmsig_bus_front *f);
