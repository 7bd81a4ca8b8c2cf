/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-private: vmsigd's private socket against vmsigd through the bus.
 * As root: the private socket admits uid 0 only.
 *
 * The p2p client is sd_bus_new() + sd_bus_set_address("unix:path=...") +
 * sd_bus_start(), with a NULL destination on every call. The same calls go
 * to org.vmsig through dbus-daemon from a second connection of the same
 * process:
 *   get-endpoint  Manager.GetEndpoint(NAME) -> o
 *   get-version   Properties.Get(org.vmsig.Manager, Version)
 * With --echo-socket, Echo(NAME) of bench/echo-service over its own p2p
 * socket and through the bus is measured the same way, as a reference: what
 * leaving dbus-daemon out gains on this machine for a trivial service.
 *
 * Median of RUNS runs of N calls, p2p and bus alternating in slices. The
 * ratio is bus time / p2p time (how many times faster p2p is). Lines
 * starting with "@" are for bench/run.sh.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "bench-util.h"

#define ECHO_NAME "org.vmsig.BenchEcho"
#define ECHO_PATH "/org/vmsig/BenchEcho"
#define ECHO_INTERFACE "org.vmsig.BenchEcho"
#define PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"

typedef struct private_case {
        const char *name;
        const char *description;
        bench_method p2p, bus;
        bool reference; /* reported, no target */
} private_case;

static int run_case(const private_case *pc, sd_bus *p2p, sd_bus *bus, unsigned calls, unsigned warmup,
                    unsigned runs) {
        uint64_t tp[BENCH_RUNS_MAX], tb[BENCH_RUNS_MAX];
        char *a = NULL, *b = NULL;
        int r;

        r = bench_call_method_string(p2p, &pc->p2p, &a);
        if (r >= 0)
                r = bench_call_method_string(bus, &pc->bus, &b);
        if (r >= 0)
                printf("  %-13s %s: p2p answers \"%s\", bus answers \"%s\"\n", pc->name, pc->description, a, b);
        free(a);
        free(b);
        if (r < 0)
                return r;

        r = bench_compare(&(bench_side) { p2p, bench_call_method, &pc->p2p },
                          &(bench_side) { bus, bench_call_method, &pc->bus }, calls, warmup, runs, tp, tb);
        if (r < 0)
                return r;

        uint64_t mp = bench_median_of_runs(tp, runs), mb = bench_median_of_runs(tb, runs);
        double cps_p = calls / (mp / 1e9), cps_b = calls / (mb / 1e9), ratio = (double) mb / (double) mp;
        printf("  %-13s p2p %7.0f calls/s  bus %7.0f calls/s  ratio p2p/bus rate %.3f  (runs: p2p", pc->name, cps_p,
               cps_b, ratio);
        bench_print_rates(calls, tp, runs);
        printf("; bus");
        bench_print_rates(calls, tb, runs);
        printf(")\n");
        printf("@ private-%s p2p_cps=%.0f bus_cps=%.0f ratio=%.3f%s\n", pc->name, cps_p, cps_b, ratio,
               pc->reference ? " reference=1" : "");
        fflush(stdout);
        return 0;
}

static void help(void) {
        printf("bench-private --socket PATH [--echo-socket PATH] [--calls N] [--warmup N] [--runs N]\n"
               "              [--endpoint NAME]\n"
               "vmsigd's private socket at PATH against org.vmsig on the system bus\n"
               "($DBUS_SYSTEM_BUS_ADDRESS). As root.\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "socket", required_argument, NULL, 'p' },
                { "echo-socket", required_argument, NULL, 'E' },
                { "calls", required_argument, NULL, 'n' },
                { "warmup", required_argument, NULL, 'w' },
                { "runs", required_argument, NULL, 'r' },
                { "endpoint", required_argument, NULL, 'e' },
                {},
        };
        unsigned calls = 20000, warmup = 2000, runs = 3;
        const char *socket_path = NULL, *echo_socket = NULL, *endpoint = "alpha";
        sd_bus *bus = NULL, *p2p = NULL, *echo_p2p = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case 'p':
                        socket_path = optarg;
                        break;
                case 'E':
                        echo_socket = optarg;
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
                default:
                        return EXIT_FAILURE;
                }
        if (!socket_path) {
                help();
                return EXIT_FAILURE;
        }

        const private_case cases[] = {
                {
                        "get-endpoint",
                        "Manager.GetEndpoint",
                        { NULL, "/org/vmsig", "org.vmsig.Manager", "GetEndpoint", endpoint, NULL, 'o' },
                        { "org.vmsig", "/org/vmsig", "org.vmsig.Manager", "GetEndpoint", endpoint, NULL, 'o' },
                        false,
                },
                {
                        "get-version",
                        "Properties.Get(Manager.Version)",
                        { NULL, "/org/vmsig", PROPERTIES_INTERFACE, "Get", "org.vmsig.Manager", "Version", 'v' },
                        { "org.vmsig", "/org/vmsig", PROPERTIES_INTERFACE, "Get", "org.vmsig.Manager", "Version", 'v' },
                        false,
                },
                {
                        "echo",
                        "reference: echo-service Echo",
                        { NULL, ECHO_PATH, ECHO_INTERFACE, "Echo", endpoint, NULL, 's' },
                        { ECHO_NAME, ECHO_PATH, ECHO_INTERFACE, "Echo", endpoint, NULL, 's' },
                        true,
                },
        };

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "bench-private: cannot connect to the system bus: %s\n", strerror(-r));
                goto finish;
        }
        r = bench_p2p_connect(socket_path, &p2p);
        if (r < 0) {
                fprintf(stderr, "bench-private: cannot connect to %s: %s\n", socket_path, strerror(-r));
                goto finish;
        }
        if (echo_socket) {
                r = bench_p2p_connect(echo_socket, &echo_p2p);
                if (r < 0) {
                        fprintf(stderr, "bench-private: cannot connect to %s: %s\n", echo_socket, strerror(-r));
                        goto finish;
                }
        }

        printf("bench-private: %u sequential calls per run, %u warm-up calls, median of %u runs\n", calls, warmup, runs);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                if (cases[i].reference && !echo_p2p)
                        continue;
                r = run_case(&cases[i], cases[i].reference ? echo_p2p : p2p, bus, calls, warmup, runs);
                if (r < 0)
                        goto finish;
        }
        r = 0;
finish:
        sd_bus_flush_close_unref(echo_p2p);
        sd_bus_flush_close_unref(p2p);
        sd_bus_flush_close_unref(bus);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
