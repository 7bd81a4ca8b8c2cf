/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libvmsig-core on a real sd-event loop: ordering, priorities, retention,
 * the overflow policy of vmsig-core.h, subscriber life cycle, the slot
 * allocator, fd sources, statistics and the demand hook. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>

#include "event-loop.h"
#include "vmsig-core.h"
#include "vmsig-endpoint.h"
#include "vt-util.h"

#define RUN_TIMEOUT_USEC (5 * G_USEC_PER_SEC)

typedef struct record {
        uint32_t kind;
        uint32_t key;
        vmsig_id endpoint;
        uint64_t seq;
        uint64_t timestamp;
        uint64_t value; /* the payload when it is one uint64_t, else 0 */
        uint64_t dropped;
        bool replay;
        bool resync;
} record;

typedef struct recorder recorder;
typedef void (*recorder_hook)(recorder *r, const vmsig_delivery *d);

/* A subscriber that writes down what it is given. */
struct recorder {
        vmsig_subscriber *sub;
        GArray *records;
        bool busy; /* answer BUSY instead of consuming */
        unsigned busy_calls;
        unsigned depth, max_depth;
        recorder_hook hook; /* runs after the delivery was recorded */
        void *hook_data;
};

typedef struct Fixture {
        VT_CORE_MEMBERS;
        GPtrArray *recorders;
} Fixture;

static void recorder_free(void *p) {
        recorder *r = p;

        g_array_unref(r->records);
        g_free(r);
}

static void fixture_setup(Fixture *f, gconstpointer data) {
        vt_core_start(&f->event, &f->core);
        f->recorders = g_ptr_array_new_with_free_func(recorder_free);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        /* The core frees the subscribers still registered. */
        vt_core_stop(f->event, f->core);
        g_ptr_array_unref(f->recorders);
}

/* Run everything that is ready now, including the deferred dispatch and
 * the idle reap; an fd that stays readable would spin, hence the bound. */
static void run_pending(Fixture *f) {
        vt_event_run_pending(f->event);
}

static int on_deliver(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        recorder *r = userdata;
        record rec = {
                .kind = d->event->kind,
                .key = d->event->key,
                .endpoint = d->event->endpoint,
                .seq = d->event->seq,
                .timestamp = d->event->timestamp,
                .dropped = d->dropped,
                .replay = d->replay,
                .resync = d->resync,
        };

        g_assert_true(s == r->sub || !r->sub);
        if (r->busy) {
                r->busy_calls++;
                return VMSIG_DELIVER_BUSY;
        }
        if (d->event->payload_size == sizeof(uint64_t))
                memcpy(&rec.value, d->event->payload, sizeof rec.value);
        g_array_append_val(r->records, rec);

        r->depth++;
        r->max_depth = MAX(r->max_depth, r->depth);
        if (r->hook)
                r->hook(r, d);
        r->depth--;
        return VMSIG_DELIVER_OK;
}

static recorder *recorder_new(Fixture *f, uint32_t kinds, vmsig_id endpoint, size_t limit) {
        recorder *r = g_new0(recorder, 1);
        vmsig_filter filter = { .kinds = kinds, .endpoint = endpoint };

        r->records = g_array_new(false, true, sizeof(record));
        g_ptr_array_add(f->recorders, r);
        g_assert_cmpint(vmsig_core_subscribe(f->core, &filter, limit, on_deliver, r, &r->sub), ==, 0);
        return r;
}

static const record *rec_at(recorder *r, size_t i) {
        g_assert_cmpuint(i, <, r->records->len);
        return &g_array_index(r->records, record, i);
}

static void recorder_resume(recorder *r) {
        r->busy = false;
        vmsig_subscriber_resume(r->sub);
}

static vmsig_id attach_plain(Fixture *f, const char *name) {
        vmsig_endpoint_spec spec = { .name = name, .initial_state = VMSIG_STATE_RUNNING };
        vmsig_endpoint *ep = NULL;

        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &spec, &ep), ==, 0);
        g_assert_nonnull(ep);
        return vmsig_endpoint_get_id(ep);
}

static void detach_id(Fixture *f, vmsig_id id) {
        vmsig_endpoint *ep = vmsig_core_find_endpoint(f->core, id);

        g_assert_nonnull(ep);
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, 0);
}

static void publish_u64(Fixture *f, uint32_t kind, vmsig_id ep, uint32_t key, uint64_t value) {
        g_assert_cmpint(vmsig_core_publish(f->core, kind, ep, key, &value, sizeof value), ==, 0);
}

static uint64_t retained_value(Fixture *f, vmsig_id ep, uint32_t kind, uint32_t key) {
        const vmsig_event *e = vmsig_core_get_retained(f->core, ep, kind, key);
        uint64_t v;

        g_assert_nonnull(e);
        g_assert_cmpuint(e->payload_size, ==, sizeof v);
        memcpy(&v, e->payload, sizeof v);
        return v;
}

#define MASK2(a, b) (VMSIG_KIND_MASK(a) | VMSIG_KIND_MASK(b))
#define MASK3(a, b, c) (MASK2(a, b) | VMSIG_KIND_MASK(c))

/* --- ordering ------------------------------------------------------------ */

/* Events of several endpoints, interleaved, some dispatched in one batch
 * and some in the next: each endpoint's events arrive in publish order with
 * consecutive sequence numbers and monotonic publish-time stamps. */
static void test_order_per_endpoint(Fixture *f, gconstpointer data) {
        const char *names[] = { "alpha", "beta", "gamma" };
        vmsig_id ids[3];
        uint64_t t0, t1, last_ts = 0;

        for (size_t i = 0; i < 3; i++)
                ids[i] = attach_plain(f, names[i]);
        run_pending(f); /* ROSTER(added) takes seq 1 of each endpoint */
        recorder *r = recorder_new(f, VMSIG_KIND_MASK(VMSIG_KIND_SAMPLE), 0, 0);

        t0 = now_usec();
        for (uint64_t i = 0; i < 60; i++) {
                publish_u64(f, VMSIG_KIND_SAMPLE, ids[i % 3], 0, i);
                /* Dispatch is deferred to the loop, never done by publish. */
                g_assert_cmpuint(r->records->len, ==, i < 30 ? 0 : 30);
                if (i == 29)
                        run_pending(f);
        }
        run_pending(f);
        t1 = now_usec();

        g_assert_cmpuint(r->records->len, ==, 60);
        for (uint64_t i = 0; i < 60; i++) {
                const record *rec = rec_at(r, i);
                g_assert_cmpuint(rec->value, ==, i);
                g_assert_cmpuint(rec->endpoint, ==, ids[i % 3]);
                g_assert_cmpuint(rec->kind, ==, VMSIG_KIND_SAMPLE);
                g_assert_cmpuint(rec->seq, ==, 2 + i / 3);
                g_assert_false(rec->replay);
                g_assert_cmpuint(rec->dropped, ==, 0);
                g_assert_cmpuint(rec->timestamp, >=, t0);
                g_assert_cmpuint(rec->timestamp, <=, t1);
                g_assert_cmpuint(rec->timestamp, >=, last_ts);
                last_ts = rec->timestamp;
        }
}

/* Published while the loop dispatches, an event carries the time of the
 * loop's wakeup (sd_event_now()), one clock read for all of them; published
 * outside, a fresh one. Either way the stamps never go back. */
typedef struct stamp_ctx {
        Fixture *f;
        vmsig_id ep;
        uint64_t wakeup;
} stamp_ctx;

static int on_publish_in_dispatch(sd_event_source *s, void *userdata) {
        stamp_ctx *c = userdata;

        g_assert_cmpint(sd_event_now(c->f->event, CLOCK_MONOTONIC, &c->wakeup), >=, 0);
        publish_u64(c->f, VMSIG_KIND_SAMPLE, c->ep, 0, 1);
        g_usleep(2000); /* the clock moves on, the stamp does not */
        publish_u64(c->f, VMSIG_KIND_SAMPLE, c->ep, 0, 2);
        return 0;
}

static void test_order_timestamps(Fixture *f, gconstpointer data) {
        stamp_ctx c = { .f = f, .ep = attach_plain(f, "alpha") };
        __attribute__((cleanup(sd_event_source_unrefp))) sd_event_source *defer = NULL;

        run_pending(f);
        recorder *r = recorder_new(f, VMSIG_KIND_MASK(VMSIG_KIND_SAMPLE), 0, 0);
        g_assert_cmpint(sd_event_add_defer(f->event, &defer, on_publish_in_dispatch, &c), >=, 0);
        g_assert_cmpint(sd_event_source_set_enabled(defer, SD_EVENT_ONESHOT), >=, 0);
        run_pending(f);
        uint64_t t0 = now_usec();
        publish_u64(f, VMSIG_KIND_SAMPLE, c.ep, 0, 3);
        run_pending(f);

        g_assert_cmpuint(r->records->len, ==, 3);
        g_assert_cmpuint(rec_at(r, 0)->timestamp, ==, c.wakeup);
        g_assert_cmpuint(rec_at(r, 1)->timestamp, ==, c.wakeup);
        g_assert_cmpuint(rec_at(r, 2)->timestamp, >=, t0);
        g_assert_cmpuint(rec_at(r, 2)->timestamp, >, rec_at(r, 1)->timestamp + 2000);
}

/* A lease and a lifecycle event published behind bulk samples, all before
 * one dispatch, overtake them; STATE comes between CONTROL and BULK. The
 * sequence number follows dispatch order, the timestamp publish order. */
static void test_order_priority(Fixture *f, gconstpointer data) {
        static const uint64_t expect[] = { 100, 200, 300, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
        vmsig_id a = attach_plain(f, "alpha");
        run_pending(f);
        recorder *r = recorder_new(f, MASK3(VMSIG_KIND_SAMPLE, VMSIG_KIND_LEASE, VMSIG_KIND_LIFECYCLE) |
                                              VMSIG_KIND_MASK(VMSIG_KIND_MEMCTX),
                                   0, 0);
        recorder *r2 = recorder_new(f, 0, a, 0);
        run_pending(f);
        g_array_set_size(r2->records, 0); /* its replay of ROSTER(added) */

        for (uint64_t i = 0; i < 12; i++) {
                publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, i);
                if (i == 4)
                        publish_u64(f, VMSIG_KIND_LIFECYCLE, a, 0, 100);
                if (i == 7)
                        publish_u64(f, VMSIG_KIND_LEASE, a, 1, 200);
                if (i == 9)
                        publish_u64(f, VMSIG_KIND_MEMCTX, a, 0, 300);
        }
        g_assert_cmpuint(r->records->len, ==, 0);
        run_pending(f);

        for (size_t n = 0; n < 2; n++) {
                recorder *x = n == 0 ? r : r2;
                g_assert_cmpuint(x->records->len, ==, G_N_ELEMENTS(expect));
                for (size_t i = 0; i < G_N_ELEMENTS(expect); i++) {
                        g_assert_cmpuint(rec_at(x, i)->value, ==, expect[i]);
                        g_assert_cmpuint(rec_at(x, i)->seq, ==, 2 + i);
                }
        }
        g_assert_cmpuint(rec_at(r, 0)->kind, ==, VMSIG_KIND_LIFECYCLE);
        g_assert_cmpuint(rec_at(r, 1)->kind, ==, VMSIG_KIND_LEASE);
        g_assert_cmpuint(rec_at(r, 2)->kind, ==, VMSIG_KIND_MEMCTX);
        g_assert_cmpuint(rec_at(r, 0)->timestamp, >=, rec_at(r, 3 + 4)->timestamp);
        g_assert_cmpuint(rec_at(r, 1)->timestamp, >=, rec_at(r, 0)->timestamp);
        g_assert_cmpuint(rec_at(r, 3 + 8)->timestamp, >=, rec_at(r, 1)->timestamp);
}

static void flush_hook(recorder *r, const vmsig_delivery *d) {
        Fixture *f = r->hook_data;

        if (d->event->seq != 2)
                return;
        publish_u64(f, VMSIG_KIND_SAMPLE, d->event->endpoint, 0, 99);
        /* From inside a dispatch this must not recurse into delivery. */
        vmsig_core_flush(f->core);
        g_assert_cmpuint(r->records->len, ==, 1);
}

static void test_order_flush(Fixture *f, gconstpointer data) {
        vmsig_id a = attach_plain(f, "alpha");
        recorder *r = recorder_new(f, VMSIG_KIND_MASK(VMSIG_KIND_SAMPLE), 0, 0);

        r->hook = flush_hook;
        r->hook_data = f;
        publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, 1);
        vmsig_core_flush(f->core); /* without running the loop */
        g_assert_cmpuint(r->records->len, ==, 2);
        g_assert_cmpuint(r->max_depth, ==, 1);
        g_assert_cmpuint(rec_at(r, 0)->value, ==, 1);
        g_assert_cmpuint(rec_at(r, 1)->value, ==, 99);
        g_assert_cmpuint(rec_at(r, 1)->seq, ==, 3);
        run_pending(f);
        g_assert_cmpuint(r->records->len, ==, 2);
}

/* --- retention ------------------------------------------------------------ */

static size_t count_replays(recorder *r) {
        size_t n = 0;

        for (size_t i = 0; i < r->records->len; i++) {
                if (!rec_at(r, i)->replay)
                        break;
                n++;
        }
        for (size_t i = n; i < r->records->len; i++)
                g_assert_false(rec_at(r, i)->replay);
        return n;
}

static void assert_seq_increasing(recorder *r, size_t from, size_t to) {
        for (size_t i = from; i < to; i++)
                for (size_t j = i + 1; j < to; j++)
                        if (rec_at(r, j)->endpoint == rec_at(r, i)->endpoint)
                                g_assert_cmpuint(rec_at(r, j)->seq, >, rec_at(r, i)->seq);
}

static bool has_record(recorder *r, size_t from, size_t to, vmsig_id ep, uint32_t kind, uint32_t key, uint64_t v) {
        for (size_t i = from; i < to; i++) {
                const record *x = rec_at(r, i);
                if (x->endpoint == ep && x->kind == kind && x->key == key && x->value == v)
                        return true;
        }
        return false;
}

static void publish_history(Fixture *f, vmsig_id a, vmsig_id b) {
        publish_u64(f, VMSIG_KIND_LEASE, a, 1, 1);
        run_pending(f);
        publish_u64(f, VMSIG_KIND_LEASE, a, 1, 2);
        publish_u64(f, VMSIG_KIND_LEASE, a, 2, 20);
        publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, 5);
        publish_u64(f, VMSIG_KIND_LIFECYCLE, a, 0, 7);
        run_pending(f);
        publish_u64(f, VMSIG_KIND_LEASE, a, 1, 3);
        publish_u64(f, VMSIG_KIND_LEASE, b, 1, 50);
        run_pending(f);
}

/* A late subscriber first gets the newest retained event of every
 * (endpoint, kind, key), only that one, in sequence order, and only then
 * live events, including one published before it subscribed. */
static void test_retention_replay(Fixture *f, gconstpointer data) {
        uint32_t kinds = MASK3(VMSIG_KIND_LEASE, VMSIG_KIND_LIFECYCLE, VMSIG_KIND_SAMPLE);
        vmsig_id a = attach_plain(f, "alpha"), b = attach_plain(f, "beta");

        publish_history(f, a, b);
        g_assert_cmpuint(retained_value(f, a, VMSIG_KIND_LEASE, 1), ==, 3);
        g_assert_null(vmsig_core_get_retained(f->core, a, VMSIG_KIND_SAMPLE, 0));

        publish_u64(f, VMSIG_KIND_LEASE, a, 1, 4); /* live, not dispatched yet */
        recorder *r = recorder_new(f, kinds, 0, 0);
        publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, 6);
        g_assert_cmpuint(r->records->len, ==, 0);
        run_pending(f);

        g_assert_cmpuint(r->records->len, ==, 6);
        g_assert_cmpuint(count_replays(r), ==, 4);
        g_assert_true(has_record(r, 0, 4, a, VMSIG_KIND_LEASE, 1, 3));
        g_assert_true(has_record(r, 0, 4, a, VMSIG_KIND_LEASE, 2, 20));
        g_assert_true(has_record(r, 0, 4, a, VMSIG_KIND_LIFECYCLE, 0, 7));
        g_assert_true(has_record(r, 0, 4, b, VMSIG_KIND_LEASE, 1, 50));
        assert_seq_increasing(r, 0, r->records->len);
        g_assert_cmpuint(rec_at(r, 4)->value, ==, 4);
        g_assert_cmpuint(rec_at(r, 5)->value, ==, 6);
        g_assert_cmpuint(retained_value(f, a, VMSIG_KIND_LEASE, 1), ==, 4);

        /* The replay needs no live event to be sent. */
        recorder *late = recorder_new(f, VMSIG_KIND_MASK(VMSIG_KIND_LEASE), 0, 0);
        run_pending(f);
        g_assert_cmpuint(late->records->len, ==, 3);
        g_assert_cmpuint(count_replays(late), ==, 3);
        g_assert_true(has_record(late, 0, 3, a, VMSIG_KIND_LEASE, 1, 4));
}

/* An endpoint filter limits the replay to that endpoint's retained state,
 * ROSTER included. */
static void test_retention_endpoint_filter(Fixture *f, gconstpointer data) {
        vmsig_id a = attach_plain(f, "alpha"), b = attach_plain(f, "beta");

        publish_history(f, a, b);
        recorder *r = recorder_new(f, 0, b, 0);
        run_pending(f);
        g_assert_cmpuint(r->records->len, ==, 2);
        g_assert_cmpuint(count_replays(r), ==, 2);
        g_assert_cmpuint(rec_at(r, 0)->kind, ==, VMSIG_KIND_ROSTER);
        g_assert_cmpuint(rec_at(r, 0)->seq, ==, 1);
        g_assert_true(has_record(r, 1, 2, b, VMSIG_KIND_LEASE, 1, 50));

        publish_u64(f, VMSIG_KIND_LEASE, a, 1, 8);
        publish_u64(f, VMSIG_KIND_SAMPLE, b, 0, 9);
        run_pending(f);
        g_assert_cmpuint(r->records->len, ==, 3);
        g_assert_cmpuint(rec_at(r, 2)->value, ==, 9);
}

/* --- overflow ------------------------------------------------------------- */

/* A BUSY subscriber with room for 4 keeps the newest 4 samples and is told
 * how many it lost; a fast subscriber gets everything at once. */
static void test_overflow_bulk(Fixture *f, gconstpointer data) {
        uint32_t kinds = MASK3(VMSIG_KIND_SAMPLE, VMSIG_KIND_LEASE, VMSIG_KIND_LIFECYCLE);
        vmsig_id a = attach_plain(f, "alpha");
        recorder *slow = recorder_new(f, kinds, 0, 4);
        recorder *fast = recorder_new(f, kinds, 0, 0);

        slow->busy = true;
        for (uint64_t i = 0; i < 10; i++)
                publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, i);
        run_pending(f);

        g_assert_cmpuint(fast->records->len, ==, 10);
        for (uint64_t i = 0; i < 10; i++) {
                g_assert_cmpuint(rec_at(fast, i)->value, ==, i);
                g_assert_cmpuint(rec_at(fast, i)->dropped, ==, 0);
        }
        g_assert_cmpuint(slow->busy_calls, ==, 1);
        g_assert_cmpuint(slow->records->len, ==, 0);
        g_assert_cmpuint(vmsig_subscriber_queued(slow->sub), ==, 4);
        g_assert_cmpuint(vmsig_subscriber_dropped(slow->sub), ==, 6);
        g_assert_cmpuint(vmsig_subscriber_dropped(fast->sub), ==, 0);

        recorder_resume(slow);
        run_pending(f);
        g_assert_cmpuint(slow->records->len, ==, 4);
        for (size_t i = 0; i < 4; i++) {
                g_assert_cmpuint(rec_at(slow, i)->value, ==, 6 + i);
                g_assert_cmpuint(rec_at(slow, i)->dropped, ==, i == 0 ? 6 : 0);
                g_assert_false(rec_at(slow, i)->resync);
        }
        assert_seq_increasing(slow, 0, 4);
        g_assert_cmpuint(vmsig_subscriber_queued(slow->sub), ==, 0);
}

/* With only control events queued, a new sample that does not fit is
 * dropped itself, while control events go beyond the limit. */
static void test_overflow_control(Fixture *f, gconstpointer data) {
        uint32_t kinds = MASK3(VMSIG_KIND_SAMPLE, VMSIG_KIND_LEASE, VMSIG_KIND_LIFECYCLE);
        vmsig_id a = attach_plain(f, "alpha");
        recorder *slow = recorder_new(f, kinds, 0, 4);
        recorder *fast = recorder_new(f, kinds, 0, 0);

        slow->busy = true;
        for (uint32_t k = 0; k < 4; k++)
                publish_u64(f, VMSIG_KIND_LIFECYCLE, a, k, 100 + k);
        run_pending(f);
        publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, 1);
        run_pending(f);
        publish_u64(f, VMSIG_KIND_LEASE, a, 0, 200);
        publish_u64(f, VMSIG_KIND_LEASE, a, 1, 201);
        run_pending(f);
        publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, 2);
        run_pending(f);

        g_assert_cmpuint(fast->records->len, ==, 8);
        g_assert_cmpuint(vmsig_subscriber_queued(slow->sub), ==, 6);
        g_assert_cmpuint(vmsig_subscriber_dropped(slow->sub), ==, 2);

        recorder_resume(slow);
        run_pending(f);
        g_assert_cmpuint(slow->records->len, ==, 6);
        for (size_t i = 0; i < 6; i++) {
                g_assert_cmpuint(rec_at(slow, i)->kind, !=, VMSIG_KIND_SAMPLE);
                g_assert_cmpuint(rec_at(slow, i)->value, ==, i < 4 ? 100 + i : 200 + (i - 4));
                g_assert_cmpuint(rec_at(slow, i)->dropped, ==, i == 0 ? 2 : 0);
        }
        assert_seq_increasing(slow, 0, 6);
}

/* A retained value arriving at a full queue first pushes out bulk, then
 * supersedes its own older queued value: the newest is always delivered. */
static void test_overflow_retained(Fixture *f, gconstpointer data) {
        vmsig_id a = attach_plain(f, "alpha");
        recorder *slow = recorder_new(f, MASK2(VMSIG_KIND_SAMPLE, VMSIG_KIND_LEASE), 0, 4);
        recorder *fast = recorder_new(f, MASK2(VMSIG_KIND_SAMPLE, VMSIG_KIND_LEASE), 0, 0);

        slow->busy = true;
        for (uint64_t i = 0; i < 4; i++)
                publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, i);
        run_pending(f);
        for (uint64_t v = 1; v <= 3; v++) {
                publish_u64(f, VMSIG_KIND_LEASE, a, 1, 1000 + v);
                run_pending(f);
        }
        g_assert_cmpuint(fast->records->len, ==, 7);
        g_assert_cmpuint(vmsig_subscriber_queued(slow->sub), ==, 4);
        g_assert_cmpuint(vmsig_subscriber_dropped(slow->sub), ==, 3);

        recorder_resume(slow);
        run_pending(f);
        g_assert_cmpuint(slow->records->len, ==, 4);
        g_assert_cmpuint(rec_at(slow, 0)->value, ==, 1);
        g_assert_cmpuint(rec_at(slow, 0)->dropped, ==, 3);
        g_assert_cmpuint(rec_at(slow, 1)->value, ==, 2);
        g_assert_cmpuint(rec_at(slow, 2)->value, ==, 3);
        g_assert_cmpuint(rec_at(slow, 3)->kind, ==, VMSIG_KIND_LEASE);
        g_assert_cmpuint(rec_at(slow, 3)->value, ==, 1003);
        assert_seq_increasing(slow, 0, 4);
}

/* Past 4 x queue_limit the queue is replaced by the retained state: every
 * retained value survives, flagged as replay, and the first delivery says
 * resync and how much was lost. Live delivery resumes afterwards. */
static void test_overflow_resync(Fixture *f, gconstpointer data) {
        uint32_t kinds = MASK3(VMSIG_KIND_SAMPLE, VMSIG_KIND_LEASE, VMSIG_KIND_LIFECYCLE);
        vmsig_id a = attach_plain(f, "alpha");
        recorder *slow = recorder_new(f, kinds, 0, 2);
        recorder *fast = recorder_new(f, kinds, 0, 0);
        vmsig_core_stats st;

        slow->busy = true;
        for (uint32_t k = 0; k < 8; k++) {
                publish_u64(f, VMSIG_KIND_LIFECYCLE, a, k, 100 + k);
                run_pending(f);
        }
        g_assert_cmpuint(vmsig_subscriber_queued(slow->sub), ==, 8);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.resyncs, ==, 0);

        publish_u64(f, VMSIG_KIND_LIFECYCLE, a, 8, 108);
        run_pending(f);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.resyncs, ==, 1);
        g_assert_cmpuint(vmsig_subscriber_queued(slow->sub), ==, 9);
        publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, 1); /* does not fit: lost */
        run_pending(f);
        g_assert_cmpuint(vmsig_subscriber_dropped(slow->sub), ==, 9);
        g_assert_cmpuint(fast->records->len, ==, 10);

        recorder_resume(slow);
        run_pending(f);
        g_assert_cmpuint(slow->records->len, ==, 9);
        for (size_t i = 0; i < 9; i++) {
                const record *x = rec_at(slow, i);
                g_assert_true(x->replay);
                g_assert_cmpuint(x->kind, ==, VMSIG_KIND_LIFECYCLE);
                g_assert_cmpuint(x->key, ==, i);
                g_assert_cmpuint(x->value, ==, 100 + i);
                g_assert_true(x->resync == (i == 0));
                g_assert_cmpuint(x->dropped, ==, i == 0 ? 9 : 0);
        }
        assert_seq_increasing(slow, 0, 9);

        publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, 2);
        run_pending(f);
        g_assert_cmpuint(slow->records->len, ==, 10);
        g_assert_false(rec_at(slow, 9)->replay);
        g_assert_false(rec_at(slow, 9)->resync);
        g_assert_cmpuint(rec_at(slow, 9)->dropped, ==, 0);
        g_assert_cmpuint(rec_at(slow, 9)->value, ==, 2);
}

/* The event that pushes a queue past the hard limit is lost too when its
 * kind is not retained, and must be counted like every other loss. */
static void test_overflow_resync_unretained(Fixture *f, gconstpointer data) {
        int urgent = vmsig_core_register_kind(f->core, "urgent", VMSIG_PRIORITY_CONTROL, false);
        vmsig_id a = attach_plain(f, "alpha");
        vmsig_core_stats st;

        g_assert_cmpint(urgent, >=, _VMSIG_KIND_BUILTIN_MAX);
        recorder *slow = recorder_new(f, VMSIG_KIND_MASK(urgent), 0, 1);
        slow->busy = true;
        for (uint64_t i = 0; i < 5; i++)
                publish_u64(f, urgent, a, 0, i);
        run_pending(f);
        g_assert_cmpuint(vmsig_subscriber_queued(slow->sub), ==, 0);
        g_assert_cmpuint(vmsig_subscriber_dropped(slow->sub), ==, 5);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.dropped, ==, 5);

        /* The queue is empty now, but the subscriber has not resumed yet:
         * it is not offered anything until it does. */
        unsigned busy_calls = slow->busy_calls;
        publish_u64(f, urgent, a, 0, 5);
        run_pending(f);
        g_assert_cmpuint(slow->busy_calls, ==, busy_calls);
        g_assert_cmpuint(vmsig_subscriber_queued(slow->sub), ==, 1);

        recorder_resume(slow);
        run_pending(f);
        g_assert_cmpuint(slow->records->len, ==, 1);
        g_assert_true(rec_at(slow, 0)->resync);
        g_assert_cmpuint(rec_at(slow, 0)->dropped, ==, 5);
        g_assert_cmpuint(rec_at(slow, 0)->value, ==, 5);
}

/* --- subscribers ---------------------------------------------------------- */

static void free_self_hook(recorder *r, const vmsig_delivery *d) {
        if (r->records->len == 3)
                r->sub = vmsig_subscriber_free(r->sub);
}

static void free_other_hook(recorder *r, const vmsig_delivery *d) {
        recorder *other = r->hook_data;

        if (r->records->len == 5)
                other->sub = vmsig_subscriber_free(other->sub);
}

/* Freeing a subscriber from a delivery function, its own or another's,
 * stops delivery to it at once; the others go on. */
static void test_subscriber_free_during_dispatch(Fixture *f, gconstpointer data) {
        vmsig_id a = attach_plain(f, "alpha");
        uint32_t kinds = VMSIG_KIND_MASK(VMSIG_KIND_SAMPLE);
        recorder *self = recorder_new(f, kinds, 0, 0);
        recorder *killer = recorder_new(f, kinds, 0, 0);
        recorder *victim = recorder_new(f, kinds, 0, 0);
        recorder *busy = recorder_new(f, kinds, 0, 0);
        vmsig_core_stats st;

        self->hook = free_self_hook;
        killer->hook = free_other_hook;
        killer->hook_data = victim;
        busy->busy = true;
        for (uint64_t i = 0; i < 10; i++)
                publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, i);
        run_pending(f);

        g_assert_cmpuint(self->records->len, ==, 3);
        g_assert_cmpuint(killer->records->len, ==, 10);
        g_assert_cmpuint(victim->records->len, ==, 4);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.subscribers, ==, 2);

        /* One with a full queue goes without leaking it. */
        g_assert_cmpuint(vmsig_subscriber_queued(busy->sub), ==, 10);
        busy->sub = vmsig_subscriber_free(busy->sub);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.subscribers, ==, 1);
}

static void subscribe_hook(recorder *r, const vmsig_delivery *d) {
        Fixture *f = r->hook_data;

        if (d->event->kind == VMSIG_KIND_LEASE && r->records->len == 3)
                r->hook_data = recorder_new(f, VMSIG_KIND_MASK(VMSIG_KIND_LEASE), 0, 0);
}

/* A subscriber added from a delivery function gets the event being
 * dispatched through its replay, not a second time live. */
static void test_subscriber_subscribe_during_dispatch(Fixture *f, gconstpointer data) {
        vmsig_id a = attach_plain(f, "alpha");
        recorder *r = recorder_new(f, VMSIG_KIND_MASK(VMSIG_KIND_LEASE), 0, 0);

        r->hook = subscribe_hook;
        r->hook_data = f;
        for (uint64_t i = 1; i <= 5; i++)
                publish_u64(f, VMSIG_KIND_LEASE, a, 0, i);
        run_pending(f);
        g_assert_cmpuint(r->records->len, ==, 5);

        recorder *late = r->hook_data;
        g_assert_true((void *) late != (void *) f);
        g_assert_cmpuint(late->records->len, ==, 3);
        g_assert_true(rec_at(late, 0)->replay);
        g_assert_cmpuint(rec_at(late, 0)->value, ==, 3);
        g_assert_false(rec_at(late, 1)->replay);
        g_assert_cmpuint(rec_at(late, 1)->value, ==, 4);
        g_assert_cmpuint(rec_at(late, 2)->value, ==, 5);
}

/* --- slots ---------------------------------------------------------------- */

static void attach_expect(Fixture *f, const char *name, int error) {
        vmsig_endpoint_spec spec = { .name = name, .initial_state = VMSIG_STATE_RUNNING };
        vmsig_endpoint *ep = NULL;

        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &spec, &ep), ==, error);
}

/* A slot is reused only once the detached endpoint was reaped, also when a
 * reference keeps it around, and every reuse has a new generation. */
static void test_slots_reuse_after_reap(Fixture *f, gconstpointer data) {
        vmsig_core_stats st;

        vmsig_core_set_max_endpoints(f->core, 2);
        vmsig_id a = attach_plain(f, "a"), b = attach_plain(f, "b");
        g_assert_cmpuint(a, ==, VMSIG_ID_MAKE(1, 1));
        g_assert_cmpuint(b, ==, VMSIG_ID_MAKE(2, 1));
        attach_expect(f, "c", -ENOSPC);

        detach_id(f, a);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.endpoints, ==, 1);
        g_assert_cmpuint(st.zombies, ==, 1);
        attach_expect(f, "c", -ENOSPC);
        run_pending(f);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.zombies, ==, 0);
        g_assert_cmpint(vmsig_core_publish(f->core, VMSIG_KIND_SAMPLE, a, 0, NULL, 0), ==, -ESTALE);

        vmsig_id c = attach_plain(f, "c");
        g_assert_cmpuint(c, ==, VMSIG_ID_MAKE(1, 2));
        g_assert_null(vmsig_core_find_endpoint(f->core, a));

        /* A reference held past detach and reap holds the slot too. */
        vmsig_endpoint *eb = vmsig_endpoint_ref(vmsig_core_find_endpoint(f->core, b));
        detach_id(f, b);
        run_pending(f);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.zombies, ==, 1);
        attach_expect(f, "d", -ENOSPC);
        g_assert_cmpuint(vmsig_endpoint_get_id(eb), ==, b);
        vmsig_endpoint_unref(eb);
        run_pending(f);
        g_assert_cmpuint(attach_plain(f, "d"), ==, VMSIG_ID_MAKE(2, 2));

        detach_id(f, c);
        run_pending(f);
        g_assert_cmpuint(attach_plain(f, "e"), ==, VMSIG_ID_MAKE(1, 3));
}

/* Freed slots come back first in, first out. */
static void test_slots_fifo(Fixture *f, gconstpointer data) {
        const char *names[] = { "a", "b", "c", "d", "e" };
        const char *again[] = { "f", "g", "h" };
        vmsig_id ids[5];

        vmsig_core_set_max_endpoints(f->core, 5);
        for (size_t i = 0; i < 5; i++) {
                ids[i] = attach_plain(f, names[i]);
                g_assert_cmpuint(VMSIG_ID_SLOT(ids[i]), ==, i + 1);
                g_assert_cmpuint(VMSIG_ID_GENERATION(ids[i]), ==, 1);
        }
        attach_expect(f, "x", -ENOSPC);

        detach_id(f, ids[2]);
        detach_id(f, ids[0]);
        detach_id(f, ids[4]);
        run_pending(f);

        static const uint32_t expect[] = { 3, 1, 5 };
        for (size_t i = 0; i < 3; i++) {
                vmsig_id id = attach_plain(f, again[i]);
                g_assert_cmpuint(VMSIG_ID_SLOT(id), ==, expect[i]);
                g_assert_cmpuint(VMSIG_ID_GENERATION(id), ==, 2);
        }
        attach_expect(f, "x", -ENOSPC);
        g_assert_cmpuint(vmsig_core_endpoint_count(f->core), ==, 5);
}

/* --- fd sources ------------------------------------------------------------ */

typedef struct fd_hits {
        unsigned n;
        vmsig_cookie cookie;
        int fd;
        uint32_t revents;
        uint64_t value;
} fd_hits;

static void on_eventfd(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        fd_hits *h = userdata;
        eventfd_t v = 0;

        g_assert_cmpint(eventfd_read(fd, &v), ==, 0);
        *h = (fd_hits) { h->n + 1, cookie, fd, revents, v };
}

static void on_timerfd(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        fd_hits *h = userdata;
        uint64_t v = 0;

        g_assert_cmpint(read(fd, &v, sizeof v), ==, sizeof v);
        *h = (fd_hits) { h->n + 1, cookie, fd, revents, v };
}

static void arm_timer(int fd, long msec) {
        struct itimerspec its = { .it_value = { .tv_sec = 0, .tv_nsec = msec * 1000000L } };

        g_assert_cmpint(timerfd_settime(fd, 0, &its, NULL), ==, 0);
}

/* Run the loop until the callback behind h was made n times in all. */
static void wait_hits(Fixture *f, fd_hits *h, unsigned n) {
        uint64_t deadline = now_usec() + RUN_TIMEOUT_USEC;

        while (h->n < n) {
                g_assert_cmpuint(now_usec(), <, deadline);
                g_assert_cmpint(sd_event_run(f->event, 50 * 1000), >=, 0);
        }
}

/* An eventfd and a timerfd under their own cookies: each readiness reaches
 * the callback registered for that cookie, with its fd and userdata. */
static void test_fd_demux(Fixture *f, gconstpointer data) {
        int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        fd_hits ev = { 0 }, tm = { 0 };
        vmsig_cookie ce = 0, ct = 0;
        vmsig_core_stats st;

        g_assert_cmpint(efd, >=, 0);
        g_assert_cmpint(tfd, >=, 0);
        g_assert_cmpint(vmsig_core_add_fd(f->core, efd, EPOLLIN, on_eventfd, &ev, &ce), ==, 0);
        g_assert_cmpint(vmsig_core_add_fd(f->core, tfd, EPOLLIN, on_timerfd, &tm, &ct), ==, 0);
        g_assert_cmpuint(ce, !=, 0);
        g_assert_cmpuint(ct, !=, 0);
        g_assert_cmpuint(ce, !=, ct);

        g_assert_cmpint(eventfd_write(efd, 3), ==, 0);
        wait_hits(f, &ev, 1);
        g_assert_cmpuint(ev.cookie, ==, ce);
        g_assert_cmpint(ev.fd, ==, efd);
        g_assert_true(ev.revents & EPOLLIN);
        g_assert_cmpuint(ev.value, ==, 3);
        g_assert_cmpuint(tm.n, ==, 0);

        arm_timer(tfd, 20);
        wait_hits(f, &tm, 1);
        g_assert_cmpuint(tm.cookie, ==, ct);
        g_assert_cmpint(tm.fd, ==, tfd);
        g_assert_cmpuint(tm.value, ==, 1);
        g_assert_cmpuint(ev.n, ==, 1);

        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.fd_sources, ==, 2);
        g_assert_cmpuint(st.fd_dispatches, ==, 2);

        /* Removed: readiness no longer reaches the callback. */
        g_assert_cmpint(vmsig_core_remove_fd(f->core, ce), ==, 0);
        g_assert_cmpint(eventfd_write(efd, 1), ==, 0);
        arm_timer(tfd, 20);
        wait_hits(f, &tm, 2);
        run_pending(f);
        g_assert_cmpuint(ev.n, ==, 1);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.fd_sources, ==, 1);
        g_assert_cmpuint(st.fd_dispatches, ==, 3);

        g_assert_cmpint(vmsig_core_remove_fd(f->core, ct), ==, 0);
        close(efd);
        close(tfd);
}

/* A cookie outlives its registration only as a rejected handle, even when
 * its table entry is reused by a new registration. */
static void test_fd_stale(Fixture *f, gconstpointer data) {
        int a = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), b = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        fd_hits ha = { 0 }, hb = { 0 };
        vmsig_cookie ca, cb;

        g_assert_cmpint(vmsig_core_add_fd(f->core, a, EPOLLIN, on_eventfd, &ha, &ca), ==, 0);
        g_assert_cmpint(vmsig_core_remove_fd(f->core, ca), ==, 0);
        g_assert_cmpint(vmsig_core_remove_fd(f->core, ca), ==, -ESTALE);
        g_assert_cmpint(vmsig_core_set_fd_events(f->core, ca, EPOLLIN), ==, -ESTALE);
        g_assert_cmpint(vmsig_core_remove_fd(f->core, 0), ==, -ESTALE);
        g_assert_cmpint(vmsig_core_remove_fd(f->core, (uint64_t) 9999 << 32 | 1), ==, -ESTALE);

        g_assert_cmpint(vmsig_core_add_fd(f->core, b, EPOLLIN, on_eventfd, &hb, &cb), ==, 0);
        g_assert_cmpuint(cb >> 32, ==, ca >> 32); /* same table entry ... */
        g_assert_cmpuint(cb, !=, ca);             /* ... new generation */
        g_assert_cmpint(vmsig_core_remove_fd(f->core, ca), ==, -ESTALE);

        /* Events masked off and back on. */
        g_assert_cmpint(vmsig_core_set_fd_events(f->core, cb, 0), ==, 0);
        g_assert_cmpint(eventfd_write(b, 1), ==, 0);
        run_pending(f);
        g_assert_cmpuint(hb.n, ==, 0);
        g_assert_cmpint(vmsig_core_set_fd_events(f->core, cb, EPOLLIN), ==, 0);
        wait_hits(f, &hb, 1);
        g_assert_cmpuint(hb.cookie, ==, cb);
        g_assert_cmpuint(ha.n, ==, 0);

        g_assert_cmpint(vmsig_core_add_fd(f->core, -1, EPOLLIN, on_eventfd, &ha, NULL), ==, -EINVAL);
        g_assert_cmpint(vmsig_core_add_fd(f->core, a, EPOLLIN, NULL, &ha, NULL), ==, -EINVAL);

        /* The owner may close the fd before removing the source. */
        close(b);
        g_assert_cmpint(vmsig_core_remove_fd(f->core, cb), ==, 0);
        close(a);
}

typedef struct batch_ctx {
        fd_hits hits[3];
        vmsig_cookie cookies[3];
        int fds[3];
} batch_ctx;

static void on_batch(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        batch_ctx *b = userdata;
        size_t me = cookie == b->cookies[0] ? 0 : cookie == b->cookies[1] ? 1 : 2;
        size_t other = 1 - me;
        eventfd_t v;

        g_assert_cmpuint(me, <, 2);
        g_assert_cmpint(eventfd_read(fd, &v), ==, 0);
        b->hits[me].n++;
        /* Remove the other source, whose readiness may already be in this
         * batch, and reuse its table entry for a third, idle one. */
        g_assert_cmpint(vmsig_core_remove_fd(c, b->cookies[other]), ==, 0);
        g_assert_cmpint(vmsig_core_add_fd(c, b->fds[2], EPOLLIN, on_batch, b, &b->cookies[2]), ==, 0);
        g_assert_cmpuint(b->cookies[2] >> 32, ==, b->cookies[other] >> 32);
}

/* A callback for a cookie removed earlier in the same epoll batch is never
 * made, not even to the registration that took over its entry. */
static void test_fd_removed_in_batch(Fixture *f, gconstpointer data) {
        batch_ctx b = { 0 };

        for (size_t i = 0; i < 3; i++)
                b.fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        for (size_t i = 0; i < 2; i++) {
                g_assert_cmpint(vmsig_core_add_fd(f->core, b.fds[i], EPOLLIN, on_batch, &b, &b.cookies[i]), ==, 0);
                g_assert_cmpint(eventfd_write(b.fds[i], 1), ==, 0);
        }
        run_pending(f);
        g_assert_cmpuint(b.hits[0].n + b.hits[1].n, ==, 1);
        g_assert_cmpuint(b.hits[2].n, ==, 0);

        for (size_t i = 0; i < 3; i++)
                close(b.fds[i]);
}

/* --- kinds, objects, stats -------------------------------------------------- */

static void test_kinds(Fixture *f, gconstpointer data) {
        vmsig_id a = attach_plain(f, "alpha");
        int k = vmsig_core_register_kind(f->core, "custom", VMSIG_PRIORITY_BULK, true);

        g_assert_cmpint(k, ==, _VMSIG_KIND_BUILTIN_MAX);
        g_assert_cmpstr(vmsig_core_kind_name(f->core, k), ==, "custom");
        g_assert_cmpstr(vmsig_core_kind_name(f->core, VMSIG_KIND_SAMPLE), ==, "sample");
        g_assert_cmpstr(vmsig_core_kind_name(f->core, VMSIG_KIND_LEASE), ==, "lease");
        g_assert_null(vmsig_core_kind_name(f->core, k + 1));
        g_assert_null(vmsig_core_kind_name(f->core, VMSIG_KIND_MAX));
        g_assert_cmpint(vmsig_core_register_kind(f->core, "custom", VMSIG_PRIORITY_BULK, true), ==, -EEXIST);
        g_assert_cmpint(vmsig_core_register_kind(f->core, "lease", VMSIG_PRIORITY_BULK, true), ==, -EEXIST);
        g_assert_cmpint(vmsig_core_register_kind(f->core, "x", _VMSIG_PRIORITY_MAX, true), ==, -EINVAL);
        g_assert_cmpint(vmsig_core_register_kind(f->core, NULL, VMSIG_PRIORITY_BULK, true), ==, -EINVAL);

        g_assert_cmpint(vmsig_core_publish(f->core, k + 1, a, 0, NULL, 0), ==, -EINVAL);
        g_assert_cmpint(vmsig_core_publish(f->core, VMSIG_KIND_MAX, a, 0, NULL, 0), ==, -EINVAL);
        g_assert_cmpint(vmsig_core_publish(f->core, k, VMSIG_ID_MAKE(9, 1), 0, NULL, 0), ==, -ESTALE);
        g_assert_cmpint(vmsig_core_publish(f->core, k, VMSIG_ID_MAKE(1, 2), 0, NULL, 0), ==, -ESTALE);

        /* A registered retained kind is retained. */
        publish_u64(f, k, a, 7, 42);
        run_pending(f);
        g_assert_cmpuint(retained_value(f, a, k, 7), ==, 42);

        for (int i = k + 1; i < VMSIG_KIND_MAX; i++) {
                char name[16];
                g_snprintf(name, sizeof name, "k%d", i);
                g_assert_cmpint(vmsig_core_register_kind(f->core, name, VMSIG_PRIORITY_STATE, false), ==, i);
        }
        g_assert_cmpint(vmsig_core_register_kind(f->core, "full", VMSIG_PRIORITY_STATE, false), ==, -ENOSPC);
}

typedef struct object {
        unsigned *freed;
        uint64_t value;
} object;

static void object_free(void *p) {
        object *o = p;

        (*o->freed)++;
        g_free(o);
}

static void publish_object(Fixture *f, uint32_t kind, vmsig_id ep, uint64_t value, unsigned *freed) {
        object *o = g_new(object, 1);

        *o = (object) { freed, value };
        g_assert_cmpint(vmsig_core_publish_object(f->core, kind, ep, 0, o, sizeof *o, object_free), ==, 0);
}

/* An object payload lives exactly as long as a queue or the retention entry
 * holds its event. */
static void test_publish_object(Fixture *f, gconstpointer data) {
        vmsig_id a = attach_plain(f, "alpha");
        unsigned sample_freed = 0, lease_freed = 0;
        recorder *busy = recorder_new(f, VMSIG_KIND_MASK(VMSIG_KIND_SAMPLE), 0, 0);

        busy->busy = true;
        publish_object(f, VMSIG_KIND_SAMPLE, a, 1, &sample_freed);
        run_pending(f);
        g_assert_cmpuint(sample_freed, ==, 0); /* still queued */
        recorder_resume(busy);
        run_pending(f);
        g_assert_cmpuint(busy->records->len, ==, 1);
        g_assert_cmpuint(sample_freed, ==, 1);

        publish_object(f, VMSIG_KIND_LEASE, a, 1, &lease_freed);
        run_pending(f);
        g_assert_cmpuint(lease_freed, ==, 0); /* retained */
        const vmsig_event *e = vmsig_core_get_retained(f->core, a, VMSIG_KIND_LEASE, 0);
        g_assert_nonnull(e);
        g_assert_cmpuint(((const object *) e->payload)->value, ==, 1);
        publish_object(f, VMSIG_KIND_LEASE, a, 2, &lease_freed);
        run_pending(f);
        g_assert_cmpuint(lease_freed, ==, 1); /* superseded */

        detach_id(f, a);
        run_pending(f);
        g_assert_cmpuint(lease_freed, ==, 2); /* its slot was released */
}

static void test_stats(Fixture *f, gconstpointer data) {
        vmsig_core_stats st;

        recorder *all = recorder_new(f, 0, 0, 0);
        vmsig_id a = attach_plain(f, "alpha");
        for (uint64_t i = 0; i < 5; i++)
                publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, i);
        run_pending(f);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.published, ==, 6);
        g_assert_cmpuint(st.dispatched, ==, 6);
        g_assert_cmpuint(st.delivered, ==, 6);
        g_assert_cmpuint(all->records->len, ==, 6);

        recorder *slow = recorder_new(f, VMSIG_KIND_MASK(VMSIG_KIND_SAMPLE), 0, 1);
        slow->busy = true;
        for (uint64_t i = 0; i < 3; i++)
                publish_u64(f, VMSIG_KIND_SAMPLE, a, 0, i);
        run_pending(f);
        recorder_resume(slow);
        run_pending(f);

        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.published, ==, 9);
        g_assert_cmpuint(st.dispatched, ==, 9);
        g_assert_cmpuint(st.delivered, ==, 10);
        g_assert_cmpuint(st.dropped, ==, 2);
        g_assert_cmpuint(st.resyncs, ==, 0);
        g_assert_cmpuint(st.subscribers, ==, 2);
        g_assert_cmpuint(st.endpoints, ==, 1);
        g_assert_cmpuint(st.zombies, ==, 0);
        g_assert_cmpuint(st.fd_sources, ==, 0);
        g_assert_cmpuint(st.fd_dispatches, ==, 0);
        g_assert_cmpuint(slow->records->len, ==, 1);
        g_assert_cmpuint(rec_at(slow, 0)->value, ==, 2);
        g_assert_cmpuint(rec_at(slow, 0)->dropped, ==, 2);
}

/* --- demand ----------------------------------------------------------------- */

typedef struct demand_call {
        uint32_t kind;
        vmsig_id endpoint;
        bool wanted;
} demand_call;

static void on_demand(vmsig_core *c, uint32_t kind, vmsig_id endpoint, bool wanted, void *userdata) {
        demand_call call = { kind, endpoint, wanted };

        g_array_append_val((GArray *) userdata, call);
}

static void on_demand_unexpected(vmsig_core *c, uint32_t kind, vmsig_id endpoint, bool wanted, void *userdata) {
        g_assert_not_reached();
}

static int deliver_nothing(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        return VMSIG_DELIVER_OK;
}

static vmsig_subscriber *subscribe_plain(Fixture *f, uint32_t kinds, vmsig_id endpoint) {
        vmsig_filter filter = { .kinds = kinds, .endpoint = endpoint };
        vmsig_subscriber *s = NULL;

        g_assert_cmpint(vmsig_core_subscribe(f->core, &filter, 0, deliver_nothing, NULL, &s), ==, 0);
        return s;
}

/* Asserts that the hook was called exactly once since the last check, and
 * with what. */
static void assert_demand(GArray *calls, uint32_t kind, vmsig_id endpoint, bool wanted) {
        g_assert_cmpuint(calls->len, ==, 1);
        g_assert_cmpuint(g_array_index(calls, demand_call, 0).kind, ==, kind);
        g_assert_cmpuint(g_array_index(calls, demand_call, 0).endpoint, ==, endpoint);
        g_assert_cmpint(g_array_index(calls, demand_call, 0).wanted, ==, wanted);
        g_array_set_size(calls, 0);
}

static void test_demand_find_kind(Fixture *f, gconstpointer data) {
        int k = vmsig_core_register_kind(f->core, "frame", VMSIG_PRIORITY_BULK, true);

        g_assert_cmpint(k, >=, 0);
        g_assert_cmpint(vmsig_core_find_kind(f->core, "frame"), ==, k);
        g_assert_cmpint(vmsig_core_find_kind(f->core, "lease"), ==, VMSIG_KIND_LEASE);
        g_assert_cmpint(vmsig_core_find_kind(f->core, "roster"), ==, VMSIG_KIND_ROSTER);
        g_assert_cmpint(vmsig_core_find_kind(f->core, "fram"), ==, -ENOENT);
        g_assert_cmpint(vmsig_core_find_kind(f->core, "frames"), ==, -ENOENT);
        g_assert_cmpint(vmsig_core_find_kind(f->core, ""), ==, -ENOENT);
        g_assert_cmpint(vmsig_core_find_kind(f->core, NULL), ==, -EINVAL);
}

/* The hook on the registered kind k, which nobody wants yet; unknown kinds
 * are refused and change no hook. */
static void set_demand_hook(Fixture *f, int k, vmsig_id a, GArray *calls) {
        g_assert_cmpint(k, >=, 0);
        g_assert_cmpint(vmsig_core_set_demand_hook(f->core, k, on_demand, calls), ==, 0);
        g_assert_cmpint(vmsig_core_set_demand_hook(f->core, k + 1, on_demand_unexpected, NULL), ==, -EINVAL);
        g_assert_cmpint(vmsig_core_set_demand_hook(f->core, VMSIG_KIND_MAX, on_demand_unexpected, NULL), ==, -EINVAL);
        g_assert_false(vmsig_core_kind_wanted(f->core, k, a));
        g_assert_false(vmsig_core_kind_wanted(f->core, k, 0));
        g_assert_false(vmsig_core_kind_wanted(f->core, VMSIG_KIND_MAX, a));
}

/* The hook sees each 0 -> 1 and 1 -> 0 of (kind, endpoint) once, from
 * inside vmsig_core_subscribe() and vmsig_subscriber_free(), with endpoint
 * 0 for subscribers of every endpoint; filters of every kind, or of other
 * kinds, count for nothing. */
static void test_demand_transitions(Fixture *f, gconstpointer data) {
        g_autoptr(GArray) calls = g_array_new(false, true, sizeof(demand_call));
        vmsig_id a = attach_plain(f, "alpha"), b = attach_plain(f, "beta");
        int k = vmsig_core_register_kind(f->core, "frame", VMSIG_PRIORITY_BULK, true);
        uint32_t mk = VMSIG_KIND_MASK(k);

        set_demand_hook(f, k, a, calls);
        vmsig_subscriber *every_kind_a = subscribe_plain(f, 0, a);
        vmsig_subscriber *every_kind_all = subscribe_plain(f, 0, 0);
        vmsig_subscriber *sample_a = subscribe_plain(f, VMSIG_KIND_MASK(VMSIG_KIND_SAMPLE), a);
        g_assert_cmpuint(calls->len, ==, 0);
        g_assert_false(vmsig_core_kind_wanted(f->core, k, a));
        g_assert_true(vmsig_core_kind_wanted(f->core, VMSIG_KIND_SAMPLE, a));
        g_assert_false(vmsig_core_kind_wanted(f->core, VMSIG_KIND_SAMPLE, b));

        vmsig_subscriber *a1 = subscribe_plain(f, mk, a);
        assert_demand(calls, k, a, true);
        vmsig_subscriber *a2 = subscribe_plain(f, mk | VMSIG_KIND_MASK(VMSIG_KIND_LEASE), a);
        g_assert_cmpuint(calls->len, ==, 0);
        g_assert_true(vmsig_core_kind_wanted(f->core, k, a));
        g_assert_false(vmsig_core_kind_wanted(f->core, k, b));
        g_assert_false(vmsig_core_kind_wanted(f->core, k, 0));

        vmsig_subscriber *all1 = subscribe_plain(f, mk, 0);
        assert_demand(calls, k, 0, true);
        vmsig_subscriber *all2 = subscribe_plain(f, mk, 0);
        g_assert_cmpuint(calls->len, ==, 0);
        g_assert_true(vmsig_core_kind_wanted(f->core, k, b));
        g_assert_true(vmsig_core_kind_wanted(f->core, k, 0));

        vmsig_subscriber_free(a1);
        g_assert_cmpuint(calls->len, ==, 0);
        vmsig_subscriber_free(a2);
        assert_demand(calls, k, a, false);
        g_assert_true(vmsig_core_kind_wanted(f->core, k, a)); /* through all1, all2 */
        vmsig_subscriber_free(all1);
        g_assert_cmpuint(calls->len, ==, 0);
        vmsig_subscriber_free(all2);
        assert_demand(calls, k, 0, false);
        g_assert_false(vmsig_core_kind_wanted(f->core, k, a));
        g_assert_false(vmsig_core_kind_wanted(f->core, k, b));

        vmsig_subscriber_free(every_kind_a);
        vmsig_subscriber_free(every_kind_all);
        vmsig_subscriber_free(sample_a);
        g_assert_cmpuint(calls->len, ==, 0);
        g_assert_false(vmsig_core_kind_wanted(f->core, VMSIG_KIND_SAMPLE, a));

        /* Wanted again, once more a transition; without a hook, none. */
        a1 = subscribe_plain(f, mk, a);
        assert_demand(calls, k, a, true);
        g_assert_cmpint(vmsig_core_set_demand_hook(f->core, k, NULL, NULL), ==, 0);
        vmsig_subscriber_free(a1);
        all1 = subscribe_plain(f, mk, 0);
        g_assert_cmpuint(calls->len, ==, 0);
        g_assert_true(vmsig_core_kind_wanted(f->core, k, b));
        vmsig_subscriber_free(all1);
        g_assert_false(vmsig_core_kind_wanted(f->core, k, b));
}

typedef struct demand_free_ctx {
        vmsig_core *core;
        uint32_t kind;
        vmsig_id endpoint;
        GArray *calls;
        recorder *victim;
} demand_free_ctx;

/* Frees itself and its victim from a delivery: the demand is gone at once,
 * not when the dispatch reaps the dead subscribers. */
static void free_with_demand_hook(recorder *r, const vmsig_delivery *d) {
        demand_free_ctx *ctx = r->hook_data;

        if (r->records->len != 2)
                return;
        ctx->victim->sub = vmsig_subscriber_free(ctx->victim->sub);
        g_assert_cmpuint(ctx->calls->len, ==, 0);
        g_assert_true(vmsig_core_kind_wanted(ctx->core, ctx->kind, ctx->endpoint));
        r->sub = vmsig_subscriber_free(r->sub);
        assert_demand(ctx->calls, ctx->kind, ctx->endpoint, false);
        g_assert_false(vmsig_core_kind_wanted(ctx->core, ctx->kind, ctx->endpoint));
}

static void test_demand_free_in_delivery(Fixture *f, gconstpointer data) {
        g_autoptr(GArray) calls = g_array_new(false, true, sizeof(demand_call));
        vmsig_id a = attach_plain(f, "alpha");
        int k = vmsig_core_register_kind(f->core, "frame", VMSIG_PRIORITY_BULK, false);
        uint32_t mk = VMSIG_KIND_MASK(k);
        vmsig_core_stats st;

        g_assert_cmpint(vmsig_core_set_demand_hook(f->core, k, on_demand, calls), ==, 0);
        recorder *killer = recorder_new(f, mk, a, 0);
        assert_demand(calls, k, a, true);
        recorder *victim = recorder_new(f, mk, a, 0);
        g_assert_cmpuint(calls->len, ==, 0);
        demand_free_ctx ctx = { f->core, k, a, calls, victim };
        killer->hook = free_with_demand_hook;
        killer->hook_data = &ctx;

        for (uint64_t i = 0; i < 4; i++)
                publish_u64(f, k, a, 0, i);
        run_pending(f);
        g_assert_cmpuint(killer->records->len, ==, 2);
        g_assert_null(killer->sub);
        g_assert_null(victim->sub);
        g_assert_cmpuint(calls->len, ==, 0); /* nothing more at the reap */
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.subscribers, ==, 0);
        g_assert_false(vmsig_core_kind_wanted(f->core, k, a));

        /* And a subscriber freed while another one is being delivered to. */
        recorder *first = recorder_new(f, mk, 0, 0);
        assert_demand(calls, k, 0, true);
        recorder *second = recorder_new(f, mk, 0, 0);
        demand_free_ctx ctx2 = { f->core, k, 0, calls, second };
        first->hook = free_with_demand_hook;
        first->hook_data = &ctx2;
        for (uint64_t i = 0; i < 4; i++)
                publish_u64(f, k, a, 0, i);
        run_pending(f);
        g_assert_cmpuint(first->records->len, ==, 2);
        g_assert_cmpuint(second->records->len, ==, 1);
        g_assert_cmpuint(calls->len, ==, 0);
}

/* A subscriber of a detached endpoint keeps counting for that endpoint
 * (by id, generation included) until it is freed; the slot's next
 * endpoint is not wanted through it. */
static void test_demand_detached(Fixture *f, gconstpointer data) {
        g_autoptr(GArray) calls = g_array_new(false, true, sizeof(demand_call));
        int k = vmsig_core_register_kind(f->core, "frame", VMSIG_PRIORITY_BULK, true);
        vmsig_id a = attach_plain(f, "alpha");

        vmsig_core_set_max_endpoints(f->core, 1);
        g_assert_cmpint(vmsig_core_set_demand_hook(f->core, k, on_demand, calls), ==, 0);
        vmsig_subscriber *s = subscribe_plain(f, VMSIG_KIND_MASK(k), a);
        assert_demand(calls, k, a, true);

        detach_id(f, a);
        run_pending(f);
        g_assert_cmpuint(calls->len, ==, 0);
        g_assert_true(vmsig_core_kind_wanted(f->core, k, a));

        vmsig_id a2 = attach_plain(f, "alpha");
        g_assert_cmpuint(VMSIG_ID_SLOT(a2), ==, VMSIG_ID_SLOT(a));
        g_assert_cmpuint(a2, !=, a);
        g_assert_false(vmsig_core_kind_wanted(f->core, k, a2));

        vmsig_subscriber_free(s);
        assert_demand(calls, k, a, false);
        g_assert_false(vmsig_core_kind_wanted(f->core, k, a));
}

/* Freeing the core with subscribers left calls no hook: whoever set it is
 * gone by then, and so are the endpoints it would look at. */
static void test_demand_core_free(void) {
        g_autoptr(GArray) calls = g_array_new(false, true, sizeof(demand_call));
        Fixture f = { 0 };

        fixture_setup(&f, NULL);
        int k = vmsig_core_register_kind(f.core, "frame", VMSIG_PRIORITY_BULK, true);
        vmsig_id a = attach_plain(&f, "alpha");
        g_assert_cmpint(vmsig_core_set_demand_hook(f.core, k, on_demand, calls), ==, 0);
        (void) subscribe_plain(&f, VMSIG_KIND_MASK(k), a);
        (void) subscribe_plain(&f, VMSIG_KIND_MASK(k), 0);
        g_assert_cmpuint(calls->len, ==, 2);
        g_array_set_size(calls, 0);
        fixture_teardown(&f, NULL);
        g_assert_cmpuint(calls->len, ==, 0);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);

        VT_FIXTURE_TESTS("/core/order/", test_order_per_endpoint, test_order_timestamps, test_order_priority,
                         test_order_flush);
        VT_FIXTURE_TESTS("/core/retention/", test_retention_replay, test_retention_endpoint_filter);
        VT_FIXTURE_TESTS("/core/overflow/", test_overflow_bulk, test_overflow_control, test_overflow_retained,
                         test_overflow_resync, test_overflow_resync_unretained);
        VT_FIXTURE_TESTS("/core/subscriber/", test_subscriber_free_during_dispatch,
                         test_subscriber_subscribe_during_dispatch);
        VT_FIXTURE_TESTS("/core/slots/", test_slots_reuse_after_reap, test_slots_fifo);
        VT_FIXTURE_TESTS("/core/fd/", test_fd_demux, test_fd_stale, test_fd_removed_in_batch);
        VT_FIXTURE_TESTS("/core/", test_kinds, test_publish_object, test_stats);
        VT_FIXTURE_TESTS("/core/demand/", test_demand_find_kind, test_demand_transitions, test_demand_free_in_delivery,
                         test_demand_detached);
        g_test_add_func("/core/demand/core-free", test_demand_core_free);
        return g_test_run();
}
