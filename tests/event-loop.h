/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Driving an sd-event loop, and the core on it, from an in-process test. */

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "time-util.h"
#include "vmsig-core.h"

static inline uint64_t vt_now_usec(void) {
        return now_usec();
}

/* Runs the loop for usec, whatever happens. */
static inline void vt_event_run_for(sd_event *event, uint64_t usec) {
        uint64_t end = vt_now_usec() + usec;

        for (uint64_t now; (now = vt_now_usec()) < end;)
                g_assert_cmpint(sd_event_run(event, end - now), >=, 0);
}

/* Runs everything that is ready now, including deferred dispatch and idle
 * work; an fd that stays readable would spin, hence the bound. */
static inline void vt_event_run_pending(sd_event *event) {
        int r, n = 0;

        while ((r = sd_event_run(event, 0)) > 0)
                g_assert_cmpint(++n, <, 10000);
        g_assert_cmpint(r, ==, 0);
}

/* Runs the loop until expr holds; fails the test, naming expr, once
 * timeout_usec passed. */
#define VT_EVENT_RUN_UNTIL(event, expr, timeout_usec)                                         \
        do {                                                                                  \
                uint64_t _deadline = vt_now_usec() + (timeout_usec);                          \
                while (!(expr)) {                                                             \
                        if (vt_now_usec() > _deadline)                                        \
                                g_error("Timed out waiting for %s", #expr);                   \
                        g_assert_cmpint(sd_event_run((event), 10 * 1000), >=, 0);             \
                }                                                                             \
        } while (0)

/* Registers test fn at path on the program's Fixture, fixture_setup() and
 * fixture_teardown(), without data. */
#define VT_TEST_ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

/* The loop and the core on it, the first members of every in-process
 * fixture. */
#define VT_CORE_MEMBERS                                                                       \
        sd_event *event;                                                                      \
        vmsig_core *core

/* A new loop and a core on it, as every in-process fixture starts. */
static inline void vt_core_start(sd_event **ret_event, vmsig_core **ret_core) {
        g_assert_cmpint(sd_event_new(ret_event), >=, 0);
        g_assert_cmpint(vmsig_core_new(*ret_event, ret_core), ==, 0);
}

/* The core (with the subscribers still registered), then the loop. */
static inline void vt_core_stop(sd_event *event, vmsig_core *core) {
        vmsig_core_free(core);
        sd_event_unref(event);
}

/* How many entries the directory at path (in /proc) has. */
static inline size_t vt_dir_entries(const char *path) {
        g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
        size_t n = 0;

        g_assert_nonnull(dir);
        while (g_dir_read_name(dir))
                n++;
        return n;
}

/* How many fds process pid (0: this one) has open. */
static inline size_t vt_open_fds(pid_t pid) {
        g_autofree char *path = pid ? g_strdup_printf("/proc/%d/fd", (int) pid) : g_strdup("/proc/self/fd");

        return vt_dir_entries(path);
}

/* How many threads this process has. */
static inline unsigned vt_threads(void) {
        return (unsigned) vt_dir_entries("/proc/self/task");
}
