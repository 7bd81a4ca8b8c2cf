/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-memwrite: writing guest memory through the bus, as root, under the
 * memory-write lease of one endpoint (taken first, its fd kept open).
 *
 *   call   Endpoint.MemWrite(gpa, 8 bytes, {}) round trips, against
 *          Echo(s) of bench/echo-service with an 8-character string, the
 *          closest bare sd-bus method it offers. Both go through the same
 *          client function. Warm-up, then RUNS runs of N calls to each,
 *          alternating in slices (ABBA); the median run of each counts.
 *          Ratio: vmsigd time / echo time.       target: <= 1.2
 *   batch  Endpoint.MemWriteBatch throughput: 1024 entries of 4096 bytes
 *          (4 MiB per call), 16 calls (64 MiB) per run, at offsets wrapped
 *          inside the endpoint's RamSize. The baseline is pwrite() of the
 *          same bytes at the same offsets, one per entry, into a memfd of
 *          the same size made here. One warm-up pass of each, then RUNS
 *          runs alternating (ABBA); the median run of each counts.
 *          Ratio: vmsigd / baseline bandwidth.   report only
 * Lines starting with "@" are for bench/run.sh.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench-lib.h"

#define CALL_TARGET_RATIO 1.2
#define ENTRY_SIZE 4096u
#define BATCH_ENTRIES 1024u
#define BATCH_BYTES ((uint64_t) ENTRY_SIZE * BATCH_ENTRIES)
#define BATCH_CALLS 16u /* 64 MiB per run */

/* One side of the call case: MemWrite(t ay a{sv}) or Echo(s). */
typedef struct small_call {
        const char *destination, *path, *interface, *member;
        bool memwrite;   /* else Echo */
        uint64_t ram;    /* MemWrite: gpa wraps inside [0, ram - 8] */
        uint64_t *next;  /* MemWrite: the next gpa */
} small_call;

static const char payload[8] = "01234567";

/* One round trip. This is the only client code path, for both targets. */
static int call_small(sd_bus *bus, const void *userdata) {
        const small_call *t = userdata;
        sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, t->destination, t->path, t->interface, t->member);
        if (r >= 0 && t->memwrite) {
                uint64_t gpa = *t->next;

                *t->next = (gpa + 64) % (t->ram - sizeof payload + 1);
                r = sd_bus_message_append(m, "t", gpa);
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', payload, sizeof payload);
                if (r >= 0)
                        r = sd_bus_message_append(m, "a{sv}", 0);
        } else if (r >= 0)
                r = sd_bus_message_append(m, "s", "01234567");
        if (r >= 0)
                r = bench_call(bus, m, NULL);
        sd_bus_message_unref(m);
        return r;
}

/* The same bytes at the same offsets, one pwrite() per entry. */
static int pwrite_batch(int fd, const uint8_t *data, uint64_t ram, uint64_t *k) {
        for (unsigned i = 0; i < BATCH_ENTRIES; i++, (*k)++) {
                ssize_t n = pwrite(fd, data + (size_t) i * ENTRY_SIZE, ENTRY_SIZE,
                                   (off_t) bench_batch_offset(*k, ENTRY_SIZE, ram));
                if (n != (ssize_t) ENTRY_SIZE) {
                        fprintf(stderr, "bench-memwrite: pwrite: %s\n", n < 0 ? strerror(errno) : "short write");
                        return n < 0 ? -errno : -EIO;
                }
        }
        return 0;
}

typedef struct batch_ctx {
        sd_bus *bus;
        const char *path;
        int memfd;
        uint8_t *data;
        uint64_t ram, k[2];
} batch_ctx;

/* One pass of BATCH_CALLS batches on one side (0: vmsigd, 1: the memfd);
 * adds its time to *sum. */
static int batch_pass(void *userdata, unsigned side, uint64_t *sum) {
        batch_ctx *b = userdata;
        const bench_method vm = { .destination = VMSIG_BUS_NAME,
                                  .path = b->path,
                                  .interface = VMSIG_BUS_ENDPOINT_INTERFACE,
                                  .member = "MemWriteBatch" };
        uint64_t start = bench_now_nsec();
        int r = 0;

        for (unsigned c = 0; r >= 0 && c < BATCH_CALLS; c++) {
                b->data[0] = (uint8_t) c; /* not quite the same bytes every call */
                r = side ? pwrite_batch(b->memfd, b->data, b->ram, &b->k[1])
                         : bench_call_batch(b->bus, &vm, b->data, BATCH_ENTRIES, ENTRY_SIZE, b->ram, &b->k[0]);
        }
        *sum += bench_now_nsec() - start;
        return r;
}

static int run_call(sd_bus *bus, const char *path, uint64_t ram, unsigned calls, unsigned warmup, unsigned runs) {
        uint64_t next_gpa = 0, tv[BENCH_RUNS_MAX], te[BENCH_RUNS_MAX];
        const small_call vm = { VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, "MemWrite", true, ram, &next_gpa };
        const small_call echo = { BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, "Echo", false, 0, NULL };
        int r;

        printf("  call    MemWrite(gpa, 8 bytes, {}) vs Echo(\"01234567\"): %u calls per run, %u warm-up\n", calls,
               warmup);
        fflush(stdout);
        r = bench_compare(&(bench_side) { bus, call_small, &vm }, &(bench_side) { bus, call_small, &echo }, calls,
                          warmup, runs, tv, te);
        if (r < 0)
                return r;
        bench_ratio x = bench_ratio_of(calls, tv, te, runs);
        printf("  call    vmsigd %9.0f calls/s  echo %9.0f calls/s  ratio vmsigd/echo time %.3f"
               " (target <= %.1f) %s",
               x.a, x.b, x.ratio, CALL_TARGET_RATIO, x.ratio <= CALL_TARGET_RATIO ? "PASS" : "FAIL");
        bench_print_runs("vmsigd", "echo", calls, tv, te, runs);
        printf("@ memwrite-call vmsigd_cps=%.0f echo_cps=%.0f ratio=%.3f\n", x.a, x.b, x.ratio);
        fflush(stdout);
        return 0;
}

static int run_batch(sd_bus *bus, const char *path, uint64_t ram, unsigned runs) {
        const double mib = (double) BATCH_BYTES * BATCH_CALLS / (1 << 20);
        batch_ctx b = { .bus = bus, .path = path, .ram = ram, .data = malloc(BATCH_BYTES) };
        uint64_t t[2][BENCH_RUNS_MAX];
        int r = 0;

        b.memfd = memfd_create("bench-memwrite", MFD_CLOEXEC);
        if (!b.data || b.memfd < 0 || ftruncate(b.memfd, (off_t) ram) < 0) {
                r = b.data ? -errno : -ENOMEM;
                fprintf(stderr, "bench-memwrite: memfd of %" PRIu64 " bytes: %s\n", ram, strerror(-r));
        }
        for (size_t i = 0; r >= 0 && i < BATCH_BYTES; i++)
                b.data[i] = (uint8_t) (i * 131 + (i >> 12));
        if (r >= 0) {
                printf("  batch   MemWriteBatch of %u x %u bytes vs pwrite() to a memfd of %" PRIu64
                       " MiB: %u calls (%.0f MiB) per run, 1 warm-up run\n",
                       BATCH_ENTRIES, ENTRY_SIZE, ram >> 20, BATCH_CALLS, mib);
                fflush(stdout);
                r = bench_compare_passes(batch_pass, &b, runs, t);
        }
        if (b.memfd >= 0)
                close(b.memfd);
        free(b.data);
        if (r < 0)
                return r;
        double v = mib / (bench_median_of_runs(t[0], runs) / 1e9), p = mib / (bench_median_of_runs(t[1], runs) / 1e9);
        printf("  batch   vmsigd %8.1f MiB/s  pwrite baseline %8.1f MiB/s  ratio vmsigd/baseline %.3f (report only)", v,
               p, v / p);
        bench_print_mib_runs("vmsigd", "baseline", mib, t, runs);
        printf("@ memwrite-batch vmsigd_mbps=%.1f baseline_mbps=%.1f ratio=%.3f\n", v, p, v / p);
        return 0;
}

int main(int argc, char *argv[]) {
        unsigned calls = 20000, warmup = 2000, runs = 3;
        const char *endpoint = "alpha";
        const bench_option options[] = {
                BENCH_OPT_S("endpoint", &endpoint),
                BENCH_OPT_CALLS(&calls),
                BENCH_OPT_WARMUP(&warmup),
                BENCH_OPT_RUNS(&runs),
                {},
        };
        char *path = NULL, *lease = NULL;
        uint64_t ram = 0;
        int lease_fd = -1, r;
        sd_bus *bus = NULL;

        bench_parse_options(argc, argv, options,
                            "bench-memwrite [--endpoint NAME] [--calls N] [--warmup N] [--runs N]\n"
                            "MemWrite round trips vs Echo of " BENCH_ECHO_NAME ", and MemWriteBatch\n"
                            "throughput vs pwrite() to a memfd, on the system bus ($DBUS_SYSTEM_BUS_ADDRESS).\n"
                            "Needs root (the memory-write lease).\n");
        path = bench_endpoint_path(endpoint);
        r = path ? bench_open_system(&bus) : -ENOMEM;
        if (r >= 0)
                r = bench_get_trivial(bus, path, "RamSize", 't', &ram);
        if (r >= 0 && ram < ENTRY_SIZE) {
                fprintf(stderr, "bench-memwrite: %s has RamSize %" PRIu64 ", less than %u bytes\n", endpoint, ram,
                        ENTRY_SIZE);
                r = -EINVAL;
        }
        if (r >= 0) {
                printf("bench-memwrite: endpoint %s, RamSize %" PRIu64 " MiB, median of %u runs\n", endpoint, ram >> 20,
                       runs);
                r = bench_acquire_lease(bus, path, "memory-write", &lease_fd, &lease);
        }
        if (r >= 0) {
                printf("  lease   memory-write lease %s taken\n", lease);
                r = run_call(bus, path, ram, calls, warmup, runs);
        }
        if (r >= 0)
                r = run_batch(bus, path, ram, runs);
        if (lease_fd >= 0)
                close(lease_fd); /* ends the lease */
        sd_bus_flush_close_unref(bus);
        free(path);
        free(lease);
        /* A missed target is for run.sh's summary to judge, not an error. */
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
