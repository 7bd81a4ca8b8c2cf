/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-memctx: the memory context of an endpoint, as a root client of the
 * bus gets it.
 *
 *   subscribe  Endpoint.SubscribeMemctx() round trips on one endpoint (the
 *              first subscribes, the rest get the datum again), against
 *              EchoFd() of bench/echo-service, a bare sd-bus method with a
 *              reply of the same shape (h t t t a(ttt)) carrying an fd of
 *              a memfd. Every reply brings a new fd; it is closed with the
 *              reply each time, and the fd count is checked at the end.
 *              Median of RUNS runs of N calls, alternating in slices.
 *              Ratio: vmsigd time / echo time.
 *   read       read bandwidth through the RAM fd of a large endpoint:
 *              mmap(PROT_READ, MAP_SHARED) of the whole RAM, then a
 *              sequential sum of uint64s. The guest RAM first gets a sparse
 *              pattern (MemWriteBatch under the memory-write lease). The
 *              baseline is a memfd of the same size that this program fills
 *              with the same contents (a copy of the guest RAM, checked by
 *              the checksums of both), seals and reopens read-only the
 *              way the stub backend does: the "daemon-side" mapping, which
 *              a client cannot reach. Both are read the same way, the two
 *              alternating ABBA at every step: "fresh" is mmap + the first
 *              pass (page faults included; FRESH mappings of each per run),
 *              "warm" a pass over a mapping already faulted in (PASSES of
 *              each per run). A run counts the median pass of each side.
 *              Ratio: received / baseline bandwidth, the median of the
 *              runs' ratios.
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

#define ENDPOINT_INTERFACE VMSIG_BUS_ENDPOINT_INTERFACE

typedef struct memctx_reply {
        int fd; /* owned by the message */
        uint64_t dtb, epoch, size;
        unsigned n_ranges;
} memctx_reply;

/* One call of a method replying "httta(ttt)"; the reply stays with the
 * caller when ret_reply is given, else it is unreferenced here, which
 * closes the fd it brought. */
static int call_fd_method(sd_bus *bus, const bench_method *t, sd_bus_message **ret_reply, memctx_reply *ret) {
        sd_bus_message *m = NULL, *reply = NULL;
        memctx_reply d = { .fd = -1 };
        uint64_t gpa, size, offset;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, t->destination, t->path, t->interface, t->member);
        if (r >= 0)
                r = bench_call(bus, m, &reply);
        if (r >= 0)
                r = sd_bus_message_read(reply, "httt", &d.fd, &d.dtb, &d.epoch, &d.size);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ttt)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ttt)", &gpa, &size, &offset)) > 0)
                d.n_ranges++;
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0 && d.fd < 0)
                r = -EBADF;
        if (r >= 0 && ret)
                *ret = d;
        if (r >= 0 && ret_reply)
                *ret_reply = sd_bus_message_ref(reply);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        return r;
}

static int call_fd(sd_bus *bus, const void *userdata) {
        return call_fd_method(bus, userdata, NULL, NULL);
}

static int run_subscribe(sd_bus *bus, const char *endpoint_path, unsigned calls, unsigned warmup, unsigned runs) {
        const bench_method vmsig = { "org.vmsig", endpoint_path, ENDPOINT_INTERFACE, "SubscribeMemctx", NULL, NULL, 0 };
        const bench_method echo = { BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, "EchoFd", NULL, NULL, 0 };
        uint64_t tv[BENCH_RUNS_MAX], te[BENCH_RUNS_MAX];
        memctx_reply d;
        int fds_before, fds_after, r;

        /* The first call subscribes; every later one returns the datum. */
        r = call_fd_method(bus, &vmsig, NULL, &d);
        if (r < 0)
                return r;
        printf("  subscribe  %s: epoch %" PRIu64 ", dtb 0x%" PRIx64 ", size %" PRIu64 " bytes, %u range(s)\n",
               endpoint_path, d.epoch, d.dtb, d.size, d.n_ranges);
        r = call_fd_method(bus, &echo, NULL, &d);
        if (r < 0)
                return r;

        fds_before = bench_count_fds();
        r = bench_compare(&(bench_side) { bus, call_fd, &vmsig }, &(bench_side) { bus, call_fd, &echo }, calls, warmup,
                          runs, tv, te);
        fds_after = bench_count_fds();
        if (r < 0)
                return r;

        bench_ratio x = bench_ratio_of(calls, tv, te, runs);
        printf("  subscribe  vmsigd SubscribeMemctx %7.0f calls/s  echo EchoFd %7.0f calls/s  ratio vmsigd/echo time "
               "%.3f",
               x.a, x.b, x.ratio);
        bench_print_runs("vmsigd", "echo", calls, tv, te, runs);
        printf("  subscribe  fds open before %d, after %d\n", fds_before, fds_after);
        printf("@ memctx-subscribe vmsigd_cps=%.0f echo_cps=%.0f ratio=%.3f fd_leak=%d\n", x.a, x.b, x.ratio,
               fds_after - fds_before);
        fflush(stdout);
        if (fds_after != fds_before) {
                fprintf(stderr, "bench-memctx: %d fds leaked over %u calls\n", fds_after - fds_before,
                        2 * (runs * calls + warmup));
                return -EBADF;
        }
        return 0;
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
 * way src/host/stub does it for guest RAM. */
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

#define PASSES_MAX 1000

/* Minor page faults of this process so far. */
static uint64_t minor_faults(void) {
        struct rusage ru;

        return getrusage(RUSAGE_SELF, &ru) < 0 ? 0 : (uint64_t) ru.ru_minflt;
}

/* A fresh mapping: mmap, then the first pass, page faults and all. The
 * munmap is not timed. Returns the sum in *ret_sum. */
static int read_fresh(int fd, size_t size, uint64_t *ret_nsec, uint64_t *ret_sum) {
        uint64_t start = bench_now_nsec();
        const uint64_t *p;

        p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        *ret_sum = sum_u64(p, size / sizeof(uint64_t));
        *ret_nsec = bench_now_nsec() - start;
        munmap((void *) p, size);
        return 0;
}

/* One more pass over a mapping that is already faulted in. */
static int read_warm(const uint64_t *p, size_t size, uint64_t expect, uint64_t *ret_nsec) {
        uint64_t start = bench_now_nsec(), sum;

        /* The compiler may not take the pass for a repetition of the last
         * one (sum_u64() is pure) and drop it. */
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
        double ratio;

        for (unsigned i = 0; i < runs; i++)
                ratios[i] = tb[i] * 1000000 / tr[i]; /* received/baseline bandwidth, in millionths */
        ratio = bench_median_of_runs(ratios, runs) / 1e6;
        printf("  read  %-5s received fd %6.2f GB/s  baseline %6.2f GB/s  ratio %.3f  (runs: received", key, gr, gb,
               ratio);
        for (unsigned i = 0; i < runs; i++)
                printf(" %.2f", bytes / (double) tr[i]);
        printf("; baseline");
        for (unsigned i = 0; i < runs; i++)
                printf(" %.2f", bytes / (double) tb[i]);
        printf("; ratio");
        for (unsigned i = 0; i < runs; i++)
                printf(" %.3f", ratios[i] / 1e6);
        printf(")\n");
        printf("@ memctx-read-%s received_gbps=%.2f baseline_gbps=%.2f ratio=%.3f\n", key, gr, gb, ratio);
}

/* One run: FRESH fresh mappings of each, then PASSES warm passes over one
 * mapping of each, the two sides alternating ABBA at every step. The time
 * of a run is the median pass of each side, times the number of passes:
 * a burst of other work on the machine spoils a pass or two, not the run.
 * ret: fresh received, fresh baseline, warm received, warm baseline. */
static int read_run(int fd_r, int fd_b, size_t size, unsigned fresh, unsigned passes, uint64_t expect,
                    uint64_t ret[4], uint64_t faults[4]) {
        const uint64_t *map[2] = { MAP_FAILED, MAP_FAILED };
        uint64_t t[2][PASSES_MAX], sum, ignored;
        int fds[2] = { fd_r, fd_b };
        int r = 0;

        for (unsigned i = 0; r >= 0 && i < 2 * fresh; i++) {
                unsigned side = bench_abba(i);
                uint64_t f = minor_faults();

                r = read_fresh(fds[side], size, &t[side][i / 2], &sum);
                faults[side] += minor_faults() - f;
                if (r >= 0 && sum != expect)
                        r = -EIO;
        }
        for (unsigned side = 0; r >= 0 && side < 2; side++)
                ret[side] = bench_median(t[side], fresh) * fresh;

        for (unsigned side = 0; r >= 0 && side < 2; side++) {
                map[side] = mmap(NULL, size, PROT_READ, MAP_SHARED, fds[side], 0);
                if (map[side] == MAP_FAILED)
                        r = -errno;
                else
                        r = read_warm(map[side], size, expect, &ignored); /* fault it in, untimed */
        }
        for (unsigned i = 0; r >= 0 && i < 2 * passes; i++) {
                unsigned side = bench_abba(i);
                uint64_t f = minor_faults();

                r = read_warm(map[side], size, expect, &t[side][i / 2]);
                faults[2 + side] += minor_faults() - f;
        }
        for (unsigned side = 0; r >= 0 && side < 2; side++)
                ret[2 + side] = bench_median(t[side], passes) * passes;
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
        uint64_t stride = size / PATTERN_WRITES;
        bench_lease lease;
        int r;

        if (stride < PATTERN_STRIDE)
                stride = PATTERN_STRIDE;
        r = bench_lease_acquire(bus, endpoint_path, "memory-write", &lease);
        if (r >= 0)
                r = sd_bus_message_new_method_call(bus, &m, VMSIG_BUS_NAME, endpoint_path, ENDPOINT_INTERFACE,
                                                   "MemWriteBatch");
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
static int prepare_read(sd_bus *bus, const char *endpoint_path, const memctx_reply *d) {
        struct stat st;
        void *ram;
        int r;

        if (fstat(d->fd, &st) < 0)
                return -errno;
        if (d->size == 0 || (uint64_t) st.st_size < d->size) {
                fprintf(stderr, "bench-memctx: the RAM fd has %jd bytes for a RAM size of %" PRIu64 "\n",
                        (intmax_t) st.st_size, d->size);
                return -EINVAL;
        }
        r = write_pattern(bus, endpoint_path, d->size);
        if (r < 0)
                return r;
        if (mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0) != MAP_FAILED) {
                fprintf(stderr, "bench-memctx: the received RAM fd can be mapped writable\n");
                return -EPERM;
        }
        ram = mmap(NULL, d->size, PROT_READ, MAP_SHARED, d->fd, 0);
        if (ram == MAP_FAILED)
                return -errno;
        r = make_baseline(ram, d->size);
        munmap(ram, d->size);
        return r;
}

static int run_read(sd_bus *bus, const char *endpoint_path, unsigned fresh, unsigned passes, unsigned runs) {
        const bench_method vmsig = { "org.vmsig", endpoint_path, ENDPOINT_INTERFACE, "SubscribeMemctx", NULL, NULL, 0 };
        uint64_t fresh_r[BENCH_RUNS_MAX], fresh_b[BENCH_RUNS_MAX], warm_r[BENCH_RUNS_MAX], warm_b[BENCH_RUNS_MAX];
        uint64_t t[4], faults[4] = {}, expect = 0, base_sum = 0, ignored = 0;
        sd_bus_message *reply = NULL;
        memctx_reply d;
        int base = -1, r;

        r = call_fd_method(bus, &vmsig, &reply, &d);
        if (r < 0)
                return r;
        base = r = prepare_read(bus, endpoint_path, &d);
        if (r < 0)
                goto finish;
        printf("  read  %s: %" PRIu64 " MiB; per run %u fresh mappings and %u warm passes of each,"
               " alternating, the median pass counts; median of %u runs\n",
               endpoint_path, d.size >> 20, fresh, passes, runs);

        /* Warm-up: a fresh mapping of each, which also checks that the
         * baseline holds the same contents. */
        r = read_fresh(d.fd, d.size, &ignored, &expect);
        if (r >= 0)
                r = read_fresh(base, d.size, &ignored, &base_sum);
        if (r >= 0 && base_sum != expect) {
                fprintf(stderr, "bench-memctx: the baseline does not hold the guest RAM's contents\n");
                r = -EIO;
        }
        for (unsigned i = 0; r >= 0 && i < runs; i++) {
                r = read_run(d.fd, base, d.size, fresh, passes, expect, t, faults);
                fresh_r[i] = t[0];
                fresh_b[i] = t[1];
                warm_r[i] = t[2];
                warm_b[i] = t[3];
        }
        if (r < 0) {
                fprintf(stderr, "bench-memctx: reading the RAM: %s\n", strerror(-r));
                goto finish;
        }
        print_read("warm", d.size * passes, warm_r, warm_b, runs);
        print_read("fresh", d.size * fresh, fresh_r, fresh_b, runs);
        /* A warm pass takes none; a fresh mapping one per fault-around
         * block (16 pages by default), unless pages were taken away. */
        printf("  read  minor faults per fresh mapping: received %.0f, baseline %.0f; in all warm passes: received %"
               PRIu64 ", baseline %" PRIu64 "\n",
               (double) faults[0] / (fresh * runs), (double) faults[1] / (fresh * runs), faults[2], faults[3]);
        printf("  read  checksum 0x%016" PRIx64 " (both)\n", expect);
        fflush(stdout);
finish:
        if (base >= 0)
                close(base);
        sd_bus_message_unref(reply);
        return r;
}

static int unsubscribe(sd_bus *bus, const char *endpoint_path) {
        return bench_callf(bus, VMSIG_BUS_NAME, endpoint_path, ENDPOINT_INTERFACE, "UnsubscribeMemctx", NULL, NULL);
}

int main(int argc, char *argv[]) {
        unsigned calls = 20000, warmup = 2000, runs = 3, fresh = 5, passes = 15;
        const char *endpoint = "alpha", *ram_endpoint = "big";
        bench_list cases = {};
        const bench_option options[] = {
                BENCH_OPT_CALLS(&calls),
                BENCH_OPT_WARMUP(&warmup),
                BENCH_OPT_RUNS(&runs),
                BENCH_OPT_S("endpoint", &endpoint),
                BENCH_OPT_S("ram-endpoint", &ram_endpoint),
                BENCH_OPT_U("fresh", &fresh, 1, PASSES_MAX),
                BENCH_OPT_U("passes", &passes, 1, PASSES_MAX),
                BENCH_OPT_L("case", &cases),
                {},
        };
        char *path = NULL, *ram_path = NULL;
        sd_bus *bus = NULL;
        int r;

        bench_parse_options(argc, argv, options,
                            "bench-memctx [--calls N] [--warmup N] [--runs N] [--endpoint NAME]\n"
                            "             [--ram-endpoint NAME] [--fresh N] [--passes N] [--case subscribe|read]...\n"
                            "SubscribeMemctx against " BENCH_ECHO_NAME " EchoFd on the system bus\n"
                            "($DBUS_SYSTEM_BUS_ADDRESS), and read bandwidth through the received RAM fd.\n");
        for (unsigned i = 0; i < cases.n; i++)
                if (strcmp(cases.item[i], "subscribe") != 0 && strcmp(cases.item[i], "read") != 0) {
                        fprintf(stderr, "bench-memctx: unknown case \"%s\"\n", cases.item[i]);
                        return EXIT_FAILURE;
                }
        path = bench_endpoint_path(endpoint);
        ram_path = bench_endpoint_path(ram_endpoint);
        r = path && ram_path ? bench_open_system(&bus) : -ENOMEM;
        if (r >= 0 && bench_list_wants(&cases, "subscribe")) {
                printf("bench-memctx subscribe: %u sequential calls per run, %u warm-up calls, median of %u runs\n",
                       calls, warmup, runs);
                r = run_subscribe(bus, path, calls, warmup, runs);
                if (r >= 0)
                        r = unsubscribe(bus, path);
        }
        if (r >= 0 && bench_list_wants(&cases, "read")) {
                r = run_read(bus, ram_path, fresh, passes, runs);
                if (r >= 0)
                        r = unsubscribe(bus, ram_path);
        }
        sd_bus_flush_close_unref(bus);
        free(path);
        free(ram_path);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
