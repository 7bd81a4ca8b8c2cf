/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Key codes for InjectInput: QEMU's QKeyCode numbers ("qcodes"). */

#include <stdbool.h>

/* The qcode of a key name: a QKeyCode name ("a", "ret", "ctrl", "f1"), an
 * alias ("enter", "space", "escape"), or a number; -EINVAL if unknown. */
int ctl_key_from_string(const char *s);
/* The qcode that types c on a US keyboard, and whether it takes shift;
 * -EINVAL for what cannot be typed so (non-ASCII). */
int ctl_key_from_char(char c, bool *ret_shift);
int ctl_key_shift(void);
