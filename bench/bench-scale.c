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

int main(int argc, char *argv[]) {
        unsigned n = 256;
        const char *ram = "1048576";
        const bench_option options[] = {
                BENCH_OPT_U("endpoints", &n, 1, 1000000),
                BENCH_OPT_S("ram-size", &ram),
                {},
        };
        uint64_t ram_size;
        vmsig_endpoint **eps = NULL;
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

        eps = calloc(n, sizeof *eps);
        if (!eps) {
                r = -ENOMEM;
                goto finish;
        }
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
        if (r < 0)
                goto finish;

        char name[32];
        long rss0 = rss_bytes();
        int fds0 = bench_count_fds();
        uint64_t t0 = bench_now_nsec();

        for (unsigned i = 0; i < n; i++) {
                vmsig_stub_spec spec = {
                        .name = name,
                        .ram_size = ram_size,
                        .initial_state = VMSIG_STATE_RUNNING,
                };
                vmsig_endpoint_spec ep_spec;

                snprintf(name, sizeof name, "vm%04u", i);
                r = vmsig_stub_new(&spec, &ep_spec, NULL);
                if (r >= 0)
                        r = vmsig_core_attach_endpoint(core, &ep_spec, &eps[i]);
                if (r < 0) {
                        fprintf(stderr, "bench-scale: attaching endpoint %u failed: %s\n", i, strerror(-r));
                        goto finish;
                }
        }
        uint64_t t1 = bench_now_nsec();
        r = run_pending(event);
        if (r < 0)
                goto finish;
        uint64_t t2 = bench_now_nsec();
        long rss1 = rss_bytes();
        int fds1 = bench_count_fds();

        if (count.roster != n || count.memctx != n) {
                fprintf(stderr, "bench-scale: expected %u ROSTER and MEMCTX events, got %" PRIu64 " and %" PRIu64 "\n",
                        n, count.roster, count.memctx);
                r = -EIO;
                goto finish;
        }

        uint64_t t3 = bench_now_nsec();
        for (unsigned i = 0; i < n; i++) {
                r = vmsig_core_detach_endpoint(core, eps[i]);
                if (r < 0) {
                        fprintf(stderr, "bench-scale: detaching endpoint %u failed: %s\n", i, strerror(-r));
                        goto finish;
                }
        }
        uint64_t t4 = bench_now_nsec();
        r = run_pending(event);
        if (r < 0)
                goto finish;
        uint64_t t5 = bench_now_nsec();

        vmsig_core_stats st;
        vmsig_core_get_stats(core, &st);
        long rss2 = rss_bytes();
        int fds2 = bench_count_fds();

        double per_ep = (double) (rss1 - rss0) / n;
        printf("  attach   %u endpoints: %8.2f ms (%.1f us each); with dispatch to 1 subscriber %8.2f ms\n", n,
               (t1 - t0) / 1e6, (t1 - t0) / 1e3 / n, (t2 - t0) / 1e6);
        printf("  memory   RSS %.1f -> %.1f MiB: %.1f KiB per endpoint; fds %d -> %d: %.1f per endpoint\n",
               rss0 / 1048576.0, rss1 / 1048576.0, per_ep / 1024, fds0, fds1, (double) (fds1 - fds0) / n);
        printf("  detach   %u endpoints: %8.2f ms (%.1f us each); with dispatch and reap %8.2f ms\n", n,
               (t4 - t3) / 1e6, (t4 - t3) / 1e3 / n, (t5 - t3) / 1e6);
        printf("  after    RSS %.1f MiB, fds %d, endpoints %zu, zombies %zu, roster events %" PRIu64 "\n",
               rss2 / 1048576.0, fds2, st.endpoints, st.zombies, count.roster);
        printf("@ scale endpoints=%u attach_ms=%.2f attach_dispatch_ms=%.2f rss_per_ep_kib=%.1f fds_per_ep=%.1f "
               "detach_ms=%.2f detach_reap_ms=%.2f\n",
               n, (t1 - t0) / 1e6, (t2 - t0) / 1e6, per_ep / 1024, (double) (fds1 - fds0) / n, (t4 - t3) / 1e6,
               (t5 - t3) / 1e6);
        if (st.endpoints != 0 || st.zombies != 0 || fds2 != fds0) {
                fprintf(stderr, "bench-scale: not everything was released\n");
                r = -EIO;
        }
finish:
        vmsig_subscriber_free(sub);
        vmsig_core_free(core);
        sd_event_unref(event);
        free(eps);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
