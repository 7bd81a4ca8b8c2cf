/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vgpu perception: the frame kind, demand, and one capture loop per display.
 *
 * Endpoints are learned from ROSTER events, demand from the core's demand
 * hook. Each display is captured at most once per interval, one capture at a
 * time, and only while someone wants its frames: without demand its timer
 * is off, so an idle daemon makes no wakeups here.
 *
 * Decoding runs synchronously in the capture's completion. It is linear in
 * the pixels and touches each byte a couple of times: a 1024x768 PNG takes
 * a few milliseconds, a 1920x1080 one about 10, once per interval at most
 * (60 fps is the highest rate allowed); that is less than what one D-Bus
 * call with an fd costs the loop, and a thread would need the pixels copied
 * or locked for no gain at these sizes. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "event-util.h"
#include "list.h"
#include "macro.h"
#include "time-util.h"
#include "vgpu-internal.h"

typedef struct vgpu_display vgpu_display;

struct vgpu_display {
        unsigned n_ref;      /* the instance's list, and a capture in flight */
        vmsig_vgpu *vgpu;    /* NULL once forgotten: a capture in flight is then dropped */
        vmsig_endpoint *endpoint;
        vmsig_id id;
        sd_event_source *timer;
        bool active;    /* wanted: captures are scheduled */
        bool in_flight; /* at most one capture at a time */
        bool started;   /* last_start is valid */
        uint64_t last_start;
        uint64_t seq;
        bool have_hash;
        uint64_t hash;
        vgpu_scratch scratch;
        vgpu_display *prev, *next;
};

struct vmsig_vgpu {
        vmsig_core *core;
        sd_event *event;
        uint32_t kind;
        uint64_t interval_usec;
        vmsig_subscriber *roster;
        /* Demand changed: reconsider every display once, from the loop. The
         * hook is called from inside vmsig_core_subscribe() and
         * vmsig_subscriber_free(), where doing the work is not allowed. */
        sd_event_source *reconsider;
        vgpu_display *displays;
        vmsig_vgpu_stats stats;
};

static uint64_t interval_from_rate(double rate) {
        if (!(rate > 0))
                rate = VMSIG_VGPU_RATE_DEFAULT;
        return (uint64_t) (1e6 / rate + 0.5);
}

static void display_free(vgpu_display *d) {
        vgpu_scratch_done(&d->scratch);
        free(d);
}

DEFINE_PRIVATE_TRIVIAL_REF_UNREF_FUNC(vgpu_display, display, display_free);

static vgpu_display *display_find(vmsig_vgpu *v, vmsig_id id) {
        for (vgpu_display *d = v->displays; d; d = d->next)
                if (d->id == id)
                        return d;
        return NULL;
}

static void display_set_active(vgpu_display *d, bool active) {
        if (d->active == active)
                return;
        d->active = active;
        if (active)
                d->vgpu->stats.active++;
        else
                d->vgpu->stats.active--;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* The next capture starts a full interval after the previous one started,
 * however long that one took. */
static int display_schedule(vgpu_display *d) {
        vmsig_vgpu *v = d->vgpu;
        uint64_t at = d->started ? d->last_start + v->interval_usec : 0;
        int r;

        if (!d->timer) {
                /* Accuracy 1 usec: sd-event's default slack (250 ms) would
                 * be most of an interval. */
                r = sd_event_add_time(v->event, &d->timer, CLOCK_MONOTONIC, at, 1, on_timer, d);
                if (r < 0)
                        return r;
                return sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
        }
        r = sd_event_source_set_time(d->timer, at);
        if (r >= 0)
                r = sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
        return r;
}

static void display_update(vgpu_display *d) {
        vmsig_vgpu *v = d->vgpu;
        bool want = vmsig_endpoint_is_attached(d->endpoint) && vmsig_core_kind_wanted(v->core, v->kind, d->id);

        if (want == d->active)
                return;
        display_set_active(d, want);
        if (!want) {
                /* A display nobody watches keeps no pixels. */
                vgpu_scratch_done(&d->scratch);
                (void) sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
                return;
        }
        /* The retained frame may be from long ago: the first capture of a
         * new demand is published even if the screen did not change, so
         * that a subscriber who came while nobody watched sees a frame
         * that is current. */
        d->have_hash = false;
        /* A capture in flight schedules the next one when it completes. */
        if (!d->in_flight && display_schedule(d) < 0)
                v->stats.errors++;
}

static void display_forget(vgpu_display *d) {
        vmsig_vgpu *v = d->vgpu;

        display_set_active(d, false);
        LIST_REMOVE(v->displays, d);
        d->timer = sd_event_source_disable_unref(d->timer);
        d->endpoint = vmsig_endpoint_unref(d->endpoint);
        d->vgpu = NULL;
        display_unref(d);
}

/* A frame equal to the last one costs a decode and a hash, no memfd. */
static void publish(vmsig_vgpu *v, vgpu_display *d, const vgpu_pixels *px) {
        vmsig_frame *obj;
        int r;

        if (d->have_hash && d->hash == px->hash) {
                v->stats.unchanged++;
                return;
        }
        obj = malloc(sizeof *obj);
        if (!obj) {
                v->stats.errors++;
                return;
        }
        r = vgpu_frame_seal(px, obj);
        if (r < 0) {
                v->stats.errors++;
                free(obj);
                return;
        }
        obj->seq = d->seq + 1;
        obj->timestamp = d->last_start;
        r = vmsig_core_publish_object(v->core, v->kind, d->id, 0, obj, sizeof *obj, vgpu_frame_object_free);
        if (r < 0) {
                v->stats.errors++;
                vgpu_frame_object_free(obj);
                return;
        }
        d->seq = obj->seq;
        d->hash = obj->hash;
        d->have_hash = true;
        v->stats.published++;
}

static void on_captured(const vmsig_result *result, const vmsig_display_image *image, void *userdata) {
        vgpu_display *d = userdata;
        vmsig_vgpu *v = d->vgpu;
        vgpu_pixels px;

        d->in_flight = false;
        /* Forgotten (endpoint gone, instance freed) or no longer wanted: the
         * image is of no use to anyone. */
        if (!v || !d->active) {
                display_unref(d);
                return;
        }
        v->stats.captures++;
        if (result->error < 0 || !image || vgpu_frame_decode(image, &d->scratch, &px) < 0)
                v->stats.errors++;
        else
                publish(v, d, &px);
        if (display_schedule(d) < 0)
                v->stats.errors++;
        display_unref(d);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        vgpu_display *d = userdata;
        int r;

        if (!d->active || d->in_flight)
                return 0;
        d->started = true;
        d->last_start = now_usec();
        r = vmsig_endpoint_capture_display(d->endpoint, on_captured, display_ref(d));
        if (r < 0) {
                display_unref(d);
                d->vgpu->stats.errors++;
                /* A detached endpoint stays quiet until its ROSTER removal
                 * makes us forget it. */
                if (r != -ENODEV && display_schedule(d) < 0)
                        d->vgpu->stats.errors++;
                return 0;
        }
        d->in_flight = true;
        return 0;
}

static int display_new(vmsig_vgpu *v, vmsig_endpoint *ep) {
        vgpu_display *d = calloc(1, sizeof *d);

        if (!d)
                return -ENOMEM;
        d->n_ref = 1;
        d->vgpu = v;
        d->endpoint = vmsig_endpoint_ref(ep);
        d->id = vmsig_endpoint_get_id(ep);
        LIST_PREPEND(v->displays, d);
        /* Someone may have asked for its frames before its ROSTER event
         * reached us. */
        display_update(d);
        return 0;
}

/* Track attached endpoints with a display, forget the others; ROSTER events
 * may repeat (replay) or arrive after the endpoint already went. */
static void sync_endpoint(vmsig_vgpu *v, vmsig_id id) {
        vmsig_endpoint *ep = vmsig_core_find_endpoint(v->core, id);
        vgpu_display *d = display_find(v, id);
        bool track = ep && vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_DISPLAY);

        if (d && !track)
                display_forget(d);
        else if (!d && track && display_new(v, ep) < 0)
                v->stats.errors++;
}

static int on_roster(vmsig_subscriber *s, const vmsig_delivery *delivery, void *userdata) {
        sync_endpoint(userdata, delivery->event->endpoint);
        return VMSIG_DELIVER_OK;
}

static int on_reconsider(sd_event_source *s, void *userdata) {
        vmsig_vgpu *v = userdata;

        for (vgpu_display *d = v->displays; d; d = d->next)
                display_update(d);
        return 0;
}

static void on_demand(vmsig_core *c, uint32_t kind, vmsig_id endpoint, bool wanted, void *userdata) {
        vmsig_vgpu *v = userdata;

        (void) sd_event_source_set_enabled(v->reconsider, SD_EVENT_ONESHOT);
}

static int vgpu_setup(vmsig_vgpu *v) {
        vmsig_filter roster = { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_ROSTER) };
        int r;

        r = event_add_defer_off(v->event, &v->reconsider, on_reconsider, v);
        if (r < 0)
                return r;
        r = vmsig_core_set_demand_hook(v->core, v->kind, on_demand, v);
        if (r < 0)
                return r;
        return vmsig_core_subscribe(v->core, &roster, 0, on_roster, v, &v->roster);
}

int vmsig_vgpu_new(vmsig_core *core, const vmsig_vgpu_config *config, vmsig_vgpu **ret) {
        vmsig_vgpu *v;
        int kind, r;

        if (!core || !ret)
                return -EINVAL;
        if (config && (config->rate < 0 || config->rate > VMSIG_VGPU_RATE_MAX))
                return -ERANGE;
        kind = vmsig_core_register_kind(core, VMSIG_VGPU_KIND_NAME, VMSIG_PRIORITY_BULK, true);
        if (kind < 0)
                return kind;
        v = calloc(1, sizeof *v);
        if (!v)
                return -ENOMEM;
        v->core = core;
        v->event = sd_event_ref(vmsig_core_get_event(core));
        v->kind = (uint32_t) kind;
        v->interval_usec = interval_from_rate(config ? config->rate : 0);
        r = vgpu_setup(v);
        if (r < 0) {
                vmsig_vgpu_free(v);
                return r;
        }
        *ret = v;
        return 0;
}

int vmsig_vgpu_set_rate(vmsig_vgpu *v, double rate) {
        if (!v || rate < 0 || rate > VMSIG_VGPU_RATE_MAX)
                return -ERANGE;
        v->interval_usec = interval_from_rate(rate);
        /* Displays waiting for their next capture wait the new interval,
         * counted from their previous capture as always. */
        for (vgpu_display *d = v->displays; d; d = d->next)
                if (d->active && !d->in_flight && display_schedule(d) < 0)
                        v->stats.errors++;
        return 0;
}

vmsig_vgpu *vmsig_vgpu_free(vmsig_vgpu *v) {
        if (!v)
                return NULL;
        (void) vmsig_core_set_demand_hook(v->core, v->kind, NULL, NULL);
        v->roster = vmsig_subscriber_free(v->roster);
        while (v->displays)
                display_forget(v->displays);
        v->reconsider = sd_event_source_disable_unref(v->reconsider);
        sd_event_unref(v->event);
        return mfree(v);
}

uint32_t vmsig_vgpu_kind(vmsig_vgpu *v) {
        return v->kind;
}

void vmsig_vgpu_get_stats(vmsig_vgpu *v, vmsig_vgpu_stats *ret) {
        *ret = v->stats;
}
