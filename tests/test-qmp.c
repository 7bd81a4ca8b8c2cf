/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QEMU (QMP) host backend against a real QEMU under TCG: the
 * connection, lifecycle requests checked against QEMU's own query-status,
 * state that follows what QEMU does on its own, input, guest memory writes
 * seen by the guest, QEMU dying, exiting and coming back, detach with
 * requests in flight, and no descriptor leaks. The test talks to QEMU on a
 * second QMP socket of its own. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib.h>

#include "bootstrap.h"
#include "inode-watch.h"
#include "memctx.h"
#include "qemu-harness.h"
#include "qmp.h"
#include "vmsig-core.h"
#include "vmsig-endpoint.h"
/* Last: it brings GLib, whose MIN and MAX macro.h would redefine. */
#include "event-loop.h"
#include "vt-util.h"

#define NAME "guest"
#define TIMEOUT_USEC (20 * G_USEC_PER_SEC)
#define SCRATCH_GPA UINT64_C(0x7f00000) /* 127 MiB: nothing of SeaBIOS there */

typedef struct record {
        uint32_t kind;
        vmsig_lifecycle_payload lifecycle;
} record;

typedef struct Fixture {
        VT_CORE_MEMBERS;
        vmsig_subscriber *sub;
        GArray *records;
        QemuVm *vm; /* NULL: no QEMU, the test is skipped */
        vmsig_endpoint *ep;
        vmsig_qmp *qmp;
} Fixture;

typedef struct done_ctx {
        Fixture *f;
        unsigned calls;
        int error;
        char message[256];
        vmsig_state state_at_done;
        bool detach; /* detach the endpoint from the callback */
} done_ctx;

static int on_deliver(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        Fixture *f = userdata;
        record rec = { .kind = d->event->kind };

        if (rec.kind == VMSIG_KIND_LIFECYCLE)
                memcpy(&rec.lifecycle, d->event->payload, sizeof rec.lifecycle);
        g_array_append_val(f->records, rec);
        return VMSIG_DELIVER_OK;
}

static void fixture_setup(Fixture *f, gconstpointer data) {
        vmsig_filter filter = { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_LIFECYCLE) };

        vt_core_start(&f->event, &f->core);
        f->records = g_array_new(false, true, sizeof(record));
        g_assert_cmpint(vmsig_core_subscribe(f->core, &filter, 0, on_deliver, f, &f->sub), ==, 0);
        if (qemu_harness_available())
                f->vm = qemu_vm_new();
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        vt_core_stop(f->event, f->core);
        g_array_unref(f->records);
        qemu_vm_free(f->vm);
}

#define RUN_UNTIL(f, expr) VT_EVENT_RUN_UNTIL((f)->event, expr, TIMEOUT_USEC)

static void run_for(Fixture *f, unsigned ms) {
        vt_event_run_for(f->event, (uint64_t) ms * 1000);
}

static void attach_with_map(Fixture *f, const vmsig_gpa_range *ranges, size_t n_ranges) {
        vmsig_qmp_spec spec = {
                .name = NAME,
                .qmp_socket = f->vm->qmp_path,
                .ram_path = f->vm->ram_path,
                .ranges = ranges,
                .n_ranges = n_ranges,
        };
        vmsig_endpoint_spec es;

        g_assert_cmpint(vmsig_qmp_new(&spec, &es, &f->qmp), ==, 0);
        g_assert_cmpint(es.initial_state, ==, VMSIG_STATE_UNKNOWN);
        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &es, &f->ep), ==, 0);
}

static void attach(Fixture *f) {
        attach_with_map(f, NULL, 0);
}

static vmsig_state state(Fixture *f) {
        return vmsig_endpoint_get_state(f->ep);
}

static void wait_running(Fixture *f) {
        RUN_UNTIL(f, vmsig_qmp_is_connected(f->qmp) && state(f) == VMSIG_STATE_RUNNING);
}

/* QEMU up, the endpoint attached and connected. */
static const vmsig_memctx *memctx(Fixture *f) {
        return vmsig_memctx_get(f->core, vmsig_endpoint_get_id(f->ep));
}

static bool bring_up(Fixture *f) {
        if (!f->vm)
                return false;
        qemu_vm_start(f->vm);
        attach(f);
        wait_running(f);
        /* The datum follows once QEMU told where the RAM file sits in
         * guest-physical space. */
        RUN_UNTIL(f, memctx(f) != NULL);
        return true;
}

static void detach(Fixture *f) {
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, f->ep), ==, 0);
        f->ep = NULL;
        f->qmp = NULL;
}

static void on_done(const vmsig_result *r, void *userdata) {
        done_ctx *d = userdata;

        d->calls++;
        d->error = r->error;
        g_strlcpy(d->message, r->message ? r->message : "", sizeof d->message);
        if (d->f->ep)
                d->state_at_done = vmsig_endpoint_get_state(d->f->ep);
        if (d->detach)
                detach(d->f);
}

/* A lifecycle request, completed from the loop, never from the call. */
static void lifecycle(Fixture *f, vmsig_lifecycle_op op, done_ctx *d) {
        *d = (done_ctx) { .f = f };
        g_assert_cmpint(vmsig_endpoint_lifecycle(f->ep, op, on_done, d), ==, 0);
        g_assert_cmpuint(d->calls, ==, 0);
        RUN_UNTIL(f, d->calls > 0);
        g_assert_cmpuint(d->calls, ==, 1);
}

static int inject(Fixture *f, const vmsig_input_event *ev, size_t n, done_ctx *d) {
        *d = (done_ctx) { .f = f };
        int r = vmsig_endpoint_inject_input(f->ep, ev, n, on_done, d);
        g_assert_cmpuint(d->calls, ==, 0);
        if (r >= 0)
                RUN_UNTIL(f, d->calls > 0);
        return r;
}


static uint64_t epoch(Fixture *f) {
        const vmsig_memctx *m = memctx(f);
        return m ? m->epoch : 0;
}

static const vmsig_bootstrap_payload *bootstrap(Fixture *f) {
        return vmsig_bootstrap_get(f->core, vmsig_endpoint_get_id(f->ep));
}

/* The last LIFECYCLE event delivered. */
static const vmsig_lifecycle_payload *last_lifecycle(Fixture *f) {
        g_assert_cmpuint(f->records->len, >, 0);
        return &g_array_index(f->records, record, f->records->len - 1).lifecycle;
}

static void assert_last_lifecycle(Fixture *f, vmsig_lifecycle_op op, vmsig_state from, vmsig_state to) {
        const vmsig_lifecycle_payload *p;

        /* Events are dispatched on a later iteration than the report. */
        run_for(f, 20);
        p = last_lifecycle(f);
        g_assert_cmpint(p->op, ==, op);
        g_assert_cmpint(p->old_state, ==, from);
        g_assert_cmpint(p->new_state, ==, to);
}

static void assert_qemu_status(Fixture *f, const char *expected) {
        g_autofree char *status = qmp_session_status(f->vm->session);
        g_assert_cmpstr(status, ==, expected);
}

static size_t count_fds(void) {
        return vt_open_fds(0);
}

/* --- without QEMU --------------------------------------------------------- */

static void test_spec(void) {
        vmsig_qmp_spec spec = { .name = "alpha", .qmp_socket = "qmp.sock", .ram_path = "ram" };
        char long_path[200];
        vmsig_endpoint_spec es;

        spec.name = "no/slash";
        g_assert_cmpint(vmsig_qmp_new(&spec, &es, NULL), ==, -EINVAL);
        spec.name = "alpha";
        spec.qmp_socket = NULL;
        g_assert_cmpint(vmsig_qmp_new(&spec, &es, NULL), ==, -EINVAL);
        memset(long_path, 'x', sizeof long_path - 1);
        long_path[sizeof long_path - 1] = '\0';
        spec.qmp_socket = long_path;
        g_assert_cmpint(vmsig_qmp_new(&spec, &es, NULL), ==, -EINVAL);
        spec.qmp_socket = "";
        g_assert_cmpint(vmsig_qmp_new(&spec, &es, NULL), ==, -EINVAL);
        spec.qmp_socket = "qmp.sock";
        spec.ram_path = "";
        g_assert_cmpint(vmsig_qmp_new(&spec, &es, NULL), ==, -EINVAL);
}

static void free_spec_adapters(vmsig_endpoint_spec *es) {
        for (int i = _VMSIG_ADAPTER_MAX - 1; i >= 0; i--)
                if (es->adapters[i].ops)
                        es->adapters[i].ops->free(es->adapters[i].data);
}

static void test_spec_adapters(void) {
        vmsig_gpa_range range = { .gpa = 0, .size = 4096, .offset = 0 }, empty = { 0 };
        vmsig_qmp_spec spec = { .name = "alpha", .qmp_socket = "qmp.sock", .ram_path = "ram" };
        vmsig_endpoint_spec es;

        /* The adapters; without a RAM file there is no memctx adapter. */
        g_assert_cmpint(vmsig_qmp_new(&spec, &es, NULL), ==, 0);
        g_assert_nonnull(es.adapters[VMSIG_ADAPTER_MEMCTX].ops);
        g_assert_nonnull(es.adapters[VMSIG_ADAPTER_INPUT].ops);
        g_assert_nonnull(es.adapters[VMSIG_ADAPTER_HOST].ops);
        g_assert_nonnull(es.adapters[VMSIG_ADAPTER_DISPLAY].ops);
        g_assert_false(sd_id128_is_null(es.uuid));
        free_spec_adapters(&es);
        spec.ram_path = NULL;
        g_assert_cmpint(vmsig_qmp_new(&spec, &es, NULL), ==, 0);
        g_assert_null(es.adapters[VMSIG_ADAPTER_MEMCTX].ops);
        free_spec_adapters(&es);

        /* Ranges need a RAM file and a size. */
        spec.ranges = &range;
        spec.n_ranges = 1;
        g_assert_cmpint(vmsig_qmp_new(&spec, &es, NULL), ==, -EINVAL);
        spec.ram_path = "ram";
        g_assert_cmpint(vmsig_qmp_new(&spec, &es, NULL), ==, 0);
        free_spec_adapters(&es);
        spec.ranges = &empty;
        g_assert_cmpint(vmsig_qmp_new(&spec, &es, NULL), ==, -EINVAL);
}

static void test_qcode_table(void) {
        g_assert_null(vmsig_qmp_qcode_to_name(0)); /* "unmapped" is no key */
        g_assert_cmpstr(vmsig_qmp_qcode_to_name(1), ==, "shift");
        g_assert_cmpstr(vmsig_qmp_qcode_to_name(35), ==, "ret");
        g_assert_cmpstr(vmsig_qmp_qcode_to_name(36), ==, "a");
        g_assert_cmpstr(vmsig_qmp_qcode_to_name(149), ==, "lang2");
        g_assert_null(vmsig_qmp_qcode_to_name(150));
        g_assert_null(vmsig_qmp_qcode_to_name(UINT32_MAX));
        g_assert_cmpint(vmsig_qmp_qcode_from_name("esc"), ==, 8);
        g_assert_cmpint(vmsig_qmp_qcode_from_name("f12"), ==, 93);
        g_assert_cmpint(vmsig_qmp_qcode_from_name("unmapped"), ==, -EINVAL);
        g_assert_cmpint(vmsig_qmp_qcode_from_name("nope"), ==, -EINVAL);
        g_assert_cmpint(vmsig_qmp_qcode_from_name(NULL), ==, -EINVAL);
}

/* --- with QEMU ------------------------------------------------------------ */

/* Our KEY numbers are QEMU's: every one of them names the QKeyCode member
 * at that position of the running QEMU's schema. */
static void test_qcode_schema(Fixture *f, gconstpointer data) {
        json_object *schema, *values = NULL;
        size_t n = 0;

        if (!f->vm)
                return;
        qemu_vm_start(f->vm);
        schema = qmp_session_execute(f->vm->session, "query-qmp-schema", NULL, NULL);
        for (size_t i = 0; i < json_object_array_length(schema); i++) {
                json_object *t = json_object_array_get_idx(schema, i), *v;
                if (!json_object_object_get_ex(t, "values", &v))
                        continue;
                for (size_t j = 0; j < json_object_array_length(v); j++)
                        if (g_str_equal(json_object_get_string(json_object_array_get_idx(v, j)), "shift_r"))
                                values = v;
        }
        g_assert_nonnull(values);
        for (uint32_t code = 1; vmsig_qmp_qcode_to_name(code); code++, n++) {
                g_assert_cmpuint(code, <, json_object_array_length(values));
                g_assert_cmpstr(vmsig_qmp_qcode_to_name(code), ==,
                                json_object_get_string(json_object_array_get_idx(values, code)));
        }
        g_assert_cmpuint(n, >=, 149);
        json_object_put(schema);
}

/* On connecting, the state is QEMU's; the memctx datum is a read-only view
 * of QEMU's RAM file, and the bootstrap looks for a root in it. */
static void test_connect(Fixture *f, gconstpointer data) {
        struct stat st, st_ram;
        const vmsig_memctx *m;

        if (!bring_up(f))
                return;
        g_assert_cmpstr(vmsig_endpoint_get_backend(f->ep), ==, "qemu");
        assert_last_lifecycle(f, VMSIG_OP_RESUME, VMSIG_STATE_UNKNOWN, VMSIG_STATE_RUNNING);

        m = memctx(f);
        g_assert_nonnull(m);
        g_assert_cmpuint(m->epoch, ==, 1); /* the QEMU that was there at attach: no new epoch */
        g_assert_false(m->invalidated);
        g_assert_cmpuint(m->ram_size, ==, QEMU_RAM_SIZE);
        g_assert_cmpuint(m->n_ranges, ==, 1);
        g_assert_cmpuint(m->ranges[0].gpa, ==, 0);
        g_assert_cmpuint(m->ranges[0].size, ==, QEMU_RAM_SIZE);
        g_assert_cmpint(fcntl(m->ram_fd, F_GETFL) & O_ACCMODE, ==, O_RDONLY);
        g_assert_cmpint(fstat(m->ram_fd, &st), ==, 0);
        g_assert_cmpint(stat(f->vm->ram_path, &st_ram), ==, 0);
        g_assert_cmpuint(st.st_ino, ==, st_ram.st_ino);
        g_assert_cmpuint(st_ram.st_mode & 07777, ==, 0600);

        RUN_UNTIL(f, bootstrap(f) && bootstrap(f)->state != VMSIG_BOOTSTRAP_IDLE);
        g_assert_cmpint(bootstrap(f)->state, !=, VMSIG_BOOTSTRAP_READY); /* SeaBIOS has no kernel */
}

/* Every op reaches QEMU, and the state at completion is what QEMU said in
 * its events before its answer. */
static void test_lifecycle(Fixture *f, gconstpointer data) {
        uint64_t e0;
        done_ctx d;

        if (!bring_up(f))
                return;
        lifecycle(f, VMSIG_OP_PAUSE, &d);
        g_assert_cmpint(d.error, ==, 0);
        g_assert_cmpint(d.state_at_done, ==, VMSIG_STATE_PAUSED);
        assert_qemu_status(f, "paused");
        assert_last_lifecycle(f, VMSIG_OP_PAUSE, VMSIG_STATE_RUNNING, VMSIG_STATE_PAUSED);

        lifecycle(f, VMSIG_OP_RESUME, &d);
        g_assert_cmpint(d.error, ==, 0);
        g_assert_cmpint(d.state_at_done, ==, VMSIG_STATE_RUNNING);
        assert_qemu_status(f, "running");

        e0 = epoch(f);
        lifecycle(f, VMSIG_OP_RESET, &d);
        g_assert_cmpint(d.error, ==, 0);
        g_assert_true(qmp_session_wait_event(f->vm->session, "RESET", 5000));
        /* SeaBIOS resets the machine again by itself after a host reset:
         * each one is a new epoch, so only "newer" can be asked for. */
        assert_last_lifecycle(f, VMSIG_OP_RESET, VMSIG_STATE_RUNNING, VMSIG_STATE_RUNNING);
        RUN_UNTIL(f, epoch(f) > e0);
        assert_qemu_status(f, "running");

        /* The power button: SeaBIOS does not act on it, so QEMU runs on. */
        lifecycle(f, VMSIG_OP_POWER_OFF, &d);
        g_assert_cmpint(d.error, ==, 0);
        g_assert_true(qmp_session_wait_event(f->vm->session, "POWERDOWN", 5000));
        assert_qemu_status(f, "running");
        g_assert_cmpint(state(f), ==, VMSIG_STATE_RUNNING);
}

/* The state follows what someone else does to QEMU. */
static void test_follows_events(Fixture *f, gconstpointer data) {
        uint64_t e0;

        if (!bring_up(f))
                return;
        qmp_session_run(f->vm->session, "stop", NULL);
        RUN_UNTIL(f, state(f) == VMSIG_STATE_PAUSED);
        assert_last_lifecycle(f, VMSIG_OP_PAUSE, VMSIG_STATE_RUNNING, VMSIG_STATE_PAUSED);
        qmp_session_run(f->vm->session, "cont", NULL);
        RUN_UNTIL(f, state(f) == VMSIG_STATE_RUNNING);
        assert_last_lifecycle(f, VMSIG_OP_RESUME, VMSIG_STATE_PAUSED, VMSIG_STATE_RUNNING);

        /* A reset from elsewhere is a reset too: a new memctx epoch, and
         * the leases end. */
        e0 = epoch(f);
        g_assert_cmpint(vmsig_endpoint_lease_acquire(f->ep, VMSIG_LEASE_POWER, &(vmsig_lease_holder) { .name = "test" },
                                                     NULL, NULL),
                        ==, 0);
        qmp_session_run(f->vm->session, "system_reset", NULL);
        RUN_UNTIL(f, epoch(f) > e0);
        g_assert_null(vmsig_endpoint_lease_get(f->ep, VMSIG_LEASE_POWER));
        assert_last_lifecycle(f, VMSIG_OP_RESET, VMSIG_STATE_RUNNING, VMSIG_STATE_RUNNING);
        RUN_UNTIL(f, bootstrap(f) && bootstrap(f)->state != VMSIG_BOOTSTRAP_IDLE);
}

static void test_input(Fixture *f, gconstpointer data) {
        const uint32_t a = (uint32_t) vmsig_qmp_qcode_from_name("a");
        const vmsig_input_event events[] = {
                { VMSIG_INPUT_KEY, a, 1 },       { VMSIG_INPUT_KEY, a, 0 },
                { VMSIG_INPUT_BUTTON, 0, 1 },    { VMSIG_INPUT_BUTTON, 0, 0 },
                { VMSIG_INPUT_REL, 0, 5 },       { VMSIG_INPUT_REL, 1, -3 },
                { VMSIG_INPUT_REL, 2, 2 },       { VMSIG_INPUT_REL, 2, -1 },
        };
        const vmsig_input_event abs[] = { { VMSIG_INPUT_ABS, 0, 0 }, { VMSIG_INPUT_ABS, 1, 32767 } };
        const vmsig_input_event invalid[] = {
                { VMSIG_INPUT_KEY, 0, 1 },      { VMSIG_INPUT_KEY, 150, 1 },   { VMSIG_INPUT_KEY, a, 2 },
                { VMSIG_INPUT_BUTTON, 5, 1 },   { VMSIG_INPUT_BUTTON, 0, -1 }, { VMSIG_INPUT_REL, 3, 1 },
                { VMSIG_INPUT_REL, 2, 17 },     { VMSIG_INPUT_ABS, 0, 32768 }, { VMSIG_INPUT_ABS, 0, -1 },
                { VMSIG_INPUT_ABS, 2, 0 },      { 9, 0, 0 },
        };
        const vmsig_input_event wheel0 = { VMSIG_INPUT_REL, 2, 0 };
        vmsig_input_event mixed[2] = { events[0] };
        done_ctx d;

        if (!bring_up(f))
                return;
        g_assert_cmpint(inject(f, events, G_N_ELEMENTS(events), &d), ==, 0);
        g_assert_cmpint(d.error, ==, 0);

        /* QEMU's refusals come back as host errors with its words: the
         * machine of ENVIRONMENT.md has a PS/2 mouse, but no tablet. */
        g_assert_cmpint(inject(f, abs, G_N_ELEMENTS(abs), &d), ==, 0);
        g_assert_cmpint(d.error, ==, -EIO);
        g_assert_cmpstr(d.message, ==, "QEMU: GenericError: Input handler not found for event type abs");

        /* Nothing to send is done too. */
        g_assert_cmpint(inject(f, &wheel0, 1, &d), ==, 0);
        g_assert_cmpint(d.error, ==, 0);

        /* One bad event refuses the whole call before anything is sent. */
        for (size_t i = 0; i < G_N_ELEMENTS(invalid); i++) {
                mixed[1] = invalid[i];
                g_assert_cmpint(inject(f, &invalid[i], 1, &d), ==, -EINVAL);
                g_assert_cmpint(inject(f, mixed, 2, &d), ==, -EINVAL);
        }
        run_for(f, 50);
        g_assert_cmpuint(d.calls, ==, 0);

        /* A paused guest takes no input. */
        qmp_session_run(f->vm->session, "stop", NULL);
        RUN_UNTIL(f, state(f) == VMSIG_STATE_PAUSED);
        g_assert_cmpint(inject(f, events, 1, &d), ==, 0);
        g_assert_cmpint(d.error, ==, -EIO);
        g_assert_cmpstr(d.message, ==, "QEMU: GenericError: VM not running");
}

static void test_write_ram(Fixture *f, gconstpointer data) {
        const uint64_t value = UINT64_C(0x1122334455667788);
        uint64_t back = 0;

        if (!bring_up(f))
                return;
        g_assert_cmpint(vmsig_endpoint_write_ram(f->ep, SCRATCH_GPA, &value, sizeof value), ==, 0);
        g_assert_cmphex(qmp_session_xp(f->vm->session, SCRATCH_GPA), ==, value);
        g_assert_cmpint(pread(memctx(f)->ram_fd, &back, sizeof back, SCRATCH_GPA), ==, sizeof back);
        g_assert_cmphex(back, ==, value);

        g_assert_cmpint(vmsig_endpoint_write_ram(f->ep, QEMU_RAM_SIZE - 4, &value, sizeof value), ==, -ERANGE);
        g_assert_cmpint(vmsig_endpoint_write_ram(f->ep, UINT64_MAX, &value, 1), ==, -ERANGE);
        g_assert_cmpint(vmsig_endpoint_write_ram(f->ep, QEMU_RAM_SIZE, &value, 0), ==, 0);
}

/* QEMU killed: the endpoint is shut off and says so to requests; a QEMU
 * started again on the same socket is picked up, as a new guest. */
static void test_kill_restart(Fixture *f, gconstpointer data) {
        const uint64_t value = UINT64_C(0xfeedfacecafebeef);
        uint64_t e0, e1;
        done_ctx d;

        if (!bring_up(f))
                return;
        e0 = epoch(f);
        qemu_vm_kill(f->vm);
        RUN_UNTIL(f, state(f) == VMSIG_STATE_SHUT_OFF);
        g_assert_false(vmsig_qmp_is_connected(f->qmp));
        assert_last_lifecycle(f, VMSIG_OP_POWER_OFF, VMSIG_STATE_RUNNING, VMSIG_STATE_SHUT_OFF);
        RUN_UNTIL(f, bootstrap(f)->state == VMSIG_BOOTSTRAP_IDLE);
        /* The dead guest's epoch ended; the file stays readable. */
        RUN_UNTIL(f, epoch(f) > e0);
        e1 = epoch(f);
        g_assert_false(memctx(f)->invalidated);
        g_assert_cmpuint(memctx(f)->dtb, ==, 0);

        lifecycle(f, VMSIG_OP_RESUME, &d);
        g_assert_cmpint(d.error, ==, -EBADFD);
        g_assert_cmpstr(d.message, ==, "Endpoint '" NAME "' is shut off: its QEMU is not running.");
        g_assert_cmpint(inject(f, &(vmsig_input_event) { VMSIG_INPUT_KEY, 36, 1 }, 1, &d), ==, 0);
        g_assert_cmpint(d.error, ==, -EBADFD);

        qemu_vm_start(f->vm);
        wait_running(f);
        assert_last_lifecycle(f, VMSIG_OP_RESUME, VMSIG_STATE_SHUT_OFF, VMSIG_STATE_RUNNING);
        RUN_UNTIL(f, epoch(f) > e1);
        g_assert_false(memctx(f)->invalidated);
        RUN_UNTIL(f, bootstrap(f)->state != VMSIG_BOOTSTRAP_IDLE);
        g_assert_cmpint(vmsig_endpoint_write_ram(f->ep, SCRATCH_GPA, &value, sizeof value), ==, 0);
        g_assert_cmphex(qmp_session_xp(f->vm->session, SCRATCH_GPA), ==, value);
        lifecycle(f, VMSIG_OP_PAUSE, &d);
        g_assert_cmpint(d.error, ==, 0);
        assert_qemu_status(f, "paused");
}

/* quit by another QMP client: SHUTDOWN, then the hangup of a QEMU that
 * is gone; the VM was killed. */
static void test_quit(Fixture *f, gconstpointer data) {
        if (!bring_up(f))
                return;
        qmp_session_run(f->vm->session, "quit", NULL);
        RUN_UNTIL(f, state(f) == VMSIG_STATE_SHUT_OFF);
        assert_last_lifecycle(f, VMSIG_OP_KILL, VMSIG_STATE_RUNNING, VMSIG_STATE_SHUT_OFF);
        g_assert_true(qemu_vm_wait_exit(f->vm, 10000));
        run_for(f, 300); /* a few reconnect attempts */
        g_assert_cmpint(state(f), ==, VMSIG_STATE_SHUT_OFF);
        g_assert_false(vmsig_qmp_is_connected(f->qmp));

        qemu_vm_start(f->vm);
        wait_running(f);
}

/* Kill is quit: answered, then QEMU exits and the endpoint is shut off;
 * a paused guest is killed just the same. */
static void test_kill(Fixture *f, gconstpointer data) {
        done_ctx d;

        if (!bring_up(f))
                return;
        lifecycle(f, VMSIG_OP_PAUSE, &d);
        g_assert_cmpint(d.error, ==, 0);
        lifecycle(f, VMSIG_OP_KILL, &d);
        g_assert_cmpint(d.error, ==, 0);
        g_assert_true(qemu_vm_wait_exit(f->vm, 10000));
        RUN_UNTIL(f, state(f) == VMSIG_STATE_SHUT_OFF);
        assert_last_lifecycle(f, VMSIG_OP_KILL, VMSIG_STATE_PAUSED, VMSIG_STATE_SHUT_OFF);
        lifecycle(f, VMSIG_OP_KILL, &d);
        g_assert_cmpint(d.error, ==, -EBADFD);
        g_assert_cmpstr(d.message, ==, "Endpoint '" NAME "' is shut off: its QEMU is not running.");
}

/* Attached before QEMU runs: shut off, no memory; then QEMU comes. */
static void test_absent_then_start(Fixture *f, gconstpointer data) {
        done_ctx d;

        if (!f->vm)
                return;
        attach(f);
        RUN_UNTIL(f, state(f) == VMSIG_STATE_SHUT_OFF);
        g_assert_null(memctx(f));
        g_assert_nonnull(bootstrap(f));
        g_assert_cmpint(bootstrap(f)->state, ==, VMSIG_BOOTSTRAP_IDLE);
        g_assert_cmpint(vmsig_endpoint_write_ram(f->ep, 0, "x", 1), ==, -ENODEV);
        lifecycle(f, VMSIG_OP_PAUSE, &d);
        g_assert_cmpint(d.error, ==, -EBADFD);

        qemu_vm_start(f->vm);
        wait_running(f);
        RUN_UNTIL(f, memctx(f) != NULL);
        g_assert_cmpuint(memctx(f)->epoch, ==, 1);
        g_assert_cmpuint(memctx(f)->ram_size, ==, QEMU_RAM_SIZE);
}

/* Requests in flight at detach complete with -ENODEV, at once; a
 * completion may detach its own endpoint. The QMP socket is free again for
 * the next client. */
static void test_detach(Fixture *f, gconstpointer data) {
        const vmsig_input_event key = { VMSIG_INPUT_KEY, 36, 1 };
        done_ctx d[2] = { { .f = f }, { .f = f } };

        if (!bring_up(f))
                return;
        g_assert_cmpint(vmsig_endpoint_lifecycle(f->ep, VMSIG_OP_PAUSE, on_done, &d[0]), ==, 0);
        g_assert_cmpint(vmsig_endpoint_inject_input(f->ep, &key, 1, on_done, &d[1]), ==, 0);
        detach(f);
        for (size_t i = 0; i < 2; i++) {
                g_assert_cmpuint(d[i].calls, ==, 1);
                g_assert_cmpint(d[i].error, ==, -ENODEV);
                g_assert_cmpstr(d[i].message, ==, "Endpoint '" NAME "' was detached.");
        }
        run_for(f, 50);
        g_assert_cmpuint(d[0].calls, ==, 1);

        /* The stop may or may not have reached QEMU before we left. */
        attach(f);
        RUN_UNTIL(f, vmsig_qmp_is_connected(f->qmp) && state(f) != VMSIG_STATE_UNKNOWN);
        d[0] = (done_ctx) { .f = f, .detach = true };
        d[1] = (done_ctx) { .f = f };
        g_assert_cmpint(vmsig_endpoint_lifecycle(f->ep, VMSIG_OP_RESET, on_done, &d[0]), ==, 0);
        g_assert_cmpint(vmsig_endpoint_lifecycle(f->ep, VMSIG_OP_RESET, on_done, &d[1]), ==, 0);
        RUN_UNTIL(f, d[0].calls > 0);
        g_assert_cmpint(d[0].error, ==, 0);
        g_assert_null(f->ep);
        g_assert_cmpuint(d[1].calls, ==, 1);
        g_assert_cmpint(d[1].error, ==, -ENODEV);
        run_for(f, 50);
        g_assert_cmpuint(vmsig_core_endpoint_count(f->core), ==, 0);
}

/* A <gpa-map> of the configuration wins over QEMU's own: the datum comes
 * at attach, with the map as given, and stays so once QEMU answers. */
static void test_configured_map(Fixture *f, gconstpointer data) {
        const vmsig_gpa_range map[] = {
                { .gpa = 0, .size = 64 << 20, .offset = 0 },
                { .gpa = UINT64_C(1) << 32, .size = 64 << 20, .offset = 64 << 20 },
        };
        const vmsig_memctx *m;

        if (!f->vm)
                return;
        qemu_vm_start(f->vm);
        attach_with_map(f, map, G_N_ELEMENTS(map));
        RUN_UNTIL(f, memctx(f) != NULL);
        wait_running(f);
        run_for(f, 100);
        m = memctx(f);
        g_assert_cmpuint(m->epoch, ==, 1);
        g_assert_cmpuint(m->n_ranges, ==, 2);
        g_assert_cmpmem(m->ranges, sizeof map, map, sizeof map);
}

typedef struct {
        unsigned calls;
        int error;
        char message[160];
        vmsig_vcpu_state vcpu;
} vcpu_ctx;

static void on_vcpu(const vmsig_result *r, const vmsig_vcpu_state *vcpu, void *userdata) {
        vcpu_ctx *v = userdata;

        v->calls++;
        v->error = r->error;
        g_strlcpy(v->message, r->message ? r->message : "", sizeof v->message);
        if (vcpu)
                v->vcpu = *vcpu;
        else
                g_assert_cmpint(r->error, <, 0);
}

/* The vCPU's control registers, from info registers: SeaBIOS runs with
 * paging off. Answered from the loop; a read in flight when the endpoint
 * goes completes with -ENODEV; a shut-off QEMU has no vCPU. */
static void test_read_vcpu(Fixture *f, gconstpointer data) {
        vcpu_ctx v = {}, gone = {}, off = {};

        if (!bring_up(f))
                return;
        g_assert_true(vmsig_endpoint_can_read_vcpu(f->ep));
        g_assert_cmpint(vmsig_endpoint_read_vcpu(f->ep, on_vcpu, &v), ==, 0);
        g_assert_cmpuint(v.calls, ==, 0);
        RUN_UNTIL(f, v.calls > 0);
        g_assert_cmpint(v.error, ==, 0);
        g_assert_cmpuint(vmsig_vcpu_paging_levels(&v.vcpu), ==, 0);
        g_assert_cmphex(v.vcpu.cr0 & VMSIG_CR0_PG, ==, 0);

        g_assert_cmpint(vmsig_endpoint_read_vcpu(f->ep, on_vcpu, &gone), ==, 0);
        detach(f);
        g_assert_cmpuint(gone.calls, ==, 1);
        g_assert_cmpint(gone.error, ==, -ENODEV);

        attach(f);
        RUN_UNTIL(f, vmsig_qmp_is_connected(f->qmp) && state(f) == VMSIG_STATE_RUNNING);
        qemu_vm_kill(f->vm);
        RUN_UNTIL(f, state(f) == VMSIG_STATE_SHUT_OFF);
        g_assert_cmpint(vmsig_endpoint_read_vcpu(f->ep, on_vcpu, &off), ==, 0);
        RUN_UNTIL(f, off.calls > 0);
        g_assert_cmpint(off.error, ==, -EBADFD);
        g_assert_cmpstr(off.message, ==, "Endpoint '" NAME "' is shut off: its QEMU is not running.");
}

/* A RAM file others can read is worth a warning, not a refusal. */
static void test_world_readable(Fixture *f, gconstpointer data) {
        g_autofree char *log = NULL, *log_path = NULL;
        int saved, fd;

        if (!f->vm)
                return;
        qemu_vm_start(f->vm);
        g_assert_cmpint(chmod(f->vm->ram_path, 0644), ==, 0);

        fd = g_file_open_tmp("vmsig-qmp-log-XXXXXX", &log_path, NULL);
        g_assert_cmpint(fd, >=, 0);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        g_assert_cmpint(dup2(fd, STDERR_FILENO), ==, STDERR_FILENO);
        /* The RAM file is opened once QEMU told its map. */
        attach(f);
        RUN_UNTIL(f, memctx(f) != NULL);
        fflush(stderr);
        g_assert_cmpint(dup2(saved, STDERR_FILENO), ==, STDERR_FILENO);
        close(saved);
        close(fd);
        g_assert_true(g_file_get_contents(log_path, &log, NULL, NULL));
        (void) unlink(log_path);
        g_assert_nonnull(strstr(log, "readable by everyone"));
}

static void test_no_fd_leak(Fixture *f, gconstpointer data) {
        size_t n0;
        done_ctx d;

        if (!f->vm)
                return;
        qemu_vm_start(f->vm);
        /* The core's one inotify instance for RAM watches stays once
         * opened (inode-watch.h): opened first, as vmsigd does at start. */
        g_assert_cmpint(inode_watches_prepare(f->core), ==, 0);
        n0 = count_fds();
        for (int round = 0; round < 2; round++) {
                attach(f);
                wait_running(f);
                lifecycle(f, VMSIG_OP_PAUSE, &d);
                lifecycle(f, VMSIG_OP_RESUME, &d);
                detach(f);
                run_for(f, 50);
                g_assert_cmpuint(count_fds(), ==, n0);
        }

        /* Through a QEMU death too. */
        attach(f);
        wait_running(f);
        qemu_vm_kill(f->vm);
        RUN_UNTIL(f, state(f) == VMSIG_STATE_SHUT_OFF);
        detach(f);
        run_for(f, 50);
        g_assert_cmpuint(count_fds(), ==, n0 - 1); /* the session went with QEMU */
}

/* --- a fake QEMU ------------------------------------------------------------
 * What a real QEMU does not do on demand: messages split anywhere, several
 * in one read, a full socket buffer, replies nobody asked for, errors to
 * order, and garbage. */

typedef struct FakeFd {
        int fd;
        size_t pos; /* in Fake.in of the first byte read with it */
} FakeFd;

typedef struct Fake {
        char *dir, *path;
        int listen_fd, fd;
        GString *in;
        bool bytewise;  /* read a byte at a time: a descriptor comes with its byte */
        GArray *unread; /* FakeFd: received with SCM_RIGHTS, its line not read yet */
        GArray *fds;    /* int: those that came with the last command, not taken */
} Fake;

static Fake *fake_new(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        Fake *k = g_new0(Fake, 1);

        k->dir = g_dir_make_tmp("vmsig-fake-qmp-XXXXXX", NULL);
        g_assert_nonnull(k->dir);
        k->path = g_build_filename(k->dir, "qmp.sock", NULL);
        k->in = g_string_new(NULL);
        k->fds = g_array_new(false, false, sizeof(int));
        k->unread = g_array_new(false, false, sizeof(FakeFd));
        k->fd = -1;
        k->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        g_assert_cmpint(k->listen_fd, >=, 0);
        g_strlcpy(sa.sun_path, k->path, sizeof sa.sun_path);
        g_assert_cmpint(bind(k->listen_fd, (struct sockaddr *) &sa, sizeof sa), ==, 0);
        g_assert_cmpint(listen(k->listen_fd, 4), ==, 0);
        return k;
}

static void fake_hangup(Fake *k) {
        if (k->fd >= 0)
                close(k->fd);
        k->fd = -1;
        g_string_truncate(k->in, 0);
        for (unsigned i = 0; i < k->fds->len; i++)
                close(g_array_index(k->fds, int, i));
        g_array_set_size(k->fds, 0);
        for (unsigned i = 0; i < k->unread->len; i++)
                close(g_array_index(k->unread, FakeFd, i).fd);
        g_array_set_size(k->unread, 0);
}

/* QEMU gone: no listener, no socket file. */
static void fake_free(Fake *k) {
        fake_hangup(k);
        if (k->listen_fd >= 0)
                close(k->listen_fd);
        (void) unlink(k->path);
        (void) rmdir(k->dir);
        g_string_free(k->in, true);
        g_array_unref(k->fds);
        g_array_unref(k->unread);
        g_free(k->path);
        g_free(k->dir);
        g_free(k);
}

static bool fake_try_accept(Fake *k) {
        k->fd = accept4(k->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        return k->fd >= 0;
}

static void fake_send(Fake *k, const char *text) {
        size_t len = strlen(text);

        for (size_t done = 0; done < len;) {
                ssize_t n = send(k->fd, text + done, len - done, MSG_NOSIGNAL);
                g_assert_cmpint(n, >, 0);
                done += (size_t) n;
        }
}

/* Reads what is there; true once a whole line is buffered, or on EOF
 * (then *eof). */
static bool fake_poll(Fake *k, bool *eof) {
        char buf[65536];
        union {
                struct cmsghdr cmsg;
                char buf[CMSG_SPACE(4 * sizeof(int))];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = k->bytewise ? 1 : sizeof buf };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        for (;;) {
                mh.msg_control = &control;
                mh.msg_controllen = sizeof control.buf;
                n = recvmsg(k->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n <= 0)
                        break;
                g_assert_false(mh.msg_flags & MSG_CTRUNC);
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                        g_assert_cmpint(c->cmsg_type, ==, SCM_RIGHTS);
                        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                FakeFd ffd = { .pos = k->in->len };
                                memcpy(&ffd.fd, CMSG_DATA(c) + i * sizeof(int), sizeof ffd.fd);
                                g_array_append_val(k->unread, ffd);
                        }
                }
                g_string_append_len(k->in, buf, n);
        }
        if (eof)
                *eof = n == 0;
        return n == 0 || strchr(k->in->str, '\n');
}

/* The next command the backend sent: {"execute", "id", "arguments"}; the
 * descriptors that came with it go to k->fds. */
static json_object *fake_command(Fixture *f, Fake *k) {
        bool eof = false;
        char *nl;
        size_t len;
        json_object *cmd;

        g_assert_cmpuint(k->fds->len, ==, 0); /* the last command's were taken */
        RUN_UNTIL(f, fake_poll(k, &eof));
        g_assert_false(eof && !strchr(k->in->str, '\n'));
        nl = strchr(k->in->str, '\n');
        *nl = '\0';
        cmd = json_tokener_parse(k->in->str);
        g_assert_nonnull(cmd);
        len = nl - k->in->str + 1;
        g_string_erase(k->in, 0, len);
        for (unsigned i = 0; i < k->unread->len;) {
                FakeFd *ffd = &g_array_index(k->unread, FakeFd, i);
                if (ffd->pos >= len) {
                        ffd->pos -= len;
                        i++;
                        continue;
                }
                if (k->bytewise) /* with the first byte of the command */
                        g_assert_cmpuint(ffd->pos, ==, 0);
                g_array_append_val(k->fds, ffd->fd);
                g_array_remove_index(k->unread, i);
        }
        return cmd;
}

static const char *fake_execute(json_object *cmd) {
        json_object *v;
        g_assert_true(json_object_object_get_ex(cmd, "execute", &v));
        return json_object_get_string(v);
}

static int64_t fake_id(json_object *cmd) {
        json_object *v;
        g_assert_true(json_object_object_get_ex(cmd, "id", &v));
        return json_object_get_int64(v);
}

static void fake_reply(Fake *k, json_object *cmd, const char *result) {
        g_autofree char *text = g_strdup_printf("{\"return\": %s, \"id\": %" G_GINT64_FORMAT "}\r\n", result,
                                                fake_id(cmd));
        fake_send(k, text);
        json_object_put(cmd);
}

/* The greeting in pieces, a negotiation with an event in the same read as
 * the reply, and a status reply split three ways. */
static void fake_handshake(Fixture *f, Fake *k, const char *status) {
        g_autofree char *reply = NULL, *text = NULL;
        json_object *cmd;
        size_t third;

        RUN_UNTIL(f, fake_try_accept(k));
        fake_send(k, "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7}}, ");
        run_for(f, 20);
        fake_send(k, "\"capabilities\": [\"oob\"]}}\r\n");
        cmd = fake_command(f, k);
        g_assert_cmpstr(fake_execute(cmd), ==, "qmp_capabilities");
        reply = g_strdup_printf("{\"event\": \"POWERDOWN\", \"timestamp\": {}}\r\n"
                                "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n",
                                fake_id(cmd));
        fake_send(k, reply);
        json_object_put(cmd);

        cmd = fake_command(f, k);
        g_assert_cmpstr(fake_execute(cmd), ==, "query-status");
        text = g_strdup_printf("{\"return\": {\"status\": \"%s\", \"running\": %s}, \"id\": %" G_GINT64_FORMAT "}\r\n",
                               status, g_str_equal(status, "running") ? "true" : "false", fake_id(cmd));
        json_object_put(cmd);
        third = strlen(text) / 3;
        for (int i = 0; i < 3; i++) {
                g_autofree char *part = g_strndup(text + i * third, i < 2 ? third : strlen(text) - 2 * third);
                fake_send(k, part);
                run_for(f, 10);
        }
}

/* A QMP error, in QEMU's words; a reply to nothing is ignored. */
static void fake_qmp_error(Fixture *f, Fake *k) {
        done_ctx d = { .f = f };
        g_autofree char *err = NULL;
        json_object *cmd;

        g_assert_cmpint(vmsig_endpoint_lifecycle(f->ep, VMSIG_OP_RESUME, on_done, &d), ==, 0);
        cmd = fake_command(f, k);
        g_assert_cmpstr(fake_execute(cmd), ==, "cont");
        err = g_strdup_printf("{\"id\": %" G_GINT64_FORMAT ", \"error\": {\"class\": \"GenericError\", "
                              "\"desc\": \"nope\"}}\r\n",
                              fake_id(cmd));
        json_object_put(cmd);
        fake_send(k, err);
        RUN_UNTIL(f, d.calls > 0);
        g_assert_cmpint(d.error, ==, -EIO);
        g_assert_cmpstr(d.message, ==, "QEMU: GenericError: nope");
        g_assert_cmpint(state(f), ==, VMSIG_STATE_PAUSED); /* nobody said otherwise */

        fake_send(k, "{\"return\": {}, \"id\": 424242}\r\n");
        run_for(f, 30);
        g_assert_true(vmsig_qmp_is_connected(f->qmp));
}

static vmsig_input_event fake_keys[1024];

/* A peer that does not read: the requests wait in our buffer, the loop
 * goes on, and they all go out once it reads. */
static void fake_unread_peer(Fixture *f, Fake *k) {
        done_ctx many[16];
        json_object *cmd;

        for (size_t i = 0; i < G_N_ELEMENTS(fake_keys); i++)
                fake_keys[i] = (vmsig_input_event) { VMSIG_INPUT_KEY, 1 + i % 149, i % 2 };
        for (size_t i = 0; i < G_N_ELEMENTS(many); i++) {
                many[i] = (done_ctx) { .f = f };
                g_assert_cmpint(
                        vmsig_endpoint_inject_input(f->ep, fake_keys, G_N_ELEMENTS(fake_keys), on_done, &many[i]),
                        ==, 0);
        }
        run_for(f, 30);
        for (size_t i = 0; i < G_N_ELEMENTS(many); i++) {
                json_object *args, *events;
                cmd = fake_command(f, k);
                g_assert_cmpstr(fake_execute(cmd), ==, "input-send-event");
                g_assert_true(json_object_object_get_ex(cmd, "arguments", &args));
                g_assert_true(json_object_object_get_ex(args, "events", &events));
                g_assert_cmpuint(json_object_array_length(events), ==, G_N_ELEMENTS(fake_keys));
                fake_reply(k, cmd, "{}");
        }
        RUN_UNTIL(f, many[G_N_ELEMENTS(many) - 1].calls > 0);
        for (size_t i = 0; i < G_N_ELEMENTS(many); i++) {
                g_assert_cmpuint(many[i].calls, ==, 1);
                g_assert_cmpint(many[i].error, ==, 0);
        }
}

/* One input-send-event that only releases: each event a key or button
 * going up (and at least one). */
static void assert_only_releases(json_object *cmd) {
        json_object *args, *events;

        g_assert_cmpstr(fake_execute(cmd), ==, "input-send-event");
        g_assert_true(json_object_object_get_ex(cmd, "arguments", &args));
        g_assert_true(json_object_object_get_ex(args, "events", &events));
        g_assert_cmpuint(json_object_array_length(events), >, 0);
        for (size_t i = 0; i < json_object_array_length(events); i++) {
                json_object *data, *down;

                g_assert_true(json_object_object_get_ex(json_object_array_get_idx(events, i), "data", &data));
                g_assert_true(json_object_object_get_ex(data, "down", &down));
                g_assert_false(json_object_get_boolean(down));
        }
}

/* The input lease ends with input waiting: the one QEMU has goes through,
 * the waiting ones never reach it and fail, named; then what the events
 * that reached QEMU left down (here key 2, and keys of the earlier
 * floods) is released, once, so that nothing pressed under that lease
 * stays pressed for the next holder. */
static void fake_lease_ends(Fixture *f, Fake *k) {
        vmsig_lease_info lease;
        done_ctx many[3];
        json_object *cmd;
        bool eof = false;

        g_assert_cmpint(vmsig_endpoint_lease_acquire(f->ep, VMSIG_LEASE_INPUT, &(vmsig_lease_holder) { .name = ":1.42" },
                                                     &lease, NULL),
                        ==, 0);
        for (size_t i = 0; i < G_N_ELEMENTS(many); i++) {
                many[i] = (done_ctx) { .f = f };
                g_assert_cmpint(vmsig_endpoint_inject_input(f->ep, fake_keys, 2, on_done, &many[i]), ==, 0);
        }
        cmd = fake_command(f, k);
        g_assert_cmpstr(fake_execute(cmd), ==, "input-send-event");
        g_assert_cmpint(vmsig_endpoint_lease_end(f->ep, VMSIG_LEASE_INPUT, lease.id, VMSIG_LEASE_REVOKED, "forced"),
                        ==, 0);
        g_assert_cmpuint(many[1].calls, ==, 0); /* from the loop, not from the call */
        RUN_UNTIL(f, many[2].calls > 0);
        g_assert_cmpint(many[1].error, ==, -ECANCELED);
        g_assert_cmpint(many[2].error, ==, -ECANCELED);
        g_assert_cmpstr(many[2].message, ==,
                        "Input for '" NAME "' was dropped before it reached the guest: the input lease was revoked "
                        "(forced).");
        g_assert_cmpuint(many[0].calls, ==, 0);
        fake_reply(k, cmd, "{}");
        RUN_UNTIL(f, many[0].calls > 0);
        g_assert_cmpint(many[0].error, ==, 0);
        cmd = fake_command(f, k);
        assert_only_releases(cmd);
        fake_reply(k, cmd, "{}");
        run_for(f, 30);
        g_assert_false(fake_poll(k, &eof)); /* nothing more was sent */
        g_assert_false(eof);
}

/* Garbage: the backend hangs up, requests in flight fail, and it comes
 * back to a QEMU that is still there. */
static void fake_garbage(Fixture *f, Fake *k) {
        done_ctx d = { .f = f };
        bool eof = false;

        g_assert_cmpint(vmsig_endpoint_lifecycle(f->ep, VMSIG_OP_PAUSE, on_done, &d), ==, 0);
        json_object_put(fake_command(f, k));
        fake_send(k, "]\r\n");
        RUN_UNTIL(f, d.calls > 0);
        g_assert_cmpint(d.error, ==, -EIO);
        RUN_UNTIL(f, fake_poll(k, &eof) && eof);
        fake_hangup(k);
        g_assert_false(vmsig_qmp_is_connected(f->qmp));
        fake_handshake(f, k, "running");
        RUN_UNTIL(f, vmsig_qmp_is_connected(f->qmp) && state(f) == VMSIG_STATE_RUNNING);
}

static void test_fake(Fixture *f, gconstpointer data) {
        Fake *k = fake_new();
        vmsig_qmp_spec spec = { .name = NAME, .qmp_socket = k->path };
        vmsig_endpoint_spec es;

        g_assert_cmpint(vmsig_qmp_new(&spec, &es, &f->qmp), ==, 0);
        g_assert_null(es.adapters[VMSIG_ADAPTER_MEMCTX].ops);
        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &es, &f->ep), ==, 0);
        fake_handshake(f, k, "prelaunch");
        RUN_UNTIL(f, vmsig_qmp_is_connected(f->qmp) && state(f) == VMSIG_STATE_PAUSED);

        fake_qmp_error(f, k);
        fake_unread_peer(f, k);
        fake_lease_ends(f, k);
        fake_garbage(f, k);

        /* A SHUTDOWN, then the hangup: QEMU is gone, even though a socket
         * is still listening. */
        fake_send(k, "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}}\r\n");
        RUN_UNTIL(f, state(f) == VMSIG_STATE_SHUT_OFF);
        fake_hangup(k);
        run_for(f, 30);
        g_assert_cmpint(state(f), ==, VMSIG_STATE_SHUT_OFF);
        assert_last_lifecycle(f, VMSIG_OP_POWER_OFF, VMSIG_STATE_RUNNING, VMSIG_STATE_SHUT_OFF);
        fake_free(k);
}

/* --- the display adapter against the fake ----------------------------------- */

typedef struct capture_ctx {
        Fixture *f;
        unsigned calls;
        int error;
        char message[256];
        vmsig_image_encoding encoding;
        GByteArray *data; /* the image, read during the callback */
        bool sealed;      /* a write to it failed with EPERM */
        bool again;       /* start another capture from the callback */
        int again_r;
        struct capture_ctx *next_ctx;
} capture_ctx;

static void on_image(const vmsig_result *r, const vmsig_display_image *image, void *userdata) {
        capture_ctx *x = userdata;

        x->calls++;
        x->error = r->error;
        g_strlcpy(x->message, r->message ? r->message : "", sizeof x->message);
        g_assert_true((r->error == 0) == (image != NULL));
        if (image) {
                x->encoding = image->encoding;
                x->data = g_byte_array_sized_new(image->size);
                g_byte_array_set_size(x->data, image->size);
                g_assert_cmpint(pread(image->fd, x->data->data, image->size, 0), ==, (ssize_t) image->size);
                x->sealed = pwrite(image->fd, "x", 1, 0) < 0 && errno == EPERM;
        }
        if (x->again)
                x->again_r = vmsig_endpoint_capture_display(x->f->ep, on_image, x->next_ctx);
}

static void capture_ctx_done(capture_ctx *x) {
        if (x->data)
                g_byte_array_unref(x->data);
        x->data = NULL;
}

static void capture(Fixture *f, capture_ctx *x) {
        *x = (capture_ctx) { .f = f };
        g_assert_cmpint(vmsig_endpoint_capture_display(f->ep, on_image, x), ==, 0);
        g_assert_cmpuint(x->calls, ==, 0); /* from the loop, never from the call */
}

/* The backend's add-fd: exactly one descriptor came with it, a write-only
 * one of the backend's memfd, and it gets fdset. */
static int fake_add_fd(Fixture *f, Fake *k, int64_t fdset) {
        g_autofree char *text = NULL, *target = NULL;
        char link[64];
        json_object *cmd = fake_command(f, k), *args, *v;
        int fd;

        g_assert_cmpstr(fake_execute(cmd), ==, "add-fd");
        g_assert_cmpuint(k->fds->len, ==, 1);
        fd = g_array_index(k->fds, int, 0);
        g_array_set_size(k->fds, 0);
        g_assert_cmpint(fcntl(fd, F_GETFL) & O_ACCMODE, ==, O_WRONLY);
        g_snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        target = g_file_read_link(link, NULL);
        g_assert_true(g_str_has_prefix(target, "/memfd:vmsig-screendump"));
        g_assert_true(json_object_object_get_ex(cmd, "arguments", &args));
        g_assert_true(json_object_object_get_ex(args, "opaque", &v));
        g_assert_false(json_object_object_get_ex(args, "fdset-id", &v)); /* QEMU picks */
        text = g_strdup_printf("{\"fd\": 42, \"fdset-id\": %" G_GINT64_FORMAT "}", fdset);
        fake_reply(k, cmd, text);
        return fd;
}

/* The screendump into fdset, PNG asked for or not. */
static json_object *fake_screendump(Fixture *f, Fake *k, int64_t fdset, bool png) {
        g_autofree char *filename = g_strdup_printf("/dev/fdset/%" G_GINT64_FORMAT, fdset);
        json_object *cmd = fake_command(f, k), *args, *v;

        g_assert_cmpstr(fake_execute(cmd), ==, "screendump");
        g_assert_cmpuint(k->fds->len, ==, 0);
        g_assert_true(json_object_object_get_ex(cmd, "arguments", &args));
        g_assert_cmpint(json_object_object_length(args), ==, png ? 2 : 1);
        g_assert_true(json_object_object_get_ex(args, "filename", &v));
        g_assert_cmpstr(json_object_get_string(v), ==, filename);
        g_assert_true(json_object_object_get_ex(args, "format", &v) == png);
        if (png)
                g_assert_cmpstr(json_object_get_string(v), ==, "png");
        return cmd;
}

static void fake_error(Fake *k, json_object *cmd, const char *desc) {
        g_autofree char *text = g_strdup_printf("{\"id\": %" G_GINT64_FORMAT ", \"error\": {\"class\": "
                                                "\"GenericError\", \"desc\": \"%s\"}}\r\n",
                                                fake_id(cmd), desc);
        fake_send(k, text);
        json_object_put(cmd);
}

static void fake_remove_fd(Fixture *f, Fake *k, int64_t fdset) {
        json_object *cmd = fake_command(f, k), *args, *v;

        g_assert_cmpstr(fake_execute(cmd), ==, "remove-fd");
        g_assert_cmpuint(k->fds->len, ==, 0);
        g_assert_true(json_object_object_get_ex(cmd, "arguments", &args));
        g_assert_true(json_object_object_get_ex(args, "fdset-id", &v));
        g_assert_cmpint(json_object_get_int64(v), ==, fdset);
        fake_reply(k, cmd, "{}");
}

static void fake_write(int fd, const void *buf, size_t len) {
        g_assert_cmpint(write(fd, buf, len), ==, (ssize_t) len);
}

static void assert_nothing_sent(Fixture *f, Fake *k) {
        bool eof = false;

        run_for(f, 30);
        g_assert_false(fake_poll(k, &eof));
        g_assert_false(eof);
        g_assert_cmpuint(k->unread->len, ==, 0);
}

static const char fake_png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x02\xd0\0\0\x01\x90";
static const char fake_ppm[] = "P6\n2 1\n255\n\xff\0\0\0\xff\0";

/* A capture that ended in an error from the loop, in these words. */
static void assert_capture_failed(Fixture *f, capture_ctx *x, const char *message) {
        RUN_UNTIL(f, x->calls > 0);
        g_assert_cmpint(x->error, ==, -EIO);
        g_assert_cmpstr(x->message, ==, message);
}

/* A capture whose image was written and answered: its encoding and bytes. */
static void assert_captured(Fixture *f, capture_ctx *x, vmsig_image_encoding encoding, const char *image, size_t size) {
        RUN_UNTIL(f, x->calls > 0);
        g_assert_cmpint(x->error, ==, 0);
        g_assert_cmpint(x->encoding, ==, encoding);
        g_assert_cmpmem(x->data->data, x->data->len, image, size);
}

/* PNG into the memfd passed with add-fd; a second capture meanwhile is
 * refused and sends nothing. The image is sealed. Its done starts the next
 * capture, whose add-fd comes after this one's remove-fd; QEMU refuses that
 * screendump (no display): its words, and the fdset goes all the same. */
static void fake_display_png(Fixture *f, Fake *k) {
        capture_ctx x, y;
        json_object *cmd;
        int fd;

        capture(f, &x);
        x.again = true;
        x.next_ctx = &y;
        y = (capture_ctx) { .f = f };
        g_assert_cmpint(vmsig_endpoint_capture_display(f->ep, on_image, &y), ==, -EBUSY);
        fd = fake_add_fd(f, k, 0);
        cmd = fake_screendump(f, k, 0, true);
        g_assert_cmpint(vmsig_endpoint_capture_display(f->ep, on_image, &y), ==, -EBUSY);
        fake_write(fd, fake_png, sizeof fake_png - 1);
        close(fd);
        fake_reply(k, cmd, "{}");
        assert_captured(f, &x, VMSIG_IMAGE_PNG, fake_png, sizeof fake_png - 1);
        g_assert_true(x.sealed);
        g_assert_cmpint(x.again_r, ==, 0);
        g_assert_cmpuint(y.calls, ==, 0);
        fake_remove_fd(f, k, 0);
        capture_ctx_done(&x);

        close(fake_add_fd(f, k, 1));
        fake_error(k, fake_screendump(f, k, 1, true), "There is no console to take a screendump from");
        assert_capture_failed(f, &y, "QEMU: GenericError: There is no console to take a screendump from");
        g_assert_null(y.data);
        fake_remove_fd(f, k, 1);
        assert_nothing_sent(f, k);
}

/* add-fd refused: nothing to remove. */
static void fake_display_add_fd_refused(Fixture *f, Fake *k) {
        capture_ctx x;
        json_object *cmd;

        capture(f, &x);
        cmd = fake_command(f, k);
        g_assert_cmpstr(fake_execute(cmd), ==, "add-fd");
        g_assert_cmpuint(k->fds->len, ==, 1);
        close(g_array_index(k->fds, int, 0));
        g_array_set_size(k->fds, 0);
        fake_error(k, cmd, "No file descriptor supplied via SCM_RIGHTS");
        assert_capture_failed(f, &x, "QEMU: GenericError: No file descriptor supplied via SCM_RIGHTS");
        assert_nothing_sent(f, k);
}

/* A QEMU older than 7.1: no format argument. The same fdset again, PPM,
 * with what the failed attempt wrote gone; the next capture on this
 * connection asks for PPM at once. Remembered; and what is not the image
 * asked for is an error, nothing written too. */
static void fake_display_ppm(Fixture *f, Fake *k) {
        capture_ctx x;
        json_object *cmd;
        int fd;

        capture(f, &x);
        fd = fake_add_fd(f, k, 2);
        fake_write(fd, "junk", 4);
        fake_error(k, fake_screendump(f, k, 2, true), "Parameter 'format' is unexpected");
        cmd = fake_screendump(f, k, 2, false);
        fake_write(fd, fake_ppm, sizeof fake_ppm - 1);
        close(fd);
        fake_reply(k, cmd, "{}");
        assert_captured(f, &x, VMSIG_IMAGE_PPM, fake_ppm, sizeof fake_ppm - 1);
        capture_ctx_done(&x);
        fake_remove_fd(f, k, 2);

        capture(f, &x);
        fd = fake_add_fd(f, k, 3);
        cmd = fake_screendump(f, k, 3, false);
        fake_write(fd, "GIF89a", 6);
        close(fd);
        fake_reply(k, cmd, "{}");
        assert_capture_failed(f, &x, "QEMU's screendump is not a PPM image.");
        fake_remove_fd(f, k, 3);

        capture(f, &x);
        close(fake_add_fd(f, k, 4));
        fake_reply(k, fake_screendump(f, k, 4, false), "{}");
        assert_capture_failed(f, &x, "QEMU answered screendump but wrote no image.");
        fake_remove_fd(f, k, 4);
}

/* The connection drops under the screendump: it fails like any request in
 * flight, and while reconnecting a capture is refused from the loop. A new
 * connection may be another QEMU: PNG is asked for again. Detached in
 * flight: -ENODEV. */
static void fake_display_drops(Fixture *f, Fake *k) {
        capture_ctx x;

        capture(f, &x);
        close(fake_add_fd(f, k, 5));
        json_object_put(fake_screendump(f, k, 5, false));
        fake_hangup(k);
        assert_capture_failed(f, &x, "QEMU closed the QMP connection before answering.");
        capture(f, &x);
        RUN_UNTIL(f, x.calls > 0);
        g_assert_cmpint(x.error, ==, -EIO);
        g_assert_true(g_str_has_prefix(x.message, "QEMU of '" NAME "' is not connected yet"));

        fake_handshake(f, k, "running");
        RUN_UNTIL(f, vmsig_qmp_is_connected(f->qmp));
        capture(f, &x);
        close(fake_add_fd(f, k, 6));
        json_object_put(fake_screendump(f, k, 6, true));

        detach(f);
        g_assert_cmpuint(x.calls, ==, 1);
        g_assert_cmpint(x.error, ==, -ENODEV);
        g_assert_cmpstr(x.message, ==, "Endpoint '" NAME "' was detached.");
}

static void test_fake_display(Fixture *f, gconstpointer data) {
        Fake *k = fake_new();
        vmsig_qmp_spec spec = { .name = NAME, .qmp_socket = k->path };
        vmsig_endpoint_spec es;
        size_t n0 = count_fds();

        k->bytewise = true;
        g_assert_cmpint(vmsig_qmp_new(&spec, &es, &f->qmp), ==, 0);
        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &es, &f->ep), ==, 0);
        fake_handshake(f, k, "running");
        RUN_UNTIL(f, vmsig_qmp_is_connected(f->qmp) && state(f) == VMSIG_STATE_RUNNING);

        fake_display_png(f, k);
        fake_display_add_fd_refused(f, k);
        fake_hangup(k); /* the backend reconnects */
        fake_handshake(f, k, "running");
        RUN_UNTIL(f, vmsig_qmp_is_connected(f->qmp));
        fake_display_ppm(f, k);
        fake_display_drops(f, k);

        /* Nothing of it stays open. */
        run_for(f, 50);
        fake_hangup(k);
        g_assert_cmpuint(count_fds(), ==, n0);
        fake_free(k);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/qmp/spec", test_spec);
        g_test_add_func("/qmp/spec/adapters", test_spec_adapters);
        g_test_add_func("/qmp/qcode/table", test_qcode_table);
        VT_TEST_ADD("/qmp/qcode/schema", test_qcode_schema);
        VT_FIXTURE_TESTS("/qmp/", test_connect, test_lifecycle, test_follows_events, test_input, test_write_ram,
                         test_kill_restart, test_kill, test_quit, test_absent_then_start, test_detach, test_read_vcpu,
                         test_configured_map, test_world_readable, test_no_fd_leak, test_fake);
        VT_TEST_ADD("/qmp/fake/display", test_fake_display);
        return g_test_run();
}
