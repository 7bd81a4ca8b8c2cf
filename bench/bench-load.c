/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-load: reliability under load, faults and hostile input (issue 8).
 *
 * One process on one sd-event loop starts a private system bus and vmsigd
 * (stub VMs from its config; discovery on a trigger directory in the
 * armed build), then drives, all at once:
 *   - N sd-bus client connections (200 by default), each with one call in
 *     flight at a time, in roles: persistent signal subscribers that keep
 *     their own view of the roster; lifecycle drivers (power lease, Pause,
 *     Resume, Reset in a recorded order); MemWrite writers competing for
 *     the memory-write lease, each write on bytes of its own; memctx
 *     subscribers; signal subscriptions added and removed; property
 *     readers; lease churners (force, fd close, vanishing clients);
 *   - 64 fake QEMUs: a QMP server per VM on this loop and a RAM file,
 *     attached and detached through trigger files, crashing, quitting,
 *     sending garbage, stopping and resuming on their own;
 *   - bad input: refused calls, bad writes, bad trigger files, bad QMP;
 *   - a stub detached with DetachEndpoint and brought back by Reload.
 * It runs for a fixed number of client calls, settles, and then checks:
 * vmsigd did not crash; its fd count is back at the baseline and its RSS
 * (without guest RAM mappings) within 10 % of it; every subscriber's view
 * (roster, epochs, lease holders, the order of State and epoch changes)
 * equals a fresh GetManagedObjects; every MemWrite was applied byte for
 * byte or left no trace. Lines starting with "@" are for bench/run.sh.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench-lib.h"
#include "load.h"

/* --- small helpers ------------------------------------------------------------ */

/* splitmix64: reproducible with --seed, and cheap. */
uint64_t load_rand(uint64_t *state) {
        uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

unsigned load_rand_below(uint64_t *state, unsigned n) {
        return n ? (unsigned) (load_rand(state) % n) : 0;
}

/* Every broken promise goes through here: counted, and the first ones
 * printed, so that a run with many does not drown its own report. */
void load_fail(load_ctx *ctx, const char *fmt, ...) {
        va_list ap;

        ctx->n.violations++;
        if (ctx->failures_printed++ >= 40)
                return;
        fprintf(stderr, "bench-load: FAIL: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static const char *const err_names[_E_MAX] = {
        [E_LEASE_BUSY] = "org.vmsig.Error.LeaseBusy",
        [E_NOT_HOLDER] = "org.vmsig.Error.NotLeaseHolder",
        [E_DETACHED] = "org.vmsig.Error.EndpointDetached",
        [E_NO_SUCH_ENDPOINT] = "org.vmsig.Error.NoSuchEndpoint",
        [E_INVALID_ARG] = "org.vmsig.Error.InvalidArgument",
        [E_INVALID_STATE] = "org.vmsig.Error.InvalidState",
        [E_HOST] = "org.vmsig.Error.Host",
        [E_NOT_SUPPORTED] = "org.vmsig.Error.NotSupported",
        [E_NOT_SUBSCRIBED] = "org.vmsig.Error.NotSubscribed",
        [E_OUT_OF_RANGE] = "org.vmsig.Error.OutOfRange",
        [E_TOO_LONG] = "org.vmsig.Error.WriteTooLong",
        [E_EMPTY] = "org.vmsig.Error.EmptyWrite",
        [E_STALE] = "org.vmsig.Error.StaleEpoch",
        [E_NO_ADDRESS_SPACE] = "org.vmsig.Error.NoAddressSpace",
        [E_LEASE_REVOKED] = "org.vmsig.Error.LeaseRevoked",
        [E_UNKNOWN_OBJECT] = "org.freedesktop.DBus.Error.UnknownObject",
        [E_UNKNOWN_METHOD] = "org.freedesktop.DBus.Error.UnknownMethod",
        [E_UNKNOWN_PROPERTY] = "org.freedesktop.DBus.Error.UnknownProperty",
        [E_UNKNOWN_INTERFACE] = "org.freedesktop.DBus.Error.UnknownInterface",
        [E_INVALID_ARGS] = "org.freedesktop.DBus.Error.InvalidArgs",
        [E_READ_ONLY] = "org.freedesktop.DBus.Error.PropertyReadOnly",
};

load_err load_err_from_name(const char *name) {
        for (int i = 0; i < _E_MAX; i++)
                if (name && strcmp(name, err_names[i]) == 0)
                        return (load_err) i;
        return E_OTHER;
}

const char *load_err_name(load_err e) {
        return e < _E_MAX ? err_names[e] + (strncmp(err_names[e], "org.vmsig.", 10) == 0 ? 16 : 27) : "other";
}

static const char *const op_names[_OP_MAX] = {
        [OP_GET] = "Properties.Get",
        [OP_GET_ALL] = "Properties.GetAll",
        [OP_MANAGED] = "GetManagedObjects",
        [OP_LIST] = "ListEndpoints/GetEndpoint*",
        [OP_SUBSCRIBE] = "SubscribeMemctx",
        [OP_UNSUBSCRIBE] = "UnsubscribeMemctx",
        [OP_MATCH] = "AddMatch (signals)",
        [OP_ACQUIRE] = "AcquireLease",
        [OP_RELEASE] = "Lease.Release",
        [OP_MEMWRITE] = "MemWrite",
        [OP_BATCH] = "MemWriteBatch",
        [OP_LIFECYCLE] = "Pause/Resume/Reset",
        [OP_INPUT] = "InjectInput",
        [OP_BAD] = "bad input (refused)",
};

const char *load_op_name(load_op op) {
        return op < _OP_MAX ? op_names[op] : "?";
}

int load_run_until(load_ctx *ctx, bool (*done)(load_ctx *ctx, void *userdata), void *userdata, uint64_t timeout_usec) {
        uint64_t deadline = bench_now_nsec() + timeout_usec * 1000;
        int r;

        while (!done(ctx, userdata)) {
                uint64_t now = bench_now_nsec();
                if (now >= deadline)
                        return -ETIMEDOUT;
                r = sd_event_run(ctx->event, (deadline - now) / 1000 < 100000 ? (deadline - now) / 1000 : 100000);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool never(load_ctx *ctx, void *userdata) {
        return false;
}

/* Runs the loop for a while: the clients, the fake QEMUs and vmsigd go on. */
static void load_sleep(load_ctx *ctx, uint64_t usec) {
        (void) load_run_until(ctx, never, NULL, usec);
}

/* Written under a temporary name, then renamed: a reader never sees half
 * of it. mode is applied after the write, so umask does not matter. */
int load_write_file(const char *path, const char *text, size_t len, unsigned mode) {
        char tmp[4096];
        int fd, r = 0;

        snprintf(tmp, sizeof tmp, "%s.tmp~", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        for (size_t done = 0; done < len;) {
                ssize_t n = write(fd, text + done, len - done);
                if (n <= 0) {
                        r = n < 0 ? -errno : -EIO;
                        break;
                }
                done += (size_t) n;
        }
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        close(fd);
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

void load_text_append(load_text *t, char c) {
        if (t->len + 2 > t->size) {
                size_t size = t->size ? t->size * 2 : 256;
                char *grown = realloc(t->s, size);
                if (!grown)
                        return;
                t->s = grown;
                t->size = size;
        }
        t->s[t->len++] = c;
        t->s[t->len] = '\0';
}

int load_timer(load_ctx *ctx, sd_event_source **s, uint64_t usec, uint64_t accuracy, sd_event_time_handler_t handler,
               void *userdata) {
        int r;

        if (!*s)
                return sd_event_add_time_relative(ctx->event, s, CLOCK_MONOTONIC, usec, accuracy, handler, userdata);
        r = sd_event_source_set_time_relative(*s, usec);
        return r < 0 ? r : sd_event_source_set_enabled(*s, SD_EVENT_ONESHOT);
}

sd_bus_message *load_method(sd_bus *bus, const char *path, const char *iface, const char *member, const char *types,
                            ...) {
        sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, VMSIG_BUS_NAME, path, iface, member);
        if (r >= 0 && types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        return r < 0 ? sd_bus_message_unref(m) : m;
}

/* --- the controller: its own connection, the roster as vmsigd announces it --- */

/* A VM added again gets a path of its own: the targets follow. */
static void set_path(load_target *t, const char *path) {
        char *copy = strdup(path);

        if (copy) {
                free(t->path);
                t->path = copy;
        }
}

static int on_endpoint_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        load_ctx *ctx = userdata;
        const char *path = NULL;
        load_target *t;
        bool added = sd_bus_message_is_signal(m, VMSIG_BUS_MANAGER_INTERFACE, "EndpointAdded");
        char *name = NULL;

        if (sd_bus_message_read(m, "o", &path) < 0 || !(name = load_path_to_name(path)))
                return 0;
        t = load_target_find(ctx, name);
        if (!t)
                /* A bad trigger file, or a decoy, made it onto the roster. */
                load_fail(ctx, "endpoint '%s' was %s, but no valid trigger file or stub names it", name,
                          added ? "attached" : "detached");
        else if (added || strcmp(path, t->path) == 0) {
                t->attached = added;
                if (added)
                        set_path(t, path);
                if (t->kind == TARGET_TRIGGER)
                        load_vms_endpoint(ctx, name, added);
                else if (t->kind != TARGET_SPARE && !added)
                        load_fail(ctx, "stub endpoint '%s' was detached; nothing asked for that", name);
        } else
                load_fail(ctx, "EndpointRemoved for %s, but '%s' is at %s now", path, name, t->path);
        free(name);
        return 0;
}

static int controller_start(load_ctx *ctx) {
        int r;

        r = sd_bus_open_system(&ctx->ctl);
        if (r >= 0)
                r = sd_bus_attach_event(ctx->ctl, ctx->event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_match_signal(ctx->ctl, NULL, VMSIG_BUS_NAME, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE,
                                        "EndpointAdded", on_endpoint_signal, ctx);
        if (r >= 0)
                r = sd_bus_match_signal(ctx->ctl, NULL, VMSIG_BUS_NAME, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE,
                                        "EndpointRemoved", on_endpoint_signal, ctx);
        if (r < 0)
                fprintf(stderr, "bench-load: cannot set up the controller connection: %s\n", strerror(-r));
        return r;
}

/* Which targets are attached now: the stubs at start, the spare after a
 * Reload, none of the trigger VMs until they are written. */
static int controller_read_roster(load_ctx *ctx) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *name, *state, *path;
        uint32_t vmid;
        int r;

        r = sd_bus_call_method(ctx->ctl, VMSIG_BUS_NAME, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "ListEndpoints",
                               &error, &reply, "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(suso)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(suso)", &name, &vmid, &state, &path)) > 0) {
                load_target *t = load_target_find(ctx, name);
                if (t) {
                        t->attached = true;
                        set_path(t, path);
                }
        }
        if (r < 0)
                fprintf(stderr, "bench-load: ListEndpoints: %s\n", error.message ? error.message : strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r;
}

/* --- the spare stub: detached by DetachEndpoint, back with Reload ------------- */

static sd_event_source *spare_timer;

static void spare_schedule(load_ctx *ctx, uint64_t usec);

static void on_reloaded(load_ctx *ctx, load_client *c, sd_bus_message *reply, load_outcome o, void *userdata) {
        if (o == OUTCOME_OK)
                ctx->n.reloads++;
        spare_schedule(ctx, 1000000 + load_rand_below(&ctx->rng, 2000000));
}

/* The controller's calls: m is taken, its reply goes to done. */
static void controller_call(load_ctx *ctx, sd_bus_message *m, unsigned allowed, load_done_fn done) {
        if (m)
                (void) load_call(ctx, NULL, ctx->ctl, m, OP_BAD, allowed, done, NULL);
        sd_bus_message_unref(m);
}

static void on_spare_detached(load_ctx *ctx, load_client *c, sd_bus_message *reply, load_outcome o,
                              void *userdata) {
        if (o == OUTCOME_OK)
                ctx->n.spare_detaches++;
        /* Reload brings back the configured stub that is missing. */
        controller_call(ctx, load_method(ctx->ctl, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "Reload", NULL), 0,
                        on_reloaded);
}

static int on_spare_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        load_ctx *ctx = userdata;

        if (!ctx->stopping)
                controller_call(ctx,
                                load_method(ctx->ctl, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "DetachEndpoint",
                                            "s", "spare"),
                                ERR(E_NO_SUCH_ENDPOINT), on_spare_detached);
        return 0;
}

static void spare_schedule(load_ctx *ctx, uint64_t usec) {
        if (!ctx->stopping)
                (void) load_timer(ctx, &spare_timer, usec, 1000, on_spare_timer, ctx);
}

static bool spare_back(load_ctx *ctx, void *userdata) {
        load_target *t = load_target_find(ctx, "spare");
        return ctx->in_flight == 0 && t && t->attached;
}

/* After the load: the spare must be on the roster again for the checks. */
static int spare_settle(load_ctx *ctx) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        spare_timer = sd_event_source_disable_unref(spare_timer);
        r = load_run_until(ctx, spare_back, NULL, 100000);
        if (r < 0 && ctx->in_flight == 0) {
                r = sd_bus_call_method(ctx->ctl, VMSIG_BUS_NAME, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "Reload",
                                       &error, NULL, "");
                if (r >= 0)
                        r = load_run_until(ctx, spare_back, NULL, 10000000);
        }
        if (r < 0)
                load_fail(ctx, "the spare stub did not come back after Reload: %s",
                          error.message ? error.message : strerror(-r));
        sd_bus_error_free(&error);
        return r;
}

/* --- the run ------------------------------------------------------------------- */

static bool load_finished(load_ctx *ctx, void *userdata) {
        return ctx->calls_started >= ctx->round_calls && ctx->in_flight == 0;
}

static void print_sample(const char *what, const bench_proc_sample *s) {
        printf("  vmsigd %-26s fds %4d  VmRSS %6ld KiB (anon %ld, file %ld, shmem %ld)\n", what, s->fds, s->rss_kib,
               s->anon_kib, s->file_kib, s->shmem_kib);
}

/* RSS without the guest RAM vmsigd maps (the stubs' memfds, as RssShmem):
 * that grows with every page the writers touched, and is the guests'
 * memory, not the daemon's. */

typedef struct load_result {
        bench_proc_sample cold; /* after start-up */
        bench_proc_sample warm; /* after the warm-up round: the baseline */
        bench_proc_sample peak, after, settled;
        double seconds;
        uint64_t cpu_usec[3]; /* vmsigd, dbus-daemon, bench-load: during the load */
} load_result;

/* CPU time is what the load costs; wall-clock rates on a shared machine
 * say as much about the others on it. */
static void cpu_sample(load_ctx *ctx, uint64_t ret[3]) {
        ret[0] = bench_proc_cpu_usec(ctx->svc.vmsigd_pid);
        ret[1] = bench_proc_cpu_usec(ctx->svc.bus_pid);
        ret[2] = bench_proc_cpu_usec(getpid());
}

static void sample_peak(load_ctx *ctx, load_result *res) {
        bench_proc_sample s;

        if (bench_proc_sample_read(ctx->svc.vmsigd_pid, &s) < 0)
                return;
        res->peak.fds = s.fds > res->peak.fds ? s.fds : res->peak.fds;
        res->peak.rss_kib = s.rss_kib > res->peak.rss_kib ? s.rss_kib : res->peak.rss_kib;
        res->peak.anon_kib = s.anon_kib > res->peak.anon_kib ? s.anon_kib : res->peak.anon_kib;
}

#define STALL_NSEC (60ULL * 1000000000ULL)

static int run_load(load_ctx *ctx, load_result *res) {
        uint64_t last_done = 0, last_progress;

        uint64_t cpu0[3];

        load_clients_kick(ctx);
        if (ctx->armed)
                load_vms_bad_files_start(ctx);
        spare_schedule(ctx, 500000);
        cpu_sample(ctx, cpu0);
        ctx->start_nsec = last_progress = bench_now_nsec();
        while (!load_finished(ctx, NULL)) {
                load_sleep(ctx, 500000);
                sample_peak(ctx, res);
                /* Every call has a 30 s timeout: a minute without a reply
                 * is a hang (of the bus, or of this tool), not load. */
                if (ctx->n.calls_done != last_done) {
                        last_done = ctx->n.calls_done;
                        last_progress = bench_now_nsec();
                } else if (bench_now_nsec() - last_progress > STALL_NSEC) {
                        load_fail(ctx, "no call completed for 60 s, %u in flight", ctx->in_flight);
                        return -ETIMEDOUT;
                }
                if (ctx->opt.verbose)
                        fprintf(stderr, "bench-load: %" PRIu64 " calls started, %" PRIu64 " done, %u in flight\n",
                                ctx->calls_started, ctx->n.calls_done, ctx->in_flight);
                if (!load_vmsigd_alive(ctx)) {
                        load_fail(ctx, "vmsigd died under load");
                        return -ESRCH;
                }
        }
        ctx->end_nsec = bench_now_nsec();
        cpu_sample(ctx, res->cpu_usec);
        for (int i = 0; i < 3; i++)
                res->cpu_usec[i] -= cpu0[i];
        ctx->stopping = true;
        load_vms_bad_files_stop(ctx);
        res->seconds = (ctx->end_nsec - ctx->start_nsec) / 1e9;
        return 0;
}

static int settle_and_check(load_ctx *ctx) {
        int r = spare_settle(ctx);

        if (ctx->armed && r >= 0)
                r = load_vms_settle(ctx);
        if (r >= 0)
                (void) load_watchers_check_final(ctx);
        if (r >= 0)
                (void) load_memctx_check_final(ctx);
        (void) load_memwrite_verify(ctx);
        return r;
}

/* Everything the load left behind goes: then the daemon must be back where
 * it started. */
static void wind_down(load_ctx *ctx, load_result *res) {
        if (ctx->armed)
                (void) load_vms_detach_all(ctx);
        load_watchers_free(ctx);
        load_clients_stop(ctx);
        load_sleep(ctx, 1000000);
        (void) load_check_no_leases(ctx);
        (void) bench_proc_sample_read(ctx->svc.vmsigd_pid, &res->after);
        load_sleep(ctx, (uint64_t) ctx->opt.settle_seconds * 1000000);
        (void) bench_proc_sample_read(ctx->svc.vmsigd_pid, &res->settled);
}

/* A round starts from an idle daemon: the counters of the measured round
 * are its own (violations of the warm-up still count). */
static void round_begin(load_ctx *ctx, unsigned calls, bool measured) {
        uint64_t violations = ctx->n.violations;

        ctx->round_calls = calls;
        ctx->calls_started = 0;
        ctx->stopping = false;
        /* The new watchers see from now on. The log is emptied, not only
         * its length: a lifecycle stub the round never drives (a short
         * round may not) would otherwise still show the warm-up's calls. */
        for (size_t i = 0; i < ctx->n_targets; i++) {
                ctx->targets[i].log.len = 0;
                if (ctx->targets[i].log.s)
                        ctx->targets[i].log.s[0] = '\0';
        }
        if (!measured)
                return;
        for (int i = 0; i < _OP_MAX; i++) {
                free(ctx->ops[i].latency.v);
                ctx->ops[i] = (load_op_stats) {};
        }
        ctx->n = (load_counters) { .violations = violations };
}

/* Clients connect and the watchers take their snapshot, with nothing
 * moving; then the load, the settling, the checks, and the wind-down. */
static int run_round(load_ctx *ctx, load_result *res, unsigned calls, bool measured) {
        int r;

        printf("== %s: %u calls over %u connections\n", measured ? "load" : "warm-up", calls, ctx->opt.clients);
        fflush(stdout);
        ctx->stopping = true;
        r = load_clients_start(ctx);
        if (r >= 0 && ctx->armed)
                r = ctx->vms ? (load_vms_resume(ctx), 0) : load_vms_start(ctx);
        round_begin(ctx, calls, measured);
        if (r >= 0)
                r = run_load(ctx, res);
        if (r >= 0)
                r = settle_and_check(ctx);
        if (r >= 0)
                wind_down(ctx, res);
        return r;
}

static void check_resources(load_ctx *ctx, const load_result *res) {
        if (!load_vmsigd_alive(ctx))
                load_fail(ctx, "vmsigd is not running at the end");
        if (res->settled.fds != res->cold.fds)
                load_fail(ctx, "vmsigd has %d fds open after the load, %d before", res->settled.fds, res->cold.fds);
        if (bench_own_rss(&res->settled) > bench_own_rss(&res->warm) * 11 / 10)
                load_fail(ctx, "vmsigd's RSS (anon + file) is %ld KiB after the load, more than 110 %% of %ld KiB",
                          bench_own_rss(&res->settled), bench_own_rss(&res->warm));
}

/* --- the report ------------------------------------------------------------------ */

static void report_ops(load_ctx *ctx, const load_result *res) {
        bench_samples all = {};
        uint64_t total = 0;

        printf("\n  %-28s %9s %9s %9s %9s %9s\n", "call", "calls", "ok", "refused", "p50 ms", "p99 ms");
        for (int i = 0; i < _OP_MAX; i++) {
                load_op_stats *s = &ctx->ops[i];
                uint64_t n = s->ok + s->rejected + s->unexpected;
                if (n == 0)
                        continue;
                for (size_t j = 0; j < s->latency.n; j++)
                        (void) bench_samples_add(&all, s->latency.v[j]);
                total += n;
                printf("  %-28s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9.3f %9.3f\n", load_op_name(i), n, s->ok,
                       s->rejected, bench_samples_percentile(&s->latency, 50) / 1e6,
                       bench_samples_percentile(&s->latency, 99) / 1e6);
                printf("@ load-op name=%d calls=%" PRIu64 " ok=%" PRIu64 " refused=%" PRIu64
                       " p50_ms=%.3f p99_ms=%.3f\n",
                       i, n, s->ok, s->rejected, bench_samples_percentile(&s->latency, 50) / 1e6,
                       bench_samples_percentile(&s->latency, 99) / 1e6);
        }
        printf("  %-28s %9" PRIu64 " %29s %9.3f %9.3f\n", "all", total, "", bench_samples_percentile(&all, 50) / 1e6,
               bench_samples_percentile(&all, 99) / 1e6);
        printf("\n  load: %" PRIu64 " calls in %.1f s: %.0f calls/s over %u connections\n", total, res->seconds,
               total / res->seconds, ctx->opt.clients);
        printf("  CPU during the load: vmsigd %.1f s, dbus-daemon %.1f s, bench-load %.1f s (%.0f %% of one CPU in all);\n"
               "  per call: vmsigd %.0f us, dbus-daemon %.0f us, bench-load %.0f us\n",
               res->cpu_usec[0] / 1e6, res->cpu_usec[1] / 1e6, res->cpu_usec[2] / 1e6,
               (res->cpu_usec[0] + res->cpu_usec[1] + res->cpu_usec[2]) / 1e4 / res->seconds,
               (double) res->cpu_usec[0] / (double) total, (double) res->cpu_usec[1] / (double) total,
               (double) res->cpu_usec[2] / (double) total);
        printf("@ load calls=%" PRIu64 " seconds=%.1f cps=%.0f p50_ms=%.3f p99_ms=%.3f clients=%u vmsigd_cpu_us=%.0f "
               "bus_cpu_us=%.0f tool_cpu_us=%.0f\n",
               total, res->seconds, total / res->seconds, bench_samples_percentile(&all, 50) / 1e6,
               bench_samples_percentile(&all, 99) / 1e6, ctx->opt.clients, (double) res->cpu_usec[0] / (double) total,
               (double) res->cpu_usec[1] / (double) total, (double) res->cpu_usec[2] / (double) total);
        free(all.v);
}

static void report_counters(load_ctx *ctx, const load_result *res) {
        const load_counters *n = &ctx->n;

        printf("  held:   %zu trigger VMs: %" PRIu64 " attaches, %" PRIu64 " detaches, %" PRIu64
               " rewrites%s\n",
               ctx->armed ? ctx->n_vms : 0, n->trigger_attaches, n->trigger_detaches, n->trigger_rewrites,
               ctx->armed ? "" : " (trigger part skipped)");
        printf("  faults: QEMU crashes %" PRIu64 ", quits %" PRIu64 ", spontaneous STOP/RESUME %" PRIu64
               ", clients vanished %" PRIu64 ", leases forced away %" PRIu64 ", lease fds closed %" PRIu64
               ", spare detached %" PRIu64 " and reloaded %" PRIu64 "\n",
               n->qemu_crashes, n->qemu_quits, n->qemu_events, n->client_drops, n->lease_forced, n->lease_fd_closed,
               n->spare_detaches, n->reloads);
        printf("  bad input: refused calls %" PRIu64 ", bad writes %" PRIu64 ", bad trigger files %" PRIu64
               ", bad QMP messages %" PRIu64 "\n",
               n->bad_calls, n->bad_writes, n->bad_trigger_files, n->bad_qmp);
        print_sample("at start", &res->cold);
        print_sample("after the warm-up (base)", &res->warm);
        print_sample("peak under load", &res->peak);
        print_sample("after the load", &res->after);
        print_sample("after settling", &res->settled);
        load_clients_print(ctx);
        printf("  violations (lost, reordered or wrong data, leaks, crashes): %" PRIu64 "\n", n->violations);
        printf("@ load-held trigger_vms=%zu attaches=%" PRIu64 " detaches=%" PRIu64 " rewrites=%" PRIu64 " armed=%d\n",
               ctx->armed ? ctx->n_vms : 0, n->trigger_attaches, n->trigger_detaches, n->trigger_rewrites,
               ctx->armed);
        printf("@ load-faults crashes=%" PRIu64 " quits=%" PRIu64 " garbage=%" PRIu64 " events=%" PRIu64
               " drops=%" PRIu64 " forced=%" PRIu64 " fd_closed=%" PRIu64 " spare=%" PRIu64 "\n",
               n->qemu_crashes, n->qemu_quits, n->qemu_garbage, n->qemu_events, n->client_drops, n->lease_forced,
               n->lease_fd_closed, n->spare_detaches);
        printf("@ load-bad calls=%" PRIu64 " writes=%" PRIu64 " trigger_files=%" PRIu64 " qmp=%" PRIu64 "\n",
               n->bad_calls, n->bad_writes, n->bad_trigger_files, n->bad_qmp);
        printf("@ load-resources fd_base=%d fd_after=%d rss_cold_kib=%ld rss_base_kib=%ld rss_after_kib=%ld "
               "rss_ratio=%.3f violations=%" PRIu64 "\n",
               res->cold.fds, res->settled.fds, bench_own_rss(&res->cold), bench_own_rss(&res->warm),
               bench_own_rss(&res->settled),
               bench_own_rss(&res->warm) > 0
                       ? (double) bench_own_rss(&res->settled) / (double) bench_own_rss(&res->warm)
                       : 0.0,
               n->violations);
}

/* --- options and main --------------------------------------------------------------- */

static void parse_options(int argc, char *argv[], load_options *o) {
        unsigned unset = UINT32_MAX, calls = unset, settle = unset, warmup = unset;
        const bench_option options[] = {
                BENCH_OPT_F("quick", &o->quick),
                BENCH_OPT_U("clients", &o->clients, 8, 4000),
                BENCH_OPT_CALLS(&calls),
                BENCH_OPT_U("trigger-vms", &o->trigger_vms, 0, 1000),
                BENCH_OPT_U("settle", &settle, 0, 600),
                BENCH_OPT_U("seed", &o->seed, 0, UINT32_MAX),
                BENCH_OPT_S("vmsigd", &o->vmsigd),
                BENCH_OPT_DIRECTORY("srcdir", &o->srcdir),
                BENCH_OPT_F("no-trigger", &o->no_trigger),
                BENCH_OPT_F("keep", &o->keep),
                BENCH_OPT_F("verbose", &o->verbose),
                BENCH_OPT_WARMUP(&warmup),
                {},
        };

        bench_parse_options(argc, argv, options,
                            "bench-load [--quick] [--clients N] [--calls N] [--warmup N] [--trigger-vms N]\n"
                            "           [--settle SECONDS] [--seed N] [--vmsigd PATH] [--srcdir DIR] [--no-trigger]\n"
                            "           [--keep] [--verbose]\n"
                            "Starts a private system bus and vmsigd, and drives them with N client connections\n"
                            "(200), fake QEMUs through the trigger directory (armed build), faults and bad\n"
                            "input, for a fixed number of calls; then checks that nothing was lost. As root.\n"
                            "A warm-up round (--warmup calls, default a fifth) comes first; vmsigd's RSS after\n"
                            "it is the baseline. --quick: 20000 calls, 2 s settle (the CI test).\n"
                            "DBUS_DAEMON names dbus-daemon; "
                            "--srcdir (or $VMSIG_SRCDIR) is where data/org.vmsig.conf is.\n");
        if (!o->srcdir && getenv("VMSIG_SRCDIR"))
                o->srcdir = bench_absolute_dir("VMSIG_SRCDIR", getenv("VMSIG_SRCDIR"));
        o->calls = calls != unset ? calls : o->quick ? 20000 : 200000;
        o->settle_seconds = settle != unset ? settle : o->quick ? 2 : 5;
        o->warmup = warmup != unset ? warmup : o->calls / 5 < 2000 ? 2000 : o->calls / 5;
}

/* 200 connections, 64 listening sockets and their peers, RAM files and
 * lease fds: far more than the traditional 1024. */
static void bump_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
}

static void decide_armed(load_ctx *ctx) {
#if VMSIG_HAVE_QMP
        ctx->armed = !ctx->opt.no_trigger && ctx->opt.trigger_vms > 0;
        ctx->armed_why = ctx->armed ? NULL : "--no-trigger or --trigger-vms 0";
#else
        ctx->armed = false;
        ctx->armed_why = "vmsigd is not armed (configure --enable-qmp builds the QMP backend and discovery)";
#endif
}

static int setup(load_ctx *ctx, load_result *res) {
        int r;

        r = load_services_start(ctx);
        if (r >= 0)
                r = controller_start(ctx);
        if (r >= 0)
                r = controller_read_roster(ctx);
        if (r < 0)
                return r;
        /* Whatever start-up does in vmsigd (the roster going out, its first
         * peer) is over before the baseline. */
        load_sleep(ctx, 1000000);
        return bench_proc_sample_read(ctx->svc.vmsigd_pid, &res->cold);
}

int main(int argc, char *argv[]) {
        load_ctx ctx = {
                .opt = { .clients = 200, .trigger_vms = 64, .seed = 1 },
                .svc = { .bus_pid = -1, .vmsigd_pid = -1 },
        };
        load_result res = {};
        int r;

        parse_options(argc, argv, &ctx.opt);
        ctx.rng = ctx.opt.seed;
        decide_armed(&ctx);
        bump_fd_limit();
        /* The RAM files and trigger files are private to the run. */
        umask(077);
        r = sd_event_default(&ctx.event);
        if (r < 0)
                return EXIT_FAILURE;
        printf("bench-load: %u clients, %u calls, %s, seed %u\n", ctx.opt.clients, ctx.opt.calls,
               ctx.armed ? "fake QEMUs through the trigger directory" : "stub VMs only", ctx.opt.seed);
        if (!ctx.armed)
                printf("  the trigger-directory part is skipped: %s\n", ctx.armed_why);
        fflush(stdout);
        r = setup(&ctx, &res);
        /* The warm-up round takes vmsigd to its working size; what stays
         * after it is the baseline the measured round must come back to. */
        if (r >= 0 && ctx.opt.warmup > 0)
                r = run_round(&ctx, &res, ctx.opt.warmup, false);
        res.warm = ctx.opt.warmup > 0 ? res.settled : res.cold;
        res.peak = (bench_proc_sample) {};
        if (r >= 0)
                r = run_round(&ctx, &res, ctx.opt.calls, true);
        if (r >= 0) {
                check_resources(&ctx, &res);
                report_ops(&ctx, &res);
                report_counters(&ctx, &res);
        }
        if (r < 0 || ctx.n.violations > 0)
                load_print_vmsigd_log(&ctx, 30);
        load_vms_free(&ctx);
        load_watchers_free(&ctx);
        load_clients_stop(&ctx);
        sd_bus_flush_close_unref(ctx.ctl);
        if (load_services_stop(&ctx) < 0)
                ctx.n.violations++;
        sd_event_unref(ctx.event);
        if (r < 0 || ctx.n.violations > 0) {
                printf("bench-load: FAILED (%" PRIu64 " violations%s)\n", ctx.n.violations, r < 0 ? ", aborted" : "");
                return EXIT_FAILURE;
        }
        printf("bench-load: passed, nothing lost\n");
        return EXIT_SUCCESS;
}
