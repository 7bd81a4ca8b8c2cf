/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A real polkitd on the test bus, in a mount namespace of its own where
 * the actions directory holds the system's actions and ours, and the rules
 * directory is the test's: nothing of the machine's polkit configuration
 * is touched, and tests running side by side do not see each other's
 * rules. The directories live in the bus's temporary directory. polkitd
 * notices rule changes through inotify. Needs root (unshare, mount). */

#include "harness.h"

typedef struct VtPolkit VtPolkit;

/* Returns NULL (and marks the test skipped, or failed under CI=true) when
 * polkitd is not installed. Waits until our actions are registered. */
VtPolkit *vt_polkit_start(VtBus *bus);
/* Replaces the test's rules file with js and waits until polkitd has
 * loaded it. NULL removes the file. */
void vt_polkit_set_rules(VtPolkit *p, const char *js);
/* The same with one rule: yes to every action where condition (JavaScript
 * over action and subject) holds. */
void vt_polkit_allow(VtPolkit *p, const char *condition);
void vt_polkit_stop(VtPolkit *p);
