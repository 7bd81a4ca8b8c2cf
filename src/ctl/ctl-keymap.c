/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* InjectInput takes QEMU qcodes: the position of a key's name in the
 * QKeyCode enum of QEMU's qapi/ui.json, in keys.h's one table. Here: the
 * names people type, and what types a character on a US keyboard. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "ctl-keymap.h"
#include "ctl-util.h"
#include "keys.h"

/* The names people type, for the names QEMU chose. */
static const struct {
        const char *alias, *name;
} aliases[] = {
        { "enter", "ret" },     { "return", "ret" },   { "space", "spc" },       { "escape", "esc" },
        { "control", "ctrl" },  { "del", "delete" },   { "pageup", "pgup" },     { "pagedown", "pgdn" },
        { "super", "meta_l" },  { "win", "meta_l" },   { "period", "dot" },      { "capslock", "caps_lock" },
        { "altgr", "alt_r" },   { "ins", "insert" },   { "prtsc", "print" },
};

/* US layout: the characters typed with shift, and the key under each. */
static const char shifted[] = "!@#$%^&*()_+{}:\"~|<>?";
static const char *const shifted_keys[] = {
        "1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "minus", "equal", "bracket_left", "bracket_right",
        "semicolon", "apostrophe", "grave_accent", "backslash", "comma", "dot", "slash",
};
static const char plain[] = "-=[];'`\\,./ \n\t";
static const char *const plain_keys[] = {
        "minus", "equal", "bracket_left", "bracket_right", "semicolon", "apostrophe", "grave_accent", "backslash",
        "comma", "dot", "slash", "spc", "ret", "tab",
};

_Static_assert(ELEMENTSOF(shifted_keys) == sizeof shifted - 1, "one key per shifted character");
_Static_assert(ELEMENTSOF(plain_keys) == sizeof plain - 1, "one key per plain character");

static int find_name(const char *name) {
        return key_from_name(name);
}

int ctl_key_from_string(const char *s) {
        uint64_t n;
        int code;

        code = find_name(s);
        if (code >= 0)
                return code;
        for (size_t i = 0; i < ELEMENTSOF(aliases); i++)
                if (strcmp(aliases[i].alias, s) == 0)
                        return find_name(aliases[i].name);
        /* A number is a qcode beyond our table, passed on as it is. */
        if (ctl_parse_u64(s, &n) >= 0 && n > 0 && n <= UINT32_MAX)
                return (int) MIN(n, (uint64_t) INT32_MAX);
        return -EINVAL;
}

int ctl_key_shift(void) {
        return find_name("shift");
}

int ctl_key_from_char(char c, bool *ret_shift) {
        const char *p;
        char name[2] = { c, 0 };

        *ret_shift = false;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                return find_name(name);
        if (c >= 'A' && c <= 'Z') {
                *ret_shift = true;
                name[0] = (char) (c - 'A' + 'a');
                return find_name(name);
        }
        if (c == '\0')
                return -EINVAL;
        p = strchr(plain, c);
        if (p)
                return find_name(plain_keys[p - plain]);
        p = strchr(shifted, c);
        if (p) {
                *ret_shift = true;
                return find_name(shifted_keys[p - shifted]);
        }
        return -EINVAL;
}
