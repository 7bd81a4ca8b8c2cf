/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bootstrap.h"
#include "detect-linux.h"
#include "log.h"
#include "macro.h"
#include "string-table.h"
#include "time-util.h"
#include "vmsig-endpoint.h"

/* Without registers: the System EPROCESSes of the last attempt, to see
 * which of them change. More than a few means RAM full of copies. */
#define SEEN_MAX 8

/* A CR3 not tried before starts an attempt at once, but only this many
 * times since the vCPU last had paging off: a guest whose OS is not found
 * switches address spaces all the time and must not be scanned for each. */
#define CR3_TRIGGERS_MAX 8

typedef struct seen_eprocess {
        uint64_t gpa, dtb, fingerprint;
} seen_eprocess;

/* A vCPU read in flight. It outlives the bootstrap if need be: the host
 * completes it later, and finds b NULL. */
typedef struct vcpu_read {
        vmsig_bootstrap *b;
        uint64_t generation;
} vcpu_read;

struct vmsig_bootstrap {
        vmsig_endpoint *endpoint; /* not a reference: we live in its adapter */
        vmsig_memctx_source *source;
        vmsig_bootstrap_config config;
        int timer_fd;
        vmsig_cookie cookie;
        vmsig_bootstrap_state state;
        unsigned attempts;
        /* Attempts since the vCPU last started running something new: the
         * backoff starts over then, since a kernel that just took over
         * builds its structures within the next second or so. */
        unsigned backoff_step;
        uint64_t started_usec;
        /* Bumped on every (re)start: an answer about the vCPU of before is
         * no answer about the guest of now. */
        uint64_t generation;
        vcpu_read *reading;
        bool no_registers; /* the host cannot tell: liveness is shown by change */
        bool reported_failure;

        /* Before ready. */
        bool paging_was_off;      /* since the last attempt */
        unsigned cr3_triggers;    /* attempts a new CR3 started since then */
        uint64_t last_cr3;        /* of the last attempt */
        uint64_t next_attempt_usec;
        uint64_t cr3;             /* the vCPU's, for the running attempt; 0 without registers */
        vmsig_detect_scan *scan;  /* the EPROCESS scan in progress */
        vmsig_linux_probe *probe; /* the Linux probe in progress */
        uint64_t attempt_cpu_usec; /* what the running (or last) attempt cost so far */
        uint64_t kernel_hint;     /* the low stub's, if any */
        seen_eprocess seen[SEEN_MAX], now[SEEN_MAX];
        size_t n_seen, n_now;

        /* Ready: what confirmed the root, to check it again. */
        vmsig_memctx_root root;
        vmsig_detect_result windows;
        vmsig_linux_result linux_found;
        vmsig_demand_watch *demand;
        vmsig_subscriber *lease_sub;
};

static const char *const vmsig_bootstrap_state_table[_VMSIG_BOOTSTRAP_STATE_MAX] = {
        [VMSIG_BOOTSTRAP_IDLE] = "idle",
        [VMSIG_BOOTSTRAP_SEARCHING] = "searching",
        [VMSIG_BOOTSTRAP_RETRYING] = "retrying",
        [VMSIG_BOOTSTRAP_READY] = "ready",
        [VMSIG_BOOTSTRAP_ERROR] = "error",
        [VMSIG_BOOTSTRAP_BOOTING] = "booting",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(vmsig_bootstrap_state, vmsig_bootstrap_state);

static int publish_state(vmsig_endpoint *ep, const vmsig_bootstrap_payload *p) {
        return vmsig_core_publish(vmsig_endpoint_get_core(ep), VMSIG_KIND_BOOTSTRAP, vmsig_endpoint_get_id(ep), 0, p,
                                  sizeof *p);
}

int vmsig_bootstrap_publish_fixed(vmsig_endpoint *ep, vmsig_bootstrap_state state, uint64_t dtb) {
        vmsig_bootstrap_payload p = {
                .state = state,
                .dtb = dtb,
                .witnesses = state == VMSIG_BOOTSTRAP_READY ? VMSIG_WITNESS_CONFIG : 0,
        };
        return publish_state(ep, &p);
}

const vmsig_bootstrap_payload *vmsig_bootstrap_get(vmsig_core *c, vmsig_id endpoint) {
        const vmsig_event *e = vmsig_core_get_retained(c, endpoint, VMSIG_KIND_BOOTSTRAP, 0);
        return e ? e->payload : NULL;
}

/* Publishes the state; the same state with the same count again is no
 * news (the vCPU is looked at every 250 ms while a guest boots). */
static void set_state(vmsig_bootstrap *b, vmsig_bootstrap_state state) {
        vmsig_bootstrap_payload p = { .state = state, .attempts = b->attempts, .os = b->config.guest_os };
        const vmsig_bootstrap_payload *old = vmsig_bootstrap_get(vmsig_endpoint_get_core(b->endpoint),
                                                                 vmsig_endpoint_get_id(b->endpoint));

        if (state == VMSIG_BOOTSTRAP_READY) {
                p.dtb = b->root.dtb;
                p.witnesses = b->root.witnesses;
                p.os = b->root.os;
                if (b->root.os == VMSIG_GUEST_OS_LINUX)
                        snprintf(p.release, sizeof p.release, "%s", b->linux_found.release);
                else
                        snprintf(p.release, sizeof p.release, "%u", b->windows.build);
        }
        b->state = state;
        if (old && state != VMSIG_BOOTSTRAP_READY && old->state == state && old->attempts == p.attempts)
                return;
        (void) publish_state(b->endpoint, &p);
}

/* The timer: relative usec from now; 0 disarms. */
static int arm(vmsig_bootstrap *b, uint64_t usec) {
        return usec > 0 ? timerfd_arm_usec(b->timer_fd, usec, 0) : timerfd_disarm(b->timer_fd);
}

/* Due "now": the loop runs everything else that is ready first. */
static int arm_now(vmsig_bootstrap *b) {
        return timerfd_arm_usec(b->timer_fd, 0, 0);
}

uint64_t vmsig_bootstrap_backoff_usec(const vmsig_bootstrap_config *c, unsigned step, uint32_t rnd) {
        uint64_t d = c->backoff_initial_usec;

        assert(c);
        for (unsigned i = 1; i < step && d < c->backoff_max_usec; i++)
                d *= 2;
        d = d - d / 4 + (d / 2) * (rnd % 1001) / 1000;
        return MIN(d, c->backoff_max_usec);
}

/* The CPU this thread used, to charge an attempt for its scan. */
static uint64_t cpu_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* The wait is never shorter than VMSIG_BOOTSTRAP_CPU_SHARE times what the
 * last attempt cost: scanning a guest that touched all its RAM costs more
 * with its size, while the backoff does not grow with it. The cap still
 * bounds the wait. */
static uint64_t backoff(const vmsig_bootstrap *b) {
        uint32_t rnd = 0;
        uint64_t d;

        (void) !getrandom(&rnd, sizeof rnd, GRND_NONBLOCK);
        d = vmsig_bootstrap_backoff_usec(&b->config, b->backoff_step, rnd);
        d = MAX(d, MIN(b->attempt_cpu_usec, UINT64_MAX / VMSIG_BOOTSTRAP_CPU_SHARE) * VMSIG_BOOTSTRAP_CPU_SHARE);
        return MIN(d, b->config.backoff_max_usec);
}

/* The guest RAM the detectors read (they never write). */
static vmsig_guest_mem mem_of(const vmsig_bootstrap *b) {
        const vmsig_memctx_source *s = b->source;
        return (vmsig_guest_mem) {
                .read_fd = s->ram_fd,
                .ranges = s->ranges,
                .n_ranges = s->n_ranges,
                .ram_size = s->ram_size,
        };
}

/* --- the vCPU ------------------------------------------------------------------ */

static void on_vcpu(const vmsig_result *result, const vmsig_vcpu_state *vcpu, void *userdata);

static void no_registers(vmsig_bootstrap *b) {
        if (!b->no_registers)
                log_info("The host of '%s' cannot tell the vCPU's registers: a root is published once seen "
                         "changing as a running kernel's does.", vmsig_endpoint_get_name(b->endpoint));
        b->no_registers = true;
}

/* Asks the host for the vCPU; the answer comes to on_vcpu(). -EOPNOTSUPP
 * if the host cannot tell. */
static int read_vcpu(vmsig_bootstrap *b) {
        vcpu_read *rd;
        int r;

        if (b->no_registers || !vmsig_endpoint_can_read_vcpu(b->endpoint))
                return -EOPNOTSUPP;
        if (b->reading) /* the answer in flight will do */
                return 0;
        rd = calloc(1, sizeof *rd);
        if (!rd)
                return -ENOMEM;
        *rd = (vcpu_read) { .b = b, .generation = b->generation };
        r = vmsig_endpoint_read_vcpu(b->endpoint, on_vcpu, rd);
        if (r < 0) {
                free(rd);
                return r;
        }
        b->reading = rd;
        return 0;
}

static void forget_vcpu_read(vmsig_bootstrap *b) {
        if (b->reading)
                b->reading->b = NULL; /* freed by on_vcpu() when the host answers */
        b->reading = NULL;
}

/* Whether the vCPU runs on the kernel of root: its table maps the same
 * kernel half (any process's does). With page-table isolation a CR3 may
 * hold a user root, which maps little of it: then the kernel root 4 KiB
 * below it is the one to compare. */
static bool vcpu_runs_on(vmsig_bootstrap *b, uint64_t cr3, uint64_t root) {
        vmsig_guest_mem mem = mem_of(b);
        uint64_t page = cr3 & VMSIG_CR3_ROOT_MASK;

        if (vmsig_detect_same_kernel(&mem, page, root) > 0)
                return true;
        return (page & VMSIG_PTI_USER_OFFSET) && vmsig_detect_same_kernel(&mem, page & ~VMSIG_PTI_PAIR_MASK, root) > 0;
}

/* --- ready --------------------------------------------------------------------- */

static void restart(vmsig_bootstrap *b);

static bool watched(vmsig_bootstrap *b) {
        vmsig_core *c = vmsig_endpoint_get_core(b->endpoint);

        return vmsig_core_kind_wanted(c, VMSIG_KIND_MEMCTX, vmsig_endpoint_get_id(b->endpoint)) ||
               vmsig_endpoint_lease_get(b->endpoint, VMSIG_LEASE_MEMWRITE);
}

/* While ready, the timer is the revalidation's, and runs only while
 * someone relies on the root. */
static void update_revalidation(vmsig_bootstrap *b) {
        if (b->state != VMSIG_BOOTSTRAP_READY)
                return;
        (void) arm(b, watched(b) ? b->config.revalidate_usec : 0);
}

static void withdraw(vmsig_bootstrap *b, const char *why) {
        char dtb[32];

        snprintf(dtb, sizeof dtb, "0x%" PRIx64, b->root.dtb);
        log_warning("The address-space root %s of '%s' failed its check (%s): withdrawn, looking again.", dtb,
                    vmsig_endpoint_get_name(b->endpoint), why);
        (void) vmsig_memctx_source_new_epoch(b->source, b->endpoint);
        restart(b);
}

/* The RAM half of the check: the structures that confirmed the root are
 * still there and still say the same. */
static bool ram_confirms(vmsig_bootstrap *b) {
        vmsig_guest_mem mem = mem_of(b);

        if (b->root.os == VMSIG_GUEST_OS_LINUX)
                return vmsig_linux_check(&mem, &b->linux_found) > 0;
        return vmsig_detect_eprocess_verify(&mem, &b->windows) > 0;
}

/* Paging on is not enough: a boot loader or a kernel decompressor runs on
 * an identity map, with nothing in the kernel half. */
static bool runs_a_kernel(vmsig_bootstrap *b, const vmsig_vcpu_state *vcpu) {
        vmsig_guest_mem mem = mem_of(b);

        return vmsig_vcpu_paging_levels(vcpu) > 0 &&
               vmsig_detect_kernel_entries(&mem, vcpu->cr3 & VMSIG_CR3_ROOT_MASK) > 0;
}

/* A vCPU caught in user mode under page-table isolation (Linux's PTI,
 * Windows' KVA shadow) runs on a user root that maps only a sliver of the
 * kernel half: it tells nothing about which kernel runs. */
static bool on_user_root(vmsig_bootstrap *b, uint64_t cr3, uint64_t root) {
        vmsig_guest_mem mem = mem_of(b);
        int user = vmsig_detect_kernel_entries(&mem, cr3 & VMSIG_CR3_ROOT_MASK),
            kernel = vmsig_detect_kernel_entries(&mem, root);

        return user > 0 && kernel > 0 && user * 2 < kernel;
}

static void revalidate_vcpu(vmsig_bootstrap *b, const vmsig_vcpu_state *vcpu) {
        if (!runs_a_kernel(b, vcpu))
                return withdraw(b, "the vCPU runs no kernel: the guest is rebooting");
        if (!vcpu_runs_on(b, vcpu->cr3, b->root.dtb) && !on_user_root(b, vcpu->cr3, b->root.dtb))
                return withdraw(b, "the vCPU runs on another kernel's tables");
        update_revalidation(b);
}

static void revalidate(vmsig_bootstrap *b) {
        int r;

        if (!ram_confirms(b))
                return withdraw(b, "its structures in RAM changed");
        r = read_vcpu(b);
        if (r == -EOPNOTSUPP)
                no_registers(b);
        if (r < 0)
                update_revalidation(b);
}

int vmsig_bootstrap_verify(vmsig_bootstrap *b) {
        assert(b);
        if (b->state != VMSIG_BOOTSTRAP_READY)
                return 0;
        if (!ram_confirms(b)) {
                withdraw(b, "its structures in RAM changed");
                return 0;
        }
        return 1;
}

/* Someone starts relying on the root: check it now, not in 2 s, since
 * nobody checked it while nobody watched. */
static void check_soon(vmsig_bootstrap *b) {
        if (b->state == VMSIG_BOOTSTRAP_READY)
                (void) arm_now(b);
}

static void on_demand(vmsig_core *c, uint32_t kind, vmsig_id endpoint, bool wanted, void *userdata) {
        if (wanted)
                check_soon(userdata);
        else
                update_revalidation(userdata);
}

static int on_lease(vmsig_subscriber *sub, const vmsig_delivery *d, void *userdata) {
        const vmsig_lease_payload *p = d->event->payload;

        if (!d->replay && p->class == VMSIG_LEASE_MEMWRITE && p->change == VMSIG_LEASE_ACQUIRED)
                check_soon(userdata);
        else
                update_revalidation(userdata);
        return VMSIG_DELIVER_OK;
}

/* --- attempts ------------------------------------------------------------------- */

static void stop_attempt(vmsig_bootstrap *b) {
        b->scan = vmsig_detect_scan_free(b->scan);
        b->probe = vmsig_linux_probe_free(b->probe);
}

static void succeed(vmsig_bootstrap *b, const vmsig_memctx_root *root) {
        char witnesses[VMSIG_WITNESSES_STRING_MAX];
        int r;

        stop_attempt(b);
        b->root = *root;
        r = vmsig_memctx_source_set_root(b->source, b->endpoint, root);
        if (r < 0)
                log_warning_errno(r, "Cannot publish the memory context of '%s': %m",
                                  vmsig_endpoint_get_name(b->endpoint));
        log_info("Found the %s root of '%s' at 0x%" PRIx64 " (%s) after %u attempts in %" PRIu64 " ms.",
                 vmsig_guest_os_to_string(root->os), vmsig_endpoint_get_name(b->endpoint), root->dtb,
                 vmsig_witnesses_to_string(root->witnesses, witnesses, sizeof witnesses), b->attempts,
                 (now_usec() - b->started_usec) / 1000);
        set_state(b, VMSIG_BOOTSTRAP_READY);
        update_revalidation(b);
}

static void succeed_windows(vmsig_bootstrap *b, const vmsig_detect_result *found, uint32_t witnesses) {
        vmsig_memctx_root root = {
                .dtb = found->dtb,
                .kernel_hint = b->kernel_hint,
                .levels = 4,
                .os = VMSIG_GUEST_OS_WINDOWS,
                .witnesses = VMSIG_WITNESS_EPROCESS | VMSIG_WITNESS_SELF_REF | witnesses,
        };

        b->windows = *found;
        succeed(b, &root);
}

static void succeed_linux(vmsig_bootstrap *b, const vmsig_linux_result *found) {
        vmsig_memctx_root root = {
                .dtb = found->root,
                .kernel_hint = found->banner_va,
                .levels = found->levels,
                .os = VMSIG_GUEST_OS_LINUX,
                .witnesses = VMSIG_WITNESS_CR3 | VMSIG_WITNESS_BANNER,
        };

        b->linux_found = *found;
        succeed(b, &root);
}

/* A booting guest is the normal case, not a fault: say so once. With
 * registers the vCPU is looked at again before the next attempt is due. */
static void fail(vmsig_bootstrap *b, const char *why) {
        uint64_t delay = backoff(b);

        stop_attempt(b);
        b->next_attempt_usec = now_usec() + delay;
        if (!b->reported_failure)
                log_info("No address-space root in the RAM of '%s' yet (%s); the guest may still be booting, "
                         "retrying in the background.",
                         vmsig_endpoint_get_name(b->endpoint), why);
        else
                log_debug("Bootstrap attempt %u of '%s' found nothing (%s); next in %" PRIu64 " ms.", b->attempts,
                          vmsig_endpoint_get_name(b->endpoint), why, delay / 1000);
        b->reported_failure = true;
        set_state(b, VMSIG_BOOTSTRAP_RETRYING);
        (void) arm(b, b->no_registers ? delay : MIN(delay, b->config.vcpu_interval_usec));
}

static void start_windows_scan(vmsig_bootstrap *b) {
        vmsig_guest_mem mem = mem_of(b);
        int r;

        if (b->config.guest_os == VMSIG_GUEST_OS_LINUX)
                return fail(b, b->cr3 ? "no Linux banner under the vCPU's CR3"
                                      : "a Linux guest needs the vCPU's registers, which the host cannot read");
        b->n_now = 0;
        r = vmsig_detect_scan_new(&mem, &b->scan);
        if (r < 0)
                return fail(b, strerror(-r));
        (void) arm_now(b);
}

/* Without registers: a System EPROCESS seen by the previous attempt at the
 * same place with other contents belongs to a running kernel. */
static bool seen_changing(vmsig_bootstrap *b, const seen_eprocess *e) {
        for (size_t i = 0; i < b->n_seen; i++)
                if (b->seen[i].gpa == e->gpa && b->seen[i].dtb == e->dtb && b->seen[i].fingerprint != e->fingerprint)
                        return true;
        return false;
}

/* A verified System EPROCESS: the live one, or a copy to go past. */
static void on_eprocess(vmsig_bootstrap *b, const vmsig_detect_result *found) {
        vmsig_guest_mem mem = mem_of(b);
        seen_eprocess e = { .gpa = found->eprocess_gpa, .dtb = found->dtb };

        if (b->cr3) {
                if (vcpu_runs_on(b, b->cr3, found->dtb))
                        return succeed_windows(b, found, VMSIG_WITNESS_CR3);
                log_debug("The System EPROCESS at 0x%" PRIx64 " of '%s' names DTB 0x%" PRIx64 ", which the vCPU "
                          "does not run on: left by an earlier boot?",
                          found->eprocess_gpa, vmsig_endpoint_get_name(b->endpoint), found->dtb);
        } else if (vmsig_detect_eprocess_fingerprint(&mem, found, &e.fingerprint) >= 0) {
                if (seen_changing(b, &e))
                        return succeed_windows(b, found, VMSIG_WITNESS_LIVE);
                if (b->n_now < SEEN_MAX)
                        b->now[b->n_now++] = e;
        }
        vmsig_detect_scan_resume(b->scan);
        (void) arm_now(b);
}

static void scan_done(vmsig_bootstrap *b, int r) {
        bool candidates = b->n_now > 0;

        memcpy(b->seen, b->now, sizeof b->seen);
        b->n_seen = b->n_now;
        if (r != -ENOENT)
                return fail(b, strerror(-r));
        if (b->cr3)
                return fail(b, "no System process the vCPU runs on");
        fail(b, candidates ? "a System process, not seen running yet" : "no System process");
}

static void step_once(vmsig_bootstrap *b);

/* One step of whatever the attempt is doing, charged to it (the step that
 * ends it is decided before its charge, a millisecond at most); the rest
 * comes on later iterations. */
static void step(vmsig_bootstrap *b) {
        uint64_t t0 = cpu_usec();

        step_once(b);
        b->attempt_cpu_usec += cpu_usec() - t0;
}

/* The Linux probe ended without a find: no banner (-ENOENT) leaves the
 * Windows scan to try, anything else is a failure. */
static void probe_done(vmsig_bootstrap *b, int r) {
        b->probe = vmsig_linux_probe_free(b->probe);
        if (r != -ENOENT)
                return fail(b, strerror(-r));
        start_windows_scan(b);
}

/* The probe and the scan step alike: 1 found, 0 not yet, <0 ended. */
static void step_once(vmsig_bootstrap *b) {
        vmsig_linux_result linux_found;
        vmsig_detect_result found;
        int r;

        if (b->probe)
                r = vmsig_linux_probe_step(b->probe, b->config.scan_budget, &linux_found);
        else
                r = vmsig_detect_scan_step(b->scan, b->config.scan_budget, &found);
        if (r == 0) /* the next step on the next iteration */
                (void) arm_now(b);
        else if (b->probe && r > 0)
                succeed_linux(b, &linux_found);
        else if (b->probe)
                probe_done(b, r);
        else if (r > 0)
                on_eprocess(b, &found);
        else
                scan_done(b, r);
}

/* An attempt on the RAM as it is now; cr3 is the vCPU's (0: unknown). */
static void attempt(vmsig_bootstrap *b, uint64_t cr3, unsigned levels) {
        vmsig_guest_mem mem = mem_of(b);
        vmsig_detect_result stub;
        int r;

        b->attempts++;
        b->backoff_step++;
        b->attempt_cpu_usec = 0;
        b->cr3 = cr3;
        b->last_cr3 = cr3;
        b->paging_was_off = false;
        set_state(b, VMSIG_BOOTSTRAP_SEARCHING);
        if (b->attempts <= b->config.fail_first)
                return fail(b, "fail injection");

        /* The low stub names no root we trust (it may be the boot
         * loader's), but its kernel entry hint is worth keeping. */
        r = vmsig_detect_low_stub(&mem, &stub);
        if (r < 0)
                return fail(b, strerror(-r));
        b->kernel_hint = r > 0 ? stub.kernel_hint : 0;

        if (cr3 && b->config.guest_os != VMSIG_GUEST_OS_WINDOWS) {
                r = vmsig_linux_probe_new(&mem, cr3, levels, &b->probe);
                if (r < 0)
                        return fail(b, strerror(-r));
                (void) arm_now(b);
                return;
        }
        start_windows_scan(b);
}

/* Whether the vCPU as it is now calls for an attempt before the backoff
 * says so: it just left the firmware, or runs on tables not tried yet. */
static bool attempt_due(vmsig_bootstrap *b, uint64_t cr3, uint64_t now) {
        if (b->paging_was_off) {
                b->backoff_step = 0;
                return true;
        }
        if (cr3 != b->last_cr3 && b->cr3_triggers < CR3_TRIGGERS_MAX) {
                b->cr3_triggers++;
                b->backoff_step = 0;
                return true;
        }
        return now >= b->next_attempt_usec;
}

static void on_vcpu(const vmsig_result *result, const vmsig_vcpu_state *vcpu, void *userdata) {
        vcpu_read *rd = userdata;
        vmsig_bootstrap *b = rd->b;
        unsigned levels;

        free(rd);
        if (!b)
                return;
        b->reading = NULL;
        if (result->error == -EOPNOTSUPP) {
                no_registers(b);
                if (b->state == VMSIG_BOOTSTRAP_READY)
                        return update_revalidation(b);
                return attempt(b, 0, 0);
        }
        if (result->error < 0) {
                /* The host is away for now (reconnecting): ask later. */
                log_debug("Cannot read the vCPU of '%s': %s", vmsig_endpoint_get_name(b->endpoint),
                          result->message ?: strerror(-result->error));
                if (b->state == VMSIG_BOOTSTRAP_READY)
                        return update_revalidation(b);
                (void) arm(b, b->config.vcpu_interval_usec);
                return;
        }
        if (b->state == VMSIG_BOOTSTRAP_READY)
                return revalidate_vcpu(b, vcpu);

        levels = vmsig_vcpu_paging_levels(vcpu);
        if (!runs_a_kernel(b, vcpu)) {
                /* Firmware, boot loader, decompressor: RAM may hold
                 * anything, the previous boot's kernel included. */
                b->paging_was_off = true;
                b->cr3_triggers = 0;
                set_state(b, VMSIG_BOOTSTRAP_BOOTING);
                (void) arm(b, b->config.vcpu_interval_usec);
                return;
        }
        uint64_t now = now_usec();
        if (attempt_due(b, vcpu->cr3, now))
                return attempt(b, vcpu->cr3, levels);
        if (b->state == VMSIG_BOOTSTRAP_BOOTING)
                set_state(b, VMSIG_BOOTSTRAP_RETRYING);
        (void) arm(b, MIN(b->config.vcpu_interval_usec, b->next_attempt_usec - now));
}

/* Looks at the vCPU first where the host can tell; the answer decides. */
static void tick(vmsig_bootstrap *b) {
        int r;

        if (b->reading)
                return;
        r = read_vcpu(b);
        if (r == -EOPNOTSUPP) {
                no_registers(b);
                return attempt(b, 0, 0);
        }
        if (r < 0) {
                log_debug_errno(r, "Cannot ask for the vCPU of '%s': %m", vmsig_endpoint_get_name(b->endpoint));
                (void) arm(b, b->config.vcpu_interval_usec);
        }
}

static void on_timer(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        vmsig_bootstrap *b = userdata;
        uint64_t expirations;

        (void) !read(fd, &expirations, sizeof expirations);
        if (b->scan || b->probe)
                step(b);
        else if (b->state == VMSIG_BOOTSTRAP_READY)
                revalidate(b);
        else
                tick(b);
}

/* --- life cycle ------------------------------------------------------------------ */

static void restart(vmsig_bootstrap *b) {
        stop_attempt(b);
        forget_vcpu_read(b);
        b->generation++;
        b->attempts = 0;
        b->backoff_step = 0;
        b->reported_failure = false;
        b->paging_was_off = false;
        b->cr3_triggers = 0;
        b->last_cr3 = 0;
        b->next_attempt_usec = 0;
        b->n_seen = b->n_now = 0;
        b->root = (vmsig_memctx_root) {};
        b->started_usec = now_usec();
        set_state(b, VMSIG_BOOTSTRAP_SEARCHING);
        (void) arm_now(b);
}

int vmsig_bootstrap_new(vmsig_endpoint *ep, vmsig_memctx_source *source, const vmsig_bootstrap_config *config,
                        vmsig_bootstrap **ret) {
        vmsig_core *c = vmsig_endpoint_get_core(ep);
        vmsig_filter leases = { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_LEASE), .endpoint = vmsig_endpoint_get_id(ep),
                                .passive = true };
        vmsig_bootstrap *b;
        int r;

        assert(ep && source && ret);
        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->endpoint = ep;
        b->source = source;
        b->timer_fd = -1;
        if (config)
                b->config = *config;
        if (!b->config.backoff_initial_usec)
                b->config.backoff_initial_usec = VMSIG_BOOTSTRAP_BACKOFF_INITIAL_USEC;
        if (!b->config.backoff_max_usec)
                b->config.backoff_max_usec = VMSIG_BOOTSTRAP_BACKOFF_MAX_USEC;
        b->config.backoff_max_usec = MAX(b->config.backoff_max_usec, b->config.backoff_initial_usec);
        if (!b->config.vcpu_interval_usec)
                b->config.vcpu_interval_usec = VMSIG_BOOTSTRAP_VCPU_INTERVAL_USEC;
        if (!b->config.revalidate_usec)
                b->config.revalidate_usec = VMSIG_BOOTSTRAP_REVALIDATE_USEC;
        if (b->config.scan_budget < VMSIG_DETECT_SCAN_MIN_BUDGET)
                b->config.scan_budget = VMSIG_DETECT_SCAN_BUDGET_DEFAULT;
        if ((unsigned) b->config.guest_os >= _VMSIG_GUEST_OS_MAX)
                b->config.guest_os = VMSIG_GUEST_OS_UNKNOWN;

        b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        r = b->timer_fd < 0 ? -errno : 0;
        if (r >= 0)
                r = vmsig_endpoint_add_fd(ep, b->timer_fd, EPOLLIN, on_timer, b, &b->cookie);
        if (r < 0) {
                safe_close(b->timer_fd);
                free(b);
                return r;
        }
        /* Who relies on the root: memctx subscribers, the memory-write
         * lease. */
        r = vmsig_core_watch_demand(c, VMSIG_KIND_MEMCTX, vmsig_endpoint_get_id(ep), on_demand, b, &b->demand);
        if (r >= 0)
                r = vmsig_core_subscribe(c, &leases, 0, on_lease, b, &b->lease_sub);
        if (r < 0) {
                vmsig_bootstrap_free(b);
                return r;
        }
        *ret = b;
        return 0;
}

int vmsig_bootstrap_start(vmsig_bootstrap *b) {
        assert(b);
        restart(b);
        return 0;
}

int vmsig_bootstrap_restart(vmsig_endpoint *ep, vmsig_memctx_source *source, const vmsig_bootstrap_config *config,
                            vmsig_bootstrap **b) {
        int r;

        assert(ep && source && b);
        if (!*b && !config)
                return vmsig_bootstrap_publish_fixed(ep, VMSIG_BOOTSTRAP_IDLE, 0);
        if (!*b) {
                r = vmsig_bootstrap_new(ep, source, config, b);
                if (r < 0)
                        return r;
        }
        return vmsig_bootstrap_start(*b);
}

int vmsig_bootstrap_guest_reset(vmsig_endpoint *ep, vmsig_memctx_source *source,
                                const vmsig_bootstrap_config *config, vmsig_bootstrap **b) {
        assert(ep && source && b);
        (void) vmsig_memctx_source_new_epoch(source, ep);
        return vmsig_bootstrap_restart(ep, source, config, b);
}

vmsig_bootstrap *vmsig_bootstrap_free(vmsig_bootstrap *b) {
        if (!b)
                return NULL;
        stop_attempt(b);
        forget_vcpu_read(b);
        b->demand = vmsig_demand_watch_free(b->demand);
        b->lease_sub = vmsig_subscriber_free(b->lease_sub);
        /* Unregister before closing: epoll must not see a recycled fd. */
        if (b->timer_fd >= 0)
                (void) vmsig_endpoint_remove_fd(b->endpoint, b->cookie);
        safe_close(b->timer_fd);
        return mfree(b);
}

vmsig_bootstrap_state vmsig_bootstrap_get_state(const vmsig_bootstrap *b) {
        return b->state;
}

unsigned vmsig_bootstrap_get_attempts(const vmsig_bootstrap *b) {
        return b->attempts;
}
