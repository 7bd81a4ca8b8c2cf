/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The integration test harness itself, with the real parts: a failure here
 * means the bus tests cannot be trusted, whatever they say. */
#include <signal.h>
#include <string.h>

#include <glib/gstdio.h>

#include "client.h"
#include "harness.h"
#include "vt-util.h"

#define ONE_VM "<vmsigd><stub-vm name=\"a\" ram-size=\"1M\"/></vmsigd>"
#define TWO_VMS "<vmsigd><stub-vm name=\"a\" ram-size=\"1M\"/><stub-vm name=\"b\" ram-size=\"1M\"/></vmsigd>"

/* The bus directory, from the socket in the address. */
static char *bus_dir(VtBus *bus) {
        const char *a = vt_bus_address(bus);
        const char *path = strstr(a, "unix:path=");
        g_autofree char *socket_path = NULL;

        g_assert_nonnull(path);
        path += strlen("unix:path=");
        socket_path = g_strndup(path, strcspn(path, ",;"));
        g_assert_true(g_file_test(socket_path, G_FILE_TEST_EXISTS));
        return g_path_get_dirname(socket_path);
}

static char *bus_call_id(GDBusConnection *c) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(c, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                            "org.freedesktop.DBus", "GetId", NULL,
                                                            G_VARIANT_TYPE("(s)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                                                            &error);
        char *id;

        g_assert_no_error(error);
        g_variant_get(r, "(s)", &id);
        return id;
}

/* The bus comes up, is what G_BUS_TYPE_SYSTEM means now, and answers. */
static void test_bus_connect(void) {
        g_autofree char *before = g_strdup(g_getenv("DBUS_SYSTEM_BUS_ADDRESS"));
        VtBus *bus = vt_bus_start();
        g_autoptr(GError) error = NULL;
        g_autofree char *system = NULL, *id = NULL;
        GDBusConnection *c;

        g_assert_true(g_str_has_prefix(vt_bus_address(bus), "unix:path="));
        g_assert_cmpstr(g_getenv("DBUS_SYSTEM_BUS_ADDRESS"), ==, vt_bus_address(bus));
        system = g_dbus_address_get_for_bus_sync(G_BUS_TYPE_SYSTEM, NULL, &error);
        g_assert_no_error(error);
        g_assert_cmpstr(system, ==, vt_bus_address(bus));

        c = vt_bus_connect(bus);
        id = bus_call_id(c);
        g_assert_cmpuint(strlen(id), ==, 32);
        g_assert_nonnull(g_dbus_connection_get_unique_name(c));
        g_object_unref(c);

        vt_bus_stop(bus);
        /* The previous bus address is back, so tests do not leak into each
         * other through the environment. */
        g_assert_cmpstr(g_getenv("DBUS_SYSTEM_BUS_ADDRESS"), ==, before);
}

/* Each bus is its own: two at once have different ids and sockets. */
static void test_two_buses(void) {
        VtBus *a = vt_bus_start();
        VtBus *b = vt_bus_start();
        GDBusConnection *ca = vt_bus_connect(a), *cb = vt_bus_connect(b);
        g_autofree char *ia = bus_call_id(ca), *ib = bus_call_id(cb);

        g_assert_cmpstr(vt_bus_address(a), !=, vt_bus_address(b));
        g_assert_cmpstr(ia, !=, ib);
        g_object_unref(ca);
        g_object_unref(cb);
        vt_bus_stop(b);
        vt_bus_stop(a);
}

/* Commands run with the bus address and report status and output. */
static void test_bus_run(void) {
        VtBus *bus = vt_bus_start();
        g_autofree char *out = NULL, *expected = g_strdup_printf("%s\n", vt_bus_address(bus));

        g_assert_cmpint(vt_bus_run(bus, &out, "sh", "-c", "echo \"$DBUS_SYSTEM_BUS_ADDRESS\"; exit 3", NULL), ==, 3);
        g_assert_cmpstr(out, ==, expected);
        g_assert_cmpint(vt_bus_run(bus, NULL, "sh", "-c", "kill -TERM $$", NULL), ==, 128 + SIGTERM);
        vt_bus_stop(bus);
}

static gboolean flag_set(gpointer p) {
        return *(gboolean *) p;
}

static gboolean set_flag(gpointer p) {
        *(gboolean *) p = TRUE;
        return G_SOURCE_REMOVE;
}

/* vt_wait_for dispatches the default main context and honours its timeout. */
static void test_wait_for(void) {
        gboolean flag = FALSE;
        gint64 start;

        g_timeout_add(50, set_flag, &flag);
        g_assert_true(vt_wait_for(flag_set, &flag, 10000));

        flag = FALSE;
        start = g_get_monotonic_time();
        g_assert_false(vt_wait_for(flag_set, &flag, 100));
        g_assert_cmpint(g_get_monotonic_time() - start, >=, 100 * G_TIME_SPAN_MILLISECOND);
        g_assert_cmpint(g_get_monotonic_time() - start, <, 5 * G_TIME_SPAN_SECOND);

        g_timeout_add(20, set_flag, &flag);
        vt_bus_iterate(NULL, 200);
        g_assert_true(flag);
}

/* The bus enforces a system bus's default-deny policy plus ours: root may
 * own org.vmsig and everyone may call it, nobody may own it, and calls to
 * anything without a policy hole are refused. */
static void test_system_policy(void) {
        VtBus *bus = vt_bus_start();
        GDBusConnection *c = vt_bus_connect(bus);
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) r = NULL;
        g_autofree char *out = NULL, *out2 = NULL, *out3 = NULL, *cmd = NULL;
        guint32 reply;
        int status;

        status = vt_bus_run(bus, &out, "sh", "-c",
                            "setpriv --reuid=nobody --regid=nogroup --clear-groups gdbus call --system "
                            "--dest org.freedesktop.DBus --object-path /org/freedesktop/DBus "
                            "--method org.freedesktop.DBus.RequestName org.vmsig 0 2>&1",
                            NULL);
        g_test_message("RequestName as nobody: %s", out);
        g_assert_cmpint(status, !=, 0);
        g_assert_nonnull(strstr(out, "org.freedesktop.DBus.Error.AccessDenied"));

        r = g_dbus_connection_call_sync(c, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                        "RequestName", g_variant_new("(su)", VT_NAME, 0), G_VARIANT_TYPE("(u)"),
                                        G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
        g_assert_no_error(error);
        g_variant_get(r, "(u)", &reply);
        g_assert_cmpuint(reply, ==, 1); /* DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER */

        /* Delivered (this connection exports nothing, so GDBus says there is
         * no such interface), not refused by the bus. */
        status = vt_bus_run(bus, &out2, "sh", "-c",
                            "setpriv --reuid=nobody --regid=nogroup --clear-groups gdbus call --system "
                            "--dest org.vmsig --object-path /org/vmsig --method org.vmsig.Manager.ListEndpoints 2>&1",
                            NULL);
        g_test_message("org.vmsig.Manager.ListEndpoints as nobody: %s", out2);
        g_assert_cmpint(status, !=, 0);
        g_assert_null(strstr(out2, "AccessDenied"));
        g_assert_nonnull(strstr(out2, "org.freedesktop.DBus.Error.Unknown"));

        /* Without a hole, a method call is refused even to a unique name.
         * (Not c's: the rules for org.vmsig apply to its owner however it is
         * addressed.) */
        GDBusConnection *other = vt_bus_connect(bus);
        cmd = g_strdup_printf("setpriv --reuid=nobody --regid=nogroup --clear-groups gdbus call --system "
                              "--dest %s --object-path / --method org.freedesktop.DBus.Peer.Ping 2>&1",
                              g_dbus_connection_get_unique_name(other));
        status = vt_bus_run(bus, &out3, "sh", "-c", cmd, NULL);
        g_test_message("Ping as nobody: %s", out3);
        g_assert_cmpint(status, !=, 0);
        g_assert_nonnull(strstr(out3, "org.freedesktop.DBus.Error.AccessDenied"));

        g_object_unref(other);
        g_object_unref(c);
        vt_bus_stop(bus);
}

static gboolean has_two_endpoints(gpointer p) {
        return vt_get_uint(p, VT_MANAGER_PATH, VT_MANAGER_IFACE, "EndpointCount") == 2;
}

/* vmsigd starts on the bus, owns org.vmsig, serves its tree, and its log and
 * configuration file are the harness's to read and change. */
static void test_daemon_start(void) {
        VtBus *bus = vt_bus_start();
        VtDaemon *d = vt_daemon_start(bus, ONE_VM);
        GDBusConnection *c = vt_bus_connect(bus);
        g_autoptr(GError) error = NULL;
        g_autofree char *dir = bus_dir(bus), *conf_dir = g_path_get_dirname(vt_daemon_config_path(d));
        g_autofree char *conf = NULL, *out = NULL, *log = NULL, *log2 = NULL;
        const char *wrapper = g_getenv("VMSIG_DAEMON_WRAPPER");

        /* The owner is the process the harness started (a wrapper such as
         * valgrind runs it in the same process). */
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(c, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                            "org.freedesktop.DBus", "GetConnectionUnixProcessID",
                                                            g_variant_new("(s)", VT_NAME), G_VARIANT_TYPE("(u)"),
                                                            G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
        g_assert_no_error(error);
        guint32 pid;
        g_variant_get(r, "(u)", &pid);
        if (!wrapper || !*wrapper || strstr(wrapper, "valgrind"))
                g_assert_cmpuint(pid, ==, (guint32) vt_daemon_pid(d));

        g_assert_cmpint(vt_bus_run(bus, &out, "busctl", "--system", "--no-pager", "--list", "tree", VT_NAME, NULL),
                        ==, 0);
        g_assert_nonnull(strstr(out, VT_MANAGER_PATH "\n"));
        g_assert_nonnull(strstr(out, VT_ENDPOINT("a") "\n"));

        /* The configuration lives in the bus directory, as written. */
        g_assert_cmpstr(conf_dir, ==, dir);
        g_assert_true(g_file_get_contents(vt_daemon_config_path(d), &conf, NULL, &error));
        g_assert_no_error(error);
        g_assert_cmpstr(conf, ==, ONE_VM);

        log = vt_daemon_log(d);
        g_assert_cmpuint(strlen(log), >, 0);

        g_assert_cmpuint(vt_get_uint(c, VT_MANAGER_PATH, VT_MANAGER_IFACE, "EndpointCount"), ==, 1);
        vt_daemon_rewrite_config(d, TWO_VMS);
        g_clear_pointer(&conf, g_free);
        g_assert_true(g_file_get_contents(vt_daemon_config_path(d), &conf, NULL, &error));
        g_assert_cmpstr(conf, ==, TWO_VMS);
        vt_daemon_signal(d, SIGHUP);
        g_assert_true(vt_wait_for(has_two_endpoints, c, 20000));

        /* The log grows, and it is the whole log, from the start. */
        log2 = vt_daemon_log(d);
        g_assert_cmpuint(strlen(log2), >, strlen(log));
        g_assert_true(g_str_has_prefix(log2, log));

        g_object_unref(c);
        g_assert_cmpint(vt_daemon_stop(d), ==, 0);
        vt_bus_stop(bus);
}

/* A daemon that exited by itself is reaped once and stopped without a
 * signal; its status is kept. */
static void test_daemon_wait(void) {
        VtBus *bus = vt_bus_start();
        VtDaemon *d = vt_daemon_start_full(bus, ONE_VM, (const char *const[]) { "--log-level=info", NULL });

        vt_daemon_signal(d, SIGTERM);
        g_assert_cmpint(vt_daemon_wait(d, 60000), ==, 0);
        g_assert_cmpint(vt_daemon_wait(d, 0), ==, 0);
        g_assert_cmpint(vt_daemon_stop(d), ==, 0);
        vt_bus_stop(bus);
}

/* vt_bus_stop removes its directory (and socket) even with a daemon still
 * attached, whose log stays readable, and vt_daemon_stop copes with the bus
 * being gone already. Whether vmsigd exits with the right status after
 * losing the bus is test-bus-daemon's business, not ours. */
static void test_bus_stop_cleans_up(void) {
        VtBus *bus = vt_bus_start();
        VtDaemon *d = vt_daemon_start(bus, ONE_VM);
        g_autofree char *dir = bus_dir(bus), *address = g_strdup(vt_bus_address(bus));
        g_autofree char *log = NULL;
        g_autoptr(GError) error = NULL;

        g_assert_true(g_file_test(dir, G_FILE_TEST_IS_DIR));
        vt_bus_stop(bus);
        g_assert_false(g_file_test(dir, G_FILE_TEST_EXISTS));

        g_autoptr(GDBusConnection) c = g_dbus_connection_new_for_address_sync(
                address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                NULL, NULL, &error);
        g_assert_null(c);
        g_assert_nonnull(error);

        log = vt_daemon_log(d);
        g_assert_cmpuint(strlen(log), >, 0);
        g_test_message("vmsigd exited with %d after losing the bus", vt_daemon_stop(d));
}

/* A daemon that cannot start fails the test with its own log; run in a
 * subprocess, whose temporary files go to a directory removed here. */
static void test_daemon_start_failure(void) {
        if (g_test_subprocess()) {
                VtBus *bus = vt_bus_start();
                (void) vt_daemon_start(bus, "<vmsigd>\n<stub-vm name=\"a\" bogus=\"1\"/>\n</vmsigd>\n");
                return;
        }

        g_autoptr(GError) error = NULL;
        g_autofree char *tmp = g_dir_make_tmp("vmsig-selftest-XXXXXX", &error);
        g_autofree char *old_tmp = g_strdup(g_getenv("TMPDIR"));
        g_assert_no_error(error);

        g_setenv("TMPDIR", tmp, TRUE);
        g_test_trap_subprocess(NULL, 120 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
        if (old_tmp)
                g_setenv("TMPDIR", old_tmp, TRUE);
        else
                g_unsetenv("TMPDIR");

        const char *rm[] = { "rm", "-rf", tmp, NULL };
        int status;
        g_assert_true(g_spawn_sync(NULL, (char **) rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status,
                                   &error));
        g_assert_no_error(error);

        g_test_trap_assert_failed();
        g_test_trap_assert_stderr("*vmsigd (pid *) exited before it owned org.vmsig*");
        /* The daemon's own complaint, with the file and line. */
        g_test_trap_assert_stderr("*vmsigd-1.conf:2*");
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/harness/bus/", test_bus_connect, test_two_buses, test_bus_run);
        g_test_add_func("/harness/wait-for", test_wait_for);
        g_test_add_func("/harness/bus/system-policy", test_system_policy);
        VT_TESTS("/harness/daemon/", test_daemon_start, test_daemon_wait);
        g_test_add_func("/harness/bus/stop-cleans-up", test_bus_stop_cleans_up);
        g_test_add_func("/harness/daemon/start-failure", test_daemon_start_failure);
        return g_test_run();
}
