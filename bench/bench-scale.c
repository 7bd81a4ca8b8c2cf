/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-scale: attach many stub endpoints (the real stub backend: memfd
 * RAM, eventfd host seam, memctx publication) to one core, then detach them
 * all. Reports
 *   - the wall time of the attach loop, and of attach + the dispatch of
 *     everything it published (ROSTER, MEMCTX) to one subscriber;
 *   - resident memory growth per endpoint (/proc/self/statm), and open fds
 *     per endpoint;
 *   - the wall time of detaching all, and of detach + dispatch + reap.
 * The guest RAM is never touched, so it is not resident; what is measured
 * is the daemon's own cost per VM. Lines starting with "@" are for
 * bench/run.sh.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "bench-lib.h"
#include "stub.h"
#include "vmsig-core.h"
#include "vmsig-endpoint.h"

static long rss_bytes(void) {
        unsigned long size, resident;
        FILE *f = fopen("/proc/self/statm", "re");
        int n;

        if (!f)
                return -1;
        n = fscanf(f, "%lu %lu", &size, &resident);
        fclose(f);
        return n == 2 ? (long) resident * sysconf(_SC_PAGESIZE) : -1;
}

typedef struct counter {
        uint64_t roster, memctx;
} counter;

static int on_event(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        counter *c = userdata;
        if (d->event->kind == VMSIG_KIND_ROSTER)
                c->roster++;
        else if (d->event->kind == VMSIG_KIND_MEMCTX)
                c->memctx++;
        return VMSIG_DELIVER_OK;
}

/* Run the loop until nothing is pending (dispatch and reap are defer
 * sources, so they are done when sd_event_run() finds nothing to do). */
static int run_pending(sd_event *e) {
        int r;
        do
                r = sd_event_run(e, 0);
        while (r > 0);
        return r;
}

static int attach_all(vmsig_core *core, vmsig_endpoint **eps, unsigned n, uint64_t ram_size) {
        char name[32];
        int r;

        for (unsigned i = 0; i < n; i++) {
                vmsig_stub_spec spec = { .name = name, .ram_size = ram_size, .initial_state = VMSIG_STATE_RUNNING };
                vmsig_endpoint_spec ep_spec;

                snprintf(name, sizeof name, "vm%04u", i);
                r = vmsig_stub_new(&spec, &ep_spec, NULL);
                if (r >= 0)
                        r = vmsig_core_attach_endpoint(core, &ep_spec, &eps[i]);
                if (r < 0) {
                        fprintf(stderr, "bench-scale: attaching endpoint %u failed: %s\n", i, strerror(-r));
                        return r;
                }
        }
        return 0;
}

static int detach_all(vmsig_core *core, vmsig_endpoint **eps, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                int r = vmsig_core_detach_endpoint(core, eps[i]);
                if (r < 0) {
                        fprintf(stderr, "bench-scale: detaching endpoint %u failed: %s\n", i, strerror(-r));
                        return r;
                }
        }
        return 0;
}

/* The samples: RSS and fds before, after attaching and after detaching;
 * t[0..5] the times around attach, dispatch, detach, reap. */
typedef struct scale_sample {
        long rss[3];
        int fds[3];
        uint64_t t[6];
} scale_sample;

static void report(unsigned n, const scale_sample *x, const vmsig_core_stats *st, uint64_t roster) {
        const uint64_t *t = x->t;
        double per_ep = (double) (x->rss[1] - x->rss[0]) / n;

        printf("  attach   %u endpoints: %8.2f ms (%.1f us each); with dispatch to 1 subscriber %8.2f ms\n", n,
               (t[1] - t[0]) / 1e6, (t[1] - t[0]) / 1e3 / n, (t[2] - t[0]) / 1e6);
        printf("  memory   RSS %.1f -> %.1f MiB: %.1f KiB per endpoint; fds %d -> %d: %.1f per endpoint\n",
               x->rss[0] / 1048576.0, x->rss[1] / 1048576.0, per_ep / 1024, x->fds[0], x->fds[1],
               (double) (x->fds[1] - x->fds[0]) / n);
        printf("  detach   %u endpoints: %8.2f ms (%.1f us each); with dispatch and reap %8.2f ms\n", n,
               (t[4] - t[3]) / 1e6, (t[4] - t[3]) / 1e3 / n, (t[5] - t[3]) / 1e6);
        printf("  after    RSS %.1f MiB, fds %d, endpoints %zu, zombies %zu, roster events %" PRIu64 "\n",
               x->rss[2] / 1048576.0, x->fds[2], st->endpoints, st->zombies, roster);
        printf("@ scale endpoints=%u attach_ms=%.2f attach_dispatch_ms=%.2f rss_per_ep_kib=%.1f fds_per_ep=%.1f "
               "detach_ms=%.2f detach_reap_ms=%.2f\n",
               n, (t[1] - t[0]) / 1e6, (t[2] - t[0]) / 1e6, per_ep / 1024, (double) (x->fds[1] - x->fds[0]) / n,
               (t[4] - t[3]) / 1e6, (t[5] - t[3]) / 1e6);
}

/* Attach n stubs, dispatch, check the events, detach them all, reap. */
static int run(sd_event *event, vmsig_core *core, const counter *count, unsigned n, uint64_t ram_size) {
        vmsig_endpoint **eps = calloc(n, sizeof *eps);
        scale_sample x = {};
        vmsig_core_stats st;
        int r;

        x.rss[0] = rss_bytes();
        x.fds[0] = bench_count_fds();
        x.t[0] = bench_now_nsec();
        r = eps ? attach_all(core, eps, n, ram_size) : -ENOMEM;

        x.t[1] = bench_now_nsec();
        if (r >= 0)
                r = run_pending(event);
        x.t[2] = bench_now_nsec();
        x.rss[1] = rss_bytes();
        x.fds[1] = bench_count_fds();
        if (r >= 0 && (count->roster != n || count->memctx != n)) {
                fprintf(stderr, "bench-scale: expected %u ROSTER and MEMCTX events, got %" PRIu64 " and %" PRIu64 "\n",
                        n, count->roster, count->memctx);
                r = -EIO;
        }
        x.t[3] = bench_now_nsec();
        if (r >= 0)
                r = detach_all(core, eps, n);
        x.t[4] = bench_now_nsec();
        if (r >= 0)
                r = run_pending(event);
        x.t[5] = bench_now_nsec();
        free(eps);
        if (r < 0)
                return r;
        vmsig_core_get_stats(core, &st);
        x.rss[2] = rss_bytes();
        x.fds[2] = bench_count_fds();
        report(n, &x, &st, count->roster);
        if (st.endpoints != 0 || st.zombies != 0 || x.fds[2] != x.fds[0]) {
                fprintf(stderr, "bench-scale: not everything was released\n");
                return -EIO;
        }
        return 0;
}

int main(int argc, char *argv[]) {
        unsigned n = 256;
        const char *ram = "1048576";
        const bench_option options[] = {
                BENCH_OPT_U("endpoints", &n, 1, 1000000),
                BENCH_OPT_S("ram-size", &ram),
                {},
        };
        uint64_t ram_size;
        vmsig_subscriber *sub = NULL;
        vmsig_core *core = NULL;
        sd_event *event = NULL;
        counter count = {};
        struct rlimit rl;
        int r;

        bench_parse_options(argc, argv, options,
                            "bench-scale [--endpoints N] [--ram-size BYTES]\n"
                            "Defaults: 256 endpoints of 1 MiB RAM each.\n");
        ram_size = strtoull(ram, NULL, 10);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
                printf("bench-scale: %u stub endpoints of %" PRIu64 " bytes RAM; fd limit %llu (hard %llu)\n", n,
                       ram_size, (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
        fflush(stdout);

        r = sd_event_new(&event);
        if (r >= 0)
                r = vmsig_core_new(event, &core);
        if (r >= 0)
                /* One subscriber, as the D-Bus front is in vmsigd. */
                r = vmsig_core_subscribe(core,
                                         &(vmsig_filter) { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_ROSTER) |
                                                                    VMSIG_KIND_MASK(VMSIG_KIND_MEMCTX) },
                                         0, on_event, &count, &sub);
        if (r >= 0)
                r = run_pending(event);
        if (r >= 0)
                r = run(event, core, &count, n, ram_size);
        vmsig_subscriber_free(sub);
        vmsig_core_free(core);
        sd_event_unref(event);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
