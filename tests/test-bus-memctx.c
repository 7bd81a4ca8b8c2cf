/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memctx subscriptions over a real dbus-daemon and polkitd: the datum and
 * its fd, signals to subscribers only, the ways a subscription ends, that
 * the fd stays read-only even for a receiver that tries hard, and that the
 * daemon's fds return to their baseline. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gio/gunixfdlist.h>

#include "fixture.h"

#define ALPHA VT_ENDPOINT("alpha")
#define BETA VT_ENDPOINT("beta")
#define CONFIG_HEAD                                              \
        "<vmsigd><audit target=\"stderr\"/>"                     \
        "<admission max-subscriptions=\"2\"/>"                    \
        "<stub-vm name=\"alpha\" ram-size=\"1M\"/>"               \
        "<stub-vm name=\"beta\" ram-size=\"2M\"/>"                \
        "<stub-vm name=\"gamma\" ram-size=\"1M\"/>"
#define CONFIG CONFIG_HEAD "</vmsigd>"

/* data: with polkitd */
VT_FIXTURE_DEFINE(CONFIG, data ? VT_FIXTURE_POLKIT : 0)

static void test_datum(Fixture *f, gconstpointer data) {
        VtMemctx d = vt_subscribe_memctx(f->conn, BETA);
        struct stat st;
        guint64 gpa, size, offset;

        g_assert_cmpuint(d.epoch, ==, 1);
        g_assert_cmpuint(d.dtb, ==, 0);
        g_assert_cmpuint(d.size, ==, 2u << 20);
        g_assert_cmpuint(g_variant_n_children(d.ranges), ==, 1);
        g_variant_get_child(d.ranges, 0, "(ttt)", &gpa, &size, &offset);
        g_assert_cmpuint(gpa, ==, 0);
        g_assert_cmpuint(size, ==, 2u << 20);
        g_assert_cmpuint(offset, ==, 0);
        g_assert_cmpint(fstat(d.fd, &st), ==, 0);
        g_assert_cmpint(st.st_size, ==, 2 << 20);
        g_assert_cmpint(fcntl(d.fd, F_GETFL) & O_ACCMODE, ==, O_RDONLY);
        void *p = mmap(NULL, d.size, PROT_READ, MAP_SHARED, d.fd, 0);
        g_assert_true(p != MAP_FAILED);
        munmap(p, d.size);
        g_autofree char *log = vt_daemon_log(f->daemon);
        g_assert_nonnull(strstr(log, "action=subscribe-memctx endpoint=beta result=ok"));
        vt_memctx_clear(&d);
}

/* A reset: MemctxChanged, to the subscriber only. The epoch that ended had
 * no root, so nobody hears of it as invalidated (a root given by the
 * configuration: test-bus-bootstrap). */
static void test_signals_to_subscribers_only(Fixture *f, gconstpointer data) {
        GDBusConnection *other = vt_bus_connect(f->bus);
        VtSignalLog *mine = vt_signal_log_new(f->conn), *theirs = vt_signal_log_new(other);
        VtMemctx d = vt_subscribe_memctx(f->conn, ALPHA);
        int lease = vt_acquire_lease(other, ALPHA, "power", NULL);

        g_autoptr(GVariant) r = vt_call(other, ALPHA, VT_ENDPOINT_IFACE, "Reset", NULL);
        g_assert_true(vt_signal_log_wait(mine, "MemctxChanged " ALPHA " (uint64 2, uint64 0)", 5000));
        g_assert_cmpint(vt_signal_log_find(mine, "MemctxInvalidated", 0), <, 0);
        /* The other connection saw the epoch property change, not the datum. */
        g_assert_true(vt_signal_log_wait(theirs, "PropertiesChanged " ALPHA, 5000));
        vt_bus_iterate(f->bus, 200);
        g_assert_cmpint(vt_signal_log_find(theirs, "MemctxChanged", 0), <, 0);
        g_assert_cmpint(vt_signal_log_find(theirs, "MemctxInvalidated", 0), <, 0);

        /* Unsubscribed: no more. */
        g_autoptr(GVariant) u = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "UnsubscribeMemctx", NULL);
        g_autofree char *again = vt_call_error(f->conn, ALPHA, VT_ENDPOINT_IFACE, "UnsubscribeMemctx", NULL, NULL);
        g_assert_cmpstr(again, ==, "org.vmsig.Error.NotSubscribed");
        close(lease);
        lease = vt_acquire_lease(other, ALPHA, "power", NULL);
        g_autoptr(GVariant) r2 = vt_call(other, ALPHA, VT_ENDPOINT_IFACE, "Reset", NULL);
        vt_bus_iterate(f->bus, 300);
        g_assert_cmpint(vt_signal_log_find(mine, "MemctxChanged " ALPHA " (uint64 3", 0), <, 0);

        close(lease);
        vt_memctx_clear(&d);
        vt_signal_log_free(mine);
        vt_signal_log_free(theirs);
        g_object_unref(other);
}

static char *client_path(void) {
        return g_build_filename(g_getenv("VMSIG_BUILDDIR"), "tests", "vmsig-test-client", NULL);
}

/* A subscriber that is killed, or just leaves, loses its subscription. */
static void test_subscriber_gone(Fixture *f, gconstpointer data) {
        g_autofree char *client = client_path();
        const char *argv[] = { client, "--probe-memctx", "--hold", ALPHA, "org.freedesktop.DBus.Peer", "Ping", NULL };
        g_autoptr(GError) error = NULL;
        GPid pid;
        int out;

        g_assert_true(g_spawn_async_with_pipes(NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, vt_child_setup,
                                               GINT_TO_POINTER(getpid()), &pid, NULL, &out, NULL, &error));
        g_assert_no_error(error);
        void *subscribed[] = { f->daemon, (void *) "action=subscribe-memctx endpoint=alpha result=ok" };
        g_assert_true(vt_wait_for(vt_daemon_log_has, subscribed, 10000));
        kill(pid, SIGKILL);
        (void) waitpid(pid, NULL, 0);
        g_spawn_close_pid(pid);
        close(out);
        void *gone[] = { f->daemon, (void *) "of 'alpha' left the bus." };
        g_assert_true(vt_wait_for(vt_daemon_log_has, gone, 10000));

        GDBusConnection *c = vt_bus_connect(f->bus);
        VtMemctx d = vt_subscribe_memctx(c, ALPHA);
        g_object_unref(c);
        vt_memctx_clear(&d);
        void *gone2[] = { f->daemon, (void *) "of 'alpha' left the bus." };
        g_assert_true(vt_wait_for(vt_daemon_log_has, gone2, 10000));
}

/* The probe printed each of the lines want, a NULL-terminated list. */
static void assert_lines(GStrv lines, const char *const *want) {
        for (; *want; want++)
                g_assert_true(g_strv_contains((const char *const *) lines, *want));
}

#define LINES(...) ((const char *const[]) { __VA_ARGS__, NULL })

/* Whoever gets the fd can read guest memory and never write it: not
 * through the fd, not through a reopen of /proc/self/fd/N, not through a
 * writable mapping. Root may reopen, but the memfd is sealed. */
static void test_fd_is_read_only(Fixture *f, gconstpointer data) {
        if (!f->polkit)
                return;
        g_auto(GStrv) denied = vt_probe_memctx(f->bus, TRUE, ALPHA);
        assert_lines(denied, LINES("subscribe-error org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"));

        vt_polkit_allow(f->polkit, "action.id == \"org.vmsig.memctx\" && subject.user == \"nobody\"");
        g_auto(GStrv) nobody = vt_probe_memctx(f->bus, TRUE, ALPHA);
        assert_lines(nobody, LINES("subscribed epoch 1 size 1048576", "reopen-rw EACCES", "mmap-write EACCES",
                                   "write EBADF", "read OK 00 00 00 00 00 00 00 00"));

        g_auto(GStrv) root = vt_probe_memctx(f->bus, FALSE, ALPHA);
        assert_lines(root, LINES("reopen-rw OK", "reopen-write EPERM", "reopen-mmap-write EPERM", "mmap-write EACCES",
                                 "write EBADF"));
}

/* The daemon owns each RAM fd and closes it at detach: after attach,
 * subscribe and detach cycles its fd count is back where it started. Each
 * VM added again under the same name gets a path of its own. */
static void test_fd_baseline(Fixture *f, gconstpointer data) {
        guint baseline = 0;

        for (int i = 0; i < 4; i++) {
                vt_daemon_rewrite_config(f->daemon, CONFIG_HEAD "<stub-vm name=\"tmp\" ram-size=\"1M\"/></vmsigd>");
                g_autoptr(GVariant) r = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "Reload", NULL);
                GDBusConnection *c = vt_bus_connect(f->bus);
                g_autoptr(GVariant) found = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpoint",
                                                    g_variant_new("(s)", "tmp"));
                const char *path;
                g_variant_get(found, "(&o)", &path);
                /* Added again, it is a different VM at a different path. */
                g_autofree char *want = i == 0 ? g_strdup("/org/vmsig/endpoint/tmp")
                                               : g_strdup_printf("/org/vmsig/endpoint/tmp_r%d", i + 1);
                g_assert_cmpstr(path, ==, want);
                if (i > 0) {
                        g_autofree char *old = vt_call_error(c, "/org/vmsig/endpoint/tmp", VT_ENDPOINT_IFACE,
                                                             "UnsubscribeMemctx", NULL, NULL);
                        g_assert_cmpstr(old, ==, "org.freedesktop.DBus.Error.UnknownObject");
                }
                VtMemctx d = vt_subscribe_memctx(c, path);
                int lease = vt_acquire_lease(c, path, "input", NULL);
                g_autoptr(GVariant) x = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "DetachEndpoint",
                                                g_variant_new("(s)", "tmp"));
                vt_memctx_clear(&d);
                close(lease);
                g_object_unref(c);
                vt_bus_iterate(f->bus, 100);
                /* A round trip, so the daemon has processed the disconnect. */
                g_autoptr(GVariant) ping = vt_call(f->conn, VT_MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping",
                                                   NULL);
                guint n = vt_count_fds(vt_daemon_pid(f->daemon));
                g_test_message("cycle %d: %u fds", i, n);
                if (i == 0)
                        baseline = n;
                else
                        g_assert_cmpuint(n, ==, baseline);
        }
}

/* Per-uid subscription quota; subscribing twice counts once. A detach
 * ends the subscription, and its fd stays readable for the holder. */
static void test_quota_and_detach(Fixture *f, gconstpointer data) {
        VtMemctx a = vt_subscribe_memctx(f->conn, ALPHA), a2 = vt_subscribe_memctx(f->conn, ALPHA);
        VtMemctx b = vt_subscribe_memctx(f->conn, BETA);
        g_autofree char *quota = vt_subscribe_memctx_error(f->conn, "/org/vmsig/endpoint/gamma");

        g_assert_cmpstr(quota, ==, "org.vmsig.Error.QuotaExceeded");
        g_autoptr(GVariant) x = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "DetachEndpoint",
                                        g_variant_new("(s)", "alpha"));
        VtMemctx g = vt_subscribe_memctx(f->conn, "/org/vmsig/endpoint/gamma");
        void *p = mmap(NULL, a.size, PROT_READ, MAP_SHARED, a.fd, 0);
        g_assert_true(p != MAP_FAILED);
        munmap(p, a.size);
        vt_memctx_clear(&a);
        vt_memctx_clear(&a2);
        vt_memctx_clear(&b);
        vt_memctx_clear(&g);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
#define ADD(name, fn, polkit) \
        g_test_add("/memctx/" name, Fixture, (gconstpointer) (polkit), fixture_setup, fn, fixture_teardown)
        ADD("datum", test_datum, NULL);
        ADD("signals-to-subscribers-only", test_signals_to_subscribers_only, NULL);
        ADD("subscriber-gone", test_subscriber_gone, NULL);
        ADD("fd-is-read-only", test_fd_is_read_only, "polkit");
        ADD("fd-baseline", test_fd_baseline, NULL);
        ADD("quota-and-detach", test_quota_and_detach, NULL);
        return g_test_run();
}
