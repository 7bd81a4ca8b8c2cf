/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every host backend shares (host-common.h): the endpoint spec, whom
 * a request answers, the request queue and what a detached request says. */
#include <errno.h>
#include <string.h>
#include <glib.h>

#include "host-common.h"
#include "qemu-ram-layout.h"
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

#define MIB UINT64_C(0x100000)
#define GIB UINT64_C(0x40000000)

/* One layout: its ranges, low [0, below) and, if above, [4G, 4G + above)
 * right after the low part in the RAM. */
static void assert_layout(const char *machine, uint64_t ram, uint64_t below) {
        vmsig_gpa_range r[QEMU_RAM_LAYOUT_MAX_RANGES];
        char msg[256] = "";
        size_t n = 0;

        g_assert_cmpint(qemu_ram_layout(machine, ram, 0, r, &n, msg, sizeof msg), ==, 0);
        g_assert_cmpuint(n, ==, below < ram ? 2 : 1);
        g_assert_cmphex(r[0].gpa, ==, 0);
        g_assert_cmphex(r[0].offset, ==, 0);
        g_assert_cmphex(r[0].size, ==, below);
        if (n == 2) {
                g_assert_cmphex(r[1].gpa, ==, 4 * GIB);
                g_assert_cmphex(r[1].offset, ==, below);
                g_assert_cmphex(r[1].size, ==, ram - below);
        }
}

static void assert_refused(const char *machine, uint64_t ram, uint64_t max_ram, int error, const char *why) {
        vmsig_gpa_range r[QEMU_RAM_LAYOUT_MAX_RANGES] = { { 1, 2, 3 }, { 4, 5, 6 } };
        char msg[256] = "";
        size_t n = 77;

        g_assert_cmpint(qemu_ram_layout(machine, ram, max_ram, r, &n, msg, sizeof msg), ==, error);
        g_assert_nonnull(strstr(msg, why));
        g_assert_cmpuint(n, ==, 77);
        g_assert_cmphex(r[0].gpa, ==, 1);
        g_assert_cmphex(r[1].offset, ==, 6);
}

/* QEMU 7.2's splits, at and around each threshold. */
static void test_layout_q35(void) {
        const uint64_t split = UINT64_C(0xb0000000);

        assert_layout("pc-q35-7.2", GIB, GIB);
        assert_layout("pc-q35-7.2", split - MIB, split - MIB);
        assert_layout("pc-q35-7.2", split, 2 * GIB);
        assert_layout("pc-q35-7.2", 3 * GIB, 2 * GIB);
        assert_layout("pc-q35-7.2", 4 * GIB, 2 * GIB);
        assert_layout("pc-q35-2.4", 4 * GIB, 2 * GIB);
        assert_layout("pc-q35-4.0.1", 4 * GIB, 2 * GIB);
        assert_layout("pc-q35-2.12", 3 * GIB, 2 * GIB);
}

static void test_layout_i440fx(void) {
        const uint64_t split = UINT64_C(0xe0000000);

        assert_layout("pc-i440fx-7.2", GIB, GIB);
        assert_layout("pc-i440fx-7.2", 3 * GIB, 3 * GIB);
        assert_layout("pc-i440fx-7.2", split - MIB, split - MIB);
        assert_layout("pc-i440fx-7.2", split, 3 * GIB);
        assert_layout("pc-i440fx-7.2", 4 * GIB, 3 * GIB);
        assert_layout("pc-i440fx-2.0", 4 * GIB, 3 * GIB);
        /* Before gigabyte_align: the traditional 3.5 GiB. */
        assert_layout("pc-i440fx-1.7", 4 * GIB, split);
        assert_layout("pc-i440fx-1.4", split, split);
        assert_layout("pc-i440fx-1.4", 3 * GIB, 3 * GIB);
}

/* Anything else is refused, saying why. */
static void test_layout_refused(void) {
        const char *const unknown[] = {
                "q35", "pc", "isapc", "microvm", "none", "", "pc-q35-", "pc-q35-7", "pc-q35-7.", "pc-q35-.2",
                "pc-q35-8.0", "pc-q35-2.3", "pc-q35-1.7", "pc-i440fx-1.3", "pc-i440fx-7.3", "pc-i440fx-10.0",
                "pc-q35-7.2 ", " pc-q35-7.2", "pc-q35-7.2x", "pc-q35-07.2", "pc-q35-7.02", "pc-q35-+7.2",
                "pc-q35-7.2.1.1", "pc-q35-4294967303.2", "PC-Q35-7.2", "pc-q35-rhel9.2.0", "pc-i440fx-jammy",
                "xenfv-4.2", "virt-7.2",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(unknown); i++)
                assert_refused(unknown[i], GIB, 0, -EOPNOTSUPP, "not one whose memory layout vmsigd knows");
        assert_refused("pc-q35-7.2", 0, 0, -EINVAL, "no RAM");
        assert_refused("pc-q35-7.2", 512 * GIB, 0, -EOPNOTSUPP, "1 TiB");
        assert_refused("pc-i440fx-7.2", 4 * GIB, 600 * GIB, -EOPNOTSUPP, "1 TiB");
        assert_layout("pc-q35-7.2", 511 * GIB, 2 * GIB);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/host-common/", test_spec, test_answer, test_set_error, test_queue, test_detached_message,
                 test_layout_q35, test_layout_i440fx, test_layout_refused);
        return g_test_run();
}
