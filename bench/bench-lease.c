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
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "bench-util.h"

#define ENDPOINT_INTERFACE "org.vmsig.Endpoint"
#define LEASE_INTERFACE "org.vmsig.Lease"

typedef struct lease_target {
        const char *destination; /* NULL on the private socket */
        const char *endpoint_path;
        const char *class;
} lease_target;

static int cycle(sd_bus *bus, const void *userdata) {
        const lease_target *t = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *acquired = NULL, *released = NULL;
        const char *lease = NULL, *what = "AcquireLease";
        int fd = -1, r;

        r = sd_bus_message_new_method_call(bus, &m, t->destination, t->endpoint_path, ENDPOINT_INTERFACE,
                                           "AcquireLease");
        if (r >= 0)
                r = sd_bus_message_append(m, "sa{sv}", t->class, 0);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, &error, &acquired);
        if (r >= 0)
                r = sd_bus_message_read(acquired, "oh", &lease, &fd);
        if (r >= 0) {
                what = "Release";
                m = sd_bus_message_unref(m);
                r = sd_bus_message_new_method_call(bus, &m, t->destination, lease, LEASE_INTERFACE, "Release");
        }
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, &error, &released);
        if (r < 0)
                fprintf(stderr, "bench-lease: %s%s%s of the %s lease on %s: %s\n", what, lease ? " of " : "",
                        lease ? lease : "", t->class, t->endpoint_path, error.message ? error.message : strerror(-r));
        /* Only now the fd goes (with the message that owns it): closing it
         * first would end the lease before Release() came. */
        sd_bus_error_free(&error);
        sd_bus_message_unref(released);
        sd_bus_message_unref(acquired);
        sd_bus_message_unref(m);
        if (r >= 0)
                r = bench_drain(bus);
        return r;
}

static void help(void) {
        printf("bench-lease [--socket PATH] [--calls N] [--warmup N] [--runs N] [--endpoint NAME]\n"
               "            [--class input|power|memory-write]\n"
               "AcquireLease + Release cycles on org.vmsig through the system bus\n"
               "($DBUS_SYSTEM_BUS_ADDRESS), and through the private socket at PATH. As root.\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "socket", required_argument, NULL, 'p' },
                { "calls", required_argument, NULL, 'n' },
                { "warmup", required_argument, NULL, 'w' },
                { "runs", required_argument, NULL, 'r' },
                { "endpoint", required_argument, NULL, 'e' },
                { "class", required_argument, NULL, 'C' },
                {},
        };
        unsigned calls = 5000, warmup = 500, runs = 3;
        const char *socket_path = NULL, *endpoint = "alpha", *class = "power";
        uint64_t tb[BENCH_RUNS_MAX], tp[BENCH_RUNS_MAX];
        sd_bus *bus = NULL, *p2p = NULL;
        char *path = NULL;
        int c, r, fds_before, fds_after;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case 'p':
                        socket_path = optarg;
                        break;
                case 'n':
                        calls = bench_parse_unsigned("calls", optarg, 1, 100000000);
                        break;
                case 'w':
                        warmup = bench_parse_unsigned("warmup", optarg, 0, 100000000);
                        break;
                case 'r':
                        runs = bench_parse_unsigned("runs", optarg, 1, BENCH_RUNS_MAX);
                        break;
                case 'e':
                        endpoint = optarg;
                        break;
                case 'C':
                        class = optarg;
                        break;
                default:
                        return EXIT_FAILURE;
                }

        r = sd_bus_path_encode("/org/vmsig/endpoint", endpoint, &path);
        if (r < 0)
                goto finish;
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "bench-lease: cannot connect to the system bus: %s\n", strerror(-r));
                goto finish;
        }
        if (socket_path) {
                r = bench_p2p_connect(socket_path, &p2p);
                if (r < 0) {
                        fprintf(stderr, "bench-lease: cannot connect to %s: %s\n", socket_path, strerror(-r));
                        goto finish;
                }
        }

        const lease_target on_bus = { "org.vmsig", path, class };
        const lease_target on_p2p = { NULL, path, class };
        printf("bench-lease: AcquireLease(\"%s\", {}) + Release() on %s, %u cycles per run, %u warm-up cycles,"
               " median of %u runs\n",
               class, path, calls, warmup, runs);
        fds_before = bench_count_fds();
        if (p2p)
                r = bench_compare(&(bench_side) { bus, cycle, &on_bus }, &(bench_side) { p2p, cycle, &on_p2p }, calls,
                                  warmup, runs, tb, tp);
        else
                r = bench_compare(&(bench_side) { bus, cycle, &on_bus }, &(bench_side) { bus, cycle, &on_bus }, calls,
                                  warmup, runs, tb, tp); /* both halves on the bus */
        fds_after = bench_count_fds();
        if (r < 0)
                goto finish;

        uint64_t mb = bench_median_of_runs(tb, runs);
        printf("  lease  bus %7.0f cycles/s (%.1f us each)  (runs:", calls / (mb / 1e9), mb / 1e3 / calls);
        bench_print_rates(calls, tb, runs);
        printf(")\n");
        if (p2p) {
                uint64_t mp = bench_median_of_runs(tp, runs);
                printf("  lease  p2p %7.0f cycles/s (%.1f us each)  (runs:", calls / (mp / 1e9), mp / 1e3 / calls);
                bench_print_rates(calls, tp, runs);
                printf(")\n  lease  p2p/bus rate %.3f\n", (double) mb / (double) mp);
                printf("@ lease bus_cps=%.0f p2p_cps=%.0f ratio=%.3f fd_leak=%d\n", calls / (mb / 1e9),
                       calls / (mp / 1e9), (double) mb / (double) mp, fds_after - fds_before);
        } else
                printf("@ lease bus_cps=%.0f fd_leak=%d\n", calls / (mb / 1e9), fds_after - fds_before);
        printf("  lease  fds open before %d, after %d\n", fds_before, fds_after);
        if (fds_after != fds_before) {
                fprintf(stderr, "bench-lease: %d fds leaked\n", fds_after - fds_before);
                r = -EBADF;
        }
finish:
        sd_bus_flush_close_unref(p2p);
        sd_bus_flush_close_unref(bus);
        free(path);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
