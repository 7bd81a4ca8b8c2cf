/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A real polkitd on the test bus. Our action file is installed into the
 * system's action directory for the duration (unless an identical one is
 * already there, e.g. from the package) and rules files are written to
 * /etc/polkit-1/rules.d under a name unique to this process; everything is
 * removed again by vt_polkit_stop(). polkitd notices both through inotify.
 * Needs root. */

#include "harness.h"

typedef struct VtPolkit VtPolkit;

/* Returns NULL (and marks the test skipped, or failed under CI=true) when
 * polkitd is not installed. Waits until our actions are registered. */
VtPolkit *vt_polkit_start(VtBus *bus);
/* Replaces this process's rules file with js and waits until polkitd has
 * loaded it. NULL removes the file. */
void vt_polkit_set_rules(VtPolkit *p, const char *js);
void vt_polkit_stop(VtPolkit *p);
