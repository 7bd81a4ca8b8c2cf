/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-auth: what authorization costs a caller that is not root, with a
 * real polkitd on the bus. Run it as an unprivileged user
 * (setpriv --reuid=nobody --regid=nogroup --clear-groups), whom vmsigd does
 * not let in as root. GetEndpoint is public (reading needs no action, as
 * with hostnamed), so vmsigd must answer it without asking polkit or the
 * bus driver about the caller, on the first call as on every other.
 *
 *   --steady   one connection: GetEndpoint(NAME) after its first call,
 *              against Echo(NAME) of bench/echo-service from the same
 *              connection. Median of RUNS runs of N calls each, the two
 *              alternating in slices. Ratio: vmsigd time / echo time.
 *   --first    a new connection per call: connect + the first GetEndpoint,
 *              against connect + Echo. Median of SAMPLES samples per run,
 *              median of RUNS runs; the difference is what vmsigd's first
 *              call adds. For reference, what a polkit check would add:
 *              CheckAuthorization of org.vmsig.admin alone, asked by the
 *              caller about itself on one connection (its answer, no, is
 *              not the point).
 *   --wait-action ACTION
 *              wait until polkitd has registered ACTION (run as root,
 *              before the others).
 * Lines starting with "@" are for bench/run.sh.
 */
#include <stdlib.h>
#include <unistd.h>

#include "bench-lib.h"

#define SAMPLES_MAX 100000
/* An action of ours, for the reference check. */
#define BENCH_AUTH_ACTION "org.vmsig.admin"

/* --steady */
static int run_steady(const bench_method *vmsig, const bench_method *echo, unsigned calls, unsigned warmup,
                      unsigned runs) {
        uint64_t tv[BENCH_RUNS_MAX], te[BENCH_RUNS_MAX], start, first;
        sd_bus *bus = NULL;
        char *answer = NULL;
        int r;

        r = bench_open_system(&bus);
        if (r < 0)
                return r;
        /* The connection's first call: public, as every other. */
        start = bench_now_nsec();
        r = bench_call_method_string(bus, vmsig, &answer);
        first = bench_now_nsec() - start;
        if (r < 0)
                goto finish;
        printf("  steady  uid %u, one connection; its first GetEndpoint(\"%s\") took %.3f ms and answered \"%s\"\n",
               (unsigned) getuid(), vmsig->arg1, first / 1e6, answer);
        free(answer);
        answer = NULL;
        r = bench_call_method_string(bus, echo, &answer);
        if (r < 0)
                goto finish;
        printf("  steady  echo answers \"%s\"\n", answer);

        r = bench_compare(&(bench_side) { bus, bench_call_method, vmsig }, &(bench_side) { bus, bench_call_method, echo },
                          calls, warmup, runs, tv, te);
        if (r < 0)
                goto finish;

        bench_ratio x = bench_ratio_of(calls, tv, te, runs);
        printf("  steady  vmsigd GetEndpoint %7.0f calls/s  echo Echo %7.0f calls/s  ratio vmsigd/echo time %.3f", x.a,
               x.b, x.ratio);
        bench_print_runs("vmsigd", "echo", calls, tv, te, runs);
        printf("@ auth-steady vmsigd_cps=%.0f echo_cps=%.0f ratio=%.3f first_ms=%.3f\n", x.a, x.b, x.ratio,
               first / 1e6);
finish:
        free(answer);
        sd_bus_flush_close_unref(bus);
        return r;
}

/* --first: one sample is a connection, Hello and one call. Closing it is
 * not timed. */
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

/* What vmsigd asks polkit for an administrative call, asked by the caller
 * about itself (an unprivileged caller may ask about itself only, and
 * without details): what a polkit check costs, without vmsigd. The answer
 * (not authorized) does not matter. */
static int check_authorization(sd_bus *bus, uint64_t *ret) {
        uint64_t start = bench_now_nsec();
        sd_bus_message *m = NULL, *reply = NULL;
        const char *self = NULL;
        int authorized = 0, challenge = 0, r;

        r = sd_bus_get_unique_name(bus, &self);
        if (r >= 0)
                r = sd_bus_message_new_method_call(bus, &m, "org.freedesktop.PolicyKit1",
                                                   "/org/freedesktop/PolicyKit1/Authority",
                                                   "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r >= 0)
                r = sd_bus_message_append(m, "(sa{sv})s", "system-bus-name", 1, "name", "s", self, BENCH_AUTH_ACTION);
        if (r >= 0)
                /* polkitd takes details from trusted callers only. */
                r = sd_bus_message_append(m, "a{ss}us", 0, 0, "");
        if (r >= 0)
                r = bench_call(bus, m, &reply);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        *ret = bench_now_nsec() - start;
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        return r;
}

/* samples pairs of new connections, which goes first alternating; the
 * medians of each side into *ret_v, *ret_e. */
static int first_samples(const bench_method *vmsig, const bench_method *echo, uint64_t *sv, uint64_t *se,
                         unsigned samples, uint64_t *ret_v, uint64_t *ret_e) {
        int r = 0;

        for (unsigned i = 0; r >= 0 && i < 2 * samples; i++)
                r = bench_abba(i) == 0 ? one_connection(vmsig, &sv[i / 2]) : one_connection(echo, &se[i / 2]);
        *ret_v = bench_median(sv, samples);
        *ret_e = bench_median(se, samples);
        return r;
}

static void report_first(const uint64_t *mv, const uint64_t *me, const uint64_t *mp, unsigned samples, unsigned runs) {
        uint64_t v = bench_median_of_runs(mv, runs), e = bench_median_of_runs(me, runs);
        uint64_t p = bench_median_of_runs(mp, runs);
        double added = ((double) v - (double) e) / 1e6;

        printf("  first   uid %u, a new connection per call, median of %u samples, median of %u runs:\n",
               (unsigned) getuid(), samples, runs);
        printf("  first   connect + first GetEndpoint %.3f ms   connect + Echo %.3f ms   added by vmsigd"
               " %.3f ms  (runs:",
               v / 1e6, e / 1e6, added);
        for (unsigned i = 0; i < runs; i++)
                printf(" %.3f-%.3f", mv[i] / 1e6, me[i] / 1e6);
        printf(")\n");
        printf("  first   a polkit check would add: CheckAuthorization(" BENCH_AUTH_ACTION ") alone, asked by the"
               " caller about itself, %.3f ms (runs:", p / 1e6);
        for (unsigned i = 0; i < runs; i++)
                printf(" %.3f", mp[i] / 1e6);
        printf(")\n");
        printf("@ auth-first vmsigd_ms=%.3f echo_ms=%.3f added_ms=%.3f polkit_ms=%.3f samples=%u\n", v / 1e6, e / 1e6,
               added, p / 1e6, samples);
}

static int run_first(const bench_method *vmsig, const bench_method *echo, unsigned samples, unsigned warmup,
                     unsigned runs) {
        uint64_t mv[BENCH_RUNS_MAX], me[BENCH_RUNS_MAX], mp[BENCH_RUNS_MAX], ignored;
        uint64_t *sv = calloc(samples, sizeof *sv), *se = calloc(samples, sizeof *se);
        sd_bus *bus = NULL;
        int r = sv && se ? bench_open_system(&bus) : -ENOMEM;

        for (unsigned i = 0; r >= 0 && i < warmup; i++) {
                r = one_connection(vmsig, &ignored);
                if (r >= 0)
                        r = one_connection(echo, &ignored);
        }
        for (unsigned run = 0; r >= 0 && run < runs; run++) {
                r = first_samples(vmsig, echo, sv, se, samples, &mv[run], &me[run]);
                /* The reference, on one connection (sv reused). */
                for (unsigned i = 0; r >= 0 && i < samples; i++)
                        r = check_authorization(bus, &sv[i]);
                if (r >= 0)
                        mp[run] = bench_median(sv, samples);
        }
        if (r >= 0)
                report_first(mv, me, mp, samples, runs);
        sd_bus_flush_close_unref(bus);
        free(sv);
        free(se);
        return r;
}

/* --wait-action: polkitd reads the action files at start and on inotify. */
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

static int wait_action(const char *action, double timeout) {
        uint64_t deadline = bench_now_nsec() + (uint64_t) (timeout * 1e9);
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        while (!action_registered(bus, action)) {
                if (bench_now_nsec() > deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
        sd_bus_flush_close_unref(bus);
        if (r < 0)
                fprintf(stderr, "bench-auth: polkitd did not register %s: %s\n", action, strerror(-r));
        return r;
}

int main(int argc, char *argv[]) {
        unsigned calls = 20000, samples = 200, warmup = UINT32_MAX, runs = 3;
        const char *endpoint = "alpha", *action = NULL;
        bool steady = false, first = false;
        double timeout = 10;
        const bench_option options[] = {
                BENCH_OPT_F("steady", &steady),
                BENCH_OPT_F("first", &first),
                BENCH_OPT_S("wait-action", &action),
                BENCH_OPT_D("timeout", &timeout),
                BENCH_OPT_CALLS(&calls),
                BENCH_OPT_U("samples", &samples, 1, SAMPLES_MAX),
                BENCH_OPT_WARMUP(&warmup),
                BENCH_OPT_RUNS(&runs),
                BENCH_OPT_S("endpoint", &endpoint),
                {},
        };
        int r;

        bench_parse_options(argc, argv, options,
                            "bench-auth --steady [--calls N] [--warmup N] [--runs N] [--endpoint NAME]\n"
                            "bench-auth --first [--samples N] [--warmup N] [--runs N] [--endpoint NAME]\n"
                            "bench-auth --wait-action ACTION [--timeout SECONDS]\n"
                            "Authorization costs of org.vmsig for a non-root caller, against " BENCH_ECHO_NAME ",\n"
                            "on the system bus ($DBUS_SYSTEM_BUS_ADDRESS), with polkitd running.\n");
        if (action)
                return wait_action(action, timeout) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        if (geteuid() == 0) {
                fprintf(stderr, "bench-auth: run me as a user other than root (vmsigd lets root in without polkit),\n"
                                "e.g. setpriv --reuid=nobody --regid=nogroup --clear-groups bench/bench-auth ...\n");
                return EXIT_FAILURE;
        }

        const bench_method vmsig = {
                VMSIG_BUS_NAME, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "GetEndpoint", endpoint, NULL, 'o'
        };
        const bench_method echo = {
                BENCH_ECHO_NAME, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, "Echo", endpoint, NULL, 's'
        };

        if (first && !steady)
                r = run_first(&vmsig, &echo, samples, warmup == UINT32_MAX ? 20 : warmup, runs);
        else
                r = run_steady(&vmsig, &echo, calls, warmup == UINT32_MAX ? 2000 : warmup, runs);
        fflush(stdout);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
