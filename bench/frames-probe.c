/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-frames: the probe around a display adapter, the subscriber that
 * times delivered frames, and clocks. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench-lib.h"
#include "frames.h"

typedef struct probe {
        vmsig_display_ops ops; /* what the endpoint calls, with the probe as data */
        const vmsig_display_ops *inner;
        void *inner_data;
        frames_clock *clock;
} probe;

typedef struct probe_call {
        probe *p;
        vmsig_display_done_fn done;
        void *userdata;
} probe_call;

int frames_run_until(sd_event *e, const bool *flag, uint64_t timeout_usec) {
        uint64_t end = now_usec() + timeout_usec;
        int r;

        while (!*flag) {
                if (now_usec() > end)
                        return -ETIMEDOUT;
                r = sd_event_run(e, 100000);
                if (r < 0)
                        return r;
        }
        return 0;
}

int frames_run_for(sd_event *e, uint64_t usec) {
        uint64_t end = now_usec() + usec, now;
        int r;

        while ((now = now_usec()) < end) {
                r = sd_event_run(e, end - now);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* --- the probe ------------------------------------------------------------ */

static void probe_done(const vmsig_result *result, const vmsig_display_image *image, void *userdata) {
        probe_call *c = userdata;
        frames_clock *k = c->p->clock;

        k->captured = now_usec();
        c->done(result, image, c->userdata);
        k->decoded = now_usec();
        k->completions++;
        free(c);
}

static int probe_capture(void *data, vmsig_display_done_fn done, void *userdata) {
        probe *p = data;
        probe_call *c = malloc(sizeof *c);
        int r;

        if (!c)
                return -ENOMEM;
        *c = (probe_call) { p, done, userdata };
        p->clock->started = now_usec();
        r = p->inner->capture(p->inner_data, probe_done, c);
        if (r < 0)
                free(c);
        return r;
}

static int probe_attach(void *data, vmsig_endpoint *ep) {
        probe *p = data;
        return p->inner->base.attach ? p->inner->base.attach(p->inner_data, ep) : 0;
}

static void probe_detach(void *data, vmsig_endpoint *ep) {
        probe *p = data;
        if (p->inner->base.detach)
                p->inner->base.detach(p->inner_data, ep);
}

static void probe_free(void *data) {
        probe *p = data;
        if (p->inner->base.free)
                p->inner->base.free(p->inner_data);
        free(p);
}

int frames_probe_wrap(vmsig_endpoint_spec *spec, frames_clock *clock) {
        vmsig_adapter *a = &spec->adapters[VMSIG_ADAPTER_DISPLAY];
        probe *p;

        if (!a->ops)
                return -EOPNOTSUPP;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->ops = (vmsig_display_ops) {
                .base = { .attach = probe_attach, .detach = probe_detach, .free = probe_free },
                .capture = probe_capture,
        };
        p->inner = (const vmsig_display_ops *) a->ops;
        p->inner_data = a->data;
        p->clock = clock;
        a->ops = &p->ops.base;
        a->data = p;
        return 0;
}

/* --- the subscriber ---------------------------------------------------------- */

static int on_frame(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        frames_watch *w = userdata;
        const frames_clock *k = w->clock;
        uint64_t now = now_usec();
        frames_latency *lat = w->lat;
        vmsig_frame fr;

        if (d->replay || d->event->payload_size != sizeof fr)
                return VMSIG_DELIVER_OK;
        memcpy(&fr, d->event->payload, sizeof fr);
        w->live++;
        /* The clock must be of this frame's capture: it started when the
         * frame's timestamp was taken, and nothing was captured since. */
        if (k->started < fr.timestamp || k->started - fr.timestamp > 1000 || k->captured < k->started ||
            k->decoded < k->captured || now < k->decoded) {
                w->bad++;
                return VMSIG_DELIVER_OK;
        }
        if (w->live <= w->skip || !lat || lat->n >= FRAMES_SAMPLES_MAX)
                return VMSIG_DELIVER_OK;
        lat->total[lat->n] = now - fr.timestamp;
        lat->capture[lat->n] = k->captured - fr.timestamp;
        lat->decode[lat->n] = k->decoded - k->captured;
        lat->dispatch[lat->n] = now - k->decoded;
        lat->n++;
        return VMSIG_DELIVER_OK;
}

int frames_watch_start(frames_watch *w, vmsig_core *core, vmsig_id endpoint) {
        vmsig_filter filter = { .kinds = VMSIG_KIND_MASK(vmsig_vgpu_kind(w->vgpu)), .endpoint = endpoint };

        return vmsig_core_subscribe(core, &filter, 0, on_frame, w, &w->sub);
}

void frames_watch_stop(frames_watch *w) {
        w->sub = vmsig_subscriber_free(w->sub);
}

/* --- printing ---------------------------------------------------------------- */

static uint64_t pct(uint64_t *v, size_t n, unsigned p) {
        qsort(v, n, sizeof v[0], bench_compare_u64);
        return bench_percentile(v, n, p);
}

void frames_print_latency(const char *label, frames_latency *l) {
        struct {
                const char *name;
                uint64_t *v;
        } parts[] = {
                { "capture-to-delivery", l->total },
                { "  capture (adapter)", l->capture },
                { "  decode+hash+seal+publish", l->decode },
                { "  dispatch to the subscriber", l->dispatch },
        };

        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
                printf("  %-8s %-30s p50 %7.3f ms  p99 %7.3f ms  (%zu frames)\n", label, parts[i].name,
                       pct(parts[i].v, l->n, 50) / 1e3, pct(parts[i].v, l->n, 99) / 1e3, l->n);
}

/* After frames_print_latency(): the arrays are sorted. */
void frames_at_latency(frames_latency *l) {
        printf(" frames=%zu p50_ms=%.3f p99_ms=%.3f capture_p50_ms=%.3f decode_p50_ms=%.3f dispatch_p50_ms=%.3f"
               " dispatch_p99_ms=%.3f",
               l->n, bench_percentile(l->total, l->n, 50) / 1e3, bench_percentile(l->total, l->n, 99) / 1e3,
               bench_percentile(l->capture, l->n, 50) / 1e3, bench_percentile(l->decode, l->n, 50) / 1e3,
               bench_percentile(l->dispatch, l->n, 50) / 1e3, bench_percentile(l->dispatch, l->n, 99) / 1e3);
}
