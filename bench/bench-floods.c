/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-floods: the floods of issue 15's red-team findings, seen from root's
 * side. As root, on the system bus ($DBUS_SYSTEM_BUS_ADDRESS) with vmsigd,
 * a real polkitd and bench/echo-service on it; bench/run.sh starts them
 * with max-pending-calls 8 and a stub VM "slow" with latency-ms.
 *
 * Latency isolation. A root connection (the probe) makes one cheap call
 * every --interval-ms: GetEndpoint("alpha"), then Properties.Get(State) of
 * alpha, then of slow, in turn, each timed. Its p99 while a flood runs is
 * compared with its p99 on the idle daemon (two idle phases, one before the
 * floods and one after, pooled).                   target: p99 < 20 ms
 * The probe is closed-loop: a flood that stalls it gets fewer calls, and
 * its p99 understates what a caller at a fixed rate would see. With
 * --private-socket each call is repeated through vmsigd's private socket
 * (report only), on a connection open only while a phase runs: while one
 * is open vmsigd checks its peers' queues every second, and never has the
 * 3 quiet seconds after which it trims its heap.
 * The floods are the rows of floods[] (processes of their own, as nobody
 * or root); echo-4k is a control with no target: the nonholder-4k flood
 * sent to echo-service, so that what is left of root's delay is the
 * machine's, not vmsigd's. load (--bench-load PATH) runs bench-load's 200
 * clients on its own bus and vmsigd and probes that bus while its measured
 * round has its clients connected.
 * Memory. After each flood, once vmsigd has been idle for 3.3 s by the
 * scheduler's account (its heap trim, 3 s after its last work, is then
 * behind it), its RSS without guest RAM (RssAnon + RssFile) must be within
 * 5 % of what it was before, and its fd count equal. For the load,
 * bench-load's own figures (against its warm baseline).
 * Throughput. MemWriteBatch of 1024 x 4 KiB on alpha vs EchoBatch of the
 * same on echo-service: --batch-runs runs of 16 calls to each, ABBA, after
 * a warm-up pass of each, the median run counts. First before any flood
 * (target: vmsigd/echo >= 0.5), again after them (report only: glibc then
 * keeps more heap between messages in every process the 16 MiB batches
 * went through). bench/RESULTS.md ("Floods") tells the rest.
 * Lines starting with "@" are for bench/run.sh.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "bench-lib.h"

#define DBUS_NAME "org.freedesktop.DBus"
#define DBUS_PATH "/org/freedesktop/DBus"
#define POLKIT_NAME "org.freedesktop.PolicyKit1"

#define NSEC_PER_SEC UINT64_C(1000000000)
#define P99_TARGET_MS 20.0
#define RSS_TARGET 1.05
#define BATCH_TARGET 0.5
/* vmsigd trims its heap 3 s after the last loop iteration that did work;
 * the trim is itself one more wakeup. Nothing for this long after a
 * wakeup means that wakeup was the trim. */
#define QUIET_NSEC (3300 * NSEC_PER_MSEC)
#define SETTLE_MAX_NSEC (30 * NSEC_PER_SEC)
#define REAP_MAX_NSEC (60 * NSEC_PER_SEC)

#define ENTRY_SIZE 4096u
#define QUEUE_ENTRIES 16u
#define FLOOD_ENTRIES 4096u /* vmsigd's limit per batch */
#define THROUGHPUT_ENTRIES 1024u
#define THROUGHPUT_CALLS 16u
#define MAX_CHILDREN 8

/* bench-load's stub VMs (load-services.c): one written by its writers,
 * one driven through Pause/Resume/Reset. */
#define LOAD_PROBE_NAME "mw00"
#define LOAD_PROBE_OTHER "lc00"

typedef struct options {
        unsigned seconds, interval_ms, max_pending, batch_runs, load_calls;
        const char *endpoint, *slow, *log, *bench_load, *srcdir, *vmsigd, *private_socket;
        bench_list cases;
} options;

typedef bench_samples samples;

typedef struct latency {
        double p50, p99, max;
        size_t n;
} latency;

/* --- samples ------------------------------------------------------------------- */

static int samples_append(samples *to, const samples *from) {
        for (size_t i = 0; i < from->n; i++)
                if (bench_samples_add(to, from->v[i]) < 0)
                        return -ENOMEM;
        return 0;
}

static latency samples_summary(samples *s) {
        latency l = { .n = s->n };

        if (s->n == 0)
                return l;
        qsort(s->v, s->n, sizeof s->v[0], bench_compare_u64);
        l.p50 = bench_percentile(s->v, s->n, 50) / 1e6;
        l.p99 = bench_percentile(s->v, s->n, 99) / 1e6;
        l.max = s->v[s->n - 1] / 1e6;
        return l;
}

/* --- the probe: root's cheap calls, one every interval -------------------------- */

typedef struct probe {
        sd_bus *bus;
        const char *destination; /* NULL on the private socket */
        const char *name;        /* GetEndpoint(name) */
        char *paths[2];          /* Properties.Get(Endpoint.State) on each */
        unsigned turn;
        uint64_t failures;
        char failure[160];
        /* The same calls through vmsigd's private socket, right after each
         * one through the bus, into their own samples; or NULL. */
        struct probe *p2p;
        samples *p2p_samples;
} probe;

static int probe_init(probe *p, sd_bus *bus, const char *destination, const char *name, const char *other) {
        *p = (probe) { .bus = bus, .destination = destination, .name = name };
        p->paths[0] = bench_endpoint_path(name);
        p->paths[1] = bench_endpoint_path(other);
        return p->paths[0] && p->paths[1] ? 0 : -ENOMEM;
}

static void probe_done(probe *p) {
        free(p->paths[0]);
        free(p->paths[1]);
}

/* One call; its time in *ret_nsec. A failed call is counted, not fatal:
 * a root call that fails under a flood is itself a finding. */
static int probe_call(probe *p, uint64_t *ret_nsec) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        unsigned turn = p->turn++ % 3;
        uint64_t start = bench_now_nsec();
        int r;

        if (turn == 0)
                r = sd_bus_call_method(p->bus, p->destination, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE,
                                       "GetEndpoint", &error, &reply, "s", p->name);
        else
                r = sd_bus_call_method(p->bus, p->destination, p->paths[turn - 1], BENCH_PROPERTIES_INTERFACE, "Get",
                                       &error, &reply, "ss", VMSIG_BUS_ENDPOINT_INTERFACE, "State");
        *ret_nsec = bench_now_nsec() - start;
        /* A peer-to-peer server sends its signals to its only peer. */
        if (!p->destination)
                (void) bench_drain(p->bus);
        if (r < 0 && p->failures++ == 0)
                snprintf(p->failure, sizeof p->failure, "%s", error.message ? error.message : strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r;
}

/* Called between probe calls; false ends the probing early. */
typedef bool (*probe_tick_fn)(void *userdata, bool *ret_count);

/* Probes until deadline, one call per interval (a late call is not made up
 * for with a burst). A sample counts when tick says so (the load's window;
 * always without tick). The peak of vmsigd's memory goes to *peak. */
static int probe_until(probe *p, uint64_t deadline, unsigned interval_ms, samples *s, pid_t vmsigd,
                       bench_proc_sample *peak, probe_tick_fn tick, void *userdata) {
        uint64_t next = bench_now_nsec(), interval = interval_ms * NSEC_PER_MSEC;
        unsigned turn = 0;

        for (uint64_t now = next; now < deadline; now = bench_now_nsec()) {
                bool count = true;
                uint64_t took;

                if (tick && !tick(userdata, &count))
                        break;
                if (next > now)
                        usleep((useconds_t) ((next - now) / 1000));
                next += interval;
                (void) probe_call(p, &took);
                if (count && bench_samples_add(s, took) < 0)
                        return -ENOMEM;
                if (p->p2p) {
                        (void) probe_call(p->p2p, &took);
                        if (count && bench_samples_add(p->p2p_samples, took) < 0)
                                return -ENOMEM;
                }
                if (next < bench_now_nsec())
                        next = bench_now_nsec();
                if (peak && ++turn % 20 == 0) {
                        bench_proc_sample now_s;
                        if (bench_proc_sample_read(vmsigd, &now_s) >= 0) {
                                peak->fds = now_s.fds > peak->fds ? now_s.fds : peak->fds;
                                peak->anon_kib = now_s.anon_kib > peak->anon_kib ? now_s.anon_kib : peak->anon_kib;
                                peak->rss_kib = now_s.rss_kib > peak->rss_kib ? now_s.rss_kib : peak->rss_kib;
                        }
                }
        }
        return 0;
}

/* --- the flooding processes --------------------------------------------------------- */

/* What a flooding process did, sent back through a pipe when it is done. */
typedef struct flood_counts {
        uint64_t connections, calls, ok, refused, unexpected;
        uint64_t ebadf, reopens, writes, bytes, waits; /* leasefd */
        char refusal[96], unexpected_error[160];
} flood_counts;

typedef struct flood_spec {
        bool as_nobody;
        int fd;            /* a lease fd the child keeps, or -1 */
        uint64_t deadline; /* CLOCK_MONOTONIC nsec: stop sending then */
        unsigned seed;
        bool echo;         /* to echo-service's EchoBatch, not vmsigd */
        const char *path;  /* the endpoint flooded */
        unsigned entries, window;
        size_t size;
        uint64_t ram;      /* offsets wrap inside [0, ram) */
        bool pause, take_lease;
} flood_spec;

typedef int (*flood_fn)(const flood_spec *s, flood_counts *c);

static void note_unexpected(flood_counts *c, const char *what) {
        if (c->unexpected++ == 0)
                snprintf(c->unexpected_error, sizeof c->unexpected_error, "%s", what);
}

static void close_other_fds(int keep_a, int keep_b) {
        int fds[4096];
        size_t n = 0;
        struct dirent *de;
        DIR *d = opendir("/proc/self/fd");

        if (!d)
                return;
        while ((de = readdir(d)) && n < sizeof fds / sizeof fds[0]) {
                int fd = atoi(de->d_name);
                if (de->d_name[0] != '.' && fd > 2 && fd != dirfd(d) && fd != keep_a && fd != keep_b)
                        fds[n++] = fd;
        }
        closedir(d);
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
}

/* The same as setpriv --reuid=nobody --regid=nogroup --clear-groups. */
static int drop_to(uid_t uid, gid_t gid) {
        if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
                return -errno;
        return 0;
}

typedef struct flood_child {
        pid_t pid;
        int fd; /* the read end of its counts pipe */
} flood_child;

typedef struct identity {
        uid_t uid;
        gid_t gid;
} identity;

static int flood_spawn(const identity *nobody, flood_fn fn, const flood_spec *spec, flood_child *ret) {
        pid_t parent = getpid();
        int pipefd[2];

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(pipefd[0]);
                close(pipefd[1]);
                return r;
        }
        if (pid == 0) {
                flood_counts counts = {};
                int r;

                /* Nothing of the parent's: its bus connections stay its own. */
                close_other_fds(pipefd[1], spec->fd);
                if (spec->as_nobody && drop_to(nobody->uid, nobody->gid) < 0)
                        _exit(126);
                /* After the change of credentials, which clears it. */
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(125);
                r = fn(spec, &counts);
                if (write(pipefd[1], &counts, sizeof counts) != (ssize_t) sizeof counts)
                        _exit(124);
                _exit(r < 0 ? 1 : 0);
        }
        close(pipefd[1]);
        *ret = (flood_child) { .pid = pid, .fd = pipefd[0] };
        return 0;
}

static void counts_add(flood_counts *sum, const flood_counts *c) {
        sum->connections += c->connections;
        sum->calls += c->calls;
        sum->ok += c->ok;
        sum->refused += c->refused;
        sum->ebadf += c->ebadf;
        sum->reopens += c->reopens;
        sum->writes += c->writes;
        sum->bytes += c->bytes;
        sum->waits += c->waits;
        if (!sum->refusal[0])
                memcpy(sum->refusal, c->refusal, sizeof sum->refusal);
        if (c->unexpected > 0 && sum->unexpected == 0)
                memcpy(sum->unexpected_error, c->unexpected_error, sizeof sum->unexpected_error);
        sum->unexpected += c->unexpected;
}

/* Waits for the child (SIGKILL after REAP_MAX_NSEC) and adds its counts. */
static int flood_reap(flood_child *child, flood_counts *sum) {
        uint64_t give_up = bench_now_nsec() + REAP_MAX_NSEC;
        flood_counts c = {};
        int status = 0, r = 0;

        while (waitpid(child->pid, &status, WNOHANG) == 0) {
                if (bench_now_nsec() > give_up) {
                        (void) kill(child->pid, SIGKILL);
                        (void) waitpid(child->pid, &status, 0);
                        fprintf(stderr, "bench-floods: a flooding process did not finish in time; killed\n");
                        r = -ETIMEDOUT;
                        break;
                }
                usleep(10000);
        }
        if (r >= 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                fprintf(stderr, "bench-floods: a flooding process failed (wait status %d)\n", status);
                r = -EIO;
        }
        if (read(child->fd, &c, sizeof c) == (ssize_t) sizeof c)
                counts_add(sum, &c);
        close(child->fd);
        child->pid = 0;
        child->fd = -1;
        return r;
}

/* polkit: short-lived callers that leave while vmsigd asks polkit. */
static int flood_polkit(const flood_spec *s, flood_counts *c) {
        unsigned seed = s->seed;

        while (bench_now_nsec() < s->deadline) {
                sd_bus *bus = NULL;
                int r = sd_bus_open_system(&bus);

                if (r >= 0) {
                        c->connections++;
                        r = sd_bus_call_method_async(bus, NULL, VMSIG_BUS_NAME, s->path, VMSIG_BUS_ENDPOINT_INTERFACE,
                                                     "SubscribeMemctx", NULL, NULL, "");
                }
                if (r >= 0)
                        r = sd_bus_flush(bus);
                if (r >= 0)
                        c->calls++;
                else
                        note_unexpected(c, strerror(-r));
                /* Gone 0.5 to 4 ms later, whatever the answer. */
                usleep(500 + rand_r(&seed) % 3500);
                sd_bus_close_unref(bus);
        }
        return 0;
}

/* queue, nonholder: MemWriteBatch calls kept window in flight, each reply
 * answered with a new call until the deadline. */
typedef struct flooder {
        sd_bus *bus;
        const flood_spec *spec;
        flood_counts *c;
        const uint8_t *data;
        uint64_t k;
        unsigned in_flight;
        int error;
} flooder;

static int flooder_send(flooder *f);

static int on_flood_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        flooder *f = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        f->in_flight--;
        if (!e)
                f->c->ok++;
        else if (strcmp(e->name, "org.vmsig.Error.QuotaExceeded") == 0 ||
                 strcmp(e->name, "org.vmsig.Error.NotLeaseHolder") == 0) {
                if (f->c->refused++ == 0)
                        snprintf(f->c->refusal, sizeof f->c->refusal, "%s", e->name);
        } else {
                char what[160];
                snprintf(what, sizeof what, "%s: %s", e->name, e->message ? e->message : "");
                note_unexpected(f->c, what);
        }
        if (bench_now_nsec() < f->spec->deadline && f->error >= 0)
                f->error = flooder_send(f);
        return 0;
}

static int flooder_send(flooder *f) {
        const flood_spec *s = f->spec;
        sd_bus_message *m = NULL;
        int r;

        r = s->echo ? sd_bus_message_new_method_call(f->bus, &m, BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE,
                                                     "EchoBatch")
                    : sd_bus_message_new_method_call(f->bus, &m, VMSIG_BUS_NAME, s->path, VMSIG_BUS_ENDPOINT_INTERFACE,
                                                     "MemWriteBatch");
        if (r >= 0)
                r = bench_append_batch(m, f->data, s->entries, s->size, s->ram, &f->k);
        if (r >= 0)
                r = s->pause ? sd_bus_message_append(m, "a{sv}", 1, "pause", "b", 1)
                             : sd_bus_message_append(m, "a{sv}", 0);
        if (r >= 0)
                r = sd_bus_call_async(f->bus, NULL, m, on_flood_reply, f, 0);
        if (r >= 0) {
                f->in_flight++;
                f->c->calls++;
        }
        sd_bus_message_unref(m);
        return r;
}

static int flood_batches(const flood_spec *s, flood_counts *c) {
        uint8_t *data = malloc((size_t) s->entries * s->size);
        flooder f = { .spec = s, .c = c, .data = data };
        uint64_t give_up = s->deadline + REAP_MAX_NSEC / 2;
        int lease_fd = -1, r;

        if (!data)
                return -ENOMEM;
        for (size_t i = 0; i < (size_t) s->entries * s->size; i++)
                data[i] = (uint8_t) (i * 131 + (i >> 12));
        r = sd_bus_open_system(&f.bus);
        if (r >= 0)
                c->connections++;
        if (r >= 0 && s->take_lease) {
                r = bench_acquire_lease(f.bus, s->path, "memory-write", &lease_fd, NULL);
                if (r < 0)
                        note_unexpected(c, "AcquireLease(\"memory-write\") failed");
        }
        for (unsigned i = 0; r >= 0 && i < s->window; i++)
                r = flooder_send(&f);
        while (r >= 0 && f.in_flight > 0 && f.error >= 0) {
                if (bench_now_nsec() > give_up) {
                        note_unexpected(c, "replies still missing long after the flood");
                        r = -ETIMEDOUT;
                        break;
                }
                r = sd_bus_process(f.bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(f.bus, 100000);
        }
        if (r >= 0 && f.error < 0)
                r = f.error;
        if (r < 0 && c->unexpected == 0)
                note_unexpected(c, strerror(-r));
        if (lease_fd >= 0)
                close(lease_fd);
        sd_bus_flush_close_unref(f.bus);
        free(data);
        return r < 0 ? r : 0;
}

/* leasefd: writes into the lease fd as hard as it can. What it cannot
 * write directly it writes through a reopen of /proc/self/fd/N; a full
 * pipe is waited on, not spun on, so that the load falls on vmsigd alone
 * (tests/test-redteam-lease.c's hammer). */
static int flood_lease_fd(const flood_spec *s, flood_counts *c) {
        static char buf[4096];
        char path[64];
        int w = s->fd;

        while (bench_now_nsec() < s->deadline) {
                ssize_t n = w >= 0 ? write(w, buf, sizeof buf) : -1;

                if (n >= 0) {
                        c->writes++;
                        c->bytes += (uint64_t) n;
                        continue;
                }
                if (w >= 0 && errno == EINTR)
                        continue;
                if (w >= 0 && errno == EAGAIN) {
                        struct pollfd p = { .fd = w, .events = POLLOUT };
                        c->waits++;
                        (void) poll(&p, 1, 10);
                        continue;
                }
                if (w == s->fd) {
                        if (errno == EBADF)
                                c->ebadf++;
                        snprintf(path, sizeof path, "/proc/self/fd/%d", s->fd);
                        w = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
                        if (w >= 0) {
                                c->reopens++;
                                continue;
                        }
                }
                /* Nothing here takes a write. */
                w = -1;
                (void) poll(NULL, 0, 10);
        }
        return 0;
}

/* --- the daemon's side: memory, CPU, audit records ------------------------------ */

typedef struct context {
        options opt;
        sd_bus *bus; /* root: the probe, the throughput */
        pid_t vmsigd, bus_daemon;
        identity nobody;
        char *alpha, *slow; /* endpoint paths */
        uint64_t alpha_ram;
        bool polkit;
        samples idle;       /* both idle phases */
        bench_proc_sample first; /* before the first phase */
} context;

/* Until vmsigd has done nothing for QUIET_NSEC (SETTLE_MAX_NSEC at most):
 * then its heap trim is behind it. The bench sends nothing meanwhile. */
static double settle(pid_t vmsigd) {
        uint64_t start = bench_now_nsec(), changed = start, last = bench_proc_sched_nsec(vmsigd);

        for (uint64_t now = start; now - changed < QUIET_NSEC && now - start < SETTLE_MAX_NSEC;
             now = bench_now_nsec()) {
                usleep(100000);
                uint64_t s = bench_proc_sched_nsec(vmsigd);
                if (s != last) {
                        last = s;
                        changed = bench_now_nsec();
                }
        }
        return (bench_now_nsec() - start) / 1e9;
}

/* Audit records of nobody's SubscribeMemctx calls in vmsigd's log, in all
 * and by reason. */
#define AUDIT_REASONS 6
typedef struct audit_tally {
        uint64_t total;
        char reason[AUDIT_REASONS][40];
        uint64_t count[AUDIT_REASONS];
} audit_tally;

static void audit_count(const char *log, audit_tally *t) {
        char line[1024];
        FILE *f;

        *t = (audit_tally) {};
        if (!log || !(f = fopen(log, "re")))
                return;
        while (fgets(line, sizeof line, f)) {
                const char *r;
                size_t len;
                int i;

                if (strncmp(line, "vmsig-audit: uid=65534 ", 23) != 0 || !strstr(line, " action=org.vmsig.memctx "))
                        continue;
                t->total++;
                r = strstr(line, " reason=");
                if (!r)
                        continue;
                r += 8;
                len = strcspn(r, " \n");
                for (i = 0; i < AUDIT_REASONS && t->reason[i][0]; i++)
                        if (strlen(t->reason[i]) == len && strncmp(t->reason[i], r, len) == 0)
                                break;
                if (i == AUDIT_REASONS)
                        continue;
                if (!t->reason[i][0])
                        snprintf(t->reason[i], sizeof t->reason[i], "%.*s", (int) len, r);
                t->count[i]++;
        }
        fclose(f);
}

/* --- one phase: a flood (or none) under the probe, then the settling ---------------- */

typedef struct phase {
        const char *key, *title;
        flood_child children[MAX_CHILDREN];
        size_t n_children;
        sd_bus *holder; /* a root connection that holds a lease for the phase */
        int lease_fd;
        flood_counts counts;
        samples lat, p2p_lat;
        latency summary, p2p_summary;
        uint64_t failures;
        char failure[160];
        bench_proc_sample before, after, peak;
        double vmsigd_cpu, bus_cpu, settle_seconds, wall;
        audit_tally audit_before, audit_after;
        bool skipped, failed;
} phase;

/* One flood as data, started by start_flood(): its processes, as whom,
 * and what each sends. */
typedef struct flood {
        const char *key, *title;
        flood_fn fn;
        unsigned processes;
        bool as_nobody;
        bool on_slow;             /* the queue's region of slow's RAM, else all of alpha's */
        const char *hold;         /* a lease of alpha a root connection holds for the phase, or NULL */
        bool pass_lease_fd;       /* the processes get that lease's fd */
        unsigned entries, window; /* window 0: 4 x --max-pending */
        size_t size;
        bool echo, pause, take_lease;
        bool control; /* no target: it tells where a delay comes from */
} flood;

static const flood floods[] = {
        { .key = "polkit",
          .title = "nobody: 4 processes connect, call SubscribeMemctx (polkit asked) and leave 0.5-4 ms later",
          .fn = flood_polkit, .processes = 4, .as_nobody = true },
        { .key = "queue",
          .title = "root holder of slow's memory-write lease: MemWriteBatch(16 x 4 KiB, pause=true), "
                   "4 x max-pending-calls in flight",
          .fn = flood_batches, .processes = 1, .on_slow = true, .entries = QUEUE_ENTRIES, .size = ENTRY_SIZE,
          .pause = true, .take_lease = true },
        { .key = "leasefd",
          .title = "root holder of alpha's power lease: 3 processes write into the lease fd, then reopened",
          .fn = flood_lease_fd, .processes = 3, .hold = "power", .pass_lease_fd = true },
        { .key = "nonholder",
          .title = "nobody, 3 processes: MemWriteBatch(4096 x 1 byte) on alpha, 16 in flight each",
          .fn = flood_batches, .processes = 3, .as_nobody = true, .hold = "memory-write", .entries = FLOOD_ENTRIES,
          .size = 1, .window = 16 },
        { .key = "nonholder-4k",
          .title = "nobody, 3 processes: MemWriteBatch(4096 x 4 KiB, 16 MiB) on alpha, 2 in flight each",
          .fn = flood_batches, .processes = 3, .as_nobody = true, .hold = "memory-write", .entries = FLOOD_ENTRIES,
          .size = ENTRY_SIZE, .window = 2 },
        { .key = "echo-4k",
          .title = "control: the nonholder-4k flood sent to " BENCH_ECHO_NAME " (EchoBatch) instead of vmsigd",
          .fn = flood_batches, .processes = 3, .as_nobody = true, .hold = "memory-write", .entries = FLOOD_ENTRIES,
          .size = ENTRY_SIZE, .window = 2, .echo = true, .control = true },
};

/* A lease for the phase, held by a root connection of its own. */
static int phase_hold_lease(phase *ph, const char *path, const char *class) {
        int r = bench_open_system(&ph->holder);

        return r < 0 ? r : bench_acquire_lease(ph->holder, path, class, &ph->lease_fd, NULL);
}

static int start_flood(context *c, phase *ph, const flood *f, uint64_t deadline) {
        flood_spec s = {
                .as_nobody = f->as_nobody, .fd = -1, .deadline = deadline, .echo = f->echo,
                .path = f->on_slow ? c->slow : c->alpha, .entries = f->entries, .size = f->size,
                .ram = f->on_slow ? f->entries * f->size : c->alpha_ram,
                .window = f->window ? f->window : 4 * c->opt.max_pending, .pause = f->pause,
                .take_lease = f->take_lease,
        };
        int r = f->hold ? phase_hold_lease(ph, c->alpha, f->hold) : 0;

        if (r >= 0 && f->pass_lease_fd) {
                /* The holder's end takes no data at all. */
                if (write(ph->lease_fd, "x", 1) >= 0 || errno != EBADF)
                        fprintf(stderr, "bench-floods: a write into the lease fd did not fail with EBADF\n");
                s.fd = ph->lease_fd;
        }
        for (unsigned i = 0; r >= 0 && i < f->processes; i++) {
                if (ph->n_children == MAX_CHILDREN)
                        return -E2BIG;
                s.seed = 1 + i * 7919;
                r = flood_spawn(&c->nobody, f->fn, &s, &ph->children[ph->n_children]);
                if (r >= 0)
                        ph->n_children++;
        }
        return r;
}

/* The probes of the phase: root on the bus and, for the phase only, on
 * the private socket (while a private connection is open vmsigd checks its
 * peers' queues every second, and never gets the 3 quiet seconds after
 * which it trims its heap). */
static int phase_probes(context *c, phase *ph, probe *p, probe *p2p, sd_bus **p2p_bus) {
        int r = probe_init(p, c->bus, VMSIG_BUS_NAME, c->opt.endpoint, c->opt.slow);

        if (r >= 0 && c->opt.private_socket) {
                r = bench_p2p_connect(c->opt.private_socket, p2p_bus);
                if (r >= 0)
                        r = probe_init(p2p, *p2p_bus, NULL, c->opt.endpoint, c->opt.slow);
                p->p2p = p2p;
                p->p2p_samples = &ph->p2p_lat;
        }
        return r;
}

/* The flood and the probing, until the deadline; the children reaped. */
static int phase_flood(context *c, phase *ph, const flood *f, probe *p) {
        uint64_t t0 = bench_now_nsec(), deadline = t0 + c->opt.seconds * NSEC_PER_SEC;
        uint64_t s0 = bench_proc_sched_nsec(c->vmsigd),
                 b0 = c->bus_daemon > 0 ? bench_proc_sched_nsec(c->bus_daemon) : 0;
        int r = f ? start_flood(c, ph, f, deadline) : 0;

        if (r >= 0)
                r = probe_until(p, deadline, c->opt.interval_ms, &ph->lat, c->vmsigd, &ph->peak, NULL, NULL);
        for (size_t i = 0; i < ph->n_children; i++) {
                int k = flood_reap(&ph->children[i], &ph->counts);
                if (k < 0) {
                        ph->failed = true;
                        if (r >= 0)
                                r = k;
                }
        }
        if (ph->lease_fd >= 0)
                close(ph->lease_fd); /* ends the lease */
        ph->holder = sd_bus_flush_close_unref(ph->holder);
        ph->wall = (bench_now_nsec() - t0) / 1e9;
        ph->vmsigd_cpu = (bench_proc_sched_nsec(c->vmsigd) - s0) / 1e9 / ph->wall * 100;
        ph->bus_cpu = c->bus_daemon > 0 ? (bench_proc_sched_nsec(c->bus_daemon) - b0) / 1e9 / ph->wall * 100 : 0;
        return r;
}

static void phase_print(const phase *ph) {
        printf("  root    %zu calls: p50 %.3f ms, p99 %.3f ms, max %.3f ms; %" PRIu64 " failed%s%s\n", ph->summary.n,
               ph->summary.p50, ph->summary.p99, ph->summary.max, ph->failures, ph->failures ? ": " : "", ph->failure);
        if (ph->p2p_summary.n > 0)
                printf("  root    the same through the private socket: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
                       ph->p2p_summary.p50, ph->p2p_summary.p99, ph->p2p_summary.max);
        printf("  cpu     vmsigd %.1f %%, dbus-daemon %.1f %% of one CPU over %.1f s\n", ph->vmsigd_cpu, ph->bus_cpu,
               ph->wall);
        printf("  memory  vmsigd anon+file %ld -> %ld KiB (peak anon %ld KiB; VmRSS %ld -> %ld), fds %d -> %d"
               " (peak %d); settled in %.1f s\n",
               bench_own_rss(&ph->before), bench_own_rss(&ph->after), ph->peak.anon_kib, ph->before.rss_kib,
               ph->after.rss_kib, ph->before.fds, ph->after.fds, ph->peak.fds, ph->settle_seconds);
        fflush(stdout);
}

static int run_phase(context *c, phase *ph, const flood *f) {
        sd_bus *p2p_bus = NULL;
        probe p = {}, p2p = {};
        int r;

        ph->lease_fd = -1;
        printf("== %s: %s\n", ph->key, ph->title);
        fflush(stdout);
        /* Before the private connection: its socket is one more fd of
         * vmsigd's, once vmsigd gets round to accepting it. */
        r = bench_proc_sample_read(c->vmsigd, &ph->before);
        if (r < 0) {
                fprintf(stderr, "bench-floods: vmsigd (pid %d) is gone\n", (int) c->vmsigd);
                return r;
        }
        ph->peak = ph->before;
        audit_count(c->opt.log, &ph->audit_before);
        r = phase_probes(c, ph, &p, &p2p, &p2p_bus);
        if (r >= 0)
                r = phase_flood(c, ph, f, &p);
        ph->failures = p.failures + (p.p2p ? p2p.failures : 0);
        memcpy(ph->failure, p.failures || !p.p2p ? p.failure : p2p.failure, sizeof ph->failure);
        probe_done(&p);
        probe_done(&p2p);
        sd_bus_flush_close_unref(p2p_bus);
        if (r < 0)
                return r;

        ph->settle_seconds = settle(c->vmsigd);
        audit_count(c->opt.log, &ph->audit_after);
        r = bench_proc_sample_read(c->vmsigd, &ph->after);
        if (r < 0) {
                fprintf(stderr, "bench-floods: vmsigd died during %s\n", ph->key);
                return r;
        }
        ph->summary = samples_summary(&ph->lat);
        ph->p2p_summary = samples_summary(&ph->p2p_lat);
        phase_print(ph);
        return 0;
}

static void print_counts(const context *c, const phase *ph) {
        const flood_counts *n = &ph->counts;

        if (strcmp(ph->key, "polkit") == 0) {
                const audit_tally *a = &ph->audit_after, *b = &ph->audit_before;
                printf("  flood   %" PRIu64 " connections as nobody, %" PRIu64 " SubscribeMemctx calls sent",
                       n->connections, n->calls);
                if (c->opt.log) {
                        /* A call is audited once vmsigd decides it; one whose caller it saw
                         * leave first is dropped without a record. */
                        printf("; %" PRIu64 " decided (audited:", a->total - b->total);
                        for (int i = 0; i < AUDIT_REASONS && a->reason[i][0]; i++) {
                                uint64_t before = 0;
                                for (int j = 0; j < AUDIT_REASONS; j++)
                                        if (strcmp(b->reason[j], a->reason[i]) == 0)
                                                before = b->count[j];
                                printf(" %s %" PRIu64, a->reason[i], a->count[i] - before);
                        }
                        printf(")");
                }
                printf("\n");
        } else if (strcmp(ph->key, "leasefd") == 0)
                printf("  flood   3 writers: %" PRIu64 " EBADF on the lease fd, %" PRIu64
                       " reopens through /proc/self/fd, %" PRIu64 " writes (%" PRIu64
                       " bytes) into the reopened pipe, %" PRIu64 " waits for room\n",
                       n->ebadf, n->reopens, n->writes, n->bytes, n->waits);
        else if (n->calls > 0)
                printf("  flood   %" PRIu64 " %s calls: %" PRIu64 " ok, %" PRIu64 " refused (%s)\n", n->calls,
                       strcmp(ph->key, "echo-4k") == 0 ? "EchoBatch" : "MemWriteBatch", n->ok, n->refused,
                       n->refusal[0] ? n->refusal : "-");
        if (n->unexpected > 0)
                printf("  flood   %" PRIu64 " unexpected results, the first: %s\n", n->unexpected, n->unexpected_error);
        fflush(stdout);
}

/* --- throughput: MemWriteBatch vs EchoBatch ------------------------------------------- */

typedef struct batch_ctx {
        context *c;
        uint8_t *data;
        uint64_t k[2];
} batch_ctx;

/* THROUGHPUT_CALLS calls to one side (0: vmsigd, 1: echo-service); adds
 * its time to *sum. */
static int batch_pass(void *userdata, unsigned side, uint64_t *sum) {
        batch_ctx *b = userdata;
        const bench_method m[2] = {
                { .destination = VMSIG_BUS_NAME,
                  .path = b->c->alpha,
                  .interface = VMSIG_BUS_ENDPOINT_INTERFACE,
                  .member = "MemWriteBatch" },
                { .destination = BENCH_ECHO_NAME,
                  .path = BENCH_ECHO_PATH,
                  .interface = BENCH_ECHO_INTERFACE,
                  .member = "EchoBatch" },
        };
        uint64_t start = bench_now_nsec();
        int r = 0;

        for (unsigned i = 0; r >= 0 && i < THROUGHPUT_CALLS; i++) {
                b->data[0] = (uint8_t) i; /* not quite the same bytes every call */
                r = bench_call_batch(b->c->bus, &m[side], b->data, THROUGHPUT_ENTRIES, ENTRY_SIZE, b->c->alpha_ram,
                                     &b->k[side]);
        }
        *sum += bench_now_nsec() - start;
        return r;
}

/* key: "batch", the target, on daemons that have not yet received a
 * message over 4 MiB; "batch-after", report only, once the 16 MiB floods
 * went through vmsigd and dbus-daemon (glibc then keeps more of the heap
 * between messages). */
static int run_throughput(context *c, const char *key, bool *ok) {
        bool target = strcmp(key, "batch") == 0;
        const double mib = (double) THROUGHPUT_ENTRIES * ENTRY_SIZE * THROUGHPUT_CALLS / (1 << 20);
        const size_t bytes = (size_t) THROUGHPUT_ENTRIES * ENTRY_SIZE;
        batch_ctx b = { .c = c, .data = malloc(bytes) };
        uint64_t t[2][BENCH_RUNS_MAX];
        unsigned runs = c->opt.batch_runs;
        int fd = -1, r;

        if (!b.data)
                return -ENOMEM;
        for (size_t i = 0; i < bytes; i++)
                b.data[i] = (uint8_t) (i * 131 + (i >> 12));
        printf("== %s: MemWriteBatch of %u x %u bytes on alpha vs EchoBatch of the same on " BENCH_ECHO_NAME
               ": %u calls (%.0f MiB) per run, median of %u runs, %s\n",
               key, THROUGHPUT_ENTRIES, ENTRY_SIZE, THROUGHPUT_CALLS, mib, runs,
               target ? "before any flood" : "after the floods (report only)");
        fflush(stdout);
        r = bench_acquire_lease(c->bus, c->alpha, "memory-write", &fd, NULL);
        if (r >= 0)
                r = bench_compare_passes(batch_pass, &b, runs, t);
        if (fd >= 0)
                close(fd);
        free(b.data);
        if (r < 0)
                return r;
        double mbps_v = mib / (bench_median_of_runs(t[0], runs) / 1e9),
               mbps_e = mib / (bench_median_of_runs(t[1], runs) / 1e9), ratio = mbps_v / mbps_e;

        *ok = !target || ratio >= BATCH_TARGET;
        printf("  batch   vmsigd %.1f MiB/s  echo %.1f MiB/s  ratio vmsigd/echo %.3f (target >= %.1f) %s", mbps_v,
               mbps_e, ratio, BATCH_TARGET,
               !target ? "report"
               : *ok   ? "PASS"
                       : "FAIL");
        bench_print_mib_runs("vmsigd", "echo", mib, t, runs);
        printf("@ floods-%s vmsigd_mbps=%.1f echo_mbps=%.1f ratio=%.3f\n", key, mbps_v, mbps_e, ratio);
        fflush(stdout);
        return 0;
}

/* --- the load: bench-load's run, probed from outside ------------------------------------ */

typedef struct load_run {
        pid_t pid;        /* bench-load */
        int out;          /* its stdout */
        char buf[65536];  /* what it printed */
        size_t len;
        bool measured;    /* "== load:" came: its measured round */
        bool exited;
        int status;       /* its wait status, once exited */
        bool in_window;   /* its clients are connected */
        bool window_seen;
        sd_bus *probe_bus; /* root on its bus */
        unsigned turn;
} load_run;

static bool load_exited(load_run *l) {
        if (!l->exited && waitpid(l->pid, &l->status, WNOHANG) == l->pid)
                l->exited = true;
        return l->exited;
}

/* Reads what bench-load printed so far (its pipe is non-blocking). */
static void load_read(load_run *l) {
        for (;;) {
                ssize_t n = read(l->out, l->buf + l->len, sizeof l->buf - 1 - l->len);
                if (n <= 0)
                        break;
                l->len += (size_t) n;
        }
        l->buf[l->len] = '\0';
        if (!l->measured && strstr(l->buf, "\n== load:"))
                l->measured = true;
}

static int unique_names(sd_bus *bus) {
        sd_bus_message *reply = NULL;
        const char *name;
        int n = 0, r;

        r = sd_bus_call_method(bus, DBUS_NAME, DBUS_PATH, DBUS_NAME, "ListNames", NULL, &reply, "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "s");
        while (r >= 0 && (r = sd_bus_message_read_basic(reply, 's', &name)) > 0)
                n += name[0] == ':';
        sd_bus_message_unref(reply);
        return r < 0 ? r : n;
}

/* The window is while bench-load's clients (200; more than 100 unique
 * names on its bus) are connected in its measured round. */
static bool load_tick(void *userdata, bool *ret_count) {
        load_run *l = userdata;

        if (l->turn++ % 20 == 0) {
                int n = unique_names(l->probe_bus);
                load_read(l);
                if (n > 100) {
                        l->in_window = true;
                        l->window_seen = true;
                } else if (l->window_seen) {
                        l->in_window = false;
                        return false; /* the clients left: the load is over */
                }
        }
        *ret_count = l->in_window;
        return !load_exited(l);
}

/* bench-load's vmsigd, a child of it, and the bus it was given. */
static int load_find_bus(pid_t load, char **ret_address) {
        struct dirent *de;
        DIR *d = opendir("/proc");
        int r = -ESRCH;

        while (d && r < 0 && (de = readdir(d))) {
                char path[64], text[512], env[65536], *p;
                int pid = atoi(de->d_name), ppid = 0;
                ssize_t n;

                if (pid <= 0)
                        continue;
                snprintf(path, sizeof path, "/proc/%d/stat", pid);
                if (bench_read_text(path, text, sizeof text) < 0)
                        continue;
                p = strrchr(text, ')');
                if (!strstr(text, "(vmsigd)") || !p || sscanf(p + 2, "%*c %d", &ppid) != 1 || ppid != load)
                        continue;
                snprintf(path, sizeof path, "/proc/%d/environ", pid);
                n = bench_read_text(path, env, sizeof env);
                for (ssize_t i = 0; i < n; i += (ssize_t) strlen(env + i) + 1) {
                        if (strncmp(env + i, "DBUS_SYSTEM_BUS_ADDRESS=", 24) == 0) {
                                *ret_address = strdup(env + i + 24);
                                r = *ret_address ? 0 : -ENOMEM;
                                break;
                        }
                }
        }
        if (d)
                closedir(d);
        return r;
}

static double field_of(const char *text, const char *line, const char *key) {
        const char *l = strstr(text, line), *end, *k;
        char pattern[64];

        if (!l)
                return -1;
        end = strchr(l + 1, '\n');
        snprintf(pattern, sizeof pattern, " %s=", key);
        k = strstr(l, pattern);
        if (!k || (end && k > end))
                return -1;
        return strtod(k + strlen(pattern), NULL);
}

/* bench-load, its stdout on a non-blocking pipe. */
static int load_spawn(context *c, load_run *l) {
        char calls[32], warmup[32];
        int pipefd[2];

        snprintf(calls, sizeof calls, "%u", c->opt.load_calls);
        snprintf(warmup, sizeof warmup, "%u", c->opt.load_calls / 5);
        printf("== load: bench-load --calls %s --warmup %s --settle 4 (200 clients, its own bus and vmsigd); root's"
               " calls on its bus while its measured round has its clients\n",
               calls, warmup);
        fflush(stdout);
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        fflush(stderr);
        l->pid = fork();
        if (l->pid < 0)
                return -errno;
        if (l->pid == 0) {
                char *argv[] = { (char *) c->opt.bench_load, "--srcdir", (char *) c->opt.srcdir, "--vmsigd",
                                 (char *) c->opt.vmsigd, "--calls", calls, "--warmup", warmup, "--settle", "4", NULL };
                if (dup2(pipefd[1], STDOUT_FILENO) < 0)
                        _exit(127);
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                execv(argv[0], argv);
                _exit(127);
        }
        close(pipefd[1]);
        l->out = pipefd[0];
        (void) fcntl(l->out, F_SETFL, O_NONBLOCK);
        return 0;
}

/* Root's calls on bench-load's bus, once its vmsigd runs, during its
 * measured round. */
static int load_probe(context *c, load_run *l, uint64_t start, samples *s) {
        char *address = NULL;
        int r = -ETIMEDOUT;

        while (bench_now_nsec() - start < 60 * NSEC_PER_SEC && !load_exited(l)) {
                load_read(l);
                if (!address)
                        (void) load_find_bus(l->pid, &address);
                if (address && l->measured) {
                        r = 0;
                        break;
                }
                usleep(50000);
        }
        if (r >= 0)
                r = bench_bus_connect(address, &l->probe_bus);
        if (r >= 0) {
                probe p;
                r = probe_init(&p, l->probe_bus, VMSIG_BUS_NAME, LOAD_PROBE_NAME, LOAD_PROBE_OTHER);
                if (r >= 0)
                        r = probe_until(&p, bench_now_nsec() + 300 * NSEC_PER_SEC, c->opt.interval_ms, s, 0, NULL,
                                        load_tick, l);
                if (p.failures > 0)
                        printf("  root    %" PRIu64 " calls failed, the first: %s\n", p.failures, p.failure);
                probe_done(&p);
        } else
                fprintf(stderr, "bench-floods: cannot reach bench-load's bus: %s\n", strerror(-r));
        /* Gone before bench-load's settling, whose trim it would delay. */
        l->probe_bus = sd_bus_flush_close_unref(l->probe_bus);
        free(address);
        return r;
}

static bool load_report(const load_run *l, samples *s, double idle_p99) {
        latency lat = samples_summary(s);
        double ratio = idle_p99 > 0 ? lat.p99 / idle_p99 : 0;
        double base = field_of(l->buf, "\n@ load-resources ", "rss_base_kib"),
               after = field_of(l->buf, "\n@ load-resources ", "rss_after_kib"),
               fd_base = field_of(l->buf, "\n@ load-resources ", "fd_base"),
               fd_after = field_of(l->buf, "\n@ load-resources ", "fd_after");
        double rss_ratio = base > 0 ? after / base : 0;
        bool lat_ok = lat.n > 0 && lat.p99 < P99_TARGET_MS;
        bool mem_ok = base > 0 && rss_ratio <= RSS_TARGET && fd_base > 0 && fd_base == fd_after;

        printf("  load    %.0f calls/s over 200 connections, its own p50 %.3f ms, p99 %.3f ms\n",
               field_of(l->buf, "\n@ load ", "cps"), field_of(l->buf, "\n@ load ", "p50_ms"),
               field_of(l->buf, "\n@ load ", "p99_ms"));
        printf("  root    %zu calls: p50 %.3f ms, p99 %.3f ms, max %.3f ms; idle p99 %.3f ms: ratio %.2f"
               " (target p99 < %.0f ms) %s\n",
               lat.n, lat.p50, lat.p99, lat.max, idle_p99, ratio, P99_TARGET_MS, lat_ok ? "PASS" : "FAIL");
        printf("  memory  bench-load's vmsigd, anon+file: %.0f KiB after its warm-up, %.0f KiB after the load: %.3f"
               " (target <= %.2f); fds %.0f -> %.0f %s\n",
               base, after, rss_ratio, RSS_TARGET, fd_base, fd_after, mem_ok ? "PASS" : "FAIL");
        printf("@ floods-load p50_ms=%.3f p99_ms=%.3f max_ms=%.3f samples=%zu idle_p99_ms=%.3f ratio=%.2f"
               " rss_before_kib=%.0f rss_after_kib=%.0f rss_ratio=%.3f fd_before=%.0f fd_after=%.0f load_cps=%.0f\n",
               lat.p50, lat.p99, lat.max, lat.n, idle_p99, ratio, base, after, rss_ratio, fd_base, fd_after,
               field_of(l->buf, "\n@ load ", "cps"));
        fflush(stdout);
        return lat_ok && mem_ok;
}

static int run_load(context *c, double idle_p99, bool *ok) {
        uint64_t start = bench_now_nsec();
        load_run l = { .out = -1 };
        samples s = {};
        int r;

        r = load_spawn(c, &l);
        if (r < 0)
                return r;
        r = load_probe(c, &l, start, &s);
        while (!load_exited(&l)) {
                if (bench_now_nsec() - start > 300 * NSEC_PER_SEC) {
                        (void) kill(l.pid, SIGTERM);
                        (void) waitpid(l.pid, &l.status, 0);
                        l.exited = true;
                        break;
                }
                load_read(&l);
                usleep(50000);
        }
        load_read(&l);
        close(l.out);
        if (!WIFEXITED(l.status) || WEXITSTATUS(l.status) != 0) {
                printf("%s", l.buf);
                fprintf(stderr, "bench-floods: bench-load failed (wait status %d)\n", l.status);
                r = -EIO;
        }
        if (r >= 0)
                *ok = load_report(&l, &s, idle_p99);
        free(s.v);
        return r;
}

/* --- main ------------------------------------------------------------------------------- */

static void parse_options(int argc, char *argv[], options *o) {
        const bench_option table[] = {
                BENCH_OPT_U("seconds", &o->seconds, 1, 600),
                BENCH_OPT_U("interval-ms", &o->interval_ms, 1, 1000),
                BENCH_OPT_U("max-pending", &o->max_pending, 1, 1024),
                BENCH_OPT_S("endpoint", &o->endpoint),
                BENCH_OPT_S("slow", &o->slow),
                BENCH_OPT_S("log", &o->log),
                BENCH_OPT_U("batch-runs", &o->batch_runs, 1, BENCH_RUNS_MAX),
                BENCH_OPT_S("bench-load", &o->bench_load),
                BENCH_OPT_S("srcdir", &o->srcdir),
                BENCH_OPT_S("vmsigd", &o->vmsigd),
                BENCH_OPT_U("load-calls", &o->load_calls, 1000, 100000000),
                BENCH_OPT_L("cases", &o->cases),
                BENCH_OPT_S("private-socket", &o->private_socket),
                {},
        };

        bench_parse_options(
                argc, argv, table,
                "bench-floods [--seconds N] [--interval-ms N] [--max-pending N] [--endpoint NAME] [--slow NAME]\n"
                "             [--log FILE] [--private-socket PATH] [--batch-runs N]\n"
                "             [--bench-load PATH --srcdir DIR --vmsigd PATH]\n"
                "             [--load-calls N]\n"
                "             [--cases polkit,queue,leasefd,nonholder,nonholder-4k,echo-4k,batch,load]\n"
                "root's call latency while others flood vmsigd, vmsigd's memory after each flood, and\n"
                "MemWriteBatch vs EchoBatch of " BENCH_ECHO_NAME ", on the system bus ($DBUS_SYSTEM_BUS_ADDRESS).\n"
                "As root, with polkitd on that bus for the polkit case. --log: vmsigd's stderr (audit\n"
                "records). --max-pending: vmsigd's max-pending-calls (sizes the queue flood).\n"
                "--private-socket: vmsigd's; the probe's calls are made through it too (report only).\n");
        if (o->bench_load && (!o->srcdir || !o->vmsigd)) {
                fprintf(stderr, "bench-floods: --bench-load needs --srcdir and --vmsigd\n");
                exit(EXIT_FAILURE);
        }
}

static int setup(context *c) {
        const struct passwd *pw = getpwnam("nobody");
        const struct group *gr = getgrnam("nogroup");
        int r;

        if (geteuid() != 0) {
                fprintf(stderr, "bench-floods: needs root (leases, nobody's processes, polkitd)\n");
                return -EPERM;
        }
        if (!pw) {
                fprintf(stderr, "bench-floods: no user nobody\n");
                return -ENOENT;
        }
        c->nobody = (identity) { .uid = pw->pw_uid, .gid = gr ? gr->gr_gid : pw->pw_gid };
        c->alpha = bench_endpoint_path(c->opt.endpoint);
        c->slow = bench_endpoint_path(c->opt.slow);
        if (!c->alpha || !c->slow)
                return -ENOMEM;
        r = bench_open_system(&c->bus);
        if (r < 0)
                return r;
        r = bench_name_pid(c->bus, VMSIG_BUS_NAME, &c->vmsigd);
        if (r < 0) {
                fprintf(stderr, "bench-floods: " VMSIG_BUS_NAME " is not on the bus: %s\n", strerror(-r));
                return r;
        }
        if (bench_name_pid(c->bus, DBUS_NAME, &c->bus_daemon) < 0)
                c->bus_daemon = 0;
        c->polkit = bench_wait_name(c->bus, POLKIT_NAME, 0) >= 0;
        r = bench_get_trivial(c->bus, c->alpha, "RamSize", 't', &c->alpha_ram);
        if (r >= 0 && c->alpha_ram < (uint64_t) THROUGHPUT_ENTRIES * ENTRY_SIZE) {
                fprintf(stderr, "bench-floods: %s has less RAM than one batch of %u x %u bytes\n", c->opt.endpoint,
                        THROUGHPUT_ENTRIES, ENTRY_SIZE);
                r = -EINVAL;
        }
        return r;
}

/* One flood's line in the summary, and its "@" line. The private
 * socket's figures are for the diagnosis: they have no target. */
static bool report_phase(const phase *ph, bool control, double idle_p99, double idle_p2p_p99) {
        double ratio = idle_p99 > 0 ? ph->summary.p99 / idle_p99 : 0;
        double rss = bench_own_rss(&ph->before) > 0
                             ? (double) bench_own_rss(&ph->after) / (double) bench_own_rss(&ph->before)
                             : 0;
        bool lat_ok = ph->summary.n > 0 && ph->summary.p99 < P99_TARGET_MS && ph->failures == 0;
        bool mem_ok = rss <= RSS_TARGET && ph->after.fds == ph->before.fds;

        printf("  %-13s root p99 %8.3f ms (idle %.3f): %6.2f x  %s   anon+file %ld -> %ld KiB (%.3f),"
               " fds %d -> %d  %s\n",
               ph->key, ph->summary.p99, idle_p99, ratio,
               control  ? "(control)"
               : lat_ok ? "PASS"
                        : "FAIL",
               bench_own_rss(&ph->before), bench_own_rss(&ph->after), rss, ph->before.fds, ph->after.fds,
               mem_ok ? "PASS" : "FAIL");
        if (ph->p2p_summary.n > 0)
                printf("  %-13s private socket p99 %.3f ms (idle %.3f)\n", "", ph->p2p_summary.p99, idle_p2p_p99);
        printf("@ floods-%s p50_ms=%.3f p99_ms=%.3f max_ms=%.3f samples=%zu failures=%" PRIu64
               " idle_p99_ms=%.3f ratio=%.2f rss_before_kib=%ld rss_after_kib=%ld rss_ratio=%.3f fd_before=%d"
               " fd_after=%d vmsigd_cpu_pct=%.1f bus_cpu_pct=%.1f unexpected=%" PRIu64
               " p2p_p99_ms=%.3f p2p_idle_p99_ms=%.3f control=%d\n",
               ph->key, ph->summary.p50, ph->summary.p99, ph->summary.max, ph->summary.n, ph->failures, idle_p99, ratio,
               bench_own_rss(&ph->before), bench_own_rss(&ph->after), rss, ph->before.fds, ph->after.fds,
               ph->vmsigd_cpu, ph->bus_cpu, ph->counts.unexpected, ph->p2p_summary.p99, idle_p2p_p99, control);
        return (lat_ok || control) && mem_ok && ph->counts.unexpected == 0 && !ph->failed;
}

/* The idle phases and every flood in between. */
static int run_phases(context *c, phase idle[2], phase *ph) {
        int r = run_phase(c, &idle[0], NULL);

        for (size_t i = 0; r >= 0 && i < BENCH_ELEMENTS(floods); i++) {
                ph[i].key = floods[i].key;
                ph[i].title = floods[i].title;
                if (!bench_list_wants(&c->opt.cases, floods[i].key) ||
                    (strcmp(floods[i].key, "polkit") == 0 && !c->polkit)) {
                        ph[i].skipped = true;
                        continue;
                }
                r = run_phase(c, &ph[i], &floods[i]);
                if (r >= 0)
                        print_counts(c, &ph[i]);
        }
        return r < 0 ? r : run_phase(c, &idle[1], NULL);
}

/* The summary against both idle phases; *ret_idle_p99 for the load. */
static int report_phases(context *c, phase idle[2], phase *ph, bool *ok, double *ret_idle_p99) {
        samples p2p_idle = {};
        int r = 0;

        for (unsigned i = 0; r >= 0 && i < 2; i++) {
                r = samples_append(&c->idle, &idle[i].lat);
                if (r >= 0)
                        r = samples_append(&p2p_idle, &idle[i].p2p_lat);
        }
        latency base = samples_summary(&c->idle), p2p_base = samples_summary(&p2p_idle);
        free(p2p_idle.v);
        if (r < 0)
                return r;
        printf("== summary: root's p99 vs the idle daemon's (both idle phases: %zu calls, p50 %.3f ms, p99 %.3f ms, max"
               " %.3f ms; %.3f and %.3f ms apart); target p99 < %.0f ms, RSS within %.0f %%, fds equal\n",
               base.n, base.p50, base.p99, base.max, idle[0].summary.p99, idle[1].summary.p99, P99_TARGET_MS,
               (RSS_TARGET - 1) * 100);
        if (p2p_base.n > 0)
                printf("  idle    the same calls through the private socket: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
                       p2p_base.p50, p2p_base.p99, p2p_base.max);
        printf("@ floods-idle p50_ms=%.3f p99_ms=%.3f max_ms=%.3f samples=%zu p99_first_ms=%.3f p99_second_ms=%.3f"
               " p2p_p99_ms=%.3f\n",
               base.p50, base.p99, base.max, base.n, idle[0].summary.p99, idle[1].summary.p99, p2p_base.p99);
        for (size_t i = 0; i < BENCH_ELEMENTS(floods); i++) {
                if (ph[i].skipped) {
                        printf("  %-13s skipped%s\n", ph[i].key,
                               strcmp(ph[i].key, "polkit") == 0 && !c->polkit ? ": no polkitd on the bus" : "");
                        printf("@ floods-%s skipped\n", ph[i].key);
                        continue;
                }
                *ok &= report_phase(&ph[i], floods[i].control, base.p99, p2p_base.p99);
        }
        printf("  vmsigd  anon+file %ld KiB before the first phase, %ld KiB after the last; fds %d -> %d\n",
               bench_own_rss(&c->first), bench_own_rss(&idle[1].after), c->first.fds, idle[1].after.fds);
        fflush(stdout);
        *ret_idle_p99 = base.p99;
        return 0;
}

static int run_all(context *c, phase idle[2], phase *ph) {
        bool ok = true, batch_ok = false, load_ok = false;
        double idle_p99 = 0;
        int r = 0;

        printf("bench-floods: vmsigd pid %d, dbus-daemon pid %d, polkitd %s; root probes every %u ms for %u s a"
               " phase\n",
               (int) c->vmsigd, (int) c->bus_daemon, c->polkit ? "on the bus" : "absent", c->opt.interval_ms,
               c->opt.seconds);
        /* First, on daemons that have not seen a large message yet (see
         * run_throughput()). */
        if (bench_list_wants(&c->opt.cases, "batch")) {
                r = run_throughput(c, "batch", &batch_ok);
                ok &= batch_ok;
        }
        if (r < 0)
                return r;
        printf("  settling first (vmsigd idle for %.1f s): %.1f s\n", QUIET_NSEC / 1e9, settle(c->vmsigd));
        (void) bench_proc_sample_read(c->vmsigd, &c->first);
        r = run_phases(c, idle, ph);
        if (r >= 0)
                r = report_phases(c, idle, ph, &ok, &idle_p99);
        if (r >= 0 && bench_list_wants(&c->opt.cases, "batch"))
                r = run_throughput(c, "batch-after", &batch_ok);
        if (r >= 0 && c->opt.bench_load && bench_list_wants(&c->opt.cases, "load")) {
                r = run_load(c, idle_p99, &load_ok);
                ok &= load_ok;
        }
        if (r >= 0)
                printf("bench-floods: %s\n", ok ? "every target met" : "some target missed (see above)");
        return r;
}

int main(int argc, char *argv[]) {
        context c = {
                .opt = { .seconds = 6,
                         .interval_ms = 5,
                         .max_pending = 8,
                         .batch_runs = 3,
                         .load_calls = 40000,
                         .endpoint = "alpha",
                         .slow = "slow" },
        };
        phase idle[2] = {
                { .key = "idle", .title = "nothing but the probe (the baseline, 1 of 2)" },
                { .key = "idle", .title = "nothing but the probe (the baseline, 2 of 2)" },
        };
        phase ph[BENCH_ELEMENTS(floods)] = {};
        int r;

        parse_options(argc, argv, &c.opt);
        /* Replies to callers that left, pipes whose reader went: not
         * reasons to die. */
        (void) signal(SIGPIPE, SIG_IGN);
        r = setup(&c);
        if (r >= 0)
                r = run_all(&c, idle, ph);
        for (size_t i = 0; i < BENCH_ELEMENTS(ph); i++) {
                free(ph[i].lat.v);
                free(ph[i].p2p_lat.v);
        }
        for (size_t i = 0; i < 2; i++) {
                free(idle[i].lat.v);
                free(idle[i].p2p_lat.v);
        }
        free(c.idle.v);
        free(c.alpha);
        free(c.slow);
        sd_bus_flush_close_unref(c.bus);
        /* A missed target is for run.sh's summary to judge, not an error. */
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
