/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Frame subscriptions on org.vmsig.Endpoint: SubscribeFrames() hands out
 * the current frame of the guest's screen as a sealed memfd, the
 * subscriber is then told of every new frame (FrameChanged) and fetches it
 * with GetFrame(), until it unsubscribes, leaves the bus, or the endpoint
 * goes.
 *
 * The frames come from a plugin library (libvmsig-vgpu) through the core:
 * each subscription is a core subscriber of the "frame" kind for its
 * endpoint, and the library captures only while such subscribers exist.
 * The front knows the payload's layout from the library's header, nothing
 * else of it. */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-client.h"
#include "bus-errors.h"
#include "bus-frames.h"
#include "bus-front-internal.h"
#include "log.h"
#include "vmsig-vgpu.h"

/* How long a call waits for the first frame before it fails: a display
 * that cannot be captured must not hold calls until the caller's timeout. */
#define FIRST_FRAME_TIMEOUT_USEC (10 * UINT64_C(1000000))

struct bus_frame_sub {
        bus_client *client;
        uint32_t kind;
        vmsig_subscriber *core_sub;
        /* The retained frame replayed on subscribing is current only if
         * frames were being captured already; otherwise the first live one
         * is awaited. */
        bool replay_is_current;
        uint64_t seq; /* of the newest frame the subscriber was given or told of; 0: none yet */
        sd_bus_message **waiting; /* calls to answer with the next frame */
        size_t n_waiting;
        sd_event_source *timeout;
};

/* Fails every waiting call with the error name and message. */
static void fail_waiting(bus_frame_sub *s, const char *name, const char *message) {
        for (size_t i = 0; i < s->n_waiting; i++) {
                (void) sd_bus_reply_method_errorf(s->waiting[i], name, "%s", message);
                sd_bus_message_unref(s->waiting[i]);
        }
        s->n_waiting = 0;
        s->timeout = sd_event_source_disable_unref(s->timeout);
}

/* The memory of s, once nothing waits on it any more. */
static bus_frame_sub *sub_free(bus_frame_sub *s) {
        if (!s)
                return NULL;
        assert(s->n_waiting == 0);
        s->core_sub = vmsig_subscriber_free(s->core_sub);
        bus_client_free(s->client);
        free(s->waiting);
        return mfree(s);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(bus_frame_sub *, sub_free);

/* Ends s: its waiting calls fail with name and message, it leaves the
 * front's map, and is freed. */
static void sub_end(bus_frame_sub *s, const char *name, const char *message) {
        fail_waiting(s, name, message);
        hashmap_remove(s->client->front->frame_subs, s->client->key);
        sub_free(s);
}

static int append_frame(sd_bus_message *reply, const vmsig_frame *fr) {
        return sd_bus_message_append(reply, "huuust", fr->fd, fr->width, fr->height, fr->stride, fr->format, fr->seq);
}

static int reply_frame(sd_bus_message *m, const vmsig_frame *fr) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = append_frame(reply, fr);
        return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

static void announce(bus_frame_sub *s, uint64_t seq) {
        bus_endpoint *be = bus_front_lookup(s->client->front, vmsig_endpoint_get_name(s->client->endpoint));

        /* Unicast: only subscribers may know the screen changed. */
        if (be)
                bus_client_signal(s->client, be->path, VMSIG_BUS_ENDPOINT_INTERFACE, "FrameChanged", "t", seq);
}

static void answer_waiting(bus_frame_sub *s, const vmsig_frame *fr) {
        for (size_t i = 0; i < s->n_waiting; i++) {
                int r = reply_frame(s->waiting[i], fr);
                if (r < 0)
                        log_debug_errno(r, "Cannot send a frame to %s: %m", s->client->label);
                sd_bus_message_unref(s->waiting[i]);
        }
        s->n_waiting = 0;
        s->timeout = sd_event_source_disable_unref(s->timeout);
}

static int on_frame(vmsig_subscriber *sub, const vmsig_delivery *d, void *userdata) {
        bus_frame_sub *s = userdata;
        const vmsig_frame *fr = d->event->payload;

        if ((d->replay && !s->replay_is_current) || fr->seq <= s->seq)
                return VMSIG_DELIVER_OK;
        if (s->n_waiting > 0)
                answer_waiting(s, fr);
        else if (s->seq > 0)
                announce(s, fr->seq);
        s->seq = fr->seq;
        return VMSIG_DELIVER_OK;
}

static int on_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        bus_frame_sub *s = userdata;
        char message[256];

        snprintf(message, sizeof message, "No frame of '%s' could be captured within %u s.",
                 vmsig_endpoint_get_name(s->client->endpoint), (unsigned) (FIRST_FRAME_TIMEOUT_USEC / 1000000));
        fail_waiting(s, VMSIG_ERROR_HOST, message);
        return 0;
}

static int wait_for_frame(bus_frame_sub *s, sd_bus_message *m) {
        sd_bus_message **w = realloc(s->waiting, (s->n_waiting + 1) * sizeof *w);
        int r;

        if (!w)
                return -ENOMEM;
        s->waiting = w;
        if (!s->timeout) {
                sd_event *e = vmsig_core_get_event(s->client->front->core);

                r = sd_event_add_time_relative(e, &s->timeout, CLOCK_MONOTONIC, FIRST_FRAME_TIMEOUT_USEC, 0,
                                               on_timeout, s);
                if (r < 0)
                        return r;
        }
        s->waiting[s->n_waiting++] = sd_bus_message_ref(m);
        return 1;
}

/* Subscribes the caller of m to ep's frames; <0 with error set when over
 * its quota. */
static int sub_new(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep, uint32_t kind, sd_bus_error *error,
                   bus_frame_sub **ret) {
        _cleanup_(sub_freep) bus_frame_sub *s = calloc(1, sizeof *s);
        int r = s ? bus_client_new(f, m, ep, BUS_QUOTA_SUBSCRIPTIONS, error, &s->client) : -ENOMEM;

        if (r < 0)
                return r;
        s->kind = kind;
        s->replay_is_current = vmsig_core_kind_wanted(f->core, kind, vmsig_endpoint_get_id(ep));
        /* Subscribing is what makes the library capture. Each frame is
         * delivered from a later dispatch, never from in here; the queue
         * bound only matters if the front stopped consuming, which it never
         * does. */
        r = bus_client_subscribe(s->client, f->frame_subs, kind, on_frame, s, "subscribe-frames", &s->core_sub);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

/* The frame kind, if frames are to be had from this endpoint; else the
 * error is set. */
static int frame_kind(vmsig_bus_front *f, vmsig_endpoint *ep, sd_bus_error *error) {
        int kind;

        kind = bus_endpoint_require_attached(ep, error);
        if (kind < 0)
                return kind;
        kind = vmsig_core_find_kind(f->core, VMSIG_VGPU_KIND_NAME);
        if (kind < 0)
                return sd_bus_error_setf(error, VMSIG_ERROR_NOT_SUPPORTED,
                                         "Frames are not available: vmsigd runs without the vgpu library, "
                                         "or frames are off in its configuration.");
        if (!vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_DISPLAY))
                return sd_bus_error_setf(error, VMSIG_ERROR_NOT_SUPPORTED, "Endpoint '%s' has no display to capture.",
                                         vmsig_endpoint_get_name(ep));
        return kind;
}

static bus_frame_sub *sub_of(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep) {
        return bus_client_lookup(f->frame_subs, f, m, ep);
}

/* The newest frame, or NULL before the first. */
static const vmsig_frame *current_frame(bus_frame_sub *s) {
        const vmsig_event *e;

        if (s->seq == 0)
                return NULL;
        e = vmsig_core_get_retained(s->client->front->core, vmsig_endpoint_get_id(s->client->endpoint), s->kind, 0);
        return e ? e->payload : NULL;
}

static int answer(bus_frame_sub *s, sd_bus_message *m) {
        const vmsig_frame *fr = current_frame(s);
        return fr ? reply_frame(m, fr) : wait_for_frame(s, m);
}

int bus_frames_method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        vmsig_bus_front *f = be->front;
        bus_frame_sub *s;
        int kind, r;

        assert(m);
        assert(be);

        kind = frame_kind(f, be->endpoint, error);
        if (kind < 0)
                return kind;
        /* Once per subscription: what is granted is the screen. */
        r = bus_auth_check(f->auth, m, VMSIG_CAP_FRAMES, be->endpoint, false, error);
        if (r <= 0)
                return bus_auth_handler_return(r);
        /* Subscribing again is harmless: the caller gets the frame again. */
        s = sub_of(f, m, be->endpoint);
        if (!s) {
                r = sub_new(f, m, be->endpoint, (uint32_t) kind, error, &s);
                if (r < 0)
                        return r;
        }
        return answer(s, m);
}

int bus_frames_method_get(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        vmsig_bus_front *f = be->front;
        bus_frame_sub *s;
        int kind;

        assert(m);
        assert(be);

        kind = frame_kind(f, be->endpoint, error);
        if (kind < 0)
                return kind;
        /* The subscription was authorized; a frame is only current while
         * someone subscribes, so only subscribers may ask. */
        s = sub_of(f, m, be->endpoint);
        if (!s)
                return bus_client_not_subscribed(error, "frames", be->endpoint);
        return answer(s, m);
}

int bus_frames_method_unsubscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        bus_frame_sub *s = sub_of(be->front, m, be->endpoint);

        assert(m);
        assert(be);

        if (!s)
                return bus_client_not_subscribed(error, "frames", be->endpoint);
        sub_end(s, VMSIG_ERROR_NOT_SUBSCRIBED, "The frame subscription ended.");
        return sd_bus_reply_method_return(m, NULL);
}

void bus_frames_subscriber_gone(vmsig_bus_front *f, const char *name) {
        bus_frame_sub *s;

        HASHMAP_FOREACH(s, f->frame_subs, st)
                if (bus_client_is_gone(s->client, name))
                        sub_end(s, VMSIG_ERROR_NOT_SUBSCRIBED, "The subscriber left the bus.");
}

void bus_frames_endpoint_gone(vmsig_bus_front *f, vmsig_endpoint *ep) {
        bus_frame_sub *s;
        char message[128];

        HASHMAP_FOREACH(s, f->frame_subs, st)
                if (bus_client_holds_on(s->client, ep)) {
                        snprintf(message, sizeof message, "Endpoint '%s' was detached.",
                                 vmsig_endpoint_get_name(s->client->endpoint));
                        sub_end(s, VMSIG_ERROR_ENDPOINT_DETACHED, message);
                }
}
