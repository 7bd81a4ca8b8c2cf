/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A private system bus for the tests (harness.c) and the bench
 * (bench-lib.c), without GLib. Its policy is system.conf's, kept once in
 * tests/system-bus-policy.conf (scripts/demo.sh and tests/check-deb.sh
 * include the same file), so that what they see is what a real system bus
 * enforces.
 *
 * BUS_CONFIG_HEAD takes the socket path and the source directory (two
 * %s); what follows it is the user's policy files and holes, then
 * BUS_CONFIG_TAIL.
 */

#define BUS_CONFIG_HEAD                                                                                                \
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"                          \
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"                                           \
        "<busconfig>\n"                                                                                                 \
        "  <type>system</type>\n"                                                                                       \
        "  <listen>unix:path=%s</listen>\n"                                                                             \
        "  <include>%s/tests/system-bus-policy.conf</include>\n"

#define BUS_CONFIG_TAIL "</busconfig>\n"
