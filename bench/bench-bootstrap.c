/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-bootstrap (issue 14): how long vmsigd's address-space bootstrap
 * takes from "the guest kernel's structures are in place and its vCPU runs
 * on them" to BootstrapState "ready", and how much CPU vmsigd spends while
 * it waits for a kernel. Each configuration gets a private system bus and
 * a vmsigd of its own (--vmsigd, data/org.vmsig.conf from --srcdir), so
 * that a measured and a baseline daemon can run side by side.
 *
 *   stub   A 256 MiB stub VM with bootstrap="yes" (stub.h: its vCPU leaves
 *          the firmware once the guest writes CR3 and a magic at 0x500). A
 *          synthetic Windows guest (tests/guest-image.c, the System EPROCESS
 *          2 MiB below the top so that the scan reads all of RAM; every page
 *          populated unless --sparse) is copied in with MemWriteBatch under
 *          the memory-write lease, the magic last with one MemWrite.
 *          Latency: that MemWrite's reply -> the PropertiesChanged saying
 *          "ready". RUNS boots, a Reset (RAM kept) between them; the root
 *          and epoch checked after each with SubscribeMemctx.
 *   cpu    vmsigd's utime + stime per wall second, % of one core: (a) the
 *          stub VM in its firmware for CPU_SECONDS, (b) NOSYSTEM_SECONDS
 *          from the start of a kernel whose System process never appears
 *          (its EPROCESS page zeroed), then STEADY_SECONDS once the backoff
 *          is at its 8 s cap. Baseline: a second vmsigd with the same stub
 *          VM and bootstrap="no", sampled over the same wall time.
 *   qemu   (armed build) QEMU (TCG) running tests/guest/longmode.S, the
 *          synthetic vCPU, on tests/win-image.c's stale-boot scenario in
 *          its RAM file: boots 1 and 2 in turn across system_reset, the
 *          other boot's kernel left in RAM to be passed over. Latency: the
 *          bench seeing the vCPU in long mode on the image's root (`info
 *          registers` on its own QMP session) -> "ready". CPU (c): with the
 *          program waiting, paging off; baseline the same VM once ready and
 *          unwatched.
 *   linux  (armed build) Debian's cloud kernel (--kernel, VMSIG_TEST_KERNEL
 *          or the newest /boot/vmlinuz-*-cloud-amd64) with a busybox
 *          initramfs, QEMU started paused and attached before "cont". From
 *          "cont": the kernel's switch to its own tables (`info registers`
 *          every POLL_MS until CR3's kernel half has an entry, vmsigd's own
 *          criterion), "ready", the init's marker on the serial console.
 *          Latency: switch -> ready.
 *
 * The kernel "starts" after a stratified random part of vmsigd's 250 ms
 * vCPU poll interval (phases_init()), as a real one does; the "searching"
 * signal splits each sample into the wait for the look and the attempt.
 * Baseline of a latency: attempt_in_process() on the same RAM, plus one
 * D-Bus round trip, plus for QEMU one `info registers`, plus half the poll
 * interval; ratio = measured median / baseline. Targets: median < 1 s,
 * CPU < 1 % of a core. bench/RESULTS.md tells the rest.
 *
 * Lines starting with "@" are for bench/run.sh.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "bench-lib.h"
#include "bootstrap.h"
#include "detect-linux.h"
#include "detect.h"
#include "guest-image.h"
#include "macro.h"
#include "stub.h"
#include "vmsig-endpoint.h"

#if BENCH_BOOTSTRAP_QEMU
#include <json-c/json.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "linux-initrd.h"
#include "qmp-hmp.h"
#include "win-image.h"
#endif

#define MiB (UINT64_C(1) << 20)
#define PAGE UINT64_C(4096)

#define STUB_RAM (256 * MiB)
#define STUB_NAME "alpha"
#define SAMPLES_MAX 1000
#define RTT_CALLS 200
#define BATCH_PAGES 1024u /* 4 MiB per MemWriteBatch, as bench-calls memwrite-call */
#define TIMEOUT_USEC (30 * USEC_PER_SEC)
#define TARGET_MEDIAN_MS 1000.0
#define TARGET_CPU_PCT 1.0

static struct {
        const char *srcdir, *vmsigd, *dbus_daemon, *tmp;
        unsigned runs, cpu_seconds, nosystem_seconds, steady_seconds, settle_seconds;
        bool sparse, keep;
        uint64_t rng;
        /* Accepted in both builds, so that one command line fits both. */
        const char *qemu, *kernel, *initrd;
        unsigned qemu_runs, linux_runs, poll_ms;
} opt = {
        .vmsigd = "./vmsigd",
        .runs = 20,
        .cpu_seconds = 10,
        .nosystem_seconds = 20,
        .steady_seconds = 16,
        .settle_seconds = 4,
        .rng = 14,
        .qemu_runs = 10,
        .linux_runs = 3,
        .poll_ms = 5,
};

/* --- small things --------------------------------------------------------------------- */

static double ms(uint64_t nsec) {
        return (double) nsec / 1e6;
}

/* xorshift64: the random phases, the same in every run of the bench. */
static uint64_t random_u64(void) {
        opt.rng ^= opt.rng << 13;
        opt.rng ^= opt.rng >> 7;
        opt.rng ^= opt.rng << 17;
        return opt.rng;
}

/* The phases of the kernel's start against vmsigd's look at the vCPU:
 * jittered strata, one random point in each of n equal slices of the poll
 * interval, the slices in shuffled order. Plain random points would leave
 * the median of 10 or 20 runs to luck (the wait for the look is most of
 * the latency); these sample the interval evenly. */
static struct {
        unsigned slice[SAMPLES_MAX];
        unsigned n, next;
} phases;

static void phases_init(unsigned n) {
        phases.n = n;
        phases.next = 0;
        for (unsigned i = 0; i < n; i++)
                phases.slice[i] = i;
        for (unsigned i = n; i > 1; i--) {
                unsigned j = (unsigned) (random_u64() % i), t = phases.slice[i - 1];
                phases.slice[i - 1] = phases.slice[j];
                phases.slice[j] = t;
        }
}

/* The next wait in [0, the vCPU poll interval). */
static uint64_t random_phase_nsec(void) {
        uint64_t interval = VMSIG_BOOTSTRAP_VCPU_INTERVAL_USEC * NSEC_PER_USEC, width = interval / phases.n;
        unsigned slice = phases.slice[phases.next++ % phases.n];

        return slice * width + random_u64() % width;
}

/* --- a private bus and a vmsigd on it ----------------------------------------------------- */

typedef bench_services service;

/* A bus and a vmsigd whose configuration holds body; with discovery, a
 * trigger directory vms.d in the service's directory. */
static int service_start(service *s, const char *label, const char *body, bool discovery) {
        char path[256], *text = NULL;
        int r;

        r = bench_services_prepare(s, label, opt.tmp, discovery);
        if (r >= 0 &&
            asprintf(&text, "<vmsigd>\n  <log level=\"info\"/>\n  <audit target=\"stderr\"/>\n%s%s%s%s</vmsigd>\n",
                     discovery ? "  <discovery trigger-dir=\"" : "", discovery ? s->dir : "",
                     discovery ? "/vms.d\"/>\n" : "", body) < 0)
                r = -ENOMEM;
        snprintf(path, sizeof path, "%s/vmsigd.conf", s->dir);
        if (r >= 0)
                r = bench_write_file(path, text);
        free(text);
        return r < 0 ? r : bench_services_start(s, opt.srcdir, opt.dbus_daemon, opt.vmsigd);
}

/* --- what the bench asks vmsigd --------------------------------------------------------------- */

enum { ST_BOOTING, ST_SEARCHING, ST_RETRYING, ST_READY, ST_OTHER, _ST_MAX };

/* BootstrapState of one endpoint as PropertiesChanged tells it, with the
 * time each state was last entered (as the bench processed the signal). */
typedef struct watch {
        char *path;
        char state[32];
        uint64_t entered[_ST_MAX];
        sd_bus_slot *slot;
} watch;

static unsigned state_index(const char *s) {
        static const char *const names[] = { "booting", "searching", "retrying", "ready" };

        for (unsigned i = 0; i < ELEMENTSOF(names); i++)
                if (strcmp(s, names[i]) == 0)
                        return i;
        return ST_OTHER;
}

static void watch_set(watch *w, const char *state, uint64_t now) {
        if (strcmp(w->state, state) == 0)
                return;
        snprintf(w->state, sizeof w->state, "%s", state);
        w->entered[state_index(state)] = now;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        watch *w = userdata;
        uint64_t now = bench_now_nsec();
        const char *interface, *name, *value;
        int r;

        r = sd_bus_message_read(m, "s", &interface);
        if (r < 0 || strcmp(interface, VMSIG_BUS_ENDPOINT_INTERFACE) != 0)
                return 0;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &name);
                if (r >= 0 && strcmp(name, "BootstrapState") == 0) {
                        r = sd_bus_message_read(m, "v", "s", &value);
                        if (r >= 0)
                                watch_set(w, value, now);
                } else if (r >= 0)
                        r = sd_bus_message_skip(m, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        return 0;
}

static int get_string(sd_bus *bus, const char *path, const char *property, char **ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_get_property_string(bus, VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, property, &error,
                                           ret);

        sd_bus_error_free(&error);
        return r;
}

/* Subscribes to the endpoint's PropertiesChanged (before anything it is to
 * time happens) and reads its state once; -ENOENT-like errors if the
 * endpoint is not there (yet). */
static int watch_start(sd_bus *bus, const char *name, watch *w) {
        char *state = NULL;
        int r;

        *w = (watch) {};
        r = sd_bus_path_encode(VMSIG_BUS_ENDPOINT_PREFIX, name, &w->path);
        if (r >= 0)
                r = sd_bus_match_signal(bus, &w->slot, VMSIG_BUS_NAME, w->path, BENCH_PROPERTIES_INTERFACE,
                                        "PropertiesChanged", on_properties_changed, w);
        if (r >= 0)
                r = get_string(bus, w->path, "BootstrapState", &state);
        if (r >= 0)
                watch_set(w, state, bench_now_nsec());
        free(state);
        return r;
}

static void watch_stop(watch *w) {
        w->slot = sd_bus_slot_unref(w->slot);
        free(w->path);
        w->path = NULL;
}

/* Until the endpoint entered state at or after since (nsec); its time. */
static int watch_wait(sd_bus *bus, watch *w, unsigned state, uint64_t since, uint64_t timeout_usec,
                      uint64_t *ret) {
        uint64_t deadline = bench_now_nsec() + timeout_usec * NSEC_PER_USEC, now;
        int r;

        for (;;) {
                r = bench_process_all(bus);
                if (r < 0)
                        return r;
                if (state_index(w->state) == state && w->entered[state] >= since) {
                        if (ret)
                                *ret = w->entered[state];
                        return 0;
                }
                now = bench_now_nsec();
                if (now >= deadline)
                        return -ETIMEDOUT;
                r = sd_bus_wait(bus, (deadline - now) / NSEC_PER_USEC + 1);
                if (r < 0)
                        return r;
        }
}

/* Median of RTT_CALLS Properties.Get(BootstrapState): the bus floor. */
static int median_rtt(sd_bus *bus, const char *path, uint64_t *ret) {
        static uint64_t t[RTT_CALLS];
        int r;

        for (unsigned i = 0; i < RTT_CALLS; i++) {
                char *s = NULL;
                uint64_t start = bench_now_nsec();

                r = get_string(bus, path, "BootstrapState", &s);
                t[i] = bench_now_nsec() - start;
                free(s);
                if (r < 0)
                        return r;
        }
        *ret = bench_median(t, RTT_CALLS);
        return bench_process_all(bus);
}

static int mem_write(sd_bus *bus, const char *endpoint, uint64_t gpa, const void *data, size_t len) {
        sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, VMSIG_BUS_NAME, endpoint, VMSIG_BUS_ENDPOINT_INTERFACE, "MemWrite");
        if (r >= 0)
                r = sd_bus_message_append(m, "t", gpa);
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', data, len);
        return bench_call_write(bus, m, r);
}

static int mem_write_u64(sd_bus *bus, const char *endpoint, uint64_t gpa, uint64_t value) {
        uint64_t le = htole64(value);

        return mem_write(bus, endpoint, gpa, &le, sizeof le);
}

/* n pages of buf to consecutive GPAs from gpa, one MemWriteBatch. */
static int mem_write_pages(sd_bus *bus, const char *endpoint, uint64_t gpa, const uint8_t *buf, size_t n) {
        const bench_method batch = { .destination = VMSIG_BUS_NAME,
                                     .path = endpoint,
                                     .interface = VMSIG_BUS_ENDPOINT_INTERFACE,
                                     .member = "MemWriteBatch" };
        uint64_t k = gpa / PAGE;

        return bench_call_batch(bus, &batch, buf, (unsigned) n, PAGE, STUB_RAM, &k);
}

/* Every page of the file that holds data, to the same GPA (a flat
 * layout), the mailbox's magic left zero: the guest is not to start yet.
 * The memory-write lease must be held. */
static int copy_ram(sd_bus *bus, const char *endpoint, int fd, uint64_t size, uint64_t *ret_bytes) {
        uint8_t *buf = malloc(BATCH_PAGES * PAGE);
        uint64_t bytes = 0;
        off_t pos = 0;
        int r = buf ? 0 : -ENOMEM;

        while (r >= 0 && (uint64_t) pos < size) {
                off_t data = lseek(fd, pos, SEEK_DATA), hole;

                if (data < 0) {
                        r = errno == ENXIO ? 0 : -errno;
                        break;
                }
                hole = lseek(fd, data, SEEK_HOLE);
                if (hole < 0) {
                        r = -errno;
                        break;
                }
                for (uint64_t p = (uint64_t) data & ~(PAGE - 1); r >= 0 && p < (uint64_t) hole;) {
                        size_t n = (size_t) MIN((uint64_t) BATCH_PAGES, ((uint64_t) hole - p + PAGE - 1) / PAGE);

                        if (pread(fd, buf, n * PAGE, (off_t) p) != (ssize_t) (n * PAGE)) {
                                r = -EIO;
                                break;
                        }
                        if (p == 0)
                                memset(buf + VMSIG_STUB_MAILBOX_MAGIC_GPA, 0, sizeof(uint64_t));
                        r = mem_write_pages(bus, endpoint, p, buf, n);
                        p += n * PAGE;
                        bytes += n * PAGE;
                }
                pos = hole;
        }
        free(buf);
        *ret_bytes = bytes;
        return r;
}

static int reset_endpoint(sd_bus *bus, const char *endpoint) {
        bench_lease power;
        int r = bench_lease_acquire(bus, endpoint, "power", &power);

        if (r >= 0)
                r = bench_callf(bus, VMSIG_BUS_NAME, endpoint, VMSIG_BUS_ENDPOINT_INTERFACE, "Reset", NULL, NULL);
        bench_lease_release(bus, &power);
        return r;
}

/* The published root and epoch, from SubscribeMemctx (then unsubscribed,
 * so that nobody watches the root and vmsigd has no reason to wake). */
static int memctx_get(sd_bus *bus, const char *endpoint, uint64_t *ret_dtb, uint64_t *ret_epoch) {
        sd_bus_message *reply = NULL;
        uint64_t size;
        int fd, r;

        r = bench_callf(bus, VMSIG_BUS_NAME, endpoint, VMSIG_BUS_ENDPOINT_INTERFACE, "SubscribeMemctx", &reply, NULL);
        if (r >= 0)
                r = sd_bus_message_read(reply, "httt", &fd, ret_dtb, ret_epoch, &size);
        if (r >= 0)
                r = bench_callf(bus, VMSIG_BUS_NAME, endpoint, VMSIG_BUS_ENDPOINT_INTERFACE, "UnsubscribeMemctx", NULL,
                                NULL);
        sd_bus_message_unref(reply);
        return r;
}

/* The root vmsigd published after a boot must be expect, with an epoch
 * after *epoch (which becomes the new one). */
static int check_published(sd_bus *bus, const char *endpoint, const char *boot, uint64_t expect, uint64_t *epoch) {
        uint64_t dtb = 0, new_epoch = 0;
        int r = memctx_get(bus, endpoint, &dtb, &new_epoch);

        if (r >= 0 && (dtb != expect || new_epoch <= *epoch)) {
                fprintf(stderr, "bench-bootstrap: %spublished root 0x%" PRIx64 " epoch %" PRIu64 ", expected 0x%" PRIx64
                                " and an epoch after %" PRIu64 "\n",
                        boot, dtb, new_epoch, expect, *epoch);
                r = -EBADMSG;
        }
        *epoch = new_epoch;
        return r;
}

/* What the bootstrap says it found, for the report. */
static void print_method(sd_bus *bus, const char *endpoint, const char *indent) {
        char *method = NULL, *os = NULL, *release = NULL;

        (void) get_string(bus, endpoint, "BootstrapMethod", &method);
        (void) get_string(bus, endpoint, "GuestOs", &os);
        (void) get_string(bus, endpoint, "GuestOsRelease", &release);
        printf("%sfound: method %s, guest OS %s, release %s\n", indent, method ?: "?", os ?: "?", release ?: "?");
        free(method);
        free(os);
        free(release);
}

/* --- the detector in process: the floor of an attempt ---------------------------------------------- */

/* What one attempt of the bootstrap does for a vCPU on cr3, in one go:
 * the low stub (for its hint), the Linux probe of cr3 and, if that finds
 * nothing, the EPROCESS scan in steps of the default budget, a find that
 * does not share cr3's kernel half passed over as a stale copy. The time
 * it took; *ret_dtb the root found, 0 if none. */
static int attempt_in_process(const vmsig_guest_mem *src, uint64_t cr3, unsigned levels, uint64_t *ret_nsec,
                              uint64_t *ret_dtb) {
        uint64_t start = bench_now_nsec();
        vmsig_detect_result stub, found;
        vmsig_linux_result linux_found;
        vmsig_detect_scan *scan = NULL;
        int r;

        *ret_dtb = 0;
        r = vmsig_detect_low_stub(src, &stub);
        if (r < 0)
                return r;
        r = vmsig_linux_probe_all(src, cr3, levels, &linux_found);
        if (r > 0)
                *ret_dtb = linux_found.root;
        else if (r != -ENOENT)
                return r;
        else {
                r = vmsig_detect_scan_new(src, &scan);
                while (r >= 0) {
                        r = vmsig_detect_scan_step(scan, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &found);
                        if (r == 0)
                                continue;
                        if (r < 0)
                                break;
                        if (vmsig_detect_same_kernel(src, cr3 & VMSIG_CR3_ROOT_MASK, found.dtb) > 0) {
                                *ret_dtb = found.dtb;
                                break;
                        }
                        vmsig_detect_scan_resume(scan);
                }
                vmsig_detect_scan_free(scan);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        *ret_nsec = bench_now_nsec() - start;
        return 0;
}

/* --- stub: latency ------------------------------------------------------------------------------ */

typedef struct latency_samples {
        uint64_t total[SAMPLES_MAX], wait[SAMPLES_MAX], attempt[SAMPLES_MAX], detect[SAMPLES_MAX];
        size_t n, n_detect;
} latency_samples;

static latency_samples lat;

/* One sample: t0 the start; searching and ready as the watch saw them. */
static void add_sample(latency_samples *l, uint64_t t0, const watch *w) {
        uint64_t ready = w->entered[ST_READY], searching = w->entered[ST_SEARCHING];

        l->total[l->n] = ready > t0 ? ready - t0 : 0;
        /* No "searching" since t0: it came with "ready" in one go. */
        searching = searching >= t0 && searching <= ready ? searching : ready;
        l->wait[l->n] = searching > t0 ? searching - t0 : 0;
        l->attempt[l->n] = ready - searching;
        l->n++;
}

typedef struct latency_result {
        bench_summary total, wait, attempt;
        uint64_t detect, rtt, vcpu_rtt, baseline;
        double ratio;
} latency_result;

static latency_result latency_report(const char *name, const char *what, latency_samples *l, uint64_t rtt,
                                     uint64_t vcpu_rtt) {
        latency_result x = { .rtt = rtt, .vcpu_rtt = vcpu_rtt };
        uint64_t half_interval = VMSIG_BOOTSTRAP_VCPU_INTERVAL_USEC * NSEC_PER_USEC / 2;

        printf("  %-6s samples (ms):", name);
        for (size_t i = 0; i < l->n; i++)
                printf(" %.0f", ms(l->total[i]));
        printf("\n");
        x.total = bench_summarize(l->total, l->n);
        x.wait = bench_summarize(l->wait, l->n);
        x.attempt = bench_summarize(l->attempt, l->n);
        x.detect = bench_median(l->detect, l->n_detect);
        x.baseline = x.detect + rtt + vcpu_rtt + half_interval;
        x.ratio = (double) x.total.median / (double) x.baseline;
        printf("  %-6s %s -> ready over %zu runs: median %.1f ms, p90 %.1f ms (min %.1f, max %.1f); target median "
               "< %.0f ms\n",
               name, what, l->n, ms(x.total.median), ms(x.total.p90), ms(x.total.min), ms(x.total.max),
               TARGET_MEDIAN_MS);
        printf("  %-6s   split: wait for the vCPU look (until \"searching\") median %.1f ms (max %.1f), the attempt "
               "median %.1f ms (max %.1f)\n",
               name, ms(x.wait.median), ms(x.wait.max), ms(x.attempt.median), ms(x.attempt.max));
        printf("  %-6s   baseline %.1f ms = attempt in process %.1f ms + D-Bus round trip %.3f ms + vCPU read %.3f ms "
               "+ half the poll interval %.0f ms; ratio measured/baseline %.3f\n",
               name, ms(x.baseline), ms(x.detect), ms(rtt), ms(vcpu_rtt), ms(half_interval), x.ratio);
        return x;
}

static void latency_at(const char *name, const latency_result *x, size_t n) {
        printf("@ %s median_ms=%.1f p90_ms=%.1f min_ms=%.1f max_ms=%.1f wait_ms=%.1f attempt_ms=%.1f baseline_ms=%.1f "
               "detect_ms=%.2f rtt_ms=%.3f vcpu_rtt_ms=%.3f ratio=%.3f runs=%zu\n",
               name, ms(x->total.median), ms(x->total.p90), ms(x->total.min), ms(x->total.max), ms(x->wait.median),
               ms(x->attempt.median), ms(x->baseline), ms(x->detect), ms(x->rtt), ms(x->vcpu_rtt), x->ratio, n);
}

/* The image: GUEST_IMAGE_LAYOUT_FLAT as the stub has it, its System
 * EPROCESS (and tables, kernel image) near the top, so that the scan
 * reads all of RAM before it finds it, the low stub, firmware bytes,
 * decoys; the boot mailbox (CR3, magic) written too. */
static int stub_image(GuestImage *img, GuestImageSpec *spec) {
        guest_image_spec_init(spec);
        spec->ram_size = STUB_RAM;
        spec->layout = GUEST_IMAGE_LAYOUT_FLAT;
        spec->dtb = STUB_RAM - 16 * MiB;
        spec->kernel_image = STUB_RAM - 8 * MiB;
        spec->eprocess = STUB_RAM - 2 * MiB + 0x80;
        spec->firmware = true;
        spec->decoys = 40 * MiB;
        spec->populate = !opt.sparse;
        spec->boot = true;
        return guest_image_create(spec, img);
}

/* One boot: wait 200 ms (the stub's firmware) and a random part of the
 * poll interval, write the magic, time until "ready". */
static int stub_boot_once(service *s, watch *w, const GuestImageSpec *spec, uint64_t *epoch) {
        uint64_t t0;
        bench_lease memwrite;
        int r;

        r = bench_lease_acquire(s->bus, w->path, "memory-write", &memwrite);
        if (r < 0)
                return r;
        r = bench_run_until(s->bus, bench_now_nsec() + VMSIG_STUB_FIRMWARE_USEC * NSEC_PER_USEC + random_phase_nsec(),
                            NULL);
        if (r >= 0)
                r = mem_write_u64(s->bus, w->path, VMSIG_STUB_MAILBOX_MAGIC_GPA, VMSIG_STUB_MAILBOX_MAGIC);
        t0 = bench_now_nsec();
        if (r >= 0)
                r = watch_wait(s->bus, w, ST_READY, t0, TIMEOUT_USEC, NULL);
        bench_lease_release(s->bus, &memwrite);
        if (r < 0) {
                fprintf(stderr, "bench-bootstrap: the stub VM did not get ready (state %s): %s\n", w->state,
                        strerror(-r));
                return r;
        }
        add_sample(&lat, t0, w);
        return check_published(s->bus, w->path, "", spec->dtb, epoch);
}

/* The guest program waits again: clear the magic, then Reset (which keeps
 * RAM), until "booting". */
static int stub_reset(service *s, watch *w) {
        uint64_t start;
        bench_lease memwrite;
        int r;

        r = bench_lease_acquire(s->bus, w->path, "memory-write", &memwrite);
        if (r >= 0)
                r = mem_write_u64(s->bus, w->path, VMSIG_STUB_MAILBOX_MAGIC_GPA, 0);
        bench_lease_release(s->bus, &memwrite);
        start = bench_now_nsec();
        if (r >= 0)
                r = reset_endpoint(s->bus, w->path);
        if (r >= 0)
                r = watch_wait(s->bus, w, ST_BOOTING, start, TIMEOUT_USEC, NULL);
        return r;
}

/* --- CPU while waiting ------------------------------------------------------------------------------ */

typedef struct cpu_result {
        double pct, baseline_pct;             /* from utime + stime */
        double sched_pct, baseline_sched_pct; /* from schedstat */
        uint64_t wall, cpu, baseline_cpu;     /* usec */
        uint64_t sched, baseline_sched;       /* nsec */
} cpu_result;

static void cpu_percentages(cpu_result *c) {
        c->pct = 100.0 * (double) c->cpu / (double) c->wall;
        c->baseline_pct = 100.0 * (double) c->baseline_cpu / (double) c->wall;
        c->sched_pct = 100.0 * (double) c->sched / 1e3 / (double) c->wall;
        c->baseline_sched_pct = 100.0 * (double) c->baseline_sched / 1e3 / (double) c->wall;
}

/* vmsigd's CPU over seconds of wall time, the measured and (if given) the
 * baseline daemon sampled together; the buses are kept drained. */
static int cpu_window(service *measured, service *baseline, unsigned seconds, cpu_result *ret) {
        uint64_t start = bench_now_nsec(), end = start + seconds * USEC_PER_SEC * NSEC_PER_USEC, now;
        uint64_t m0 = bench_proc_cpu_usec(measured->vmsigd_pid),
                 b0 = baseline ? bench_proc_cpu_usec(baseline->vmsigd_pid) : 0;
        uint64_t ms0 = bench_proc_sched_nsec(measured->vmsigd_pid),
                 bs0 = baseline ? bench_proc_sched_nsec(baseline->vmsigd_pid) : 0;
        int r = 0;

        while (r >= 0 && (now = bench_now_nsec()) < end) {
                usleep((useconds_t) MIN((end - now) / NSEC_PER_USEC, 100000));
                r = bench_process_all(measured->bus);
                if (r >= 0 && baseline)
                        r = bench_process_all(baseline->bus);
        }
        *ret = (cpu_result) {
                .wall = (bench_now_nsec() - start) / NSEC_PER_USEC,
                .cpu = bench_proc_cpu_usec(measured->vmsigd_pid) - m0,
                .baseline_cpu = baseline ? bench_proc_cpu_usec(baseline->vmsigd_pid) - b0 : 0,
                .sched = bench_proc_sched_nsec(measured->vmsigd_pid) - ms0,
                .baseline_sched = baseline ? bench_proc_sched_nsec(baseline->vmsigd_pid) - bs0 : 0,
        };
        cpu_percentages(ret);
        if (r >= 0 && (!bench_services_alive(measured) || (baseline && !bench_services_alive(baseline))))
                r = -ESRCH;
        return r;
}

static void cpu_report(const char *name, const char *what, const char *baseline_what, const cpu_result *c,
                       const char *extra) {
        char ratio[32];

        if (c->baseline_sched > 0)
                snprintf(ratio, sizeof ratio, "%.2f", (double) c->sched / (double) c->baseline_sched);
        else
                snprintf(ratio, sizeof ratio, "-");
        printf("  %-6s %s: %.1f ms of CPU (utime+stime) in %.1f s = %.3f %% of a core (target < %.0f %%); "
               "schedstat %.2f ms = %.4f %%\n",
               "cpu", what, (double) c->cpu / 1e3, (double) c->wall / 1e6, c->pct, TARGET_CPU_PCT,
               (double) c->sched / 1e6, c->sched_pct);
        printf("  %-6s   baseline, %s: %.1f ms = %.3f %%, schedstat %.2f ms = %.4f %%; added %.3f %%; ratio "
               "(schedstat) %s\n",
               "cpu", baseline_what, (double) c->baseline_cpu / 1e3, c->baseline_pct, (double) c->baseline_sched / 1e6,
               c->baseline_sched_pct, c->pct - c->baseline_pct, ratio);
        printf("@ %s pct=%.3f baseline_pct=%.3f added_pct=%.3f sched_pct=%.4f baseline_sched_pct=%.4f cpu_ms=%.1f "
               "baseline_cpu_ms=%.1f seconds=%.1f ratio=%s%s\n",
               name, c->pct, c->baseline_pct, c->pct - c->baseline_pct, c->sched_pct, c->baseline_sched_pct,
               (double) c->cpu / 1e3, (double) c->baseline_cpu / 1e3, (double) c->wall / 1e6, ratio,
               extra ? extra : "");
}

static int attempts_of(sd_bus *bus, const char *path, unsigned *ret) {
        uint32_t n = 0;
        int r = bench_get_trivial(bus, path, "BootstrapAttempts", 'u', &n);

        *ret = n;
        return r;
}

/* --- stub: the whole case ----------------------------------------------------------------------------- */

/* (a) The firmware: paging off, nothing is looked for; the vCPU is looked
 * at every 250 ms. After start-up has settled (the heap is trimmed 3 s
 * after the last work). */
static int stub_firmware(service *m, service *b, watch *w) {
        cpu_result firmware;
        int r = watch_wait(m->bus, w, ST_BOOTING, 0, TIMEOUT_USEC, NULL);

        if (r >= 0)
                r = bench_run_until(m->bus, bench_now_nsec() + opt.settle_seconds * USEC_PER_SEC * NSEC_PER_USEC, NULL);
        if (r >= 0)
                r = cpu_window(m, b, opt.cpu_seconds, &firmware);
        if (r >= 0)
                cpu_report("bootstrap-cpu-firmware", "(a) stub VM in its firmware (paging off)", "bootstrap=\"no\"",
                           &firmware, NULL);
        return r;
}

/* The latency: the image copied in with the magic left out, opt.runs
 * boots, and the attempt in process as the baseline. */
static int stub_latency(service *m, watch *w, GuestImage *img, GuestImageSpec *spec) {
        uint64_t epoch = 0, bytes = 0, rtt = 0, start = bench_now_nsec(), dtb;
        bench_lease memwrite = { .fd = -1 };
        int r = stub_image(img, spec);

        if (r >= 0)
                r = bench_lease_acquire(m->bus, w->path, "memory-write", &memwrite);
        if (r >= 0)
                r = copy_ram(m->bus, w->path, img->fd, STUB_RAM, &bytes);
        bench_lease_release(m->bus, &memwrite);
        if (r < 0)
                return r;
        printf("  stub   image copied in: %" PRIu64 " MiB in %.1f s with MemWriteBatch\n", bytes / MiB,
               (double) (bench_now_nsec() - start) / 1e9);
        r = median_rtt(m->bus, w->path, &rtt);
        phases_init(opt.runs);
        for (unsigned i = 0; r >= 0 && i < opt.runs; i++) {
                if (i > 0)
                        r = stub_reset(m, w);
                if (r >= 0)
                        r = stub_boot_once(m, w, spec, &epoch);
        }
        if (r < 0)
                return r;
        print_method(m->bus, w->path, "  stub     ");
        const vmsig_guest_mem src = { .read_fd = img->ro_fd,
                                      .ranges = img->ranges,
                                      .n_ranges = img->n_ranges,
                                      .ram_size = img->ram_size };
        for (unsigned i = 0; i < 5; i++) {
                r = attempt_in_process(&src, spec->dtb, 4, &lat.detect[lat.n_detect++], &dtb);
                if (r >= 0 && dtb != spec->dtb)
                        r = -EBADMSG;
                if (r < 0) {
                        fprintf(stderr, "bench-bootstrap: the detector in process: %s\n", strerror(-r));
                        return r;
                }
        }
        latency_result x = latency_report("stub", "magic written (MemWrite reply)", &lat, rtt, 0);
        latency_at("bootstrap-stub", &x, lat.n);
        return 0;
}

/* (b) A kernel whose System process never appears: its EPROCESS page
 * zeroed, a reset, the magic again. */
static int stub_nosystem_start(service *m, watch *w, const GuestImageSpec *spec) {
        bench_lease memwrite = { .fd = -1 };
        int r = stub_reset(m, w);

        if (r >= 0)
                r = bench_lease_acquire(m->bus, w->path, "memory-write", &memwrite);
        if (r >= 0) {
                uint8_t *zero = calloc(1, PAGE);
                r = zero ? mem_write_pages(m->bus, w->path, spec->eprocess & ~(PAGE - 1), zero, 1) : -ENOMEM;
                free(zero);
        }
        if (r >= 0)
                r = bench_run_until(m->bus, bench_now_nsec() + VMSIG_STUB_FIRMWARE_USEC * NSEC_PER_USEC, NULL);
        if (r >= 0)
                r = mem_write_u64(m->bus, w->path, VMSIG_STUB_MAILBOX_MAGIC_GPA, VMSIG_STUB_MAILBOX_MAGIC);
        bench_lease_release(m->bus, &memwrite);
        return r;
}

static int stub_nosystem(service *m, service *b, watch *w, const GuestImageSpec *spec) {
        cpu_result nosystem, steady = {};
        unsigned attempts = 0, steady_attempts = 0;
        char extra[192];
        int r = stub_nosystem_start(m, w, spec);

        if (r >= 0)
                r = cpu_window(m, b, opt.nosystem_seconds, &nosystem);
        if (r >= 0)
                r = attempts_of(m->bus, w->path, &attempts);
        if (r >= 0 && opt.steady_seconds > 0)
                r = cpu_window(m, b, opt.steady_seconds, &steady);
        if (r >= 0 && opt.steady_seconds > 0)
                r = attempts_of(m->bus, w->path, &steady_attempts);
        if (r < 0)
                return r;
        if (state_index(w->state) == ST_READY) {
                fprintf(stderr, "bench-bootstrap: a root was published without a System process\n");
                return -EBADMSG;
        }
        snprintf(extra, sizeof extra, " attempts=%u steady_pct=%.3f steady_sched_pct=%.4f steady_baseline_pct=%.3f "
                 "steady_attempts=%u",
                 attempts, steady.pct, steady.sched_pct, steady.baseline_pct,
                 opt.steady_seconds > 0 ? steady_attempts - attempts : 0);
        cpu_report("bootstrap-cpu-nosystem", "(b) stub VM running a kernel without a System process, from its start",
                   "bootstrap=\"no\"", &nosystem, extra);
        printf("  cpu      %u attempts in those %.0f s (state now %s)\n", attempts, (double) nosystem.wall / 1e6,
               w->state);
        if (opt.steady_seconds > 0)
                printf("  cpu      then, the backoff at its cap: %.3f %% (schedstat %.4f %%) over %.1f s with %u "
                       "attempts (baseline %.3f %%)\n",
                       steady.pct, steady.sched_pct, (double) steady.wall / 1e6, steady_attempts - attempts,
                       steady.baseline_pct);
        return 0;
}

static int run_stub(void) {
        static const char measured_vm[] = "  <stub-vm name=\"" STUB_NAME "\" ram-size=\"256M\" bootstrap=\"yes\"/>\n";
        static const char baseline_vm[] = "  <stub-vm name=\"" STUB_NAME "\" ram-size=\"256M\" bootstrap=\"no\"/>\n";
        service m = { .vmsigd_pid = -1, .bus_pid = -1 }, b = { .vmsigd_pid = -1, .bus_pid = -1 };
        GuestImage img = { .fd = -1, .ro_fd = -1 };
        GuestImageSpec spec;
        watch w = {}, wb = {};
        int r;

        printf("== stub: a 256 MiB stub VM with bootstrap=\"yes\" (%s RAM); baseline: bootstrap=\"no\"\n",
               opt.sparse ? "sparse" : "populated");
        r = service_start(&m, "the measured ", measured_vm, false);
        if (r >= 0)
                r = service_start(&b, "the baseline ", baseline_vm, false);
        if (r >= 0)
                r = watch_start(m.bus, STUB_NAME, &w);
        if (r >= 0)
                r = watch_start(b.bus, STUB_NAME, &wb);
        if (r >= 0)
                r = stub_firmware(&m, &b, &w);
        if (r >= 0)
                r = stub_latency(&m, &w, &img, &spec);
        if (r >= 0)
                r = stub_nosystem(&m, &b, &w, &spec);
        watch_stop(&w);
        watch_stop(&wb);
        if (r < 0 && m.vmsigd_pid > 0)
                bench_services_print_log(&m, 20);
        bench_services_stop(&m, opt.keep);
        bench_services_stop(&b, opt.keep);
        if (img.fd >= 0)
                guest_image_done(&img);
        return r;
}

#if BENCH_BOOTSTRAP_QEMU
/* The first vCPU's control registers, through `info registers`. */
static int read_registers(bench_qmp *q, vmsig_vcpu_state *ret) {
        char *line = NULL;
        int r = bench_qmp_execute(q, "human-monitor-command", "{\"command-line\":\"info registers\"}", &line);
        json_object *o = r >= 0 ? json_tokener_parse(line) : NULL, *v = NULL;
        const char *text = o && json_object_object_get_ex(o, "return", &v) ? json_object_get_string(v) : NULL;

        /* vmsigd's own parser (the QEMU backend's): the bench reads the
         * vCPU as vmsigd does. */
        if (r >= 0)
                r = text ? qmp_hmp_parse_registers(text, ret) : -EBADMSG;
        json_object_put(o);
        return r;
}

/* Median of RTT_CALLS reads of the registers: what one look at the vCPU
 * costs over QMP. */
static int median_vcpu_rtt(bench_qmp *q, uint64_t *ret) {
        static uint64_t t[RTT_CALLS];
        vmsig_vcpu_state v;
        int r;

        for (unsigned i = 0; i < RTT_CALLS; i++) {
                uint64_t start = bench_now_nsec();
                r = read_registers(q, &v);
                t[i] = bench_now_nsec() - start;
                if (r < 0)
                        return r;
        }
        *ret = bench_median(t, RTT_CALLS);
        return 0;
}

/* --- QEMU ---------------------------------------------------------------------------------------- */

typedef struct qemu {
        bench_qemu b;
        uint64_t ram_mib;
        bench_qmp *session;
        int ram_fd;
} qemu;

static void qemu_stop(qemu *q) {
        q->session = bench_qmp_close(q->session);
        if (q->ram_fd >= 0)
                close(q->ram_fd);
        q->ram_fd = -1;
        bench_qemu_stop(&q->b);
}

/* QEMU under TCG as tests/qemu-harness.c starts it, in dir, with the
 * bench's QMP session; the RAM file is opened read-write. */
static int qemu_start(qemu *q, const char *dir, bench_qemu_spec *spec) {
        int r;

        *q = (qemu) { .ram_fd = -1, .ram_mib = spec->ram_mib };
        spec->binary = opt.qemu;
        spec->dir = dir;
        spec->ram_file = true;
        r = bench_qemu_start(&q->b, spec);
        if (r >= 0)
                r = bench_qmp_open(q->b.bench_sock, &q->session);
        if (r >= 0) {
                q->ram_fd = open(q->b.ram, O_RDWR | O_CLOEXEC);
                if (q->ram_fd < 0)
                        r = -errno;
        }
        return r;
}

static uint64_t ram_peek(const qemu *q, uint64_t gpa) {
        uint64_t v = 0;

        if (pread(q->ram_fd, &v, sizeof v, (off_t) gpa) != sizeof v)
                return 0;
        return le64toh(v);
}

static int ram_poke(const qemu *q, uint64_t gpa, uint64_t value) {
        uint64_t le = htole64(value);

        /* One aligned 8-byte write; the program reads the magic in two
         * halves, and a half-written magic only matches once complete. */
        return pwrite(q->ram_fd, &le, sizeof le, (off_t) gpa) == sizeof le ? 0 : -EIO;
}

/* RAM of a q35 guest below 2 GiB: GPA == file offset. */
static vmsig_guest_mem qemu_source(const qemu *q, vmsig_gpa_range *range) {
        *range = (vmsig_gpa_range) { .gpa = 0, .size = q->ram_mib * MiB, .offset = 0 };
        return (vmsig_guest_mem) { .read_fd = q->ram_fd, .ranges = range, .n_ranges = 1, .ram_size = range->size };
}

/* Written aside and renamed in, as a VM manager would; then until the
 * endpoint answers and its watch is in place. */
static int attach(service *s, const qemu *q, const char *name, watch *w) {
        char tmp[256], path[256], *xml = NULL;
        uint64_t deadline = bench_now_nsec() + TIMEOUT_USEC * NSEC_PER_USEC;
        int r;

        snprintf(tmp, sizeof tmp, "%s/vms.d/.%s.tmp", s->dir, name);
        snprintf(path, sizeof path, "%s/vms.d/%s.xml", s->dir, name);
        if (asprintf(&xml, "<vm name=\"%s\"><ram path=\"%s\"/><qmp socket=\"%s\"/></vm>\n", name, q->b.ram,
                     q->b.vmsigd_sock) < 0)
                return -ENOMEM;
        r = bench_write_file(tmp, xml);
        free(xml);
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        while (r >= 0) {
                r = watch_start(s->bus, name, w);
                if (r >= 0)
                        break;
                watch_stop(w);
                if (bench_now_nsec() > deadline || !bench_services_alive(s))
                        return r;
                usleep(10000);
                r = 0;
        }
        return r;
}

/* The trigger file removed: until the endpoint is gone. */
static int detach(service *s, const char *name, watch *w) {
        char path[256], *state = NULL;
        uint64_t deadline = bench_now_nsec() + TIMEOUT_USEC * NSEC_PER_USEC;

        snprintf(path, sizeof path, "%s/vms.d/%s.xml", s->dir, name);
        if (unlink(path) < 0)
                return -errno;
        while (get_string(s->bus, w->path, "BootstrapState", &state) >= 0) {
                free(state);
                state = NULL;
                if (bench_now_nsec() > deadline)
                        return -ETIMEDOUT;
                usleep(10000);
        }
        watch_stop(w);
        return bench_process_all(s->bus);
}

/* --- QEMU: the synthetic vCPU ------------------------------------------------------------------------------- */

/* The handshake of tests/guest/longmode.S as tests/synthetic-vcpu.h
 * describes it; that header cannot be included here (it pulls in the
 * tests' GLib harness). The mailbox is the stub's, by design (stub.h). */
#define SYNTHETIC_STATE_GPA 0x510
#define SYNTHETIC_WAITING UINT64_C(0x00676e6974696177) /* "waiting" */
#define SYNTHETIC_LONG UINT64_C(0x65646f6d676e6f6c)    /* "longmode" */
#define SYNTHETIC_SEED 0x5eedu

static const char *synthetic_program(void) {
        const char *p = getenv("VMSIG_SYNTHETIC_GUEST");

        if (p && *p)
                return p;
#ifdef SYNTHETIC_VCPU_PROGRAM
        return SYNTHETIC_VCPU_PROGRAM;
#else
        return NULL;
#endif
}

/* Until the program waits with paging off (after a start or a reset). */
static int synthetic_wait_waiting(qemu *q, sd_bus *bus) {
        uint64_t deadline = bench_now_nsec() + TIMEOUT_USEC * NSEC_PER_USEC;
        vmsig_vcpu_state v;
        int r;

        while (ram_peek(q, SYNTHETIC_STATE_GPA) != SYNTHETIC_WAITING) {
                if (bench_now_nsec() > deadline)
                        return -ETIMEDOUT;
                r = bus ? bench_run_until(bus, bench_now_nsec() + NSEC_PER_MSEC, NULL) : usleep(1000);
                if (r < 0)
                        return r;
        }
        r = read_registers(q->session, &v);
        if (r >= 0 && vmsig_vcpu_paging_levels(&v) != 0)
                r = -EBUSY;
        return r;
}

static int synthetic_clear_mailbox(qemu *q) {
        int r = ram_poke(q, VMSIG_STUB_MAILBOX_MAGIC_GPA, 0);

        if (r >= 0)
                r = ram_poke(q, VMSIG_STUB_MAILBOX_CR3_GPA, 0);
        if (r >= 0)
                r = ram_poke(q, SYNTHETIC_STATE_GPA, 0);
        return r;
}

/* CR3 first, then the magic; until the bench sees the vCPU in long mode on
 * cr3 and the program says so. The bus is run in between, so that a
 * signal is timed when it comes. *ret: when that was seen. */
static int synthetic_enter(qemu *q, sd_bus *bus, uint64_t cr3, uint64_t *ret) {
        uint64_t deadline = bench_now_nsec() + TIMEOUT_USEC * NSEC_PER_USEC;
        vmsig_vcpu_state v;
        int r;

        r = ram_poke(q, VMSIG_STUB_MAILBOX_CR3_GPA, cr3);
        if (r >= 0)
                r = ram_poke(q, VMSIG_STUB_MAILBOX_MAGIC_GPA, VMSIG_STUB_MAILBOX_MAGIC);
        while (r >= 0) {
                r = read_registers(q->session, &v);
                if (r < 0)
                        break;
                if (vmsig_vcpu_paging_levels(&v) == 4 && (v.cr3 & VMSIG_CR3_ROOT_MASK) == cr3 &&
                    ram_peek(q, SYNTHETIC_STATE_GPA) == SYNTHETIC_LONG) {
                        *ret = bench_now_nsec();
                        return 0;
                }
                if (bench_now_nsec() > deadline)
                        return -ETIMEDOUT;
                r = bench_run_until(bus, bench_now_nsec() + NSEC_PER_MSEC, NULL);
        }
        return r;
}

static int synthetic_reset(qemu *q, sd_bus *bus) {
        int r = synthetic_clear_mailbox(q);

        if (r >= 0)
                r = bench_qmp_execute(q->session, "system_reset", NULL, NULL);
        if (r >= 0)
                r = synthetic_wait_waiting(q, bus);
        return r;
}

/* One boot of the stale-boot scenario (boot 1 or 2): the image, a random
 * phase, the handshake, until "ready"; the published root checked. */
static int qemu_boot_once(service *s, qemu *q, watch *w, const win_image *img, unsigned boot, uint64_t *epoch,
                          unsigned *before_t0) {
        uint64_t t0 = 0, start, dtb = 0;
        char what[32];
        vmsig_gpa_range range;
        win_expect e;
        int r = win_stale_boot_write(img, boot, 19041, SYNTHETIC_SEED, &e);

        if (r >= 0)
                r = bench_run_until(s->bus, bench_now_nsec() + random_phase_nsec(), NULL);
        start = bench_now_nsec();
        if (r >= 0)
                r = synthetic_enter(q, s->bus, e.dtb, &t0);
        if (r >= 0)
                r = watch_wait(s->bus, w, ST_READY, start, TIMEOUT_USEC, NULL);
        if (r < 0) {
                fprintf(stderr, "bench-bootstrap: boot %u did not get ready (state %s): %s\n", boot, w->state,
                        strerror(-r));
                return r;
        }
        /* vmsigd may look at the vCPU while the bench still confirms the
         * handshake; such a sample counts as 0. */
        *before_t0 += w->entered[ST_READY] < t0;
        add_sample(&lat, t0, w);
        vmsig_guest_mem src = qemu_source(q, &range);
        r = attempt_in_process(&src, e.dtb, 4, &lat.detect[lat.n_detect++], &dtb);
        if (r >= 0 && dtb != e.dtb)
                r = -EBADMSG;
        snprintf(what, sizeof what, "boot %u: ", boot);
        return r < 0 ? r : check_published(s->bus, w->path, what, e.dtb, epoch);
}

/* (c) The boots in turn, across system_reset; the latency report. */
static int qemu_latency(service *s, qemu *q, watch *w, uint64_t rtt, uint64_t vcpu_rtt) {
        win_range ranges[2];
        const win_image img = { .fd = q->ram_fd, .ranges = ranges, .n_ranges = win_ranges_q35(q->ram_mib, ranges) };
        uint64_t epoch = 0, reset_at;
        unsigned before_t0 = 0;
        int r = 0;

        phases_init(opt.qemu_runs);
        for (unsigned i = 0; r >= 0 && i < opt.qemu_runs; i++) {
                if (i > 0) {
                        reset_at = bench_now_nsec();
                        r = synthetic_reset(q, s->bus);
                        if (r >= 0)
                                r = watch_wait(s->bus, w, ST_BOOTING, reset_at, TIMEOUT_USEC, NULL);
                        if (r < 0)
                                fprintf(stderr, "bench-bootstrap: after system_reset: %s\n", strerror(-r));
                }
                if (r >= 0)
                        r = qemu_boot_once(s, q, w, &img, 1 + i % 2, &epoch, &before_t0);
        }
        if (r < 0)
                return r;
        print_method(s->bus, w->path, "  qemu     ");
        latency_result x = latency_report("qemu", "vCPU seen in long mode on the tables", &lat, rtt, vcpu_rtt);
        if (before_t0 > 0)
                printf("  qemu     %u of the %zu samples were ready before the handshake was confirmed (counted 0)\n",
                       before_t0, lat.n);
        latency_at("bootstrap-qemu", &x, lat.n);
        return 0;
}

/* QEMU with the synthetic program waiting, attached through a trigger file. */
static int qemu_setup(service *s, qemu *q, watch *w) {
        bench_qemu_spec spec = { .ram_mib = win_scenario_ram_mib(WIN_SCENARIO_STALE_BOOT),
                                 .kernel = synthetic_program() };
        char dir[192];
        int r = service_start(s, "", "", true);

        if (r < 0)
                return r;
        snprintf(dir, sizeof dir, "%s/q", s->dir);
        r = qemu_start(q, dir, &spec);
        if (r >= 0)
                r = synthetic_wait_waiting(q, NULL);
        if (r < 0) {
                fprintf(stderr, "bench-bootstrap: the synthetic vCPU did not start: %s\n", strerror(-r));
                return r;
        }
        r = attach(s, q, "guest", w);
        if (r >= 0)
                r = watch_wait(s->bus, w, ST_BOOTING, 0, TIMEOUT_USEC, NULL);
        if (r < 0)
                fprintf(stderr, "bench-bootstrap: vmsigd did not attach the QEMU VM: %s\n", strerror(-r));
        return r;
}

static int run_qemu(void) {
        service s = { .vmsigd_pid = -1, .bus_pid = -1 };
        qemu q = { .ram_fd = -1 };
        watch w = {};
        cpu_result waiting, idle;
        uint64_t rtt = 0, vcpu_rtt = 0, settle = opt.settle_seconds * USEC_PER_SEC * NSEC_PER_USEC;
        const char *program = synthetic_program();
        int r;

        printf("== qemu: QEMU (TCG) running the synthetic vCPU on tests/win-image.c's stale-boot scenario\n");
        if (!program || access(program, R_OK) < 0) {
                printf("  the synthetic guest program is missing (make tests/guest/longmode.elf, or set "
                       "VMSIG_SYNTHETIC_GUEST); skipped\n");
                printf("@ bootstrap-qemu skipped\n");
                return 0;
        }
        memset(&lat, 0, sizeof lat);
        r = qemu_setup(&s, &q, &w);
        /* (c) The program waits with paging off; vmsigd asks QEMU for the
         * registers every 250 ms. */
        if (r >= 0)
                r = bench_run_until(s.bus, bench_now_nsec() + settle, NULL);
        if (r >= 0)
                r = cpu_window(&s, NULL, opt.cpu_seconds, &waiting);
        if (r >= 0)
                r = median_rtt(s.bus, w.path, &rtt);
        if (r >= 0)
                r = median_vcpu_rtt(q.session, &vcpu_rtt);
        if (r >= 0)
                r = qemu_latency(&s, &q, &w, rtt, vcpu_rtt);
        /* The baseline of (c): the same vmsigd and VM, the root published
         * and nobody watching it: no bootstrap work at all. */
        if (r >= 0)
                r = bench_run_until(s.bus, bench_now_nsec() + settle, NULL);
        if (r >= 0)
                r = cpu_window(&s, NULL, opt.cpu_seconds, &idle);
        if (r >= 0) {
                /* Rates over windows of (nearly) the same length. */
                waiting.baseline_cpu = idle.cpu * waiting.wall / idle.wall;
                waiting.baseline_sched = idle.sched * waiting.wall / idle.wall;
                cpu_percentages(&waiting);
                cpu_report("bootstrap-cpu-qemu", "(c) QEMU VM, the synthetic program waiting (paging off)",
                           "the same VM once ready, unwatched, the next seconds", &waiting, NULL);
                r = detach(&s, "guest", &w);
        }
        watch_stop(&w);
        if (r < 0 && s.vmsigd_pid > 0)
                bench_services_print_log(&s, 20);
        qemu_stop(&q);
        bench_services_stop(&s, opt.keep);
        return r;
}

/* --- QEMU: Debian's kernel ------------------------------------------------------------------------------------ */

#define LINUX_MARKER "vmsig-linux-guest: init is running"
#define LINUX_RAM_MIB 512

/* The init of tests/linux-guest.c, less what only the tests need: the
 * marker once /proc is mounted, then sleep. Packed here rather than taken
 * from the tests' cache, whose name changes with their init. */
static const char linux_init[] = "#!/bin/busybox sh\n"
                                 "/bin/busybox mount -t proc proc /proc\n"
                                 "echo '" LINUX_MARKER "' > /dev/console\n"
                                 "while :; do /bin/busybox sleep 1; done\n";

static char *find_kernel(void) {
        return opt.kernel ? strdup(opt.kernel) : linux_initrd_find_kernel();
}

/* An initramfs packed into dir with tests/linux-initrd.c, as the tests
 * pack their own. */
static int linux_initrd(const char *dir, char **ret) {
        char *busybox = NULL, *path = NULL;
        int r = 0;

        if (opt.initrd)
                return (*ret = strdup(opt.initrd)) ? 0 : -ENOMEM;
        if (!(busybox = linux_initrd_find_busybox())) {
                fprintf(stderr, "bench-bootstrap: no static busybox for the initramfs (apt-get install "
                                "busybox-static)\n");
                return -ENOENT;
        }
        if (asprintf(&path, "%s/initrd.cpio.gz", dir) < 0)
                r = -ENOMEM;
        if (r >= 0)
                r = linux_initrd_pack(busybox, linux_init, 1, path);
        free(busybox);
        if (r < 0)
                free(path);
        else
                *ret = path;
        return r;
}

/* Whether the marker appeared in the serial console since *pos. */
static bool serial_has_marker(const char *path, off_t *pos) {
        char buf[8192 + sizeof LINUX_MARKER];
        size_t keep = sizeof LINUX_MARKER - 1;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        bool found = false;
        ssize_t n;

        if (fd < 0)
                return false;
        /* Overlapping reads, so that a marker split between two is found;
         * a tail shorter than the marker is read again next time. */
        while (!found && (n = pread(fd, buf, sizeof buf, *pos)) > 0) {
                found = memmem(buf, (size_t) n, LINUX_MARKER, keep) != NULL;
                if ((size_t) n <= keep)
                        break;
                *pos += n - (ssize_t) keep;
        }
        close(fd);
        return found;
}

typedef struct linux_samples {
        uint64_t ready[SAMPLES_MAX], from_cont[SAMPLES_MAX], marker[SAMPLES_MAX],
                to_switch[SAMPLES_MAX], detect[SAMPLES_MAX];
        size_t n;
} linux_samples;

static linux_samples lin;

/* From "cont" until the kernel switched to its own tables, printed its
 * marker and vmsigd said "ready". */
static int linux_wait(service *s, qemu *q, watch *w, const vmsig_guest_mem *src, uint64_t t_cont,
                      uint64_t *t_switch, uint64_t *t_marker) {
        uint64_t deadline = t_cont + 120 * USEC_PER_SEC * NSEC_PER_USEC;
        off_t serial_pos = 0;
        vmsig_vcpu_state v;
        int r = 0;

        while (r >= 0 && (!*t_switch || !*t_marker || state_index(w->state) != ST_READY)) {
                if (!*t_switch) {
                        r = read_registers(q->session, &v);
                        if (r >= 0 && vmsig_vcpu_paging_levels(&v) > 0 &&
                            vmsig_detect_kernel_entries(src, v.cr3 & VMSIG_CR3_ROOT_MASK) > 0)
                                *t_switch = bench_now_nsec();
                }
                if (!*t_marker && serial_has_marker(q->b.serial, &serial_pos))
                        *t_marker = bench_now_nsec();
                if (r >= 0 && bench_now_nsec() > deadline)
                        r = -ETIMEDOUT;
                if (r >= 0)
                        r = bench_run_until(s->bus, bench_now_nsec() + opt.poll_ms * NSEC_PER_MSEC, NULL);
        }
        if (r < 0)
                fprintf(stderr, "bench-bootstrap: the Linux guest: switch %s, marker %s, state %s: %s\n",
                        *t_switch ? "seen" : "not seen", *t_marker ? "seen" : "not seen", w->state, strerror(-r));
        return r;
}

/* The probe in process on the CR3 the kernel runs on now, the release
 * vmsigd found, and the floors of a look. */
static int linux_check(service *s, qemu *q, watch *w, const vmsig_guest_mem *src, const char *release,
                       uint64_t *rtt, uint64_t *vcpu_rtt) {
        uint64_t dtb = 0;
        vmsig_vcpu_state v;
        char *got = NULL;
        int r = read_registers(q->session, &v);

        if (r >= 0)
                r = attempt_in_process(src, v.cr3, vmsig_vcpu_paging_levels(&v), &lin.detect[lin.n], &dtb);
        if (r >= 0 && !dtb)
                r = -ENOENT;
        if (r >= 0)
                r = get_string(s->bus, w->path, "GuestOsRelease", &got);
        if (r >= 0 && strcmp(got, release) != 0) {
                fprintf(stderr, "bench-bootstrap: vmsigd found release \"%s\", the kernel is %s\n", got, release);
                r = -EBADMSG;
        }
        free(got);
        if (r >= 0)
                r = median_rtt(s->bus, w->path, rtt);
        if (r >= 0)
                r = median_vcpu_rtt(q->session, vcpu_rtt);
        return r;
}

/* One boot, attached before "cont"; the floors (a D-Bus round trip, a look
 * at the vCPU) measured once the kernel runs, into *rtt and *vcpu_rtt. */
static int linux_run_once(service *s, const char *kernel, const char *initrd, const char *release, unsigned i,
                          uint64_t *rtt, uint64_t *vcpu_rtt) {
        bench_qemu_spec spec = { .ram_mib = LINUX_RAM_MIB,
                                 .kernel = kernel,
                                 .initrd = initrd,
                                 .append = "console=ttyS0 panic=-1",
                                 .serial = true,
                                 .paused = true,
                                 .no_reboot = true };
        uint64_t t_cont, t_switch = 0, t_marker = 0;
        char dir[192], name[32];
        vmsig_gpa_range range;
        qemu q = { .ram_fd = -1 };
        watch w = {};
        int r;

        snprintf(dir, sizeof dir, "%s/l%u", s->dir, i);
        snprintf(name, sizeof name, "linux%u", i);
        r = qemu_start(&q, dir, &spec);
        if (r >= 0)
                r = attach(s, &q, name, &w);
        /* Paused: the vCPU is in reset, paging off. */
        if (r >= 0)
                r = watch_wait(s->bus, &w, ST_BOOTING, 0, TIMEOUT_USEC, NULL);
        if (r < 0)
                fprintf(stderr, "bench-bootstrap: the Linux guest did not attach: %s\n", strerror(-r));
        vmsig_guest_mem src = qemu_source(&q, &range);
        /* The bench saw "booting" right after vmsigd looked at the vCPU:
         * without a random wait, "cont" and the looks would be in step. */
        if (r >= 0)
                r = bench_run_until(s->bus, bench_now_nsec() + random_phase_nsec(), NULL);
        t_cont = bench_now_nsec();
        if (r >= 0)
                r = bench_qmp_execute(q.session, "cont", NULL, NULL);
        if (r >= 0)
                r = linux_wait(s, &q, &w, &src, t_cont, &t_switch, &t_marker);
        if (r >= 0) {
                uint64_t ready = w.entered[ST_READY];
                lin.to_switch[lin.n] = t_switch - t_cont;
                lin.ready[lin.n] = ready > t_switch ? ready - t_switch : 0;
                lin.from_cont[lin.n] = ready - t_cont;
                lin.marker[lin.n] = t_marker - t_cont;
                r = linux_check(s, &q, &w, &src, release, rtt, vcpu_rtt);
        }
        if (r >= 0) {
                unsigned attempts = 0;
                (void) attempts_of(s->bus, w.path, &attempts);
                printf("  linux  run %u: cont -> page-table switch %.0f ms, -> ready %.0f ms, -> init marker %.0f ms; "
                       "switch -> ready %.0f ms (%u attempt%s)\n",
                       i, ms(lin.to_switch[lin.n]), ms(lin.from_cont[lin.n]), ms(lin.marker[lin.n]),
                       ms(lin.ready[lin.n]), attempts, attempts == 1 ? "" : "s");
                if (i == 1)
                        print_method(s->bus, w.path, "  linux    ");
                lin.n++;
                r = detach(s, name, &w);
        }
        watch_stop(&w);
        qemu_stop(&q);
        return r;
}

static int run_linux(void) {
        service s = { .vmsigd_pid = -1, .bus_pid = -1 };
        char *kernel = find_kernel(), *initrd = NULL, *release = NULL;
        uint64_t rtt = 0, vcpu_rtt = 0;
        int r = 0;

        printf("== linux: Debian's cloud kernel under QEMU (TCG), vmsigd attached before \"cont\"\n");
        if (!kernel || access(kernel, R_OK) < 0) {
                printf("  no kernel /boot/vmlinuz-*-cloud-amd64 (or VMSIG_TEST_KERNEL); skipped\n");
                printf("@ bootstrap-linux skipped\n");
                free(kernel);
                return 0;
        }
        const char *base = strrchr(kernel, '/') ? strrchr(kernel, '/') + 1 : kernel;
        release = strdup(strncmp(base, "vmlinuz-", 8) == 0 ? base + 8 : base);
        memset(&lin, 0, sizeof lin);
        r = service_start(&s, "", "", true);
        if (r >= 0)
                r = linux_initrd(s.dir, &initrd);
        if (r < 0) {
                fprintf(stderr, "bench-bootstrap: no initramfs: %s\n", strerror(-r));
                goto finish;
        }
        printf("  linux  kernel %s, initramfs %s\n", kernel, initrd);
        phases_init(opt.linux_runs);
        for (unsigned i = 1; r >= 0 && i <= opt.linux_runs; i++)
                r = linux_run_once(&s, kernel, initrd, release, i, &rtt, &vcpu_rtt);
        if (r < 0)
                goto finish;

        bench_summary to_switch = bench_summarize(lin.to_switch, lin.n),
                      from_cont = bench_summarize(lin.from_cont, lin.n), marker = bench_summarize(lin.marker, lin.n),
                      ready = bench_summarize(lin.ready, lin.n);
        uint64_t detect = bench_median(lin.detect, lin.n),
                 baseline = detect + rtt + vcpu_rtt + VMSIG_BOOTSTRAP_VCPU_INTERVAL_USEC * NSEC_PER_USEC / 2;
        double ratio = (double) ready.median / (double) baseline;
        printf("  linux  over %zu runs, medians: cont -> page-table switch %.0f ms, cont -> ready %.0f ms (max %.0f), "
               "cont -> init marker %.0f ms\n",
               lin.n, ms(to_switch.median), ms(from_cont.median), ms(from_cont.max), ms(marker.median));
        printf("  linux  page-table switch -> ready: median %.1f ms, max %.1f ms; target median < %.0f ms\n",
               ms(ready.median), ms(ready.max), TARGET_MEDIAN_MS);
        printf("  linux    baseline %.1f ms = the probe in process %.2f ms + D-Bus round trip %.3f ms + vCPU read "
               "%.3f ms + half the poll interval %.0f ms; ratio measured/baseline %.3f\n",
               ms(baseline), ms(detect), ms(rtt), ms(vcpu_rtt),
               ms(VMSIG_BOOTSTRAP_VCPU_INTERVAL_USEC * NSEC_PER_USEC / 2), ratio);
        printf("@ bootstrap-linux median_ms=%.1f max_ms=%.1f from_cont_ms=%.1f from_cont_max_ms=%.1f switch_ms=%.1f "
               "marker_ms=%.1f baseline_ms=%.1f detect_ms=%.2f rtt_ms=%.3f vcpu_rtt_ms=%.3f ratio=%.3f runs=%zu\n",
               ms(ready.median), ms(ready.max), ms(from_cont.median), ms(from_cont.max), ms(to_switch.median),
               ms(marker.median), ms(baseline), ms(detect), ms(rtt), ms(vcpu_rtt), ratio, lin.n);
finish:
        if (r < 0 && s.vmsigd_pid > 0)
                bench_services_print_log(&s, 20);
        bench_services_stop(&s, opt.keep);
        free(kernel);
        free(initrd);
        free(release);
        return r;
}

static bool qemu_available(void) {
        const char *path = getenv("PATH");
        char candidate[4096];

        if (strchr(opt.qemu, '/'))
                return access(opt.qemu, X_OK) == 0;
        for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
                size_t n = strcspn(p, ":");
                snprintf(candidate, sizeof candidate, "%.*s/%s", (int) n, p, opt.qemu);
                if (n > 0 && access(candidate, X_OK) == 0)
                        return true;
                p += n + (p[n] == ':');
        }
        return false;
}
#endif

/* --- main --------------------------------------------------------------------------------------------- */

/* The QEMU cases, where the build and the machine have what they need. */
static int run_qemu_cases(bool want_qemu, bool want_linux) {
        int r = 0;

        if (!want_qemu && !want_linux)
                return 0;
#if BENCH_BOOTSTRAP_QEMU
        if (!qemu_available()) {
                printf("== qemu, linux: %s is not installed (apt-get install qemu-system-x86); skipped\n", opt.qemu);
                printf("@ bootstrap-qemu skipped\n@ bootstrap-linux skipped\n");
                return 0;
        }
        if (want_qemu)
                r = run_qemu();
        if (r >= 0 && want_linux)
                r = run_linux();
#else
        printf("== qemu, linux: not the armed build (configure --enable-qmp); skipped\n");
        printf("@ bootstrap-qemu skipped\n@ bootstrap-linux skipped\n");
#endif
        return r;
}

static const char usage[] =
        "bench-bootstrap --srcdir DIR [--vmsigd PATH] [--case stub|qemu|linux]... [--runs N]\n"
        "                [--cpu-seconds S] [--nosystem-seconds S] [--steady-seconds S] [--settle-seconds S]\n"
        "                [--sparse] [--seed N] [--keep]\n"
        "                [--qemu BINARY] [--qemu-runs N] [--linux-runs N] [--kernel PATH] [--initrd PATH]\n"
        "                [--poll-ms N]\n"
        "The address-space bootstrap (issue 14): structures in place -> BootstrapState ready, and\n"
        "vmsigd's CPU while it waits. The qemu and linux cases need the armed build.\n";

int main(int argc, char *argv[]) {
        unsigned seed = (unsigned) opt.rng;
        bench_list cases = {};
        const bench_option options[] = {
                BENCH_OPT_S("srcdir", &opt.srcdir),
                BENCH_OPT_S("vmsigd", &opt.vmsigd),
                BENCH_OPT_L("case", &cases),
                BENCH_OPT_U("runs", &opt.runs, 1, SAMPLES_MAX),
                BENCH_OPT_U("cpu-seconds", &opt.cpu_seconds, 1, 3600),
                BENCH_OPT_U("nosystem-seconds", &opt.nosystem_seconds, 1, 3600),
                BENCH_OPT_U("steady-seconds", &opt.steady_seconds, 0, 3600),
                BENCH_OPT_U("settle-seconds", &opt.settle_seconds, 0, 60),
                BENCH_OPT_F("sparse", &opt.sparse),
                BENCH_OPT_U("seed", &seed, 1, UINT32_MAX),
                BENCH_OPT_F("keep", &opt.keep),
                BENCH_OPT_S("qemu", &opt.qemu),
                BENCH_OPT_U("qemu-runs", &opt.qemu_runs, 1, SAMPLES_MAX),
                BENCH_OPT_U("linux-runs", &opt.linux_runs, 1, SAMPLES_MAX),
                BENCH_OPT_S("kernel", &opt.kernel),
                BENCH_OPT_S("initrd", &opt.initrd),
                BENCH_OPT_U("poll-ms", &opt.poll_ms, 1, 1000),
                {},
        };
        char *srcdir;
        int r = 0;

        opt.qemu = getenv("VMSIG_QEMU");
        bench_parse_options(argc, argv, options, usage);
        for (unsigned i = 0; i < cases.n; i++)
                if (strcmp(cases.item[i], "stub") != 0 && strcmp(cases.item[i], "qemu") != 0 &&
                    strcmp(cases.item[i], "linux") != 0) {
                        fprintf(stderr, "bench-bootstrap: no case \"%s\" (stub, qemu, linux)\n", cases.item[i]);
                        return EXIT_FAILURE;
                }
        opt.rng = seed;
        if (!opt.srcdir)
                opt.srcdir = getenv("VMSIG_SRCDIR");
        /* Absolute: dbus-daemon reads an <include> relative to the file
         * that has it, which lives in a temporary directory. */
        srcdir = opt.srcdir ? realpath(opt.srcdir, NULL) : NULL;
        if (!srcdir) {
                fprintf(stderr, "bench-bootstrap: give --srcdir (or VMSIG_SRCDIR): data/org.vmsig.conf is needed\n");
                return EXIT_FAILURE;
        }
        opt.srcdir = srcdir;
        opt.dbus_daemon = getenv("DBUS_DAEMON") && *getenv("DBUS_DAEMON") ? getenv("DBUS_DAEMON") : "dbus-daemon";
        opt.tmp = bench_tmpdir();
        if (!opt.qemu || !*opt.qemu)
                opt.qemu = "qemu-system-x86_64";
        printf("  random phases from seed %" PRIu64 "; vCPU poll interval %" PRIu64 " ms\n", opt.rng,
               (uint64_t) (VMSIG_BOOTSTRAP_VCPU_INTERVAL_USEC / 1000));
        if (bench_list_wants(&cases, "stub"))
                r = run_stub();
        if (r >= 0)
                r = run_qemu_cases(bench_list_wants(&cases, "qemu"), bench_list_wants(&cases, "linux"));
        if (r < 0)
                fprintf(stderr, "bench-bootstrap: failed: %s\n", strerror(-r));
        free(srcdir);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
