/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A private system bus for the tests (harness.c) and the bench
 * (bench-lib.c), without GLib. The policy part is
 * /usr/share/dbus-1/system.conf's, so that what they see is what a real
 * system bus enforces: nothing may be owned or called unless a policy file
 * punches a hole. It is copied rather than included because system.conf
 * also sets <user>, <fork>, a pid file and the real socket.
 *
 * BUS_CONFIG_HEAD takes the socket path (%s); what follows it is the
 * user's policy files and holes, then BUS_CONFIG_TAIL.
 */

#define BUS_CONFIG_HEAD BUS_CONFIG_DOCTYPE "  <listen>unix:path=%s</listen>\n" BUS_CONFIG_POLICY

#define BUS_CONFIG_DOCTYPE                                                                                             \
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"                          \
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"                                           \
        "<busconfig>\n"                                                                                                 \
        "  <type>system</type>\n"

#define BUS_CONFIG_POLICY                                                                                              \
        "  <auth>EXTERNAL</auth>\n"                                                                                     \
        "  <policy context=\"default\">\n"                                                                              \
        "    <allow user=\"*\"/>\n"                                                                                     \
        "    <deny own=\"*\"/>\n"                                                                                       \
        "    <deny send_type=\"method_call\"/>\n"                                                                       \
        "    <allow send_type=\"signal\"/>\n"                                                                           \
        "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"                                      \
        "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"                                              \
        "    <allow receive_type=\"method_call\"/>\n"                                                                   \
        "    <allow receive_type=\"method_return\"/>\n"                                                                 \
        "    <allow receive_type=\"error\"/>\n"                                                                         \
        "    <allow receive_type=\"signal\"/>\n"                                                                        \
        "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\"/>\n"              \
        "    <allow send_destination=\"org.freedesktop.DBus\"\n"                                                        \
        "           send_interface=\"org.freedesktop.DBus.Introspectable\"/>\n"                                         \
        "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Properties\"/>\n"   \
        "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Containers1\"/>\n"  \
        "    <deny send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\"\n"                 \
        "          send_member=\"UpdateActivationEnvironment\"/>\n"                                                       \
        "    <deny send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Debug.Stats\"/>\n"   \
        "    <deny send_destination=\"org.freedesktop.DBus\"\n"                                                         \
        "          send_interface=\"org.freedesktop.systemd1.Activator\"/>\n"                                           \
        "  </policy>\n"                                                                                                 \
        "  <policy user=\"root\">\n"                                                                                    \
        "    <allow send_destination=\"org.freedesktop.DBus\"\n"                                                        \
        "           send_interface=\"org.freedesktop.systemd1.Activator\"/>\n"                                          \
        "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Monitoring\"/>\n"   \
        "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Debug.Stats\"/>\n"  \
        "  </policy>\n"

#define BUS_CONFIG_TAIL "</busconfig>\n"
