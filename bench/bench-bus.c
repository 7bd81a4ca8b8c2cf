/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-bus: sequential D-Bus round trips against vmsigd, compared in the
 * same run with bench/echo-service on the same bus.
 *
 * Each case is a pair of calls that do the same thing on the wire, one to
 * vmsigd and one to the echo service, issued by the same function:
 *   get-version   Properties.Get(org.vmsig.Manager, Version)  vs  Get(Version)
 *   get-state     Properties.Get(org.vmsig.Endpoint, State)   vs  Get(State)
 *                 on /org/vmsig/endpoint/NAME
 *   get-endpoint  Manager.GetEndpoint(NAME) -> o             vs  Echo(NAME) -> s
 *
 * Every case warms both targets up, then measures RUNS runs of N calls to
 * each, alternating in slices (bench_compare()). The median run of each is
 * reported; the ratio is vmsigd time / echo time for the same number of
 * calls (1.0: as fast as the trivial service).
 */
#include <stdlib.h>

#include "bench-lib.h"

typedef struct bench_case {
        const char *name;
        const char *description;
        bench_method vmsig, echo;
} bench_case;

static int run_case(sd_bus *bus, const bench_case *bc, unsigned calls, unsigned warmup, unsigned runs) {
        uint64_t tv[BENCH_RUNS_MAX], te[BENCH_RUNS_MAX];
        char *a = NULL, *b = NULL;
        int r;

        /* Check that both answer, and say what they answered. */
        r = bench_call_method_string(bus, &bc->vmsig, &a);
        if (r >= 0)
                r = bench_call_method_string(bus, &bc->echo, &b);
        if (r >= 0)
                printf("  %-13s %s: vmsigd answers \"%s\", echo answers \"%s\"\n", bc->name, bc->description, a, b);
        free(a);
        free(b);
        if (r >= 0)
                r = bench_compare(&(bench_side) { bus, bench_call_method, &bc->vmsig },
                                  &(bench_side) { bus, bench_call_method, &bc->echo }, calls, warmup, runs, tv, te);
        if (r < 0)
                return r;

        bench_ratio x = bench_ratio_of(calls, tv, te, runs);
        printf("  %-13s vmsigd %9.0f calls/s  echo %9.0f calls/s  ratio vmsigd/echo time %.3f", bc->name, x.a, x.b,
               x.ratio);
        bench_print_runs("vmsigd", "echo", calls, tv, te, runs);
        printf("@ bus-%s vmsigd_cps=%.0f echo_cps=%.0f ratio=%.3f\n", bc->name, x.a, x.b, x.ratio);
        fflush(stdout);
        return 0;
}

/* The cases --case names (all without it), vmsigd's ENDPOINT at PATH. */
static int run_cases(sd_bus *bus, const char *path, const char *endpoint, const bench_list *only, unsigned calls,
                     unsigned warmup, unsigned runs) {
        const bench_case cases[] = {
                { "get-version",
                  "Properties.Get of a constant string property",
                  { VMSIG_BUS_NAME, VMSIG_BUS_PATH, BENCH_PROPERTIES_INTERFACE, "Get", VMSIG_BUS_MANAGER_INTERFACE,
                    "Version", 'v' },
                  { BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_PROPERTIES_INTERFACE, "Get", BENCH_ECHO_INTERFACE,
                    "Version", 'v' } },
                { "get-state",
                  "Properties.Get of an endpoint's State",
                  { VMSIG_BUS_NAME, path, BENCH_PROPERTIES_INTERFACE, "Get", VMSIG_BUS_ENDPOINT_INTERFACE, "State",
                    'v' },
                  { BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_PROPERTIES_INTERFACE, "Get", BENCH_ECHO_INTERFACE, "State",
                    'v' } },
                { "get-endpoint",
                  "a method taking and returning a string",
                  { VMSIG_BUS_NAME, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "GetEndpoint", endpoint, NULL, 'o' },
                  { BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, "Echo", endpoint, NULL, 's' } },
        };
        int r = 0;

        printf("bench-bus: %u sequential calls per run, %u warm-up calls, median of %u runs\n", calls, warmup, runs);
        for (size_t i = 0; r >= 0 && i < BENCH_ELEMENTS(cases); i++)
                if (bench_list_wants(only, cases[i].name))
                        r = run_case(bus, &cases[i], calls, warmup, runs);
        return r;
}

static const char usage[] = "bench-bus [--calls N] [--warmup N] [--runs N] [--endpoint NAME] [--case NAME]...\n"
                            "bench-bus --wait NAME [--timeout SECONDS]\n"
                            "bench-bus --bus-config DIR --srcdir DIR\n"
                            "Round trips against org.vmsig and " BENCH_ECHO_NAME " on the system bus\n"
                            "($DBUS_SYSTEM_BUS_ADDRESS). Cases: get-version, get-state, get-endpoint.\n"
                            "--wait only waits until NAME has an owner; --bus-config prints the configuration of a\n"
                            "private system bus listening in DIR.\n";

int main(int argc, char *argv[]) {
        unsigned calls = 20000, warmup = 2000, runs = 3;
        const char *endpoint = "alpha", *wait_name = NULL, *bus_config = NULL, *srcdir = ".";
        double timeout = 10;
        bench_list only = {};
        const bench_option options[] = {
                BENCH_OPT_CALLS(&calls),
                BENCH_OPT_WARMUP(&warmup),
                BENCH_OPT_RUNS(&runs),
                BENCH_OPT_S("endpoint", &endpoint),
                BENCH_OPT_L("case", &only),
                BENCH_OPT_S("wait", &wait_name),
                BENCH_OPT_D("timeout", &timeout),
                BENCH_OPT_S("bus-config", &bus_config),
                BENCH_OPT_S("srcdir", &srcdir),
                {},
        };
        sd_bus *bus = NULL;
        char *path = NULL;
        int r;

        bench_parse_options(argc, argv, options, usage);
        if (bus_config) {
                char *text = bench_bus_config(bus_config, srcdir);
                return text && fputs(text, stdout) >= 0 ? EXIT_SUCCESS : EXIT_FAILURE;
        }
        path = bench_endpoint_path(endpoint);
        r = path ? bench_open_system(&bus) : -ENOMEM;
        if (r >= 0 && wait_name) {
                r = bench_wait_name(bus, wait_name, timeout);
                if (r < 0)
                        fprintf(stderr, "bench-bus: waiting for %s: %s\n", wait_name, strerror(-r));
        }

        if (r >= 0 && !wait_name)
                r = run_cases(bus, path, endpoint, &only, calls, warmup, runs);
        sd_bus_flush_close_unref(bus);
        free(path);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
