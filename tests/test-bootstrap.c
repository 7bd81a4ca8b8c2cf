/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bootstrap in process, on a stub VM whose simulated vCPU follows the
 * guest program's mailbox (stub.h): the backoff and its cap, how fast a
 * kernel that starts running is found, vCPU reads in flight when the
 * bootstrap starts over or goes, the one BOOTSTRAP event per state
 * while a guest boots, and the job a guest reset is for every backend. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>

#include "bootstrap.h"
#include "event-loop.h"
#include "guest-image.h"
#include "memctx.h"
#include "stub.h"
#include "vmsig-core.h"
#include "vmsig-endpoint.h"

#define RAM_SIZE (64 * 1024 * 1024)
#define TIMEOUT_USEC (10 * UINT64_C(1000000))

typedef struct Fixture {
        VT_CORE_MEMBERS;
        vmsig_endpoint *ep;
        vmsig_subscriber *sub;
        unsigned booting_events; /* BOOTSTRAP events saying "booting" */
        GuestImageSpec spec;
} Fixture;

static int on_bootstrap(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        Fixture *f = userdata;
        const vmsig_bootstrap_payload *p = d->event->payload;

        if (p->state == VMSIG_BOOTSTRAP_BOOTING)
                f->booting_events++;
        return VMSIG_DELIVER_OK;
}

static void fixture_setup(Fixture *f, gconstpointer data) {
        const vmsig_bootstrap_config *config = data;
        vmsig_stub_spec spec = {
                .name = "alpha",
                .ram_size = RAM_SIZE,
                .initial_state = VMSIG_STATE_RUNNING,
                .bootstrap = true,
        };
        vmsig_filter filter = { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_BOOTSTRAP) };
        vmsig_endpoint_spec es;

        if (config)
                spec.bootstrap_config = *config;
        vt_core_start(&f->event, &f->core);
        g_assert_cmpint(vmsig_core_subscribe(f->core, &filter, 0, on_bootstrap, f, &f->sub), ==, 0);
        g_assert_cmpint(vmsig_stub_new(&spec, &es, NULL), ==, 0);
        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &es, &f->ep), ==, 0);
        guest_image_spec_init(&f->spec);
        f->spec.layout = GUEST_IMAGE_LAYOUT_FLAT;
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        if (f->ep)
                g_assert_cmpint(vmsig_core_detach_endpoint(f->core, f->ep), ==, 0);
        vmsig_subscriber_free(f->sub);
        vt_core_stop(f->event, f->core);
}

static const vmsig_bootstrap_payload *payload(Fixture *f) {
        return vmsig_bootstrap_get(f->core, vmsig_endpoint_get_id(f->ep));
}

static vmsig_bootstrap_state state(Fixture *f) {
        const vmsig_bootstrap_payload *p = payload(f);
        return p ? p->state : VMSIG_BOOTSTRAP_IDLE;
}

static unsigned attempts(Fixture *f) {
        const vmsig_bootstrap_payload *p = payload(f);
        return p ? p->attempts : 0;
}

static void write_image(Fixture *f, const GuestImageSpec *spec) {
        GuestImageWrite *w = NULL;
        size_t n = 0;

        g_assert_cmpint(guest_image_build(spec, &w, &n), ==, 0);
        for (size_t i = 0; i < n; i++)
                g_assert_cmpint(vmsig_endpoint_write_ram(f->ep, w[i].gpa, w[i].data, w[i].len), ==, 0);
        guest_image_writes_free(w, n);
}

static void write_u64(Fixture *f, uint64_t gpa, uint64_t v) {
        uint64_t le = htole64(v);
        g_assert_cmpint(vmsig_endpoint_write_ram(f->ep, gpa, &le, sizeof le), ==, 0);
}

/* The wait doubles per failed attempt from the initial one, spread by
 * -25%..+25%, and the cap holds with the spread included. */
static void test_backoff(void) {
        const vmsig_bootstrap_config c = { .backoff_initial_usec = 250000, .backoff_max_usec = 8000000 };
        static const uint32_t rnds[] = { 0, 500, 1000, 1001, 2001, UINT32_MAX };

        for (unsigned step = 1; step <= 40; step++) {
                uint64_t base = 250000;
                for (unsigned i = 1; i < step && base < c.backoff_max_usec; i++)
                        base *= 2;
                for (size_t k = 0; k < G_N_ELEMENTS(rnds); k++) {
                        uint64_t d = vmsig_bootstrap_backoff_usec(&c, step, rnds[k]);
                        g_assert_cmpuint(d, <=, c.backoff_max_usec);
                        g_assert_cmpuint(d, >=, MIN(base - base / 4, c.backoff_max_usec));
                        g_assert_cmpuint(d, <=, base + base / 4);
                }
        }
        g_assert_cmpuint(vmsig_bootstrap_backoff_usec(&c, 1, 0), ==, 187500);
        g_assert_cmpuint(vmsig_bootstrap_backoff_usec(&c, 1, 1000), ==, 312500);
        /* At the cap the spread goes down only. */
        g_assert_cmpuint(vmsig_bootstrap_backoff_usec(&c, 30, 1000), ==, 8000000);
        g_assert_cmpuint(vmsig_bootstrap_backoff_usec(&c, 30, 0), ==, 6000000);
}

/* While the vCPU has paging off there is one "booting" event, not one per
 * look at the vCPU (every 250 ms), and no attempt. */
static void test_booting_is_quiet(Fixture *f, gconstpointer data) {
        vt_event_run_for(f->event, 1200 * 1000);
        g_assert_cmpint(state(f), ==, VMSIG_BOOTSTRAP_BOOTING);
        g_assert_cmpuint(attempts(f), ==, 0);
        g_assert_cmpuint(f->booting_events, ==, 1);
}

/* The kernel runs on its tables before its System process exists (as
 * Windows does between switching CR3 and creating it): the first attempt
 * finds nothing; the EPROCESS appears right after, and the next attempt,
 * the shortest backoff later, finds it. How long that takes is
 * bench-bootstrap's to show, not a test's. */
static void test_found_by_the_next_attempt(Fixture *f, gconstpointer data) {
        GuestImageSpec early = f->spec;
        uint64_t t0, took;

        early.build = 0; /* tables, no EPROCESS */
        early.boot = true;
        write_image(f, &early);
        VT_EVENT_RUN_UNTIL(f->event, attempts(f) >= 1 && state(f) == VMSIG_BOOTSTRAP_RETRYING, TIMEOUT_USEC);
        g_assert_cmpuint(attempts(f), ==, 1);

        t0 = vt_now_usec();
        write_image(f, &f->spec);
        VT_EVENT_RUN_UNTIL(f->event, state(f) == VMSIG_BOOTSTRAP_READY, TIMEOUT_USEC);
        took = vt_now_usec() - t0;
        g_test_message("EPROCESS in place -> ready: %" PRIu64 " ms", took / 1000);
        g_assert_cmpuint(attempts(f), ==, 2);
        g_assert_cmphex(payload(f)->dtb, ==, f->spec.dtb);
}

/* Structures in place before the kernel runs: found by the first attempt,
 * which the vCPU leaving the firmware starts at once. */
static void test_found_when_the_kernel_starts(Fixture *f, gconstpointer data) {
        GuestImageSpec quiet = f->spec;
        uint64_t t0, took;

        quiet.boot = false;
        write_image(f, &quiet);
        VT_EVENT_RUN_UNTIL(f->event, state(f) == VMSIG_BOOTSTRAP_BOOTING, TIMEOUT_USEC);
        t0 = vt_now_usec();
        write_u64(f, VMSIG_STUB_MAILBOX_CR3_GPA, f->spec.dtb);
        write_u64(f, VMSIG_STUB_MAILBOX_MAGIC_GPA, VMSIG_STUB_MAILBOX_MAGIC);
        VT_EVENT_RUN_UNTIL(f->event, state(f) == VMSIG_BOOTSTRAP_READY, TIMEOUT_USEC);
        took = vt_now_usec() - t0;
        g_test_message("kernel starts -> ready: %" PRIu64 " ms", took / 1000);
        g_assert_cmpuint(attempts(f), ==, 1);
}

/* A reset while a vCPU read is in flight: the answer is about the guest
 * of before and is dropped; a detach with one in flight leaks nothing
 * (valgrind and ASan watch this). */
static void test_read_in_flight(Fixture *f, gconstpointer data) {
        VT_EVENT_RUN_UNTIL(f->event, state(f) == VMSIG_BOOTSTRAP_BOOTING, TIMEOUT_USEC);
        f->spec.boot = true;
        write_image(f, &f->spec);
        VT_EVENT_RUN_UNTIL(f->event, state(f) == VMSIG_BOOTSTRAP_READY, TIMEOUT_USEC);
        for (int i = 0; i < 20; i++) {
                g_assert_cmpint(vmsig_endpoint_lifecycle(f->ep, VMSIG_OP_RESET, NULL, NULL), ==, 0);
                g_assert_cmpint(sd_event_run(f->event, 0), >=, 0);
        }
        VT_EVENT_RUN_UNTIL(f->event, state(f) == VMSIG_BOOTSTRAP_READY, TIMEOUT_USEC);
        /* The same kernel again (the mailbox stayed), on a new epoch. */
        g_assert_cmphex(payload(f)->dtb, ==, f->spec.dtb);
        g_assert_cmpuint(vmsig_memctx_get(f->core, vmsig_endpoint_get_id(f->ep))->epoch, >=, 4);
        /* Detach with a look at the vCPU under way. */
        g_assert_cmpint(vmsig_endpoint_lifecycle(f->ep, VMSIG_OP_RESET, NULL, NULL), ==, 0);
        vt_event_run_for(f->event, 300 * 1000);
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, f->ep), ==, 0);
        f->ep = NULL;
        vt_event_run_for(f->event, 100 * 1000);
}

/* The job every memctx adapter calls on a guest reset, on an endpoint
 * without adapters of its own: a new epoch each time, and the search starts
 * over; without a bootstrap or a config to make one, the state is idle. */
static void test_guest_reset_job(Fixture *f, gconstpointer data) {
        vmsig_endpoint_spec es = { .name = "beta", .initial_state = VMSIG_STATE_RUNNING };
        const vmsig_bootstrap_config config = { .fail_first = 1 };
        vmsig_memctx_source src;
        vmsig_bootstrap *b = NULL, *first;
        vmsig_endpoint *ep;
        vmsig_id id;
        uint64_t epoch;
        int fd = memfd_create("beta", MFD_CLOEXEC);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(ftruncate(fd, 1 << 20), ==, 0);
        g_assert_cmpint(sd_id128_randomize(&es.uuid), >=, 0);
        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &es, &ep), ==, 0);
        id = vmsig_endpoint_get_id(ep);
        g_assert_cmpint(vmsig_memctx_source_init(&src, fd, 1 << 20, NULL, 0), ==, 0);
        g_assert_cmpint(vmsig_memctx_source_publish(&src, ep), ==, 0);
        epoch = src.epoch;

        g_assert_cmpint(vmsig_bootstrap_guest_reset(ep, &src, NULL, &b), >=, 0);
        g_assert_null(b);
        g_assert_cmpuint(src.epoch, ==, epoch + 1);
        vmsig_core_flush(f->core);
        g_assert_cmpint(vmsig_bootstrap_get(f->core, id)->state, ==, VMSIG_BOOTSTRAP_IDLE);

        g_assert_cmpint(vmsig_bootstrap_guest_reset(ep, &src, &config, &b), >=, 0);
        g_assert_nonnull(b);
        g_assert_cmpuint(src.epoch, ==, epoch + 2);
        vmsig_core_flush(f->core);
        g_assert_cmpint(vmsig_bootstrap_get(f->core, id)->state, ==, VMSIG_BOOTSTRAP_SEARCHING);
        g_assert_cmpuint(vmsig_bootstrap_get_attempts(b), ==, 0);

        /* The bootstrap there is starts over, none other is made. */
        first = b;
        g_assert_cmpint(vmsig_bootstrap_restart(ep, &src, &config, &b), >=, 0);
        g_assert_true(b == first);
        g_assert_cmpuint(src.epoch, ==, epoch + 2);

        vmsig_bootstrap_free(b);
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, 0);
        vmsig_memctx_source_done(&src);
}

static const vmsig_bootstrap_config slow_backoff = {
        .backoff_initial_usec = 250 * 1000,
        .backoff_max_usec = 8 * 1000 * 1000,
};

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/bootstrap/backoff", test_backoff);
#define ADD(name, config, fn) g_test_add("/bootstrap/" name, Fixture, config, fixture_setup, fn, fixture_teardown)
        ADD("booting-is-quiet", NULL, test_booting_is_quiet);
        ADD("found-by-the-next-attempt", &slow_backoff, test_found_by_the_next_attempt);
        ADD("found-when-the-kernel-starts", &slow_backoff, test_found_when_the_kernel_starts);
        ADD("read-in-flight", NULL, test_read_in_flight);
        ADD("guest-reset-job", NULL, test_guest_reset_job);
        return g_test_run();
}
