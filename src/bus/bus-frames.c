/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Frame subscriptions on org.vmsig.Endpoint: SubscribeFrames() hands out
 * the current frame of the guest's screen as a sealed memfd, the
 * subscriber is then told of every new frame (FrameChanged) and fetches it
 * with GetFrame(), until it unsubscribes, leaves the bus, or the endpoint
 * goes.
 *
 * The frames come from a sensor library (libvmsig-vgpu) through the core:
 * each subscription is a core subscriber of the "frame" kind for its
 * endpoint, and the library captures only while such subscribers exist.
 * The front knows the payload's layout from the library's header, nothing
 * else of it. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-frames.h"
#include "bus-front-internal.h"
#include "log.h"
#include "vmsig-vgpu.h"

/* How long a call waits for the first frame before it fails: a display
 * that cannot be captured must not hold calls until the caller's timeout. */
#define FIRST_FRAME_TIMEOUT_USEC (10 * UINT64_C(1000000))

struct bus_frame_sub {
        vmsig_bus_front *front;
        vmsig_endpoint *endpoint;
        char *key;        /* "<endpoint>\n<subscriber>" */
        char *subscriber; /* unique name or private label */
        uid_t uid;
        bool on_bus; /* not a private connection: the subscriber has a unique name */
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

static char *sub_key(vmsig_endpoint *ep, const char *subscriber) {
        char *k = NULL;
        return asprintf(&k, "%s\n%s", vmsig_endpoint_get_name(ep), subscriber) < 0 ? NULL : k;
}

/* Fails every waiting call with error (-errno) and message. */
static void fail_waiting(bus_frame_sub *s, int error, const char *message) {
        for (size_t i = 0; i < s->n_waiting; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                (void) vmsig_bus_error_setf(&e, error, "%s", message);
                (void) sd_bus_reply_method_error(s->waiting[i], &e);
                sd_bus_message_unref(s->waiting[i]);
        }
        s->n_waiting = 0;
        s->timeout = sd_event_source_disable_unref(s->timeout);
}

/* The memory of s, once nothing refers to it any more. */
static void sub_release(bus_frame_sub *s) {
        s->core_sub = vmsig_subscriber_free(s->core_sub);
        vmsig_endpoint_unref(s->endpoint);
        free(s->waiting);
        free(s->subscriber);
        free(s->key);
        free(s);
}

static void sub_free(bus_frame_sub *s, int error, const char *message) {
        fail_waiting(s, error, message);
        hashmap_remove(s->front->frame_subs, s->key);
        bus_auth_quota_release(s->front->auth, s->uid, BUS_QUOTA_SUBSCRIPTIONS);
        sub_release(s);
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
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *sig = NULL;
        bus_endpoint *be = bus_front_lookup(s->front, vmsig_endpoint_get_name(s->endpoint));
        int r;

        if (!be)
                return;
        r = sd_bus_message_new_signal(s->front->bus, &sig, be->path, VMSIG_BUS_ENDPOINT_INTERFACE, "FrameChanged");
        if (r >= 0)
                r = sd_bus_message_append(sig, "t", seq);
        /* Unicast: only subscribers may know the screen changed. */
        if (r >= 0 && s->on_bus)
                r = sd_bus_message_set_destination(sig, s->subscriber);
        if (r >= 0)
                r = sd_bus_send(s->front->bus, sig, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot send FrameChanged to %s: %m", s->subscriber);
}

static void answer_waiting(bus_frame_sub *s, const vmsig_frame *fr) {
        for (size_t i = 0; i < s->n_waiting; i++) {
                int r = reply_frame(s->waiting[i], fr);
                if (r < 0)
                        log_debug_errno(r, "Cannot send a frame to %s: %m", s->subscriber);
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
                 vmsig_endpoint_get_name(s->endpoint), (unsigned) (FIRST_FRAME_TIMEOUT_USEC / 1000000));
        fail_waiting(s, -EIO, message);
        return 0;
}

static int wait_for_frame(bus_frame_sub *s, sd_bus_message *m) {
        sd_bus_message **w = realloc(s->waiting, (s->n_waiting + 1) * sizeof *w);
        int r;

        if (!w)
                return -ENOMEM;
        s->waiting = w;
        if (!s->timeout) {
                r = sd_event_add_time_relative(vmsig_core_get_event(s->front->core), &s->timeout, CLOCK_MONOTONIC,
                                               FIRST_FRAME_TIMEOUT_USEC, 0, on_timeout, s);
                if (r < 0)
                        return r;
        }
        s->waiting[s->n_waiting++] = sd_bus_message_ref(m);
        return 1;
}

static int sub_new(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep, uint32_t kind, const bus_peer *caller,
                   bus_frame_sub **ret) {
        vmsig_filter filter = { .kinds = VMSIG_KIND_MASK(kind), .endpoint = vmsig_endpoint_get_id(ep) };
        bus_frame_sub *s = calloc(1, sizeof *s);
        int r;

        if (!s)
                return -ENOMEM;
        s->front = f;
        s->uid = caller->uid;
        s->kind = kind;
        s->endpoint = vmsig_endpoint_ref(ep);
        s->subscriber = strdup(bus_front_peer_label(f, m));
        s->key = s->subscriber ? sub_key(ep, s->subscriber) : NULL;
        s->on_bus = sd_bus_message_get_sender(m) != NULL;
        s->replay_is_current = vmsig_core_kind_wanted(f->core, kind, filter.endpoint);
        /* Subscribing is what makes the library capture. Each frame is
         * delivered from a later dispatch, never from in here; the queue
         * bound only matters if the front stopped consuming, which it never
         * does. */
        r = s->key ? vmsig_core_subscribe(f->core, &filter, 0, on_frame, s, &s->core_sub) : -ENOMEM;
        if (r >= 0)
                r = hashmap_put(f->frame_subs, s->key, s);
        if (r < 0) {
                sub_release(s);
                return r;
        }
        *ret = s;
        return 0;
}

/* The frame kind, if frames are to be had from this endpoint; else the
 * error is set. */
static int frame_kind(vmsig_bus_front *f, vmsig_endpoint *ep, sd_bus_error *error) {
        int kind;

        if (!vmsig_endpoint_is_attached(ep))
                return vmsig_bus_error_setf(error, -ENODEV, "Endpoint '%s' was detached.", vmsig_endpoint_get_name(ep));
        kind = vmsig_core_find_kind(f->core, VMSIG_VGPU_KIND_NAME);
        if (kind < 0)
                return vmsig_bus_error_setf(error, -EOPNOTSUPP,
                                            "Frames are not available: vmsigd runs without the vgpu library, "
                                            "or frames are off in its configuration.");
        if (!vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_DISPLAY))
                return vmsig_bus_error_setf(error, -EOPNOTSUPP, "Endpoint '%s' has no display to capture.",
                                            vmsig_endpoint_get_name(ep));
        return kind;
}

static bus_frame_sub *sub_of(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep) {
        _cleanup_free_ char *key = sub_key(ep, bus_front_peer_label(f, m));
        return key ? hashmap_get(f->frame_subs, key) : NULL;
}

/* The newest frame, or NULL before the first. */
static const vmsig_frame *current_frame(bus_frame_sub *s) {
        const vmsig_event *e;

        if (s->seq == 0)
                return NULL;
        e = vmsig_core_get_retained(s->front->core, vmsig_endpoint_get_id(s->endpoint), s->kind, 0);
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
        bus_peer *caller;
        int kind, r;

        kind = frame_kind(f, be->endpoint, error);
        if (kind < 0)
                return kind;
        /* Once per subscription: what is granted is the screen. */
        r = bus_auth_check(f->auth, m, VMSIG_CAP_FRAMES, be->endpoint, false, error);
        if (r <= 0)
                return bus_auth_handler_return(r);
        caller = bus_auth_caller(f->auth, m);
        if (!caller)
                return -ENOMEM;
        /* Subscribing again is harmless: the caller gets the frame again. */
        s = sub_of(f, m, be->endpoint);
        if (!s) {
                r = bus_auth_quota_take(f->auth, caller, BUS_QUOTA_SUBSCRIPTIONS, error);
                if (r < 0)
                        return r;
                r = sub_new(f, m, be->endpoint, (uint32_t) kind, caller, &s);
                if (r < 0) {
                        bus_auth_quota_release(f->auth, caller->uid, BUS_QUOTA_SUBSCRIPTIONS);
                        return r;
                }
                bus_auth_audit_operation(caller, "subscribe-frames", be->endpoint, 0, NULL);
        }
        return answer(s, m);
}

int bus_frames_method_get(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        vmsig_bus_front *f = be->front;
        bus_frame_sub *s;
        int kind;

        kind = frame_kind(f, be->endpoint, error);
        if (kind < 0)
                return kind;
        /* The subscription was authorized; a frame is only current while
         * someone subscribes, so only subscribers may ask. */
        s = sub_of(f, m, be->endpoint);
        if (!s)
                return vmsig_bus_error_setf(error, -ENOENT, "You are not subscribed to the frames of '%s'.",
                                            vmsig_endpoint_get_name(be->endpoint));
        return answer(s, m);
}

int bus_frames_method_unsubscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        bus_frame_sub *s = sub_of(be->front, m, be->endpoint);

        if (!s)
                return vmsig_bus_error_setf(error, -ENOENT, "You are not subscribed to the frames of '%s'.",
                                            vmsig_endpoint_get_name(be->endpoint));
        sub_free(s, -ENOENT, "The frame subscription ended.");
        return sd_bus_reply_method_return(m, NULL);
}

static bool subscribed_on_bus_as(const void *value, const void *name) {
        const bus_frame_sub *s = value;
        return s->on_bus && strcmp(s->subscriber, name) == 0;
}

void bus_frames_subscriber_gone(vmsig_bus_front *f, const char *name) {
        bus_frame_sub *s;

        while ((s = hashmap_find(f->frame_subs, subscribed_on_bus_as, name)))
                sub_free(s, -ENOENT, "The subscriber left the bus.");
}

static bool subscribed_to(const void *value, const void *ep) {
        const bus_frame_sub *s = value;
        return !ep || s->endpoint == ep;
}

void bus_frames_endpoint_gone(vmsig_bus_front *f, vmsig_endpoint *ep) {
        bus_frame_sub *s;
        char message[128];

        while ((s = hashmap_find(f->frame_subs, subscribed_to, ep))) {
                snprintf(message, sizeof message, "Endpoint '%s' was detached.", vmsig_endpoint_get_name(s->endpoint));
                sub_free(s, -ENODEV, message);
        }
}
