/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-core: in-process event throughput of libvmsig-core, from publish to
 * delivery, against a bare sd-event loop doing the equivalent work.
 *
 * Both sides run the same producer: a defer source that publishes BATCH
 * payloads of PAYLOAD bytes per loop iteration until EVENTS were published.
 *   core  vmsig_core_publish() of a bulk sample event on one attached
 *         endpoint; K in-process subscribers (vmsig_core_subscribe()) receive
 *         it from the core's dispatch source.
 *   bare  the payload is copied into a malloc'd node on a FIFO and a
 *         higher-priority defer source (enabled one-shot, as the core does)
 *         hands every node to K callbacks, then frees it.
 * Each subscriber/callback reads the payload, so delivery is not optimised
 * away. Time is the thread's CPU time; a run is sized to about 0.25 s of
 * it and alternates core and bare in 10 slices (each slice a fresh loop,
 * set up outside the clock). The median of RUNS is reported for K = 1 and
 * K = 16, for each batch size. ratio = core events/s / bare events/s.
 * Lines starting with "@" are for bench/run.sh.
 */
#include <stdlib.h>
#include <systemd/sd-event.h>

#include "bench-lib.h"
#include "vmsig-core.h"
#include "vmsig-endpoint.h"

#define SUBSCRIBERS_MAX 64
#define PAYLOAD_MAX 4096
#define CALIBRATE_EVENTS 20000
#define SLICES 10

#define MAX(a, b) ((a) > (b) ? (a) : (b))

typedef struct bench {
        sd_event *event;
        unsigned fixed_events; /* --events, or 0 to size runs by time */
        unsigned events, batch, published;
        size_t payload_size;
        uint8_t payload[PAYLOAD_MAX];
        uint64_t delivered, checksum;
        unsigned n_subscribers;
        bool only_core, only_bare; /* for profiling one side */

        /* core */
        vmsig_core *core;
        vmsig_id endpoint;

        /* bare */
        struct node *head, *tail;
        sd_event_source *dispatch_source;
        bool dispatch_scheduled;
} bench;

typedef struct node {
        struct node *next;
        size_t size;
        max_align_t data[];
} node;

/* Thread CPU time: the benchmark is one thread that never sleeps, so this
 * is its wall time on a quiet machine, minus the time it was preempted by
 * other work on a busy one. */
static uint64_t now_nsec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* What every receiver does with a payload, on both sides. */
static void consume(bench *b, const void *payload, size_t size) {
        b->checksum += ((const uint8_t *) payload)[size - 1];
        b->delivered++;
}

static void finish_if_done(bench *b) {
        if (b->delivered == (uint64_t) b->events * b->n_subscribers)
                (void) sd_event_exit(b->event, 0);
}

/* The loop until every event is delivered, timed. */
static int timed_loop(bench *b, uint64_t *ret_nsec) {
        uint64_t start = now_nsec();
        int r = sd_event_loop(b->event);

        *ret_nsec = now_nsec() - start;
        return r >= 0 && b->delivered != (uint64_t) b->events * b->n_subscribers ? -EIO : r;
}

/* --- core ------------------------------------------------------------------ */

static int on_delivery(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        bench *b = userdata;

        if (d->event->kind != VMSIG_KIND_SAMPLE)
                return VMSIG_DELIVER_OK;
        consume(b, d->event->payload, d->event->payload_size);
        finish_if_done(b);
        return VMSIG_DELIVER_OK;
}

static int core_produce(sd_event_source *s, void *userdata) {
        bench *b = userdata;
        int r;

        for (unsigned i = 0; i < b->batch && b->published < b->events; i++, b->published++) {
                b->payload[0] = (uint8_t) b->published;
                r = vmsig_core_publish(b->core, VMSIG_KIND_SAMPLE, b->endpoint, 0, b->payload, b->payload_size);
                if (r < 0)
                        return r;
        }
        if (b->published == b->events)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

static int run_core(bench *b, uint64_t *ret_nsec) {
        vmsig_subscriber *subs[SUBSCRIBERS_MAX] = {};
        vmsig_endpoint_spec spec = { .name = "bench", .initial_state = VMSIG_STATE_RUNNING };
        vmsig_filter filter = { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_SAMPLE) };
        sd_event_source *producer = NULL;
        vmsig_endpoint *ep;
        int r;

        r = sd_event_new(&b->event);
        if (r < 0)
                return r;
        r = vmsig_core_new(b->event, &b->core);
        if (r >= 0)
                r = vmsig_core_attach_endpoint(b->core, &spec, &ep);
        if (r < 0)
                goto finish;
        b->endpoint = vmsig_endpoint_get_id(ep);
        for (unsigned i = 0; i < b->n_subscribers; i++) {
                r = vmsig_core_subscribe(b->core, &filter, 0, on_delivery, b, &subs[i]);
                if (r < 0)
                        goto finish;
        }
        vmsig_core_flush(b->core); /* the roster event, before the clock starts */
        r = sd_event_add_defer(b->event, &producer, core_produce, b);
        if (r >= 0) /* defer sources start out one-shot */
                r = sd_event_source_set_enabled(producer, SD_EVENT_ON);
        if (r < 0)
                goto finish;

        r = timed_loop(b, ret_nsec);
finish:
        sd_event_source_disable_unref(producer);
        for (unsigned i = 0; i < b->n_subscribers; i++)
                vmsig_subscriber_free(subs[i]);
        b->core = vmsig_core_free(b->core);
        b->event = sd_event_unref(b->event);
        return r;
}

/* --- bare ------------------------------------------------------------------ */

typedef void (*bare_fn)(bench *b, const void *payload, size_t size);

static void bare_callback(bench *b, const void *payload, size_t size) {
        consume(b, payload, size);
        finish_if_done(b);
}

/* Called through a table, as the core calls its subscribers. */
static bare_fn bare_callbacks[SUBSCRIBERS_MAX];

static int bare_dispatch(sd_event_source *s, void *userdata) {
        bench *b = userdata;

        b->dispatch_scheduled = false;
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        while (b->head) {
                node *n = b->head;
                b->head = n->next;
                if (!b->head)
                        b->tail = NULL;
                for (unsigned i = 0; i < b->n_subscribers; i++)
                        bare_callbacks[i](b, n->data, n->size);
                free(n);
        }
        return 0;
}

static int bare_publish(bench *b, const void *payload, size_t size) {
        node *n = malloc(sizeof(node) + size);
        if (!n)
                return -ENOMEM;
        n->next = NULL;
        n->size = size;
        memcpy(n->data, payload, size);
        if (b->tail)
                b->tail->next = n;
        else
                b->head = n;
        b->tail = n;
        if (!b->dispatch_scheduled) {
                b->dispatch_scheduled = true;
                (void) sd_event_source_set_enabled(b->dispatch_source, SD_EVENT_ONESHOT);
        }
        return 0;
}

static int bare_produce(sd_event_source *s, void *userdata) {
        bench *b = userdata;
        int r;

        for (unsigned i = 0; i < b->batch && b->published < b->events; i++, b->published++) {
                b->payload[0] = (uint8_t) b->published;
                r = bare_publish(b, b->payload, b->payload_size);
                if (r < 0)
                        return r;
        }
        if (b->published == b->events)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

static int run_bare(bench *b, uint64_t *ret_nsec) {
        sd_event_source *producer = NULL;
        int r;

        for (unsigned i = 0; i < SUBSCRIBERS_MAX; i++)
                bare_callbacks[i] = bare_callback;
        r = sd_event_new(&b->event);
        if (r < 0)
                return r;
        r = sd_event_add_defer(b->event, &b->dispatch_source, bare_dispatch, b);
        if (r >= 0)
                r = sd_event_source_set_priority(b->dispatch_source, SD_EVENT_PRIORITY_NORMAL - 10);
        if (r >= 0)
                r = sd_event_source_set_enabled(b->dispatch_source, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_defer(b->event, &producer, bare_produce, b);
        if (r >= 0)
                r = sd_event_source_set_enabled(producer, SD_EVENT_ON);
        if (r < 0)
                goto finish;

        r = timed_loop(b, ret_nsec);
finish:
        while (b->head) {
                node *n = b->head;
                b->head = n->next;
                free(n);
        }
        b->tail = NULL;
        b->dispatch_scheduled = false;
        sd_event_source_disable_unref(producer);
        b->dispatch_source = sd_event_source_disable_unref(b->dispatch_source);
        b->event = sd_event_unref(b->event);
        return r;
}

/* --- driver ---------------------------------------------------------------- */

static int measure(bench *b, bool core, uint64_t *ret_nsec) {
        b->published = 0;
        b->delivered = 0;
        return core ? run_core(b, ret_nsec) : run_bare(b, ret_nsec);
}

static int run_pair(bench *b, unsigned runs, double seconds) {
        uint64_t tc[BENCH_RUNS_MAX] = {}, tb[BENCH_RUNS_MAX] = {}, t;
        unsigned events;
        int r;

        /* Warm up the allocator and caches on both sides, and size the runs
         * from the core's speed, unless the count was given. */
        b->events = CALIBRATE_EVENTS;
        r = measure(b, true, &t);
        if (r >= 0)
                r = measure(b, false, &t);
        if (r >= 0)
                r = measure(b, true, &t);
        if (r < 0)
                return r;
        events = b->fixed_events;
        if (events == 0)
                events = (unsigned) MAX(seconds * 1e9 / ((double) t / CALIBRATE_EVENTS), SLICES * 1000.0);

        /* Each run alternates core and bare in slices, so that drift on the
         * machine hits both alike. */
        for (unsigned i = 0; i < runs; i++)
                for (unsigned j = 0; j < SLICES; j++) {
                        b->events = events / SLICES + (j < events % SLICES);
                        if (!b->only_bare) {
                                r = measure(b, true, &t);
                                if (r < 0)
                                        return r;
                                tc[i] += t;
                        }
                        if (!b->only_core) {
                                r = measure(b, false, &t);
                                if (r < 0)
                                        return r;
                                tb[i] += t;
                        }
                }
        for (unsigned i = 0; i < runs; i++) {
                if (b->only_bare)
                        tc[i] = tb[i];
                if (b->only_core)
                        tb[i] = tc[i];
        }

        double ec = events / (bench_median(tc, runs) / 1e9), eb = events / (bench_median(tb, runs) / 1e9);
        printf("  batch %3u  %2u subscriber%s  %8u events  core %10.0f events/s  bare %10.0f events/s"
               "  ratio core/bare %.3f  (%.0f / %.0f ns per event)\n",
               b->batch, b->n_subscribers, b->n_subscribers == 1 ? " " : "s", events, ec, eb, ec / eb, 1e9 / ec,
               1e9 / eb);
        printf("@ core-b%u-s%u core_eps=%.0f bare_eps=%.0f ratio=%.3f\n", b->batch, b->n_subscribers, ec, eb,
               ec / eb);
        fflush(stdout);
        return 0;
}

int main(int argc, char *argv[]) {
        static bench b;
        double seconds = 0.25;
        unsigned runs = 3, payload = 64, batches[16], subscribers[16];
        const char *only = "";
        bench_list batch = {}, subs = {};
        const bench_option options[] = {
                BENCH_OPT_U("events", &b.fixed_events, 0, 2000000000),
                BENCH_OPT_D("seconds", &seconds),
                BENCH_OPT_RUNS(&runs),
                BENCH_OPT_U("payload", &payload, 1, PAYLOAD_MAX),
                BENCH_OPT_L("batch", &batch),
                BENCH_OPT_L("subscribers", &subs),
                BENCH_OPT_S("only", &only),
                {},
        };
        int r;

        bench_parse_options(argc, argv, options,
                            "bench-core [--events N | --seconds S] [--runs N] [--payload BYTES] [--batch N]...\n"
                            "           [--subscribers N]... [--only core|bare]\n"
                            "Defaults: runs of about 0.25 s, 3 runs, 64-byte payloads, batches 1 and 64,\n"
                            "1 and 16 subscribers.\n");
        if (seconds <= 0) {
                fprintf(stderr, "bench-core: invalid arguments\n");
                return EXIT_FAILURE;
        }
        b.payload_size = payload;
        b.only_core = strcmp(only, "core") == 0;
        b.only_bare = strcmp(only, "bare") == 0;
        /* Batches 1 and 64, 1 and 16 subscribers unless given; batch 0 is 1. */
        unsigned n_batches = batch.n ? batch.n : 2, n_subscribers = subs.n ? subs.n : 2;
        for (unsigned i = 0; i < n_batches; i++)
                batches[i] = batch.n ? bench_parse_unsigned("batch", batch.item[i], 0, 1000000) : i ? 64 : 1;
        for (unsigned i = 0; i < n_batches; i++)
                batches[i] = batches[i] ? batches[i] : 1;
        for (unsigned i = 0; i < n_subscribers; i++)
                subscribers[i] = subs.n ? bench_parse_unsigned("subscribers", subs.item[i], 1, SUBSCRIBERS_MAX)
                                 : i    ? 16
                                        : 1;
        memset(b.payload, 0xa5, sizeof b.payload);

        printf("bench-core: %zu-byte payloads, median of %u runs", b.payload_size, runs);
        if (b.fixed_events)
                printf(", %u events per run\n", b.fixed_events);
        else
                printf(", each run about %.2f s of CPU time\n", seconds);
        for (unsigned i = 0; i < n_batches; i++)
                for (unsigned j = 0; j < n_subscribers; j++) {
                        b.batch = batches[i];
                        b.n_subscribers = subscribers[j];
                        r = run_pair(&b, runs, seconds);
                        if (r < 0) {
                                fprintf(stderr, "bench-core: %s\n", strerror(-r));
                                return EXIT_FAILURE;
                        }
                }
        /* Keep the checksum observable. */
        return b.checksum == UINT64_MAX ? EXIT_FAILURE : EXIT_SUCCESS;
}
