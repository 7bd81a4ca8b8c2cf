/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "memctx.h"

typedef struct vmsig_bus_front vmsig_bus_front;
typedef struct bus_memctx_sub bus_memctx_sub;

/* org.vmsig.Endpoint.SubscribeMemctx() and UnsubscribeMemctx(). */
/* NotSupported, saying why, for an endpoint whose host adapter tells why
 * it has no memory context (vmsig_endpoint_get_memctx_absence()), and
 * RamUnavailable, saying why, for one whose memory context will not come
 * (vmsig_endpoint_get_memctx_failure()). */
int bus_memctx_require_adapter(vmsig_endpoint *ep, sd_bus_error *error);
int bus_memctx_method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_memctx_method_unsubscribe(sd_bus_message *m, void *userdata, sd_bus_error *error);

/* A live MEMCTX event of ep: tells its subscribers on this front. */
void bus_memctx_on_event(vmsig_bus_front *f, vmsig_endpoint *ep, const char *path, const vmsig_memctx *m);
/* name left the bus: its subscriptions on this front end. */
void bus_memctx_subscriber_gone(vmsig_bus_front *f, const char *name);
/* ep was detached (NULL: the front goes): its subscriptions end. */
void bus_memctx_endpoint_gone(vmsig_bus_front *f, vmsig_endpoint *ep);
