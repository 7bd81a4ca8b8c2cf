/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core-internal.h"
#include "macro.h"
#include "time-util.h"

/* Dispatch runs ahead of fd handlers so that events reach subscribers
 * before the next batch of I/O is read. */
#define DISPATCH_PRIORITY (SD_EVENT_PRIORITY_NORMAL - 10)

static const struct {
        const char *name;
        vmsig_priority priority;
        bool retained;
} builtin_kinds[_VMSIG_KIND_BUILTIN_MAX] = {
        [VMSIG_KIND_ROSTER] = { "roster", VMSIG_PRIORITY_STATE, true },
        [VMSIG_KIND_MEMCTX] = { "memctx", VMSIG_PRIORITY_STATE, true },
        [VMSIG_KIND_LIFECYCLE] = { "lifecycle", VMSIG_PRIORITY_CONTROL, true },
        [VMSIG_KIND_LEASE] = { "lease", VMSIG_PRIORITY_CONTROL, true },
        [VMSIG_KIND_SAMPLE] = { "sample", VMSIG_PRIORITY_BULK, false },
        [VMSIG_KIND_BOOTSTRAP] = { "bootstrap", VMSIG_PRIORITY_STATE, true },
};

static int on_dispatch(sd_event_source *s, void *userdata);

/* An event's timestamp. Published while the loop dispatches (a backend's
 * fd, a timer), it is the time of the loop's wakeup, as systemd's daemons
 * stamp what they do: one clock read an iteration, not one an event (the
 * read costs as much as the rest of a publish: bench-core), and every
 * event of one wakeup carries the same time, the moment what they report
 * was seen. Published outside (a test, before the loop runs), it is read
 * now. Either way it never goes back: the loop's time only grows. */
static uint64_t publish_time(vmsig_core *c) {
        uint64_t t;

        if (sd_event_get_state(c->event) == SD_EVENT_RUNNING && sd_event_now(c->event, CLOCK_MONOTONIC, &t) >= 0)
                return t;
        return now_usec();
}

int vmsig_core_new(sd_event *event, vmsig_core **ret) {
        vmsig_core *c;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        c->queue_limit = VMSIG_CORE_QUEUE_LIMIT_DEFAULT;
        c->max_endpoints = VMSIG_CORE_ENDPOINTS_MAX_DEFAULT;
        c->epoll_fd = -1;

        for (size_t k = 0; k < _VMSIG_KIND_BUILTIN_MAX; k++)
                c->kinds[k] = (kind_info) {
                        .name = strdup(builtin_kinds[k].name),
                        .priority = builtin_kinds[k].priority,
                        .retained = builtin_kinds[k].retained,
                        .registered = true,
                };

        /* Slot 0: the global pseudo-endpoint, always present. */
        c->slots = calloc(1, sizeof(slot));
        if (!c->slots) {
                r = -ENOMEM;
                goto fail;
        }
        c->n_slots = 1;
        c->slots[0].used = true;

        r = sd_event_add_defer(event, &c->dispatch_source, on_dispatch, c);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_priority(c->dispatch_source, DISPATCH_PRIORITY);
        (void) sd_event_source_set_enabled(c->dispatch_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(c->dispatch_source, "vmsig-dispatch");

        r = sources_init(c);
        if (r < 0)
                goto fail;

        *ret = c;
        return 0;
fail:
        vmsig_core_free(c);
        return r;
}

static void pending_clear(vmsig_core *c) {
        for (size_t p = 0; p < _VMSIG_PRIORITY_MAX; p++) {
                while (c->pending_head[p]) {
                        event_impl *e = c->pending_head[p];
                        c->pending_head[p] = e->pending_next;
                        event_unref(e);
                }
                c->pending_tail[p] = NULL;
        }
}

vmsig_core *vmsig_core_free(vmsig_core *c) {
        if (!c)
                return NULL;

        /* Whoever set a hook goes before the core does; the endpoints it
         * would look up are gone already. */
        memset(c->demand_hooks, 0, sizeof c->demand_hooks);
        /* A layer is found while it goes: what it calls back may look
         * into it. */
        while (c->n_layers > 0) {
                size_t i = c->n_layers - 1;
                c->layers[i].ops->free(c, c->layers[i].data);
                c->n_layers = i;
        }
        /* Watches belong to the producers of endpoints, gone with them. */
        assert(!c->demand_watches);
        while (c->subscribers)
                vmsig_subscriber_free(c->subscribers);
        subscribers_reap_dead(c);
        demand_free_all(c);
        pending_clear(c);
        slots_free_all(c);
        event_pool_free(c);
        sources_done(c);

        sd_event_source_disable_unref(c->dispatch_source);
        for (size_t k = 0; k < VMSIG_KIND_MAX; k++)
                free(c->kinds[k].name);
        sd_event_unref(c->event);
        return mfree(c);
}

sd_event *vmsig_core_get_event(vmsig_core *c) {
        return c->event;
}

void vmsig_core_set_queue_limit(vmsig_core *c, size_t limit) {
        c->queue_limit = limit > 0 ? limit : VMSIG_CORE_QUEUE_LIMIT_DEFAULT;
}

void vmsig_core_set_max_endpoints(vmsig_core *c, size_t max) {
        c->max_endpoints = max > 0 ? max : VMSIG_CORE_ENDPOINTS_MAX_DEFAULT;
}

void vmsig_core_get_stats(vmsig_core *c, vmsig_core_stats *ret) {
        *ret = c->stats;
        ret->subscribers = c->n_subscribers;
        ret->fd_sources = c->n_sources_used;
        for (size_t i = 0; i < c->n_layers; i++)
                if (c->layers[i].ops->stats)
                        c->layers[i].ops->stats(c, c->layers[i].data, ret);
}

int vmsig_core_set_layer(vmsig_core *c, const vmsig_core_layer_ops *ops, void *data) {
        assert(c);
        assert(ops && ops->free);
        if (vmsig_core_get_layer(c, ops))
                return -EEXIST;
        if (c->n_layers >= ELEMENTSOF(c->layers))
                return -ENOSPC;
        c->layers[c->n_layers].ops = ops;
        c->layers[c->n_layers].data = data;
        c->n_layers++;
        return 0;
}

void *vmsig_core_get_layer(vmsig_core *c, const vmsig_core_layer_ops *ops) {
        for (size_t i = 0; i < c->n_layers; i++)
                if (c->layers[i].ops == ops)
                        return c->layers[i].data;
        return NULL;
}

int vmsig_core_register_kind(vmsig_core *c, const char *name, vmsig_priority priority, bool retained) {
        if (!name || (unsigned) priority >= _VMSIG_PRIORITY_MAX)
                return -EINVAL;
        for (uint32_t k = 0; k < VMSIG_KIND_MAX; k++)
                if (c->kinds[k].registered && strcmp(c->kinds[k].name, name) == 0)
                        return -EEXIST;
        for (uint32_t k = _VMSIG_KIND_BUILTIN_MAX; k < VMSIG_KIND_MAX; k++) {
                if (c->kinds[k].registered)
                        continue;
                char *copy = strdup(name);
                if (!copy)
                        return -ENOMEM;
                c->kinds[k] = (kind_info) { copy, priority, retained, true };
                return (int) k;
        }
        return -ENOSPC;
}

int vmsig_core_find_kind(vmsig_core *c, const char *name) {
        if (!name)
                return -EINVAL;
        for (uint32_t k = 0; k < VMSIG_KIND_MAX; k++)
                if (c->kinds[k].registered && strcmp(c->kinds[k].name, name) == 0)
                        return (int) k;
        return -ENOENT;
}

const char *vmsig_core_kind_name(vmsig_core *c, uint32_t kind) {
        kind_info *k = core_kind(c, kind);
        return k ? k->name : NULL;
}

/* A new event of kind for endpoint with room for size bytes of payload,
 * or NULL with the error in *ret. */
static inline event_impl *event_for(vmsig_core *c, uint32_t kind, vmsig_id endpoint, uint32_t key, size_t size,
                                     int *ret) {
        event_impl *e;

        if (!core_kind(c, kind)) {
                *ret = -EINVAL;
                return NULL;
        }
        if (!core_slot_lookup(c, endpoint)) {
                *ret = -ESTALE;
                return NULL;
        }
        e = event_new(c, size);
        if (!e) {
                *ret = -ENOMEM;
                return NULL;
        }
        e->pub = (vmsig_event) {
                .kind = kind,
                .key = key,
                .endpoint = endpoint,
                .timestamp = publish_time(c),
                .payload_size = size,
        };
        return e;
}

static inline int publish(vmsig_core *c, event_impl *e) {
        vmsig_priority p = c->kinds[e->pub.kind].priority;

        if (c->pending_tail[p])
                c->pending_tail[p]->pending_next = e;
        else
                c->pending_head[p] = e;
        c->pending_tail[p] = e;
        c->stats.published++;
        core_schedule_dispatch(c);
        return 0;
}

int vmsig_core_publish(vmsig_core *c, uint32_t kind, vmsig_id endpoint, uint32_t key, const void *payload, size_t size) {
        int r;
        event_impl *e = event_for(c, kind, endpoint, key, size, &r);

        if (!e)
                return r;
        e->pub.payload = e->data;
        if (size > 0)
                memcpy(e->data, payload, size);
        return publish(c, e);
}

int vmsig_core_publish_object(vmsig_core *c, uint32_t kind, vmsig_id endpoint, uint32_t key, void *object, size_t size,
                              void (*free_fn)(void *object)) {
        int r;
        event_impl *e = event_for(c, kind, endpoint, key, 0, &r);

        if (!e)
                return r;
        e->pub.payload = object;
        e->pub.payload_size = size;
        e->object = object;
        e->free_fn = free_fn;
        return publish(c, e);
}

static event_impl *pending_pop(vmsig_core *c) {
        for (size_t p = 0; p < _VMSIG_PRIORITY_MAX; p++) {
                event_impl *e = c->pending_head[p];
                if (!e)
                        continue;
                c->pending_head[p] = e->pending_next;
                if (!c->pending_head[p])
                        c->pending_tail[p] = NULL;
                e->pending_next = NULL;
                return e;
        }
        return NULL;
}

static void dispatch_one(vmsig_core *c, event_impl *e) {
        slot *s = core_slot_lookup(c, e->pub.endpoint);

        /* The endpoint was reaped between publish and dispatch: nobody can
         * make sense of the event any more. */
        if (s) {
                e->pub.seq = ++s->last_seq;
                e->serial = ++c->serial;
                if (c->kinds[e->pub.kind].retained)
                        slots_retain(s, e);
                c->stats.dispatched++;
                subscribers_offer(c, e);
        }
        event_unref(e);
}

static bool drain_subscribers(vmsig_core *c) {
        bool progress = false;
        for (vmsig_subscriber *sub = c->subscribers; sub; sub = sub->next)
                if (subscriber_drain(sub))
                        progress = true;
        return progress;
}

static void dispatch(vmsig_core *c) {
        if (c->dispatching)
                return;
        c->dispatching = true;
        c->dispatch_scheduled = false;
        (void) sd_event_source_set_enabled(c->dispatch_source, SD_EVENT_OFF);

        for (;;) {
                event_impl *e = pending_pop(c);
                if (e)
                        dispatch_one(c, e);
                else if (!drain_subscribers(c))
                        break;
        }

        c->dispatching = false;
        subscribers_reap_dead(c);
}

static int on_dispatch(sd_event_source *s, void *userdata) {
        dispatch(userdata);
        return 0;
}

void vmsig_core_flush(vmsig_core *c) {
        dispatch(c);
}

const vmsig_event *vmsig_core_get_retained(vmsig_core *c, vmsig_id endpoint, uint32_t kind, uint32_t key) {
        slot *s = core_slot_lookup(c, endpoint);
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_retained; i++)
                if (s->retained[i]->pub.kind == kind && s->retained[i]->pub.key == key)
                        return &s->retained[i]->pub;
        return NULL;
}
