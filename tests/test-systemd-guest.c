/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The systemd guest of tests/systemd-guest.h itself, before any test puts
 * vmsig into it: systemd as PID 1 comes up (running, or degraded with the
 * failed units named), the system bus answers, polkitd is started by D-Bus
 * activation, logind has seat0 with the autologin's session on it, a file
 * on the second disk reads back, and poweroff ends QEMU.
 */
#include <string.h>
#include <glib/gstdio.h>

#include "systemd-guest.h"

#define BOOT_TIMEOUT_MS 150000
#define POWEROFF_TIMEOUT_MS 60000
#define DATA_TEXT "carried in on the second disk\n"

/* The channel itself: the exit status and the output come back as they
 * are, and "exit" in a command does not end the shell. */
static void check_channel(SystemdGuest *g) {
        g_autofree char *out = NULL;

        systemd_guest_assert_run(g, "echo one; echo two >&2", 0, &out);
        g_assert_cmpstr(out, ==, "one\ntwo\n");
        g_clear_pointer(&out, g_free);
        systemd_guest_assert_run(g, "printf no-newline; exit 7", 7, &out);
        g_assert_cmpstr(out, ==, "no-newline");
        g_clear_pointer(&out, g_free);
        systemd_guest_assert_run(g, "cat; echo $$ > /dev/null", 0, &out);
        g_assert_cmpstr(out, ==, "");
        systemd_guest_assert_run(g, "test \"$(id -u)\" = 0", 0, NULL);
        systemd_guest_assert_run(g, "test \"$(cat /proc/1/comm)\" = systemd", 0, NULL);
}

/* running, or degraded with the failed units said; anything else fails. */
static void check_system_state(SystemdGuest *g) {
        g_autofree char *state = NULL, *failed = NULL, *blame = NULL;

        (void) guest_run(g, "systemctl is-system-running --wait", &state);
        g_strstrip(state);
        if (g_str_equal(state, "degraded")) {
                systemd_guest_assert_run(g, "systemctl --failed --no-legend --plain", 0, &failed);
                g_test_message("degraded; failed units:\n%s", failed);
        } else if (!g_str_equal(state, "running"))
                g_error("systemctl is-system-running says '%s'", state);
        systemd_guest_assert_run(g, "systemd-analyze time", 0, &blame);
        g_test_message("%s: %s", state, g_strstrip(blame));
}

static void check_bus_and_polkit(SystemdGuest *g) {
        g_autofree char *status = NULL, *names = NULL, *active = NULL;

        systemd_guest_assert_run(g, "busctl --system status", 0, &status);
        systemd_guest_assert_contains(status, "BusAddress=unix:path=/run/dbus/system_bus_socket\n");
        systemd_guest_assert_contains(status, "BusScope=system\n");
        systemd_guest_assert_run(g, "busctl --system --json=short call org.freedesktop.DBus /org/freedesktop/DBus "
                      "org.freedesktop.DBus ListActivatableNames", 0, &names);
        systemd_guest_assert_contains(names, "\"org.freedesktop.PolicyKit1\"");
        /* Activated by the call, not before: nothing in the guest needs it. */
        systemd_guest_assert_run(g, "systemctl is-active polkit.service", 3, NULL);
        systemd_guest_assert_run(g, "busctl --system call org.freedesktop.PolicyKit1 /org/freedesktop/PolicyKit1/Authority "
                      "org.freedesktop.DBus.Properties Get ss org.freedesktop.PolicyKit1.Authority BackendName",
                   0, &active);
        g_assert_true(g_str_has_prefix(active, "v s \""));
        systemd_guest_assert_run(g, "systemctl is-active polkit.service", 0, NULL);
}

/* seat0, and the autologin's session on it (it may still be starting). */
static void check_logind(SystemdGuest *g) {
        g_autofree char *seats = NULL, *session = NULL;

        systemd_guest_assert_run(g, "loginctl list-seats --no-legend", 0, &seats);
        systemd_guest_assert_contains(seats, "seat0");
        systemd_guest_assert_run(g,
                   "for i in $(seq 30); do s=$(loginctl show-seat seat0 -p ActiveSession --value); "
                   "[ -n \"$s\" ] && break; sleep 1; done; "
                   "loginctl show-session \"$s\" -p Name -p Seat -p TTY -p Active",
                   0, &session);
        systemd_guest_assert_contains(session, "Name=tester\n");
        systemd_guest_assert_contains(session, "Seat=seat0\n");
        systemd_guest_assert_contains(session, "TTY=tty1\n");
        systemd_guest_assert_contains(session, "Active=yes\n");
}

static void check_data_disk(SystemdGuest *g) {
        g_autofree char *out = NULL;

        systemd_guest_assert_run(g, "mkdir -p /mnt/data && mount -o ro /dev/vdb /mnt/data && cat /mnt/data/hello", 0, &out);
        g_assert_cmpstr(out, ==, DATA_TEXT);
}

static void test_boot(void) {
        g_autoptr(GError) error = NULL;
        g_autoptr(SystemdGuest) g = NULL;
        g_autofree char *dir = NULL, *hello = NULL;
        int64_t t0;

        if (!systemd_guest_available())
                return;
        dir = g_dir_make_tmp("vmsig-guest-data-XXXXXX", &error);
        g_assert_no_error(error);
        hello = g_build_filename(dir, "hello", NULL);
        g_file_set_contents(hello, DATA_TEXT, -1, &error);
        g_assert_no_error(error);
        g = systemd_guest_new(dir);
        g_assert_cmpint(g_unlink(hello), ==, 0);
        g_assert_cmpint(g_rmdir(dir), ==, 0);

        t0 = g_get_monotonic_time();
        systemd_guest_start(g, BOOT_TIMEOUT_MS);
        g_test_message("the shell answered %.1f s after QEMU's start", systemd_guest_boot_ms(g) / 1000.0);
        check_channel(g);
        check_system_state(g);
        g_test_message("booted in %.1f s", (double) (g_get_monotonic_time() - t0) / G_USEC_PER_SEC);
        check_bus_and_polkit(g);
        check_logind(g);
        check_data_disk(g);

        t0 = g_get_monotonic_time();
        if (!systemd_guest_poweroff(g, POWEROFF_TIMEOUT_MS)) {
                g_autofree char *tail = systemd_guest_console_tail(g, 4000);
                g_error("the guest did not power off in %d ms; the console ended in:\n%s", POWEROFF_TIMEOUT_MS,
                        tail);
        }
        g_test_message("powered off in %.1f s", (double) (g_get_monotonic_time() - t0) / G_USEC_PER_SEC);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/systemd-guest/boot", test_boot);
        return g_test_run();
}
