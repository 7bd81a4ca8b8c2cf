/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "bus-auth.h"
#include "bus-names.h"
#include "bus-frames.h"
#include "bus-front.h"
#include "bus-lease.h"
#include "bus-memctx.h"
#include "bus-memwrite.h"
#include "hashmap.h"
#include "macro.h"
#include "vmsig-endpoint.h"


/* One published endpoint object. Holds a reference on the core endpoint,
 * so its properties stay readable until InterfacesRemoved went out. */
typedef struct bus_endpoint {
        vmsig_bus_front *front;
        vmsig_endpoint *endpoint;
        char *path;
        uint64_t memctx_epoch;
        uint64_t sequence; /* PropertiesChanged sent for it so far: the Sequence property */
        bus_memwrite_request *memwrite_head, *memwrite_tail; /* serialized writes */
} bus_endpoint;

struct vmsig_bus_front {
        vmsig_core *core;
        sd_bus *bus;
        const vmsig_bus_context *ctx; /* the daemon's, shared by every front */
        bus_auth *auth;               /* ctx->auth */
        vmsig_subscriber *subscriber;
        Hashmap *endpoints; /* name -> bus_endpoint */
        Hashmap *endpoint_paths; /* object path -> bus_endpoint */
        Hashmap *leases;    /* lease id (uint64) -> bus_lease, held through this connection */
        Hashmap *memctx_subs; /* "endpoint\nsubscriber" -> bus_memctx_sub */
        Hashmap *frame_subs;  /* "endpoint\nsubscriber" -> bus_frame_sub */
        char *peer_label;   /* the peer's name on a private connection, else NULL */
        bool gone_hook;     /* registered with bus-peers */
        sd_bus_slot *slots[7];
};

DEFINE_TRIVIAL_CLEANUP_FUNC(vmsig_bus_front *, vmsig_bus_front_free);

extern const sd_bus_vtable bus_manager_vtable[];
extern const sd_bus_vtable bus_endpoint_vtable[];

int bus_endpoint_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                      sd_bus_error *error);
int bus_endpoint_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error);

bus_endpoint *bus_front_lookup(vmsig_bus_front *f, const char *name);
/* Who sent m, as lease holders are named: the unique bus name, or the
 * private connection's label. */
const char *bus_front_peer_label(vmsig_bus_front *f, sd_bus_message *m);
/* Whether the sender of m holds the lease of class c on ep, in the
 * convention of checks (bus-auth.h): 1 it does; 0 pending, while the
 * sender's credentials for the audit record are fetched; <0 it does not,
 * the refusal audited and error set to org.vmsig.Error.NotLeaseHolder. */
int bus_front_require_lease(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep, vmsig_lease_class c,
                            sd_bus_error *error);
/* 0 while ep is attached; else <0 with org.vmsig.Error.EndpointDetached. */
int bus_endpoint_require_attached(vmsig_endpoint *ep, sd_bus_error *error);
bus_endpoint *bus_front_lookup_vmid(vmsig_bus_front *f, uint32_t vmid);
/* The capability (polkit action) of a lease class. */
vmsig_cap bus_lease_class_cap(vmsig_lease_class c);
