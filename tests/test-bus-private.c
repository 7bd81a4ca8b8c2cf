/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The private socket: the same objects peer-to-peer, for root only. busctl
 * and gdbus cannot speak to it (they send Hello), so GDBus is used
 * directly, in-process for root and through vmsig-test-client for others. */
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gunixfdlist.h>

#include "fixture.h"
#include "vt-util.h"

#define ALPHA VT_ENDPOINT("alpha")
#define CONFIG                                              \
        "<vmsigd><audit target=\"stderr\"/>"                \
        "<stub-vm name=\"alpha\" ram-size=\"1M\"/>"          \
        "<stub-vm name=\"beta\" ram-size=\"1M\" state=\"paused\"/></vmsigd>"

typedef struct {
        VT_FIXTURE; /* conn: on the system bus */
        GDBusConnection *p2p;
} Fixture;

static GDBusConnection *connect_p2p(const char *socket) {
        g_autoptr(GError) error = NULL;
        g_autofree char *address = g_strdup_printf("unix:path=%s", socket);
        GDBusConnection *c = g_dbus_connection_new_for_address_sync(
                address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT, NULL, NULL, &error);

        g_assert_no_error(error);
        return c;
}

static void fixture_setup(Fixture *f, gconstpointer data) {
        vt_fixture_setup(&f->vt, CONFIG, 0);
        f->p2p = connect_p2p(vt_daemon_private_socket(f->daemon));
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        g_clear_object(&f->p2p);
        vt_fixture_teardown(&f->vt);
}

static GVariant *p2p_call(Fixture *f, const char *path, const char *iface, const char *method, GVariant *args) {
        g_autoptr(GError) error = NULL;
        GVariant *r = g_dbus_connection_call_sync(f->p2p, NULL, path, iface, method, args, NULL,
                                                  G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &error);

        g_assert_no_error(error);
        return r;
}

static char *p2p_state(Fixture *f, const char *path) {
        g_autoptr(GVariant) r = p2p_call(f, path, "org.freedesktop.DBus.Properties", "Get",
                                         g_variant_new("(ss)", VT_ENDPOINT_IFACE, "State"));
        g_autoptr(GVariant) v = NULL;

        g_variant_get(r, "(v)", &v);
        return g_variant_dup_string(v, NULL);
}

/* A peer that connects after an endpoint changed state still sees it: the
 * retained roster event is then a CHANGED, not the ADDED. */
static void test_late_peer_sees_changed_endpoints(Fixture *f, gconstpointer data) {
        int lease = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL);
        GDBusConnection *late = connect_p2p(vt_daemon_private_socket(f->daemon));
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) list = g_dbus_connection_call_sync(late, NULL, VT_MANAGER_PATH, VT_MANAGER_IFACE,
                                                               "ListEndpoints", NULL, NULL, G_DBUS_CALL_FLAGS_NONE,
                                                               10000, NULL, &error);

        g_assert_no_error(error);
        g_autoptr(GVariant) endpoints = g_variant_get_child_value(list, 0);
        g_assert_cmpuint(g_variant_n_children(endpoints), ==, 2);
        g_autoptr(GVariant) got = g_dbus_connection_call_sync(late, NULL, VT_MANAGER_PATH, VT_MANAGER_IFACE,
                                                              "GetEndpoint", g_variant_new("(s)", "alpha"), NULL,
                                                              G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &error);
        g_assert_no_error(error);
        close(lease);
        g_object_unref(late);
}

static void test_socket_is_root_only(Fixture *f, gconstpointer data) {
        struct stat st;

        g_assert_cmpint(stat(vt_daemon_private_socket(f->daemon), &st), ==, 0);
        g_assert_true(S_ISSOCK(st.st_mode));
        g_assert_cmpuint(st.st_uid, ==, 0);
        g_assert_cmpuint(st.st_mode & 0777, ==, 0600);
}

/* The same objects, methods, properties and errors as on the bus. */
static void test_root_calls(Fixture *f, gconstpointer data) {
        g_autoptr(GVariant) list = p2p_call(f, VT_MANAGER_PATH, VT_MANAGER_IFACE, "ListEndpoints", NULL);
        g_autoptr(GVariant) got = p2p_call(f, VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpoint",
                                           g_variant_new("(s)", "beta"));
        g_autoptr(GVariant) objects = p2p_call(f, VT_MANAGER_PATH, "org.freedesktop.DBus.ObjectManager",
                                               "GetManagedObjects", NULL);
        g_autoptr(GError) error = NULL;
        const char *path;

        g_autoptr(GVariant) endpoints = g_variant_get_child_value(list, 0);
        g_autoptr(GVariant) managed = g_variant_get_child_value(objects, 0);
        g_assert_cmpuint(g_variant_n_children(endpoints), ==, 2);
        g_variant_get(got, "(&o)", &path);
        g_assert_cmpstr(path, ==, "/org/vmsig/endpoint/beta");
        g_assert_cmpuint(g_variant_n_children(managed), ==, 2);

        g_autoptr(GVariant) none = g_dbus_connection_call_sync(f->p2p, NULL, VT_MANAGER_PATH, VT_MANAGER_IFACE,
                                                               "GetEndpoint", g_variant_new("(s)", "gamma"), NULL,
                                                               G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &error);
        g_assert_null(none);
        g_autofree char *name = g_dbus_error_get_remote_error(error);
        g_assert_cmpstr(name, ==, "org.vmsig.Error.NoSuchEndpoint");

        /* A change made on the private socket shows on the bus. */
        g_autoptr(GUnixFDList) fds = NULL;
        g_clear_error(&error);
        g_autoptr(GVariant) lease = g_dbus_connection_call_with_unix_fd_list_sync(
                f->p2p, NULL, ALPHA, VT_ENDPOINT_IFACE, "AcquireLease", g_variant_new("(sa{sv})", "power", NULL),
                NULL, G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &fds, NULL, &error);
        g_assert_no_error(error);
        g_autofree char *holder = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "PowerLeaseHolder");
        g_assert_true(g_str_has_prefix(holder, "p2p-"));
        g_autoptr(GVariant) r = p2p_call(f, ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL);
        g_autofree char *bus_state = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "State");
        g_autofree char *p2p_state_ = p2p_state(f, ALPHA);
        g_assert_cmpstr(bus_state, ==, "paused");
        g_assert_cmpstr(p2p_state_, ==, "paused");
}

typedef struct {
        GPtrArray *seen;
} Signals;

static void on_signal(GDBusConnection *c, const char *sender, const char *path, const char *iface,
                      const char *member, GVariant *params, gpointer data) {
        Signals *s = data;
        g_autofree char *text = g_variant_print(params, FALSE);
        g_ptr_array_add(s->seen, g_strdup_printf("%s %s %s", member, path, text));
}

static gboolean saw_state_paused(gpointer data) {
        Signals *s = data;

        for (guint i = 0; i < s->seen->len; i++) {
                const char *e = g_ptr_array_index(s->seen, i);
                if (g_str_has_prefix(e, "PropertiesChanged " ALPHA) && strstr(e, "'State': <'paused'>"))
                        return TRUE;
        }
        return FALSE;
}

/* Signals reach private peers too: a change made through the bus emits
 * PropertiesChanged on the private connection. */
static void test_signals(Fixture *f, gconstpointer data) {
        Signals s = { .seen = g_ptr_array_new_with_free_func(g_free) };
        guint id = g_dbus_connection_signal_subscribe(f->p2p, NULL, NULL, NULL, NULL, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                                                      on_signal, &s, NULL);
        int lease = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL);
        close(lease);

        g_assert_true(vt_wait_for(saw_state_paused, &s, 5000));
        g_dbus_connection_signal_unsubscribe(f->p2p, id);
        g_ptr_array_unref(s.seen);
}

static char *run_client(Fixture *f, const char *const *prefix) {
        g_autofree char *client = g_build_filename(g_getenv("VMSIG_BUILDDIR"), "tests", "vmsig-test-client", NULL);
        g_autofree char *p2p = g_strdup_printf("--p2p=%s", vt_daemon_private_socket(f->daemon));
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        char *out = NULL;

        for (; prefix && *prefix; prefix++)
                g_ptr_array_add(argv, (gpointer) *prefix);
        g_ptr_array_add(argv, client);
        g_ptr_array_add(argv, p2p);
        g_ptr_array_add(argv, VT_MANAGER_PATH);
        g_ptr_array_add(argv, VT_MANAGER_IFACE);
        g_ptr_array_add(argv, "ListEndpoints");
        g_ptr_array_add(argv, NULL);
        (void) vt_bus_runv(f->bus, &out, (const char *const *) argv->pdata);
        g_test_message("client: %s", out);
        return out;
}

/* A root client process works; nobody cannot even open the socket; nobody
 * with CAP_DAC_OVERRIDE can, and is then refused by SO_PEERCRED. */
static void test_admission(Fixture *f, gconstpointer data) {
        const char *nobody[] = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", NULL };
        const char *nobody_dac[] = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                     "--inh-caps=+dac_override", "--ambient-caps=+dac_override", NULL };
        g_autofree char *root = run_client(f, NULL);
        g_autofree char *plain = run_client(f, nobody);
        g_autofree char *dac = run_client(f, nobody_dac);
        g_autofree char *log = NULL;

        g_assert_true(g_str_has_prefix(root, "ok ("));
        g_assert_true(g_str_has_prefix(plain, "error (connect)"));
        g_assert_true(g_str_has_prefix(dac, "error (connect)"));
        log = vt_daemon_log(f->daemon);
        g_assert_nonnull(strstr(log, "vmsig-audit: uid=65534 "));
        g_assert_nonnull(strstr(log, " sender=p2p action=connect endpoint=- result=denied reason=p2p-not-root"));
        /* The refused peer did not disturb the others. */
        g_autoptr(GVariant) r = p2p_call(f, VT_MANAGER_PATH, VT_MANAGER_IFACE, "ListEndpoints", NULL);
}

static gssize read_some(int fd, guint8 *buf, gsize size) {
        struct timeval tv = { .tv_sec = 5 };

        g_assert_cmpint(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), ==, 0);
        return read(fd, buf, size);
}

/* A client that sends BEGIN and its first call in one write (as a fast
 * client on a busy machine ends up doing) gets its answer. sd-bus alone
 * would leave that call unread. */
static void test_pipelined_first_call(Fixture *f, gconstpointer data) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        g_autoptr(GDBusMessage) m = g_dbus_message_new_method_call(NULL, VT_MANAGER_PATH, "org.freedesktop.DBus.Peer",
                                                                   "Ping");
        g_autoptr(GError) error = NULL;
        gsize blob_size;
        guint8 buf[4096];
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        g_assert_cmpint(fd, >=, 0);
        g_strlcpy(sa.sun_path, vt_daemon_private_socket(f->daemon), sizeof sa.sun_path);
        g_assert_cmpint(connect(fd, (struct sockaddr *) &sa, sizeof sa), ==, 0);
        /* uid 0, hex-encoded "0" */
        g_assert_cmpint(write(fd, "\0AUTH EXTERNAL 30\r\n", 19), ==, 19);
        g_assert_cmpint(read_some(fd, buf, sizeof buf), >, 0);
        g_assert_true(g_str_has_prefix((char *) buf, "OK "));

        g_dbus_message_set_serial(m, 1);
        g_autofree guchar *blob = g_dbus_message_to_blob(m, &blob_size, G_DBUS_CAPABILITY_FLAGS_NONE, &error);
        g_assert_no_error(error);
        g_autoptr(GByteArray) out = g_byte_array_new();
        g_byte_array_append(out, (const guint8 *) "BEGIN\r\n", 7);
        g_byte_array_append(out, blob, blob_size);
        g_assert_cmpint(write(fd, out->data, out->len), ==, (gssize) out->len);

        gssize n = read_some(fd, buf, sizeof buf);
        g_test_message("read %zd: %.*s", n, (int) MAX(n, 0), buf);
        g_assert_cmpint(n, >=, 16);
        g_autoptr(GDBusMessage) reply = g_dbus_message_new_from_blob(buf, (gsize) n, G_DBUS_CAPABILITY_FLAGS_NONE,
                                                                     &error);
        g_assert_no_error(error);
        g_assert_cmpint(g_dbus_message_get_message_type(reply), ==, G_DBUS_MESSAGE_TYPE_METHOD_RETURN);
        g_assert_cmpuint(g_dbus_message_get_reply_serial(reply), ==, 1);
        close(fd);
}

/* A peer that goes away is cleaned up, and the socket file goes with the
 * daemon. */
static void test_disconnect_and_exit(Fixture *f, gconstpointer data) {
        g_autofree char *socket = g_strdup(vt_daemon_private_socket(f->daemon));
        void *args[] = { f->daemon, (void *) "Private connection closed." };

        g_clear_object(&f->p2p);
        g_assert_true(vt_wait_for(vt_daemon_log_has, args, 5000));
        g_assert_cmpint(vt_daemon_stop(f->daemon), ==, 0);
        f->daemon = NULL;
        g_assert_false(g_file_test(socket, G_FILE_TEST_EXISTS));
        g_clear_object(&f->conn);
        vt_bus_stop(f->bus);
}

/* A connected private peer that does nothing costs vmsigd nothing: no
 * timer keeps waking it (one that did kept the heap from ever being
 * trimmed while a root control stayed connected). The peer must still be
 * served at once afterwards. */
static void test_idle_peer_no_wakeups(Fixture *f, gconstpointer data) {
        GPid pid = vt_daemon_pid(f->daemon);
        g_autoptr(GVariant) list = p2p_call(f, VT_MANAGER_PATH, VT_MANAGER_IFACE, "ListEndpoints", NULL);

        vt_bus_iterate(f->bus, 3500); /* the heap trim after the last work */
        guint64 before = vt_context_switches(pid);
        vt_bus_iterate(f->bus, 2500);
        g_assert_cmpuint(vt_context_switches(pid) - before, ==, 0);
        g_autofree char *state = p2p_state(f, ALPHA);
        g_assert_cmpstr(state, ==, "running");
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        VT_FIXTURE_TESTS("/private/", test_socket_is_root_only, test_root_calls, test_signals, test_admission,
                         test_pipelined_first_call, test_late_peer_sees_changed_endpoints, test_idle_peer_no_wakeups);
        g_test_add("/private/disconnect-and-exit", Fixture, NULL, fixture_setup, test_disconnect_and_exit, NULL);
        return g_test_run();
}
