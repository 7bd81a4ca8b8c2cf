/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-calls: the benchmarks of one shape, as one table. With vmsigd and
 * bench/echo-service on the private bus bench/run.sh starts
 * ($DBUS_SYSTEM_BUS_ADDRESS), a case times N sequential calls of what
 * vmsigd offers (side A) against a baseline doing the same on the wire
 * (side B), both issued by the same client function, alternating in
 * slices (ABBA, bench_compare()), and reports the median of RUNS runs:
 *   NAME  A R calls/s (U us)  B R calls/s (U us)  ratio WHAT X (target ...)
 * then the fds this process had open before and after (a leak fails the
 * case). The ratio is A's time / B's, or (p2p cases) B's time / A's: how
 * many times faster the private socket is. Cases of a string method first
 * check that both answer, timing vmsigd's first call (first_ms).
 *
 *   bus-*         vmsigd vs echo-service: Properties.Get of Version, of an
 *                 endpoint's State, GetEndpoint(NAME) vs Echo(NAME)
 *   private-*     as root, vmsigd's private socket (--socket; no Hello, a
 *                 NULL destination) vs vmsigd through dbus-daemon from a
 *                 second connection; private-echo does the same with
 *                 echo-service's p2p socket (--echo-socket): a reference
 *   auth-steady   as a user other than root (nobody), with polkitd: the
 *                 public GetEndpoint vs Echo on one new connection
 *   auth-first    the same, a new connection per call (SAMPLES per run,
 *                 median sample): what vmsigd's first call adds, and for
 *                 reference a CheckAuthorization alone, asked about itself
 *   memctx-subscribe  SubscribeMemctx vs EchoFd (a reply of the same
 *                 shape with an fd of a memfd; a new fd every call)
 *   memctx-read   read bandwidth through the RAM fd of --ram-endpoint vs a
 *                 sealed read-only memfd copy of it (see memctx_read())
 *   lease         AcquireLease(--class, {}) + Release() cycles, the private
 *                 socket vs the bus (report only: no baseline does that)
 *   memwrite-call MemWrite(gpa, 8 bytes, {}) vs Echo("01234567"), under
 *                 the memory-write lease
 *   memwrite-batch  MemWriteBatch of 1024 x 4 KiB per call vs pwrite() of
 *                 the same bytes at the same offsets into a memfd
 *   frames-bus    GetFrame (a sealed memfd) vs EchoFd, subscribed, with
 *                 the FrameChanged signals of one second counted
 *   scale         in process, no bus: 256 stub endpoints attached to one
 *                 core and detached: times, RSS and fds per endpoint
 * Lines starting with "@" are for bench/run.sh.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench-lib.h"
#include "macro.h"
#include "stub.h"
#include "vmsig-core.h"
#include "vmsig-endpoint.h"

#define UNSET UINT32_MAX
#define PASSES_MAX 1000

typedef enum calls_conn { ON_BUS, ON_P2P, ON_ECHO_P2P } calls_conn;

typedef struct calls_ctx {
        unsigned calls_opt, warmup_opt, runs, samples, fresh, passes, endpoints;
        unsigned calls, warmup; /* of the case running */
        const char *endpoint, *ram_endpoint, *socket, *echo_socket, *ram_size, *class;
        bool list;
        char *path, *ram_path;
        sd_bus *bus, *p2p, *echo_p2p; /* opened when a case first needs them */
        char extra[64];               /* the case's own fields for its "@" line */
        bench_lease lease;
} calls_ctx;

/* One side of a case: its label (in the report and the "@" fields), its
 * connection, its call. */
typedef struct calls_side {
        const char *label;
        calls_conn on;
        bench_method m;
} calls_side;

enum {
        CASE_RATES = 1 << 0,     /* the ratio is B's time / A's (A's rate / B's) */
        CASE_REFERENCE = 1 << 1, /* no target: a reference for the others */
        CASE_CYCLES = 1 << 2,    /* a call is a cycle (lease) */
        CASE_NOT_ROOT = 1 << 3,  /* run it as someone else (auth) */
        CASE_NO_BUS = 1 << 4,    /* in process (scale) */
};

typedef struct call_case call_case;
struct call_case {
        const char *name, *what; /* name: its "@" key too */
        calls_side a, b;
        bench_call_fn call;    /* issues the calls of both sides */
        const char *ratio_what;
        char target_cmp;       /* '<': ratio <= target, '>': >=, 0: none */
        double target;
        unsigned flags;
        int (*setup)(calls_ctx *c, const call_case *cc);
        int (*done)(calls_ctx *c);
        int (*run)(calls_ctx *c, const call_case *cc); /* NULL: A against B */
        unsigned calls, warmup;                         /* 0: 20000, 2000 */
};

/* --- the client functions: each issues both sides' calls -------------------- */

/* A method without arguments whose reply starts with an fd (EchoFd,
 * SubscribeMemctx, GetFrame): the fd goes with the reply. Signals queued
 * meanwhile (FrameChanged) are dropped. */
static int call_fd(sd_bus *bus, const void *userdata) {
        const bench_method *t = userdata;
        sd_bus_message *reply = NULL;
        int fd = -1, r;

        r = bench_callf(bus, t->destination, t->path, t->interface, t->member, &reply, NULL);
        if (r >= 0)
                r = sd_bus_message_read(reply, "h", &fd);
        if (r >= 0 && fd < 0)
                r = -EBADF;
        sd_bus_message_unref(reply);
        return r < 0 ? r : bench_drain(bus);
}

/* MemWrite(t ay a{sv}) of 8 bytes, its gpa wrapping inside the RAM, or
 * Echo(s) of as many characters. */
static const char payload[8] = "01234567";
static uint64_t memwrite_ram, memwrite_gpa;

static int call_small(sd_bus *bus, const void *userdata) {
        const bench_method *t = userdata;
        sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, t->destination, t->path, t->interface, t->member);
        if (r >= 0 && !t->arg1) {
                uint64_t gpa = memwrite_gpa;

                memwrite_gpa = (gpa + 64) % (memwrite_ram - sizeof payload + 1);
                r = sd_bus_message_append(m, "t", gpa);
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', payload, sizeof payload);
                if (r >= 0)
                        r = sd_bus_message_append(m, "a{sv}", 0);
        } else if (r >= 0)
                r = sd_bus_message_append(m, "s", t->arg1);
        if (r >= 0)
                r = bench_call(bus, m, NULL);
        sd_bus_message_unref(m);
        return r;
}

/* One lease cycle: AcquireLease(arg1, {}) -> (o, h), Release() on the
 * lease, and only then the fd (with the reply that owns it): closing it
 * first would end the lease before Release() came. The p2p peer gets the
 * lease signals too; they are dropped after each cycle. */
static int call_lease(sd_bus *bus, const void *userdata) {
        const bench_method *t = userdata;
        sd_bus_message *acquired = NULL;
        const char *lease = NULL;
        int fd = -1, r;

        r = bench_callf(bus, t->destination, t->path, t->interface, t->member, &acquired, "sa{sv}", t->arg1, 0);
        if (r >= 0)
                r = sd_bus_message_read(acquired, "oh", &lease, &fd);
        if (r >= 0)
                r = bench_callf(bus, t->destination, lease, VMSIG_BUS_LEASE_INTERFACE, "Release", NULL, NULL);
        sd_bus_message_unref(acquired);
        return r < 0 ? r : bench_drain(bus);
}

/* --- auth-first, and waiting for polkitd ------------------------------------------ */

/* One sample: a connection, Hello and one call. Closing it is not timed. */
static int one_connection(const bench_method *t, uint64_t *ret) {
        uint64_t start = bench_now_nsec();
        sd_bus *bus = NULL;
        int r;

        r = bench_open_system(&bus);
        if (r >= 0)
                r = bench_call_method(bus, t);
        *ret = bench_now_nsec() - start;
        sd_bus_flush_close_unref(bus);
        return r;
}

#define AUTH_ACTION "org.vmsig.admin"

/* What vmsigd asks polkit for an administrative call, asked by the caller
 * about itself (an unprivileged caller may ask about itself only, and
 * without details, which polkitd takes from trusted callers only): what a
 * polkit check costs, without vmsigd. The answer (no) does not matter. */
static int check_authorization(sd_bus *bus, uint64_t *ret) {
        uint64_t start = bench_now_nsec();
        sd_bus_message *reply = NULL;
        const char *self = NULL;
        int authorized = 0, challenge = 0, r;

        r = sd_bus_get_unique_name(bus, &self);
        if (r >= 0)
                r = bench_callf(bus, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
                                "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization", &reply,
                                "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s", self, AUTH_ACTION, 0, 0, "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        *ret = bench_now_nsec() - start;
        sd_bus_message_unref(reply);
        return r;
}

static void report_first(const call_case *cc, uint64_t m[3][BENCH_RUNS_MAX], unsigned samples, unsigned runs) {
        uint64_t v = bench_median_of_runs(m[0], runs), e = bench_median_of_runs(m[1], runs);
        uint64_t p = bench_median_of_runs(m[2], runs);
        double added = ((double) v - (double) e) / 1e6;

        printf("  %-16s uid %u, a new connection per call, median of %u samples, median of %u runs:\n", cc->name,
               (unsigned) getuid(), samples, runs);
        printf("  %-16s connect + first GetEndpoint %.3f ms   connect + Echo %.3f ms   added by vmsigd %.3f ms  (runs:",
               cc->name, v / 1e6, e / 1e6, added);
        for (unsigned i = 0; i < runs; i++)
                printf(" %.3f-%.3f", m[0][i] / 1e6, m[1][i] / 1e6);
        printf(")\n  %-16s a polkit check would add: CheckAuthorization(" AUTH_ACTION ") alone, asked by the caller"
               " about itself, %.3f ms (runs:", cc->name, p / 1e6);
        for (unsigned i = 0; i < runs; i++)
                printf(" %.3f", m[2][i] / 1e6);
        printf(")\n@ auth-first vmsigd_ms=%.3f echo_ms=%.3f added_ms=%.3f polkit_ms=%.3f samples=%u\n", v / 1e6,
               e / 1e6, added, p / 1e6, samples);
}

/* SAMPLES pairs of new connections per run, which goes first alternating
 * (ABBA), and SAMPLES polkit checks on one connection; the median sample
 * of each counts. */
static int auth_first(calls_ctx *c, const call_case *cc) {
        _cleanup_free_ uint64_t *s = calloc(2 * c->samples, sizeof *s);
        uint64_t m[3][BENCH_RUNS_MAX], ignored;
        int r = s ? 0 : -ENOMEM;

        for (unsigned i = 0; r >= 0 && i < 2 * c->warmup; i++)
                r = one_connection(i % 2 ? &cc->b.m : &cc->a.m, &ignored);
        for (unsigned run = 0; r >= 0 && run < c->runs; run++) {
                for (unsigned i = 0; r >= 0 && i < 2 * c->samples; i++) {
                        unsigned side = bench_abba(i);

                        r = one_connection(side ? &cc->b.m : &cc->a.m, &s[side * c->samples + i / 2]);
                }
                m[0][run] = bench_median(s, c->samples);
                m[1][run] = bench_median(s + c->samples, c->samples);
                for (unsigned i = 0; r >= 0 && i < c->samples; i++)
                        r = check_authorization(c->bus, &s[i]);
                m[2][run] = bench_median(s, c->samples);
        }
        if (r >= 0)
                report_first(cc, m, c->samples, c->runs);
        return r;
}

/* polkitd reads the action files at start and on inotify. */
static bool action_registered(sd_bus *bus, const char *action) {
        sd_bus_message *reply = NULL;
        const char *id;
        bool found = false;
        int r;

        r = sd_bus_call_method(bus, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
                               "org.freedesktop.PolicyKit1.Authority", "EnumerateActions", NULL, &reply, "s", "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssssssuuua{ss})");
        while (r >= 0 && !found && (r = sd_bus_message_enter_container(reply, 'r', "ssssssuuua{ss}")) > 0) {
                r = sd_bus_message_read(reply, "s", &id);
                if (r >= 0)
                        found = strcmp(id, action) == 0;
                if (r >= 0)
                        r = sd_bus_message_skip(reply, "sssssuuua{ss}");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        sd_bus_message_unref(reply);
        return found;
}

static int auth_wait_action(sd_bus *bus, const char *action, double timeout) {
        uint64_t deadline = bench_now_nsec() + (uint64_t) (timeout * 1e9);

        while (!action_registered(bus, action)) {
                if (bench_now_nsec() > deadline)
                        return -ETIMEDOUT;
                nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
        return 0;
}

/* --- memctx-read: the RAM fd against a memfd copy ---------------------------------------- */

typedef struct memctx_datum {
        int fd; /* owned by the reply */
        uint64_t dtb, epoch, size;
        unsigned n_ranges;
} memctx_datum;

/* SubscribeMemctx on path: the reply (which owns the fd) and its datum. */
static int memctx_get(sd_bus *bus, const char *path, sd_bus_message **ret_reply, memctx_datum *d) {
        uint64_t gpa, size, offset;
        int r;

        *d = (memctx_datum) { .fd = -1 };
        r = bench_callf(bus, VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, "SubscribeMemctx", ret_reply, NULL);
        if (r >= 0)
                r = sd_bus_message_read(*ret_reply, "httt", &d->fd, &d->dtb, &d->epoch, &d->size);
        if (r >= 0)
                r = sd_bus_message_enter_container(*ret_reply, 'a', "(ttt)");
        while (r >= 0 && (r = sd_bus_message_read(*ret_reply, "(ttt)", &gpa, &size, &offset)) > 0)
                d->n_ranges++;
        return r < 0 ? r : d->fd < 0 ? -EBADF : 0;
}

/* Four independent sums, so that the loop is bound by memory rather than
 * by one chain of additions. */
static __attribute__((noinline)) uint64_t sum_u64(const uint64_t *p, size_t n) {
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        size_t i;

        for (i = 0; i + 4 <= n; i += 4) {
                s0 += p[i];
                s1 += p[i + 1];
                s2 += p[i + 2];
                s3 += p[i + 3];
        }
        for (; i < n; i++)
                s0 += p[i];
        return s0 + s1 + s2 + s3;
}

/* A memfd with the same contents as src, sealed and reopened read-only the
 * way src/host/stub does it for guest RAM: the "daemon-side" mapping. */
static int make_baseline(const void *src, size_t size) {
        char path[64];
        void *p;
        int fd, ro, r = 0;

        fd = memfd_create("bench-baseline", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t) size) < 0)
                r = -errno;
        p = r >= 0 ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
        if (r >= 0 && p == MAP_FAILED)
                r = -errno;
        if (r >= 0) {
                memcpy(p, src, size);
                munmap(p, size);
        }
        if (r >= 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0)
                r = -errno;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ro = r >= 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (r >= 0 && ro < 0)
                r = -errno;
        close(fd);
        return r < 0 ? r : ro;
}

static uint64_t minor_faults(void) {
        struct rusage ru;

        return getrusage(RUSAGE_SELF, &ru) < 0 ? 0 : (uint64_t) ru.ru_minflt;
}

/* A fresh mapping: mmap, then the first pass, page faults and all; the
 * munmap is not timed. */
static int read_fresh(int fd, size_t size, uint64_t *ret_nsec, uint64_t *ret_sum) {
        uint64_t start = bench_now_nsec();
        const uint64_t *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);

        if (p == MAP_FAILED)
                return -errno;
        *ret_sum = sum_u64(p, size / sizeof(uint64_t));
        *ret_nsec = bench_now_nsec() - start;
        munmap((void *) p, size);
        return 0;
}

/* One more pass over a mapping already faulted in. */
static int read_warm(const uint64_t *p, size_t size, uint64_t expect, uint64_t *ret_nsec) {
        uint64_t start = bench_now_nsec(), sum;

        /* Not to be taken for a repetition of the last pass (sum_u64() is
         * pure) and dropped. */
        __asm__ __volatile__("" ::: "memory");
        sum = sum_u64(p, size / sizeof(uint64_t));
        *ret_nsec = bench_now_nsec() - start;
        return sum == expect ? 0 : -EIO; /* the contents changed under us */
}

/* The ratio is the median of the runs' ratios: the two sides of one run
 * shared the machine's load, runs may not have. */
static void print_read(const char *key, uint64_t bytes, const uint64_t *tr, const uint64_t *tb, unsigned runs) {
        uint64_t mr = bench_median_of_runs(tr, runs), mb = bench_median_of_runs(tb, runs), ratios[BENCH_RUNS_MAX];
        double gr = bytes / (double) mr, gb = bytes / (double) mb; /* bytes per ns: GB/s */

        for (unsigned i = 0; i < runs; i++)
                ratios[i] = tb[i] * 1000000 / tr[i]; /* received/baseline bandwidth, in millionths */
        double ratio = bench_median_of_runs(ratios, runs) / 1e6;
        printf("  memctx-read %-5s received fd %6.2f GB/s  baseline %6.2f GB/s  ratio %.3f (target >= 0.95: %s)"
               "  (runs: received", key, gr, gb, ratio, ratio >= 0.95 ? "PASS" : "FAIL");
        bench_print_rates(bytes / 1e9, 2, tr, runs);
        printf("; baseline");
        bench_print_rates(bytes / 1e9, 2, tb, runs);
        printf("; ratio");
        for (unsigned i = 0; i < runs; i++)
                printf(" %.3f", ratios[i] / 1e6);
        printf(")\n@ memctx-read-%s received_gbps=%.2f baseline_gbps=%.2f ratio=%.3f\n", key, gr, gb, ratio);
}

/* The median pass of each side of n, times n: a burst of other work spoils
 * a pass or two, not the run. */
static void median_passes(uint64_t t[2][PASSES_MAX], unsigned n, uint64_t *ret) {
        for (unsigned side = 0; side < 2; side++)
                ret[side] = bench_median(t[side], n) * n;
}

/* One run: FRESH fresh mappings of each side, then PASSES warm passes over
 * one mapping of each, alternating ABBA at every step. ret: fresh
 * received, fresh baseline, warm received, warm baseline. */
static int read_run(const int fds[2], size_t size, const calls_ctx *c, uint64_t expect, uint64_t ret[4],
                    uint64_t faults[4]) {
        const uint64_t *map[2] = { MAP_FAILED, MAP_FAILED };
        uint64_t t[2][PASSES_MAX], sum;
        int r = 0;

        for (unsigned i = 0; r >= 0 && i < 2 * c->fresh; i++) {
                unsigned side = bench_abba(i);
                uint64_t f = minor_faults();

                r = read_fresh(fds[side], size, &t[side][i / 2], &sum);
                faults[side] += minor_faults() - f;
                if (r >= 0 && sum != expect)
                        r = -EIO;
        }
        if (r >= 0)
                median_passes(t, c->fresh, ret);
        for (unsigned side = 0; r >= 0 && side < 2; side++) {
                map[side] = mmap(NULL, size, PROT_READ, MAP_SHARED, fds[side], 0);
                /* Fault it in, untimed. */
                r = map[side] == MAP_FAILED ? -errno : read_warm(map[side], size, expect, &t[side][0]);
        }
        for (unsigned i = 0; r >= 0 && i < 2 * c->passes; i++) {
                unsigned side = bench_abba(i);
                uint64_t f = minor_faults();

                r = read_warm(map[side], size, expect, &t[side][i / 2]);
                faults[2 + side] += minor_faults() - f;
        }
        if (r >= 0)
                median_passes(t, c->passes, ret + 2);
        for (unsigned side = 0; side < 2; side++)
                if (map[side] != MAP_FAILED)
                        munmap((void *) map[side], size);
        return r;
}

/* Give the guest RAM a pattern, so that the baseline's copy and the
 * checksums prove something: under the memory-write lease, one
 * MemWriteBatch writes the address of every 64 KiB block into it (bit 0
 * clear: nothing that looks like a present page-table entry). */
#define PATTERN_STRIDE (64u << 10)
#define PATTERN_WRITES 4096u

static int write_pattern(sd_bus *bus, const char *endpoint_path, uint64_t size) {
        sd_bus_message *m = NULL;
        uint64_t stride = size / PATTERN_WRITES < PATTERN_STRIDE ? PATTERN_STRIDE : size / PATTERN_WRITES;
        bench_lease lease;
        int r;

        r = bench_lease_acquire(bus, endpoint_path, "memory-write", &lease);
        if (r >= 0)
                r = sd_bus_message_new_method_call(bus, &m, VMSIG_BUS_NAME, endpoint_path,
                                                   VMSIG_BUS_ENDPOINT_INTERFACE, "MemWriteBatch");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(tay)");
        for (uint64_t gpa = 0; r >= 0 && gpa + sizeof gpa <= size && gpa / stride < PATTERN_WRITES; gpa += stride)
                r = bench_append_entry(m, gpa, &gpa, sizeof gpa);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        r = bench_call_write(bus, m, r);
        bench_lease_release(bus, &lease);
        return r;
}

/* Checks the received RAM fd (large enough, read-only even for root),
 * writes the pattern into the guest RAM and returns the baseline's fd. */
static int prepare_read(sd_bus *bus, const char *endpoint_path, const memctx_datum *d) {
        struct stat st;
        void *ram;
        int r;

        if (fstat(d->fd, &st) < 0)
                return -errno;
        if (d->size == 0 || (uint64_t) st.st_size < d->size) {
                fprintf(stderr, "bench-calls: the RAM fd has %jd bytes for a RAM size of %" PRIu64 "\n",
                        (intmax_t) st.st_size, d->size);
                return -EINVAL;
        }
        r = write_pattern(bus, endpoint_path, d->size);
        if (r < 0)
                return r;
        if (mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0) != MAP_FAILED) {
                fprintf(stderr, "bench-calls: the received RAM fd can be mapped writable\n");
                return -EPERM;
        }
        ram = mmap(NULL, d->size, PROT_READ, MAP_SHARED, d->fd, 0);
        if (ram == MAP_FAILED)
                return -errno;
        r = make_baseline(ram, d->size);
        munmap(ram, d->size);
        return r;
}

/* Warm-up: a fresh mapping of each, which also checks that the baseline
 * holds the same contents; then the runs. */
static int read_runs(const calls_ctx *c, const int fds[2], uint64_t size, uint64_t t[4][BENCH_RUNS_MAX],
                     uint64_t faults[4], uint64_t *expect) {
        uint64_t ignored, base_sum = 0, x[4];
        int r;

        r = read_fresh(fds[0], size, &ignored, expect);
        if (r >= 0)
                r = read_fresh(fds[1], size, &ignored, &base_sum);
        if (r >= 0 && base_sum != *expect) {
                fprintf(stderr, "bench-calls: the baseline does not hold the guest RAM's contents\n");
                return -EIO;
        }
        for (unsigned i = 0; r >= 0 && i < c->runs; i++) {
                r = read_run(fds, size, c, *expect, x, faults);
                for (unsigned k = 0; k < 4; k++)
                        t[k][i] = x[k];
        }
        if (r < 0)
                fprintf(stderr, "bench-calls: reading the RAM: %s\n", strerror(-r));
        return r;
}

static int memctx_read(calls_ctx *c, const call_case *cc) {
        uint64_t t[4][BENCH_RUNS_MAX], faults[4] = {}, expect = 0;
        sd_bus_message *reply = NULL;
        memctx_datum d;
        int fds[2] = { -1, -1 }, r;

        r = memctx_get(c->bus, c->ram_path, &reply, &d);
        fds[0] = d.fd;
        if (r >= 0)
                r = fds[1] = prepare_read(c->bus, c->ram_path, &d);
        if (r >= 0) {
                printf("  %-16s %s: %" PRIu64 " MiB; per run %u fresh mappings and %u warm passes of each,"
                       " alternating, the median pass counts; median of %u runs\n",
                       cc->name, c->ram_path, d.size >> 20, c->fresh, c->passes, c->runs);
                r = read_runs(c, fds, d.size, t, faults, &expect);
        }
        if (r >= 0) {
                print_read("warm", d.size * c->passes, t[2], t[3], c->runs);
                print_read("fresh", d.size * c->fresh, t[0], t[1], c->runs);
                /* A warm pass takes none; a fresh mapping one per
                 * fault-around block (16 pages by default). */
                printf("  %-16s minor faults per fresh mapping: received %.0f, baseline %.0f; in all warm passes:"
                       " received %" PRIu64 ", baseline %" PRIu64 "\n  %-16s checksum 0x%016" PRIx64 " (both)\n",
                       cc->name, (double) faults[0] / (c->fresh * c->runs), (double) faults[1] / (c->fresh * c->runs),
                       faults[2], faults[3], cc->name, expect);
                r = bench_callf(c->bus, VMSIG_BUS_NAME, c->ram_path, VMSIG_BUS_ENDPOINT_INTERFACE, "UnsubscribeMemctx",
                                NULL, NULL);
        }
        if (fds[1] >= 0)
                close(fds[1]);
        sd_bus_message_unref(reply);
        return r;
}

/* --- memwrite-batch: MemWriteBatch against pwrite() ------------------------------------ */

#define MEMWRITE_ENTRY_SIZE 4096u
#define BATCH_ENTRIES 1024u
#define BATCH_BYTES ((uint64_t) MEMWRITE_ENTRY_SIZE * BATCH_ENTRIES)
#define BATCH_CALLS 16u /* 64 MiB per run */

typedef struct batch_ctx {
        sd_bus *bus;
        const char *path;
        int memfd;
        uint8_t *data;
        uint64_t ram, k[2];
} batch_ctx;

/* The same bytes at the same offsets, one pwrite() per entry. */
static int pwrite_batch(int fd, const uint8_t *data, uint64_t ram, uint64_t *k) {
        for (unsigned i = 0; i < BATCH_ENTRIES; i++, (*k)++) {
                ssize_t n = pwrite(fd, data + (size_t) i * MEMWRITE_ENTRY_SIZE, MEMWRITE_ENTRY_SIZE,
                                   (off_t) bench_batch_offset(*k, MEMWRITE_ENTRY_SIZE, ram));
                if (n != (ssize_t) MEMWRITE_ENTRY_SIZE) {
                        fprintf(stderr, "bench-calls: pwrite: %s\n", n < 0 ? strerror(errno) : "short write");
                        return n < 0 ? -errno : -EIO;
                }
        }
        return 0;
}

/* One pass of BATCH_CALLS batches on one side (0: vmsigd, 1: the memfd);
 * adds its time to *sum. */
static int batch_pass(void *userdata, unsigned side, uint64_t *sum) {
        batch_ctx *b = userdata;
        const bench_method vm = { .destination = VMSIG_BUS_NAME, .path = b->path,
                                  .interface = VMSIG_BUS_ENDPOINT_INTERFACE, .member = "MemWriteBatch" };
        uint64_t start = bench_now_nsec();
        int r = 0;

        for (unsigned c = 0; r >= 0 && c < BATCH_CALLS; c++) {
                b->data[0] = (uint8_t) c; /* not quite the same bytes every call */
                r = side ? pwrite_batch(b->memfd, b->data, b->ram, &b->k[1])
                         : bench_call_batch(b->bus, &vm, b->data, BATCH_ENTRIES, MEMWRITE_ENTRY_SIZE, b->ram, &b->k[0]);
        }
        *sum += bench_now_nsec() - start;
        return r;
}

static int memwrite_batch(calls_ctx *c, const call_case *cc) {
        const double mib = (double) BATCH_BYTES * BATCH_CALLS / (1 << 20);
        batch_ctx b = { .bus = c->bus, .path = c->path, .ram = memwrite_ram, .data = malloc(BATCH_BYTES) };
        uint64_t t[2][BENCH_RUNS_MAX];
        int r = 0;

        b.memfd = memfd_create("bench-memwrite", MFD_CLOEXEC);
        if (!b.data || b.memfd < 0 || ftruncate(b.memfd, (off_t) b.ram) < 0) {
                r = b.data ? -errno : -ENOMEM;
                fprintf(stderr, "bench-calls: memfd of %" PRIu64 " bytes: %s\n", b.ram, strerror(-r));
        }
        for (size_t i = 0; r >= 0 && i < BATCH_BYTES; i++)
                b.data[i] = (uint8_t) (i * 131 + (i >> 12));
        if (r >= 0) {
                printf("  %-16s MemWriteBatch of %u x %u bytes vs pwrite() to a memfd of %" PRIu64
                       " MiB: %u calls (%.0f MiB) per run, 1 warm-up run\n",
                       cc->name, BATCH_ENTRIES, MEMWRITE_ENTRY_SIZE, b.ram >> 20, BATCH_CALLS, mib);
                fflush(stdout);
                r = bench_compare_passes(batch_pass, &b, c->runs, t);
        }
        if (b.memfd >= 0)
                close(b.memfd);
        free(b.data);
        if (r < 0)
                return r;
        double v = mib / (bench_median_of_runs(t[0], c->runs) / 1e9);
        double p = mib / (bench_median_of_runs(t[1], c->runs) / 1e9);
        printf("  %-16s vmsigd %8.1f MiB/s  pwrite baseline %8.1f MiB/s  ratio vmsigd/baseline %.3f (report only)",
               cc->name, v, p, v / p);
        bench_print_mib_runs("vmsigd", "baseline", mib, t, c->runs);
        printf("@ memwrite-batch vmsigd_mbps=%.1f baseline_mbps=%.1f ratio=%.3f\n", v, p, v / p);
        return 0;
}

/* --- scale: stub endpoints in process ----------------------------------------------------- */

typedef struct scale_ctx {
        sd_event *event;
        vmsig_core *core;
        vmsig_endpoint **eps;
        uint64_t roster, memctx; /* events the subscriber had */
        bench_proc_sample p[3];  /* before, after attaching, after detaching */
        uint64_t t[6];           /* around attach, dispatch, detach, reap */
} scale_ctx;

static int on_event(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        scale_ctx *x = userdata;

        x->roster += d->event->kind == VMSIG_KIND_ROSTER;
        x->memctx += d->event->kind == VMSIG_KIND_MEMCTX;
        return VMSIG_DELIVER_OK;
}

/* Runs the loop until nothing is pending (dispatch and reap are defer
 * sources, done when sd_event_run() finds nothing to do). */
static int run_pending(sd_event *e) {
        int r;

        do
                r = sd_event_run(e, 0);
        while (r > 0);
        return r;
}

/* Attaches (attach) or detaches the n stubs, saying which failed, then
 * runs the dispatch (and reap) that left; t: the times before, after the
 * loop and after the dispatch. */
static int scale_phase(scale_ctx *x, unsigned n, uint64_t ram_size, bool attach, uint64_t t[3]) {
        char name[32];
        int r = 0;

        t[0] = bench_now_nsec();
        for (unsigned i = 0; r >= 0 && i < n; i++) {
                vmsig_stub_spec spec = { .name = name, .ram_size = ram_size, .initial_state = VMSIG_STATE_RUNNING };
                vmsig_endpoint_spec ep_spec;

                snprintf(name, sizeof name, "vm%04u", i);
                if (!attach)
                        r = vmsig_core_detach_endpoint(x->core, x->eps[i]);
                else if ((r = vmsig_stub_new(&spec, &ep_spec, NULL)) >= 0)
                        r = vmsig_core_attach_endpoint(x->core, &ep_spec, &x->eps[i]);
                if (r < 0)
                        fprintf(stderr, "bench-calls: %s endpoint %u failed: %s\n", attach ? "attaching" : "detaching",
                                i, strerror(-r));
        }
        t[1] = bench_now_nsec();
        if (r >= 0)
                r = run_pending(x->event);
        t[2] = bench_now_nsec();
        return r;
}

static void scale_report(const scale_ctx *x, unsigned n, const vmsig_core_stats *st) {
        const uint64_t *t = x->t;
        const bench_proc_sample *p = x->p;
        double per_ep = (double) (p[1].rss_kib - p[0].rss_kib) / n, fds_per_ep = (double) (p[1].fds - p[0].fds) / n;

        printf("  scale  attach   %u endpoints: %8.2f ms (%.1f us each); with dispatch to 1 subscriber %8.2f ms\n", n,
               (t[1] - t[0]) / 1e6, (t[1] - t[0]) / 1e3 / n, (t[2] - t[0]) / 1e6);
        printf("  scale  memory   RSS %.1f -> %.1f MiB: %.1f KiB per endpoint; fds %d -> %d: %.1f per endpoint\n",
               p[0].rss_kib / 1024.0, p[1].rss_kib / 1024.0, per_ep, p[0].fds, p[1].fds, fds_per_ep);
        printf("  scale  detach   %u endpoints: %8.2f ms (%.1f us each); with dispatch and reap %8.2f ms\n", n,
               (t[4] - t[3]) / 1e6, (t[4] - t[3]) / 1e3 / n, (t[5] - t[3]) / 1e6);
        printf("  scale  after    RSS %.1f MiB, fds %d, endpoints %zu, zombies %zu, roster events %" PRIu64 "\n",
               p[2].rss_kib / 1024.0, p[2].fds, st->endpoints, st->zombies, x->roster);
        printf("@ scale endpoints=%u attach_ms=%.2f attach_dispatch_ms=%.2f rss_per_ep_kib=%.1f fds_per_ep=%.1f "
               "detach_ms=%.2f detach_reap_ms=%.2f\n",
               n, (t[1] - t[0]) / 1e6, (t[2] - t[0]) / 1e6, per_ep, fds_per_ep, (t[4] - t[3]) / 1e6,
               (t[5] - t[3]) / 1e6);
}

/* Attach n stubs, dispatch, check the events, detach them all, reap. The
 * guest RAM is never touched: this is the daemon's own cost per VM. */
static int scale_steps(scale_ctx *x, unsigned n, uint64_t ram_size) {
        vmsig_core_stats st;
        int r;

        r = bench_proc_sample_read(getpid(), &x->p[0]);
        if (r >= 0)
                r = scale_phase(x, n, ram_size, true, &x->t[0]);
        if (r >= 0)
                r = bench_proc_sample_read(getpid(), &x->p[1]);
        if (r >= 0 && (x->roster != n || x->memctx != n)) {
                fprintf(stderr, "bench-calls: expected %u ROSTER and MEMCTX events, got %" PRIu64 " and %" PRIu64 "\n",
                        n, x->roster, x->memctx);
                r = -EIO;
        }
        if (r >= 0)
                r = scale_phase(x, n, ram_size, false, &x->t[3]);
        if (r < 0)
                return r;
        vmsig_core_get_stats(x->core, &st);
        r = bench_proc_sample_read(getpid(), &x->p[2]);
        if (r < 0)
                return r;
        scale_report(x, n, &st);
        if (st.endpoints != 0 || st.zombies != 0 || x->p[2].fds != x->p[0].fds) {
                fprintf(stderr, "bench-calls: not everything was released\n");
                return -EIO;
        }
        return 0;
}

static int scale_run(calls_ctx *c, const call_case *cc) {
        uint64_t ram_size = strtoull(c->ram_size, NULL, 10);
        scale_ctx x = { .eps = calloc(c->endpoints, sizeof *x.eps) };
        vmsig_subscriber *sub = NULL;
        struct rlimit rl;
        int r = x.eps ? 0 : -ENOMEM;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
                printf("  scale  %u stub endpoints of %" PRIu64 " bytes RAM; fd limit %llu (hard %llu)\n", c->endpoints,
                       ram_size, (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
        fflush(stdout);
        if (r >= 0)
                r = sd_event_new(&x.event);
        if (r >= 0)
                r = vmsig_core_new(x.event, &x.core);
        if (r >= 0)
                /* One subscriber, as the D-Bus front is in vmsigd. */
                r = vmsig_core_subscribe(x.core,
                                         &(vmsig_filter) { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_ROSTER) |
                                                                    VMSIG_KIND_MASK(VMSIG_KIND_MEMCTX) },
                                         0, on_event, &x, &sub);
        if (r >= 0)
                r = run_pending(x.event);
        if (r >= 0)
                r = scale_steps(&x, c->endpoints, ram_size);
        vmsig_subscriber_free(sub);
        vmsig_core_free(x.core);
        sd_event_unref(x.event);
        free(x.eps);
        return r;
}

/* --- the comparison and its report -------------------------------------------- */

static sd_bus *side_bus(calls_ctx *c, calls_conn on) {
        return on == ON_P2P ? c->p2p : on == ON_ECHO_P2P ? c->echo_p2p : c->bus;
}

/* Before a case of string methods: both answer, vmsigd's first call timed. */
static int probe_strings(calls_ctx *c, const call_case *cc) {
        char *sa = NULL, *sb = NULL;
        uint64_t start = bench_now_nsec();
        double first_ms;
        int r;

        r = bench_call_method_string(side_bus(c, cc->a.on), &cc->a.m, &sa);
        first_ms = (bench_now_nsec() - start) / 1e6;
        snprintf(c->extra, sizeof c->extra, " first_ms=%.3f", first_ms);
        if (r >= 0)
                r = bench_call_method_string(side_bus(c, cc->b.on), &cc->b.m, &sb);
        if (r >= 0)
                printf("  %-16s uid %u: %s answers \"%s\" (first call %.3f ms), %s answers \"%s\"\n", cc->name,
                       (unsigned) getuid(), cc->a.label, sa, first_ms, cc->b.label, sb);
        free(sa);
        free(sb);
        return r;
}

static void report(const calls_ctx *c, const call_case *cc, const uint64_t *ta, const uint64_t *tb, int fd_leak) {
        bench_ratio x = bench_ratio_of(c->calls, ta, tb, c->runs);
        double ratio = cc->flags & CASE_RATES ? 1 / x.ratio : x.ratio;
        bool pass = cc->target_cmp == '<' ? ratio <= cc->target : ratio >= cc->target;
        const char *unit = cc->flags & CASE_CYCLES ? "cycles" : "calls";

        printf("  %-16s %s %7.0f %s/s (%.1f us)  %s %7.0f %s/s (%.1f us)  ratio %s %.3f", cc->name, cc->a.label, x.a,
               unit, 1e6 / x.a, cc->b.label, x.b, unit, 1e6 / x.b, cc->ratio_what, ratio);
        if (cc->target_cmp)
                printf(" (target %s %.2f: %s)", cc->target_cmp == '<' ? "<=" : ">=", cc->target,
                       pass ? "PASS" : "FAIL");
        else
                printf(" (%s)", cc->flags & CASE_REFERENCE ? "reference" : "report only");
        bench_print_runs(cc->a.label, cc->b.label, c->calls, ta, tb, c->runs);
        printf("@ %s %s_cps=%.0f %s_cps=%.0f %s_us=%.1f %s_us=%.1f ratio=%.3f fd_leak=%d%s%s\n",
               cc->name, cc->a.label, x.a, cc->b.label, x.b, cc->a.label, 1e6 / x.a, cc->b.label, 1e6 / x.b, ratio,
               fd_leak, c->extra, cc->flags & CASE_REFERENCE ? " reference=1" : "");
}

/* The default run of a case: side A against side B. */
static int run_pair(calls_ctx *c, const call_case *cc) {
        uint64_t ta[BENCH_RUNS_MAX], tb[BENCH_RUNS_MAX];
        int fds_before, fds_after, r;

        fds_before = bench_count_fds();
        r = bench_compare(&(bench_side) { side_bus(c, cc->a.on), cc->call, &cc->a.m },
                          &(bench_side) { side_bus(c, cc->b.on), cc->call, &cc->b.m }, c->calls, c->warmup, c->runs,
                          ta, tb);
        fds_after = bench_count_fds();
        if (r < 0)
                return r;
        report(c, cc, ta, tb, fds_after - fds_before);
        printf("  %-16s fds open before %d, after %d\n", cc->name, fds_before, fds_after);
        if (fds_after == fds_before)
                return 0;
        fprintf(stderr, "bench-calls: %s: %d fds leaked\n", cc->name, fds_after - fds_before);
        return -EBADF;
}

/* --- what some cases do before and after ----------------------------------------- */

/* The first SubscribeMemctx subscribes; every later one returns the datum. */
static int memctx_subscribe(calls_ctx *c, const call_case *cc) {
        sd_bus_message *reply = NULL;
        memctx_datum d;
        int r;

        r = memctx_get(c->bus, c->path, &reply, &d);
        if (r >= 0)
                printf("  %-16s %s: epoch %" PRIu64 ", dtb 0x%" PRIx64 ", size %" PRIu64 " bytes, %u range(s)\n",
                       cc->name, c->path, d.epoch, d.dtb, d.size, d.n_ranges);
        sd_bus_message_unref(reply);
        return r < 0 ? r : call_fd(c->bus, &cc->b.m);
}

static int memctx_unsubscribe(calls_ctx *c) {
        return bench_callf(c->bus, VMSIG_BUS_NAME, c->path, VMSIG_BUS_ENDPOINT_INTERFACE, "UnsubscribeMemctx", NULL,
                           NULL);
}

/* The endpoint's RAM size, and its memory-write lease until memwrite_done(). */
static int memwrite_lease(calls_ctx *c, const call_case *cc) {
        int r = bench_get_trivial(c->bus, c->path, "RamSize", 't', &memwrite_ram);

        if (r >= 0 && memwrite_ram < MEMWRITE_ENTRY_SIZE) {
                fprintf(stderr, "bench-calls: %s has RamSize %" PRIu64 ", less than %u bytes\n", c->endpoint,
                        memwrite_ram, MEMWRITE_ENTRY_SIZE);
                r = -EINVAL;
        }
        if (r >= 0)
                r = bench_lease_acquire(c->bus, c->path, "memory-write", &c->lease);
        if (r >= 0)
                printf("  %-16s endpoint %s, RamSize %" PRIu64 " MiB; memory-write lease %s taken\n", cc->name,
                       c->endpoint, memwrite_ram >> 20, c->lease.path);
        return r;
}

static int memwrite_done(calls_ctx *c) {
        bench_lease_release(c->bus, &c->lease);
        return 0;
}

static int on_frame_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        (*(uint64_t *) userdata)++;
        return 0;
}

/* Subscribed to the frames, FrameChanged signals in a second: the rate a
 * subscriber sees (the extra field signals_1s). */
static int frames_subscribe(calls_ctx *c, const call_case *cc) {
        sd_bus_message *reply = NULL;
        sd_bus_slot *slot = NULL;
        uint32_t width = 0, height = 0, stride = 0;
        uint64_t seq = 0, n = 0, end = bench_now_nsec() + 1000000000, now;
        const char *format = NULL;
        int fd = -1, r;

        r = bench_callf(c->bus, VMSIG_BUS_NAME, c->path, VMSIG_BUS_ENDPOINT_INTERFACE, "SubscribeFrames", &reply, NULL);
        if (r >= 0)
                r = sd_bus_message_read(reply, "huuust", &fd, &width, &height, &stride, &format, &seq);
        if (r >= 0)
                printf("  %-16s %s: %ux%u stride %u %s, seq %" PRIu64 "\n", cc->name, c->endpoint, width, height,
                       stride, format, seq);
        sd_bus_message_unref(reply);
        if (r >= 0)
                r = sd_bus_match_signal(c->bus, &slot, VMSIG_BUS_NAME, c->path, VMSIG_BUS_ENDPOINT_INTERFACE,
                                        "FrameChanged", on_frame_changed, &n);
        while (r >= 0 && (now = bench_now_nsec()) < end) {
                r = sd_bus_process(c->bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(c->bus, (end - now) / 1000);
        }
        sd_bus_slot_unref(slot);
        printf("  %-16s FrameChanged signals in 1 s while subscribed: %" PRIu64 "\n", cc->name, n);
        snprintf(c->extra, sizeof c->extra, " signals_1s=%" PRIu64, n);
        return r < 0 ? r : 0;
}

static int frames_unsubscribe(calls_ctx *c) {
        return bench_callf(c->bus, VMSIG_BUS_NAME, c->path, VMSIG_BUS_ENDPOINT_INTERFACE, "UnsubscribeFrames", NULL,
                           NULL);
}

/* --- the table ------------------------------------------------------------------------ */

#define GET(dest, path, iface, prop) { dest, path, BENCH_PROPERTIES_INTERFACE, "Get", iface, prop, 'v' }
#define GET_VERSION(dest) GET(dest, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "Version")
#define GET_ECHO(prop) GET(BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, prop)
#define GET_ENDPOINT(dest, name) { dest, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "GetEndpoint", name, NULL, 'o' }
#define ECHO(dest, arg) { dest, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, "Echo", arg, NULL, 's' }
#define ENDPOINT(dest, member, arg) { dest, path, VMSIG_BUS_ENDPOINT_INTERFACE, member, arg, NULL, 0 }
#define ECHO_FD { BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, "EchoFd", NULL, NULL, 'h' }
#define VMSIGD(m) { "vmsigd", ON_BUS, m }
#define ECHO_SIDE(m) { "echo", ON_BUS, m }
#define P2P(m) { "p2p", ON_P2P, m }
#define BUS(m) { "bus", ON_BUS, m }
#define VS_ECHO(t) .ratio_what = "vmsigd/echo time", .target_cmp = '<', .target = t
#define VS_BUS .ratio_what = "p2p/bus rate", .target_cmp = '>', .target = 1.8, .flags = CASE_RATES

/* The cases, in the order they run; vmsigd's endpoint is at path. */
static call_case *cases(const calls_ctx *c) {
        const char *path = c->path, *name = c->endpoint, *class = c->class;
        const call_case table[] = {
                { "bus-get-version", "Properties.Get of a constant string property",
                  VMSIGD(GET_VERSION(VMSIG_BUS_NAME)), ECHO_SIDE(GET_ECHO("Version")), bench_call_method,
                  VS_ECHO(1.15), .setup = probe_strings },
                { "bus-get-state", "Properties.Get of an endpoint's State",
                  VMSIGD(GET(VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, "State")),
                  ECHO_SIDE(GET_ECHO("State")), bench_call_method, VS_ECHO(1.15), .setup = probe_strings },
                { "bus-get-endpoint", "a method taking and returning a string",
                  VMSIGD(GET_ENDPOINT(VMSIG_BUS_NAME, name)), ECHO_SIDE(ECHO(BENCH_ECHO_NAME, name)), bench_call_method,
                  VS_ECHO(1.15), .setup = probe_strings },
                { "private-get-endpoint", "Manager.GetEndpoint, as root", P2P(GET_ENDPOINT(NULL, name)),
                  BUS(GET_ENDPOINT(VMSIG_BUS_NAME, name)), bench_call_method, VS_BUS, .setup = probe_strings },
                { "private-get-version", "Properties.Get(Manager.Version), as root", P2P(GET_VERSION(NULL)),
                  BUS(GET_VERSION(VMSIG_BUS_NAME)), bench_call_method, VS_BUS, .setup = probe_strings },
                { "private-echo", "reference: echo-service Echo", { "p2p", ON_ECHO_P2P, ECHO(NULL, name) },
                  BUS(ECHO(BENCH_ECHO_NAME, name)), bench_call_method, .ratio_what = "p2p/bus rate",
                  .flags = CASE_RATES | CASE_REFERENCE, .setup = probe_strings },
                { "auth-steady", "public GetEndpoint as nobody, one connection",
                  VMSIGD(GET_ENDPOINT(VMSIG_BUS_NAME, name)), ECHO_SIDE(ECHO(BENCH_ECHO_NAME, name)), bench_call_method,
                  VS_ECHO(1.15), .flags = CASE_NOT_ROOT, .setup = probe_strings },
                { "auth-first", "connect + first GetEndpoint as nobody, vs connect + Echo",
                  VMSIGD(GET_ENDPOINT(VMSIG_BUS_NAME, name)), ECHO_SIDE(ECHO(BENCH_ECHO_NAME, name)),
                  .flags = CASE_NOT_ROOT, .run = auth_first, .warmup = 20 },
                { "memctx-subscribe", "SubscribeMemctx vs EchoFd, as root",
                  VMSIGD(ENDPOINT(VMSIG_BUS_NAME, "SubscribeMemctx", NULL)), ECHO_SIDE(ECHO_FD), call_fd, VS_ECHO(1.2),
                  .setup = memctx_subscribe, .done = memctx_unsubscribe },
                { "memctx-read", "reading the RAM fd of --ram-endpoint vs a memfd copy, as root", .run = memctx_read },
                { "lease", "AcquireLease(CLASS, {}) + Release() cycles, as root",
                  BUS(ENDPOINT(VMSIG_BUS_NAME, "AcquireLease", class)), P2P(ENDPOINT(NULL, "AcquireLease", class)),
                  call_lease, .ratio_what = "p2p/bus rate", .flags = CASE_CYCLES, .calls = 5000, .warmup = 500 },
                { "memwrite-call", "MemWrite(gpa, 8 bytes, {}) vs Echo(\"01234567\"), as root",
                  VMSIGD(ENDPOINT(VMSIG_BUS_NAME, "MemWrite", NULL)), ECHO_SIDE(ECHO(BENCH_ECHO_NAME, "01234567")),
                  call_small, VS_ECHO(1.2), .setup = memwrite_lease, .done = memwrite_done },
                { "memwrite-batch", "MemWriteBatch vs pwrite() to a memfd, as root", .setup = memwrite_lease,
                  .done = memwrite_done, .run = memwrite_batch },
                { "frames-bus", "GetFrame vs EchoFd, subscribed to the frames",
                  VMSIGD(ENDPOINT(VMSIG_BUS_NAME, "GetFrame", NULL)), ECHO_SIDE(ECHO_FD), call_fd, VS_ECHO(1.2),
                  .setup = frames_subscribe, .done = frames_unsubscribe },
                { "scale", "stub endpoints attached to one core and detached, in process", .flags = CASE_NO_BUS,
                  .run = scale_run },
                {},
        };
        call_case *copy = malloc(sizeof table);

        return copy ? memcpy(copy, table, sizeof table) : NULL;
}

/* --- main ------------------------------------------------------------------------------ */

/* Whether name is wanted: named itself, or its group ("bus" for bus-*). */
static bool wanted(char **names, int n, const char *name) {
        for (int i = 0; i < n; i++) {
                size_t l = strlen(names[i]);

                if (strcmp(names[i], name) == 0 || (strncmp(names[i], name, l) == 0 && name[l] == '-'))
                        return true;
        }
        return false;
}

/* The connections a case needs, opened when first needed. */
static int connect_for(calls_ctx *c, const call_case *cc) {
        int r = 0;

        if (cc->flags & CASE_NOT_ROOT && geteuid() == 0) {
                fprintf(stderr, "bench-calls: %s: run me as a user other than root (vmsigd lets root in without"
                                " polkit),\ne.g. setpriv --reuid=nobody --regid=nogroup --clear-groups"
                                " bench-calls ...\n",
                        cc->name);
                return -EPERM;
        }
        if (!(cc->flags & CASE_NO_BUS) && !c->bus)
                r = bench_open_system(&c->bus);
        for (calls_conn on = ON_P2P; r >= 0 && on <= ON_ECHO_P2P; on++) {
                const char *socket = on == ON_P2P ? c->socket : c->echo_socket;

                if ((cc->a.on != on && cc->b.on != on) || side_bus(c, on))
                        continue;
                if (!socket) {
                        fprintf(stderr, "bench-calls: %s needs --%s\n", cc->name,
                                on == ON_P2P ? "socket" : "echo-socket");
                        return -EINVAL;
                }
                r = bench_p2p_connect(socket, on == ON_P2P ? &c->p2p : &c->echo_p2p);
        }
        return r;
}

static int run_case(calls_ctx *c, const call_case *cc) {
        int r;

        c->calls = c->calls_opt != UNSET ? c->calls_opt : cc->calls ?: 20000;
        c->warmup = c->warmup_opt != UNSET ? c->warmup_opt : cc->warmup ?: 2000;
        c->extra[0] = '\0';
        if (!cc->run)
                printf("  %-16s %s: %u %s per run, %u warm-up\n", cc->name, cc->what, c->calls,
                       cc->flags & CASE_CYCLES ? "cycles" : "calls", c->warmup);
        r = connect_for(c, cc);
        if (r >= 0 && cc->setup)
                r = cc->setup(c, cc);
        if (r >= 0)
                r = (cc->run ?: run_pair)(c, cc);
        if (r >= 0 && cc->done)
                r = cc->done(c);
        fflush(stdout);
        return r;
}

static int run_cases(calls_ctx *c, char **names, int n) {
        _cleanup_free_ call_case *table = cases(c);
        int r = table ? 0 : -ENOMEM, ran = 0;

        for (const call_case *cc = table; r >= 0 && cc->name; cc++) {
                if (c->list)
                        printf("%-20s %s\n", cc->name, cc->what);
                else if (wanted(names, n, cc->name)) {
                        if (ran++ == 0)
                                printf("bench-calls: median of %u runs\n", c->runs);
                        r = run_case(c, cc);
                }
        }
        if (r >= 0 && !c->list && ran == 0) {
                fprintf(stderr, "bench-calls: %s%s (bench-calls --list)\n",
                        n ? "no case or group " : "name a case or group", n ? names[0] : "");
                r = -EINVAL;
        }
        return r;
}

static const char usage[] =
        "bench-calls [--calls N] [--warmup N] [--runs N] [--endpoint NAME] [--socket PATH] [--echo-socket PATH]\n"
        "            [--samples N] [--ram-endpoint NAME] [--fresh N] [--passes N] [--class input|power|memory-write]\n"
        "            [--endpoints N] [--ram-size BYTES]\n"
        "            CASE|GROUP...\n"
        "bench-calls --list\n"
        "bench-calls --wait NAME|--wait-action ACTION [--timeout SECONDS]\n"
        "bench-calls --bus-config DIR --srcdir DIR\n"
        "vmsigd against a baseline on the system bus ($DBUS_SYSTEM_BUS_ADDRESS), one case after another:\n"
        "a case by name, or a group by its first word (bus, private, auth, memctx, lease, memwrite,\n"
        "frames, scale). --endpoint (alpha): the endpoint called. --socket: vmsigd's private socket\n"
        "(private-*, lease; --class power), --echo-socket: echo-service's (private-echo). auth-* run as\n"
        "a user other than root, with polkitd; --samples (200): auth-first's new connections per run.\n"
        "memctx-read: --ram-endpoint (big), --fresh (5) mappings and --passes (15) per run. scale:\n"
        "--endpoints (256) of --ram-size (1048576) bytes. Defaults: 20000 calls after 2000 warm-up\n"
        "calls (lease: 5000 cycles after 500; auth-first: 20 warm-up pairs), median of 3 runs.\n"
        "--wait waits until NAME has an owner, --wait-action until polkitd lists ACTION;\n"
        "--bus-config prints the configuration of a private system bus listening in DIR.\n";

/* --wait, --wait-action, --bus-config: run.sh's helpers; 1 if none given. */
static int helpers(calls_ctx *c, const char *wait_name, const char *action, const char *bus_config,
                   const char *srcdir, double timeout) {
        if (bus_config) {
                _cleanup_free_ char *text = bench_bus_config(bus_config, srcdir ?: bench_absolute_dir("--srcdir", "."));
                return text && fputs(text, stdout) >= 0 ? 0 : -EIO;
        }
        if (!wait_name && !action)
                return 1;
        int r = bench_open_system(&c->bus);
        if (r >= 0 && wait_name)
                r = bench_wait_name(c->bus, wait_name, timeout);
        if (r >= 0 && action)
                r = auth_wait_action(c->bus, action, timeout);
        if (r < 0)
                fprintf(stderr, "bench-calls: waiting for %s: %s\n", wait_name ?: action, strerror(-r));
        return r;
}

int main(int argc, char *argv[]) {
        calls_ctx c = { .calls_opt = UNSET, .warmup_opt = UNSET, .runs = 3, .endpoint = "alpha", .ram_endpoint = "big",
                        .samples = 200, .fresh = 5, .passes = 15, .endpoints = 256, .ram_size = "1048576",
                        .class = "power" };
        const char *wait_name = NULL, *action = NULL, *bus_config = NULL, *srcdir = NULL;
        double timeout = 10;
        const bench_option options[] = {
                BENCH_OPT_CALLS(&c.calls_opt),
                BENCH_OPT_WARMUP(&c.warmup_opt),
                BENCH_OPT_RUNS(&c.runs),
                BENCH_OPT_S("endpoint", &c.endpoint),
                BENCH_OPT_S("socket", &c.socket),
                BENCH_OPT_S("echo-socket", &c.echo_socket),
                BENCH_OPT_S("class", &c.class),
                BENCH_OPT_U("samples", &c.samples, 1, 100000),
                BENCH_OPT_S("ram-endpoint", &c.ram_endpoint),
                BENCH_OPT_U("fresh", &c.fresh, 1, PASSES_MAX),
                BENCH_OPT_U("passes", &c.passes, 1, PASSES_MAX),
                BENCH_OPT_U("endpoints", &c.endpoints, 1, 1000000),
                BENCH_OPT_S("ram-size", &c.ram_size),
                BENCH_OPT_F("list", &c.list),
                BENCH_OPT_S("wait", &wait_name),
                BENCH_OPT_S("wait-action", &action),
                BENCH_OPT_D("timeout", &timeout),
                BENCH_OPT_S("bus-config", &bus_config),
                BENCH_OPT_DIRECTORY("srcdir", &srcdir),
                {},
        };
        int r;

        bench_parse_options(argc, argv, options, usage);
        r = helpers(&c, wait_name, action, bus_config, srcdir, timeout);
        if (r > 0) {
                c.path = bench_endpoint_path(c.endpoint);
                c.ram_path = bench_endpoint_path(c.ram_endpoint);
                r = c.path && c.ram_path ? run_cases(&c, argv + optind, argc - optind) : -ENOMEM;
        }
        sd_bus_flush_close_unref(c.echo_p2p);
        sd_bus_flush_close_unref(c.p2p);
        sd_bus_flush_close_unref(c.bus);
        free(c.path);
        free(c.ram_path);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
