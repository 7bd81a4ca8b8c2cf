/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "host-common.h"
#include "list.h"

void host_endpoint_spec_init(vmsig_endpoint_spec *ret, const char *name, sd_id128_t uuid, vmsig_state initial_state) {
        *ret = (vmsig_endpoint_spec) {
                .name = name,
                .uuid = uuid,
                .initial_state = initial_state,
        };
        if (sd_id128_is_null(ret->uuid))
                (void) sd_id128_randomize(&ret->uuid);
}

void host_request_answer(const host_request *rq, int error, const char *message) {
        vmsig_result res = { .error = error, .message = message };

        if (rq->done)
                rq->done(&res, rq->userdata);
        else if (rq->display_done)
                rq->display_done(&res, NULL, rq->userdata);
        else if (rq->vcpu_done)
                rq->vcpu_done(&res, NULL, rq->userdata);
}

void host_request_set_error(host_request *rq, int error, const char *message) {
        rq->error = error;
        if (message)
                snprintf(rq->message, sizeof rq->message, "%s", message);
        else
                rq->message[0] = '\0';
}

void host_queue_push(host_queue *queue, host_request *rq) {
        QUEUE_PUSH(queue->head, queue->tail, rq);
}

host_request *host_queue_pop(host_queue *queue) {
        return QUEUE_POP(queue->head, queue->tail);
}

void host_queue_move_if(host_queue *queue, host_queue *to, bool (*take)(const host_request *rq)) {
        host_queue kept = {};

        for (host_request *rq; (rq = host_queue_pop(queue));)
                host_queue_push(take(rq) ? to : &kept, rq);
        *queue = kept;
}

void host_detached_message(char *buf, size_t size, const char *name) {
        snprintf(buf, size, "Endpoint '%s' was detached.", name);
}

void host_observe_state(vmsig_endpoint *ep, vmsig_state state) {
        static const vmsig_lifecycle_op op_to[_VMSIG_STATE_MAX] = {
                [VMSIG_STATE_RUNNING] = VMSIG_OP_RESUME,
                [VMSIG_STATE_PAUSED] = VMSIG_OP_PAUSE,
                [VMSIG_STATE_SHUT_OFF] = VMSIG_OP_POWER_OFF,
        };

        if (ep && state != VMSIG_STATE_UNKNOWN && vmsig_endpoint_get_state(ep) != state)
                vmsig_endpoint_report_lifecycle(ep, op_to[state], state);
}

int host_subscribe_resets(vmsig_endpoint *ep, vmsig_deliver_fn fn, void *userdata, vmsig_subscriber **ret) {
        vmsig_filter f = { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_LIFECYCLE), .endpoint = vmsig_endpoint_get_id(ep) };

        return vmsig_core_subscribe(vmsig_endpoint_get_core(ep), &f, 0, fn, userdata, ret);
}

bool host_is_guest_reset(const vmsig_delivery *d) {
        const vmsig_lifecycle_payload *p = d->event->payload;

        return !d->replay && p->op == VMSIG_OP_RESET;
}
