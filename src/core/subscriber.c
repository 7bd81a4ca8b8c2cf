/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-internal.h"
#include "list.h"
#include "macro.h"

/* A subscriber's queue is a ring of event references. The overflow policy
 * may remove entries from the middle; those become holes (event == NULL)
 * that delivery skips and compaction squeezes out. */

#define QUEUE_INITIAL 16

static queue_entry *ring_at(vmsig_subscriber *s, size_t i) {
        return &s->queue[(s->head + i) & (s->cap - 1)];
}

static int ring_resize(vmsig_subscriber *s, size_t cap) {
        queue_entry *q = malloc(cap * sizeof(queue_entry));
        size_t n = 0;

        if (!q)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_entries; i++) {
                queue_entry *e = ring_at(s, i);
                if (e->event)
                        q[n++] = *e;
        }
        free(s->queue);
        s->queue = q;
        s->cap = cap;
        s->head = 0;
        s->n_entries = n;
        return 0;
}

static int ring_push(vmsig_subscriber *s, event_impl *e, bool replay) {
        if (s->n_entries == s->cap) {
                /* Squeeze out holes before growing. */
                size_t cap = s->n_live < s->cap / 2 ? s->cap : s->cap * 2;
                int r = ring_resize(s, cap ? cap : QUEUE_INITIAL);
                if (r < 0)
                        return r;
        }
        *ring_at(s, s->n_entries++) = (queue_entry) { event_ref(e), replay };
        s->n_live++;
        return 0;
}

/* The first live entry, after discarding leading holes. */
static queue_entry *ring_head(vmsig_subscriber *s) {
        while (s->n_entries > 0) {
                queue_entry *e = ring_at(s, 0);
                if (e->event)
                        return e;
                s->head = (s->head + 1) & (s->cap - 1);
                s->n_entries--;
        }
        return NULL;
}

static void ring_pop(vmsig_subscriber *s) {
        queue_entry *e = ring_head(s);
        assert(e);
        event_unref(e->event);
        e->event = NULL;
        s->head = (s->head + 1) & (s->cap - 1);
        s->n_entries--;
        s->n_live--;
}

static void ring_remove(vmsig_subscriber *s, queue_entry *e) {
        event_unref(e->event);
        e->event = NULL;
        s->n_live--;
}

static size_t ring_clear(vmsig_subscriber *s) {
        size_t n = s->n_live;
        for (size_t i = 0; i < s->n_entries; i++)
                event_unref(ring_at(s, i)->event);
        s->head = s->n_entries = s->n_live = 0;
        return n;
}

static inline bool subscriber_matches(const vmsig_subscriber *s, const vmsig_event *e) {
        if (s->filter.kinds && !(s->filter.kinds & VMSIG_KIND_MASK(e->kind)))
                return false;
        return s->filter.endpoint == 0 || s->filter.endpoint == e->endpoint;
}

static int compare_seq(const void *a, const void *b) {
        const event_impl *x = *(event_impl *const *) a, *y = *(event_impl *const *) b;
        return x->pub.seq < y->pub.seq ? -1 : x->pub.seq > y->pub.seq;
}

/* Queue the retained state of one slot in sequence order. */
static void replay_slot(vmsig_subscriber *s, slot *sl) {
        event_impl *batch[VMSIG_KIND_MAX * 4];
        size_t n = 0;

        for (size_t i = 0; i < sl->n_retained && n < ELEMENTSOF(batch); i++)
                if (subscriber_matches(s, &sl->retained[i]->pub))
                        batch[n++] = sl->retained[i];
        qsort(batch, n, sizeof batch[0], compare_seq);
        for (size_t i = 0; i < n; i++)
                (void) ring_push(s, batch[i], true);
}

static void replay(vmsig_subscriber *s) {
        vmsig_core *c = s->core;

        if (s->filter.endpoint) {
                slot *sl = core_slot_lookup(c, s->filter.endpoint);
                if (sl)
                        replay_slot(s, sl);
        } else
                for (size_t i = 0; i < c->n_slots; i++)
                        if (c->slots[i].used)
                                replay_slot(s, &c->slots[i]);
        s->serial_floor = c->serial;
}

static void resync(vmsig_subscriber *s) {
        size_t n = ring_clear(s);
        s->dropped_pending += n;
        s->dropped_total += n;
        s->core->stats.dropped += n;
        s->resync_pending = true;
        s->core->stats.resyncs++;
        replay(s);
}

static void count_drop(vmsig_subscriber *s) {
        s->dropped_pending++;
        s->dropped_total++;
        s->core->stats.dropped++;
}

/* Step 1 of the policy: a newer retained value supersedes a queued one. */
static bool coalesce(vmsig_subscriber *s, const event_impl *e) {
        for (size_t i = 0; i < s->n_entries; i++) {
                queue_entry *q = ring_at(s, i);
                if (q->event && q->event->pub.endpoint == e->pub.endpoint && q->event->pub.kind == e->pub.kind &&
                    q->event->pub.key == e->pub.key) {
                        ring_remove(s, q);
                        return true;
                }
        }
        return false;
}

/* Bulk samples that are not retained: what the policy drops first. */
static bool is_droppable(const kind_info *k) {
        return k->priority == VMSIG_PRIORITY_BULK && !k->retained;
}

/* Step 2: make room by dropping the oldest bulk sample. */
static bool drop_oldest_bulk(vmsig_subscriber *s) {
        for (size_t i = 0; i < s->n_entries; i++) {
                queue_entry *q = ring_at(s, i);
                if (q->event && is_droppable(event_kind(s->core, q->event))) {
                        ring_remove(s, q);
                        return true;
                }
        }
        return false;
}

static void enqueue(vmsig_subscriber *s, event_impl *e) {
        const kind_info *k = event_kind(s->core, e);

        if (s->n_live >= s->limit) {
                if (k->retained && coalesce(s, e))
                        count_drop(s);
                if (s->n_live >= s->limit && drop_oldest_bulk(s))
                        count_drop(s);
                if (s->n_live >= s->limit && is_droppable(k)) {
                        count_drop(s);
                        return;
                }
                if (s->n_live >= s->limit * VMSIG_HARD_LIMIT_FACTOR) {
                        resync(s);
                        /* The replay brings e back only if it is retained. */
                        if (!k->retained)
                                count_drop(s);
                        return;
                }
        }
        if (ring_push(s, e, false) < 0)
                count_drop(s);
}

static inline int deliver(vmsig_subscriber *s, event_impl *e, bool replay_flag) {
        vmsig_delivery d = {
                .event = &e->pub,
                .replay = replay_flag,
                .resync = s->resync_pending,
                .dropped = s->dropped_pending,
        };
        int r;

        s->in_delivery = true;
        r = s->fn(s, &d, s->userdata);
        s->in_delivery = false;
        if (r == VMSIG_DELIVER_BUSY) {
                s->busy = true;
                return r;
        }
        s->dropped_pending = 0;
        s->resync_pending = false;
        s->core->stats.delivered++;
        return VMSIG_DELIVER_OK;
}

static inline void subscriber_offer(vmsig_subscriber *s, event_impl *e) {
        if (s->dead)
                return;
        /* Fast path: nothing queued ahead of it, so hand it over directly. */
        if (s->n_live == 0 && !s->busy) {
                if (deliver(s, e, false) == VMSIG_DELIVER_OK || s->dead)
                        return;
        }
        enqueue(s, e);
}

/* Offer a dispatched event to every matching subscriber. It lives here,
 * next to subscriber_offer() and deliver(), so that the compiler inlines the
 * whole per-subscriber path: called from core.c, the two calls per
 * subscriber cost a third of a delivery (bench-core, 16 subscribers). */
void subscribers_offer(vmsig_core *c, event_impl *e) {
        for (vmsig_subscriber *sub = c->subscribers; sub; sub = sub->next)
                if (subscriber_matches(sub, &e->pub) && e->serial > sub->serial_floor)
                        subscriber_offer(sub, e);
}

bool subscriber_drain(vmsig_subscriber *s) {
        bool progress = false;

        while (!s->dead && !s->busy) {
                queue_entry *q = ring_head(s);
                if (!q)
                        break;
                event_impl *e = event_ref(q->event);
                bool replay_flag = q->replay;
                int r = deliver(s, e, replay_flag);
                if (r == VMSIG_DELIVER_OK && !s->dead)
                        ring_pop(s);
                event_unref(e);
                progress = true;
        }
        return progress;
}

/* --- demand ----------------------------------------------------------------- */

static void demand_key(vmsig_id endpoint, char key[static 17]) {
        snprintf(key, 17, "%" PRIx64, endpoint);
}

static demand_entry *demand_get(vmsig_core *c, vmsig_id endpoint) {
        char key[17];

        if (!c->demand)
                return NULL;
        demand_key(endpoint, key);
        return hashmap_get(c->demand, key);
}

static demand_entry *demand_get_or_add(vmsig_core *c, vmsig_id endpoint) {
        demand_entry *e = demand_get(c, endpoint);

        if (e)
                return e;
        if (!c->demand && !(c->demand = hashmap_new()))
                return NULL;
        e = calloc(1, sizeof *e);
        if (!e)
                return NULL;
        e->endpoint = endpoint;
        demand_key(endpoint, e->key);
        if (hashmap_put(c->demand, e->key, e) < 0)
                return mfree(e);
        return e;
}

/* Counts the filter in; returns the kinds that became wanted in *ret. Only
 * the allocation can fail, and it comes before any count changes. */
static int demand_add(vmsig_core *c, const vmsig_filter *f, uint32_t *ret) {
        unsigned *count = c->demand_all;
        uint32_t rising = 0;

        *ret = 0;
        if (f->kinds == 0 || f->passive) /* wants nothing by name, so wakes no producer */
                return 0;
        if (f->endpoint != 0) {
                demand_entry *e = demand_get_or_add(c, f->endpoint);
                if (!e)
                        return -ENOMEM;
                e->total++;
                count = e->count;
        }
        for (uint32_t k = 0; k < VMSIG_KIND_MAX; k++)
                if ((f->kinds & VMSIG_KIND_MASK(k)) && count[k]++ == 0)
                        rising |= VMSIG_KIND_MASK(k);
        *ret = rising;
        return 0;
}

/* Counts the filter out; returns the kinds nobody wants any more. */
static uint32_t demand_remove(vmsig_core *c, const vmsig_filter *f) {
        unsigned *count = c->demand_all;
        demand_entry *e = NULL;
        uint32_t falling = 0;

        if (f->endpoint != 0) {
                e = demand_get(c, f->endpoint);
                assert(e);
                count = e->count;
        }
        for (uint32_t k = 0; k < VMSIG_KIND_MAX; k++)
                if ((f->kinds & VMSIG_KIND_MASK(k)) && --count[k] == 0)
                        falling |= VMSIG_KIND_MASK(k);
        if (e && --e->total == 0) {
                hashmap_remove(c->demand, e->key);
                free(e);
        }
        return falling;
}

static void demand_notify(vmsig_core *c, vmsig_id endpoint, uint32_t kinds, bool wanted) {
        for (uint32_t k = 0; k < VMSIG_KIND_MAX; k++)
                if ((kinds & VMSIG_KIND_MASK(k)) && c->demand_hooks[k].fn)
                        c->demand_hooks[k].fn(c, k, endpoint, wanted, c->demand_hooks[k].userdata);
        for (vmsig_demand_watch *w = c->demand_watches; w; w = w->next)
                if ((kinds & VMSIG_KIND_MASK(w->kind)) && (endpoint == 0 || endpoint == w->endpoint))
                        w->fn(c, w->kind, endpoint, wanted, w->userdata);
}

/* At free time, not when a dead subscriber is destroyed later: a producer
 * must stop as soon as nobody listens. */
static void subscriber_release_demand(vmsig_subscriber *s) {
        if (!s->demand_counted)
                return;
        s->demand_counted = false;
        demand_notify(s->core, s->filter.endpoint, demand_remove(s->core, &s->filter), false);
}

void demand_free_all(vmsig_core *c) {
        c->demand = hashmap_free_with_destructor(c->demand, free);
}

int vmsig_core_set_demand_hook(vmsig_core *c, uint32_t kind, vmsig_demand_fn fn, void *userdata) {
        if (!core_kind(c, kind))
                return -EINVAL;
        c->demand_hooks[kind] = (demand_hook) { fn, fn ? userdata : NULL };
        return 0;
}

int vmsig_core_watch_demand(vmsig_core *c, uint32_t kind, vmsig_id endpoint, vmsig_demand_fn fn, void *userdata,
                            vmsig_demand_watch **ret) {
        vmsig_demand_watch *w;

        assert(c);
        assert(ret);
        if (!fn || endpoint == 0 || !core_kind(c, kind))
                return -EINVAL;
        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        *w = (vmsig_demand_watch) {
                .core = c,
                .kind = kind,
                .endpoint = endpoint,
                .fn = fn,
                .userdata = userdata,
                .next = c->demand_watches,
        };
        c->demand_watches = w;
        *ret = w;
        return 0;
}

vmsig_demand_watch *vmsig_demand_watch_free(vmsig_demand_watch *w) {
        if (!w)
                return NULL;
        for (vmsig_demand_watch **p = &w->core->demand_watches; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        break;
                }
        return mfree(w);
}

bool vmsig_core_kind_wanted(vmsig_core *c, uint32_t kind, vmsig_id endpoint) {
        demand_entry *e;

        if (kind >= VMSIG_KIND_MAX)
                return false;
        if (c->demand_all[kind] > 0)
                return true;
        e = endpoint != 0 ? demand_get(c, endpoint) : NULL;
        return e && e->count[kind] > 0;
}

/* --- subscribe and free --------------------------------------------------- */

int vmsig_core_subscribe(vmsig_core *c, const vmsig_filter *filter, size_t queue_limit, vmsig_deliver_fn fn,
                         void *userdata, vmsig_subscriber **ret) {
        vmsig_subscriber *s;
        uint32_t rising;
        int r;

        if (!fn)
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        *s = (vmsig_subscriber) {
                .core = c,
                .filter = filter ? *filter : (vmsig_filter) { 0 },
                .limit = queue_limit ? queue_limit : c->queue_limit,
                .fn = fn,
                .userdata = userdata,
        };
        r = demand_add(c, &s->filter, &rising);
        if (r < 0) {
                free(s);
                return r;
        }
        s->demand_counted = s->filter.kinds != 0 && !s->filter.passive;

        /* Append, so that delivery order across subscribers is the order in
         * which they subscribed. */
        LIST_APPEND(c->subscribers, s);
        c->n_subscribers++;

        replay(s);
        if (s->n_live > 0)
                core_schedule_dispatch(c);
        if (ret)
                *ret = s;
        /* Last, so that a producer woken by the hook finds the subscriber
         * in place. */
        demand_notify(c, s->filter.endpoint, rising, true);
        return 0;
}

static void subscriber_destroy(vmsig_subscriber *s) {
        vmsig_core *c = s->core;

        LIST_REMOVE(c->subscribers, s);
        c->n_subscribers--;
        ring_clear(s);
        free(s->queue);
        free(s);
}

vmsig_subscriber *vmsig_subscriber_free(vmsig_subscriber *s) {
        if (!s)
                return NULL;
        subscriber_release_demand(s);
        /* Inside a dispatch the loop may still hold a pointer to s; mark it
         * and let the end of the dispatch free it. */
        if (s->core->dispatching || s->in_delivery) {
                s->dead = true;
                s->core->have_dead_subscribers = true;
                return NULL;
        }
        subscriber_destroy(s);
        return NULL;
}

void subscribers_reap_dead(vmsig_core *c) {
        if (!c->have_dead_subscribers)
                return;
        c->have_dead_subscribers = false;
        for (vmsig_subscriber *s = c->subscribers, *next; s; s = next) {
                next = s->next;
                if (s->dead)
                        subscriber_destroy(s);
        }
}

void vmsig_subscriber_resume(vmsig_subscriber *s) {
        if (!s->busy)
                return;
        s->busy = false;
        core_schedule_dispatch(s->core);
}

size_t vmsig_subscriber_queued(const vmsig_subscriber *s) {
        return s->n_live;
}

uint64_t vmsig_subscriber_dropped(const vmsig_subscriber *s) {
        return s->dropped_total;
}
