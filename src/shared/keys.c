/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "keys.h"
#include "macro.h"

/* QEMU's QKeyCode enum in declaration order (qapi/ui.json, as of QEMU
 * 7.2): the index is the number clients send. QEMU only ever appends, so
 * newer names may be added at the end; test-qmp compares this with the
 * running QEMU's query-qmp-schema. 0 is "unmapped", which is no key. The
 * Linux keycode of each is the one QEMU's keycodemapdb pairs with it. */
static const struct {
        const char *name;
        int linux_code;
} keys[] = {
        [1] = { "shift", 42 }, { "shift_r", 54 }, { "alt", 56 }, { "alt_r", 100 }, { "ctrl", 29 }, { "ctrl_r", 97 },
        { "menu", 139 }, { "esc", 1 }, { "1", 2 }, { "2", 3 }, { "3", 4 }, { "4", 5 }, { "5", 6 }, { "6", 7 },
        { "7", 8 }, { "8", 9 }, { "9", 10 }, { "0", 11 }, { "minus", 12 }, { "equal", 13 }, { "backspace", 14 },
        { "tab", 15 }, { "q", 16 }, { "w", 17 }, { "e", 18 }, { "r", 19 }, { "t", 20 }, { "y", 21 }, { "u", 22 },
        { "i", 23 }, { "o", 24 }, { "p", 25 }, { "bracket_left", 26 }, { "bracket_right", 27 }, { "ret", 28 },
        { "a", 30 }, { "s", 31 }, { "d", 32 }, { "f", 33 }, { "g", 34 }, { "h", 35 }, { "j", 36 }, { "k", 37 },
        { "l", 38 }, { "semicolon", 39 }, { "apostrophe", 40 }, { "grave_accent", 41 }, { "backslash", 43 },
        { "z", 44 }, { "x", 45 }, { "c", 46 }, { "v", 47 }, { "b", 48 }, { "n", 49 }, { "m", 50 }, { "comma", 51 },
        { "dot", 52 }, { "slash", 53 }, { "asterisk", 55 }, { "spc", 57 }, { "caps_lock", 58 }, { "f1", 59 },
        { "f2", 60 }, { "f3", 61 }, { "f4", 62 }, { "f5", 63 }, { "f6", 64 }, { "f7", 65 }, { "f8", 66 },
        { "f9", 67 }, { "f10", 68 }, { "num_lock", 69 }, { "scroll_lock", 70 }, { "kp_divide", 98 },
        { "kp_multiply", 55 }, { "kp_subtract", 74 }, { "kp_add", 78 }, { "kp_enter", 96 }, { "kp_decimal", 83 },
        { "sysrq", 99 }, { "kp_0", 82 }, { "kp_1", 79 }, { "kp_2", 80 }, { "kp_3", 81 }, { "kp_4", 75 },
        { "kp_5", 76 }, { "kp_6", 77 }, { "kp_7", 71 }, { "kp_8", 72 }, { "kp_9", 73 }, { "less", 86 },
        { "f11", 87 }, { "f12", 88 }, { "print", 99 }, { "home", 102 }, { "pgup", 104 }, { "pgdn", 109 },
        { "end", 107 }, { "left", 105 }, { "up", 103 }, { "down", 108 }, { "right", 106 }, { "insert", 110 },
        { "delete", 111 }, { "stop", 128 }, { "again", 129 }, { "props", 130 }, { "undo", 131 }, { "front", 132 },
        { "copy", 133 }, { "open", 134 }, { "paste", 135 }, { "find", 136 }, { "cut", 137 }, { "lf", 101 },
        { "help", 138 }, { "meta_l", 125 }, { "meta_r", 126 }, { "compose", 127 }, { "pause", 119 }, { "ro", 89 },
        { "hiragana", 91 }, { "henkan", 92 }, { "yen", 124 }, { "muhenkan", 94 }, { "katakanahiragana", 93 },
        { "kp_comma", 121 }, { "kp_equals", 117 }, { "power", 116 }, { "sleep", 142 }, { "wake", 143 },
        { "audionext", 163 }, { "audioprev", 165 }, { "audiostop", 166 }, { "audioplay", 164 }, { "audiomute", 113 },
        { "volumeup", 115 }, { "volumedown", 114 }, { "mediaselect", 226 }, { "mail", 155 }, { "calculator", 140 },
        { "computer", 157 }, { "ac_home", 172 }, { "ac_back", 158 }, { "ac_forward", 159 }, { "ac_refresh", 173 },
        { "ac_bookmarks", 156 }, { "lang1", 122 }, { "lang2", 123 },
};

_Static_assert(ELEMENTSOF(keys) <= KEY_CODE_LIMIT, "KEY_CODE_LIMIT must bound every KEY code");

const char *key_name(uint32_t code) {
        return code < ELEMENTSOF(keys) ? keys[code].name : NULL;
}

int key_from_name(const char *name) {
        for (size_t i = 1; name && i < ELEMENTSOF(keys); i++)
                if (strcmp(keys[i].name, name) == 0)
                        return (int) i;
        return -EINVAL;
}

int key_linux_code(uint32_t code) {
        return key_name(code) ? keys[code].linux_code : -EINVAL;
}
