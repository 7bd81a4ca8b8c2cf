/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Leases over a real dbus-daemon: exclusivity, every way a lease ends
 * (Release, closing the fd, leaving the bus, kill -9, force, detach, reset),
 * the signals and properties that announce it, and enforcement. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gio/gunixfdlist.h>

#include "fixture.h"
#include "vt-util.h"

#define ALPHA VT_ENDPOINT("alpha")
#define BETA VT_ENDPOINT("beta")
#define CONFIG                                                   \
        "<vmsigd><audit target=\"stderr\"/>"                     \
        "<admission max-leases=\"2\"/>"                           \
        "<stub-vm name=\"alpha\" ram-size=\"1M\"/>"               \
        "<stub-vm name=\"beta\" ram-size=\"1M\"/>"                \
        "<stub-vm name=\"gamma\" ram-size=\"1M\"/>"               \
        "<stub-vm name=\"slow\" ram-size=\"1M\" latency-ms=\"300\"/></vmsigd>"

VT_FIXTURE_DEFINE(CONFIG, VT_FIXTURE_SIGNAL_LOG)

static char *holder(Fixture *f, const char *path, const char *property) {
        return vt_get_string(f->conn, path, VT_ENDPOINT_IFACE, property);
}

typedef struct {
        Fixture *f;
        const char *path, *property, *want;
} HolderWait;

static gboolean holder_is(gpointer data) {
        HolderWait *w = data;
        g_autofree char *h = holder(w->f, w->path, w->property);
        return g_str_equal(h, w->want);
}

static gboolean holder_is_not(gpointer data) {
        return !holder_is(data);
}

static void wait_power_holder(Fixture *f, const char *path, const char *want) {
        HolderWait w = { f, path, "PowerLeaseHolder", want };
        g_assert_true(vt_wait_for(holder_is, &w, 10000));
}

static void test_acquire_and_busy(Fixture *f, gconstpointer data) {
        g_autofree char *lease = NULL, *message = NULL;
        int fd = vt_acquire_lease(f->conn, ALPHA, "power", &lease);
        const char *me = g_dbus_connection_get_unique_name(f->conn);
        GDBusConnection *other = vt_bus_connect(f->bus);

        g_assert_true(g_str_has_prefix(lease, "/org/vmsig/lease/"));
        g_autofree char *h = holder(f, ALPHA, "PowerLeaseHolder");
        g_assert_cmpstr(h, ==, me);
        g_autofree char *cls = vt_get_string(f->conn, lease, "org.vmsig.Lease", "Class");
        g_autofree char *lh = vt_get_string(f->conn, lease, "org.vmsig.Lease", "Holder");
        g_autoptr(GVariant) ep = vt_get_property(f->conn, lease, "org.vmsig.Lease", "Endpoint");
        g_assert_cmpstr(cls, ==, "power");
        g_assert_cmpstr(lh, ==, me);
        g_assert_cmpstr(g_variant_get_string(ep, NULL), ==, ALPHA);
        guint64 at = vt_get_uint(f->conn, lease, "org.vmsig.Lease", "AcquiredAt");
        g_assert_cmpuint(at, >, (guint64) (g_get_real_time() - 60 * G_USEC_PER_SEC));
        /* Who holds it, as loginctl shows a session's leader: this process. */
        g_autofree char *comm = NULL, *command = vt_get_string(f->conn, lease, "org.vmsig.Lease", "HolderCommand");
        g_assert_true(g_file_get_contents("/proc/self/comm", &comm, NULL, NULL));
        g_strchomp(comm);
        g_assert_cmpstr(command, ==, comm);
        g_assert_cmpuint(vt_get_uint(f->conn, lease, "org.vmsig.Lease", "HolderUID"), ==, getuid());
        g_assert_cmpuint(vt_get_uint(f->conn, lease, "org.vmsig.Lease", "HolderPID"), ==, (guint64) getpid());
        g_assert_true(vt_signal_log_wait(f->log, "LeaseAcquired " ALPHA " ('power', ", 5000));

        /* Busy for another connection; the error names holder and uid. */
        g_autofree char *busy = vt_acquire_lease_error(other, ALPHA, "power", FALSE, &message);
        g_assert_cmpstr(busy, ==, "org.vmsig.Error.LeaseBusy");
        g_autofree char *who = g_strdup_printf("is held by %s (uid %u, pid %d, %s).", me, getuid(), (int) getpid(), comm);
        g_assert_nonnull(strstr(message, who));
        /* Other classes and endpoints are independent. */
        int other_fd = vt_acquire_lease(other, ALPHA, "input", NULL);
        close(other_fd);
        close(fd);
        g_object_unref(other);
}

static void test_release(Fixture *f, gconstpointer data) {
        g_autofree char *lease = NULL;
        int fd = vt_acquire_lease(f->conn, ALPHA, "power", &lease);
        GDBusConnection *other = vt_bus_connect(f->bus);

        g_autofree char *not_holder = vt_call_error(other, lease, "org.vmsig.Lease", "Release", NULL, NULL);
        g_assert_cmpstr(not_holder, ==, "org.vmsig.Error.NotLeaseHolder");
        /* The bus policy lets anyone reach the lease; the daemon refuses. */
        g_autofree char *client = g_build_filename(g_getenv("VMSIG_BUILDDIR"), "tests", "vmsig-test-client", NULL);
        g_autofree char *out = NULL;
        (void) vt_bus_run(f->bus, &out, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", client,
                          lease, "org.vmsig.Lease", "Release", NULL);
        g_assert_true(g_str_has_prefix(out, "error org.vmsig.Error.NotLeaseHolder "));
        g_autoptr(GVariant) r = vt_call(f->conn, lease, "org.vmsig.Lease", "Release", NULL);
        g_assert_true(vt_signal_log_wait(f->log, "LeaseReleased " ALPHA " ('power', ", 5000));
        g_assert_true(vt_signal_log_wait(f->log, "PropertiesChanged " ALPHA " ('org.vmsig.Endpoint', "
                                                 "{'PowerLeaseHolder': <''>}",
                                         5000));
        g_autofree char *h = holder(f, ALPHA, "PowerLeaseHolder");
        g_assert_cmpstr(h, ==, "");
        g_autofree char *gone = vt_call_error(f->conn, lease, "org.vmsig.Lease", "Release", NULL, NULL);
        g_assert_cmpstr(gone, ==, "org.freedesktop.DBus.Error.UnknownObject");
        /* A managed object: announced when taken, and when it ended. */
        g_autofree char *added = g_strdup_printf("InterfacesAdded /org/vmsig (objectpath '%s', ", lease);
        g_autofree char *removed = g_strdup_printf("InterfacesRemoved /org/vmsig (objectpath '%s', [", lease);
        int i = vt_signal_log_find(f->log, added, 0);
        g_assert_cmpint(i, >=, 0);
        g_assert_nonnull(strstr(g_ptr_array_index(f->log->entries, i), "'org.vmsig.Lease': {'Class': <'power'>"));
        g_assert_true(vt_signal_log_wait(f->log, removed, 5000));
        int again = vt_acquire_lease(other, ALPHA, "power", NULL);
        close(again);
        close(fd);
        g_object_unref(other);
}

static void test_fd_close_ends_lease(Fixture *f, gconstpointer data) {
        int fd = vt_acquire_lease(f->conn, ALPHA, "power", NULL);

        close(fd);
        wait_power_holder(f, ALPHA, "");
        g_assert_true(vt_signal_log_wait(f->log, "LeaseReleased " ALPHA " ('power', ", 5000));
        g_assert_nonnull(strstr(g_ptr_array_index(f->log->entries,
                                                  vt_signal_log_find(f->log, "LeaseReleased " ALPHA, 0)),
                                "'fd-closed'"));
        g_autofree char *e = vt_call_error(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL, NULL);
        g_assert_cmpstr(e, ==, "org.vmsig.Error.NotLeaseHolder");
}

static void test_leaving_bus_ends_lease(Fixture *f, gconstpointer data) {
        GDBusConnection *holder_conn = vt_bus_connect(f->bus);
        int fd = vt_acquire_lease(holder_conn, ALPHA, "power", NULL);

        /* The fd stays open here: the bus connection is what ends. */
        g_dbus_connection_close_sync(holder_conn, NULL, NULL);
        g_object_unref(holder_conn);
        wait_power_holder(f, ALPHA, "");
        g_assert_true(vt_signal_log_wait(f->log, "LeaseReleased " ALPHA " ('power', ", 5000));
        close(fd);
}

static GPid spawn_holder(Fixture *f, const char *class, int *out_fd) {
        g_autofree char *client = g_build_filename(g_getenv("VMSIG_BUILDDIR"), "tests", "vmsig-test-client", NULL);
        g_autofree char *lease = g_strdup_printf("--lease=%s", class);
        const char *argv[] = { client, lease, "--hold", ALPHA, "org.freedesktop.DBus.Peer", "Ping", NULL };
        g_autoptr(GError) error = NULL;
        GPid pid;

        g_assert_true(g_spawn_async_with_pipes(NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, vt_child_setup,
                                               GINT_TO_POINTER(getpid()), &pid, NULL, out_fd, NULL, &error));
        g_assert_no_error(error);
        return pid;
}

static char *read_all(int fd) {
        GString *s = g_string_new(NULL);
        char buf[256];
        ssize_t n;

        while ((n = read(fd, buf, sizeof buf)) > 0)
                g_string_append_len(s, buf, n);
        close(fd);
        return g_string_free(s, FALSE);
}

/* kill -9 closes both the connection and the fd at once. */
static void test_kill_9_ends_lease(Fixture *f, gconstpointer data) {
        int out;
        GPid pid = spawn_holder(f, "power", &out);
        HolderWait w = { f, ALPHA, "PowerLeaseHolder", "" };

        g_assert_true(vt_wait_for(holder_is_not, &w, 10000));
        kill(pid, SIGKILL);
        (void) waitpid(pid, NULL, 0);
        g_spawn_close_pid(pid);
        g_free(read_all(out));
        wait_power_holder(f, ALPHA, "");
        int fd = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        close(fd);
}

/* Two processes race for one lease: exactly one wins. */
static void test_race(Fixture *f, gconstpointer data) {
        int out1, out2;
        GPid a = spawn_holder(f, "power", &out1), b = spawn_holder(f, "power", &out2);
        g_autofree char *r1 = NULL, *r2 = NULL;

        /* The loser exits after its failed call; the winner holds. */
        HolderWait w = { f, ALPHA, "PowerLeaseHolder", "" };
        g_assert_true(vt_wait_for(holder_is_not, &w, 10000));
        g_usleep(300000);
        kill(a, SIGKILL);
        kill(b, SIGKILL);
        (void) waitpid(a, NULL, 0);
        (void) waitpid(b, NULL, 0);
        r1 = read_all(out1);
        r2 = read_all(out2);
        g_test_message("first: %s\nsecond: %s", r1, r2);
        guint won = g_str_has_prefix(r1, "lease ok") + g_str_has_prefix(r2, "lease ok");
        guint lost = g_str_has_prefix(r1, "lease-error org.vmsig.Error.LeaseBusy ") +
                     g_str_has_prefix(r2, "lease-error org.vmsig.Error.LeaseBusy ");
        g_assert_cmpuint(won, ==, 1);
        g_assert_cmpuint(lost, ==, 1);
        g_spawn_close_pid(a);
        g_spawn_close_pid(b);
        wait_power_holder(f, ALPHA, "");
}

static void test_force_revoke(Fixture *f, gconstpointer data) {
        GDBusConnection *old = vt_bus_connect(f->bus);
        VtSignalLog *old_log = vt_signal_log_new(old);
        g_autofree char *lease = NULL;
        int old_fd = vt_acquire_lease(old, ALPHA, "power", &lease);
        g_autoptr(GError) error = NULL;
        g_autoptr(GUnixFDList) fds = NULL;
        GVariantBuilder options;

        g_variant_builder_init(&options, G_VARIANT_TYPE("a{sv}"));
        g_variant_builder_add(&options, "{sv}", "force", g_variant_new_boolean(TRUE));
        g_autoptr(GVariant) r = g_dbus_connection_call_with_unix_fd_list_sync(
                f->conn, VT_NAME, ALPHA, VT_ENDPOINT_IFACE, "AcquireLease",
                g_variant_new("(sa{sv})", "power", &options), NULL, G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &fds, NULL,
                &error);
        g_assert_no_error(error);
        g_autofree char *h = holder(f, ALPHA, "PowerLeaseHolder");
        g_assert_cmpstr(h, ==, g_dbus_connection_get_unique_name(f->conn));
        g_autofree char *comm = NULL;
        g_assert_true(g_file_get_contents("/proc/self/comm", &comm, NULL, NULL));
        g_strchomp(comm);
        g_autofree char *want = g_strdup_printf("LeaseRevoked %s ('forced by %s (uid %u, pid %d, %s)',)", lease,
                                                g_dbus_connection_get_unique_name(f->conn), getuid(), (int) getpid(),
                                                comm);
        g_assert_true(vt_signal_log_wait(old_log, want, 5000));
        g_autofree char *e = vt_call_error(old, ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL, NULL);
        g_assert_cmpstr(e, ==, "org.vmsig.Error.NotLeaseHolder");
        g_autoptr(GVariant) p = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL);
        g_autofree char *daemon_log = vt_daemon_log(f->daemon);
        g_assert_nonnull(strstr(daemon_log, "action=revoke-lease endpoint=alpha result=ok"));
        vt_signal_log_free(old_log);
        close(old_fd);
        g_object_unref(old);
}

static void test_reset_and_detach_revoke(Fixture *f, gconstpointer data) {
        VtSignalLog *log = f->log;
        g_autofree char *power = NULL, *input = NULL;
        int p = vt_acquire_lease(f->conn, ALPHA, "power", &power);
        int i = vt_acquire_lease(f->conn, BETA, "input", &input);

        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Reset", NULL);
        g_autofree char *want_reset = g_strdup_printf("LeaseRevoked %s ('reset',)", power);
        g_assert_true(vt_signal_log_wait(log, want_reset, 5000));
        g_autofree char *h = holder(f, ALPHA, "PowerLeaseHolder");
        g_assert_cmpstr(h, ==, "");

        g_autoptr(GVariant) d = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "DetachEndpoint",
                                        g_variant_new("(s)", "beta"));
        g_autofree char *want_detach = g_strdup_printf("LeaseRevoked %s ('detached',)", input);
        g_assert_true(vt_signal_log_wait(log, want_detach, 5000));
        close(p);
        close(i);
}

static void test_bad_requests(Fixture *f, gconstpointer data) {
        g_autoptr(GError) error = NULL;
        g_autofree char *m1 = NULL;
        g_autofree char *e1 = vt_acquire_lease_error(f->conn, ALPHA, "keyboard", FALSE, &m1);
        g_assert_cmpstr(e1, ==, "org.vmsig.Error.InvalidArgument");
        g_assert_nonnull(strstr(m1, "keyboard"));

        GVariantBuilder options;
        g_variant_builder_init(&options, G_VARIANT_TYPE("a{sv}"));
        g_variant_builder_add(&options, "{sv}", "forse", g_variant_new_boolean(TRUE));
        g_autofree char *e2 = vt_call_error(f->conn, ALPHA, VT_ENDPOINT_IFACE, "AcquireLease",
                                            g_variant_new("(sa{sv})", "power", &options), NULL);
        g_assert_cmpstr(e2, ==, "org.vmsig.Error.InvalidArgument");
        g_variant_builder_init(&options, G_VARIANT_TYPE("a{sv}"));
        g_variant_builder_add(&options, "{sv}", "force", g_variant_new_string("yes"));
        g_autofree char *e3 = vt_call_error(f->conn, ALPHA, VT_ENDPOINT_IFACE, "AcquireLease",
                                            g_variant_new("(sa{sv})", "power", &options), NULL);
        g_assert_cmpstr(e3, ==, "org.vmsig.Error.InvalidArgument");
        g_autofree char *e4 = vt_call_error(f->conn, ALPHA, VT_ENDPOINT_IFACE, "AcquireLease",
                                            g_variant_new("(s)", "power"), NULL);
        g_assert_cmpstr(e4, ==, "org.freedesktop.DBus.Error.InvalidArgs");
        /* Nothing was granted, nothing was counted. */
        g_autofree char *h = holder(f, ALPHA, "PowerLeaseHolder");
        g_assert_cmpstr(h, ==, "");
        int a = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        int b = vt_acquire_lease(f->conn, BETA, "power", NULL);
        /* max-leases="2" */
        g_autofree char *e5 = vt_acquire_lease_error(f->conn, "/org/vmsig/endpoint/gamma", "power", FALSE, NULL);
        g_assert_cmpstr(e5, ==, "org.vmsig.Error.QuotaExceeded");
        close(a);
        wait_power_holder(f, ALPHA, "");
        int c = vt_acquire_lease(f->conn, "/org/vmsig/endpoint/gamma", "power", NULL);
        close(b);
        close(c);
}

static GVariant *events(guint n, guint32 type, gint32 value) {
        GVariantBuilder b;

        g_variant_builder_init(&b, G_VARIANT_TYPE("a(uui)"));
        for (guint i = 0; i < n; i++)
                g_variant_builder_add(&b, "(uui)", type, 30 + i % 10, value);
        return g_variant_new("(a(uui))", &b);
}

/* Input needs the input lease; bad events are refused before anything is
 * sent, each naming what is wrong. */
static void test_input(Fixture *f, gconstpointer data) {
        g_autofree char *e0 = vt_call_error(f->conn, ALPHA, VT_ENDPOINT_IFACE, "InjectInput", events(2, 0, 1), NULL);
        g_assert_cmpstr(e0, ==, "org.vmsig.Error.NotLeaseHolder");
        int lease = vt_acquire_lease(f->conn, ALPHA, "input", NULL);
        g_autoptr(GVariant) ok = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "InjectInput", events(2, 0, 1));

        static const struct {
                guint n;
                guint32 type;
                gint32 value;
                const char *says;
        } bad[] = {
                { 0, 0, 1, "No input events" },
                { 1025, 0, 1, "at most 1024" },
                { 3, 9, 1, "unknown type 9" },
                { 1, 3, 40000, "40000" },
                { 1, 0, 2, "neither 0" },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autofree char *message = NULL;
                g_autofree char *e = vt_call_error(f->conn, ALPHA, VT_ENDPOINT_IFACE, "InjectInput",
                                                   events(bad[i].n, bad[i].type, bad[i].value), &message);
                g_assert_cmpstr(e, ==, "org.vmsig.Error.InvalidArgument");
                g_assert_nonnull(strstr(message, bad[i].says));
        }
        g_autofree char *daemon_log = vt_daemon_log(f->daemon);
        g_assert_nonnull(strstr(daemon_log, "action=inject-input endpoint=alpha result=ok"));

        int power = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) off = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "PowerOff", NULL);
        g_autofree char *e1 = vt_call_error(f->conn, ALPHA, VT_ENDPOINT_IFACE, "InjectInput", events(1, 1, 1), NULL);
        g_assert_cmpstr(e1, ==, "org.vmsig.Error.InvalidState");
        close(power);
        close(lease);
}

typedef struct {
        guint done;
        char *error[3], *message[3];
} InjectReplies;

static void on_inject_reply(GObject *source, GAsyncResult *res, gpointer data) {
        InjectReplies *r = data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);

        if (error) {
                r->error[r->done] = g_dbus_error_get_remote_error(error);
                r->message[r->done] = g_strdup(error->message);
        }
        r->done++;
}

static gboolean injects_done(gpointer data) {
        return ((InjectReplies *) data)->done == 3;
}

/* The input lease ends while input waits for the (slow) VM: none of it
 * reaches the guest, and every waiting call fails, saying why. */
static void test_input_dropped_with_lease(Fixture *f, gconstpointer data) {
        const char *slow = "/org/vmsig/endpoint/slow";
        InjectReplies r = {};
        int lease = vt_acquire_lease(f->conn, slow, "input", NULL);

        for (size_t i = 0; i < 3; i++)
                g_dbus_connection_call(f->conn, "org.vmsig", slow, VT_ENDPOINT_IFACE, "InjectInput", events(2, 0, 1),
                                       NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_inject_reply, &r);
        g_dbus_connection_flush_sync(f->conn, NULL, NULL);
        g_usleep(50 * 1000); /* well inside the 300 ms the VM takes */
        GDBusConnection *admin = vt_bus_connect(f->bus);
        GVariantBuilder options;
        g_autoptr(GError) error = NULL;
        g_variant_builder_init(&options, G_VARIANT_TYPE("a{sv}"));
        g_variant_builder_add(&options, "{sv}", "force", g_variant_new_boolean(TRUE));
        g_autoptr(GVariant) forced = g_dbus_connection_call_with_unix_fd_list_sync(
                admin, VT_NAME, slow, VT_ENDPOINT_IFACE, "AcquireLease", g_variant_new("(sa{sv})", "input", &options),
                NULL, G_DBUS_CALL_FLAGS_NONE, 10000, NULL, NULL, NULL, &error);
        g_assert_no_error(error);
        g_assert_cmpuint(r.done, ==, 0);
        g_assert_true(vt_wait_for(injects_done, &r, 5000));
        for (size_t i = 0; i < 3; i++) {
                g_assert_cmpstr(r.error[i], ==, "org.vmsig.Error.LeaseRevoked");
                g_assert_nonnull(strstr(r.message[i], "Input for 'slow' was dropped before it reached the guest: "
                                                      "the input lease was revoked"));
                g_free(r.error[i]);
                g_free(r.message[i]);
        }
        g_autofree char *log = vt_daemon_log(f->daemon);
        g_assert_null(strstr(log, "action=inject-input endpoint=slow result=ok"));
        close(lease);
        g_object_unref(admin);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        VT_FIXTURE_TESTS("/lease/", test_acquire_and_busy, test_release, test_fd_close_ends_lease,
                         test_leaving_bus_ends_lease, test_kill_9_ends_lease, test_race, test_force_revoke,
                         test_reset_and_detach_revoke, test_bad_requests, test_input, test_input_dropped_with_lease);
        return g_test_run();
}
