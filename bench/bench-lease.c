/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-lease: lease cycles per second, as root. One cycle is
 * Endpoint.AcquireLease(CLASS, {}) -> (o lease, h fd), then
 * org.vmsig.Lease.Release() on the lease object, then closing the fd.
 * Through the bus, and with --socket through vmsigd's private socket
 * (where the LeaseAcquired, LeaseReleased and PropertiesChanged signals
 * come to the one peer and are dropped after each cycle). Median of RUNS
 * runs of N cycles, the two alternating in slices. Report only: there is
 * no baseline that does the same work. Lines starting with "@" are for
 * bench/run.sh.
 */
#include <stdlib.h>

#include "bench-lib.h"

typedef struct lease_target {
        const char *destination; /* NULL on the private socket */
        const char *endpoint_path;
        const char *class;
} lease_target;

static int cycle(sd_bus *bus, const void *userdata) {
        const lease_target *t = userdata;
        sd_bus_message *m = NULL, *acquired = NULL;
        const char *lease = NULL;
        int fd = -1, r;

        r = sd_bus_message_new_method_call(bus, &m, t->destination, t->endpoint_path, VMSIG_BUS_ENDPOINT_INTERFACE,
                                           "AcquireLease");
        if (r >= 0)
                r = sd_bus_message_append(m, "sa{sv}", t->class, 0);
        if (r >= 0)
                r = bench_call(bus, m, &acquired);
        if (r >= 0)
                r = sd_bus_message_read(acquired, "oh", &lease, &fd);
        if (r >= 0) {
                m = sd_bus_message_unref(m);
                r = sd_bus_message_new_method_call(bus, &m, t->destination, lease, VMSIG_BUS_LEASE_INTERFACE,
                                                   "Release");
        }
        if (r >= 0)
                r = bench_call(bus, m, NULL);
        /* Only now the fd goes (with the message that owns it): closing it
         * first would end the lease before Release() came. */
        sd_bus_message_unref(acquired);
        sd_bus_message_unref(m);
        if (r >= 0)
                r = bench_drain(bus);
        return r;
}

static void report(const char *side, unsigned calls, const uint64_t *t, unsigned runs) {
        uint64_t m = bench_median_of_runs(t, runs);

        printf("  lease  %s %7.0f cycles/s (%.1f us each)  (runs:", side, calls / (m / 1e9), m / 1e3 / calls);
        bench_print_rates(calls, 0, t, runs);
        printf(")\n");
}

/* The two sides' rates, and the fds the cycles left open: -EBADF if any. */
static int report_all(unsigned calls, const uint64_t *tb, const uint64_t *tp, unsigned runs, bool p2p,
                      int fds_before, int fds_after) {
        bench_ratio x = bench_ratio_of(calls, tb, tp, runs);

        report("bus", calls, tb, runs);
        if (p2p) {
                report("p2p", calls, tp, runs);
                printf("  lease  p2p/bus rate %.3f\n", x.ratio);
                printf("@ lease bus_cps=%.0f p2p_cps=%.0f ratio=%.3f fd_leak=%d\n", x.a, x.b, x.ratio,
                       fds_after - fds_before);
        } else
                printf("@ lease bus_cps=%.0f fd_leak=%d\n", x.a, fds_after - fds_before);
        printf("  lease  fds open before %d, after %d\n", fds_before, fds_after);
        if (fds_after == fds_before)
                return 0;
        fprintf(stderr, "bench-lease: %d fds leaked\n", fds_after - fds_before);
        return -EBADF;
}

int main(int argc, char *argv[]) {
        unsigned calls = 5000, warmup = 500, runs = 3;
        const char *socket_path = NULL, *endpoint = "alpha", *class = "power";
        const bench_option options[] = {
                BENCH_OPT_S("socket", &socket_path),
                BENCH_OPT_CALLS(&calls),
                BENCH_OPT_WARMUP(&warmup),
                BENCH_OPT_RUNS(&runs),
                BENCH_OPT_S("endpoint", &endpoint),
                BENCH_OPT_S("class", &class),
                {},
        };
        uint64_t tb[BENCH_RUNS_MAX], tp[BENCH_RUNS_MAX];
        sd_bus *bus = NULL, *p2p = NULL;
        char *path = NULL;
        int r, fds_before, fds_after;

        bench_parse_options(argc, argv, options,
                            "bench-lease [--socket PATH] [--calls N] [--warmup N] [--runs N] [--endpoint NAME]\n"
                            "            [--class input|power|memory-write]\n"
                            "AcquireLease + Release cycles on org.vmsig through the system bus\n"
                            "($DBUS_SYSTEM_BUS_ADDRESS), and through the private socket at PATH. As root.\n");
        path = bench_endpoint_path(endpoint);
        r = path ? bench_open_system(&bus) : -ENOMEM;
        if (r >= 0 && socket_path)
                r = bench_p2p_connect(socket_path, &p2p);
        if (r < 0)
                goto finish;

        const lease_target on_bus = { VMSIG_BUS_NAME, path, class };
        const lease_target on_p2p = { NULL, path, class };
        printf("bench-lease: AcquireLease(\"%s\", {}) + Release() on %s, %u cycles per run, %u warm-up cycles,"
               " median of %u runs\n",
               class, path, calls, warmup, runs);
        fds_before = bench_count_fds();
        /* Without the private socket, both halves on the bus. */
        r = bench_compare(&(bench_side) { bus, cycle, &on_bus },
                          &(bench_side) { p2p ? p2p : bus, cycle, p2p ? &on_p2p : &on_bus }, calls, warmup, runs, tb,
                          tp);
        fds_after = bench_count_fds();
        if (r >= 0)
                r = report_all(calls, tb, tp, runs, p2p != NULL, fds_before, fds_after);
finish:
        sd_bus_flush_close_unref(p2p);
        sd_bus_flush_close_unref(bus);
        free(path);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
