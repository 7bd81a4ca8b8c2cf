/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Event sources made to sleep: added off, and enabled by whoever has work
 * for them. Header-only, so any layer (the plugins included) may use it. */
#pragma once

#include <time.h>
#include <systemd/sd-event.h>

static inline int event_add_defer_off(sd_event *e, sd_event_source **ret, sd_event_handler_t cb, void *userdata) {
        int r = sd_event_add_defer(e, ret, cb, userdata);

        return r < 0 ? r : sd_event_source_set_enabled(*ret, SD_EVENT_OFF);
}

static inline int event_add_post_off(sd_event *e, sd_event_source **ret, sd_event_handler_t cb, void *userdata) {
        int r = sd_event_add_post(e, ret, cb, userdata);

        return r < 0 ? r : sd_event_source_set_enabled(*ret, SD_EVENT_OFF);
}

/* A CLOCK_MONOTONIC timer usec from now, at the default accuracy. */
static inline int event_add_timer_off(sd_event *e, sd_event_source **ret, uint64_t usec, sd_event_time_handler_t cb,
                                      void *userdata) {
        int r = sd_event_add_time_relative(e, ret, CLOCK_MONOTONIC, usec, 0, cb, userdata);

        return r < 0 ? r : sd_event_source_set_enabled(*ret, SD_EVENT_OFF);
}
