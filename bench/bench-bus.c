/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-bus: sequential D-Bus round trips, two sides in the same run.
 *
 * On the bus (the default): vmsigd against bench/echo-service on the same
 * bus, each case a pair of calls that do the same thing on the wire,
 * issued by the same function:
 *   get-version   Properties.Get(org.vmsig.Manager, Version)  vs  Get(Version)
 *   get-state     Properties.Get(org.vmsig.Endpoint, State)   vs  Get(State)
 *                 on /org/vmsig/endpoint/NAME
 *   get-endpoint  Manager.GetEndpoint(NAME) -> o             vs  Echo(NAME) -> s
 * The ratio is vmsigd time / echo time for the same number of calls (1.0:
 * as fast as the trivial service).
 *
 * With --socket: vmsigd's private socket against vmsigd through the bus,
 * as root (the private socket admits uid 0 only). The p2p client is
 * sd_bus_new() + sd_bus_set_address("unix:path=...") + sd_bus_start(),
 * with a NULL destination on every call; the same calls go to org.vmsig
 * through dbus-daemon from a second connection of the same process:
 *   get-endpoint  Manager.GetEndpoint(NAME) -> o
 *   get-version   Properties.Get(org.vmsig.Manager, Version)
 * With --echo-socket, Echo(NAME) of bench/echo-service over its own p2p
 * socket and through the bus is measured the same way, as a reference: what
 * leaving dbus-daemon out gains on this machine for a trivial service. The
 * ratio is bus time / p2p time (how many times faster p2p is).
 *
 * Every case warms both sides up, then measures RUNS runs of N calls to
 * each, alternating in slices (bench_compare()); the median run of each is
 * reported. Lines starting with "@" are for bench/run.sh.
 */
#include <stdlib.h>

#include "bench-lib.h"

typedef struct call_case {
        const char *name;
        const char *description;
        bench_method a, b;
        sd_bus *bus_a, *bus_b; /* NULL: the case is not run */
        bool reference;        /* reported, no target */
} call_case;

/* How a mode tells its comparison. */
typedef struct call_mode {
        const char *program, *prefix, *a, *b, *ratio_what;
        int width; /* of the rates */
        bool rates; /* the ratio is a's rate / b's (b's time / a's), not a's time / b's */
} call_mode;

static const call_mode bus_mode = { "bench-bus", "bus", "vmsigd", "echo", "vmsigd/echo time", 9, false };
static const call_mode private_mode = { "bench-private", "private", "p2p", "bus", "p2p/bus rate", 7, true };

static int run_case(const call_mode *mode, const call_case *cc, unsigned calls, unsigned warmup, unsigned runs) {
        uint64_t ta[BENCH_RUNS_MAX], tb[BENCH_RUNS_MAX];
        char *sa = NULL, *sb = NULL;
        int r;

        /* Check that both answer, and say what they answered. */
        r = bench_call_method_string(cc->bus_a, &cc->a, &sa);
        if (r >= 0)
                r = bench_call_method_string(cc->bus_b, &cc->b, &sb);
        if (r >= 0)
                printf("  %-13s %s: %s answers \"%s\", %s answers \"%s\"\n", cc->name, cc->description, mode->a, sa,
                       mode->b, sb);
        free(sa);
        free(sb);
        if (r >= 0)
                r = bench_compare(&(bench_side) { cc->bus_a, bench_call_method, &cc->a },
                                  &(bench_side) { cc->bus_b, bench_call_method, &cc->b }, calls, warmup, runs, ta, tb);
        if (r < 0)
                return r;
        bench_ratio x = mode->rates ? bench_ratio_of(calls, tb, ta, runs) : bench_ratio_of(calls, ta, tb, runs);
        double rate_a = mode->rates ? x.b : x.a, rate_b = mode->rates ? x.a : x.b;
        printf("  %-13s %s %*.0f calls/s  %s %*.0f calls/s  ratio %s %.3f", cc->name, mode->a, mode->width, rate_a,
               mode->b, mode->width, rate_b, mode->ratio_what, x.ratio);
        bench_print_runs(mode->a, mode->b, calls, ta, tb, runs);
        printf("@ %s-%s %s_cps=%.0f %s_cps=%.0f ratio=%.3f%s\n", mode->prefix, cc->name, mode->a, rate_a, mode->b,
               rate_b, x.ratio, cc->reference ? " reference=1" : "");
        fflush(stdout);
        return 0;
}

#define GET(dest, path, iface, prop) { dest, path, BENCH_PROPERTIES_INTERFACE, "Get", iface, prop, 'v' }
#define GET_VERSION(dest) GET(dest, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "Version")
#define GET_ENDPOINT(dest, name)                                                                                       \
        { dest, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "GetEndpoint", name, NULL, 'o' }
#define ECHO(dest, name) { dest, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, "Echo", name, NULL, 's' }

/* The cases --case names (all without it); vmsigd's ENDPOINT at PATH. In
 * private mode p2p is vmsigd's private socket, echo_p2p echo-service's. */
static int run_cases(sd_bus *bus, sd_bus *p2p, sd_bus *echo_p2p, const char *path, const char *endpoint,
                     const bench_list *only, unsigned calls, unsigned warmup, unsigned runs) {
        const call_case bus_cases[] = {
                { "get-version", "Properties.Get of a constant string property", GET_VERSION(VMSIG_BUS_NAME),
                  GET(BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, "Version"), bus, bus, false },
                { "get-state", "Properties.Get of an endpoint's State",
                  GET(VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, "State"),
                  GET(BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, "State"), bus, bus, false },
                { "get-endpoint", "a method taking and returning a string", GET_ENDPOINT(VMSIG_BUS_NAME, endpoint),
                  ECHO(BENCH_ECHO_NAME, endpoint), bus, bus, false },
        };
        const call_case private_cases[] = {
                { "get-endpoint", "Manager.GetEndpoint", GET_ENDPOINT(NULL, endpoint),
                  GET_ENDPOINT(VMSIG_BUS_NAME, endpoint), p2p, bus, false },
                { "get-version", "Properties.Get(Manager.Version)", GET_VERSION(NULL), GET_VERSION(VMSIG_BUS_NAME),
                  p2p, bus, false },
                { "echo", "reference: echo-service Echo", ECHO(NULL, endpoint), ECHO(BENCH_ECHO_NAME, endpoint),
                  echo_p2p, bus, true },
        };
        const call_mode *mode = p2p ? &private_mode : &bus_mode;
        const call_case *cases = p2p ? private_cases : bus_cases;
        size_t n = p2p ? BENCH_ELEMENTS(private_cases) : BENCH_ELEMENTS(bus_cases);
        int r = 0;

        printf("%s: %u sequential calls per run, %u warm-up calls, median of %u runs\n", mode->program, calls, warmup,
               runs);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (cases[i].bus_a && bench_list_wants(only, cases[i].name))
                        r = run_case(mode, &cases[i], calls, warmup, runs);
        return r;
}

static const char usage[] =
        "bench-bus [--calls N] [--warmup N] [--runs N] [--endpoint NAME] [--case NAME]...\n"
        "          [--socket PATH [--echo-socket PATH]]\n"
        "bench-bus --wait NAME [--timeout SECONDS]\n"
        "bench-bus --bus-config DIR --srcdir DIR\n"
        "Round trips against org.vmsig and " BENCH_ECHO_NAME " on the system bus\n"
        "($DBUS_SYSTEM_BUS_ADDRESS). Cases: get-version, get-state, get-endpoint.\n"
        "--socket: vmsigd's private socket at PATH against org.vmsig on the bus instead, as root\n"
        "(cases get-endpoint, get-version, and echo with --echo-socket).\n"
        "--wait only waits until NAME has an owner; --bus-config prints the configuration of a\n"
        "private system bus listening in DIR.\n";

int main(int argc, char *argv[]) {
        unsigned calls = 20000, warmup = 2000, runs = 3;
        const char *endpoint = "alpha", *wait_name = NULL, *bus_config = NULL, *srcdir = ".";
        const char *socket_path = NULL, *echo_socket = NULL;
        double timeout = 10;
        bench_list only = {};
        const bench_option options[] = {
                BENCH_OPT_CALLS(&calls),
                BENCH_OPT_WARMUP(&warmup),
                BENCH_OPT_RUNS(&runs),
                BENCH_OPT_S("endpoint", &endpoint),
                BENCH_OPT_L("case", &only),
                BENCH_OPT_S("socket", &socket_path),
                BENCH_OPT_S("echo-socket", &echo_socket),
                BENCH_OPT_S("wait", &wait_name),
                BENCH_OPT_D("timeout", &timeout),
                BENCH_OPT_S("bus-config", &bus_config),
                BENCH_OPT_S("srcdir", &srcdir),
                {},
        };
        sd_bus *bus = NULL, *p2p = NULL, *echo_p2p = NULL;
        char *path = NULL;
        int r;

        bench_parse_options(argc, argv, options, usage);
        if (bus_config) {
                char *text = bench_bus_config(bus_config, srcdir);
                return text && fputs(text, stdout) >= 0 ? EXIT_SUCCESS : EXIT_FAILURE;
        }
        path = bench_endpoint_path(endpoint);
        r = path ? bench_open_system(&bus) : -ENOMEM;
        if (r >= 0 && socket_path)
                r = bench_p2p_connect(socket_path, &p2p);
        if (r >= 0 && socket_path && echo_socket)
                r = bench_p2p_connect(echo_socket, &echo_p2p);
        if (r >= 0 && wait_name) {
                r = bench_wait_name(bus, wait_name, timeout);
                if (r < 0)
                        fprintf(stderr, "bench-bus: waiting for %s: %s\n", wait_name, strerror(-r));
        }
        if (r >= 0 && !wait_name)
                r = run_cases(bus, p2p, echo_p2p, path, endpoint, &only, calls, warmup, runs);
        sd_bus_flush_close_unref(echo_p2p);
        sd_bus_flush_close_unref(p2p);
        sd_bus_flush_close_unref(bus);
        free(path);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
