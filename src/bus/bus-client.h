/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What a client holds on a front (a lease, a memctx subscription, a frame
 * subscription) shares one shape: it belongs to one client, named as lease
 * holders and subscribers are (the unique bus name, or the private
 * connection's label); it counts one unit of its uid's quota; it pins its
 * endpoint; and it ends when the client leaves the bus or the endpoint
 * goes. bus_client is that shape, one per hold. */

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "bus-admission.h"
#include "bus-peers.h"
#include "hashmap.h"
#include "macro.h"
#include "vmsig-endpoint.h"

typedef struct vmsig_bus_front vmsig_bus_front;

typedef struct bus_client {
        vmsig_bus_front *front;
        vmsig_endpoint *endpoint; /* a reference */
        char *label;              /* the client, as holders and subscribers are named */
        bus_peer peer;            /* for audit records: name owned; no groups, no grants */
        char *key;                /* "<endpoint>\n<label>", its key in a front's map of subscriptions */
        bool on_bus;              /* label is a unique bus name, not a private connection's */
        bus_quota_kind quota;     /* one unit of it is held until the client is freed */
} bus_client;

/* The caller of m (authorized already), holding one unit of quota on ep.
 * <0 with org.vmsig.Error.QuotaExceeded set when its uid holds its limit
 * of quota already. */
int bus_client_new(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep, bus_quota_kind quota,
                   sd_bus_error *error, bus_client **ret);
/* Gives the quota unit back. */
bus_client *bus_client_free(bus_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(bus_client *, bus_client_free);

/* c's client is the peer that left the bus as name. A private client
 * never leaves that way: it ends with its connection, and its front. */
bool bus_client_is_gone(const bus_client *c, const char *name);
/* c holds something of ep; of any endpoint when ep is NULL (the front
 * goes). */
bool bus_client_holds_on(const bus_client *c, const vmsig_endpoint *ep);

/* The key of the client that sent m, holding on ep: "<endpoint>\n<label>";
 * NULL without memory. */
char *bus_client_key(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep);

/* The caller of m's value in subs, a front's map of subscriptions to ep;
 * NULL when it has none (or no memory to look). */
void *bus_client_lookup(Hashmap *subs, vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep);
/* org.vmsig.Error.NotSubscribed, for the caller's subscription to what
 * ("frames") of ep. */
int bus_client_not_subscribed(sd_bus_error *error, const char *what, vmsig_endpoint *ep);

/* Makes a subscription of c: subscribes it to the events of kind of its
 * endpoint, delivered to fn with userdata (*ret: the core subscriber),
 * adds userdata (the subscription) to subs under c->key, and audits
 * operation. */
int bus_client_subscribe(bus_client *c, Hashmap *subs, uint32_t kind, vmsig_deliver_fn fn, void *userdata,
                         const char *operation, vmsig_subscriber **ret);

/* Sends the signal interface.member from path, with the arguments types
 * says, to c's client alone: unicast on a bus, where others could listen
 * (a private connection has nobody else). */
void bus_client_signal(const bus_client *c, const char *path, const char *interface, const char *member,
                       const char *types, ...);
