/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The endpoint registry with fake adapters: attach and detach, ROSTER and
 * LIFECYCLE events, deferred freeing, slot reuse, fd sources of an
 * endpoint, memctx publishing and display captures. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "memctx.h"
#include "event-loop.h"
#include "vmsig-core.h"
#include "vmsig-endpoint.h"
#include "vt-util.h"

/* --- the fake backend ------------------------------------------------------ */

typedef struct fake_vm fake_vm;

typedef struct fake_role {
        fake_vm *vm;
        const char *name;
} fake_role;

typedef struct fake_request {
        vmsig_lifecycle_op op;
        vmsig_done_fn done;
        void *userdata;
} fake_request;

typedef struct fake_capture {
        vmsig_display_done_fn done;
        void *userdata;
} fake_capture;

/* A 2x2 display, one row padded to 12 bytes. */
#define FAKE_WIDTH 2
#define FAKE_HEIGHT 2
#define FAKE_STRIDE 12
static const uint8_t fake_pixels[FAKE_HEIGHT * FAKE_STRIDE] = {
        0x10, 0x20, 0x30, 0, 0x40, 0x50, 0x60, 0, 0xee, 0xee, 0xee, 0xee,
        0x70, 0x80, 0x90, 0, 0xa0, 0xb0, 0xc0, 0, 0xee, 0xee, 0xee, 0xee,
};

/* One VM behind up to four adapters. Every call is written to a log the test
 * owns, so that it can still be read after the adapters were freed. */
struct fake_vm {
        unsigned n_ref; /* one per role */
        GString *log;
        int fail_role; /* the role whose attach fails, or -1 */
        vmsig_endpoint *ep;
        fake_role roles[_VMSIG_ADAPTER_MAX];
        sd_event_source *complete; /* completes lifecycle requests */
        GQueue requests;
        sd_event_source *capture; /* completes display captures */
        GQueue captures;
};

static void fake_log(fake_vm *vm, const char *role, const char *what) {
        g_string_append_printf(vm->log, "%s.%s ", role, what);
}

static void fake_unref(fake_vm *vm) {
        if (--vm->n_ref > 0)
                return;
        g_assert_null(vm->complete);
        g_assert_true(g_queue_is_empty(&vm->requests));
        g_assert_null(vm->capture);
        g_assert_true(g_queue_is_empty(&vm->captures));
        g_free(vm);
}

static void fake_finish(fake_request *q, int error, const char *message) {
        vmsig_result res = { .error = error, .message = message };

        q->done(&res, q->userdata);
        g_free(q);
}

static vmsig_state fake_next_state(vmsig_state from, vmsig_lifecycle_op op) {
        switch (op) {
        case VMSIG_OP_PAUSE:
                return VMSIG_STATE_PAUSED;
        case VMSIG_OP_RESUME:
                return VMSIG_STATE_RUNNING;
        case VMSIG_OP_POWER_OFF:
                return VMSIG_STATE_SHUT_OFF;
        default:
                return from;
        }
}

static int on_fake_complete(sd_event_source *s, void *userdata) {
        fake_vm *vm = userdata;
        fake_request *q;

        while (vm->ep && (q = g_queue_pop_head(&vm->requests))) {
                vmsig_state to = fake_next_state(vmsig_endpoint_get_state(vm->ep), q->op);
                vmsig_endpoint_report_lifecycle(vm->ep, q->op, to);
                fake_finish(q, 0, NULL);
        }
        return 0;
}

static void fake_capture_finish(fake_capture *q, int error, const char *message) {
        vmsig_result res = { .error = error, .message = message };
        vmsig_display_image image = {
                .fd = memfd_create("fake-display", MFD_CLOEXEC),
                .size = sizeof fake_pixels,
                .encoding = VMSIG_IMAGE_RAW,
                .width = FAKE_WIDTH,
                .height = FAKE_HEIGHT,
                .stride = FAKE_STRIDE,
        };

        g_assert_cmpint(image.fd, >=, 0);
        g_assert_cmpint(write(image.fd, fake_pixels, sizeof fake_pixels), ==, (ssize_t) sizeof fake_pixels);
        q->done(&res, error == 0 ? &image : NULL, q->userdata);
        close(image.fd);
        g_free(q);
}

static int on_fake_capture(sd_event_source *s, void *userdata) {
        fake_vm *vm = userdata;
        fake_capture *q;

        while (vm->capture && (q = g_queue_pop_head(&vm->captures)))
                fake_capture_finish(q, 0, NULL);
        return 0;
}

static int fake_attach(void *data, vmsig_endpoint *ep) {
        fake_role *r = data;
        fake_vm *vm = r->vm;
        sd_event *e = vmsig_core_get_event(vmsig_endpoint_get_core(ep));

        fake_log(vm, r->name, "attach");
        if (vm->fail_role >= 0 && r == &vm->roles[vm->fail_role])
                return -EIO;
        if (r == &vm->roles[VMSIG_ADAPTER_DISPLAY]) {
                g_assert_cmpint(sd_event_add_defer(e, &vm->capture, on_fake_capture, vm), >=, 0);
                return sd_event_source_set_enabled(vm->capture, SD_EVENT_OFF);
        }
        if (r != &vm->roles[VMSIG_ADAPTER_HOST])
                return 0;
        vm->ep = ep;
        g_assert_cmpint(sd_event_add_defer(e, &vm->complete, on_fake_complete, vm), >=, 0);
        return sd_event_source_set_enabled(vm->complete, SD_EVENT_OFF);
}

static void fake_detach(void *data, vmsig_endpoint *ep) {
        fake_role *r = data;
        fake_vm *vm = r->vm;
        fake_request *q;

        fake_log(vm, r->name, "detach");
        if (r == &vm->roles[VMSIG_ADAPTER_DISPLAY]) {
                fake_capture *c;
                vm->capture = sd_event_source_disable_unref(vm->capture);
                while ((c = g_queue_pop_head(&vm->captures)))
                        fake_capture_finish(c, -ENODEV, "detached");
                return;
        }
        if (r != &vm->roles[VMSIG_ADAPTER_HOST])
                return;
        g_assert_true(vm->ep == ep);
        vm->complete = sd_event_source_disable_unref(vm->complete);
        while ((q = g_queue_pop_head(&vm->requests)))
                fake_finish(q, -ENODEV, "detached");
        vm->ep = NULL;
}

static void fake_free(void *data) {
        fake_role *r = data;

        fake_log(r->vm, r->name, "free");
        fake_unref(r->vm);
}

static int fake_lifecycle(void *data, vmsig_lifecycle_op op, vmsig_done_fn done, void *userdata) {
        fake_role *r = data;
        fake_request *q = g_new(fake_request, 1);

        *q = (fake_request) { op, done, userdata };
        g_queue_push_tail(&r->vm->requests, q);
        return sd_event_source_set_enabled(r->vm->complete, SD_EVENT_ONESHOT);
}

/* Only shows that the request was routed here; nothing waits for its
 * completion. */
static int fake_inject(void *data, const vmsig_input_event *events, size_t n, vmsig_done_fn done, void *userdata) {
        fake_role *r = data;

        fake_log(r->vm, r->name, "inject");
        return 0;
}

static int fake_display_capture(void *data, vmsig_display_done_fn done, void *userdata) {
        fake_role *r = data;
        fake_capture *q = g_new(fake_capture, 1);

        fake_log(r->vm, r->name, "capture");
        *q = (fake_capture) { done, userdata };
        g_queue_push_tail(&r->vm->captures, q);
        return sd_event_source_set_enabled(r->vm->capture, SD_EVENT_ONESHOT);
}

static const vmsig_memctx_ops fake_memctx_ops = {
        .base = { fake_attach, fake_detach, fake_free },
};
static const vmsig_input_ops fake_input_ops = {
        .base = { fake_attach, fake_detach, fake_free },
        .inject = fake_inject,
};
static const vmsig_host_ops fake_host_ops = {
        .base = { fake_attach, fake_detach, fake_free },
        .backend = "fake",
        .lifecycle = fake_lifecycle,
};
static const vmsig_display_ops fake_display_ops = {
        .base = { fake_attach, fake_detach, fake_free },
        .capture = fake_display_capture,
};

/* A spec whose adapters are the given roles of a new fake VM. */
static vmsig_endpoint_spec fake_spec(GString *log, const char *name, vmsig_state state, unsigned roles,
                                     int fail_role) {
        static const char *const role_names[_VMSIG_ADAPTER_MAX] = { "memctx", "input", "host", "display" };
        static const vmsig_adapter_ops *const ops[_VMSIG_ADAPTER_MAX] = {
                &fake_memctx_ops.base,
                &fake_input_ops.base,
                &fake_host_ops.base,
                &fake_display_ops.base,
        };
        fake_vm *vm = g_new0(fake_vm, 1);
        vmsig_endpoint_spec spec = { .name = name, .initial_state = state };

        vm->log = log;
        vm->fail_role = fail_role;
        g_queue_init(&vm->requests);
        g_queue_init(&vm->captures);
        for (int i = 0; i < _VMSIG_ADAPTER_MAX; i++) {
                if (!(roles & (1u << i)))
                        continue;
                vm->roles[i] = (fake_role) { vm, role_names[i] };
                spec.adapters[i] = (vmsig_adapter) { ops[i], &vm->roles[i] };
                vm->n_ref++;
        }
        g_assert_cmpuint(vm->n_ref, >, 0);
        return spec;
}

/* memctx, input and host; the display role has tests of its own. */
#define TRIO_ROLES 7u
#define DISPLAY_ROLE (1u << VMSIG_ADAPTER_DISPLAY)

/* --- fixture ---------------------------------------------------------------- */

typedef struct record {
        uint32_t kind;
        vmsig_id endpoint;
        uint64_t seq;
        bool replay;
        union {
                vmsig_roster_payload roster;
                vmsig_lifecycle_payload lifecycle;
                vmsig_memctx memctx;
                uint64_t value;
        };
        vmsig_gpa_range ranges[4];
} record;

typedef struct Fixture Fixture;
typedef void (*delivery_hook)(Fixture *f, const vmsig_delivery *d);

struct Fixture {
        VT_CORE_MEMBERS;
        GString *log;
        vmsig_subscriber *sub;
        GArray *records;
        delivery_hook hook;
        void *hook_data;
};

static void fixture_setup(Fixture *f, gconstpointer data) {
        vt_core_start(&f->event, &f->core);
        f->log = g_string_new(NULL);
        f->records = g_array_new(false, true, sizeof(record));
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        vt_core_stop(f->event, f->core);
        g_array_unref(f->records);
        g_string_free(f->log, true);
}

static void run_pending(Fixture *f) {
        vt_event_run_pending(f->event);
}

static void copy_payload(record *rec, const vmsig_event *e) {
        switch (e->kind) {
        case VMSIG_KIND_ROSTER:
                g_assert_cmpuint(e->payload_size, ==, sizeof rec->roster);
                memcpy(&rec->roster, e->payload, sizeof rec->roster);
                break;
        case VMSIG_KIND_LIFECYCLE:
                g_assert_cmpuint(e->payload_size, ==, sizeof rec->lifecycle);
                memcpy(&rec->lifecycle, e->payload, sizeof rec->lifecycle);
                break;
        case VMSIG_KIND_MEMCTX: {
                const vmsig_memctx *m = e->payload;
                g_assert_cmpuint(m->n_ranges, <=, G_N_ELEMENTS(rec->ranges));
                g_assert_cmpuint(e->payload_size, ==, sizeof *m + m->n_ranges * sizeof m->ranges[0]);
                rec->memctx = *m;
                memcpy(rec->ranges, m->ranges, m->n_ranges * sizeof m->ranges[0]);
                break;
        }
        default:
                if (e->payload_size == sizeof rec->value)
                        memcpy(&rec->value, e->payload, sizeof rec->value);
        }
}

static int on_deliver(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        Fixture *f = userdata;
        record rec = { .kind = d->event->kind, .endpoint = d->event->endpoint, .seq = d->event->seq,
                       .replay = d->replay };

        copy_payload(&rec, d->event);
        g_array_append_val(f->records, rec);
        if (f->hook)
                f->hook(f, d);
        return VMSIG_DELIVER_OK;
}

static void subscribe(Fixture *f, uint32_t kinds) {
        vmsig_filter filter = { .kinds = kinds };

        g_assert_cmpint(vmsig_core_subscribe(f->core, &filter, 0, on_deliver, f, &f->sub), ==, 0);
}

static const record *rec_at(Fixture *f, size_t i) {
        g_assert_cmpuint(i, <, f->records->len);
        return &g_array_index(f->records, record, i);
}

static vmsig_endpoint *attach(Fixture *f, const char *name, vmsig_state state, unsigned roles) {
        vmsig_endpoint_spec spec = fake_spec(f->log, name, state, roles, -1);
        vmsig_endpoint *ep = NULL;

        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &spec, &ep), ==, 0);
        g_assert_nonnull(ep);
        return ep;
}

static void assert_log(Fixture *f, const char *expect) {
        g_assert_cmpstr(f->log->str, ==, expect);
        g_string_truncate(f->log, 0);
}

static size_t zombies(Fixture *f) {
        vmsig_core_stats st;

        vmsig_core_get_stats(f->core, &st);
        return st.zombies;
}

static void assert_roster(const record *r, vmsig_roster_change change, vmsig_state state, const char *name,
                          vmsig_id id) {
        g_assert_cmpuint(r->kind, ==, VMSIG_KIND_ROSTER);
        g_assert_cmpint(r->roster.change, ==, change);
        g_assert_cmpint(r->roster.state, ==, state);
        g_assert_cmpstr(r->roster.name, ==, name);
        g_assert_cmpuint(r->roster.vmid, ==, VMSIG_ID_SLOT(id));
        g_assert_cmpuint(r->roster.generation, ==, VMSIG_ID_GENERATION(id));
        g_assert_cmpuint(r->endpoint, ==, id);
}

#define MASK(k) VMSIG_KIND_MASK(k)

/* --- registry ---------------------------------------------------------------- */

/* Attach runs the adapters in role order and announces the endpoint with
 * its state; detach runs them in reverse, announces the removal, and the
 * adapters are freed only by the reap that follows. */
static void test_attach_detach(Fixture *f, gconstpointer data) {
        sd_id128_t uuid = SD_ID128_MAKE(6f, 1c, 9a, 52, 8d, 3e, 4b, 7a, 9c, 21, 0e, 5f, 4d, 3b, 2a, 19);
        vmsig_endpoint_spec spec = fake_spec(f->log, "alpha", VMSIG_STATE_PAUSED, TRIO_ROLES, -1);
        vmsig_endpoint *ep = NULL;

        subscribe(f, MASK(VMSIG_KIND_ROSTER));
        spec.uuid = uuid;
        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &spec, &ep), ==, 0);
        assert_log(f, "memctx.attach input.attach host.attach ");

        vmsig_id id = vmsig_endpoint_get_id(ep);
        g_assert_cmpuint(id, ==, VMSIG_ID_MAKE(1, 1));
        g_assert_cmpuint(vmsig_endpoint_get_vmid(ep), ==, 1);
        g_assert_cmpuint(vmsig_endpoint_get_generation(ep), ==, 1);
        g_assert_cmpstr(vmsig_endpoint_get_name(ep), ==, "alpha");
        g_assert_true(sd_id128_equal(vmsig_endpoint_get_uuid(ep), uuid));
        g_assert_cmpint(vmsig_endpoint_get_state(ep), ==, VMSIG_STATE_PAUSED);
        g_assert_cmpstr(vmsig_endpoint_get_backend(ep), ==, "fake");
        g_assert_true(vmsig_endpoint_get_core(ep) == f->core);
        g_assert_true(vmsig_endpoint_is_attached(ep));
        for (int i = 0; i < _VMSIG_ADAPTER_MAX; i++)
                g_assert_true(vmsig_endpoint_has_adapter(ep, i) == (i != VMSIG_ADAPTER_DISPLAY));
        g_assert_false(vmsig_endpoint_has_adapter(ep, _VMSIG_ADAPTER_MAX));
        g_assert_true(vmsig_core_find_endpoint(f->core, id) == ep);
        g_assert_true(vmsig_core_find_endpoint_by_name(f->core, "alpha") == ep);
        g_assert_true(vmsig_core_find_endpoint_by_vmid(f->core, 1) == ep);
        g_assert_true(vmsig_core_next_endpoint(f->core, NULL) == ep);
        g_assert_null(vmsig_core_next_endpoint(f->core, ep));
        g_assert_cmpuint(vmsig_core_endpoint_count(f->core), ==, 1);

        run_pending(f);
        g_assert_cmpuint(f->records->len, ==, 1);
        assert_roster(rec_at(f, 0), VMSIG_ROSTER_ADDED, VMSIG_STATE_PAUSED, "alpha", id);
        g_assert_true(sd_id128_equal(rec_at(f, 0)->roster.uuid, uuid));
        g_assert_cmpuint(rec_at(f, 0)->seq, ==, 1);

        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, 0);
        assert_log(f, "host.detach input.detach memctx.detach ");
        g_assert_false(vmsig_endpoint_is_attached(ep));
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, -ENODEV);
        g_assert_null(vmsig_core_find_endpoint(f->core, id));
        g_assert_null(vmsig_core_find_endpoint_by_name(f->core, "alpha"));
        g_assert_null(vmsig_core_find_endpoint_by_vmid(f->core, 1));
        g_assert_null(vmsig_core_next_endpoint(f->core, NULL));
        g_assert_cmpuint(vmsig_core_endpoint_count(f->core), ==, 0);
        g_assert_cmpuint(zombies(f), ==, 1);

        run_pending(f);
        assert_log(f, "host.free input.free memctx.free ");
        g_assert_cmpuint(zombies(f), ==, 0);
        g_assert_cmpuint(f->records->len, ==, 2);
        assert_roster(rec_at(f, 1), VMSIG_ROSTER_REMOVED, VMSIG_STATE_PAUSED, "alpha", id);
        g_assert_cmpuint(rec_at(f, 1)->seq, ==, 2);
}

static void attach_fails(Fixture *f, const char *name, vmsig_state state, int error) {
        vmsig_endpoint_spec spec = fake_spec(f->log, name, state, TRIO_ROLES, -1);
        vmsig_endpoint *ep = NULL;

        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &spec, &ep), ==, error);
        g_assert_null(ep);
        /* The spec's adapters are freed and never attached. */
        assert_log(f, "host.free input.free memctx.free ");
}

/* A refused attach frees the spec's adapters; a failing adapter attach
 * detaches those that attached before it and frees all of them. */
static void test_attach_errors(Fixture *f, gconstpointer data) {
        char long_name[VMSIG_NAME_MAX + 2];
        vmsig_endpoint_spec spec;
        vmsig_endpoint *ep = NULL;

        memset(long_name, 'a', sizeof long_name - 1);
        long_name[sizeof long_name - 1] = 0;
        attach(f, "alpha", VMSIG_STATE_RUNNING, TRIO_ROLES);
        g_string_truncate(f->log, 0);
        subscribe(f, MASK(VMSIG_KIND_ROSTER));
        run_pending(f);
        g_array_set_size(f->records, 0);

        attach_fails(f, "alpha", VMSIG_STATE_RUNNING, -EEXIST);
        attach_fails(f, "", VMSIG_STATE_RUNNING, -EINVAL);
        attach_fails(f, "-x", VMSIG_STATE_RUNNING, -EINVAL);
        attach_fails(f, "a/b", VMSIG_STATE_RUNNING, -EINVAL);
        attach_fails(f, long_name, VMSIG_STATE_RUNNING, -EINVAL);
        attach_fails(f, "beta", _VMSIG_STATE_MAX, -EINVAL);
        run_pending(f);
        g_assert_cmpuint(f->records->len, ==, 0);

        spec = fake_spec(f->log, "beta", VMSIG_STATE_RUNNING, TRIO_ROLES, VMSIG_ADAPTER_HOST);
        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &spec, &ep), ==, -EIO);
        g_assert_null(ep);
        assert_log(f, "memctx.attach input.attach host.attach input.detach memctx.detach ");
        g_assert_null(vmsig_core_find_endpoint_by_name(f->core, "beta"));
        g_assert_cmpuint(vmsig_core_endpoint_count(f->core), ==, 1);
        run_pending(f);
        assert_log(f, "host.free input.free memctx.free ");
        g_assert_cmpuint(zombies(f), ==, 0);

        /* The name is free again. */
        attach(f, "beta", VMSIG_STATE_RUNNING, TRIO_ROLES);
        g_assert_cmpuint(vmsig_core_endpoint_count(f->core), ==, 2);
}

static void attach_in_callback_hook(Fixture *f, const vmsig_delivery *d) {
        const record *r = rec_at(f, f->records->len - 1);

        if (r->kind != VMSIG_KIND_ROSTER || r->roster.change != VMSIG_ROSTER_ADDED)
                return;
        if (strcmp(r->roster.name, "alpha") == 0)
                attach(f, "beta", VMSIG_STATE_PAUSED, TRIO_ROLES); /* from inside a dispatch */
        else
                g_assert_cmpint(sd_event_exit(f->event, 0), >=, 0);
}

static int on_attach_defer(sd_event_source *s, void *userdata) {
        attach(userdata, "alpha", VMSIG_STATE_RUNNING, TRIO_ROLES);
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), -ETIMEDOUT);
}

/* Endpoints attached while the loop runs, from a loop callback and from a
 * subscriber's delivery function, are announced and usable. */
static void test_attach_while_running(Fixture *f, gconstpointer data) {
        sd_event_source *defer = NULL, *timeout = NULL;

        subscribe(f, MASK(VMSIG_KIND_ROSTER));
        f->hook = attach_in_callback_hook;
        g_assert_cmpint(sd_event_add_defer(f->event, &defer, on_attach_defer, f), >=, 0);
        g_assert_cmpint(sd_event_source_set_enabled(defer, SD_EVENT_ONESHOT), >=, 0);
        g_assert_cmpint(sd_event_add_time_relative(f->event, &timeout, CLOCK_MONOTONIC, 5 * G_USEC_PER_SEC, 0,
                                                   on_timeout, NULL),
                        >=, 0);
        g_assert_cmpint(sd_event_loop(f->event), ==, 0);

        g_assert_cmpuint(f->records->len, ==, 2);
        assert_roster(rec_at(f, 0), VMSIG_ROSTER_ADDED, VMSIG_STATE_RUNNING, "alpha", VMSIG_ID_MAKE(1, 1));
        assert_roster(rec_at(f, 1), VMSIG_ROSTER_ADDED, VMSIG_STATE_PAUSED, "beta", VMSIG_ID_MAKE(2, 1));
        g_assert_cmpuint(vmsig_core_endpoint_count(f->core), ==, 2);
        g_assert_nonnull(vmsig_core_find_endpoint_by_name(f->core, "beta"));
        sd_event_source_disable_unref(defer);
        sd_event_source_disable_unref(timeout);
}

typedef struct detach_ctx {
        vmsig_id target;
        bool done;
        bool keep_ref;
        vmsig_endpoint *kept;
} detach_ctx;

/* Detaches the endpoint whose event is being delivered, then keeps using
 * it: it must stay valid until the dispatch is over. */
static void detach_in_delivery_hook(Fixture *f, const vmsig_delivery *d) {
        detach_ctx *c = f->hook_data;
        vmsig_endpoint *ep;

        if (c->done || d->event->kind != VMSIG_KIND_SAMPLE || d->event->endpoint != c->target)
                return;
        c->done = true;
        ep = vmsig_core_find_endpoint(f->core, d->event->endpoint);
        g_assert_nonnull(ep);
        if (c->keep_ref)
                c->kept = vmsig_endpoint_ref(ep);
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, 0);

        g_assert_false(vmsig_endpoint_is_attached(ep));
        g_assert_cmpstr(vmsig_endpoint_get_name(ep), ==, "alpha");
        g_assert_cmpuint(vmsig_endpoint_get_id(ep), ==, c->target);
        g_assert_cmpint(vmsig_endpoint_get_state(ep), ==, VMSIG_STATE_RUNNING);
        g_assert_cmpstr(vmsig_endpoint_get_backend(ep), ==, "fake");
        g_assert_cmpint(vmsig_endpoint_lifecycle(ep, VMSIG_OP_PAUSE, NULL, NULL), ==, -ENODEV);
        g_assert_cmpuint(zombies(f), ==, 1);
        g_assert_null(strstr(f->log->str, "free"));
}

static void publish_u64(Fixture *f, vmsig_id id, uint64_t v) {
        g_assert_cmpint(vmsig_core_publish(f->core, VMSIG_KIND_SAMPLE, id, 0, &v, sizeof v), ==, 0);
}

static void test_detach_during_dispatch(Fixture *f, gconstpointer data) {
        vmsig_endpoint *a = attach(f, "alpha", VMSIG_STATE_RUNNING, TRIO_ROLES);
        vmsig_endpoint *b = attach(f, "beta", VMSIG_STATE_RUNNING, TRIO_ROLES);
        detach_ctx c = { .target = vmsig_endpoint_get_id(a) };
        vmsig_id bid = vmsig_endpoint_get_id(b);

        run_pending(f);
        g_string_truncate(f->log, 0);
        subscribe(f, MASK(VMSIG_KIND_SAMPLE) | MASK(VMSIG_KIND_ROSTER));
        run_pending(f);
        g_array_set_size(f->records, 0);
        f->hook = detach_in_delivery_hook;
        f->hook_data = &c;
        publish_u64(f, c.target, 1);
        publish_u64(f, bid, 2);
        run_pending(f);

        g_assert_true(c.done);
        assert_log(f, "host.detach input.detach memctx.detach host.free input.free memctx.free ");
        g_assert_cmpuint(zombies(f), ==, 0);
        g_assert_null(vmsig_core_find_endpoint_by_vmid(f->core, VMSIG_ID_SLOT(c.target)));
        g_assert_cmpint(vmsig_core_publish(f->core, VMSIG_KIND_SAMPLE, c.target, 0, NULL, 0), ==, -ESTALE);
        g_assert_cmpuint(f->records->len, ==, 3);
        g_assert_cmpuint(rec_at(f, 0)->value, ==, 1);
        assert_roster(rec_at(f, 1), VMSIG_ROSTER_REMOVED, VMSIG_STATE_RUNNING, "alpha", c.target);
        g_assert_cmpuint(rec_at(f, 2)->value, ==, 2);
        g_assert_cmpuint(rec_at(f, 2)->endpoint, ==, bid);
}

/* A reference taken in the delivery function keeps the detached endpoint
 * past the dispatch; the reap follows its last unref. */
static void test_detach_during_dispatch_ref(Fixture *f, gconstpointer data) {
        vmsig_endpoint *a = attach(f, "alpha", VMSIG_STATE_RUNNING, TRIO_ROLES);
        detach_ctx c = { .target = vmsig_endpoint_get_id(a), .keep_ref = true };

        subscribe(f, MASK(VMSIG_KIND_SAMPLE));
        f->hook = detach_in_delivery_hook;
        f->hook_data = &c;
        g_string_truncate(f->log, 0);
        publish_u64(f, c.target, 1);
        run_pending(f);

        assert_log(f, "host.detach input.detach memctx.detach ");
        g_assert_cmpuint(zombies(f), ==, 1);
        g_assert_cmpstr(vmsig_endpoint_get_name(c.kept), ==, "alpha");
        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &(vmsig_endpoint_spec) { .name = "alpha" }, NULL), ==,
                        0); /* the name is free, the slot is not */
        g_assert_cmpuint(vmsig_endpoint_get_vmid(vmsig_core_find_endpoint_by_name(f->core, "alpha")), ==, 2);
        vmsig_endpoint_unref(c.kept);
        g_assert_null(strstr(f->log->str, "free")); /* deferred to the reap */
        run_pending(f);
        assert_log(f, "host.free input.free memctx.free ");
        g_assert_cmpuint(zombies(f), ==, 0);
}

typedef struct fd_ctx {
        Fixture *f;
        vmsig_endpoint *ep;
        unsigned calls;
        vmsig_cookie cookie;
        bool detach;
} fd_ctx;

static void on_endpoint_fd(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        fd_ctx *x = userdata;
        eventfd_t v;

        g_assert_cmpint(eventfd_read(fd, &v), ==, 0);
        g_assert_cmpuint(cookie, ==, x->cookie);
        x->calls++;
        if (!x->detach)
                return;
        g_assert_cmpint(vmsig_core_detach_endpoint(c, x->ep), ==, 0);
        /* Still valid: the core holds a reference for the callback. */
        g_assert_cmpstr(vmsig_endpoint_get_name(x->ep), ==, "alpha");
        g_assert_false(vmsig_endpoint_is_attached(x->ep));
}

/* An endpoint's fd sources reach their callback with their userdata, can
 * be removed once, go away with the endpoint, and a callback may detach
 * its own endpoint. */
static void test_endpoint_fd(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach(f, "alpha", VMSIG_STATE_RUNNING, TRIO_ROLES);
        int e1 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), e2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        fd_ctx x1 = { .f = f, .ep = ep }, x2 = { .f = f, .ep = ep };
        vmsig_core_stats st;

        g_assert_cmpint(vmsig_endpoint_add_fd(ep, e1, EPOLLIN, on_endpoint_fd, &x1, &x1.cookie), ==, 0);
        g_assert_cmpint(vmsig_endpoint_add_fd(ep, e2, EPOLLIN, on_endpoint_fd, &x2, &x2.cookie), ==, 0);
        g_assert_cmpint(eventfd_write(e1, 1), ==, 0);
        run_pending(f);
        g_assert_cmpuint(x1.calls, ==, 1);
        g_assert_cmpuint(x2.calls, ==, 0);

        g_assert_cmpint(vmsig_endpoint_remove_fd(ep, x1.cookie), ==, 0);
        g_assert_cmpint(vmsig_endpoint_remove_fd(ep, x1.cookie), ==, -ESTALE);
        g_assert_cmpint(eventfd_write(e1, 1), ==, 0);
        run_pending(f);
        g_assert_cmpuint(x1.calls, ==, 1);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.fd_sources, ==, 1);

        x2.detach = true;
        g_assert_cmpint(eventfd_write(e2, 1), ==, 0);
        run_pending(f);
        g_assert_cmpuint(x2.calls, ==, 1);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.fd_sources, ==, 0); /* removed by the detach */
        g_assert_cmpuint(st.zombies, ==, 0);
        g_assert_cmpuint(st.endpoints, ==, 0);
        g_assert_nonnull(strstr(f->log->str, "memctx.free"));
        close(e1);
        close(e2);
}

/* A slot comes back only after the reap, with the next generation; the
 * old id finds nothing and cannot be published to. */
static void test_slot_reuse(Fixture *f, gconstpointer data) {
        vmsig_core_set_max_endpoints(f->core, 1);
        subscribe(f, MASK(VMSIG_KIND_ROSTER));
        vmsig_endpoint *a = attach(f, "alpha", VMSIG_STATE_RUNNING, TRIO_ROLES);
        vmsig_id old = vmsig_endpoint_get_id(a);

        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, a), ==, 0);
        g_string_truncate(f->log, 0);
        attach_fails(f, "beta", VMSIG_STATE_RUNNING, -ENOSPC);
        run_pending(f);

        vmsig_endpoint *b = attach(f, "beta", VMSIG_STATE_RUNNING, TRIO_ROLES);
        vmsig_id id = vmsig_endpoint_get_id(b);
        g_assert_cmpuint(VMSIG_ID_SLOT(id), ==, VMSIG_ID_SLOT(old));
        g_assert_cmpuint(VMSIG_ID_GENERATION(id), ==, VMSIG_ID_GENERATION(old) + 1);
        g_assert_null(vmsig_core_find_endpoint(f->core, old));
        g_assert_true(vmsig_core_find_endpoint_by_vmid(f->core, VMSIG_ID_SLOT(old)) == b);
        g_assert_cmpint(vmsig_core_publish(f->core, VMSIG_KIND_SAMPLE, old, 0, NULL, 0), ==, -ESTALE);
        g_assert_null(vmsig_core_get_retained(f->core, old, VMSIG_KIND_ROSTER, 0));
        run_pending(f);
        g_assert_nonnull(vmsig_core_get_retained(f->core, id, VMSIG_KIND_ROSTER, 0));

        g_assert_cmpuint(f->records->len, ==, 3);
        assert_roster(rec_at(f, 2), VMSIG_ROSTER_ADDED, VMSIG_STATE_RUNNING, "beta", id);
        g_assert_cmpuint(rec_at(f, 2)->roster.generation, ==, 2);
        g_assert_cmpuint(rec_at(f, 2)->seq, ==, 1); /* sequence restarts with the incarnation */
}

/* --- lifecycle ---------------------------------------------------------------- */

typedef struct done_ctx {
        unsigned calls;
        int error;
        char message[128];
} done_ctx;

static void on_done(const vmsig_result *r, void *userdata) {
        done_ctx *d = userdata;

        d->calls++;
        d->error = r->error;
        g_strlcpy(d->message, r->message ? r->message : "", sizeof d->message);
}

static void assert_lifecycle(const record *r, vmsig_lifecycle_op op, vmsig_state from, vmsig_state to) {
        g_assert_cmpuint(r->kind, ==, VMSIG_KIND_LIFECYCLE);
        g_assert_cmpint(r->lifecycle.op, ==, op);
        g_assert_cmpint(r->lifecycle.old_state, ==, from);
        g_assert_cmpint(r->lifecycle.new_state, ==, to);
}

/* Lifecycle requests go to the host adapter; its reports become LIFECYCLE
 * events, and ROSTER(changed) when the state changed. */
static void test_lifecycle(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach(f, "alpha", VMSIG_STATE_RUNNING, TRIO_ROLES);
        vmsig_id id = vmsig_endpoint_get_id(ep);
        done_ctx d = { 0 };

        run_pending(f);
        subscribe(f, MASK(VMSIG_KIND_LIFECYCLE) | MASK(VMSIG_KIND_ROSTER));
        run_pending(f);
        g_array_set_size(f->records, 0);

        g_assert_cmpint(vmsig_endpoint_lifecycle(ep, VMSIG_OP_PAUSE, on_done, &d), ==, 0);
        g_assert_cmpuint(d.calls, ==, 0);
        run_pending(f);
        g_assert_cmpuint(d.calls, ==, 1);
        g_assert_cmpint(d.error, ==, 0);
        g_assert_cmpint(vmsig_endpoint_get_state(ep), ==, VMSIG_STATE_PAUSED);
        g_assert_cmpuint(f->records->len, ==, 2);
        assert_lifecycle(rec_at(f, 0), VMSIG_OP_PAUSE, VMSIG_STATE_RUNNING, VMSIG_STATE_PAUSED);
        assert_roster(rec_at(f, 1), VMSIG_ROSTER_CHANGED, VMSIG_STATE_PAUSED, "alpha", id);

        /* A reset keeps the state: LIFECYCLE only. */
        g_assert_cmpint(vmsig_endpoint_lifecycle(ep, VMSIG_OP_RESET, on_done, &d), ==, 0);
        run_pending(f);
        g_assert_cmpuint(d.calls, ==, 2);
        g_assert_cmpuint(f->records->len, ==, 3);
        assert_lifecycle(rec_at(f, 2), VMSIG_OP_RESET, VMSIG_STATE_PAUSED, VMSIG_STATE_PAUSED);
        const vmsig_event *e = vmsig_core_get_retained(f->core, id, VMSIG_KIND_LIFECYCLE, 0);
        g_assert_nonnull(e);
        g_assert_cmpint(((const vmsig_lifecycle_payload *) e->payload)->op, ==, VMSIG_OP_RESET);

        g_assert_cmpint(vmsig_endpoint_lifecycle(ep, _VMSIG_OP_MAX, on_done, &d), ==, -EINVAL);
        g_assert_cmpint(vmsig_endpoint_lifecycle(ep, (vmsig_lifecycle_op) -1, on_done, &d), ==, -EINVAL);

        /* A request still queued at detach completes with -ENODEV. */
        g_assert_cmpint(vmsig_endpoint_lifecycle(ep, VMSIG_OP_RESUME, on_done, &d), ==, 0);
        vmsig_endpoint_ref(ep);
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, 0);
        g_assert_cmpuint(d.calls, ==, 3);
        g_assert_cmpint(d.error, ==, -ENODEV);
        g_assert_cmpint(vmsig_endpoint_lifecycle(ep, VMSIG_OP_RESUME, on_done, &d), ==, -ENODEV);
        g_assert_cmpint(vmsig_endpoint_inject_input(ep, NULL, 0, on_done, &d), ==, -ENODEV);

        /* Reports after detach are ignored. */
        run_pending(f);
        size_t n = f->records->len;
        vmsig_endpoint_report_lifecycle(ep, VMSIG_OP_RESUME, VMSIG_STATE_RUNNING);
        run_pending(f);
        g_assert_cmpuint(f->records->len, ==, n);
        g_assert_cmpint(vmsig_endpoint_get_state(ep), ==, VMSIG_STATE_PAUSED);
        vmsig_endpoint_unref(ep);
        run_pending(f);
        g_assert_cmpuint(d.calls, ==, 3);
}

/* --- display ------------------------------------------------------------------ */

typedef struct image_ctx {
        unsigned calls;
        unsigned order; /* value of *counter at the call */
        unsigned *counter;
        int error;
        bool had_image;
        vmsig_display_image image;
        uint8_t pixels[sizeof fake_pixels];
} image_ctx;

/* Reads the image while it is valid: during the callback only. */
static void on_image(const vmsig_result *r, const vmsig_display_image *image, void *userdata) {
        image_ctx *c = userdata;

        c->calls++;
        if (c->counter)
                c->order = ++*c->counter;
        c->error = r->error;
        c->had_image = image;
        if (!image)
                return;
        c->image = *image;
        g_assert_cmpuint(image->size, ==, sizeof c->pixels);
        g_assert_cmpint(pread(image->fd, c->pixels, sizeof c->pixels, 0), ==, (ssize_t) sizeof c->pixels);
}

/* Captures go to the display adapter, which attaches last and detaches
 * first; they complete later with the image, or with -ENODEV when the
 * endpoint goes first. A detached endpoint refuses them without asking the
 * adapter. */
static void test_display(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach(f, "alpha", VMSIG_STATE_RUNNING, TRIO_ROLES | DISPLAY_ROLE);
        unsigned counter = 0;
        image_ctx one = { 0 }, a = { .counter = &counter }, b = { .counter = &counter }, late = { 0 };

        assert_log(f, "memctx.attach input.attach host.attach display.attach ");
        g_assert_true(vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_DISPLAY));

        g_assert_cmpint(vmsig_endpoint_capture_display(ep, on_image, &one), ==, 0);
        g_assert_cmpuint(one.calls, ==, 0);
        assert_log(f, "display.capture ");
        run_pending(f);
        g_assert_cmpuint(one.calls, ==, 1);
        g_assert_cmpint(one.error, ==, 0);
        g_assert_true(one.had_image);
        g_assert_cmpint(one.image.encoding, ==, VMSIG_IMAGE_RAW);
        g_assert_cmpuint(one.image.width, ==, FAKE_WIDTH);
        g_assert_cmpuint(one.image.height, ==, FAKE_HEIGHT);
        g_assert_cmpuint(one.image.stride, ==, FAKE_STRIDE);
        g_assert_cmpmem(one.pixels, sizeof one.pixels, fake_pixels, sizeof fake_pixels);

        g_assert_cmpint(vmsig_endpoint_capture_display(ep, on_image, &a), ==, 0);
        g_assert_cmpint(vmsig_endpoint_capture_display(ep, on_image, &b), ==, 0);
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, 0);
        assert_log(f, "display.capture display.capture display.detach host.detach input.detach memctx.detach ");
        g_assert_cmpuint(a.calls, ==, 1);
        g_assert_cmpuint(b.calls, ==, 1);
        g_assert_cmpint(a.error, ==, -ENODEV);
        g_assert_cmpint(b.error, ==, -ENODEV);
        g_assert_false(a.had_image);
        g_assert_cmpuint(a.order, <, b.order);

        g_assert_cmpint(vmsig_endpoint_capture_display(ep, on_image, &late), ==, -ENODEV);
        assert_log(f, "");
        run_pending(f);
        assert_log(f, "display.free host.free input.free memctx.free ");
        g_assert_cmpuint(late.calls, ==, 0);
        g_assert_cmpuint(a.calls, ==, 1);
        g_assert_cmpuint(b.calls, ==, 1);
}

/* Without the adapter for a request, it is not supported. */
static void test_missing_adapters(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach(f, "alpha", VMSIG_STATE_RUNNING, 1u << VMSIG_ADAPTER_MEMCTX);
        vmsig_input_event ev = { VMSIG_INPUT_KEY, 30, 1 };
        done_ctx d = { 0 };
        image_ctx img = { 0 };

        g_assert_cmpstr(vmsig_endpoint_get_backend(ep), ==, "none");
        g_assert_true(vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_MEMCTX));
        g_assert_false(vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_HOST));
        g_assert_cmpint(vmsig_endpoint_lifecycle(ep, VMSIG_OP_PAUSE, on_done, &d), ==, -EOPNOTSUPP);
        g_assert_cmpint(vmsig_endpoint_inject_input(ep, &ev, 1, on_done, &d), ==, -EOPNOTSUPP);
        g_assert_cmpint(vmsig_endpoint_capture_display(ep, on_image, &img), ==, -EOPNOTSUPP);
        run_pending(f);
        g_assert_cmpuint(d.calls, ==, 0);
        g_assert_cmpuint(img.calls, ==, 0);

        vmsig_endpoint *in = attach(f, "beta", VMSIG_STATE_RUNNING, 1u << VMSIG_ADAPTER_INPUT);
        g_assert_cmpint(vmsig_endpoint_inject_input(in, &ev, 1, on_done, &d), ==, 0);
        assert_log(f, "memctx.attach input.attach input.inject ");
}

/* --- memctx -------------------------------------------------------------------- */

static int make_ram(size_t size) {
        int fd = memfd_create("test-ram", MFD_CLOEXEC);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(ftruncate(fd, (off_t) size), ==, 0);
        return fd;
}

static size_t count_fds(void) {
        return vt_open_fds(0);
}

static bool same_file(int a, int b) {
        struct stat sa, sb;

        g_assert_cmpint(fstat(a, &sa), ==, 0);
        g_assert_cmpint(fstat(b, &sb), ==, 0);
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The datum publish announced: epoch 1 with the Windows root, one range
 * over all of ram, and a descriptor of its own for the same file. */
static void assert_memctx_published(const vmsig_memctx *m, int ram) {
        g_assert_nonnull(m);
        g_assert_cmpuint(m->epoch, ==, 1);
        g_assert_false(m->invalidated);
        g_assert_cmpuint(m->dtb, ==, 0x1000);
        g_assert_cmpuint(m->kernel_hint, ==, 0xffff8000);
        g_assert_cmpuint(m->levels, ==, 4); /* 0 in a root means 4 */
        g_assert_cmpint(m->os, ==, VMSIG_GUEST_OS_WINDOWS);
        g_assert_cmpuint(m->witnesses, ==, VMSIG_WITNESS_EPROCESS | VMSIG_WITNESS_CR3);
        g_assert_cmpuint(m->ram_size, ==, 65536);
        g_assert_cmpuint(m->n_ranges, ==, 1);
        g_assert_cmpuint(m->ranges[0].gpa, ==, 0);
        g_assert_cmpuint(m->ranges[0].size, ==, 65536);
        g_assert_cmpuint(m->ranges[0].offset, ==, 0);
        g_assert_cmpint(m->ram_fd, !=, ram);
        g_assert_true(same_file(m->ram_fd, ram));
        g_assert_cmpint(fcntl(m->ram_fd, F_GETFD), ==, FD_CLOEXEC);
}

/* After epoch 1: new_epoch invalidates it and announces epoch 2 without
 * the DTB. Epoch 2 never had a root: nobody could use it for virtual
 * addresses, so its end is no invalidation anyone hears of; epoch 3 had
 * one, its end is heard of. */
static void memctx_new_epochs(Fixture *f, vmsig_endpoint *ep, vmsig_memctx_source *src) {
        const vmsig_memctx *m;

        g_assert_cmpint(vmsig_memctx_source_new_epoch(src, ep), ==, 0);
        run_pending(f);
        g_assert_cmpuint(f->records->len, ==, 3);
        g_assert_cmpuint(rec_at(f, 1)->memctx.epoch, ==, 1);
        g_assert_true(rec_at(f, 1)->memctx.invalidated);
        g_assert_cmpuint(rec_at(f, 1)->memctx.dtb, ==, 0);
        g_assert_cmpuint(rec_at(f, 2)->memctx.epoch, ==, 2);
        g_assert_false(rec_at(f, 2)->memctx.invalidated);
        g_assert_cmpuint(rec_at(f, 2)->memctx.dtb, ==, 0);
        g_assert_cmpuint(rec_at(f, 2)->memctx.kernel_hint, ==, 0);
        g_assert_cmpuint(rec_at(f, 2)->seq, >, rec_at(f, 1)->seq);

        m = vmsig_memctx_get(f->core, vmsig_endpoint_get_id(ep));
        g_assert_cmpuint(m->epoch, ==, 2);
        g_assert_false(m->invalidated);
        g_assert_cmpuint(m->levels, ==, 0);
        g_assert_cmpuint(m->witnesses, ==, 0);

        vmsig_memctx_root root = { .dtb = 0x2000, .levels = 5, .os = VMSIG_GUEST_OS_LINUX,
                                   .witnesses = VMSIG_WITNESS_CR3 | VMSIG_WITNESS_BANNER };
        g_assert_cmpint(vmsig_memctx_source_set_root(src, ep, &root), ==, 0);
        run_pending(f);
        g_assert_cmpuint(f->records->len, ==, 4);
        g_assert_cmpuint(rec_at(f, 3)->memctx.epoch, ==, 3);
        g_assert_false(rec_at(f, 3)->memctx.invalidated);
        g_assert_cmpuint(rec_at(f, 3)->memctx.dtb, ==, 0x2000);
        g_assert_cmpuint(rec_at(f, 3)->memctx.levels, ==, 5);
        g_assert_cmpint(vmsig_memctx_source_new_epoch(src, ep), ==, 0);
        run_pending(f);
        g_assert_cmpuint(f->records->len, ==, 6);
        g_assert_true(rec_at(f, 4)->memctx.invalidated);
        g_assert_cmpuint(rec_at(f, 4)->memctx.epoch, ==, 3);
        g_assert_cmpuint(rec_at(f, 5)->memctx.epoch, ==, 4);
}

/* publish announces epoch 1, new epochs follow; vmsig_memctx_get follows
 * the retained datum, and every datum has a descriptor of its own. */
static void test_memctx(Fixture *f, gconstpointer data) {
        size_t fds = count_fds();
        vmsig_endpoint *ep = attach(f, "alpha", VMSIG_STATE_RUNNING, TRIO_ROLES);
        vmsig_id id = vmsig_endpoint_get_id(ep);
        vmsig_memctx_source src;
        const vmsig_memctx *m;
        int ram = make_ram(65536);

        subscribe(f, MASK(VMSIG_KIND_MEMCTX));
        g_assert_cmpint(vmsig_memctx_source_init(&src, ram, 65536, NULL, 0), ==, 0);
        src.root = (vmsig_memctx_root) {
                .dtb = 0x1000,
                .kernel_hint = 0xffff8000,
                .os = VMSIG_GUEST_OS_WINDOWS,
                .witnesses = VMSIG_WITNESS_EPROCESS | VMSIG_WITNESS_CR3,
        };
        g_assert_null(vmsig_memctx_get(f->core, id));
        g_assert_cmpint(vmsig_memctx_source_publish(&src, ep), ==, 0);
        g_assert_null(vmsig_memctx_get(f->core, id)); /* not dispatched yet */
        run_pending(f);
        assert_memctx_published(vmsig_memctx_get(f->core, id), ram);
        memctx_new_epochs(f, ep, &src);

        /* The datum outlives the source. */
        vmsig_memctx_source_done(&src);
        g_assert_cmpint(fcntl(ram, F_GETFD), ==, -1);
        m = vmsig_memctx_get(f->core, id);
        g_assert_cmpint(fcntl(m->ram_fd, F_GETFD), >=, 0);

        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, 0);
        run_pending(f);
        g_assert_null(vmsig_memctx_get(f->core, id));
        g_assert_cmpuint(count_fds(), ==, fds);
}

/* An explicit GPA map is carried as given; a first new_epoch without a
 * publish announces epoch 1 and invalidates nothing. */
static void test_memctx_ranges(Fixture *f, gconstpointer data) {
        const vmsig_gpa_range ranges[] = {
                { 0, 0x8000, 0 },
                { 0x100000, 0x8000, 0x8000 },
        };
        vmsig_endpoint *ep = attach(f, "alpha", VMSIG_STATE_RUNNING, TRIO_ROLES);
        vmsig_memctx_source src;

        subscribe(f, MASK(VMSIG_KIND_MEMCTX));
        g_assert_cmpint(vmsig_memctx_source_init(&src, make_ram(65536), 65536, ranges, 2), ==, 0);
        g_assert_cmpint(vmsig_memctx_source_new_epoch(&src, ep), ==, 0);
        run_pending(f);

        g_assert_cmpuint(f->records->len, ==, 1);
        const record *r = rec_at(f, 0);
        g_assert_cmpuint(r->memctx.epoch, ==, 1);
        g_assert_false(r->memctx.invalidated);
        g_assert_cmpuint(r->memctx.n_ranges, ==, 2);
        g_assert_cmpmem(r->ranges, 2 * sizeof ranges[0], ranges, sizeof ranges);
        vmsig_memctx_source_done(&src);
}

static void test_strings(void) {
        for (vmsig_state s = 0; s < _VMSIG_STATE_MAX; s++)
                g_assert_cmpint(vmsig_state_from_string(vmsig_state_to_string(s)), ==, s);
        g_assert_cmpstr(vmsig_state_to_string(VMSIG_STATE_SHUT_OFF), ==, "shut-off");
        g_assert_null(vmsig_state_to_string(_VMSIG_STATE_MAX));
        g_assert_cmpint(vmsig_state_from_string("bogus"), ==, _VMSIG_STATE_MAX);
        g_assert_cmpint(vmsig_state_from_string(NULL), ==, _VMSIG_STATE_MAX);
        g_assert_cmpstr(vmsig_lifecycle_op_to_string(VMSIG_OP_POWER_OFF), ==, "power-off");
        g_assert_null(vmsig_lifecycle_op_to_string(_VMSIG_OP_MAX));

        g_assert_true(vmsig_endpoint_name_is_valid("vm-1_a.b"));
        g_assert_false(vmsig_endpoint_name_is_valid(NULL));
        g_assert_false(vmsig_endpoint_name_is_valid(".x"));
        g_assert_false(vmsig_endpoint_name_is_valid("a b"));
        g_assert_false(vmsig_endpoint_name_is_valid("é"));
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);

        VT_FIXTURE_TESTS("/endpoint/", test_attach_detach, test_attach_errors, test_attach_while_running,
                         test_detach_during_dispatch, test_detach_during_dispatch_ref, test_endpoint_fd,
                         test_slot_reuse, test_lifecycle, test_missing_adapters, test_display, test_memctx,
                         test_memctx_ranges);
        g_test_add_func("/endpoint/strings", test_strings);
        return g_test_run();
}
