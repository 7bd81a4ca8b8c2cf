/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every host backend shares (host-common.h): the endpoint spec, whom
 * a request answers, the request queue and what a detached request says. */
#include <errno.h>
#include <string.h>
#include <glib.h>

#include "host-common.h"
#include "vt-util.h"

typedef struct answers {
        unsigned done, display, vcpu;
        int error;
        char message[64];
        bool had_data;
} answers;

static void record(answers *a, const vmsig_result *res) {
        a->error = res->error;
        g_strlcpy(a->message, res->message ?: "", sizeof a->message);
}

static void on_done(const vmsig_result *res, void *userdata) {
        answers *a = userdata;

        a->done++;
        record(a, res);
}

static void on_display(const vmsig_result *res, const vmsig_display_image *image, void *userdata) {
        answers *a = userdata;

        a->display++;
        a->had_data = image != NULL;
        record(a, res);
}

static void on_vcpu(const vmsig_result *res, const vmsig_vcpu_state *vcpu, void *userdata) {
        answers *a = userdata;

        a->vcpu++;
        a->had_data = vcpu != NULL;
        record(a, res);
}

static void test_spec(void) {
        sd_id128_t uuid = SD_ID128_MAKE(01, 23, 45, 67, 89, ab, cd, ef, 01, 23, 45, 67, 89, ab, cd, ef);
        vmsig_endpoint_spec spec;

        host_endpoint_spec_init(&spec, "vm", uuid, VMSIG_STATE_PAUSED);
        g_assert_cmpstr(spec.name, ==, "vm");
        g_assert_true(sd_id128_equal(spec.uuid, uuid));
        g_assert_cmpint(spec.initial_state, ==, VMSIG_STATE_PAUSED);
        for (unsigned i = 0; i < _VMSIG_ADAPTER_MAX; i++)
                g_assert_null(spec.adapters[i].ops);

        host_endpoint_spec_init(&spec, "vm", SD_ID128_NULL, VMSIG_STATE_UNKNOWN);
        g_assert_false(sd_id128_is_null(spec.uuid));
}

static void test_answer(void) {
        answers a = {};
        host_request done = { .done = on_done, .userdata = &a };
        host_request display = { .display_done = on_display, .userdata = &a };
        host_request vcpu = { .vcpu_done = on_vcpu, .userdata = &a };
        host_request nobody = {};

        host_request_answer(&done, -EIO, "QEMU: GenericError: no");
        g_assert_cmpuint(a.done, ==, 1);
        g_assert_cmpint(a.error, ==, -EIO);
        g_assert_cmpstr(a.message, ==, "QEMU: GenericError: no");
        host_request_answer(&display, -EBADFD, "off");
        g_assert_cmpuint(a.display, ==, 1);
        g_assert_false(a.had_data);
        host_request_answer(&vcpu, -ENODEV, NULL);
        g_assert_cmpuint(a.vcpu, ==, 1);
        g_assert_false(a.had_data);
        g_assert_cmpstr(a.message, ==, "");
        host_request_answer(&nobody, 0, NULL); /* nobody waits: nothing happens */
        g_assert_cmpuint(a.done + a.display + a.vcpu, ==, 3);
}

static void test_set_error(void) {
        host_request rq = {};
        char longer[HOST_MESSAGE_MAX + 20];

        host_request_set_error(&rq, -ECANCELED, "lease ended");
        g_assert_cmpint(rq.error, ==, -ECANCELED);
        g_assert_cmpstr(rq.message, ==, "lease ended");
        host_request_set_error(&rq, -EIO, NULL);
        g_assert_cmpstr(rq.message, ==, "");
        memset(longer, 'x', sizeof longer - 1);
        longer[sizeof longer - 1] = '\0';
        host_request_set_error(&rq, -EIO, longer);
        g_assert_cmpuint(strlen(rq.message), ==, HOST_MESSAGE_MAX - 1);
}

static bool is_odd(const host_request *rq) {
        return rq->error % 2 != 0;
}

static void test_queue(void) {
        host_request rq[6] = {};
        host_queue q = {}, odd = {};
        host_request *p;

        g_assert_null(host_queue_pop(&q));
        for (int i = 0; i < 6; i++) {
                rq[i].error = i;
                host_queue_push(&q, &rq[i]);
        }
        g_assert_true(q.head == &rq[0]);
        g_assert_true(q.tail == &rq[5]);

        /* Taken and kept ones both keep their order. */
        host_queue_move_if(&q, &odd, is_odd);
        for (int i = 0; i < 6; i += 2)
                g_assert_true(host_queue_pop(&q) == &rq[i]);
        g_assert_null(host_queue_pop(&q));
        g_assert_null(q.tail);
        for (int i = 1; i < 6; i += 2)
                g_assert_true(host_queue_pop(&odd) == &rq[i]);
        g_assert_null(odd.head);
        g_assert_null(odd.tail);

        /* A queue emptied by pops takes pushes again. */
        host_queue_push(&q, &rq[3]);
        p = host_queue_pop(&q);
        g_assert_true(p == &rq[3]);
        g_assert_null(p->next);
}

static void test_detached_message(void) {
        char msg[128];

        host_detached_message(msg, sizeof msg, "web-1");
        g_assert_cmpstr(msg, ==, "Endpoint 'web-1' was detached.");
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/host-common/", test_spec, test_answer, test_set_error, test_queue, test_detached_message);
        return g_test_run();
}
