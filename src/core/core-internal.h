/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Private to src/core. What is built on the core (src/endpoint) uses
 * vmsig-core.h only. */

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>

#include "hashmap.h"
#include "vmsig-core.h"

#define VMSIG_HARD_LIMIT_FACTOR 4
#define VMSIG_LAYERS_MAX 4

/* Events whose payload fits EVENT_POOL_PAYLOAD bytes are allocated at that
 * size and, once let go, kept for reuse (up to EVENT_POOL_MAX of them): a
 * burst of bulk samples is otherwise a malloc() and free() per event, of a
 * size glibc serves from its slow bins. Not under ASan, which must see every
 * event freed. */
#define EVENT_POOL_PAYLOAD 128
#define EVENT_POOL_MAX 128
#if defined(__SANITIZE_ADDRESS__)
#define EVENT_POOL_ON false
#else
#define EVENT_POOL_ON true
#endif

typedef struct event_impl {
        vmsig_event pub; /* first member: the public view */
        unsigned n_ref;
        bool pooled; /* has room for EVENT_POOL_PAYLOAD bytes */
        vmsig_core *core;
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
        void *data; /* the id's holder: an endpoint, attached or detached-but-not-reaped */
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
        size_t cap, head, n_entries, n_live;

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
        sd_event_source *epoll_source;
        bool dispatch_scheduled;
        bool dispatching;

        kind_info kinds[VMSIG_KIND_MAX];

        event_impl *pending_head[_VMSIG_PRIORITY_MAX], *pending_tail[_VMSIG_PRIORITY_MAX];
        uint64_t serial;
        event_impl *event_pool; /* linked through pending_next */
        size_t n_event_pool;

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

        struct {
                const vmsig_core_layer_ops *ops;
                void *data;
        } layers[VMSIG_LAYERS_MAX];
        size_t n_layers;

        vmsig_core_stats stats;
};

/* Events are shared by every queue and the retention entry that hold them,
 * so a dispatch to N subscribers costs N pointer copies, not N payloads.
 * What every publish and dispatch does is inline here; event.c frees the
 * pool with the core. */
void event_pool_free(vmsig_core *c);

/* An event with room for payload_size bytes inline and one reference; the
 * caller fills in pub. */
static inline event_impl *event_new(vmsig_core *c, size_t payload_size) {
        bool pooled = payload_size <= EVENT_POOL_PAYLOAD;
        event_impl *e = pooled ? c->event_pool : NULL;

        if (e) {
                c->event_pool = e->pending_next;
                c->n_event_pool--;
        } else {
                e = malloc(sizeof(event_impl) + (pooled ? EVENT_POOL_PAYLOAD : payload_size));
                if (!e)
                        return NULL;
        }
        /* Field by field: zeroing the whole struct (pub included, which
         * the caller writes anyway) compiles to a rep stos that costs
         * more than the rest of the publish (bench-core). */
        e->n_ref = 1;
        e->pooled = pooled;
        e->core = c;
        e->serial = 0;
        e->pending_next = NULL;
        e->object = NULL;
        e->free_fn = NULL;
        return e;
}

static inline event_impl *event_ref(event_impl *e) {
        assert(e->n_ref > 0);
        e->n_ref++;
        return e;
}

static inline void event_unref(event_impl *e) {
        vmsig_core *c;

        if (!e)
                return;
        assert(e->n_ref > 0);
        if (--e->n_ref > 0)
                return;
        if (e->free_fn)
                e->free_fn(e->object);
        c = e->core;
        if (EVENT_POOL_ON && e->pooled && c->n_event_pool < EVENT_POOL_MAX) {
                e->pending_next = c->event_pool;
                c->event_pool = e;
                c->n_event_pool++;
        } else
                free(e);
}

/* core.c */
/* Inline: both are on the path of every publish and dispatch. */
static inline slot *core_slot_lookup(vmsig_core *c, vmsig_id id) {
        uint32_t i = VMSIG_ID_SLOT(id);
        slot *s;

        if (i >= c->n_slots)
                return NULL;
        s = &c->slots[i];
        return s->used && s->generation == VMSIG_ID_GENERATION(id) ? s : NULL;
}

static inline kind_info *core_kind(vmsig_core *c, uint32_t kind) {
        return kind < VMSIG_KIND_MAX && c->kinds[kind].registered ? &c->kinds[kind] : NULL;
}

/* Inline: called by every publish, and a no-op for all but the first of
 * a burst. A running dispatch loops until nothing is pending or
 * deliverable. */
static inline void core_schedule_dispatch(vmsig_core *c) {
        if (c->dispatch_scheduled || c->dispatching)
                return;
        c->dispatch_scheduled = true;
        (void) sd_event_source_set_enabled(c->dispatch_source, SD_EVENT_ONESHOT);
}

/* The kind of a published event: checked by the publish. */
static inline const kind_info *event_kind(vmsig_core *c, const event_impl *e) {
        return &c->kinds[e->pub.kind];
}

/* slots.c */
void slots_retain(slot *s, event_impl *e);
void slots_drop_retained(slot *s);
void slots_free_all(vmsig_core *c);

/* subscriber.c */
void subscribers_offer(vmsig_core *c, event_impl *e);
bool subscriber_drain(vmsig_subscriber *s);
void subscribers_reap_dead(vmsig_core *c);

/* demand: in subscriber.c, next to what subscribes and frees. */
void demand_free_all(vmsig_core *c);

/* source.c */
int sources_init(vmsig_core *c);
void sources_done(vmsig_core *c);
