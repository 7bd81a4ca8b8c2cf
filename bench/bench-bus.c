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
 * each; within a run the two alternate in slices of N/100 calls, in the
 * order ABBA. The median
 * run of each is reported. The ratio is
 * vmsigd time / echo time for the same number of calls (1.0: as fast as the
 * trivial service). Lines starting with "@" are for bench/run.sh.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#define VMSIG_NAME "org.vmsig"
#define ECHO_NAME "org.vmsig.BenchEcho"
#define ECHO_PATH "/org/vmsig/BenchEcho"
#define ECHO_INTERFACE "org.vmsig.BenchEcho"
#define PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"

#define RUNS_MAX 15
#define SLICES 100 /* short slices: load bursts from other work hit both alike */

typedef struct target {
        const char *destination;
        const char *path;
        const char *interface;
        const char *member;
        const char *arg1, *arg2; /* string arguments; arg2 may be NULL */
        char reply_type;         /* 'v' (a variant holding a string), 's' or 'o' */
} target;

typedef struct bench_case {
        const char *name;
        const char *description;
        target vmsig, echo;
} bench_case;

static uint64_t now_nsec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* One round trip. This is the only client code path, for both targets. */
static int call_once(sd_bus *bus, const target *t, char **ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        const char *s = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, t->destination, t->path, t->interface, t->member);
        if (r >= 0)
                r = t->arg2 ? sd_bus_message_append(m, "ss", t->arg1, t->arg2) : sd_bus_message_append(m, "s", t->arg1);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r >= 0) {
                if (t->reply_type == 'v')
                        r = sd_bus_message_read(reply, "v", "s", &s);
                else
                        r = sd_bus_message_read_basic(reply, t->reply_type, &s);
        }
        if (r < 0)
                fprintf(stderr, "bench-bus: %s %s.%s on %s: %s\n", t->destination, t->interface, t->member, t->path,
                        error.message ? error.message : strerror(-r));
        else if (ret) {
                *ret = strdup(s);
                if (!*ret)
                        r = -ENOMEM;
        }
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        return r;
}

static int run_calls(sd_bus *bus, const target *t, unsigned n, uint64_t *ret_nsec) {
        uint64_t start = now_nsec();
        for (unsigned i = 0; i < n; i++) {
                int r = call_once(bus, t, NULL);
                if (r < 0)
                        return r;
        }
        *ret_nsec = now_nsec() - start;
        return 0;
}

static int compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, unsigned n) {
        qsort(v, n, sizeof v[0], compare_u64);
        return v[n / 2];
}

static int run_case(sd_bus *bus, const bench_case *bc, unsigned calls, unsigned warmup, unsigned runs) {
        uint64_t tv[RUNS_MAX], te[RUNS_MAX];
        char *answer = NULL;
        int r;

        /* Check that both answer, and say what they answered. */
        r = call_once(bus, &bc->vmsig, &answer);
        if (r < 0)
                return r;
        printf("  %-13s %s: vmsigd answers \"%s\"", bc->name, bc->description, answer);
        free(answer);
        r = call_once(bus, &bc->echo, &answer);
        if (r < 0)
                return r;
        printf(", echo answers \"%s\"\n", answer);
        free(answer);

        for (unsigned i = 0; i < warmup; i++) {
                r = call_once(bus, &bc->vmsig, NULL);
                if (r >= 0)
                        r = call_once(bus, &bc->echo, NULL);
                if (r < 0)
                        return r;
        }

        /* Alternate in slices of a run, so that drift on the machine (other
         * work on the two CPUs) hits both alike. */
        for (unsigned i = 0; i < runs; i++) {
                tv[i] = te[i] = 0;
                for (unsigned j = 0; j < SLICES; j++) {
                        unsigned n = calls / SLICES + (j < calls % SLICES);
                        bool vmsig_first = j % 2 == 0; /* ABBA: no order effect */
                        uint64_t t;

                        r = run_calls(bus, vmsig_first ? &bc->vmsig : &bc->echo, n, &t);
                        if (r < 0)
                                return r;
                        *(vmsig_first ? &tv[i] : &te[i]) += t;
                        r = run_calls(bus, vmsig_first ? &bc->echo : &bc->vmsig, n, &t);
                        if (r < 0)
                                return r;
                        *(vmsig_first ? &te[i] : &tv[i]) += t;
                }
        }

        uint64_t mv = median(tv, runs), me = median(te, runs);
        double cps_v = calls / (mv / 1e9), cps_e = calls / (me / 1e9), ratio = (double) mv / (double) me;

        printf("  %-13s vmsigd %9.0f calls/s  echo %9.0f calls/s  ratio vmsigd/echo time %.3f"
               "  (runs: vmsigd",
               bc->name, cps_v, cps_e, ratio);
        for (unsigned i = 0; i < runs; i++)
                printf(" %.0f", calls / (tv[i] / 1e9));
        printf("; echo");
        for (unsigned i = 0; i < runs; i++)
                printf(" %.0f", calls / (te[i] / 1e9));
        printf(")\n");
        printf("@ bus-%s vmsigd_cps=%.0f echo_cps=%.0f ratio=%.3f\n", bc->name, cps_v, cps_e, ratio);
        fflush(stdout);
        return 0;
}

/* Wait until NAME has an owner on the bus: how bench/run.sh knows that a
 * service it started is ready. */
static int wait_for_name(sd_bus *bus, const char *name, double timeout) {
        uint64_t deadline = now_nsec() + (uint64_t) (timeout * 1e9);

        for (;;) {
                sd_bus_message *reply = NULL;
                int has = 0, r;

                r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "NameHasOwner", NULL, &reply, "s", name);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "b", &has);
                sd_bus_message_unref(reply);
                if (r < 0)
                        return r;
                if (has)
                        return 0;
                if (now_nsec() > deadline)
                        return -ETIMEDOUT;
                nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
}

static void help(void) {
        printf("bench-bus [--calls N] [--warmup N] [--runs N] [--endpoint NAME] [--case NAME]...\n"
               "bench-bus --wait NAME [--timeout SECONDS]\n"
               "Round trips against org.vmsig and " ECHO_NAME " on the system bus\n"
               "($DBUS_SYSTEM_BUS_ADDRESS). Cases: get-version, get-state, get-endpoint.\n"
               "--wait only waits until NAME has an owner.\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "calls", required_argument, NULL, 'n' },
                { "warmup", required_argument, NULL, 'w' },
                { "runs", required_argument, NULL, 'r' },
                { "endpoint", required_argument, NULL, 'e' },
                { "case", required_argument, NULL, 'c' },
                { "wait", required_argument, NULL, 'W' },
                { "timeout", required_argument, NULL, 't' },
                {},
        };
        unsigned calls = 20000, warmup = 2000, runs = 3;
        const char *endpoint = "alpha", *only[8], *wait_name = NULL;
        double timeout = 10;
        char *endpoint_path = NULL;
        unsigned n_only = 0;
        sd_bus *bus = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case 'n':
                        calls = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'w':
                        warmup = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'r':
                        runs = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'e':
                        endpoint = optarg;
                        break;
                case 'W':
                        wait_name = optarg;
                        break;
                case 't':
                        timeout = strtod(optarg, NULL);
                        break;
                case 'c':
                        if (n_only < sizeof only / sizeof only[0])
                                only[n_only++] = optarg;
                        break;
                default:
                        return EXIT_FAILURE;
                }
        if (calls == 0 || runs == 0 || runs > RUNS_MAX) {
                fprintf(stderr, "bench-bus: --calls must be > 0 and --runs 1..%d\n", RUNS_MAX);
                return EXIT_FAILURE;
        }

        r = sd_bus_path_encode("/org/vmsig/endpoint", endpoint, &endpoint_path);
        if (r < 0)
                goto finish;

        const bench_case cases[] = {
                {
                        "get-version",
                        "Properties.Get of a constant string property",
                        { VMSIG_NAME, "/org/vmsig", PROPERTIES_INTERFACE, "Get", "org.vmsig.Manager", "Version", 'v' },
                        { ECHO_NAME, ECHO_PATH, PROPERTIES_INTERFACE, "Get", ECHO_INTERFACE, "Version", 'v' },
                },
                {
                        "get-state",
                        "Properties.Get of an endpoint's State",
                        { VMSIG_NAME, endpoint_path, PROPERTIES_INTERFACE, "Get", "org.vmsig.Endpoint", "State", 'v' },
                        { ECHO_NAME, ECHO_PATH, PROPERTIES_INTERFACE, "Get", ECHO_INTERFACE, "State", 'v' },
                },
                {
                        "get-endpoint",
                        "a method taking and returning a string",
                        { VMSIG_NAME, "/org/vmsig", "org.vmsig.Manager", "GetEndpoint", endpoint, NULL, 'o' },
                        { ECHO_NAME, ECHO_PATH, ECHO_INTERFACE, "Echo", endpoint, NULL, 's' },
                },
        };

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "bench-bus: cannot connect to the system bus: %s\n", strerror(-r));
                goto finish;
        }
        if (wait_name) {
                r = wait_for_name(bus, wait_name, timeout);
                if (r < 0)
                        fprintf(stderr, "bench-bus: waiting for %s: %s\n", wait_name, strerror(-r));
                goto finish;
        }

        printf("bench-bus: %u sequential calls per run, %u warm-up calls, median of %u runs\n", calls, warmup, runs);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                bool selected = n_only == 0;
                for (unsigned j = 0; j < n_only; j++)
                        if (strcmp(only[j], cases[i].name) == 0)
                                selected = true;
                if (!selected)
                        continue;
                r = run_case(bus, &cases[i], calls, warmup, runs);
                if (r < 0)
                        goto finish;
        }
        r = 0;
finish:
        sd_bus_flush_close_unref(bus);
        free(endpoint_path);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
