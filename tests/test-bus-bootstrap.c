/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The self-healing bootstrap, end to end: vmsigd keeps looking for the
 * System DTB while the guest "boots", finds it once the kernel's
 * structures are in RAM, publishes it with a new memctx epoch, says so in
 * one line, and stops looking. */
#include <string.h>
#include <unistd.h>
#include <gio/gunixfdlist.h>

#include "client.h"
#include "guest-image.h"
#include "harness.h"

#define ALPHA "/org/vmsig/endpoint/alpha"

typedef struct {
        VtBus *bus;
        VtDaemon *daemon;
        GDBusConnection *conn;
        VtSignalLog *log;
        GuestImageSpec spec;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data) {
        f->bus = vt_bus_start();
        f->daemon = vt_daemon_start(f->bus, data);
        f->conn = vt_bus_connect(f->bus);
        f->log = vt_signal_log_new(f->conn);
        guest_image_spec_init(&f->spec);
        f->spec.layout = GUEST_IMAGE_LAYOUT_FLAT;
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        vt_signal_log_free(f->log);
        g_clear_object(&f->conn);
        g_assert_cmpint(vt_daemon_stop(f->daemon), ==, 0);
        vt_bus_stop(f->bus);
}

/* The guest finishes booting: its kernel structures appear in RAM, written
 * the only way anything is written into a VM, with MemWrite. */
static void boot_guest(Fixture *f) {
        GuestImageWrite *w = NULL;
        size_t n = 0;
        int lease = vt_acquire_lease(f->conn, ALPHA, "memory-write", NULL);

        g_assert_cmpint(guest_image_build(&f->spec, &w, &n), ==, 0);
        for (size_t i = 0; i < n; i++) {
                GVariant *data = g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, w[i].data, w[i].len, 1);
                g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "MemWrite",
                                                g_variant_new("(t@aya{sv})", w[i].gpa, data, NULL));
        }
        guest_image_writes_free(w, n);
        close(lease);
}

static char *state(Fixture *f) {
        return vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "BootstrapState");
}

static guint attempts(Fixture *f) {
        return (guint) vt_get_uint(f->conn, ALPHA, VT_ENDPOINT_IFACE, "BootstrapAttempts");
}

static gboolean is_ready(gpointer data) {
        g_autofree char *s = state(data);
        return g_str_equal(s, "ready");
}

static guint count_log(Fixture *f, const char *needle) {
        g_autofree char *log = vt_daemon_log(f->daemon);
        guint n = 0;

        for (const char *s = log; (s = strstr(s, needle)); s += strlen(needle))
                n++;
        return n;
}

typedef struct {
        guint64 dtb, epoch;
} Datum;

static Datum subscribe(GDBusConnection *c) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) reply = g_dbus_connection_call_with_unix_fd_list_sync(
                c, VT_NAME, ALPHA, VT_ENDPOINT_IFACE, "SubscribeMemctx", NULL, NULL, G_DBUS_CALL_FLAGS_NONE, 10000,
                NULL, &fds, NULL, &error);
        Datum d;

        g_assert_no_error(error);
        g_variant_get(reply, "(httt@a(ttt))", NULL, &d.dtb, &d.epoch, NULL, NULL);
        return d;
}

#define CONFIG_RETRY                                                                                      \
        "<vmsigd><limits bootstrap-backoff-max-ms=\"1000\"/>"                                             \
        "<stub-vm name=\"alpha\" ram-size=\"64M\" bootstrap=\"yes\" fail-boots=\"3\"/></vmsigd>"

/* With fail-boots="3" and the guest's structures in place, the 4th attempt
 * finds the root; one diagnostic line in all; then no more attempts; a late
 * subscriber gets the datum. */
static void test_retry(Fixture *f, gconstpointer data) {
        boot_guest(f);
        g_assert_true(vt_wait_for(is_ready, f, 20000));
        g_assert_cmpuint(attempts(f), ==, 4);
        g_autofree char *method = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "BootstrapMethod");
        g_assert_cmpstr(method, ==, "eprocess");
        g_assert_cmpuint(count_log(f, "No System DTB in the RAM of 'alpha' yet"), ==, 1);
        g_assert_cmpuint(count_log(f, "Found the System DTB of 'alpha' at 0x1aa000 (eprocess) after 4 attempts"), ==,
                         1);
        /* Disarmed: nothing more happens, well past the longest backoff. */
        g_usleep(1500 * 1000);
        g_assert_cmpuint(attempts(f), ==, 4);
        GDBusConnection *late = vt_bus_connect(f->bus);
        Datum d = subscribe(late);
        g_assert_cmpuint(d.dtb, ==, f->spec.dtb);
        g_assert_cmpuint(d.epoch, ==, 2);
        g_object_unref(late);
}

#define CONFIG_WATCH                                                                                      \
        "<vmsigd><limits bootstrap-backoff-max-ms=\"500\"/>"                                              \
        "<stub-vm name=\"alpha\" ram-size=\"64M\" bootstrap=\"yes\"/></vmsigd>"

static gboolean retried_twice(gpointer data) {
        return attempts(data) >= 2;
}

/* vmsigd watches an empty guest; the guest boots; the root is found and
 * MemctxChanged tells the subscriber. A reset starts it all over. */
static void test_guest_boots_while_watching(Fixture *f, gconstpointer data) {
        Datum before = subscribe(f->conn);

        g_assert_cmpuint(before.dtb, ==, 0);
        g_assert_true(vt_wait_for(retried_twice, f, 10000));
        g_autofree char *s = state(f);
        g_assert_true(g_str_equal(s, "retrying") || g_str_equal(s, "searching"));
        g_assert_true(vt_signal_log_wait(f->log, "PropertiesChanged " ALPHA " ('org.vmsig.Endpoint', "
                                                 "{'BootstrapState': <'retrying'>",
                                         5000));

        boot_guest(f);
        g_autofree char *changed = g_strdup_printf("MemctxChanged " ALPHA " (uint64 %" G_GUINT64_FORMAT
                                                   ", uint64 %" G_GUINT64_FORMAT ")",
                                                   before.epoch + 1, (guint64) f->spec.dtb);
        g_assert_true(vt_signal_log_wait(f->log, changed, 20000));
        g_assert_true(is_ready(f));
        g_assert_cmpuint(count_log(f, "No System DTB in the RAM of 'alpha' yet"), ==, 1);

        /* A reset: the root is unknown again, then found again. */
        int power = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Reset", NULL);
        close(power);
        g_autofree char *again = g_strdup_printf("MemctxChanged " ALPHA " (uint64 %" G_GUINT64_FORMAT
                                                 ", uint64 %" G_GUINT64_FORMAT ")",
                                                 before.epoch + 3, (guint64) f->spec.dtb);
        g_assert_true(vt_signal_log_wait(f->log, again, 20000));
        g_assert_true(is_ready(f));
}

/* Without bootstrap="yes" a stub VM never searches: nothing to wake for. */
static void test_disabled_is_idle(Fixture *f, gconstpointer data) {
        g_autofree char *s = state(f);
        g_autofree char *method = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "BootstrapMethod");
        g_assert_cmpstr(s, ==, "idle");
        g_assert_cmpstr(method, ==, "");
        g_usleep(600 * 1000);
        g_assert_cmpuint(attempts(f), ==, 0);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add("/bootstrap/retry", Fixture, CONFIG_RETRY, fixture_setup, test_retry, fixture_teardown);
        g_test_add("/bootstrap/guest-boots-while-watching", Fixture, CONFIG_WATCH, fixture_setup,
                   test_guest_boots_while_watching, fixture_teardown);
        g_test_add("/bootstrap/disabled-is-idle", Fixture, "<vmsigd><stub-vm name=\"alpha\" ram-size=\"64M\"/></vmsigd>",
                   fixture_setup, test_disabled_is_idle, fixture_teardown);
        return g_test_run();
}
