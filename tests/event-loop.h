/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Driving an sd-event loop from an in-process test. */

#include <glib.h>
#include <stdint.h>
#include <systemd/sd-event.h>
#include <time.h>

static inline uint64_t vt_now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* Runs the loop for usec, whatever happens. */
static inline void vt_event_run_for(sd_event *event, uint64_t usec) {
        uint64_t end = vt_now_usec() + usec;

        for (uint64_t now; (now = vt_now_usec()) < end;)
                g_assert_cmpint(sd_event_run(event, end - now), >=, 0);
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
