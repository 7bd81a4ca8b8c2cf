/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A burst of calls (hundreds of clients, signals queued towards a busy
 * dbus-daemon) leaves the heap fragmented: freed chunks between live ones
 * keep pages resident long after the burst, and glibc only trims the top
 * of the heap by itself. So once the loop has been quiet for QUIET_USEC
 * after doing work, the heap is trimmed, once. An idle daemon stays idle:
 * the timer is armed by work and fires a single time after it. */
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>

#include "event-util.h"
#include "log.h"
#include "memory-trim.h"

#define QUIET_USEC (3 * UINT64_C(1000000))

struct memory_trim {
        sd_event_source *post;  /* runs after every iteration that did work */
        sd_event_source *timer; /* QUIET_USEC after the last such iteration */
        bool trimming;          /* the timer's own iteration is no work */
};

static int on_quiet(sd_event_source *s, uint64_t usec, void *userdata) {
        memory_trim *t = userdata;

        t->trimming = true;
        if (malloc_trim(0))
                log_debug("Gave unused heap memory back after a burst of work.");
        return 0;
}

static int on_work(sd_event_source *s, void *userdata) {
        memory_trim *t = userdata;
        int r;

        if (t->trimming) {
                t->trimming = false;
                return 0;
        }
        r = sd_event_source_set_time_relative(t->timer, QUIET_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(t->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_debug_errno(r, "Cannot arm the memory trim timer: %m");
        return 0;
}

int memory_trim_new(sd_event *event, memory_trim **ret) {
        memory_trim *t = calloc(1, sizeof *t);
        int r;

        if (!t)
                return -ENOMEM;
        r = event_add_timer_off(event, &t->timer, QUIET_USEC, on_quiet, t);
        if (r >= 0)
                r = sd_event_add_post(event, &t->post, on_work, t);
        /* Last: whatever else the iteration did has run. */
        if (r >= 0)
                r = sd_event_source_set_priority(t->post, SD_EVENT_PRIORITY_IDLE);
        if (r < 0) {
                memory_trim_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

memory_trim *memory_trim_free(memory_trim *t) {
        if (!t)
                return NULL;
        sd_event_source_disable_unref(t->post);
        sd_event_source_disable_unref(t->timer);
        return mfree(t);
}
