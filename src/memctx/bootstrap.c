/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bootstrap.h"
#include "log.h"
#include "macro.h"

struct vmsig_bootstrap {
        vmsig_endpoint *endpoint; /* not a reference: we live in its adapter */
        vmsig_memctx_source *source;
        vmsig_bootstrap_config config;
        int timer_fd;
        vmsig_cookie cookie;
        vmsig_bootstrap_state state;
        unsigned attempts;
        uint64_t started_usec;
        vmsig_detect_scan *scan;     /* a full scan in progress */
        bool pml4_scanning;          /* the cheap PML4 scan is in progress */
        uint64_t pml4_cursor;        /* where it goes on */
        vmsig_detect_result cheap;   /* what the cheap paths found this attempt */
        bool reported_failure;       /* the one diagnostic line was logged */
};

static const char *const state_names[_VMSIG_BOOTSTRAP_STATE_MAX] = {
        [VMSIG_BOOTSTRAP_IDLE] = "idle",
        [VMSIG_BOOTSTRAP_SEARCHING] = "searching",
        [VMSIG_BOOTSTRAP_RETRYING] = "retrying",
        [VMSIG_BOOTSTRAP_READY] = "ready",
        [VMSIG_BOOTSTRAP_ERROR] = "error",
};

const char *vmsig_bootstrap_state_to_string(vmsig_bootstrap_state s) {
        return (unsigned) s < _VMSIG_BOOTSTRAP_STATE_MAX ? state_names[s] : NULL;
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static int publish_state(vmsig_endpoint *ep, const vmsig_bootstrap_payload *p) {
        return vmsig_core_publish(vmsig_endpoint_get_core(ep), VMSIG_KIND_BOOTSTRAP, vmsig_endpoint_get_id(ep), 0, p,
                                  sizeof *p);
}

int vmsig_bootstrap_publish_fixed(vmsig_endpoint *ep, vmsig_bootstrap_state state, uint64_t dtb) {
        vmsig_bootstrap_payload p = { .state = state, .dtb = dtb };
        return publish_state(ep, &p);
}

const vmsig_bootstrap_payload *vmsig_bootstrap_get(vmsig_core *c, vmsig_id endpoint) {
        const vmsig_event *e = vmsig_core_get_retained(c, endpoint, VMSIG_KIND_BOOTSTRAP, 0);
        return e ? e->payload : NULL;
}

static void set_state(vmsig_bootstrap *b, vmsig_bootstrap_state state, const vmsig_detect_result *found) {
        vmsig_bootstrap_payload p = { .state = state, .attempts = b->attempts };

        if (found) {
                p.method = found->method;
                p.dtb = found->dtb;
        }
        b->state = state;
        (void) publish_state(b->endpoint, &p);
}

/* The timer: relative usec from now; 0 disarms. A due time of "now" is
 * 1 ns, so the loop runs everything else that is ready first. */
static int arm(vmsig_bootstrap *b, uint64_t usec, bool immediately) {
        struct itimerspec its = {};

        if (immediately)
                its.it_value.tv_nsec = 1;
        else if (usec > 0) {
                its.it_value.tv_sec = (time_t) (usec / 1000000);
                its.it_value.tv_nsec = (long) (usec % 1000000) * 1000;
        }
        return timerfd_settime(b->timer_fd, 0, &its, NULL) < 0 ? -errno : 0;
}

/* Exponential from the initial delay, capped, with +-25% jitter so that
 * many VMs booting together do not scan in lockstep. */
static uint64_t backoff(const vmsig_bootstrap *b) {
        uint64_t d = b->config.backoff_initial_usec;
        uint32_t rnd = 0;

        for (unsigned i = 1; i < b->attempts && d < b->config.backoff_max_usec; i++)
                d *= 2;
        d = MIN(d, b->config.backoff_max_usec);
        (void) !getrandom(&rnd, sizeof rnd, GRND_NONBLOCK);
        return d - d / 4 + (d / 2) * (rnd % 1001) / 1000;
}

static vmsig_detect_source source_of(const vmsig_bootstrap *b) {
        const vmsig_memctx_source *s = b->source;
        return (vmsig_detect_source) {
                .fd = s->ram_fd,
                .ranges = s->ranges,
                .n_ranges = s->n_ranges,
                .ram_size = s->ram_size,
        };
}

static void succeed(vmsig_bootstrap *b, const vmsig_detect_result *found) {
        uint64_t took = now_usec() - b->started_usec;
        int r;

        b->scan = vmsig_detect_scan_free(b->scan);
        b->pml4_scanning = false;
        (void) arm(b, 0, false);
        r = vmsig_memctx_source_set_root(b->source, b->endpoint, found->dtb, found->kernel_hint, found->method);
        if (r < 0)
                log_warning_errno(r, "Cannot publish the memory context of '%s': %m",
                                  vmsig_endpoint_get_name(b->endpoint));
        log_info("Found the System DTB of '%s' at 0x%" PRIx64 " (%s) after %u attempts in %" PRIu64 " ms.",
                 vmsig_endpoint_get_name(b->endpoint), found->dtb, vmsig_detect_method_to_string(found->method),
                 b->attempts, took / 1000);
        set_state(b, VMSIG_BOOTSTRAP_READY, found);
}

/* A booting guest is the normal case, not a fault: say so once. */
static void fail(vmsig_bootstrap *b, const char *why) {
        uint64_t delay = backoff(b);

        b->scan = vmsig_detect_scan_free(b->scan);
        b->pml4_scanning = false;
        if (!b->reported_failure)
                log_info("No System DTB in the RAM of '%s' yet (%s); the guest may still be booting, retrying in "
                         "the background.",
                         vmsig_endpoint_get_name(b->endpoint), why);
        else
                log_debug("Bootstrap attempt %u of '%s' found nothing (%s); next in %" PRIu64 " ms.", b->attempts,
                          vmsig_endpoint_get_name(b->endpoint), why, delay / 1000);
        b->reported_failure = true;
        (void) arm(b, delay, false);
        set_state(b, VMSIG_BOOTSTRAP_RETRYING, NULL);
}

/* One chunk of the full scan; the rest comes on later iterations. */
static void scan_step(vmsig_bootstrap *b) {
        vmsig_detect_result found;
        int r = vmsig_detect_scan_step(b->scan, b->config.scan_budget, &found);

        if (r > 0) {
                /* The EPROCESS is the authority; keep the stub's kernel hint. */
                if (found.kernel_hint == 0)
                        found.kernel_hint = b->cheap.kernel_hint;
                return succeed(b, &found);
        }
        if (r == 0) {
                (void) arm(b, 0, true);
                return;
        }
        /* Nothing confirmed: a cheap find is still a find. */
        if (b->cheap.method != VMSIG_DETECT_NONE)
                return succeed(b, &b->cheap);
        fail(b, r == -ENOENT ? "no System process" : strerror(-r));
}

/* A cheap find is confirmed by the full scan (the stub may hold the boot
 * loader's DTB); without one, only every Nth attempt scans. */
static void after_cheap(vmsig_bootstrap *b, bool found) {
        vmsig_detect_source src = source_of(b);
        int r;

        if (!found && (b->attempts - b->config.fail_first - 1) % b->config.full_scan_every != 0)
                return fail(b, "no low stub, no PML4 below 16 MiB");
        r = vmsig_detect_scan_new(&src, &b->scan);
        if (r < 0)
                return fail(b, strerror(-r));
        scan_step(b);
}

/* One chunk of the PML4 scan of the low 16 MiB, like the full scan: a
 * guest that is all zeros (still booting) costs the loop no long stall. */
static void pml4_step(vmsig_bootstrap *b) {
        vmsig_detect_source src = source_of(b);
        int r = vmsig_detect_pml4_scan_step(&src, &b->pml4_cursor, b->config.scan_budget, &b->cheap);

        if (r == 0) {
                (void) arm(b, 0, true);
                return;
        }
        b->pml4_scanning = false;
        if (r < 0 && r != -ENOENT)
                return fail(b, strerror(-r));
        after_cheap(b, r > 0);
}

static void attempt(vmsig_bootstrap *b) {
        vmsig_detect_source src = source_of(b);
        int r;

        b->attempts++;
        set_state(b, VMSIG_BOOTSTRAP_SEARCHING, NULL);
        if (b->attempts <= b->config.fail_first)
                return fail(b, "fail injection");

        b->cheap = (vmsig_detect_result) {};
        r = vmsig_detect_low_stub(&src, &b->cheap);
        if (r < 0)
                return fail(b, strerror(-r));
        if (r > 0)
                return after_cheap(b, true);
        b->pml4_scanning = true;
        b->pml4_cursor = 0;
        pml4_step(b);
}

static void on_timer(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        vmsig_bootstrap *b = userdata;
        uint64_t expirations;

        (void) !read(fd, &expirations, sizeof expirations);
        if (b->scan)
                scan_step(b);
        else if (b->pml4_scanning)
                pml4_step(b);
        else
                attempt(b);
}

int vmsig_bootstrap_new(vmsig_endpoint *ep, vmsig_memctx_source *source, const vmsig_bootstrap_config *config,
                        vmsig_bootstrap **ret) {
        vmsig_bootstrap *b = calloc(1, sizeof *b);
        int r;

        if (!b)
                return -ENOMEM;
        b->endpoint = ep;
        b->source = source;
        if (config)
                b->config = *config;
        if (!b->config.backoff_initial_usec)
                b->config.backoff_initial_usec = VMSIG_BOOTSTRAP_BACKOFF_INITIAL_USEC;
        if (!b->config.backoff_max_usec)
                b->config.backoff_max_usec = VMSIG_BOOTSTRAP_BACKOFF_MAX_USEC;
        if (!b->config.full_scan_every)
                b->config.full_scan_every = VMSIG_BOOTSTRAP_FULL_SCAN_EVERY;
        if (b->config.scan_budget < VMSIG_DETECT_SCAN_MIN_BUDGET)
                b->config.scan_budget = VMSIG_DETECT_SCAN_BUDGET_DEFAULT;
        b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (b->timer_fd < 0) {
                r = -errno;
                free(b);
                return r;
        }
        r = vmsig_endpoint_add_fd(ep, b->timer_fd, EPOLLIN, on_timer, b, &b->cookie);
        if (r < 0) {
                safe_close(b->timer_fd);
                free(b);
                return r;
        }
        *ret = b;
        return 0;
}

int vmsig_bootstrap_start(vmsig_bootstrap *b) {
        b->scan = vmsig_detect_scan_free(b->scan);
        b->pml4_scanning = false;
        b->attempts = 0;
        b->reported_failure = false;
        b->started_usec = now_usec();
        set_state(b, VMSIG_BOOTSTRAP_SEARCHING, NULL);
        return arm(b, 0, true);
}

vmsig_bootstrap *vmsig_bootstrap_free(vmsig_bootstrap *b) {
        if (!b)
                return NULL;
        b->scan = vmsig_detect_scan_free(b->scan);
        /* Unregister before closing: epoll must not see a recycled fd. */
        (void) vmsig_endpoint_remove_fd(b->endpoint, b->cookie);
        safe_close(b->timer_fd);
        free(b);
        return NULL;
}

vmsig_bootstrap_state vmsig_bootstrap_get_state(const vmsig_bootstrap *b) {
        return b->state;
}

unsigned vmsig_bootstrap_get_attempts(const vmsig_bootstrap *b) {
        return b->attempts;
}
