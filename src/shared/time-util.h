/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Time in microseconds of CLOCK_MONOTONIC, as sd-event counts it, and the
 * one way vmsigd arms a timerfd. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <sys/timerfd.h>
#include <time.h>

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define NSEC_PER_USEC UINT64_C(1000)

static inline uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static inline struct timespec timespec_from_usec(uint64_t usec) {
        return (struct timespec) {
                .tv_sec = (time_t) (usec / USEC_PER_SEC),
                .tv_nsec = (long) ((usec % USEC_PER_SEC) * NSEC_PER_USEC),
        };
}

/* Arms a one-shot timerfd: usec from now, or at usec of CLOCK_MONOTONIC
 * with TFD_TIMER_ABSTIME in flags. timerfd_settime() reads an it_value of
 * zero as "disarm", so a due time of 0 (or the epoch) is made 1 ns: it
 * fires on the next loop iteration, after whatever else is ready. Disarm
 * with timerfd_disarm(). Returns 0 or -errno. */
static inline int timerfd_arm_usec(int fd, uint64_t usec, int flags) {
        struct itimerspec its = { .it_value = timespec_from_usec(usec) };

        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
                its.it_value.tv_nsec = 1;
        return timerfd_settime(fd, flags, &its, NULL) < 0 ? -errno : 0;
}

static inline int timerfd_disarm(int fd) {
        static const struct itimerspec off = {};

        return timerfd_settime(fd, 0, &off, NULL) < 0 ? -errno : 0;
}
