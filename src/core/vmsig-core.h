/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libvmsig-core: the neutral transfer-event bus.
 *
 * The core moves events between producers (adapters attached to endpoints)
 * and subscribers (the D-Bus front, in-process controls, tests). It knows
 * event kinds, the ids events are published for, and priorities, never
 * what a payload means nor what holds an id: the endpoints of
 * vmsig-endpoint.h are a layer on this API.
 *
 * Ordering contract
 *   - Events wait in a pending queue per priority class until the core
 *     dispatches them from an sd-event defer source. Dispatch takes the
 *     highest class first, so a lease or lifecycle event published together
 *     with bulk samples goes out ahead of them.
 *   - The sequence number is assigned at dispatch, per endpoint, so every
 *     subscriber sees each endpoint's events in strictly increasing sequence.
 *     The timestamp is taken at publish time (CLOCK_MONOTONIC, usec): the
 *     time of the loop's wakeup when published while the loop dispatches
 *     (sd_event_now(), as systemd stamps), the clock otherwise; it never
 *     goes back.
 *
 * Retention
 *   - For kinds flagged retained, the core keeps the newest event per
 *     (endpoint, kind, key) and replays it to a subscriber as soon as it
 *     subscribes, before any live event, in sequence order per endpoint.
 *
 * Bounded subscriber queues. When a queue holds queue_limit entries:
 *   1. a new retained event replaces the queued older one with the same
 *      (endpoint, kind, key): the newest retained value is never lost;
 *   2. otherwise the oldest queued bulk (non-retained) event is dropped;
 *   3. a new bulk event that still does not fit is dropped itself;
 *   4. control events (lease, lifecycle) and retained values are queued
 *      beyond the limit. Past the hard limit (4 x queue_limit) the
 *      subscriber is resynchronised: its queue is replaced by the current
 *      retained state.
 *   Every loss is reported with the next delivery (vmsig_delivery.dropped,
 *   .resync). A slow subscriber never delays the others: delivery to each
 *   subscriber is independent and never blocks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct vmsig_core vmsig_core;
typedef struct vmsig_subscriber vmsig_subscriber;
typedef struct vmsig_endpoint vmsig_endpoint;

/* Endpoint identity: generation << 32 | slot. Slot numbers start at 1, so 0
 * is never a valid id. */
typedef uint64_t vmsig_id;
#define VMSIG_ID_SLOT(id) ((uint32_t) ((id) & 0xffffffffu))
#define VMSIG_ID_GENERATION(id) ((uint32_t) ((id) >> 32))
#define VMSIG_ID_MAKE(slot, gen) (((uint64_t) (gen) << 32) | (uint32_t) (slot))

/* An fd source registration: index << 32 | generation, never 0. */
typedef uint64_t vmsig_cookie;

typedef enum vmsig_priority {
        VMSIG_PRIORITY_CONTROL, /* lease, lifecycle: dispatched first, never dropped */
        VMSIG_PRIORITY_STATE,   /* roster, memctx */
        VMSIG_PRIORITY_BULK,    /* samples: dropped first */
        _VMSIG_PRIORITY_MAX,
} vmsig_priority;

/* Built-in kinds. More may be registered at run time (for example by a
 * plugin library) with vmsig_core_register_kind(). */
enum {
        VMSIG_KIND_ROSTER,
        VMSIG_KIND_MEMCTX,
        VMSIG_KIND_LIFECYCLE,
        VMSIG_KIND_LEASE,
        VMSIG_KIND_SAMPLE,
        VMSIG_KIND_BOOTSTRAP, /* progress of the address-space bootstrap */
        _VMSIG_KIND_BUILTIN_MAX,
        VMSIG_KIND_MAX = 32, /* kinds are bits of a subscriber's mask */
};
#define VMSIG_KIND_MASK(k) (UINT32_C(1) << (k))

typedef struct vmsig_event {
        uint32_t kind;
        uint32_t key;       /* retention sub-key, e.g. the lease class */
        vmsig_id endpoint;
        uint64_t seq;       /* per endpoint, from 1 */
        uint64_t timestamp; /* CLOCK_MONOTONIC usec at publish (the loop's wakeup, in dispatch) */
        const void *payload;
        size_t payload_size;
} vmsig_event;

typedef struct vmsig_delivery {
        const vmsig_event *event;
        bool replay;      /* from retention, not live */
        bool resync;      /* the queue was reset to the retained state */
        uint64_t dropped; /* events lost to overflow since the previous delivery */
} vmsig_delivery;

/* Return values of a delivery function. */
enum {
        VMSIG_DELIVER_OK = 0,
        VMSIG_DELIVER_BUSY = 1, /* not consumed: keep it, stop until vmsig_subscriber_resume() */
};
typedef int (*vmsig_deliver_fn)(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata);

typedef struct vmsig_filter {
        uint32_t kinds;    /* mask of VMSIG_KIND_MASK(); 0 means every kind */
        vmsig_id endpoint; /* 0 means every endpoint */
        /* Takes what others make but wants nothing itself: a relay (the bus
         * front) whose demand is that of its own clients, who say so with
         * subscriptions of their own. It wakes no producer. */
        bool passive;
} vmsig_filter;

typedef void (*vmsig_fd_fn)(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata);

typedef struct vmsig_core_stats {
        uint64_t published;
        uint64_t dispatched;
        uint64_t delivered;
        uint64_t dropped;
        uint64_t resyncs;
        uint64_t fd_dispatches;
        size_t subscribers;
        size_t fd_sources;
        size_t endpoints;
        size_t zombies; /* detached endpoints not reaped yet */
} vmsig_core_stats;

/* Core life cycle. The core takes a reference on the event loop. */
int vmsig_core_new(sd_event *event, vmsig_core **ret);
vmsig_core *vmsig_core_free(vmsig_core *c);
sd_event *vmsig_core_get_event(vmsig_core *c);
/* What a core starts with, and what 0 sets again; vmsigd.conf's <limits>
 * defaults are these. */
#define VMSIG_CORE_QUEUE_LIMIT_DEFAULT 1024
#define VMSIG_CORE_ENDPOINTS_MAX_DEFAULT 4096
void vmsig_core_set_queue_limit(vmsig_core *c, size_t limit); /* default for new subscribers */
/* Acquiring more ids (attaching more endpoints) than this fails with
 * -ENOSPC. */
void vmsig_core_set_max_endpoints(vmsig_core *c, size_t max);
void vmsig_core_get_stats(vmsig_core *c, vmsig_core_stats *ret);

/*
 * Layers. What is built on the core (the endpoint registry of
 * vmsig-endpoint.h) keeps its state with the core, under its ops as the
 * key. free is called first thing in vmsig_core_free(), layers in the
 * reverse order of their setting, while the core still works: it may
 * publish, remove fd sources, free demand watches and release ids. stats
 * fills in what the layer counts (endpoints, zombies). -EEXIST if ops is
 * set already.
 */
typedef struct vmsig_core_layer_ops {
        void (*free)(vmsig_core *c, void *data);
        void (*stats)(vmsig_core *c, void *data, vmsig_core_stats *st);
} vmsig_core_layer_ops;
int vmsig_core_set_layer(vmsig_core *c, const vmsig_core_layer_ops *ops, void *data);
/* The data set for ops, or NULL. */
void *vmsig_core_get_layer(vmsig_core *c, const vmsig_core_layer_ops *ops);

/*
 * Ids: what events are published for. The core keeps a sequence number
 * and the retained events per id; the endpoint layer, their one user, takes
 * an id per endpoint and keeps the endpoint as its data. An id stays valid
 * until it is released; released slots are reused first in, first out,
 * each time with a new generation, so an old id never matches a new holder.
 */
int vmsig_core_acquire_id(vmsig_core *c, void *data, vmsig_id *ret);
/* Drops its retained events; publishing for it fails with -ESTALE. */
void vmsig_core_release_id(vmsig_core *c, vmsig_id id);
/* The data of an acquired id, or NULL. */
void *vmsig_core_get_id_data(vmsig_core *c, vmsig_id id);
/* The id acquired in slot i (a vmid), or 0. */
vmsig_id vmsig_core_slot_id(vmsig_core *c, uint32_t i);
/* The first id acquired in a slot after slot after, in slot order (0
 * starts), or 0. */
vmsig_id vmsig_core_next_id(vmsig_core *c, uint32_t after);

/* Kinds. */
int vmsig_core_register_kind(vmsig_core *c, const char *name, vmsig_priority priority, bool retained);
const char *vmsig_core_kind_name(vmsig_core *c, uint32_t kind);
/* The kind registered under name, or -ENOENT. */
int vmsig_core_find_kind(vmsig_core *c, const char *name);

/*
 * Demand: a producer that works only while someone listens (a capture
 * that polls a device) learns when it is wanted. A subscriber wants (kind,
 * endpoint) when its filter names the kind explicitly (kinds != 0) and
 * names that endpoint, or every endpoint (endpoint 0). The hook is called
 * when the number of subscribers wanting (kind, endpoint) goes from 0 to 1
 * (wanted) or from 1 to 0, with endpoint 0 for subscribers of every
 * endpoint; it is called synchronously from vmsig_core_subscribe() and
 * vmsig_subscriber_free() and may not subscribe or free subscribers
 * itself. One hook per kind; NULL removes it.
 */
typedef void (*vmsig_demand_fn)(vmsig_core *c, uint32_t kind, vmsig_id endpoint, bool wanted, void *userdata);
int vmsig_core_set_demand_hook(vmsig_core *c, uint32_t kind, vmsig_demand_fn fn, void *userdata);
/* The same for one (kind, endpoint), for producers that exist once per
 * endpoint: fn is called as a hook would be, for that endpoint and for
 * endpoint 0 (subscribers of every endpoint), from the same places and
 * under the same rules; it may not free watches either. The watch must be
 * freed before the core. */
typedef struct vmsig_demand_watch vmsig_demand_watch;
int vmsig_core_watch_demand(vmsig_core *c, uint32_t kind, vmsig_id endpoint, vmsig_demand_fn fn, void *userdata,
                            vmsig_demand_watch **ret);
vmsig_demand_watch *vmsig_demand_watch_free(vmsig_demand_watch *w);
/* Whether any subscriber wants (kind, endpoint), counting subscribers of
 * every endpoint. */
bool vmsig_core_kind_wanted(vmsig_core *c, uint32_t kind, vmsig_id endpoint);

/* Publishing. The payload is copied. Returns -ESTALE if the endpoint is no
 * longer attached, -EINVAL for an unknown kind. */
int vmsig_core_publish(vmsig_core *c, uint32_t kind, vmsig_id endpoint, uint32_t key, const void *payload, size_t size);
/* Publish a payload object the event takes ownership of; free_fn is called
 * when the last queue or retention entry lets go of the event. */
int vmsig_core_publish_object(vmsig_core *c, uint32_t kind, vmsig_id endpoint, uint32_t key, void *object, size_t size,
                              void (*free_fn)(void *object));
/* Dispatch what is pending now instead of on the next loop iteration. A
 * no-op when called from inside a dispatch. */
void vmsig_core_flush(vmsig_core *c);
/* The retained event for (endpoint, kind, key), or NULL. Valid until the
 * next dispatch. */
const vmsig_event *vmsig_core_get_retained(vmsig_core *c, vmsig_id endpoint, uint32_t kind, uint32_t key);

/* Subscribers: the in-process transport. The retained state matching the
 * filter is queued for replay at once. queue_limit 0 takes the core default.
 * Freeing is allowed from inside the subscriber's own delivery function. */
int vmsig_core_subscribe(vmsig_core *c, const vmsig_filter *filter, size_t queue_limit, vmsig_deliver_fn fn,
                         void *userdata, vmsig_subscriber **ret);
vmsig_subscriber *vmsig_subscriber_free(vmsig_subscriber *s);
void vmsig_subscriber_resume(vmsig_subscriber *s);
size_t vmsig_subscriber_queued(const vmsig_subscriber *s);
uint64_t vmsig_subscriber_dropped(const vmsig_subscriber *s);

/* Fd sources (eventfd, timerfd, sockets, inotify). The core does not own
 * the fd. A callback for a cookie that was removed is never made, even when
 * readiness was already collected in the same batch. */
int vmsig_core_add_fd(vmsig_core *c, int fd, uint32_t events, vmsig_fd_fn fn, void *userdata, vmsig_cookie *ret);
int vmsig_core_set_fd_events(vmsig_core *c, vmsig_cookie cookie, uint32_t events);
int vmsig_core_remove_fd(vmsig_core *c, vmsig_cookie cookie);
