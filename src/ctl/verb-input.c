/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* input: keys, text and pointer motion, inside the input lease. Events are
 * (type, code, value) as InjectInput takes them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-keymap.h"
#include "ctl-lease.h"
#include "ctl-util.h"

enum {
        EVENT_KEY = 0,    /* code: qcode; value 1 down, 0 up */
        EVENT_BUTTON = 1, /* code: button; value 1 down, 0 up */
        EVENT_REL = 2,    /* code: axis; value: delta */
        EVENT_ABS = 3,    /* code: axis; value: 0..32767 */
};
enum { AXIS_X = 0, AXIS_Y = 1 };

#define EVENTS_PER_CALL 1024 /* vmsigd's limit */
#define ABS_MAX 32767

typedef struct input_event {
        uint32_t type;
        uint32_t code;
        int32_t value;
} input_event;

typedef struct event_list {
        input_event *events;
        size_t n, allocated;
} event_list;

static int add_event(event_list *l, uint32_t type, uint32_t code, int32_t value) {
        if (l->n == l->allocated) {
                size_t n = l->allocated ? l->allocated * 2 : 64;
                input_event *grown = reallocarray(l->events, n, sizeof *grown);
                if (!grown)
                        return ctl_error(-ENOMEM, "Out of memory.");
                l->events = grown;
                l->allocated = n;
        }
        l->events[l->n++] = (input_event) { type, code, value };
        return 0;
}

/* "a", "ret", or a combination such as "ctrl+alt+delete": every key goes
 * down in order, then up in reverse. */
static int add_key_combination(event_list *l, const char *spec) {
        _cleanup_free_ char *copy = strdup(spec);
        int codes[8], n = 0, r = 0;
        char *save = NULL;

        if (!copy)
                return ctl_error(-ENOMEM, "Out of memory.");
        for (char *k = strtok_r(copy, "+", &save); k; k = strtok_r(NULL, "+", &save)) {
                if (n == (int) ELEMENTSOF(codes))
                        return ctl_usage_error("Too many keys in '%s'.", spec);
                codes[n] = ctl_key_from_string(k);
                if (codes[n] < 0)
                        return ctl_usage_error("Unknown key '%s': use a QEMU key name (a, 1, ret, spc, esc, "
                                               "ctrl, shift, f1, ...) or a qcode number.", k);
                n++;
        }
        if (n == 0)
                return ctl_usage_error("Empty key '%s'.", spec);
        for (int i = 0; r >= 0 && i < n; i++)
                r = add_event(l, EVENT_KEY, (uint32_t) codes[i], 1);
        for (int i = n - 1; r >= 0 && i >= 0; i--)
                r = add_event(l, EVENT_KEY, (uint32_t) codes[i], 0);
        return r;
}

static int add_text(event_list *l, const char *text) {
        uint32_t shift = (uint32_t) ctl_key_shift();
        int r = 0;

        for (const char *p = text; r >= 0 && *p; p++) {
                bool with_shift;
                int code = ctl_key_from_char(*p, &with_shift);

                if (code < 0)
                        return ctl_usage_error("Cannot type '%c' (0x%02x): only US-keyboard ASCII.",
                                               *p >= 0x20 && *p < 0x7f ? *p : '?', (unsigned char) *p);
                if (with_shift)
                        r = add_event(l, EVENT_KEY, shift, 1);
                if (r >= 0)
                        r = add_event(l, EVENT_KEY, (uint32_t) code, 1);
                if (r >= 0)
                        r = add_event(l, EVENT_KEY, (uint32_t) code, 0);
                if (r >= 0 && with_shift)
                        r = add_event(l, EVENT_KEY, shift, 0);
        }
        return r;
}

static int add_motion(event_list *l, uint32_t type, const char *x, const char *y) {
        int32_t v[2];
        int r;

        if (ctl_parse_i32(x, &v[0]) < 0 || ctl_parse_i32(y, &v[1]) < 0)
                return ctl_usage_error("Invalid position '%s %s': expected two integers.", x, y);
        if (type == EVENT_ABS && (v[0] < 0 || v[0] > ABS_MAX || v[1] < 0 || v[1] > ABS_MAX))
                return ctl_usage_error("Absolute positions go from 0 to %d.", ABS_MAX);
        r = add_event(l, type, AXIS_X, v[0]);
        return r < 0 ? r : add_event(l, type, AXIS_Y, v[1]);
}

/* QEMU's InputButton order. */
static const char *const buttons[] = { "left", "middle", "right", "wheel-up", "wheel-down", "side", "extra" };

static int add_click(event_list *l, const char *button) {
        uint64_t code = ELEMENTSOF(buttons);
        int r;

        for (size_t i = 0; i < ELEMENTSOF(buttons); i++)
                if (strcmp(buttons[i], button) == 0)
                        code = i;
        if (code == ELEMENTSOF(buttons) && (ctl_parse_u64(button, &code) < 0 || code > UINT32_MAX))
                return ctl_usage_error("Unknown button '%s': left, middle, right, wheel-up, wheel-down, side, "
                                       "extra or a number.", button);
        r = add_event(l, EVENT_BUTTON, (uint32_t) code, 1);
        return r < 0 ? r : add_event(l, EVENT_BUTTON, (uint32_t) code, 0);
}

static int parse_events(int argc, char **argv, event_list *l) {
        const char *what = argv[2];
        int n_args = argc - 3, r = 0;

        if (strcmp(what, "key") == 0) {
                if (n_args < 1)
                        return ctl_usage_error("'input NAME key' needs at least one KEY.");
                for (int i = 3; r >= 0 && i < argc; i++)
                        r = add_key_combination(l, argv[i]);
                return r;
        }
        if (strcmp(what, "type") == 0) {
                if (n_args != 1)
                        return ctl_usage_error("'input NAME type' takes one TEXT (quote it).");
                return add_text(l, argv[3]);
        }
        if (strcmp(what, "move") == 0 || strcmp(what, "abs") == 0) {
                if (n_args != 2)
                        return ctl_usage_error("'input NAME %s' takes X and Y (after -- if negative).", what);
                return add_motion(l, what[0] == 'm' ? EVENT_REL : EVENT_ABS, argv[3], argv[4]);
        }
        if (strcmp(what, "click") == 0) {
                if (n_args > 1)
                        return ctl_usage_error("'input NAME click' takes at most one BUTTON.");
                return add_click(l, n_args == 1 ? argv[3] : "left");
        }
        return ctl_usage_error("Unknown input '%s': key, type, move, abs or click.", what);
}

static int inject(sd_bus *bus, const char *path, const input_event *events, size_t n, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, "InjectInput");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(uui)");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(m, "(uui)", events[i].type, events[i].code, events[i].value);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r < 0 ? r : sd_bus_call(bus, m, 0, error, NULL);
}

static int send_events(sd_bus *bus, const char *name, const char *path, const event_list *l) {
        _cleanup_(ctl_lease_releasep) ctl_lease *lease = NULL;
        int r;

        r = ctl_lease_acquire(bus, name, path, "input", &lease);
        if (r < 0)
                return r;
        /* Long text takes several calls; each is sent in order. */
        for (size_t off = 0; off < l->n; off += EVENTS_PER_CALL) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                r = inject(bus, path, l->events + off, MIN((size_t) EVENTS_PER_CALL, l->n - off), &error);
                if (r < 0)
                        return ctl_bus_error(&error, r, "Failed to send input to '%s'", name);
        }
        return arg.keep_lease ? ctl_lease_hold(lease, false) : 0;
}

int verb_input(int argc, char **argv) {
        _cleanup_free_ char *path = NULL;
        event_list l = {};
        sd_bus *bus;
        int r;

        r = parse_events(argc, argv, &l);
        if (r >= 0 && l.n == 0)
                r = ctl_usage_error("Nothing to send.");
        if (r >= 0)
                r = ctl_open_endpoint(argv[1], false, &bus, &path);
        if (r >= 0)
                r = send_events(bus, argv[1], path, &l);
        free(l.events);
        return r;
}
