/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "vmsig-endpoint.h"

typedef struct vmsig_bus_front vmsig_bus_front;
typedef struct bus_frame_sub bus_frame_sub;

/* org.vmsig.Endpoint.SubscribeFrames(), GetFrame() and UnsubscribeFrames(). */
int bus_frames_method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_frames_method_get(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_frames_method_unsubscribe(sd_bus_message *m, void *userdata, sd_bus_error *error);

/* name left the bus: its frame subscriptions on this front end. */
void bus_frames_subscriber_gone(vmsig_bus_front *f, const char *name);
/* ep was detached (NULL: the front goes): its subscriptions end, and calls
 * still waiting for a frame fail with org.vmsig.Error.EndpointDetached. */
void bus_frames_endpoint_gone(vmsig_bus_front *f, vmsig_endpoint *ep);
