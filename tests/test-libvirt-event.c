/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virEventRegisterImpl adapter (src/host/libvirt/libvirt-event.c):
 * libvirt's handle and timeout semantics on an sd-event loop, through
 * libvirt's own virEvent* entry points, and lifecycle events of libvirt's
 * built-in test driver (test:///default, no daemon) arriving through that
 * loop; the same calls made from another thread (as the libvirt backend's
 * worker makes them), whose changes the loop applies; and that worker.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "event-loop.h"
#include "libvirt-event.h"
#include "libvirt-worker.h"
#include "vt-util.h"

#define QUIET_USEC (30 * 1000)
#define WAIT_USEC (5 * G_USEC_PER_SEC)

/* The one loop: libvirt's event implementation is process-global. */
static sd_event *loop;

/* Lets everything pending (a reaper, earlier tests' leftovers) run. */
static void drain(void) {
        while (sd_event_run(loop, 0) > 0)
                ;
}

typedef struct Seen {
        int calls;
        int id;
        int fd;
        int events;
        gint64 times[8];
        bool remove_self; /* the callback removes its own watch */
} Seen;

static void on_handle(int watch, int fd, int events, void *opaque) {
        Seen *s = opaque;

        s->id = watch;
        s->fd = fd;
        s->events = events;
        s->calls++;
        if (s->remove_self)
                g_assert_cmpint(virEventRemoveHandle(watch), ==, 0);
}

static void on_timeout(int timer, void *opaque) {
        Seen *s = opaque;

        if (s->calls < (int) G_N_ELEMENTS(s->times))
                s->times[s->calls] = g_get_monotonic_time();
        s->id = timer;
        s->calls++;
        if (s->remove_self)
                g_assert_cmpint(virEventRemoveTimeout(timer), ==, 0);
}

/* Set around the remove calls: a free callback must never run inside. */
static bool in_remove;

static void on_free(void *opaque) {
        int *freed = opaque;

        g_assert_false(in_remove);
        (*freed)++;
}

static void make_pipe(int p[2]) {
        g_assert_cmpint(pipe2(p, O_CLOEXEC | O_NONBLOCK), ==, 0);
}

static void test_register_idempotent(void) {
        sd_event *other = NULL;

        g_assert_cmpint(vmsig_libvirt_event_register(loop), ==, 0);
        g_assert_true(vmsig_libvirt_event_loop() == loop);
        g_assert_cmpint(sd_event_new(&other), >=, 0);
        g_assert_cmpint(vmsig_libvirt_event_register(other), ==, -EBUSY);
        g_assert_true(vmsig_libvirt_event_loop() == loop);
        sd_event_unref(other);
}

static int add_handle(int fd, int events, Seen *s) {
        int id = virEventAddHandle(fd, events, on_handle, s, NULL);

        g_assert_cmpint(id, >, 0);
        return id;
}

/* A while of the loop without a call. */
static void assert_quiet(Seen *s) {
        int calls = s->calls;

        vt_event_run_for(loop, QUIET_USEC);
        g_assert_cmpint(s->calls, ==, calls);
}

/* The loop runs until a call comes, which must carry flag. */
static void wait_call(Seen *s, int flag) {
        VT_EVENT_RUN_UNTIL(loop, s->calls > 0, WAIT_USEC);
        g_assert_true(s->events & flag);
}

static void test_handle_readable_hangup(void) {
        Seen s = { 0 };
        int p[2], id;

        make_pipe(p);
        id = add_handle(p[0], VIR_EVENT_HANDLE_READABLE, &s);
        assert_quiet(&s);

        g_assert_cmpint(write(p[1], "x", 1), ==, 1);
        wait_call(&s, VIR_EVENT_HANDLE_READABLE);
        g_assert_cmpint(s.id, ==, id);
        g_assert_cmpint(s.fd, ==, p[0]);
        g_assert_cmpint(s.events, ==, VIR_EVENT_HANDLE_READABLE);

        /* The writer gone: a hangup, whatever the mask. */
        s.calls = 0;
        close(p[1]);
        wait_call(&s, VIR_EVENT_HANDLE_HANGUP);

        g_assert_cmpint(virEventRemoveHandle(id), ==, 0);
        drain();
        s.calls = 0;
        assert_quiet(&s);
        close(p[0]);
}

/* A pipe's write end is always writable: the mask alone decides. */
static void test_handle_update(void) {
        Seen s = { 0 };
        int p[2], id;

        make_pipe(p);
        id = add_handle(p[1], 0, &s);
        assert_quiet(&s);

        virEventUpdateHandle(id, VIR_EVENT_HANDLE_WRITABLE);
        wait_call(&s, VIR_EVENT_HANDLE_WRITABLE);
        g_assert_cmpint(s.events, ==, VIR_EVENT_HANDLE_WRITABLE);

        virEventUpdateHandle(id, 0);
        drain();
        assert_quiet(&s);

        /* Readable only, on a write end: nothing, until the reader goes
         * (epoll reports errors whatever the mask). */
        virEventUpdateHandle(id, VIR_EVENT_HANDLE_READABLE);
        assert_quiet(&s);
        s.calls = 0;
        close(p[0]);
        wait_call(&s, VIR_EVENT_HANDLE_ERROR);

        g_assert_cmpint(virEventRemoveHandle(id), ==, 0);
        close(p[1]);
}

static void test_timeout_zero(void) {
        Seen s = { 0 };
        int id;

        drain();
        id = virEventAddTimeout(0, on_timeout, &s, NULL);
        g_assert_cmpint(id, >, 0);
        /* Every iteration, and none of them waits. */
        for (int i = 0; i < 5; i++)
                g_assert_cmpint(sd_event_run(loop, 0), ==, 1);
        g_assert_cmpint(s.calls, ==, 5);
        g_assert_cmpint(s.id, ==, id);
        g_assert_cmpint(virEventRemoveTimeout(id), ==, 0);
        drain();
        s.calls = 0;
        vt_event_run_for(loop, QUIET_USEC);
        g_assert_cmpint(s.calls, ==, 0);
}

static void test_timeout_disabled(void) {
        Seen s = { 0 };
        int id, calls;

        id = virEventAddTimeout(-1, on_timeout, &s, NULL);
        g_assert_cmpint(id, >, 0);
        vt_event_run_for(loop, QUIET_USEC);
        g_assert_cmpint(s.calls, ==, 0);

        virEventUpdateTimeout(id, 0);
        VT_EVENT_RUN_UNTIL(loop, s.calls > 0, WAIT_USEC);
        virEventUpdateTimeout(id, -1);
        calls = s.calls;
        vt_event_run_for(loop, QUIET_USEC);
        g_assert_cmpint(s.calls, ==, calls);
        g_assert_cmpint(virEventRemoveTimeout(id), ==, 0);
}

/* Periodic: it fires again and again, each time a period after the last. */
static void test_timeout_periodic(void) {
        Seen s = { 0 };
        gint64 added = g_get_monotonic_time();
        int id = virEventAddTimeout(20, on_timeout, &s, NULL);

        g_assert_cmpint(id, >, 0);
        VT_EVENT_RUN_UNTIL(loop, s.calls >= 3, WAIT_USEC);
        g_assert_cmpint(s.times[0] - added, >=, 19000);
        g_assert_cmpint(s.times[1] - s.times[0], >=, 19000);
        g_assert_cmpint(s.times[2] - s.times[1], >=, 19000);

        /* A new period counts from the update. */
        s.calls = 0;
        added = g_get_monotonic_time();
        virEventUpdateTimeout(id, 60);
        VT_EVENT_RUN_UNTIL(loop, s.calls >= 1, WAIT_USEC);
        g_assert_cmpint(s.times[0] - added, >=, 59000);
        g_assert_cmpint(virEventRemoveTimeout(id), ==, 0);
}

static void test_remove_frees_later(void) {
        Seen s = { 0 };
        int freed_handle = 0, freed_timeout = 0, p[2], h, t;

        make_pipe(p);
        /* on_free() takes the counter as its opaque: the handle's and the
         * timeout's free callbacks get their own. */
        h = virEventAddHandle(p[0], VIR_EVENT_HANDLE_READABLE, on_handle, &freed_handle, on_free);
        t = virEventAddTimeout(5, on_timeout, &freed_timeout, on_free);
        g_assert_cmpint(h, >, 0);
        g_assert_cmpint(t, >, 0);
        in_remove = true;
        g_assert_cmpint(virEventRemoveHandle(h), ==, 0);
        g_assert_cmpint(virEventRemoveTimeout(t), ==, 0);
        in_remove = false;
        g_assert_cmpint(freed_handle, ==, 0);
        g_assert_cmpint(freed_timeout, ==, 0);
        /* Removed twice, or never there: refused, and freed once. */
        g_assert_cmpint(virEventRemoveHandle(h), ==, -1);
        g_assert_cmpint(virEventRemoveTimeout(t), ==, -1);
        g_assert_cmpint(virEventRemoveHandle(999999), ==, -1);
        g_assert_cmpint(virEventRemoveTimeout(999999), ==, -1);
        /* A handle id is no timeout id, and the other way round. */
        g_assert_cmpint(virEventRemoveTimeout(h), ==, -1);
        drain();
        g_assert_cmpint(freed_handle, ==, 1);
        g_assert_cmpint(freed_timeout, ==, 1);
        vt_event_run_for(loop, QUIET_USEC);
        g_assert_cmpint(freed_handle, ==, 1);
        g_assert_cmpint(freed_timeout, ==, 1);
        g_assert_cmpint(s.calls, ==, 0);
        close(p[0]);
        close(p[1]);
}

/* libvirt removes a watch from its own callback, as its RPC client does
 * when a connection closes: no call follows, the free comes later. */
static void test_remove_from_callback(void) {
        Seen hs = { .remove_self = true }, ts = { .remove_self = true };
        int p[2];

        make_pipe(p);
        g_assert_cmpint(write(p[1], "x", 1), ==, 1);
        g_assert_cmpint(virEventAddHandle(p[0], VIR_EVENT_HANDLE_READABLE, on_handle, &hs, NULL), >, 0);
        g_assert_cmpint(virEventAddTimeout(0, on_timeout, &ts, NULL), >, 0);
        VT_EVENT_RUN_UNTIL(loop, hs.calls > 0 && ts.calls > 0, WAIT_USEC);
        vt_event_run_for(loop, QUIET_USEC);
        g_assert_cmpint(hs.calls, ==, 1);
        g_assert_cmpint(ts.calls, ==, 1);
        close(p[0]);
        close(p[1]);
}

static void test_ids_unique(void) {
        g_autoptr(GHashTable) ids = g_hash_table_new(g_direct_hash, g_direct_equal);
        Seen s = { 0 };
        int fds[4], handles[4], timeouts[4];

        make_pipe(fds);
        make_pipe(fds + 2);
        for (int i = 0; i < 4; i++) {
                handles[i] = virEventAddHandle(fds[i], 0, on_handle, &s, NULL);
                timeouts[i] = virEventAddTimeout(-1, on_timeout, &s, NULL);
                g_assert_cmpint(handles[i], >, 0);
                g_assert_cmpint(timeouts[i], >, 0);
                g_assert_true(g_hash_table_add(ids, GINT_TO_POINTER(handles[i])));
                g_assert_true(g_hash_table_add(ids, GINT_TO_POINTER(timeouts[i])));
        }
        for (int i = 0; i < 4; i++) {
                g_assert_cmpint(virEventRemoveHandle(handles[i]), ==, 0);
                g_assert_cmpint(virEventRemoveTimeout(timeouts[i]), ==, 0);
        }
        /* Never again, not even after the removal. */
        for (int i = 0; i < 4; i++) {
                int h = virEventAddHandle(fds[i], 0, on_handle, &s, NULL);
                int t = virEventAddTimeout(-1, on_timeout, &s, NULL);

                g_assert_true(g_hash_table_add(ids, GINT_TO_POINTER(h)));
                g_assert_true(g_hash_table_add(ids, GINT_TO_POINTER(t)));
                g_assert_cmpint(virEventRemoveHandle(h), ==, 0);
                g_assert_cmpint(virEventRemoveTimeout(t), ==, 0);
        }
        drain();
        for (int i = 0; i < 4; i++)
                close(fds[i]);
        g_assert_cmpint(s.calls, ==, 0);
}

typedef struct Lifecycle {
        int events[8];
        int n;
} Lifecycle;

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        Lifecycle *l = opaque;

        g_assert_cmpstr(virDomainGetName(dom), ==, "test");
        if (l->n < (int) G_N_ELEMENTS(l->events))
                l->events[l->n] = event;
        l->n++;
        return 0;
}

/* The test driver queues its events and flushes them from a timeout of
 * its event implementation: they arrive only while the loop runs. */
static void test_driver_lifecycle(void) {
        Lifecycle l = { 0 };
        virConnectPtr conn = virConnectOpen("test:///default");
        virDomainPtr dom;
        int cb;

        g_assert_nonnull(conn);
        cb = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                              VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), &l, NULL);
        g_assert_cmpint(cb, >=, 0);
        dom = virDomainLookupByName(conn, "test");
        g_assert_nonnull(dom);

        g_assert_cmpint(virDomainSuspend(dom), ==, 0);
        g_assert_cmpint(l.n, ==, 0);
        VT_EVENT_RUN_UNTIL(loop, l.n >= 1, WAIT_USEC);
        g_assert_cmpint(l.events[0], ==, VIR_DOMAIN_EVENT_SUSPENDED);

        g_assert_cmpint(virDomainResume(dom), ==, 0);
        g_assert_cmpint(l.n, ==, 1);
        VT_EVENT_RUN_UNTIL(loop, l.n >= 2, WAIT_USEC);
        g_assert_cmpint(l.events[1], ==, VIR_DOMAIN_EVENT_RESUMED);
        vt_event_run_for(loop, QUIET_USEC);
        g_assert_cmpint(l.n, ==, 2);

        /* No thread of libvirt's: the loop was the only driver. */
        g_assert_cmpuint(vt_threads(), ==, 1);

        g_assert_cmpint(virConnectDomainEventDeregisterAny(conn, cb), ==, 0);
        virDomainFree(dom);
        g_assert_cmpint(virConnectClose(conn), ==, 0);
        drain();
}

/* Cross-thread: libvirt calls the adapter from whichever thread runs a
 * call. Each helper runs one call on a thread of its own and waits for it. */

static GThread *loop_thread;

typedef struct Remote {
        int fd, events, id, result;
        Seen *seen;
        int *freed;
} Remote;

static gpointer remote_add_handle(gpointer data) {
        Remote *r = data;

        r->id = virEventAddHandle(r->fd, r->events, on_handle, r->seen, NULL);
        return NULL;
}

static gpointer remote_update_handle(gpointer data) {
        Remote *r = data;

        virEventUpdateHandle(r->id, r->events);
        return NULL;
}

static gpointer remote_remove_handle(gpointer data) {
        Remote *r = data;

        r->result = virEventRemoveHandle(r->id);
        return NULL;
}

static gpointer remote_add_timeout(gpointer data) {
        Remote *r = data;

        r->id = virEventAddTimeout(r->events, on_timeout, r->seen, NULL);
        return NULL;
}

static gpointer remote_remove_timeout(gpointer data) {
        Remote *r = data;

        r->result = virEventRemoveTimeout(r->id);
        return NULL;
}

static void on_thread(GThreadFunc fn, Remote *r) {
        g_thread_join(g_thread_new("remote", fn, r));
}

/* Callbacks run on the loop's thread only. */
static void on_free_loop(void *opaque) {
        g_assert_true(g_thread_self() == loop_thread);
        on_free(opaque);
}

/* A handle added and switched on from another thread: its id at once,
 * its source from the loop, which the other thread woke. */
static void test_thread_add_update(void) {
        Seen s = { 0 };
        int p[2];
        Remote r = { .events = 0, .seen = &s };

        make_pipe(p);
        g_assert_cmpint(write(p[1], "x", 1), ==, 1);
        r.fd = p[0];
        on_thread(remote_add_handle, &r);
        g_assert_cmpint(r.id, >, 0);
        assert_quiet(&s);
        r.events = VIR_EVENT_HANDLE_READABLE;
        on_thread(remote_update_handle, &r);
        wait_call(&s, VIR_EVENT_HANDLE_READABLE);
        g_assert_cmpint(s.id, ==, r.id);
        on_thread(remote_remove_handle, &r);
        g_assert_cmpint(r.result, ==, 0);
        drain();
        s.calls = 0;
        assert_quiet(&s);
        close(p[0]);
        close(p[1]);
}

static void on_handle_never(int watch, int fd, int events, void *opaque) {
        g_assert_not_reached();
}

/* Removed from another thread while readable, before the loop ran (once
 * added on the loop, once added on that thread too): no call follows,
 * and the free callback runs once, on the loop's thread. */
static void test_thread_remove_before_apply(void) {
        int freed = 0, p[2];
        Remote r = { 0 };

        make_pipe(p);
        g_assert_cmpint(write(p[1], "x", 1), ==, 1);
        r.id = virEventAddHandle(p[0], VIR_EVENT_HANDLE_READABLE, on_handle_never, &freed, on_free_loop);
        g_assert_cmpint(r.id, >, 0);
        in_remove = true;
        on_thread(remote_remove_handle, &r);
        g_assert_cmpint(r.result, ==, 0);
        on_thread(remote_remove_handle, &r);
        g_assert_cmpint(r.result, ==, -1);
        in_remove = false;
        g_assert_cmpint(freed, ==, 0);
        vt_event_run_for(loop, QUIET_USEC);
        g_assert_cmpint(freed, ==, 1);

        r.id = virEventAddTimeout(0, on_timeout, &freed, NULL);
        g_assert_cmpint(r.id, >, 0);
        on_thread(remote_remove_timeout, &r);
        g_assert_cmpint(r.result, ==, 0);
        vt_event_run_for(loop, QUIET_USEC);
        g_assert_cmpint(freed, ==, 1); /* on_timeout() never ran on it */
        close(p[0]);
        close(p[1]);
}

/* Timeouts from another thread: a zero one fires on the loop until the
 * other thread removes it. */
static void test_thread_timeout(void) {
        Seen s = { 0 };
        Remote r = { .events = 0, .seen = &s };
        int calls;

        on_thread(remote_add_timeout, &r);
        g_assert_cmpint(r.id, >, 0);
        VT_EVENT_RUN_UNTIL(loop, s.calls >= 3, WAIT_USEC);
        on_thread(remote_remove_timeout, &r);
        g_assert_cmpint(r.result, ==, 0);
        drain();
        calls = s.calls;
        vt_event_run_for(loop, QUIET_USEC);
        g_assert_cmpint(s.calls, ==, calls);
}

typedef struct Job {
        lv_job base;
        int order;
        int *log, *n;
        GThread *ran_on;
        virDomainPtr dom;
        int (*call)(virDomainPtr dom);
        int result;
} Job;

static void job_run(lv_job *j) {
        Job *job = (Job *) j;

        job->ran_on = g_thread_self();
        if (job->call)
                job->result = job->call(job->dom);
}

static void job_done(lv_job *j) {
        Job *job = (Job *) j;

        g_assert_true(g_thread_self() == loop_thread);
        job->log[(*job->n)++] = job->base.cancelled ? -job->order : job->order;
}

/* Jobs run off the loop, in order, and complete on the loop; a job left
 * when the worker goes completes cancelled. */
static void test_worker_order(void) {
        lv_worker *w = NULL;
        Job jobs[4];
        int log[4], n = 0;

        g_assert_cmpint(lv_worker_new(loop, &w), ==, 0);
        for (int i = 0; i < 3; i++) {
                jobs[i] = (Job) { .base = { .run = job_run, .done = job_done }, .order = i + 1, .log = log, .n = &n };
                lv_worker_submit(w, &jobs[i].base);
        }
        VT_EVENT_RUN_UNTIL(loop, n == 3, WAIT_USEC);
        for (int i = 0; i < 3; i++) {
                g_assert_cmpint(log[i], ==, i + 1);
                g_assert_true(jobs[i].ran_on != loop_thread);
        }
        jobs[3] = (Job) { .base = { .done = job_done }, .order = 4, .log = log, .n = &n };
        lv_worker_post(w, &jobs[3].base);
        VT_EVENT_RUN_UNTIL(loop, n == 4, WAIT_USEC);
        g_assert_cmpint(log[3], ==, 4);

        /* Not answered on the loop yet when the worker goes, run or not:
         * cancelled, from the free. */
        n = 0;
        for (int i = 0; i < 2; i++) {
                jobs[i] = (Job) { .base = { .run = job_run, .done = job_done }, .order = i + 1, .log = log, .n = &n };
                lv_worker_submit(w, &jobs[i].base);
        }
        lv_worker_free(w);
        g_assert_cmpint(n, ==, 2);
        g_assert_cmpint(log[0], ==, -1);
        g_assert_cmpint(log[1], ==, -2);
}

/* The test driver driven from the worker, as the backend drives libvirtd:
 * the calls on the worker, their events through the loop. */
static void test_driver_from_worker(void) {
        Lifecycle l = { 0 };
        virConnectPtr conn = virConnectOpen("test:///default");
        lv_worker *w = NULL;
        Job job;
        int log[2], n = 0, cb;

        g_assert_nonnull(conn);
        g_assert_cmpint(lv_worker_new(loop, &w), ==, 0);
        cb = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                              VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), &l, NULL);
        g_assert_cmpint(cb, >=, 0);
        job = (Job) { .base = { .run = job_run, .done = job_done }, .order = 1, .log = log, .n = &n,
                      .dom = virDomainLookupByName(conn, "test"), .call = virDomainSuspend };
        g_assert_nonnull(job.dom);
        lv_worker_submit(w, &job.base);
        VT_EVENT_RUN_UNTIL(loop, n == 1 && l.n >= 1, WAIT_USEC);
        g_assert_cmpint(job.result, ==, 0);
        g_assert_cmpint(l.events[0], ==, VIR_DOMAIN_EVENT_SUSPENDED);
        job.call = virDomainResume;
        lv_worker_submit(w, &job.base);
        VT_EVENT_RUN_UNTIL(loop, n == 2 && l.n >= 2, WAIT_USEC);
        g_assert_cmpint(l.events[1], ==, VIR_DOMAIN_EVENT_RESUMED);
        lv_worker_free(w);
        g_assert_cmpint(virConnectDomainEventDeregisterAny(conn, cb), ==, 0);
        virDomainFree(job.dom);
        g_assert_cmpint(virConnectClose(conn), ==, 0);
        drain();
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        loop_thread = g_thread_self();
        g_assert_cmpint(sd_event_new(&loop), >=, 0);
        g_assert_cmpint(vmsig_libvirt_event_register(loop), ==, 0);

        VT_TESTS("/libvirt-event/", test_register_idempotent, test_handle_readable_hangup, test_handle_update,
                 test_timeout_zero, test_timeout_disabled, test_timeout_periodic, test_remove_frees_later,
                 test_remove_from_callback, test_ids_unique);
        g_test_add_func("/libvirt-event/test-driver-lifecycle", test_driver_lifecycle);
        VT_TESTS("/libvirt-event/", test_thread_add_update, test_thread_remove_before_apply, test_thread_timeout,
                 test_worker_order, test_driver_from_worker);
        r = g_test_run();
        sd_event_unref(loop);
        return r;
}
