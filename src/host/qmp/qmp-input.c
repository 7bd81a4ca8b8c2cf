/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "macro.h"
#include "qmp-input.h"
#include "qmp.h"

/* QEMU's QKeyCode enum in declaration order (qapi/ui.json, as of QEMU
 * 7.2): the index is the number clients send. QEMU only ever appends, so
 * newer names may be added at the end; the test compares this with the
 * running QEMU's query-qmp-schema. 0 is "unmapped", which is no key. */
static const char *const qcodes[] = {
        [1] = "shift", "shift_r", "alt", "alt_r", "ctrl", "ctrl_r", "menu", "esc", "1", "2", "3", "4", "5", "6",
        "7", "8", "9", "0", "minus", "equal", "backspace", "tab", "q", "w", "e", "r", "t", "y", "u", "i", "o", "p",
        "bracket_left", "bracket_right", "ret", "a", "s", "d", "f", "g", "h", "j", "k", "l", "semicolon",
        "apostrophe", "grave_accent", "backslash", "z", "x", "c", "v", "b", "n", "m", "comma", "dot", "slash",
        "asterisk", "spc", "caps_lock", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "num_lock",
        "scroll_lock", "kp_divide", "kp_multiply", "kp_subtract", "kp_add", "kp_enter", "kp_decimal", "sysrq",
        "kp_0", "kp_1", "kp_2", "kp_3", "kp_4", "kp_5", "kp_6", "kp_7", "kp_8", "kp_9", "less", "f11", "f12",
        "print", "home", "pgup", "pgdn", "end", "left", "up", "down", "right", "insert", "delete", "stop",
        "again", "props", "undo", "front", "copy", "open", "paste", "find", "cut", "lf", "help", "meta_l",
        "meta_r", "compose", "pause", "ro", "hiragana", "henkan", "yen", "muhenkan", "katakanahiragana",
        "kp_comma", "kp_equals", "power", "sleep", "wake", "audionext", "audioprev", "audiostop", "audioplay",
        "audiomute", "volumeup", "volumedown", "mediaselect", "mail", "calculator", "computer", "ac_home",
        "ac_back", "ac_forward", "ac_refresh", "ac_bookmarks", "lang1", "lang2",
};

/* From BTN_LEFT on, in evdev order. */
static const char *const buttons[] = { "left", "right", "middle", "side", "extra" };
static const char *const axes[] = { "x", "y" };

enum { REL_WHEEL = 2 };

const char *vmsig_qmp_qcode_to_name(uint32_t code) {
        return code < ELEMENTSOF(qcodes) ? qcodes[code] : NULL;
}

int vmsig_qmp_qcode_from_name(const char *name) {
        for (size_t i = 1; name && i < ELEMENTSOF(qcodes); i++)
                if (strcmp(qcodes[i], name) == 0)
                        return (int) i;
        return -EINVAL;
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
            json_object_object_add(key, "data", json_object_new_string(qcodes[code])) < 0 ||
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
