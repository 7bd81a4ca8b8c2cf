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
#include <stdlib.h>

#include "bench-lib.h"

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

        bench_ratio x = bench_ratio_of(calls, tb, tp, runs); /* bus time / p2p time */
        printf("  %-13s p2p %7.0f calls/s  bus %7.0f calls/s  ratio p2p/bus rate %.3f", pc->name, x.b, x.a, x.ratio);
        bench_print_runs("p2p", "bus", calls, tp, tb, runs);
        printf("@ private-%s p2p_cps=%.0f bus_cps=%.0f ratio=%.3f%s\n", pc->name, x.b, x.a, x.ratio,
               pc->reference ? " reference=1" : "");
        fflush(stdout);
        return 0;
}

/* Each case; echo's, the reference, only with its p2p socket. */
static int run_cases(const char *endpoint, sd_bus *p2p, sd_bus *echo_p2p, sd_bus *bus, unsigned calls,
                     unsigned warmup, unsigned runs) {
        const private_case cases[] = {
                { "get-endpoint",
                  "Manager.GetEndpoint",
                  { NULL, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "GetEndpoint", endpoint, NULL, 'o' },
                  { VMSIG_BUS_NAME, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "GetEndpoint", endpoint, NULL, 'o' },
                  false },
                { "get-version",
                  "Properties.Get(Manager.Version)",
                  { NULL, VMSIG_BUS_PATH, BENCH_PROPERTIES_INTERFACE, "Get", VMSIG_BUS_MANAGER_INTERFACE, "Version",
                    'v' },
                  { VMSIG_BUS_NAME, VMSIG_BUS_PATH, BENCH_PROPERTIES_INTERFACE, "Get", VMSIG_BUS_MANAGER_INTERFACE,
                    "Version", 'v' },
                  false },
                { "echo",
                  "reference: echo-service Echo",
                  { NULL, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, "Echo", endpoint, NULL, 's' },
                  { BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, "Echo", endpoint, NULL, 's' },
                  true },
        };
        int r = 0;

        for (size_t i = 0; r >= 0 && i < BENCH_ELEMENTS(cases); i++)
                if (!cases[i].reference || echo_p2p)
                        r = run_case(&cases[i], cases[i].reference ? echo_p2p : p2p, bus, calls, warmup, runs);
        return r;
}

int main(int argc, char *argv[]) {
        unsigned calls = 20000, warmup = 2000, runs = 3;
        const char *socket_path = NULL, *echo_socket = NULL, *endpoint = "alpha";
        const bench_option options[] = {
                BENCH_OPT_S("socket", &socket_path),
                BENCH_OPT_S("echo-socket", &echo_socket),
                BENCH_OPT_CALLS(&calls),
                BENCH_OPT_WARMUP(&warmup),
                BENCH_OPT_RUNS(&runs),
                BENCH_OPT_S("endpoint", &endpoint),
                {},
        };
        static const char usage[] =
                "bench-private --socket PATH [--echo-socket PATH] [--calls N] [--warmup N] [--runs N]\n"
                "              [--endpoint NAME]\n"
                "vmsigd's private socket at PATH against org.vmsig on the system bus\n"
                "($DBUS_SYSTEM_BUS_ADDRESS). As root.\n";
        sd_bus *bus = NULL, *p2p = NULL, *echo_p2p = NULL;
        int r;

        bench_parse_options(argc, argv, options, usage);
        if (!socket_path) {
                fputs(usage, stdout);
                return EXIT_FAILURE;
        }

        r = bench_open_system(&bus);
        if (r >= 0)
                r = bench_p2p_connect(socket_path, &p2p);
        if (r >= 0 && echo_socket)
                r = bench_p2p_connect(echo_socket, &echo_p2p);
        if (r >= 0)
                printf("bench-private: %u sequential calls per run, %u warm-up calls, median of %u runs\n", calls,
                       warmup, runs);
        if (r >= 0)
                r = run_cases(endpoint, p2p, echo_p2p, bus, calls, warmup, runs);
        sd_bus_flush_close_unref(echo_p2p);
        sd_bus_flush_close_unref(p2p);
        sd_bus_flush_close_unref(bus);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
