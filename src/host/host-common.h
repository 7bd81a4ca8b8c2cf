/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What every host backend (stub, QMP, the next ones) does alike, so that a
 * backend writes only what is specific to its hypervisor:
 *
 *  - the endpoint spec it hands to the core, one reference per adapter;
 *  - its requests: whom each one answers (a lifecycle or input done, a
 *    display capture, a vCPU read) and a first-in, first-out queue of
 *    them, completed from the loop, never from inside the call that asked;
 *  - the guest's state as the hypervisor reports it;
 *  - the guest resets its memctx adapter starts a new epoch on
 *    (vmsig_bootstrap_guest_reset()).
 */

#include <stdbool.h>
#include <stddef.h>

#include "vmsig-core.h"
#include "vmsig-endpoint.h"

/* The words of a queued request's error, at most. */
#define HOST_MESSAGE_MAX 160

/* Fills *ret with an endpoint spec without adapters: a random UUID for a
 * null one. The name is borrowed. */
void host_endpoint_spec_init(vmsig_endpoint_spec *ret, const char *name, sd_id128_t uuid, vmsig_state initial_state);

/* A request of the control side, embedded first in a backend's own. It
 * answers one callback: done (which may be NULL: nobody waits), or
 * display_done, or vcpu_done. */
typedef struct host_request {
        struct host_request *next;
        vmsig_done_fn done;
        vmsig_display_done_fn display_done;
        vmsig_vcpu_done_fn vcpu_done;
        void *userdata;
        int error;                      /* for a completion from the queue */
        char message[HOST_MESSAGE_MAX]; /* likewise, the words of an error */
} host_request;

/* Answers the request's callback with error and message (a display or
 * vCPU callback without data). Does not free it. */
void host_request_answer(const host_request *rq, int error, const char *message);
/* Sets the error and message a later completion gives. */
void host_request_set_error(host_request *rq, int error, const char *message);

typedef struct host_queue {
        host_request *head, *tail;
} host_queue;

void host_queue_push(host_queue *queue, host_request *rq);
host_request *host_queue_pop(host_queue *queue);
/* Moves every request for which take() is true to the end of *to, in
 * order; the others stay in order. */
void host_queue_move_if(host_queue *queue, host_queue *to, bool (*take)(const host_request *rq));

/* "Endpoint 'NAME' was detached.", what a request left behind says. */
void host_detached_message(char *buf, size_t size, const char *name);

/* A state the hypervisor told of, with the op that leads there, for the
 * endpoint's LIFECYCLE event (there is no op for "observed"); nothing if
 * the endpoint is in that state already, or the state is UNKNOWN. */
void host_observe_state(vmsig_endpoint *ep, vmsig_state state);

/* The guest resets of ep, for its memctx adapter: fn gets the endpoint's
 * LIFECYCLE events; host_is_guest_reset() says which are news of a reset
 * (a replay of the retained one is not). */
int host_subscribe_resets(vmsig_endpoint *ep, vmsig_deliver_fn fn, void *userdata, vmsig_subscriber **ret);
bool host_is_guest_reset(const vmsig_delivery *d);
