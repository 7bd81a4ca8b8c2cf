/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "macro.h"
#include "qmp-input.h"
#include "qmp.h"

/* From BTN_LEFT on, in evdev order. */
static const char *const buttons[] = { "left", "right", "middle", "side", "extra" };
static const char *const axes[] = { "x", "y" };

enum { REL_WHEEL = 2 };

const char *vmsig_qmp_qcode_to_name(uint32_t code) {
        return key_name(code);
}

int vmsig_qmp_qcode_from_name(const char *name) {
        return key_from_name(name);
}

static bool event_is_valid(const vmsig_input_event *ev) {
        bool updown = ev->value == 0 || ev->value == 1;

        switch (ev->type) {
        case VMSIG_INPUT_KEY:
                return updown && vmsig_qmp_qcode_to_name(ev->code);
        case VMSIG_INPUT_BUTTON:
                return updown && ev->code < ELEMENTSOF(buttons);
        case VMSIG_INPUT_REL:
                if (ev->code == REL_WHEEL)
                        return ev->value >= -VMSIG_QMP_WHEEL_MAX && ev->value <= VMSIG_QMP_WHEEL_MAX;
                return ev->code < ELEMENTSOF(axes);
        case VMSIG_INPUT_ABS:
                return ev->code < ELEMENTSOF(axes) && ev->value >= 0 && ev->value <= 32767;
        default:
                return false;
        }
}

/* {"type": type, "data": data} appended to the array; takes data. */
static int add_event(json_object *array, const char *type, json_object *data) {
        json_object *ev = json_object_new_object();

        if (!ev || !data || json_object_object_add(ev, "type", json_object_new_string(type)) < 0 ||
            json_object_object_add(ev, "data", TAKE_PTR(data)) < 0 || json_object_array_add(array, ev) < 0) {
                json_object_put(data);
                json_object_put(ev);
                return -ENOMEM;
        }
        return 0;
}

static json_object *key_data(uint32_t code, bool down) {
        json_object *data = json_object_new_object(), *key = json_object_new_object();

        if (!data || !key || json_object_object_add(key, "type", json_object_new_string("qcode")) < 0 ||
            json_object_object_add(key, "data", json_object_new_string(key_name(code))) < 0 ||
            json_object_object_add(data, "down", json_object_new_boolean(down)) < 0 ||
            json_object_object_add(data, "key", TAKE_PTR(key)) < 0) {
                json_object_put(key);
                json_object_put(data);
                return NULL;
        }
        return data;
}

static int add_button(json_object *array, const char *button, bool down) {
        json_object *data = json_object_new_object();

        if (data && (json_object_object_add(data, "down", json_object_new_boolean(down)) < 0 ||
                     json_object_object_add(data, "button", json_object_new_string(button)) < 0)) {
                json_object_put(data);
                return -ENOMEM;
        }
        return add_event(array, "btn", data);
}

static int add_axis(json_object *array, const char *type, uint32_t axis, int32_t value) {
        json_object *data = json_object_new_object();

        if (data && (json_object_object_add(data, "axis", json_object_new_string(axes[axis])) < 0 ||
                     json_object_object_add(data, "value", json_object_new_int(value)) < 0)) {
                json_object_put(data);
                return -ENOMEM;
        }
        return add_event(array, type, data);
}

/* QEMU has no wheel axis: a wheel click is a press and release of the
 * wheel-up or wheel-down button. */
static int add_wheel(json_object *array, int32_t clicks) {
        const char *button = clicks > 0 ? "wheel-up" : "wheel-down";
        int r = 0;

        for (int32_t i = 0; r >= 0 && i < (clicks > 0 ? clicks : -clicks); i++) {
                r = add_button(array, button, true);
                if (r >= 0)
                        r = add_button(array, button, false);
        }
        return r;
}

static int add_one(json_object *array, const vmsig_input_event *ev) {
        switch (ev->type) {
        case VMSIG_INPUT_KEY:
                return add_event(array, "key", key_data(ev->code, ev->value == 1));
        case VMSIG_INPUT_BUTTON:
                return add_button(array, buttons[ev->code], ev->value == 1);
        case VMSIG_INPUT_REL:
                if (ev->code == REL_WHEEL)
                        return add_wheel(array, ev->value);
                return add_axis(array, "rel", ev->code, ev->value);
        default:
                return add_axis(array, "abs", ev->code, ev->value);
        }
}

int qmp_input_build(const vmsig_input_event *events, size_t n, json_object **ret) {
        json_object *array, *args;
        int r = 0;

        for (size_t i = 0; i < n; i++)
                if (!event_is_valid(&events[i]))
                        return -EINVAL;
        array = json_object_new_array();
        if (!array)
                return -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = add_one(array, &events[i]);
        if (r < 0 || json_object_array_length(array) == 0) {
                json_object_put(array);
                *ret = NULL;
                return r;
        }
        args = json_object_new_object();
        if (!args || json_object_object_add(args, "events", array) < 0) {
                json_object_put(args);
                json_object_put(array);
                return -ENOMEM;
        }
        *ret = args;
        return 0;
}

static void held_set(qmp_input_held *h, const vmsig_input_event *ev) {
        bool down = ev->value == 1;

        if (ev->type == VMSIG_INPUT_KEY) {
                uint64_t bit = UINT64_C(1) << (ev->code % 64);

                h->keys[ev->code / 64] = down ? h->keys[ev->code / 64] | bit : h->keys[ev->code / 64] & ~bit;
        } else if (ev->type == VMSIG_INPUT_BUTTON)
                h->buttons = down ? h->buttons | 1U << ev->code : h->buttons & ~(1U << ev->code);
        /* A wheel click is a press and a release in one (add_wheel()). */
}

void qmp_input_held_update(qmp_input_held *h, const vmsig_input_event *events, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (event_is_valid(&events[i]))
                        held_set(h, &events[i]);
}

/* The arguments of the input-send-event that releases everything h holds
 * (*ret NULL when nothing is held), and h empty. */
static int release_held(qmp_input_held *h, json_object **ret) {
        vmsig_input_event up[KEY_CODE_LIMIT + ELEMENTSOF(buttons)];
        size_t n = 0;

        *ret = NULL;
        for (uint32_t code = 0; code < KEY_CODE_LIMIT; code++)
                if (h->keys[code / 64] & UINT64_C(1) << (code % 64))
                        up[n++] = (vmsig_input_event) { VMSIG_INPUT_KEY, code, 0 };
        for (uint32_t b = 0; b < ELEMENTSOF(buttons); b++)
                if (h->buttons & 1U << b)
                        up[n++] = (vmsig_input_event) { VMSIG_INPUT_BUTTON, b, 0 };
        *h = (qmp_input_held) {};
        return n > 0 ? qmp_input_build(up, n, ret) : 0;
}

void qmp_input_lease_end(qmp_input_held *h, const char *whose, qmp_input_send_fn send, void *userdata) {
        json_object *arguments = NULL;
        char msg[256] = "out of memory";
        int r;

        assert(h && whose && send);
        r = release_held(h, &arguments);
        if (r >= 0 && !arguments)
                return; /* nothing is down */
        if (r >= 0)
                r = send(arguments, userdata, msg, sizeof msg);
        if (r < 0)
                log_warning("Cannot release the keys and buttons held down in '%s' at the input lease's end: %s",
                            whose, msg);
}
