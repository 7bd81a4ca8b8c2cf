/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-libvirt: the libvirt backend (the armed build) against the
 * private libvirtd of tests/libvirt-harness.h (run as root; the program
 * moves into a mount namespace of its own first), in process: the core on
 * an sd-event loop with the backend attached to qemu:///system, as vmsigd
 * runs them, without the D-Bus front.
 *
 *   event -> endpoint  a domain started through libvirt's API: from its
 *              STARTED lifecycle event (this program's own callback on its
 *              own connection, driven by the same loop) to the ROSTER
 *              "added" event of its endpoint; N domains one after another,
 *              median and max.
 *   lifecycle  Pause + Resume through the backend (vmsig_endpoint_lifecycle:
 *              a job on its worker thread, answered on the loop, as the bus
 *              front calls it) against virDomainSuspend + virDomainResume
 *              called directly, on the same domain, in one run, alternating
 *              in slices (ABBA, bench_compare()). Per-cycle time; ratio
 *              backend/direct time, target <= 1.3.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench-lib.h"
#include "libvirt-backend.h"
#include "libvirt-event.h"
#include "libvirt-harness.h"
#include "vmsig-endpoint.h"

#define RAM_MIB 128
#define N_STARTS 5
#define CALLS 100
#define WARMUP 10
#define RUNS 3

static sd_event *loop;
static vmsig_core *core;
static uint64_t started_at, added_at;

static void run_until(bool *flag) {
        while (!*flag)
                if (sd_event_run(loop, UINT64_MAX) < 0)
                        abort();
}

static int on_roster(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        const vmsig_roster_payload *p = d->event->payload;

        if (!d->replay && p->change == VMSIG_ROSTER_ADDED)
                added_at = bench_now_nsec();
        return VMSIG_DELIVER_OK;
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        if (event == VIR_DOMAIN_EVENT_STARTED)
                started_at = bench_now_nsec();
        return 0;
}

static void event_to_endpoint(LibvirtHarness *h) {
        uint64_t lat[N_STARTS];

        for (unsigned i = 0; i < N_STARTS; i++) {
                char name[32];
                virDomainPtr dom;

                snprintf(name, sizeof name, "bench-start-%u", i);
                started_at = added_at = 0;
                dom = libvirt_harness_start_domain(h, name, LIBVIRT_RAM_FILE, RAM_MIB);
                while (!started_at || !added_at)
                        if (sd_event_run(loop, UINT64_MAX) < 0)
                                abort();
                lat[i] = added_at - started_at;
                if (virDomainDestroy(dom) < 0)
                        abort();
                virDomainFree(dom);
                while (vmsig_core_find_endpoint_by_name(core, name))
                        (void) sd_event_run(loop, UINT64_MAX);
        }
        qsort(lat, N_STARTS, sizeof lat[0], bench_compare_u64);
        printf("event -> endpoint: libvirt STARTED event to ROSTER added, %u domains: median %.3f ms, max %.3f ms\n",
               N_STARTS, lat[N_STARTS / 2] / 1e6, lat[N_STARTS - 1] / 1e6);
}

static void on_done(const vmsig_result *r, void *userdata) {
        if (r->error < 0) {
                fprintf(stderr, "lifecycle: %s\n", r->message ?: "failed");
                abort();
        }
        *(bool *) userdata = true;
}

static int through_backend(sd_bus *bus, const void *userdata) {
        vmsig_endpoint *ep = (vmsig_endpoint *) userdata;
        bool paused = false, resumed = false;

        if (vmsig_endpoint_lifecycle(ep, VMSIG_OP_PAUSE, on_done, &paused) < 0)
                return -1;
        run_until(&paused);
        if (vmsig_endpoint_lifecycle(ep, VMSIG_OP_RESUME, on_done, &resumed) < 0)
                return -1;
        run_until(&resumed);
        return 0;
}

static int direct(sd_bus *bus, const void *userdata) {
        virDomainPtr dom = (virDomainPtr) userdata;

        return virDomainSuspend(dom) < 0 || virDomainResume(dom) < 0 ? -1 : 0;
}

static void lifecycle(LibvirtHarness *h, vmsig_endpoint *ep) {
        virDomainPtr dom = virDomainLookupByName(h->conn, "bench");
        bench_side a = { .call = through_backend, .userdata = ep }, b = { .call = direct, .userdata = dom };
        uint64_t ta[BENCH_RUNS_MAX], tb[BENCH_RUNS_MAX];
        bench_ratio q;

        if (!dom || bench_compare(&a, &b, CALLS, WARMUP, RUNS, ta, tb) < 0)
                abort();
        q = bench_ratio_of(CALLS, ta, tb, RUNS);
        printf("lifecycle: Pause+Resume through the backend %.0f cycles/s (%.3f ms), virDomainSuspend+Resume "
               "direct %.0f cycles/s (%.3f ms): ratio backend/direct time %.3f (target <= 1.3)\n",
               q.a, 1e3 / q.a, q.b, 1e3 / q.b, q.ratio);
        bench_print_runs("backend", "direct", CALLS, ta, tb, RUNS);
        virDomainFree(dom);
}

int main(int argc, char *argv[]) {
        vmsig_libvirt_config config = { .domains = VMSIG_LIBVIRT_DOMAINS_ALL };
        vmsig_filter filter = { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_ROSTER) };
        vmsig_subscriber *sub = NULL;
        vmsig_libvirt *lv = NULL;
        vmsig_endpoint *ep;
        LibvirtHarness *h;
        int cb;

        libvirt_harness_enter_namespace();
        if (!libvirt_harness_available()) {
                printf("bench-libvirt: skipped (no libvirtd, QEMU or guest parts)\n");
                return 0;
        }
        /* Before any connection: the harness's too is driven by the loop. */
        if (sd_event_new(&loop) < 0 || vmsig_libvirt_event_register(loop) < 0)
                abort();
        h = libvirt_harness_new();
        libvirt_harness_start(h);
        if (vmsig_core_new(loop, &core) < 0 ||
            vmsig_core_subscribe(core, &filter, 1024, on_roster, NULL, &sub) < 0 ||
            vmsig_libvirt_new(core, &config, &lv) < 0)
                abort();
        cb = virConnectDomainEventRegisterAny(h->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                              VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), NULL, NULL);
        if (cb < 0)
                abort();
        event_to_endpoint(h);
        /* Else the direct side's connection gets events too, which the
         * loop would handle in the backend's turns. */
        if (virConnectDomainEventDeregisterAny(h->conn, cb) < 0)
                abort();
        virDomainFree(libvirt_harness_start_domain(h, "bench", LIBVIRT_RAM_FILE, RAM_MIB));
        while (!(ep = vmsig_core_find_endpoint_by_name(core, "bench")))
                (void) sd_event_run(loop, UINT64_MAX);
        lifecycle(h, ep);
        vmsig_libvirt_free(lv);
        vmsig_subscriber_free(sub);
        vmsig_core_free(core);
        libvirt_harness_free(h);
        sd_event_unref(loop);
        return 0;
}
