/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-libvirt: the libvirt backend (the armed build) against the
 * private libvirtd of tests/libvirt-harness.h (run as root; the program
 * moves into a mount namespace of its own first), in process: the core on
 * an sd-event loop with the backend attached to qemu:///system, as vmsigd
 * runs them, without the D-Bus front.
 *
 *   event -> endpoint  a domain started through libvirt's API: from its
 *              STARTED lifecycle event (this program's own callback on a
 *              connection that only listens, driven by the same loop) to the ROSTER
 *              "added" event of its endpoint; N domains one after another,
 *              median and max.
 *   event -> EndpointAdded  the same to the D-Bus signal: vmsigd (with
 *              <libvirt enabled="yes"/>) on a private system bus, and a
 *              client of the bench on that bus subscribed to EndpointAdded;
 *              from the bench's STARTED callback to the signal's arrival.
 *              Baseline, from the same start: a relay (this program with
 *              --relay, a process of its own) that takes the same STARTED
 *              event on its own connection, asks libvirtd for the domain's
 *              state (one round trip, as vmsigd's probe) and sends one
 *              signal through the same bus: the least any service does to
 *              turn the event into a signal. Ratio vmsigd/relay of the
 *              medians (report).
 *   lifecycle  Pause + Resume through the backend (vmsig_endpoint_lifecycle:
 *              a job on its worker thread, answered on the loop, as the bus
 *              front calls it) against virDomainSuspend + virDomainResume
 *              called directly, on the same domain, in one run, alternating
 *              in slices (ABBA, bench_compare()). Per-cycle time; ratio
 *              backend/direct time, target <= 1.3.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-lib.h"
#include "libvirt-backend.h"
#include "libvirt-event.h"
#include "libvirt-harness.h"
#include "vmsig-endpoint.h"

#define RAM_MIB 128
#define N_STARTS 5
#define CALLS 100
#define WARMUP 10
#define RUNS 3
#define RELAY_MEMBER "Started"

static sd_event *loop;
static vmsig_core *core;
static uint64_t started_at, added_at;
static virConnectPtr listener; /* the bench's own events */

static void run_until(bool *flag) {
        while (!*flag)
                if (sd_event_run(loop, UINT64_MAX) < 0)
                        abort();
}

static int on_roster(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        const vmsig_roster_payload *p = d->event->payload;

        if (!d->replay && p->change == VMSIG_ROSTER_ADDED)
                added_at = bench_now_nsec();
        return VMSIG_DELIVER_OK;
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        if (event == VIR_DOMAIN_EVENT_STARTED)
                started_at = bench_now_nsec();
        return 0;
}

static int compare_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

        return (x > y) - (x < y);
}

/* Signed: the origin is the bench's own callback, which the load of the
 * machine may run after a signal it caused already came. */
static double median_ms(const int64_t *v, unsigned n) {
        int64_t sorted[BENCH_RUNS_MAX];

        memcpy(sorted, v, n * sizeof *v);
        qsort(sorted, n, sizeof *sorted, compare_i64);
        return sorted[n / 2] / 1e6;
}

static void event_to_endpoint(LibvirtHarness *h) {
        int64_t lat[N_STARTS], max = INT64_MIN;

        for (unsigned i = 0; i < N_STARTS; i++) {
                char name[32];
                virDomainPtr dom;

                snprintf(name, sizeof name, "bench-start-%u", i);
                started_at = added_at = 0;
                dom = libvirt_harness_start_domain(h, name, LIBVIRT_RAM_FILE, RAM_MIB);
                while (!started_at || !added_at)
                        if (sd_event_run(loop, UINT64_MAX) < 0)
                                abort();
                lat[i] = (int64_t) (added_at - started_at);
                max = MAX(max, lat[i]);
                if (virDomainDestroy(dom) < 0)
                        abort();
                virDomainFree(dom);
                while (vmsig_core_find_endpoint_by_name(core, name))
                        (void) sd_event_run(loop, UINT64_MAX);
        }
        printf("event -> endpoint: libvirt STARTED event to ROSTER added, %u domains: median %.3f ms, max %.3f ms\n",
               N_STARTS, median_ms(lat, N_STARTS), max / 1e6);
}

/* --- event -> EndpointAdded, through vmsigd and a relay ----------------- */

static struct {
        const char *srcdir, *vmsigd, *dbus_daemon;
        unsigned starts;
        bool relay;
} opt = { .vmsigd = "./vmsigd", .starts = N_STARTS };

static sd_bus *relay_bus;

static int relay_on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        int state, reason;

        if (event == VIR_DOMAIN_EVENT_STARTED && virDomainGetState(dom, &state, &reason, 0) >= 0)
                (void) sd_bus_emit_signal(relay_bus, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, RELAY_MEMBER, "s",
                                          virDomainGetName(dom));
        return 0;
}

/* --relay: the baseline's process, on the bus of $DBUS_SYSTEM_BUS_ADDRESS;
 * a byte on fd 3 once it listens to libvirt. */
static int relay_main(void) {
        virConnectPtr conn;
        char ready = 1;

        if (sd_event_new(&loop) < 0 || vmsig_libvirt_event_register(loop) < 0 || bench_open_system(&relay_bus) < 0 ||
            sd_bus_attach_event(relay_bus, loop, 0) < 0)
                return 1;
        conn = virConnectOpen("qemu:///system");
        if (!conn || virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                      VIR_DOMAIN_EVENT_CALLBACK(relay_on_lifecycle), NULL, NULL) < 0)
                return 1;
        if (write(3, &ready, 1) != 1)
                return 1;
        (void) close(3);
        return sd_event_loop(loop) < 0;
}

/* One start as the bench's bus client sees it. */
typedef struct signal_watch {
        char name[32], *path;
        uint64_t added_at, relayed_at, removed_at;
} signal_watch;

static int on_manager_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        signal_watch *w = userdata;
        const char *path;

        if (sd_bus_message_read(m, "o", &path) < 0 || !w->path || strcmp(path, w->path) != 0)
                return 0;
        if (sd_bus_message_is_signal(m, NULL, "EndpointAdded"))
                w->added_at = bench_now_nsec();
        else
                w->removed_at = bench_now_nsec();
        return 0;
}

static int on_relay_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        signal_watch *w = userdata;
        const char *name;

        if (sd_bus_message_read(m, "s", &name) >= 0 && strcmp(name, w->name) == 0)
                w->relayed_at = bench_now_nsec();
        return 0;
}

/* virDomainCreate blocks: on a thread of its own, so that the loop takes
 * the STARTED event (and the signals) when they come, not after. */
typedef struct start_job {
        LibvirtHarness *h;
        const char *name;
        virDomainPtr dom;
        bool done;
} start_job;

static void *start_thread(void *data) {
        start_job *j = data;

        j->dom = libvirt_harness_start_domain(j->h, j->name, LIBVIRT_RAM_FILE, RAM_MIB);
        __atomic_store_n(&j->done, true, __ATOMIC_RELEASE);
        return NULL;
}

static bool start_seen(const signal_watch *w, const start_job *j) {
        return started_at && w->added_at && w->relayed_at && __atomic_load_n(&j->done, __ATOMIC_ACQUIRE);
}

/* One domain started and destroyed: its two latencies. */
static void one_start(LibvirtHarness *h, signal_watch *w, int64_t *ret_vmsigd, int64_t *ret_relay) {
        start_job j = { .h = h, .name = w->name };
        pthread_t t;

        started_at = w->added_at = w->relayed_at = w->removed_at = 0;
        if (pthread_create(&t, NULL, start_thread, &j) != 0)
                abort();
        while (!start_seen(w, &j))
                if (sd_event_run(loop, 100 * 1000) < 0)
                        abort();
        (void) pthread_join(t, NULL);
        *ret_vmsigd = (int64_t) (w->added_at - started_at);
        *ret_relay = (int64_t) (w->relayed_at - started_at);
        if (virDomainDestroy(j.dom) < 0)
                abort();
        virDomainFree(j.dom);
        while (!w->removed_at)
                if (sd_event_run(loop, UINT64_MAX) < 0)
                        abort();
}

/* The bench's client of the bus, on the loop, and the relay. */
static int signal_setup(bench_services *s, sd_bus **bus, signal_watch *w, pid_t *relay) {
        char *argv[] = { (char *) program_invocation_name, (char *) "--relay", NULL }, ready;
        int p[2], r;

        r = bench_bus_connect(s->address, bus);
        if (r >= 0)
                r = sd_bus_attach_event(*bus, loop, 0);
        if (r >= 0)
                r = sd_bus_match_signal(*bus, NULL, NULL, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, NULL,
                                        on_manager_signal, w);
        if (r >= 0)
                r = sd_bus_match_signal(*bus, NULL, NULL, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, RELAY_MEMBER,
                                        on_relay_signal, w);
        if (r < 0 || pipe2(p, O_CLOEXEC) < 0)
                return r < 0 ? r : -errno;
        *relay = bench_spawn(NULL, argv, p[1], s->address);
        (void) close(p[1]);
        r = read(p[0], &ready, 1) == 1 ? 0 : -EIO;
        (void) close(p[0]);
        return r;
}

static void print_signal_figures(const int64_t *vmsigd, const int64_t *relay, unsigned n) {
        double a = median_ms(vmsigd, n), b = median_ms(relay, n);

        printf("event -> EndpointAdded: libvirt STARTED event to the signal at a bus client, %u domains: vmsigd "
               "median %.3f ms, relay median %.3f ms: ratio vmsigd/relay %.2f (report)\n",
               n, a, b, a / b);
        printf("  (vmsigd ms:");
        for (unsigned i = 0; i < n; i++)
                printf(" %.3f", vmsigd[i] / 1e6);
        printf("; relay ms:");
        for (unsigned i = 0; i < n; i++)
                printf(" %.3f", relay[i] / 1e6);
        printf(")\n");
}

static void event_to_signal(LibvirtHarness *h) {
        int64_t vmsigd[BENCH_RUNS_MAX], relay[BENCH_RUNS_MAX];
        signal_watch w = {};
        bench_services s;
        sd_bus *bus = NULL;
        pid_t relay_pid = -1;
        char conf[256];
        int r;

        r = bench_services_prepare(&s, "", NULL, false);
        snprintf(conf, sizeof conf, "%s/vmsigd.conf", s.dir);
        if (r < 0 || bench_write_file(conf, "<vmsigd><audit target=\"stderr\"/><libvirt enabled=\"yes\"/></vmsigd>\n") < 0 ||
            bench_services_start(&s, opt.srcdir, opt.dbus_daemon, opt.vmsigd) < 0 ||
            signal_setup(&s, &bus, &w, &relay_pid) < 0) {
                bench_services_print_log(&s, 20);
                abort();
        }
        for (unsigned i = 0; i < opt.starts; i++) {
                snprintf(w.name, sizeof w.name, "bench-signal-%u", i);
                free(w.path);
                w.path = bench_endpoint_path(w.name);
                one_start(h, &w, &vmsigd[i], &relay[i]);
        }
        print_signal_figures(vmsigd, relay, opt.starts);
        (void) kill(relay_pid, SIGTERM);
        (void) waitpid(relay_pid, NULL, 0);
        sd_bus_flush_close_unref(bus);
        free(w.path);
        if (bench_services_stop(&s, false) < 0)
                abort();
}

static void on_done(const vmsig_result *r, void *userdata) {
        if (r->error < 0) {
                fprintf(stderr, "lifecycle: %s\n", r->message ?: "failed");
                abort();
        }
        *(bool *) userdata = true;
}

static int through_backend(sd_bus *bus, const void *userdata) {
        vmsig_endpoint *ep = (vmsig_endpoint *) userdata;
        bool paused = false, resumed = false;

        if (vmsig_endpoint_lifecycle(ep, VMSIG_OP_PAUSE, on_done, &paused) < 0)
                return -1;
        run_until(&paused);
        if (vmsig_endpoint_lifecycle(ep, VMSIG_OP_RESUME, on_done, &resumed) < 0)
                return -1;
        run_until(&resumed);
        return 0;
}

static int direct(sd_bus *bus, const void *userdata) {
        virDomainPtr dom = (virDomainPtr) userdata;

        return virDomainSuspend(dom) < 0 || virDomainResume(dom) < 0 ? -1 : 0;
}

static void lifecycle(LibvirtHarness *h, vmsig_endpoint *ep) {
        virDomainPtr dom = virDomainLookupByName(h->conn, "bench");
        bench_side a = { .call = through_backend, .userdata = ep }, b = { .call = direct, .userdata = dom };
        uint64_t ta[BENCH_RUNS_MAX], tb[BENCH_RUNS_MAX];
        bench_ratio q;

        if (!dom || bench_compare(&a, &b, CALLS, WARMUP, RUNS, ta, tb) < 0)
                abort();
        q = bench_ratio_of(CALLS, ta, tb, RUNS);
        printf("lifecycle: Pause+Resume through the backend %.0f cycles/s (%.3f ms), virDomainSuspend+Resume "
               "direct %.0f cycles/s (%.3f ms): ratio backend/direct time %.3f (target <= 1.3)\n",
               q.a, 1e3 / q.a, q.b, 1e3 / q.b, q.ratio);
        bench_print_runs("backend", "direct", CALLS, ta, tb, RUNS);
        virDomainFree(dom);
}

static void parse_options(int argc, char *argv[]) {
        const bench_option options[] = {
                BENCH_OPT_S("srcdir", &opt.srcdir),
                BENCH_OPT_S("vmsigd", &opt.vmsigd),
                BENCH_OPT_U("starts", &opt.starts, 1, BENCH_RUNS_MAX),
                BENCH_OPT_F("relay", &opt.relay),
                { NULL },
        };

        bench_parse_options(argc, argv, options,
                            "[--srcdir DIR] [--vmsigd PATH] [--starts N]: run as root from the build directory");
        if (!opt.srcdir)
                opt.srcdir = getenv("VMSIG_SRCDIR") ?: "..";
        /* Absolute: dbus-daemon reads an <include> relative to its file. */
        opt.srcdir = realpath(opt.srcdir, NULL);
        opt.dbus_daemon = getenv("DBUS_DAEMON") && *getenv("DBUS_DAEMON") ? getenv("DBUS_DAEMON") : "dbus-daemon";
        if (!opt.srcdir)
                abort();
}

int main(int argc, char *argv[]) {
        vmsig_libvirt_config config = { .domains = VMSIG_LIBVIRT_DOMAINS_ALL };
        vmsig_filter filter = { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_ROSTER) };
        vmsig_subscriber *sub = NULL;
        vmsig_libvirt *lv = NULL;
        vmsig_endpoint *ep;
        LibvirtHarness *h;
        int cb;

        parse_options(argc, argv);
        if (opt.relay)
                return relay_main();
        libvirt_harness_enter_namespace();
        if (!libvirt_harness_available()) {
                printf("bench-libvirt: skipped (no libvirtd, QEMU or guest parts)\n");
                return 0;
        }
        /* Before any connection: the harness's too is driven by the loop. */
        if (sd_event_new(&loop) < 0 || vmsig_libvirt_event_register(loop) < 0)
                abort();
        h = libvirt_harness_new();
        libvirt_harness_start(h);
        /* The bench's STARTED callback on a connection of its own: on the
         * one that starts the domain, the event would wait for the start's
         * reply (the calling thread reads it, and hands events over after). */
        listener = virConnectOpen("qemu:///system");
        cb = listener ? virConnectDomainEventRegisterAny(listener, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                         VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), NULL, NULL)
                      : -1;
        if (cb < 0)
                abort();
        /* vmsigd's and the relay's, before the in-process backend exists. */
        event_to_signal(h);
        if (vmsig_core_new(loop, &core) < 0 ||
            vmsig_core_subscribe(core, &filter, 1024, on_roster, NULL, &sub) < 0 ||
            vmsig_libvirt_new(core, &config, &lv) < 0)
                abort();
        event_to_endpoint(h);
        /* Else the direct side's connection gets events too, which the
         * loop would handle in the backend's turns. */
        if (virConnectDomainEventDeregisterAny(listener, cb) < 0)
                abort();
        virDomainFree(libvirt_harness_start_domain(h, "bench", LIBVIRT_RAM_FILE, RAM_MIB));
        while (!(ep = vmsig_core_find_endpoint_by_name(core, "bench")))
                (void) sd_event_run(loop, UINT64_MAX);
        lifecycle(h, ep);
        vmsig_libvirt_free(lv);
        vmsig_subscriber_free(sub);
        vmsig_core_free(core);
        (void) virConnectClose(listener);
        libvirt_harness_free(h);
        sd_event_unref(loop);
        free((char *) opt.srcdir);
        return 0;
}
