/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Private to libvmsig-core (src/core and src/endpoint). */

#include <stddef.h>

#include "hashmap.h"
#include "vmsig-core.h"

#define VMSIG_QUEUE_LIMIT_DEFAULT 1024
#define VMSIG_HARD_LIMIT_FACTOR 4
#define VMSIG_ENDPOINTS_MAX_DEFAULT 4096

typedef struct event_impl {
        vmsig_event pub; /* first member: the public view */
        unsigned n_ref;
        uint64_t serial; /* global dispatch order, 0 until dispatched */
        struct event_impl *pending_next;
        void *object;
        void (*free_fn)(void *object);
        max_align_t data[]; /* inline copy of the payload */
} event_impl;

typedef struct kind_info {
        char *name;
        vmsig_priority priority;
        bool retained;
        bool registered;
} kind_info;

/* A slot is the identity of one endpoint incarnation. Slot 0 is the global
 * pseudo-endpoint for events that concern no single VM. */
typedef struct slot {
        uint32_t generation;
        bool used;
        vmsig_endpoint *endpoint; /* attached or detached-but-not-reaped */
        uint64_t last_seq;
        event_impl **retained;
        size_t n_retained;
        uint32_t free_next; /* free list link, 0 terminates */
} slot;

typedef struct queue_entry {
        event_impl *event; /* NULL: removed by the overflow policy */
        bool replay;
} queue_entry;

struct vmsig_subscriber {
        vmsig_core *core;
        vmsig_filter filter;
        size_t limit;
        vmsig_deliver_fn fn;
        void *userdata;

        queue_entry *queue; /* ring, capacity a power of two */
        size_t cap, head, n_slots, n_live;

        uint64_t dropped_pending;
        uint64_t dropped_total;
        bool resync_pending;
        uint64_t serial_floor; /* live events up to this serial came through replay */
        bool busy, dead, in_delivery;
        bool demand_counted; /* its filter is in the demand counts */

        vmsig_subscriber *prev, *next;
};

typedef struct fd_source {
        int fd;
        uint32_t generation;
        bool used;
        vmsig_fd_fn fn;
        void *userdata;
        uint32_t free_next;
} fd_source;

typedef struct endpoint_registry endpoint_registry;

/* How many subscribers want each kind of one endpoint (see
 * vmsig_core_set_demand_hook()). Entries exist only while total > 0, so a
 * detached endpoint leaves nothing behind once its subscribers are gone. */
typedef struct demand_entry {
        vmsig_id endpoint;
        unsigned total;
        unsigned count[VMSIG_KIND_MAX];
        char key[17]; /* the endpoint in hex: the key in core.demand */
} demand_entry;

typedef struct demand_hook {
        vmsig_demand_fn fn;
        void *userdata;
} demand_hook;

/* A producer's interest in the demand for one (kind, endpoint), beside
 * the one hook per kind: many producers of one kind, one per endpoint. */
struct vmsig_demand_watch {
        vmsig_core *core;
        uint32_t kind;
        vmsig_id endpoint;
        vmsig_demand_fn fn;
        void *userdata;
        struct vmsig_demand_watch *next;
};

struct vmsig_core {
        sd_event *event;
        sd_event_source *dispatch_source;
        sd_event_source *reap_source;
        sd_event_source *epoll_source;
        bool dispatch_scheduled;
        bool dispatching;

        kind_info kinds[VMSIG_KIND_MAX];

        event_impl *pending_head[_VMSIG_PRIORITY_MAX], *pending_tail[_VMSIG_PRIORITY_MAX];
        uint64_t serial;

        slot *slots;
        size_t n_slots; /* allocated entries, including slot 0 */
        size_t max_endpoints;
        uint32_t free_head, free_tail;

        vmsig_subscriber *subscribers;
        size_t n_subscribers;
        size_t queue_limit;
        bool have_dead_subscribers;

        demand_hook demand_hooks[VMSIG_KIND_MAX];
        vmsig_demand_watch *demand_watches;
        unsigned demand_all[VMSIG_KIND_MAX]; /* subscribers of every endpoint */
        Hashmap *demand;                     /* endpoint key -> demand_entry */

        int epoll_fd;
        fd_source *sources;
        size_t n_sources;
        size_t n_sources_used;
        uint32_t sources_free_head;

        endpoint_registry *registry; /* owned by src/endpoint */

        vmsig_core_stats stats;
};

/* event.c */
event_impl *event_ref(event_impl *e);
void event_unref(event_impl *e);

/* core.c */
void core_schedule_dispatch(vmsig_core *c);
void core_schedule_reap(vmsig_core *c);
slot *core_slot_lookup(vmsig_core *c, vmsig_id id);
kind_info *core_kind(vmsig_core *c, uint32_t kind);

/* slots.c */
int slots_acquire(vmsig_core *c, vmsig_id *ret);
void slots_release(vmsig_core *c, vmsig_id id);
void slots_retain(slot *s, event_impl *e);
void slots_drop_retained(slot *s);
void slots_free_all(vmsig_core *c);

/* subscriber.c */
void subscriber_offer(vmsig_subscriber *s, event_impl *e);
void subscribers_offer(vmsig_core *c, event_impl *e);
bool subscriber_drain(vmsig_subscriber *s);
bool subscriber_matches(const vmsig_subscriber *s, const vmsig_event *e);
void subscribers_reap_dead(vmsig_core *c);

/* demand: in subscriber.c, next to what subscribes and frees. */
void demand_free_all(vmsig_core *c);

/* source.c */
int sources_init(vmsig_core *c);
void sources_done(vmsig_core *c);

/* endpoint.c: called when the core goes away, and by the reap source. */
void endpoint_registry_free(vmsig_core *c);
void endpoint_registry_reap(vmsig_core *c);
void endpoint_registry_stats(vmsig_core *c, vmsig_core_stats *st);
