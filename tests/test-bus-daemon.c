/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsigd as a process: command line, configuration errors, signals, bus
 * loss, a second instance, and a valgrind run (leaks and fds). */
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "client.h"
#include "harness.h"
#include "vt-util.h"

static char *vmsigd_path(void) {
        return g_build_filename(g_getenv("VMSIG_BUILDDIR"), "vmsigd", NULL);
}

/* Runs vmsigd with args to completion; returns the exit status. */
static int run_vmsigd(char **out, char **err, const char *arg1, const char *arg2) {
        g_autofree char *bin = vmsigd_path();
        const char *argv[] = { bin, arg1, arg2, NULL };
        g_autoptr(GError) error = NULL;
        int status;

        g_assert_true(g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, err, &status,
                                   &error));
        g_assert_no_error(error);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_check_config(void) {
        g_autofree char *good = vt_write_temp("<vmsigd><stub-vm name=\"a\"/><stub-vm name=\"b\"/></vmsigd>\n");
        g_autofree char *bad = vt_write_temp("<vmsigd>\n"
                                          "  <stub-vm name=\"a\"/>\n"
                                          "  <stub-vm name=\"a\"/>\n"
                                          "</vmsigd>\n");
        g_autofree char *out = NULL, *err = NULL, *out2 = NULL, *err2 = NULL;

        g_autofree char *one = vt_write_temp("<vmsigd><stub-vm name=\"a\"/></vmsigd>\n");
        g_autofree char *out1 = NULL, *err1 = NULL;
        g_autofree char *good_says = g_strdup_printf("%s: configuration is valid (2 stub VMs).\n", good);
        g_autofree char *one_says = g_strdup_printf("%s: configuration is valid (1 stub VM).\n", one);

        g_assert_cmpint(run_vmsigd(&out, &err, "--check-config", good), ==, 0);
        g_assert_cmpstr(out, ==, good_says);
        g_assert_cmpint(run_vmsigd(&out1, &err1, "--check-config", one), ==, 0);
        g_assert_cmpstr(out1, ==, one_says);
        unlink(one);
        g_assert_cmpint(run_vmsigd(&out2, &err2, "--check-config", bad), ==, 1);
        g_autofree char *where = g_strdup_printf("%s:3:", bad);
        g_test_message("stderr: %s", err2);
        g_assert_nonnull(strstr(err2, where));
        g_assert_nonnull(strstr(err2, "duplicate"));
        unlink(good);
        unlink(bad);
}

static void test_cli_errors(void) {
        g_autofree char *out = NULL, *err = NULL, *out2 = NULL, *err2 = NULL, *out3 = NULL, *err3 = NULL;

        g_assert_cmpint(run_vmsigd(&out, &err, "--version", NULL), ==, 0);
        g_assert_cmpstr(out, ==, "vmsigd 0.3.5\n");
        g_assert_cmpint(run_vmsigd(&out2, &err2, "--log-level=loud", NULL), ==, 1);
        g_assert_nonnull(strstr(err2, "loud"));
        g_assert_cmpint(run_vmsigd(&out3, &err3, "--config", "/nonexistent/vmsigd.conf"), ==, 1);
        g_assert_nonnull(strstr(err3, "/nonexistent/vmsigd.conf"));
}

/* A broken file at start-up: non-zero exit, file and line in the log. */
static void test_bad_config_at_start(void) {
        VtBus *bus = vt_bus_start();
        g_autofree char *conf = vt_write_temp("<vmsigd>\n<stub-vm name=\"a\" ram-size=\"12345\"/>\n</vmsigd>\n");
        g_autofree char *bin = vmsigd_path();
        g_autofree char *err = NULL;
        g_autoptr(GError) error = NULL;
        const char *argv[] = { bin, "--config", conf, NULL };
        int status;
        g_auto(GStrv) env = g_environ_setenv(g_get_environ(), "DBUS_SYSTEM_BUS_ADDRESS", vt_bus_address(bus), TRUE);

        g_assert_true(g_spawn_sync(NULL, (char **) argv, env, G_SPAWN_DEFAULT, NULL, NULL, NULL, &err, &status,
                                   &error));
        g_assert_false(g_spawn_check_wait_status(status, NULL));
        g_autofree char *where = g_strdup_printf("%s:2:", conf);
        g_assert_nonnull(strstr(err, where));
        unlink(conf);
        vt_bus_stop(bus);
}

static gboolean endpoint_count_is(GDBusConnection *c, guint64 n) {
        return vt_get_uint(c, VT_MANAGER_PATH, VT_MANAGER_IFACE, "EndpointCount") == n;
}

/* SIGHUP with a broken file keeps the running configuration. */
static void test_reload_bad_config_keeps_old(void) {
        VtBus *bus = vt_bus_start();
        VtDaemon *d = vt_daemon_start(bus, "<vmsigd><stub-vm name=\"a\" ram-size=\"1M\"/></vmsigd>");
        GDBusConnection *c = vt_bus_connect(bus);

        vt_daemon_rewrite_config(d, "<vmsigd>\n<stub-vm name=\"b\" bogus=\"1\"/>\n</vmsigd>\n");
        vt_daemon_signal(d, SIGHUP);
        /* Any call after the signal is handled after the reload. */
        for (int i = 0; i < 200; i++) {
                g_autofree char *log = vt_daemon_log(d);
                if (strstr(log, "Keeping the previous configuration"))
                        break;
                g_usleep(20000);
        }
        g_autofree char *log = vt_daemon_log(d);
        g_autofree char *where = g_strdup_printf("%s:2:", vt_daemon_config_path(d));
        g_assert_nonnull(strstr(log, where));
        g_assert_nonnull(strstr(log, "Keeping the previous configuration"));
        g_assert_true(endpoint_count_is(c, 1));
        g_autoptr(GVariant) r = vt_call(c, VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpoint", g_variant_new("(s)", "a"));

        g_object_unref(c);
        g_assert_cmpint(vt_daemon_stop(d), ==, 0);
        vt_bus_stop(bus);
}

/* SIGTERM and SIGINT both end the daemon cleanly. */
static void test_signals_exit_cleanly(void) {
        int sigs[] = { SIGTERM, SIGINT };

        for (size_t i = 0; i < G_N_ELEMENTS(sigs); i++) {
                VtBus *bus = vt_bus_start();
                VtDaemon *d = vt_daemon_start(bus, "<vmsigd><stub-vm name=\"a\" ram-size=\"1M\"/></vmsigd>");
                vt_daemon_signal(d, sigs[i]);
                g_assert_cmpint(vt_daemon_stop(d), ==, 0);
                vt_bus_stop(bus);
        }
}

/* What clients see of a SIGTERM (vmsigd(8)): the leases end (the holder's
 * fd hangs up), vmsigd leaves the bus (its name has no owner: that is how a
 * client learns its objects are gone, as with any service; no removal is
 * sent per object), and it exits 0. */
static void test_sigterm_as_clients_see_it(void) {
        VtBus *bus = vt_bus_start();
        VtDaemon *d = vt_daemon_start(bus, "<vmsigd><stub-vm name=\"a\" ram-size=\"1M\"/></vmsigd>");
        GDBusConnection *c = vt_bus_connect(bus);
        int lease = vt_acquire_lease(c, "/org/vmsig/endpoint/a", "power", NULL);
        struct pollfd p = { .fd = lease, .events = POLLIN };
        g_autoptr(GError) error = NULL;

        g_assert_cmpint(poll(&p, 1, 0), ==, 0);
        vt_daemon_signal(d, SIGTERM);
        g_assert_cmpint(vt_daemon_stop(d), ==, 0);
        g_assert_cmpint(poll(&p, 1, 5000), ==, 1);
        g_assert_true(p.revents & POLLHUP);
        g_autoptr(GVariant) owner = g_dbus_connection_call_sync(c, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                                "org.freedesktop.DBus", "GetNameOwner",
                                                                g_variant_new("(s)", VT_NAME), NULL,
                                                                G_DBUS_CALL_FLAGS_NONE, 5000, NULL, &error);
        g_assert_null(owner);
        g_assert_true(g_dbus_error_is_remote_error(error));
        g_autofree char *name = g_dbus_error_get_remote_error(error);
        g_assert_cmpstr(name, ==, "org.freedesktop.DBus.Error.NameHasNoOwner");
        close(lease);
        g_object_unref(c);
        vt_bus_stop(bus);
}

/* Only one vmsigd can own org.vmsig: a second one fails and says why. */
static void test_second_instance_fails(void) {
        VtBus *bus = vt_bus_start();
        VtDaemon *d = vt_daemon_start(bus, "<vmsigd/>");
        g_autofree char *conf = vt_write_temp("<vmsigd/>");
        g_autofree char *bin = vmsigd_path();
        g_autofree char *err = NULL;
        g_autoptr(GError) error = NULL;
        const char *argv[] = { bin, "--config", conf, NULL };
        g_auto(GStrv) env = g_environ_setenv(g_get_environ(), "DBUS_SYSTEM_BUS_ADDRESS", vt_bus_address(bus), TRUE);
        int status;

        g_assert_true(g_spawn_sync(NULL, (char **) argv, env, G_SPAWN_DEFAULT, NULL, NULL, NULL, &err, &status,
                                   &error));
        g_assert_false(g_spawn_check_wait_status(status, NULL));
        g_assert_nonnull(strstr(err, "org.vmsig"));
        unlink(conf);
        g_assert_cmpint(vt_daemon_stop(d), ==, 0);
        vt_bus_stop(bus);
}

/* When dbus-daemon goes away, vmsigd exits with a failure code so that
 * systemd restarts it, after a clean shutdown. */
static void test_bus_loss_exits(void) {
        VtBus *bus = vt_bus_start();
        VtDaemon *d = vt_daemon_start(bus, "<vmsigd><stub-vm name=\"a\" ram-size=\"1M\"/></vmsigd>");

        vt_bus_stop(bus);
        int status = vt_daemon_stop(d);
        g_assert_cmpint(status, ==, 1);
}

#ifndef __SANITIZE_ADDRESS__
/* --track-fds lists every fd open at exit; those the daemon inherited
 * (stdio, the test runner's) are marked so. Anything else it opened and
 * forgot. Also no definite leak and no memory error. */
static void assert_valgrind_log_clean(const char *log) {
        g_auto(GStrv) lines = g_strsplit(log, "\n", -1);
        guint leaked_fds = 0;

        g_assert_nonnull(strstr(log, "FILE DESCRIPTORS:"));
        for (guint i = 0; lines[i]; i++) {
                if (!strstr(lines[i], "== Open "))
                        continue;
                if (!lines[i + 1] || !strstr(lines[i + 1], "<inherited from parent>"))
                        leaked_fds++;
        }
        g_assert_cmpuint(leaked_fds, ==, 0);
        g_assert_null(strstr(log, "definitely lost"));
        g_assert_null(strstr(log, "Invalid read"));
        g_assert_null(strstr(log, "Invalid write"));
        g_assert_null(strstr(log, "uninitialised"));
}

static char *read_valgrind_log(const char *dir) {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;
        char *contents = NULL;

        g_assert_nonnull(d);
        while ((name = g_dir_read_name(d))) {
                g_autofree char *path = g_build_filename(dir, name, NULL);
                if (g_str_has_prefix(name, "vmsigd-valgrind.")) {
                        g_assert_null(contents); /* exactly one daemon ran */
                        g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
                }
                unlink(path);
        }
        g_assert_nonnull(contents);
        return contents;
}

/* A full life under valgrind: start, calls that change state, a reload that
 * detaches and attaches endpoints, SIGTERM. No definite leak, no memory
 * error, and every fd (memfds, eventfds, the bus) closed at exit. */
static void test_valgrind_clean(void) {
        g_autofree char *dir = g_dir_make_tmp("vmsig-vg-XXXXXX", NULL);
        g_autofree char *wrapper = g_strdup_printf(
                "valgrind --quiet --leak-check=full --show-leak-kinds=definite --track-fds=yes "
                "--log-file=%s/vmsigd-valgrind.%%p", dir);
        const char *saved = g_getenv("VMSIG_DAEMON_WRAPPER");
        g_autofree char *saved_copy = g_strdup(saved);
        g_autofree char *valgrind = g_find_program_in_path("valgrind");
        VtBus *bus;
        VtDaemon *d;
        GDBusConnection *c;

        if (!valgrind) {
                if (g_strcmp0(g_getenv("CI"), "true") == 0)
                        g_error("valgrind is not installed; CI must not skip this test");
                g_test_skip("valgrind is not installed (apt-get install valgrind)");
                return;
        }
        g_setenv("VMSIG_DAEMON_WRAPPER", wrapper, TRUE);
        bus = vt_bus_start();
        d = vt_daemon_start(bus, "<vmsigd><stub-vm name=\"a\" ram-size=\"1M\"/>"
                                 "<stub-vm name=\"b\" ram-size=\"1M\"/></vmsigd>");
        c = vt_bus_connect(bus);
        g_autoptr(GVariant) l = vt_call(c, VT_MANAGER_PATH, VT_MANAGER_IFACE, "ListEndpoints", NULL);
        int lease = vt_acquire_lease(c, "/org/vmsig/endpoint/a", "power", NULL);
        g_autoptr(GVariant) p = vt_call(c, "/org/vmsig/endpoint/a", VT_ENDPOINT_IFACE, "Pause", NULL);
        g_autoptr(GVariant) r = vt_call(c, "/org/vmsig/endpoint/a", VT_ENDPOINT_IFACE, "Reset", NULL);
        g_autofree char *e = vt_call_error(c, "/org/vmsig/endpoint/a", VT_ENDPOINT_IFACE, "Pause", NULL, NULL);
        /* The reset revoked the lease. */
        g_assert_cmpstr(e, ==, "org.vmsig.Error.NotLeaseHolder");
        close(lease);
        lease = vt_acquire_lease(c, "/org/vmsig/endpoint/a", "power", NULL);
        g_autofree char *e2 = vt_call_error(c, "/org/vmsig/endpoint/a", VT_ENDPOINT_IFACE, "Pause", NULL, NULL);
        g_assert_cmpstr(e2, ==, "org.vmsig.Error.InvalidState");
        int input = vt_acquire_lease(c, "/org/vmsig/endpoint/b", "input", NULL);

        vt_daemon_rewrite_config(d, "<vmsigd><stub-vm name=\"b\" ram-size=\"2M\"/>"
                                    "<stub-vm name=\"c\" ram-size=\"1M\"/></vmsigd>");
        vt_daemon_signal(d, SIGHUP);
        for (int i = 0; i < 500 && vt_get_uint(c, VT_MANAGER_PATH, VT_MANAGER_IFACE, "EndpointCount") != 2; i++)
                g_usleep(20000);
        g_autoptr(GVariant) got = vt_call(c, VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpoint", g_variant_new("(s)", "c"));
        close(input);
        close(lease);
        g_object_unref(c);
        g_assert_cmpint(vt_daemon_stop(d), ==, 0);
        vt_bus_stop(bus);
        if (saved_copy)
                g_setenv("VMSIG_DAEMON_WRAPPER", saved_copy, TRUE);
        else
                g_unsetenv("VMSIG_DAEMON_WRAPPER");

        g_autofree char *log = read_valgrind_log(dir);
        g_test_message("valgrind log:\n%s", log);
        assert_valgrind_log_clean(log);
        rmdir(dir);
}
#endif

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/daemon/", test_check_config, test_cli_errors, test_bad_config_at_start,
                 test_reload_bad_config_keeps_old, test_signals_exit_cleanly, test_sigterm_as_clients_see_it,
                 test_second_instance_fails,
                 test_bus_loss_exits);
        /* valgrind cannot run an ASan binary; that build is checked by
         * the sanitizers themselves, the normal build by this test. */
#ifndef __SANITIZE_ADDRESS__
        g_test_add_func("/daemon/valgrind-clean", test_valgrind_clean);
#endif
        return g_test_run();
}
