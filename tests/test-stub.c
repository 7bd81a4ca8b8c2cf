/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The stub host backend: memfd RAM and its read-only view, asynchronous
 * lifecycle requests and their errors, memctx epochs, the input sink, the
 * display's test pattern, detach with requests in flight, and no
 * descriptor leaks. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "memctx.h"
#include "stub.h"
#include "event-loop.h"
#include "vmsig-core.h"
#include "vmsig-endpoint.h"
#include "vt-util.h"

#define RAM_SIZE (1024 * 1024)

typedef struct record {
        uint32_t kind;
        bool replay;
        union {
                vmsig_roster_payload roster;
                vmsig_lifecycle_payload lifecycle;
                struct {
                        uint64_t epoch;
                        bool invalidated;
                        int ram_fd;
                } memctx;
        };
} record;

typedef struct Fixture {
        VT_CORE_MEMBERS;
        vmsig_subscriber *sub;
        GArray *records;
        unsigned completions; /* numbers the completions of done_ctx */
} Fixture;

typedef struct done_ctx {
        Fixture *f;
        unsigned calls;
        unsigned order; /* 1-based position among all completions */
        int error;
        char message[128];
        vmsig_endpoint *detach; /* detach this endpoint from the callback */
} done_ctx;

static void fixture_setup(Fixture *f, gconstpointer data) {
        vt_core_start(&f->event, &f->core);
        f->records = g_array_new(false, true, sizeof(record));
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        vt_core_stop(f->event, f->core);
        g_array_unref(f->records);
}

static void run_pending(Fixture *f) {
        vt_event_run_pending(f->event);
}

static int on_deliver(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        Fixture *f = userdata;
        record rec = { .kind = d->event->kind, .replay = d->replay };

        if (rec.kind == VMSIG_KIND_ROSTER)
                memcpy(&rec.roster, d->event->payload, sizeof rec.roster);
        else if (rec.kind == VMSIG_KIND_LIFECYCLE)
                memcpy(&rec.lifecycle, d->event->payload, sizeof rec.lifecycle);
        else if (rec.kind == VMSIG_KIND_MEMCTX) {
                const vmsig_memctx *m = d->event->payload;
                rec.memctx.epoch = m->epoch;
                rec.memctx.invalidated = m->invalidated;
                rec.memctx.ram_fd = m->ram_fd;
        }
        g_array_append_val(f->records, rec);
        return VMSIG_DELIVER_OK;
}

/* Subscribe, take the replay of what is retained now, and start afresh. */
static void subscribe(Fixture *f, uint32_t kinds) {
        vmsig_filter filter = { .kinds = kinds };

        g_assert_cmpint(vmsig_core_subscribe(f->core, &filter, 0, on_deliver, f, &f->sub), ==, 0);
        run_pending(f);
        g_array_set_size(f->records, 0);
}

static const record *rec_at(Fixture *f, size_t i) {
        g_assert_cmpuint(i, <, f->records->len);
        return &g_array_index(f->records, record, i);
}

static vmsig_endpoint *attach_stub(vmsig_core *c, const char *name, vmsig_state state, vmsig_stub **ret) {
        vmsig_stub_spec spec = { .name = name, .ram_size = RAM_SIZE, .initial_state = state };
        vmsig_endpoint_spec es;
        vmsig_endpoint *ep = NULL;

        g_assert_cmpint(vmsig_stub_new(&spec, &es, ret), ==, 0);
        g_assert_cmpint(vmsig_core_attach_endpoint(c, &es, &ep), ==, 0);
        g_assert_nonnull(ep);
        return ep;
}

static void on_done(const vmsig_result *r, void *userdata) {
        done_ctx *d = userdata;

        d->calls++;
        d->order = ++d->f->completions;
        d->error = r->error;
        g_strlcpy(d->message, r->message ? r->message : "", sizeof d->message);
        if (d->detach)
                g_assert_cmpint(vmsig_core_detach_endpoint(d->f->core, d->detach), ==, 0);
}

static void request(vmsig_endpoint *ep, vmsig_lifecycle_op op, done_ctx *d) {
        g_assert_cmpint(vmsig_endpoint_lifecycle(ep, op, on_done, d), ==, 0);
        /* Never completed from inside the request. */
        g_assert_cmpuint(d->calls, ==, 0);
}

static void assert_lifecycle(const record *r, vmsig_lifecycle_op op, vmsig_state from, vmsig_state to) {
        g_assert_cmpuint(r->kind, ==, VMSIG_KIND_LIFECYCLE);
        g_assert_cmpint(r->lifecycle.op, ==, op);
        g_assert_cmpint(r->lifecycle.old_state, ==, from);
        g_assert_cmpint(r->lifecycle.new_state, ==, to);
}

static size_t count_fds(void) {
        return vt_open_fds(0);
}

#define MASK(k) VMSIG_KIND_MASK(k)

/* --- RAM ---------------------------------------------------------------------- */

static void test_spec(void) {
        sd_id128_t uuid = SD_ID128_MAKE(6f, 1c, 9a, 52, 8d, 3e, 4b, 7a, 9c, 21, 0e, 5f, 4d, 3b, 2a, 19);
        vmsig_stub_spec spec = { .name = "alpha", .ram_size = RAM_SIZE, .uuid = uuid };
        vmsig_endpoint_spec es;
        vmsig_core *c;
        sd_event *e;

        spec.ram_size = 0;
        g_assert_cmpint(vmsig_stub_new(&spec, &es, NULL), ==, -EINVAL);
        spec.ram_size = RAM_SIZE + 1;
        g_assert_cmpint(vmsig_stub_new(&spec, &es, NULL), ==, -EINVAL);
        spec.ram_size = RAM_SIZE;
        spec.name = "no/slash";
        g_assert_cmpint(vmsig_stub_new(&spec, &es, NULL), ==, -EINVAL);

        /* A given UUID is kept, a null one replaced by a random one. */
        g_assert_cmpint(sd_event_new(&e), >=, 0);
        g_assert_cmpint(vmsig_core_new(e, &c), ==, 0);
        spec.name = "alpha";
        g_assert_cmpint(vmsig_stub_new(&spec, &es, NULL), ==, 0);
        g_assert_true(sd_id128_equal(es.uuid, uuid));
        g_assert_cmpint(vmsig_core_attach_endpoint(c, &es, NULL), ==, 0);
        spec = (vmsig_stub_spec) { .name = "beta", .ram_size = RAM_SIZE };
        g_assert_cmpint(vmsig_stub_new(&spec, &es, NULL), ==, 0);
        g_assert_false(sd_id128_is_null(es.uuid));
        g_assert_false(sd_id128_equal(es.uuid, uuid));
        g_assert_cmpint(vmsig_core_attach_endpoint(c, &es, NULL), ==, 0);
        g_assert_cmpstr(vmsig_endpoint_get_backend(vmsig_core_find_endpoint_by_name(c, "beta")), ==, "stub");
        vmsig_core_free(c);
        sd_event_unref(e);
}

/* The memctx datum carries a read-only view of RAM of the configured size:
 * it cannot write, neither through write() nor a shared writable mapping,
 * and the file is not open to other users. The stub's own fd writes, and
 * the view sees it. */
static void test_ram(Fixture *f, gconstpointer data) {
        vmsig_stub *stub = NULL;
        vmsig_endpoint *ep = attach_stub(f->core, "alpha", VMSIG_STATE_RUNNING, &stub);
        struct stat st;
        char buf[8] = { 0 };

        run_pending(f);
        const vmsig_memctx *m = vmsig_memctx_get(f->core, vmsig_endpoint_get_id(ep));
        g_assert_nonnull(m);
        int ro = m->ram_fd, rw = vmsig_stub_ram_fd(stub);
        g_assert_cmpuint(m->ram_size, ==, RAM_SIZE);
        g_assert_cmpint(rw, >=, 0);
        g_assert_cmpint(ro, !=, rw);

        g_assert_cmpint(fstat(ro, &st), ==, 0);
        g_assert_true(S_ISREG(st.st_mode));
        g_assert_cmpint(st.st_size, ==, RAM_SIZE);
        g_assert_cmpuint(st.st_mode & 07777, ==, 0600);
        g_assert_cmpuint(st.st_uid, ==, geteuid());
        g_assert_cmpint(fcntl(ro, F_GETFL) & O_ACCMODE, ==, O_RDONLY);

        errno = 0;
        g_assert_cmpint(write(ro, "x", 1), ==, -1);
        g_assert_cmpint(errno, ==, EBADF);
        g_assert_cmpint(pwrite(ro, "x", 1, 4096), ==, -1);
        g_assert_cmpint(ftruncate(ro, 2 * RAM_SIZE), ==, -1);
        errno = 0;
        g_assert_true(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED);
        g_assert_cmpint(errno, ==, EACCES);

        char *view = mmap(NULL, RAM_SIZE, PROT_READ, MAP_SHARED, ro, 0);
        g_assert_true(view != MAP_FAILED);
        /* Sealed: not even the stub's own fd takes a write or a new
         * writable mapping; write_ram is the only way in. */
        errno = 0;
        g_assert_cmpint(pwrite(rw, "guest", 5, 4096), ==, -1);
        g_assert_cmpint(errno, ==, EPERM);
        errno = 0;
        g_assert_true(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0) == MAP_FAILED);
        g_assert_cmpint(errno, ==, EPERM);
        g_assert_cmpint(vmsig_endpoint_write_ram(ep, 4096, "guest", 5), ==, 0);
        g_assert_cmpint(vmsig_endpoint_write_ram(ep, RAM_SIZE - 2, "guest", 5), ==, -ERANGE);
        g_assert_cmpmem(view + 4096, 5, "guest", 5);
        g_assert_cmpint(pread(ro, buf, 5, 4096), ==, 5);
        g_assert_cmpstr(buf, ==, "guest");

        /* A private writable mapping is copy-on-write: the file keeps its data. */
        char *cow = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0);
        g_assert_true(cow != MAP_FAILED);
        memcpy(cow + 4096, "xxxxx", 5);
        g_assert_cmpmem(view + 4096, 5, "guest", 5);
        munmap(cow, 8192);
        munmap(view, RAM_SIZE);

        /* The size is sealed. */
        int seals = fcntl(rw, F_GET_SEALS);
        g_assert_cmpint(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL), ==,
                        F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL);
        g_assert_cmpint(ftruncate(rw, 2 * RAM_SIZE), ==, -1);
}

/* --- lifecycle ----------------------------------------------------------------- */

/* Requests complete from the loop, in order, each one reported as a
 * LIFECYCLE event (and ROSTER when the state changed). */
static void test_lifecycle_async(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_stub(f->core, "alpha", VMSIG_STATE_RUNNING, NULL);
        done_ctx d[4] = { { .f = f }, { .f = f }, { .f = f }, { .f = f } };

        subscribe(f, MASK(VMSIG_KIND_LIFECYCLE) | MASK(VMSIG_KIND_ROSTER));
        request(ep, VMSIG_OP_PAUSE, &d[0]);
        g_assert_cmpint(vmsig_endpoint_get_state(ep), ==, VMSIG_STATE_RUNNING);
        run_pending(f);
        g_assert_cmpuint(d[0].calls, ==, 1);
        g_assert_cmpint(d[0].error, ==, 0);
        g_assert_cmpint(vmsig_endpoint_get_state(ep), ==, VMSIG_STATE_PAUSED);
        g_assert_cmpuint(f->records->len, ==, 2);
        assert_lifecycle(rec_at(f, 0), VMSIG_OP_PAUSE, VMSIG_STATE_RUNNING, VMSIG_STATE_PAUSED);
        g_assert_cmpint(rec_at(f, 1)->roster.change, ==, VMSIG_ROSTER_CHANGED);
        g_assert_cmpint(rec_at(f, 1)->roster.state, ==, VMSIG_STATE_PAUSED);

        request(ep, VMSIG_OP_RESUME, &d[1]);
        request(ep, VMSIG_OP_PAUSE, &d[2]);
        request(ep, VMSIG_OP_POWER_OFF, &d[3]);
        run_pending(f);
        for (size_t i = 1; i < 4; i++) {
                g_assert_cmpuint(d[i].calls, ==, 1);
                g_assert_cmpint(d[i].error, ==, 0);
                g_assert_cmpuint(d[i].order, ==, i + 1);
        }
        g_assert_cmpint(vmsig_endpoint_get_state(ep), ==, VMSIG_STATE_SHUT_OFF);
        g_assert_cmpuint(f->records->len, ==, 8);
        /* Completed in one loop iteration: the control events go out
         * ahead of the ROSTER changes. */
        assert_lifecycle(rec_at(f, 2), VMSIG_OP_RESUME, VMSIG_STATE_PAUSED, VMSIG_STATE_RUNNING);
        assert_lifecycle(rec_at(f, 3), VMSIG_OP_PAUSE, VMSIG_STATE_RUNNING, VMSIG_STATE_PAUSED);
        assert_lifecycle(rec_at(f, 4), VMSIG_OP_POWER_OFF, VMSIG_STATE_PAUSED, VMSIG_STATE_SHUT_OFF);
        g_assert_cmpint(rec_at(f, 5)->roster.state, ==, VMSIG_STATE_RUNNING);
        g_assert_cmpint(rec_at(f, 6)->roster.state, ==, VMSIG_STATE_PAUSED);
        g_assert_cmpint(rec_at(f, 7)->roster.state, ==, VMSIG_STATE_SHUT_OFF);
}

static void expect_invalid(Fixture *f, vmsig_endpoint *ep, vmsig_lifecycle_op op, const char *message) {
        vmsig_state state = vmsig_endpoint_get_state(ep);
        done_ctx d = { .f = f };
        size_t n = f->records->len;

        request(ep, op, &d);
        run_pending(f);
        g_assert_cmpuint(d.calls, ==, 1);
        g_assert_cmpint(d.error, ==, -EBADFD);
        g_assert_cmpstr(d.message, ==, message);
        g_assert_cmpint(vmsig_endpoint_get_state(ep), ==, state);
        g_assert_cmpuint(f->records->len, ==, n); /* nothing happened */
}

/* An impossible transition fails, later, with -EBADFD and a message that
 * names the endpoint and its state. */
static void test_lifecycle_invalid(Fixture *f, gconstpointer data) {
        vmsig_endpoint *a = attach_stub(f->core, "alpha", VMSIG_STATE_RUNNING, NULL);
        vmsig_endpoint *b = attach_stub(f->core, "beta", VMSIG_STATE_PAUSED, NULL);
        vmsig_endpoint *c = attach_stub(f->core, "gamma", VMSIG_STATE_SHUT_OFF, NULL);
        vmsig_input_event key = { VMSIG_INPUT_KEY, 30, 1 };
        done_ctx d = { .f = f };

        subscribe(f, MASK(VMSIG_KIND_LIFECYCLE) | MASK(VMSIG_KIND_ROSTER) | MASK(VMSIG_KIND_MEMCTX));
        expect_invalid(f, a, VMSIG_OP_RESUME, "Cannot resume endpoint 'alpha': it is running.");
        expect_invalid(f, b, VMSIG_OP_PAUSE, "Cannot pause endpoint 'beta': it is paused.");
        expect_invalid(f, c, VMSIG_OP_PAUSE, "Cannot pause endpoint 'gamma': it is shut-off.");
        expect_invalid(f, c, VMSIG_OP_RESUME, "Cannot resume endpoint 'gamma': it is shut-off.");
        expect_invalid(f, c, VMSIG_OP_RESET, "Cannot reset endpoint 'gamma': it is shut-off.");
        expect_invalid(f, c, VMSIG_OP_POWER_OFF, "Cannot power-off endpoint 'gamma': it is shut-off.");
        expect_invalid(f, c, VMSIG_OP_KILL, "Cannot kill endpoint 'gamma': it is shut-off.");

        g_assert_cmpint(vmsig_endpoint_inject_input(c, &key, 1, on_done, &d), ==, 0);
        g_assert_cmpuint(d.calls, ==, 0);
        run_pending(f);
        g_assert_cmpint(d.error, ==, -EBADFD);
        g_assert_cmpstr(d.message, ==, "Endpoint 'gamma' is shut off and takes no input.");
}

/* A reset, running or paused, keeps the state and starts a new memctx
 * epoch. The old one had no root, so nobody could have used it for
 * virtual addresses: its end is not announced as an invalidation. */
static void test_reset_epoch(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_stub(f->core, "alpha", VMSIG_STATE_RUNNING, NULL);
        vmsig_id id = vmsig_endpoint_get_id(ep);
        done_ctx d = { .f = f }, p = { .f = f }, d2 = { .f = f };
        struct stat before, after;

        subscribe(f, MASK(VMSIG_KIND_LIFECYCLE) | MASK(VMSIG_KIND_MEMCTX));
        g_assert_cmpuint(vmsig_memctx_get(f->core, id)->epoch, ==, 1);
        g_assert_cmpint(fstat(vmsig_memctx_get(f->core, id)->ram_fd, &before), ==, 0);

        request(ep, VMSIG_OP_RESET, &d);
        run_pending(f);
        g_assert_cmpint(d.error, ==, 0);
        g_assert_cmpuint(f->records->len, ==, 2);
        assert_lifecycle(rec_at(f, 0), VMSIG_OP_RESET, VMSIG_STATE_RUNNING, VMSIG_STATE_RUNNING);
        g_assert_cmpuint(rec_at(f, 1)->memctx.epoch, ==, 2);
        g_assert_false(rec_at(f, 1)->memctx.invalidated);

        const vmsig_memctx *m = vmsig_memctx_get(f->core, id);
        g_assert_cmpuint(m->epoch, ==, 2);
        g_assert_false(m->invalidated);
        g_assert_cmpint(fstat(m->ram_fd, &after), ==, 0);
        g_assert_true(before.st_ino == after.st_ino); /* same RAM */

        request(ep, VMSIG_OP_PAUSE, &p);
        request(ep, VMSIG_OP_RESET, &d2);
        run_pending(f);
        g_assert_cmpint(d2.error, ==, 0);
        g_assert_cmpint(vmsig_endpoint_get_state(ep), ==, VMSIG_STATE_PAUSED);
        assert_lifecycle(rec_at(f, 3), VMSIG_OP_RESET, VMSIG_STATE_PAUSED, VMSIG_STATE_PAUSED);
        g_assert_cmpuint(vmsig_memctx_get(f->core, id)->epoch, ==, 3);
}

/* --- input ---------------------------------------------------------------------- */

static void inject(vmsig_endpoint *ep, const vmsig_input_event *ev, size_t n, done_ctx *d) {
        g_assert_cmpint(vmsig_endpoint_inject_input(ep, ev, n, on_done, d), ==, 0);
        g_assert_cmpuint(d->calls, ==, 0);
}

/* Batches are recorded in the order they were injected, once each request
 * completed from the loop; a bad event type refuses the whole batch. */
static void test_input(Fixture *f, gconstpointer data) {
        static const vmsig_input_event b1[] = {
                { VMSIG_INPUT_KEY, 30, 1 },
                { VMSIG_INPUT_KEY, 30, 0 },
        };
        static const vmsig_input_event b2[] = {
                { VMSIG_INPUT_REL, 0, 5 },   { VMSIG_INPUT_REL, 1, -3 },     { VMSIG_INPUT_BUTTON, 1, 1 },
                { VMSIG_INPUT_BUTTON, 1, 0 }, { VMSIG_INPUT_ABS, 0, 16384 },
        };
        static const vmsig_input_event bad[] = {
                { VMSIG_INPUT_KEY, 31, 1 },
                { _VMSIG_INPUT_TYPE_MAX, 0, 0 },
        };
        vmsig_stub *stub = NULL;
        vmsig_endpoint *ep = attach_stub(f->core, "alpha", VMSIG_STATE_RUNNING, &stub);
        done_ctx d1 = { .f = f }, d2 = { .f = f }, d3 = { .f = f }, d4 = { .f = f };
        size_t n = 99;

        inject(ep, b1, G_N_ELEMENTS(b1), &d1);
        inject(ep, b2, G_N_ELEMENTS(b2), &d2);
        g_assert_cmpint(vmsig_endpoint_inject_input(ep, bad, G_N_ELEMENTS(bad), on_done, &d3), ==, -EINVAL);
        inject(ep, NULL, 0, &d4);
        vmsig_stub_input_log(stub, &n);
        g_assert_cmpuint(n, ==, 0);
        run_pending(f);

        g_assert_cmpuint(d1.calls, ==, 1);
        g_assert_cmpuint(d2.calls, ==, 1);
        g_assert_cmpuint(d3.calls, ==, 0);
        g_assert_cmpuint(d4.calls, ==, 1);
        g_assert_cmpint(d1.error, ==, 0);
        g_assert_cmpuint(d1.order, <, d2.order);
        const vmsig_input_event *log = vmsig_stub_input_log(stub, &n);
        g_assert_cmpuint(n, ==, G_N_ELEMENTS(b1) + G_N_ELEMENTS(b2));
        g_assert_cmpmem(log, sizeof b1, b1, sizeof b1);
        g_assert_cmpmem(log + G_N_ELEMENTS(b1), sizeof b2, b2, sizeof b2);
}

/* The log is bounded: past its capacity the oldest events go, and what is
 * left comes out oldest first. */
static void test_input_log_bound(Fixture *f, gconstpointer data) {
        vmsig_stub *stub = NULL;
        vmsig_endpoint *ep = attach_stub(f->core, "alpha", VMSIG_STATE_RUNNING, &stub);
        g_autofree vmsig_input_event *ev = g_new(vmsig_input_event, 5000);
        done_ctx d = { .f = f };
        size_t n;

        for (int i = 0; i < 5000; i++)
                ev[i] = (vmsig_input_event) { VMSIG_INPUT_REL, 0, i };
        inject(ep, ev, 3000, &d);
        run_pending(f);
        d.calls = 0;
        inject(ep, ev + 3000, 2000, &d);
        run_pending(f);

        const vmsig_input_event *log = vmsig_stub_input_log(stub, &n);
        g_assert_cmpuint(n, ==, 4096);
        for (size_t i = 0; i < n; i++)
                g_assert_cmpint(log[i].value, ==, (int) (5000 - 4096 + i));
}

/* --- detach ------------------------------------------------------------------------ */

/* Requests queued when the endpoint goes away complete with -ENODEV, once,
 * in order; later requests are refused. */
static void test_detach_pending(Fixture *f, gconstpointer data) {
        vmsig_stub *stub = NULL;
        vmsig_endpoint *ep = attach_stub(f->core, "alpha", VMSIG_STATE_RUNNING, &stub);
        vmsig_input_event key = { VMSIG_INPUT_KEY, 30, 1 };
        done_ctx d[3] = { { .f = f }, { .f = f }, { .f = f } }, late = { .f = f };

        request(ep, VMSIG_OP_PAUSE, &d[0]);
        inject(ep, &key, 1, &d[1]);
        request(ep, VMSIG_OP_RESUME, &d[2]);
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, 0);
        for (size_t i = 0; i < 3; i++) {
                g_assert_cmpuint(d[i].calls, ==, 1);
                g_assert_cmpint(d[i].error, ==, -ENODEV);
                g_assert_cmpuint(d[i].order, ==, i + 1);
                g_assert_cmpstr(d[i].message, ==, "Endpoint 'alpha' was detached.");
        }
        g_assert_cmpint(vmsig_stub_ram_fd(stub), ==, -1);
        g_assert_cmpint(vmsig_endpoint_lifecycle(ep, VMSIG_OP_PAUSE, on_done, &late), ==, -ENODEV);
        g_assert_cmpint(vmsig_endpoint_inject_input(ep, &key, 1, on_done, &late), ==, -ENODEV);

        run_pending(f);
        for (size_t i = 0; i < 3; i++)
                g_assert_cmpuint(d[i].calls, ==, 1);
        g_assert_cmpuint(late.calls, ==, 0);
        g_assert_cmpuint(vmsig_core_endpoint_count(f->core), ==, 0);
}

/* A completion callback may detach its endpoint; what was queued behind it
 * is cancelled, not run. */
static void test_detach_from_completion(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_stub(f->core, "alpha", VMSIG_STATE_RUNNING, NULL);
        done_ctx first = { .f = f, .detach = ep }, second = { .f = f };
        vmsig_core_stats st;

        request(ep, VMSIG_OP_PAUSE, &first);
        request(ep, VMSIG_OP_RESUME, &second);
        run_pending(f);
        g_assert_cmpuint(first.calls, ==, 1);
        g_assert_cmpint(first.error, ==, 0);
        g_assert_cmpuint(second.calls, ==, 1);
        g_assert_cmpint(second.error, ==, -ENODEV);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.endpoints, ==, 0);
        g_assert_cmpuint(st.zombies, ==, 0);
        g_assert_cmpuint(st.fd_sources, ==, 0);
}

/* --- display ---------------------------------------------------------------------- */

typedef struct capture_ctx {
        Fixture *f;
        unsigned calls;
        unsigned order; /* 1-based position among all completions */
        int error;
        bool had_image;
        vmsig_display_image image;
        GBytes *pixels;
        vmsig_endpoint *detach; /* detach this endpoint from the callback */
} capture_ctx;

static void capture_ctx_clear(capture_ctx *c) {
        g_clear_pointer(&c->pixels, g_bytes_unref);
}

/* Reads the image with read(2), while it is valid: during the callback. */
static void on_capture(const vmsig_result *r, const vmsig_display_image *image, void *userdata) {
        capture_ctx *c = userdata;
        size_t n = 0;

        c->calls++;
        c->order = ++c->f->completions;
        c->error = r->error;
        c->had_image = image;
        if (image) {
                uint8_t *buf = g_malloc(image->size);
                c->image = *image;
                g_assert_cmpint(image->encoding, ==, VMSIG_IMAGE_RAW);
                g_assert_cmpuint(image->size, ==, (size_t) image->height * image->stride);
                while (n < image->size) {
                        ssize_t k = read(image->fd, buf + n, image->size - n);
                        g_assert_cmpint(k, >, 0);
                        n += (size_t) k;
                }
                g_clear_pointer(&c->pixels, g_bytes_unref);
                c->pixels = g_bytes_new_take(buf, n);
        }
        if (c->detach)
                g_assert_cmpint(vmsig_core_detach_endpoint(c->f->core, c->detach), ==, 0);
}

static void start_capture(vmsig_endpoint *ep, capture_ctx *c) {
        unsigned calls = c->calls;

        g_assert_cmpint(vmsig_endpoint_capture_display(ep, on_capture, c), ==, 0);
        /* Never completed from inside the request. */
        g_assert_cmpuint(c->calls, ==, calls);
}

/* One capture, completed from the loop; returns its pixels. */
static GBytes *capture(Fixture *f, vmsig_endpoint *ep) {
        capture_ctx c = { .f = f };

        start_capture(ep, &c);
        run_pending(f);
        g_assert_cmpuint(c.calls, ==, 1);
        g_assert_cmpint(c.error, ==, 0);
        g_assert_true(c.had_image);
        return c.pixels;
}

static void lifecycle_ok(Fixture *f, vmsig_endpoint *ep, vmsig_lifecycle_op op) {
        done_ctx d = { .f = f };

        request(ep, op, &d);
        run_pending(f);
        g_assert_cmpuint(d.calls, ==, 1);
        g_assert_cmpint(d.error, ==, 0);
}

/* The XRGB8888 pixel at (x, y): bytes B, G, R, X. */
static uint32_t pixel_at(GBytes *b, uint32_t width, uint32_t x, uint32_t y) {
        gsize size;
        const uint8_t *p = g_bytes_get_data(b, &size);
        size_t i = ((size_t) y * width + x) * 4;

        g_assert_cmpuint(i + 4, <=, size);
        g_assert_cmpuint(p[i + 3], ==, 0);
        return (uint32_t) p[i + 2] << 16 | (uint32_t) p[i + 1] << 8 | p[i];
}

static vmsig_endpoint *attach_display(vmsig_core *c, const char *name, vmsig_state state, uint32_t w, uint32_t h,
                                      uint64_t latency_usec) {
        vmsig_stub_spec spec = { .name = name, .ram_size = RAM_SIZE, .initial_state = state,
                                 .display_width = w, .display_height = h, .latency_usec = latency_usec };
        vmsig_endpoint_spec es;
        vmsig_endpoint *ep = NULL;

        g_assert_cmpint(vmsig_stub_new(&spec, &es, NULL), ==, 0);
        g_assert_cmpint(vmsig_core_attach_endpoint(c, &es, &ep), ==, 0);
        return ep;
}

/* A display size out of range is refused without allocating anything. */
static void assert_display_sizes_refused(void) {
        vmsig_stub_spec bad = { .name = "bad", .ram_size = RAM_SIZE };
        static const uint32_t bad_sizes[][2] = {
                { VMSIG_STUB_DISPLAY_MIN - 1, 0 },
                { 0, VMSIG_STUB_DISPLAY_MIN - 1 },
                { VMSIG_STUB_DISPLAY_MAX + 1, 480 },
                { 640, VMSIG_STUB_DISPLAY_MAX + 1 },
                { UINT32_MAX, UINT32_MAX },
        };
        vmsig_endpoint_spec es;
        size_t fds = count_fds();

        for (size_t i = 0; i < G_N_ELEMENTS(bad_sizes); i++) {
                bad.display_width = bad_sizes[i][0];
                bad.display_height = bad_sizes[i][1];
                g_assert_cmpint(vmsig_stub_new(&bad, &es, NULL), ==, -EINVAL);
        }
        g_assert_cmpuint(count_fds(), ==, fds);
}

/* Every stub has a display: 640x480 by default, or the size asked for,
 * XRGB8888 rows of width * 4 bytes, in one memfd the stub makes on the
 * first capture and reuses. It adds no fd source and so no wakeup. */
static void test_display_image(Fixture *f, gconstpointer data) {
        size_t fds;
        vmsig_core_stats st;

        assert_display_sizes_refused();
        vmsig_endpoint *ep = attach_stub(f->core, "alpha", VMSIG_STATE_RUNNING, NULL);
        run_pending(f);
        vmsig_core_get_stats(f->core, &st);
        g_assert_cmpuint(st.fd_sources, ==, 1); /* the request queue's, no more */
        g_assert_cmpint(sd_event_run(f->event, 0), ==, 0);
        g_assert_true(vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_DISPLAY));
        fds = count_fds();

        capture_ctx c = { .f = f };
        start_capture(ep, &c);
        run_pending(f);
        g_assert_cmpuint(c.calls, ==, 1);
        g_assert_cmpint(c.error, ==, 0);
        g_assert_cmpuint(c.image.width, ==, 640);
        g_assert_cmpuint(c.image.height, ==, 480);
        g_assert_cmpuint(c.image.stride, ==, 640 * 4);
        g_assert_cmpuint(c.image.size, ==, 640 * 480 * 4);
        g_assert_cmpuint(g_bytes_get_size(c.pixels), ==, 640 * 480 * 4);
        g_assert_cmpuint(count_fds(), ==, fds + 1);
        /* Colour bars, left to right: grey ... red ... black. */
        g_assert_cmphex(pixel_at(c.pixels, 640, 0, 240), ==, 0xc0c0c0);
        g_assert_cmphex(pixel_at(c.pixels, 640, 5 * 80, 240), ==, 0xc00000);
        g_assert_cmphex(pixel_at(c.pixels, 640, 639, 240), ==, 0x000000);
        int first_fd = c.image.fd;

        /* The same memfd again, read from offset 0 again. */
        start_capture(ep, &c);
        run_pending(f);
        g_assert_cmpuint(c.calls, ==, 2);
        g_assert_cmpint(c.image.fd, ==, first_fd);
        g_assert_cmpuint(g_bytes_get_size(c.pixels), ==, 640 * 480 * 4);
        g_assert_cmpuint(count_fds(), ==, fds + 1);
        capture_ctx_clear(&c);

        vmsig_endpoint *small = attach_display(f->core, "beta", VMSIG_STATE_PAUSED, 100, 40, 0);
        start_capture(small, &c);
        run_pending(f);
        g_assert_cmpint(c.error, ==, 0);
        g_assert_cmpuint(c.image.width, ==, 100);
        g_assert_cmpuint(c.image.height, ==, 40);
        g_assert_cmpuint(c.image.stride, ==, 400);
        g_assert_cmpuint(c.image.size, ==, 100 * 40 * 4);
        capture_ctx_clear(&c);
}

/* A paused guest shows the same frame on every capture; a running one a
 * new frame every time. */
static void test_display_clock(Fixture *f, gconstpointer data) {
        vmsig_endpoint *paused = attach_stub(f->core, "alpha", VMSIG_STATE_PAUSED, NULL);
        vmsig_endpoint *running = attach_stub(f->core, "beta", VMSIG_STATE_RUNNING, NULL);
        g_autoptr(GBytes) p1 = capture(f, paused), p2 = capture(f, paused);
        g_autoptr(GBytes) r1 = capture(f, running), r2 = capture(f, running), r3 = capture(f, running);

        g_assert_true(g_bytes_equal(p1, p2));
        g_assert_false(g_bytes_equal(r1, r2));
        g_assert_false(g_bytes_equal(r2, r3));
        g_assert_false(g_bytes_equal(r1, r3));
        g_assert_false(g_bytes_equal(r1, p1));
}

static bool is_dark(GBytes *b) {
        gsize size;
        const uint8_t *p = g_bytes_get_data(b, &size);

        for (gsize i = 0; i < size; i++)
                if (p[i] > 0x1f)
                        return false;
        return true;
}

/* Pause, reset and power-off each change the picture, and the new picture
 * holds while nothing runs; shut off, the display is dark. Two stubs in
 * the same state with the same history show the same picture. */
static void test_display_state(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_stub(f->core, "alpha", VMSIG_STATE_RUNNING, NULL);
        vmsig_endpoint *twin = attach_stub(f->core, "beta", VMSIG_STATE_RUNNING, NULL);
        g_autoptr(GBytes) running = capture(f, ep);

        lifecycle_ok(f, ep, VMSIG_OP_PAUSE);
        g_autoptr(GBytes) paused = capture(f, ep), paused2 = capture(f, ep);
        g_assert_false(g_bytes_equal(paused, running));
        g_assert_true(g_bytes_equal(paused, paused2));

        lifecycle_ok(f, ep, VMSIG_OP_RESET);
        g_assert_cmpint(vmsig_endpoint_get_state(ep), ==, VMSIG_STATE_PAUSED);
        g_autoptr(GBytes) reset = capture(f, ep), reset2 = capture(f, ep);
        g_assert_false(g_bytes_equal(reset, paused));
        g_assert_true(g_bytes_equal(reset, reset2));
        lifecycle_ok(f, ep, VMSIG_OP_RESET);
        g_autoptr(GBytes) reset_again = capture(f, ep);
        g_assert_false(g_bytes_equal(reset_again, reset));

        lifecycle_ok(f, ep, VMSIG_OP_POWER_OFF);
        g_autoptr(GBytes) off = capture(f, ep), off2 = capture(f, ep);
        g_assert_false(g_bytes_equal(off, reset_again));
        g_assert_true(g_bytes_equal(off, off2));
        g_assert_true(is_dark(off));
        g_assert_false(is_dark(reset_again));
        g_assert_false(is_dark(running));

        /* Deterministic: the same history draws the same pixels. */
        g_autoptr(GBytes) twin_running = capture(f, twin);
        g_assert_true(g_bytes_equal(twin_running, running));
        lifecycle_ok(f, twin, VMSIG_OP_PAUSE);
        g_autoptr(GBytes) twin_paused = capture(f, twin);
        g_assert_true(g_bytes_equal(twin_paused, paused));
}

/* Captures queue with the other requests and complete in order, also when
 * requests take time: the one behind a pause shows the paused guest. */
static void test_display_order(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_display(f->core, "alpha", VMSIG_STATE_RUNNING, 0, 0, 2000);
        capture_ctx before = { .f = f }, after = { .f = f };
        done_ctx pause = { .f = f };

        start_capture(ep, &before);
        request(ep, VMSIG_OP_PAUSE, &pause);
        start_capture(ep, &after);
        for (int i = 0; i < 100 && after.calls == 0; i++)
                g_assert_cmpint(sd_event_run(f->event, 1000000), >=, 0);
        g_assert_cmpuint(before.order, ==, 1);
        g_assert_cmpuint(pause.order, ==, 2);
        g_assert_cmpuint(after.order, ==, 3);
        g_assert_cmpint(before.error, ==, 0);
        g_assert_cmpint(after.error, ==, 0);
        g_assert_cmphex(pixel_at(before.pixels, 640, 0, 240), ==, 0xc0c0c0);
        g_assert_cmphex(pixel_at(after.pixels, 640, 0, 240), ==, 0x6060e0);
        capture_ctx_clear(&before);
        capture_ctx_clear(&after);
}

/* Captures in flight when the endpoint goes complete with -ENODEV and no
 * image, once, in order with the other requests; one that detaches from
 * its callback cancels those behind it. A capture of a detached endpoint is
 * refused and does nothing: no callback, no descriptor. */
static void test_display_detach(Fixture *f, gconstpointer data) {
        vmsig_endpoint *ep = attach_stub(f->core, "alpha", VMSIG_STATE_RUNNING, NULL);
        capture_ctx c1 = { .f = f }, c2 = { .f = f }, late = { .f = f };
        done_ctx d = { .f = f };

        start_capture(ep, &c1);
        request(ep, VMSIG_OP_PAUSE, &d);
        start_capture(ep, &c2);
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, ep), ==, 0);
        g_assert_cmpuint(c1.calls, ==, 1);
        g_assert_cmpuint(c2.calls, ==, 1);
        g_assert_cmpint(c1.error, ==, -ENODEV);
        g_assert_cmpint(c2.error, ==, -ENODEV);
        g_assert_false(c1.had_image);
        g_assert_false(c2.had_image);
        g_assert_cmpuint(c1.order, ==, 1);
        g_assert_cmpuint(d.order, ==, 2);
        g_assert_cmpuint(c2.order, ==, 3);

        /* The reference keeps the detached endpoint for the late call. */
        vmsig_endpoint_ref(ep);
        run_pending(f);
        size_t fds = count_fds();
        g_assert_cmpint(vmsig_endpoint_capture_display(ep, on_capture, &late), ==, -ENODEV);
        run_pending(f);
        g_assert_cmpuint(late.calls, ==, 0);
        g_assert_cmpuint(c1.calls, ==, 1);
        g_assert_cmpuint(c2.calls, ==, 1);
        g_assert_cmpuint(count_fds(), ==, fds);
        vmsig_endpoint_unref(ep);
        run_pending(f);
        fds = count_fds();
        g_assert_cmpuint(vmsig_core_endpoint_count(f->core), ==, 0);

        vmsig_endpoint *b = attach_stub(f->core, "beta", VMSIG_STATE_RUNNING, NULL);
        capture_ctx first = { .f = f, .detach = b }, second = { .f = f };
        start_capture(b, &first);
        start_capture(b, &second);
        run_pending(f);
        g_assert_cmpuint(first.calls, ==, 1);
        g_assert_cmpint(first.error, ==, 0);
        g_assert_cmpuint(second.calls, ==, 1);
        g_assert_cmpint(second.error, ==, -ENODEV);
        g_assert_false(second.had_image);
        capture_ctx_clear(&first);
        g_assert_cmpuint(count_fds(), ==, fds);
}

/* --- descriptors ---------------------------------------------------------------------- */

#define N_VMS 8

static void exercise(vmsig_core *c, vmsig_endpoint **eps, size_t n) {
        sd_event *e = vmsig_core_get_event(c);
        done_ctx d[N_VMS] = { 0 };
        capture_ctx cap[N_VMS];
        Fixture f = { .core = c };
        vmsig_input_event key = { VMSIG_INPUT_KEY, 30, 1 };

        for (size_t i = 0; i < n; i++) {
                d[i].f = &f;
                request(eps[i], VMSIG_OP_RESET, &d[i]);
                g_assert_cmpint(vmsig_endpoint_inject_input(eps[i], &key, 1, NULL, NULL), ==, 0);
                cap[i] = (capture_ctx) { .f = &f };
                start_capture(eps[i], &cap[i]);
        }
        while (sd_event_run(e, 0) > 0)
                ;
        for (size_t i = 0; i < n; i++) {
                g_assert_cmpuint(d[i].calls, ==, 1);
                g_assert_cmpuint(cap[i].calls, ==, 1);
                g_assert_cmpint(cap[i].error, ==, 0);
                capture_ctx_clear(&cap[i]);
        }
}

static int hold_busy(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        return VMSIG_DELIVER_BUSY;
}

/* Stub VMs, their RAM, eventfds, displays and every memctx datum (also one still
 * queued for a stuck subscriber) give back their descriptors: by detach and
 * reap, and by freeing the core with VMs still attached. */
static void test_no_fd_leak(void) {
        vmsig_filter filter = { .kinds = MASK(VMSIG_KIND_MEMCTX) };
        vmsig_endpoint *eps[N_VMS];
        vmsig_subscriber *stuck;
        size_t n0 = count_fds(), n1;
        sd_event *e;
        vmsig_core *c;

        g_assert_cmpint(sd_event_new(&e), >=, 0);
        g_assert_cmpint(vmsig_core_new(e, &c), ==, 0);
        n1 = count_fds();
        g_assert_cmpint(vmsig_core_subscribe(c, &filter, 0, hold_busy, NULL, &stuck), ==, 0);

        for (size_t round = 0; round < 2; round++) {
                for (size_t i = 0; i < N_VMS; i++) {
                        char name[16];
                        g_snprintf(name, sizeof name, "vm%zu", i);
                        eps[i] = attach_stub(c, name, VMSIG_STATE_RUNNING, NULL);
                }
                g_assert_cmpuint(count_fds(), >=, n1 + 3 * N_VMS);
                exercise(c, eps, N_VMS);
                if (round == 1)
                        break; /* left for vmsig_core_free() */
                for (size_t i = 0; i < N_VMS; i++)
                        g_assert_cmpint(vmsig_core_detach_endpoint(c, eps[i]), ==, 0);
                while (sd_event_run(e, 0) > 0)
                        ;
                g_assert_cmpuint(vmsig_subscriber_queued(stuck), >, 0);
                vmsig_subscriber_free(stuck);
                g_assert_cmpuint(count_fds(), ==, n1);
                g_assert_cmpint(vmsig_core_subscribe(c, &filter, 0, hold_busy, NULL, &stuck), ==, 0);
        }
        vmsig_core_free(c);
        sd_event_unref(e);
        g_assert_cmpuint(count_fds(), ==, n0);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/stub/spec", test_spec);
        VT_TEST_ADD("/stub/ram", test_ram);
        VT_FIXTURE_TESTS("/stub/lifecycle/", test_lifecycle_async, test_lifecycle_invalid, test_reset_epoch);
        VT_TEST_ADD("/stub/input", test_input);
        VT_TEST_ADD("/stub/input/log-bound", test_input_log_bound);
        VT_FIXTURE_TESTS("/stub/display/", test_display_image, test_display_clock, test_display_state,
                         test_display_order, test_display_detach);
        VT_FIXTURE_TESTS("/stub/detach/", test_detach_pending, test_detach_from_completion);
        g_test_add_func("/stub/no-fd-leak", test_no_fd_leak);
        return g_test_run();
}
