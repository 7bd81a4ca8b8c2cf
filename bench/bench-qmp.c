/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-qmp: vmsigd's QMP path (the armed build) against a real QEMU under
 * TCG, which this program starts with two QMP sockets: one for vmsigd, one
 * for its own direct client. vmsigd must run on $DBUS_SYSTEM_BUS_ADDRESS
 * with discovery on --trigger-dir; the client is root, so no polkit.
 *
 *   discovery  trigger file renamed in -> Manager.EndpointAdded, unlinked
 *              -> EndpointRemoved, against a child process that watches a
 *              directory of its own with inotify, reads the file and emits
 *              a signal through the same dbus-daemon (ABBA, median, p90
 *              and p99 of N samples each).
 *   lifecycle  Endpoint.Pause + Resume (power lease held) vs "stop" +
 *              "cont" on the direct socket, and two Properties.Get of
 *              Manager.Version as the bus floor, the three in turn.
 *   input      Endpoint.InjectInput (input lease held) vs direct
 *              "input-send-event" of the same events, 2 or 32 per call,
 *              one call at a time and DEPTH in flight (bursts of BURST).
 *
 * Both clients send byte-identical commands ({"execute":..., "id": N,
 * "arguments": ...} without spaces), so QEMU's share is the same on both
 * sides. bench/RESULTS.md ("vmsigd against a real QEMU") tells the rest.
 * Lines starting with "@" are for bench/run.sh.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-lib.h"

#define VMSIG_NAME VMSIG_BUS_NAME
#define MANAGER_PATH VMSIG_BUS_PATH
#define MANAGER_INTERFACE VMSIG_BUS_MANAGER_INTERFACE
#define ENDPOINT_INTERFACE VMSIG_BUS_ENDPOINT_INTERFACE
#define WATCH_PATH "/org/vmsig/BenchWatch"
#define WATCH_INTERFACE "org.vmsig.BenchWatch"
#define TIMEOUT_USEC (20 * UINT64_C(1000000))
#define SAMPLES_MAX 100000
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define QCODE_A 36 /* "a" in vmsigd's qcode numbering (src/host/qmp/qmp-input.c) */

/* --- the bus side ---------------------------------------------------------- */

typedef struct ctx {
        sd_bus *bus;
        const char *name;
        char *endpoint_path; /* from EndpointAdded: a re-attached VM may get a new object */
        const char *trigger_dir;
        char *watch_dir, *trigger_tmp, *trigger_file, *watch_tmp, *watch_file;
        char *xml;
        /* what was seen last, and when */
        bool added, removed, watch_ready, watch_added, watch_removed;
        uint64_t added_at, removed_at, watch_added_at, watch_removed_at;
} ctx;

static int on_manager_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        ctx *c = userdata;
        uint64_t now = bench_now_nsec();
        const char *path = NULL;

        /* This vmsigd has no other VM: the one endpoint that comes is ours
         * (attach_endpoint() checks its name). */
        if (sd_bus_message_read(m, "o", &path) < 0)
                return 0;
        if (sd_bus_message_is_signal(m, MANAGER_INTERFACE, "EndpointAdded") && !c->added) {
                free(c->endpoint_path);
                c->endpoint_path = strdup(path);
                if (!c->endpoint_path)
                        return -ENOMEM;
                c->added = true;
                c->added_at = now;
        } else if (sd_bus_message_is_signal(m, MANAGER_INTERFACE, "EndpointRemoved") && c->endpoint_path &&
                   strcmp(path, c->endpoint_path) == 0) {
                c->removed = true;
                c->removed_at = now;
        }
        return 0;
}

static int on_watch_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        ctx *c = userdata;
        uint64_t now = bench_now_nsec();

        if (sd_bus_message_is_signal(m, WATCH_INTERFACE, "Ready"))
                c->watch_ready = true;
        else if (sd_bus_message_is_signal(m, WATCH_INTERFACE, "Added")) {
                c->watch_added = true;
                c->watch_added_at = now;
        } else if (sd_bus_message_is_signal(m, WATCH_INTERFACE, "Removed")) {
                c->watch_removed = true;
                c->watch_removed_at = now;
        }
        return 0;
}

/* Runs the bus until *flag is set. */
static int wait_flag(sd_bus *bus, const bool *flag, const char *what) {
        int r = bench_run_until(bus, bench_now_nsec() + TIMEOUT_USEC * 1000, flag);

        if (r >= 0 && !*flag) {
                fprintf(stderr, "bench-qmp: no %s within %" PRIu64 " s\n", what, TIMEOUT_USEC / 1000000);
                r = -ETIMEDOUT;
        }
        return r;
}

static int endpoint_ready(ctx *c);

/* One sample: rename in until added, unlink until removed. */
static int sample(ctx *c, bool vmsigd, uint64_t *ret_add, uint64_t *ret_remove) {
        const char *tmp = vmsigd ? c->trigger_tmp : c->watch_tmp, *file = vmsigd ? c->trigger_file : c->watch_file;
        bool *added = vmsigd ? &c->added : &c->watch_added, *removed = vmsigd ? &c->removed : &c->watch_removed;
        uint64_t *added_at = vmsigd ? &c->added_at : &c->watch_added_at;
        uint64_t *removed_at = vmsigd ? &c->removed_at : &c->watch_removed_at;
        uint64_t start;
        int r;

        r = bench_write_file(tmp, c->xml);
        if (r < 0)
                return r;
        *added = *removed = false;
        start = bench_now_nsec();
        if (rename(tmp, file) < 0)
                return -errno;
        r = wait_flag(c->bus, added, vmsigd ? "EndpointAdded" : "signal of the inotify watcher");
        if (r < 0)
                return r;
        *ret_add = *added_at - start;
        /* Not timed: let vmsigd connect to QEMU, as it would with a VM
         * that stays a while, so that the next sample starts from rest. */
        if (vmsigd && (r = endpoint_ready(c)) < 0)
                return r;
        start = bench_now_nsec();
        if (unlink(file) < 0)
                return -errno;
        r = wait_flag(c->bus, removed, vmsigd ? "EndpointRemoved" : "signal of the inotify watcher");
        if (r < 0)
                return r;
        *ret_remove = *removed_at - start;
        return 0;
}

/* Endpoint.State, until it is want. */
static int wait_state(ctx *c, const char *want) {
        const bench_method get = { VMSIG_NAME, c->endpoint_path, "org.freedesktop.DBus.Properties", "Get",
                                   ENDPOINT_INTERFACE, "State", 'v' };
        uint64_t deadline = bench_now_nsec() + TIMEOUT_USEC * 1000;
        char *state = NULL;
        int r;

        for (;;) {
                r = bench_call_method_string(c->bus, &get, &state);
                if (r < 0)
                        return r;
                bool done = strcmp(state, want) == 0;
                free(state);
                if (done)
                        return 0;
                if (bench_now_nsec() > deadline) {
                        fprintf(stderr, "bench-qmp: endpoint %s did not become %s\n", c->name, want);
                        return -ETIMEDOUT;
                }
                usleep(2000);
        }
}

/* The endpoint that was just announced is the VM's (GetEndpoint(name)),
 * and vmsigd talks to its QEMU. */
static int endpoint_ready(ctx *c) {
        const bench_method get = { VMSIG_NAME, MANAGER_PATH, MANAGER_INTERFACE, "GetEndpoint", c->name, NULL, 'o' };
        char *path = NULL;
        int r = bench_call_method_string(c->bus, &get, &path);

        if (r < 0)
                return r;
        if (strcmp(path, c->endpoint_path) != 0) {
                fprintf(stderr, "bench-qmp: EndpointAdded announced %s, but %s is %s\n", c->endpoint_path, c->name,
                        path);
                r = -EPROTO;
        }
        free(path);
        return r < 0 ? r : wait_state(c, "running");
}

/* The events of one read: a signal for each trigger file. */
static int watcher_events(sd_bus *bus, const char *dir, char *raw, ssize_t n) {
        int r = 0;

        for (char *p = raw; r >= 0 && p < raw + n;) {
                const struct inotify_event *ev = (const struct inotify_event *) p;
                size_t len = ev->len ? strlen(ev->name) : 0;
                p += sizeof(struct inotify_event) + ev->len;
                if (len <= 4 || ev->name[0] == '.' || strcmp(ev->name + len - 4, ".xml") != 0)
                        continue;
                if (ev->mask & IN_MOVED_TO) {
                        /* What discovery has to do at least: read the file. */
                        char path[PATH_MAX], text[4096];
                        struct stat st;
                        snprintf(path, sizeof path, "%s/%s", dir, ev->name);
                        int f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
                        if (f < 0 || fstat(f, &st) < 0 || read(f, text, sizeof text) < 0)
                                r = -errno;
                        if (f >= 0)
                                close(f);
                        if (r >= 0)
                                r = sd_bus_emit_signal(bus, WATCH_PATH, WATCH_INTERFACE, "Added", "s", ev->name);
                } else
                        r = sd_bus_emit_signal(bus, WATCH_PATH, WATCH_INTERFACE, "Removed", "s", ev->name);
        }
        return r;
}

/* The baseline: a process that watches dir and tells the bus what came. */
static int watcher_main(const char *dir) {
        sd_bus *bus = NULL;
        int fd = -1, r;

        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        r = sd_bus_open_system(&bus);
        if (r < 0)
                goto finish;
        fd = inotify_init1(IN_CLOEXEC);
        if (fd < 0 || inotify_add_watch(fd, dir, IN_MOVED_TO | IN_DELETE | IN_ONLYDIR) < 0) {
                r = -errno;
                goto finish;
        }
        r = sd_bus_emit_signal(bus, WATCH_PATH, WATCH_INTERFACE, "Ready", NULL);
        if (r >= 0)
                r = sd_bus_flush(bus);
        while (r >= 0) {
                union {
                        struct inotify_event ev;
                        char raw[sizeof(struct inotify_event) + NAME_MAX + 1];
                } buf;
                ssize_t n = read(fd, &buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? -errno : -EIO;
                        break;
                }
                r = watcher_events(bus, dir, buf.raw, n);
                /* Drop what the bus sent us (NameAcquired): no syscall when
                 * nothing came. */
                while (r >= 0 && (r = sd_bus_process(bus, NULL)) > 0)
                        ;
        }
finish:
        if (r < 0)
                fprintf(stderr, "bench-qmp: inotify watcher: %s\n", strerror(-r));
        if (fd >= 0)
                close(fd);
        sd_bus_flush_close_unref(bus);
        _exit(r < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
}

static void print_ms_stats(const char *label, uint64_t *v, size_t n) {
        qsort(v, n, sizeof v[0], bench_compare_u64);
        printf("  %-34s median %7.3f ms  p90 %7.3f ms  p99 %7.3f ms  min %7.3f  max %7.3f\n", label,
               bench_percentile(v, n, 50) / 1e6, bench_percentile(v, n, 90) / 1e6, bench_percentile(v, n, 99) / 1e6,
               v[0] / 1e6, v[n - 1] / 1e6);
}

static void report_discovery(uint64_t *va, uint64_t *vr, uint64_t *ba, uint64_t *br, unsigned samples) {
        print_ms_stats("vmsigd   added", va, samples);
        print_ms_stats("baseline added", ba, samples);
        print_ms_stats("vmsigd   removed", vr, samples);
        print_ms_stats("baseline removed", br, samples);
        uint64_t m = bench_percentile(va, samples, 50), b = bench_percentile(ba, samples, 50);
        printf("  added: ratio vmsigd/baseline median %.2f, vmsigd adds %.3f ms\n", (double) m / (double) b,
               ((double) m - (double) b) / 1e6);
        printf("@ qmp-discovery median_ms=%.3f p90_ms=%.3f p99_ms=%.3f baseline_ms=%.3f ratio=%.2f"
               " removed_ms=%.3f baseline_removed_ms=%.3f samples=%u\n",
               m / 1e6, bench_percentile(va, samples, 90) / 1e6, bench_percentile(va, samples, 99) / 1e6, b / 1e6,
               (double) m / (double) b, bench_percentile(vr, samples, 50) / 1e6,
               bench_percentile(br, samples, 50) / 1e6, samples);
}

static int bench_discovery(ctx *c, unsigned samples) {
        uint64_t *va = calloc(samples, sizeof(uint64_t)), *vr = calloc(samples, sizeof(uint64_t));
        uint64_t *ba = calloc(samples, sizeof(uint64_t)), *br = calloc(samples, sizeof(uint64_t));
        sd_bus_slot *slot = NULL;
        pid_t watcher = -1;
        int r = -ENOMEM, status;

        if (!va || !vr || !ba || !br)
                goto finish;
        if (mkdir(c->watch_dir, 0755) < 0 && errno != EEXIST) {
                r = -errno;
                goto finish;
        }
        r = sd_bus_match_signal(c->bus, &slot, NULL, WATCH_PATH, WATCH_INTERFACE, NULL, on_watch_signal, c);
        if (r < 0)
                goto finish;
        fflush(NULL);
        watcher = fork();
        if (watcher < 0) {
                r = -errno;
                goto finish;
        }
        if (watcher == 0)
                watcher_main(c->watch_dir);
        r = wait_flag(c->bus, &c->watch_ready, "Ready signal of the inotify watcher");
        if (r < 0)
                goto finish;

        printf("bench-qmp discovery: trigger file renamed in -> EndpointAdded, unlinked -> EndpointRemoved,"
               " %u samples, vs a bare inotify watcher process that reads the file and emits a signal\n",
               samples);
        /* One of each first, not counted: the first attach loads more. */
        uint64_t ignored1, ignored2;
        r = sample(c, true, &ignored1, &ignored2);
        if (r >= 0)
                r = sample(c, false, &ignored1, &ignored2);
        for (unsigned i = 0; r >= 0 && i < 2 * samples; i++) {
                bool vmsigd = bench_abba(i) == 0;
                r = sample(c, vmsigd, vmsigd ? &va[i / 2] : &ba[i / 2], vmsigd ? &vr[i / 2] : &br[i / 2]);
        }
        if (r >= 0)
                report_discovery(va, vr, ba, br, samples);
finish:
        if (r < 0)
                fprintf(stderr, "bench-qmp: discovery: %s\n", strerror(-r));
        if (watcher > 0) {
                (void) kill(watcher, SIGTERM);
                while (waitpid(watcher, &status, 0) < 0 && errno == EINTR)
                        ;
        }
        (void) rmdir(c->watch_dir);
        sd_bus_slot_unref(slot);
        free(va);
        free(vr);
        free(ba);
        free(br);
        return r;
}

/* Brings the VM onto the bus and waits until vmsigd talks to its QEMU. */
static int attach_vm(ctx *c) {
        int r = bench_write_file(c->trigger_tmp, c->xml);

        c->added = false;
        if (r >= 0 && rename(c->trigger_tmp, c->trigger_file) < 0)
                r = -errno;
        if (r >= 0)
                r = wait_flag(c->bus, &c->added, "EndpointAdded");
        if (r >= 0)
                r = endpoint_ready(c);
        return r;
}

/* --- lifecycle --------------------------------------------------------------- */

typedef struct lifecycle_target {
        bench_method first, second;
} lifecycle_target;

static int vmsigd_cycle(sd_bus *bus, const void *userdata) {
        const lifecycle_target *t = userdata;
        int r = bench_call_method(bus, &t->first);

        if (r >= 0)
                r = bench_call_method(bus, &t->second);
        if (r >= 0)
                r = bench_drain(bus);
        return r;
}

static int direct_cycle(sd_bus *bus, const void *userdata) {
        bench_qmp *q = (bench_qmp *) userdata;
        int r = bench_qmp_execute(q, "stop", NULL, NULL);

        if (r >= 0)
                r = bench_qmp_execute(q, "cont", NULL, NULL);
        return r;
}

/* " 12.3 12.5)\n": each run's time per cycle, in us. */
static void print_us_runs(const uint64_t *t, unsigned runs, unsigned cycles) {
        for (unsigned i = 0; i < runs; i++)
                printf(" %.1f", t[i] / 1e3 / cycles);
        printf(")\n");
}

static int bench_lifecycle(ctx *c, bench_qmp *q, unsigned cycles, unsigned warmup, unsigned runs) {
        lifecycle_target t = {
                .first = { VMSIG_NAME, c->endpoint_path, ENDPOINT_INTERFACE, "Pause" },
                .second = { VMSIG_NAME, c->endpoint_path, ENDPOINT_INTERFACE, "Resume" },
        };
        /* The bus floor: two plain round trips to vmsigd, no QEMU. */
        const bench_method get_version = { VMSIG_NAME, MANAGER_PATH, "org.freedesktop.DBus.Properties", "Get",
                                           MANAGER_INTERFACE, "Version", 'v' };
        lifecycle_target ref = { get_version, get_version };
        const bench_side sides[3] = {
                { c->bus, vmsigd_cycle, &t },
                { NULL, direct_cycle, q },
                { c->bus, vmsigd_cycle, &ref },
        };
        uint64_t tm[3][BENCH_RUNS_MAX], *tv = tm[0], *td = tm[1], *tr = tm[2];
        int lease = -1, r;

        r = bench_acquire_lease(c->bus, c->endpoint_path, "power", &lease, NULL);
        if (r < 0)
                return r;
        printf("bench-qmp lifecycle: Pause + Resume through vmsigd vs stop + cont on a direct QMP socket, same QEMU,"
               " and 2 Get(Version) calls to vmsigd as the bus floor, the three in turn,"
               " %u cycles per run, %u warm-up cycles, median of %u runs\n",
               cycles, warmup, runs);
        r = bench_compare_n(sides, 3, cycles, warmup, runs, tm);
        close(lease);
        if (r < 0)
                return r;
        uint64_t mv = bench_median_of_runs(tv, runs), md = bench_median_of_runs(td, runs);
        double floor_us = bench_median_of_runs(tr, runs) / 1e3 / cycles;
        printf("  vmsigd Pause+Resume %8.1f us per cycle  (runs:", mv / 1e3 / cycles);
        print_us_runs(tv, runs, cycles);
        printf("  direct stop+cont    %8.1f us per cycle  (runs:", md / 1e3 / cycles);
        print_us_runs(td, runs, cycles);
        printf("  ratio vmsigd/direct time %.3f\n", (double) mv / (double) md);
        printf("  bus floor: 2 x Properties.Get(Manager.Version) %8.1f us  (runs:", floor_us);
        print_us_runs(tr, runs, cycles);
        printf("  vmsigd - direct = %.1f us per cycle, of which the bus floor %.1f us, the rest %.1f us\n",
               (mv - md) / 1e3 / cycles, floor_us, (mv - md) / 1e3 / cycles - floor_us);
        printf("@ qmp-lifecycle vmsigd_us=%.1f direct_us=%.1f ratio=%.3f bus_floor_us=%.1f\n", mv / 1e3 / cycles,
               md / 1e3 / cycles, (double) mv / (double) md, floor_us);
        return 0;
}

/* --- input --------------------------------------------------------------------- */

typedef struct input_target {
        const char *destination, *path;
        unsigned events;         /* per call: down, up, down, up, ... */
        unsigned depth, burst;   /* pipelined: depth calls in flight, burst calls per unit; 0: one at a time */
        char *direct_arguments;  /* the same events as QMP arguments */
        unsigned in_flight, done, failed;
} input_target;

static int new_inject(sd_bus *bus, const input_target *t, sd_bus_message **ret) {
        sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(bus, &m, t->destination, t->path, ENDPOINT_INTERFACE, "InjectInput");

        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(uui)");
        for (unsigned i = 0; r >= 0 && i < t->events; i++)
                r = sd_bus_message_append(m, "(uui)", 0u, (uint32_t) QCODE_A, (int32_t) (i % 2 == 0));
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0) {
                sd_bus_message_unref(m);
                return r;
        }
        *ret = m;
        return 0;
}

static int vmsigd_inject_one(sd_bus *bus, const void *userdata) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        int r = new_inject(bus, userdata, &m);

        if (r >= 0)
                r = sd_bus_call(bus, m, 0, &error, NULL);
        if (r < 0)
                fprintf(stderr, "bench-qmp: InjectInput: %s\n", error.message ? error.message : strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        return r;
}

static int on_inject_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        input_target *t = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e) {
                if (t->failed++ == 0)
                        fprintf(stderr, "bench-qmp: InjectInput: %s\n", e->message ? e->message : e->name);
        }
        t->in_flight--;
        t->done++;
        return 0;
}

/* burst calls, depth of them in flight at a time. */
static int vmsigd_inject_pipelined(sd_bus *bus, const void *userdata) {
        input_target *t = (input_target *) userdata;
        unsigned sent = 0;
        int r = 0;

        t->done = t->in_flight = 0;
        while (t->done < t->burst) {
                while (sent < t->burst && t->in_flight < t->depth) {
                        sd_bus_message *m = NULL;
                        r = new_inject(bus, t, &m);
                        if (r >= 0)
                                r = sd_bus_call_async(bus, NULL, m, on_inject_reply, t, 0);
                        sd_bus_message_unref(m);
                        if (r < 0)
                                return r;
                        sent++;
                        t->in_flight++;
                }
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, TIMEOUT_USEC);
                if (r < 0 && r != -EINTR)
                        return r;
                if (r == 0)
                        return -ETIMEDOUT;
        }
        return t->failed > 0 ? -EIO : 0;
}

typedef struct direct_input {
        bench_qmp *q;
        const input_target *t;
} direct_input;

static int direct_inject_one(sd_bus *bus, const void *userdata) {
        const direct_input *d = userdata;
        return bench_qmp_execute(d->q, "input-send-event", d->t->direct_arguments, NULL);
}

static int direct_inject_pipelined(sd_bus *bus, const void *userdata) {
        const direct_input *d = userdata;
        unsigned sent = 0, done = 0, in_flight = 0;
        int r;

        while (done < d->t->burst) {
                while (sent < d->t->burst && in_flight < d->t->depth) {
                        r = bench_qmp_send(d->q, "input-send-event", d->t->direct_arguments);
                        if (r < 0)
                                return r;
                        sent++;
                        in_flight++;
                }
                r = bench_qmp_wait_reply(d->q, NULL);
                if (r < 0)
                        return r;
                done++;
                in_flight--;
        }
        return 0;
}

static char *direct_input_arguments(unsigned events) {
        static const char down[] = "{\"type\":\"key\",\"data\":{\"down\":true,\"key\":{\"type\":\"qcode\",\"data\":\"a\"}}}";
        static const char up[] = "{\"type\":\"key\",\"data\":{\"down\":false,\"key\":{\"type\":\"qcode\",\"data\":\"a\"}}}";
        size_t size = 16 + events * (sizeof down + 1);
        char *s = malloc(size), *p = s;

        if (!s)
                return NULL;
        p += sprintf(p, "{\"events\":[");
        for (unsigned i = 0; i < events; i++)
                p += sprintf(p, "%s%s", i > 0 ? "," : "", i % 2 == 0 ? down : up);
        sprintf(p, "]}");
        return s;
}

/* One case of bench_input: BATCH events per call, serial or PIPELINED. */
static int input_case(ctx *c, bench_qmp *q, unsigned calls, unsigned warmup, unsigned runs, unsigned depth,
                      unsigned burst, unsigned batch, unsigned scale, bool pipelined) {
        uint64_t tv[BENCH_RUNS_MAX], td[BENCH_RUNS_MAX];
        unsigned b_calls = MAX(calls / scale, 1u), b_warmup = warmup / scale;
        unsigned b_burst = MAX(burst / scale, depth);
        input_target t = {
                .destination = VMSIG_NAME,
                .path = c->endpoint_path,
                .events = batch,
                .depth = pipelined ? depth : 0,
                .burst = pipelined ? b_burst : 1,
                .direct_arguments = direct_input_arguments(batch),
        };
        direct_input d = { q, &t };
        unsigned units = (b_calls + t.burst - 1) / t.burst;
        unsigned n_calls = units * t.burst;
        unsigned warm = (b_warmup + t.burst - 1) / t.burst;
        int r;

        if (!t.direct_arguments)
                return -ENOMEM;
        r = bench_compare(&(bench_side) { c->bus, pipelined ? vmsigd_inject_pipelined : vmsigd_inject_one, &t },
                          &(bench_side) { NULL, pipelined ? direct_inject_pipelined : direct_inject_one, &d }, units,
                          warm, runs, tv, td);
        free(t.direct_arguments);
        if (r < 0)
                return r;
        uint64_t mv = bench_median_of_runs(tv, runs), md = bench_median_of_runs(td, runs);
        double ev = (double) n_calls * t.events / (mv / 1e9);
        double ed = (double) n_calls * t.events / (md / 1e9);
        const char *mode = pipelined ? "pipelined" : "serial";
        printf("  %2u events/call %-9s vmsigd %9.0f events/s (%6.1f us/call)  direct %9.0f events/s"
               " (%6.1f us/call)  ratio vmsigd/direct time %.3f\n",
               t.events, mode, ev, mv / 1e3 / n_calls, ed, md / 1e3 / n_calls, (double) mv / (double) md);
        printf("@ qmp-input-%u-%s vmsigd_eps=%.0f direct_eps=%.0f vmsigd_us=%.1f direct_us=%.1f"
               " ratio=%.3f\n",
               t.events, mode, ev, ed, mv / 1e3 / n_calls, md / 1e3 / n_calls, (double) mv / (double) md);
        return 0;
}

static int bench_input(ctx *c, bench_qmp *q, unsigned calls, unsigned warmup, unsigned runs, unsigned depth,
                       unsigned burst) {
        static const unsigned batch_sizes[] = { 2, 32 };
        int lease = -1, r;

        r = bench_acquire_lease(c->bus, c->endpoint_path, "input", &lease, NULL);
        if (r < 0)
                return r;
        printf("bench-qmp input: InjectInput through vmsigd vs input-send-event on a direct QMP socket, same QEMU,"
               " key \"a\" down/up; %u events per run and side (pipelined: %u in flight, bursts of %u calls of 2"
               " events), %u warm-up calls of 2 events, median of %u runs\n",
               calls * batch_sizes[0], depth, burst, warmup, runs);
        /* The same number of events in each case: QEMU reads its monitor a
         * byte per main-loop iteration, so a call of 32 events takes about
         * 16 times as long. */
        for (size_t b = 0; r >= 0 && b < sizeof batch_sizes / sizeof batch_sizes[0]; b++)
                for (int pipelined = 0; r >= 0 && pipelined <= 1; pipelined++)
                        r = input_case(c, q, calls, warmup, runs, depth, burst, batch_sizes[b],
                                       batch_sizes[b] / batch_sizes[0], pipelined);
        close(lease);
        return r;
}

/* --- main ------------------------------------------------------------------------ */

/* Whether what is in the comma-separated list only (NULL: everything). */
typedef struct qmp_opts {
        bench_list only;
        unsigned samples, cycles, calls, warmup, runs, depth, burst;
} qmp_opts;

/* The trigger file, the watcher's, and the VM's description for vmsigd. */
static int ctx_init(ctx *c, const char *name, const char *trigger_dir, const bench_qemu *vm) {
        c->name = name;
        c->trigger_dir = trigger_dir;
        if (asprintf(&c->watch_dir, "%s/watch.d", vm->dir) < 0 ||
            asprintf(&c->trigger_tmp, "%s/.%s.xml.tmp", trigger_dir, name) < 0 ||
            asprintf(&c->trigger_file, "%s/%s.xml", trigger_dir, name) < 0 ||
            asprintf(&c->watch_tmp, "%s/.%s.xml.tmp", c->watch_dir, name) < 0 ||
            asprintf(&c->watch_file, "%s/%s.xml", c->watch_dir, name) < 0 ||
            asprintf(&c->xml, "<vm name=\"%s\">\n  <qmp socket=\"%s\"/>\n  <ram path=\"%s\"/>\n</vm>\n", name,
                     vm->vmsigd_sock, vm->ram) < 0)
                return -ENOMEM;
        return bench_open_system(&c->bus);
}

static void ctx_done(ctx *c) {
        if (c->trigger_file)
                (void) unlink(c->trigger_file);
        if (c->trigger_tmp)
                (void) unlink(c->trigger_tmp);
        sd_bus_flush_close_unref(c->bus);
        free(c->watch_dir);
        free(c->trigger_tmp);
        free(c->trigger_file);
        free(c->watch_tmp);
        free(c->watch_file);
        free(c->xml);
        free(c->endpoint_path);
}

static int run_cases(ctx *c, bench_qmp *direct, const qmp_opts *o) {
        sd_bus_slot *slot = NULL;
        int r;

        r = sd_bus_match_signal(c->bus, &slot, VMSIG_NAME, MANAGER_PATH, MANAGER_INTERFACE, NULL, on_manager_signal, c);
        /* A file left over from an interrupted run. */
        if (r >= 0 && unlink(c->trigger_file) == 0)
                usleep(100000);
        if (r >= 0 && bench_list_wants(&o->only, "discovery"))
                r = bench_discovery(c, o->samples);
        if (r >= 0 && (bench_list_wants(&o->only, "lifecycle") || bench_list_wants(&o->only, "input")))
                r = attach_vm(c);
        if (r >= 0 && bench_list_wants(&o->only, "lifecycle"))
                r = bench_lifecycle(c, direct, o->cycles, o->warmup, o->runs);
        if (r >= 0 && bench_list_wants(&o->only, "input"))
                r = bench_input(c, direct, o->calls, o->warmup, o->runs, o->depth, o->burst);
        if (r >= 0)
                printf("  QMP events the direct client read and dropped: %lu\n", direct->events);
        sd_bus_slot_unref(slot);
        return r;
}

static const char usage[] =
        "bench-qmp --trigger-dir DIR [--dir DIR] [--qemu BINARY] [--only discovery,lifecycle,input]\n"
        "          [--name NAME] [--samples N] [--cycles N] [--calls N] [--warmup N] [--runs N]\n"
        "          [--depth N] [--burst N]\n"
        "vmsigd's QMP path against a QEMU (TCG) started here, compared with a direct QMP\n"
        "client; vmsigd runs on $DBUS_SYSTEM_BUS_ADDRESS and discovers VMs in DIR. As root.\n"
        "QEMU's files go to --dir (default: a new directory in $TMPDIR); the QEMU binary\n"
        "is --qemu, else $VMSIG_QEMU, else qemu-system-x86_64.\n";

int main(int argc, char *argv[]) {
        const char *trigger_dir = NULL, *dir = NULL, *name = "bench", *binary = getenv("VMSIG_QEMU");
        qmp_opts o = { .samples = 50,
                       .cycles = 1000,
                       .calls = 1000,
                       .warmup = 100,
                       .runs = 3,
                       .depth = 16,
                       .burst = 64 };
        const bench_option options[] = {
                BENCH_OPT_S("trigger-dir", &trigger_dir),
                BENCH_OPT_S("dir", &dir),
                BENCH_OPT_S("qemu", &binary),
                BENCH_OPT_L("only", &o.only),
                BENCH_OPT_S("name", &name),
                BENCH_OPT_U("samples", &o.samples, 1, SAMPLES_MAX),
                BENCH_OPT_U("cycles", &o.cycles, 1, 100000000),
                BENCH_OPT_CALLS(&o.calls),
                BENCH_OPT_WARMUP(&o.warmup),
                BENCH_OPT_RUNS(&o.runs),
                BENCH_OPT_U("depth", &o.depth, 1, 64),
                BENCH_OPT_U("burst", &o.burst, 1, 100000),
                {},
        };
        bench_qemu vm = {};
        bench_qmp *direct = NULL;
        ctx c = {};
        int r;

        bench_parse_options(argc, argv, options, usage);
        if (!trigger_dir || trigger_dir[0] != '/') {
                fprintf(stderr, "bench-qmp: --trigger-dir must name vmsigd's trigger directory (an absolute path)\n");
                return EXIT_FAILURE;
        }
        if (!binary || !*binary)
                binary = "qemu-system-x86_64";
        /* run.sh keeps the output in a file: show progress as it comes. */
        setvbuf(stdout, NULL, _IOLBF, 0);

        r = bench_qemu_start(&vm,
                             &(bench_qemu_spec) { .binary = binary, .dir = dir, .ram_mib = 128, .ram_file = true });
        if (r < 0)
                fprintf(stderr, "bench-qmp: cannot start %s: %s\n", binary, strerror(-r));
        if (r >= 0 && (r = bench_qmp_open(vm.bench_sock, &direct)) < 0)
                fprintf(stderr, "bench-qmp: QMP session on %s: %s\n", vm.bench_sock, strerror(-r));
        if (r >= 0)
                r = ctx_init(&c, name, trigger_dir, &vm);
        if (r >= 0)
                r = run_cases(&c, direct, &o);
        if (r < 0 && r != -ETIMEDOUT)
                fprintf(stderr, "bench-qmp: %s\n", strerror(-r));
        ctx_done(&c);
        bench_qmp_close(direct);
        bench_qemu_stop(&vm);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
