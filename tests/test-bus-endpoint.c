/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vmsig.Endpoint over a real dbus-daemon: properties, lifecycle and its
 * errors, PropertiesChanged, and what an unprivileged caller may do. */
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "vt-util.h"

#define ALPHA VT_ENDPOINT("alpha")
#define CONFIG                                                                                           \
        "<vmsigd>"                                                                                        \
        "<stub-vm name=\"alpha\" uuid=\"6f1c9a52-8d3e-4b7a-9c21-0e5f4d3b2a19\" ram-size=\"4M\"/>"         \
        "<stub-vm name=\"beta\" ram-size=\"2M\"/>"                                                        \
        "</vmsigd>"

typedef struct {
        VT_FIXTURE;
        int power_lease; /* on alpha: lifecycle calls need it */
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data) {
        vt_fixture_setup(&f->vt, CONFIG, 0);
        f->power_lease = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        close(f->power_lease);
        vt_fixture_teardown(&f->vt);
}

static char *state_of(Fixture *f, const char *path) {
        return vt_get_string(f->conn, path, VT_ENDPOINT_IFACE, "State");
}

static void test_properties(Fixture *f, gconstpointer data) {
        g_autoptr(GVariant) all = NULL, caps = NULL;
        g_autoptr(GVariant) reply = vt_call(f->conn, ALPHA, "org.freedesktop.DBus.Properties", "GetAll",
                                            g_variant_new("(s)", VT_ENDPOINT_IFACE));
        const char *s;
        guint32 u;
        guint64 t;

        all = g_variant_get_child_value(reply, 0);
        g_assert_true(g_variant_lookup(all, "Name", "&s", &s));
        g_assert_cmpstr(s, ==, "alpha");
        g_assert_true(g_variant_lookup(all, "Uuid", "&s", &s));
        g_assert_cmpstr(s, ==, "6f1c9a52-8d3e-4b7a-9c21-0e5f4d3b2a19");
        g_assert_true(g_variant_lookup(all, "Vmid", "u", &u));
        g_assert_cmpuint(u, ==, 1);
        g_assert_true(g_variant_lookup(all, "Generation", "u", &u));
        g_assert_cmpuint(u, ==, 1);
        g_assert_true(g_variant_lookup(all, "Backend", "&s", &s));
        g_assert_cmpstr(s, ==, "stub");
        g_assert_true(g_variant_lookup(all, "State", "&s", &s));
        g_assert_cmpstr(s, ==, "running");
        g_assert_true(g_variant_lookup(all, "MemctxEpoch", "t", &t));
        g_assert_cmpuint(t, ==, 1);
        g_assert_true(g_variant_lookup(all, "RamSize", "t", &t));
        g_assert_cmpuint(t, ==, 4u << 20);
        for (const char *const *p = (const char *const[]) { "InputLeaseHolder", "MemoryWriteLeaseHolder", NULL };
             *p; p++) {
                g_assert_true(g_variant_lookup(all, *p, "&s", &s));
                g_assert_cmpstr(s, ==, "");
        }
        g_assert_true(g_variant_lookup(all, "PowerLeaseHolder", "&s", &s));
        g_assert_cmpstr(s, ==, g_dbus_connection_get_unique_name(f->conn));
        caps = g_variant_lookup_value(all, "Capabilities", G_VARIANT_TYPE("as"));
        g_autofree char *caps_text = g_variant_print(caps, FALSE);
        g_assert_cmpstr(caps_text, ==, "['memctx', 'input', 'lifecycle', 'display']");

        /* A stub VM without a configured uuid still gets a valid one. */
        g_autofree char *uuid = vt_get_string(f->conn, "/org/vmsig/endpoint/beta", VT_ENDPOINT_IFACE, "Uuid");
        g_assert_true(g_uuid_string_is_valid(uuid));
}

typedef struct {
        VtSignalLog *log;
        gboolean replied;
        gboolean signal_before_reply;
        char *error;
} CallCtx;

static void on_reply(GObject *src, GAsyncResult *res, gpointer p) {
        CallCtx *ctx = p;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) r = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &error);

        ctx->signal_before_reply = vt_signal_log_find(ctx->log, "PropertiesChanged " ALPHA, 0) >= 0;
        if (error)
                ctx->error = g_dbus_error_get_remote_error(error);
        ctx->replied = TRUE;
}

static gboolean replied(gpointer p) {
        return ((CallCtx *) p)->replied;
}

/* Calls a lifecycle method asynchronously and reports whether the state's
 * PropertiesChanged arrived before the reply. */
static CallCtx *lifecycle(Fixture *f, const char *method) {
        CallCtx *ctx = g_new0(CallCtx, 1);
        ctx->log = vt_signal_log_new(f->conn);
        g_dbus_connection_call(f->conn, VT_NAME, ALPHA, VT_ENDPOINT_IFACE, method, NULL, NULL,
                               G_DBUS_CALL_FLAGS_NO_AUTO_START, 20000, NULL, on_reply, ctx);
        g_assert_true(vt_wait_for(replied, ctx, 20000));
        return ctx;
}

static void call_ctx_free(CallCtx *ctx) {
        vt_signal_log_free(ctx->log);
        g_free(ctx->error);
        g_free(ctx);
}

static void expect_transition(Fixture *f, const char *method, const char *state) {
        CallCtx *ctx = lifecycle(f, method);
        g_autofree char *now = state_of(f, ALPHA);

        g_assert_null(ctx->error);
        g_assert_cmpstr(now, ==, state);
        call_ctx_free(ctx);
}

static void expect_invalid(Fixture *f, const char *method, const char *state) {
        CallCtx *ctx = lifecycle(f, method);
        g_autofree char *now = state_of(f, ALPHA);

        g_assert_cmpstr(ctx->error, ==, "org.vmsig.Error.InvalidState");
        g_assert_cmpstr(now, ==, state);
        /* A refused transition emits nothing. */
        g_assert_cmpint(vt_signal_log_find(ctx->log, "PropertiesChanged", 0), ==, -1);
        call_ctx_free(ctx);
}

static void test_lifecycle(Fixture *f, gconstpointer data) {
        CallCtx *ctx = lifecycle(f, "Pause");
        g_assert_null(ctx->error);
        g_assert_true(ctx->signal_before_reply);
        g_assert_cmpint(vt_signal_log_find(ctx->log,
                                           "PropertiesChanged " ALPHA " ('org.vmsig.Endpoint', {'State': <'paused'>}",
                                           0),
                        >=, 0);
        call_ctx_free(ctx);

        expect_invalid(f, "Pause", "paused");
        expect_transition(f, "Resume", "running");
        expect_invalid(f, "Resume", "running");
        expect_transition(f, "PowerOff", "shut-off");
        expect_invalid(f, "Pause", "shut-off");
        expect_invalid(f, "Resume", "shut-off");
        expect_invalid(f, "Reset", "shut-off");
        expect_invalid(f, "PowerOff", "shut-off");
        expect_invalid(f, "Kill", "shut-off");

        /* The other endpoint was not affected. */
        g_autofree char *beta = state_of(f, "/org/vmsig/endpoint/beta");
        g_assert_cmpstr(beta, ==, "running");
}

static void test_invalid_state_message(Fixture *f, gconstpointer data) {
        g_autofree char *message = NULL;
        g_autofree char *name = vt_call_error(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Resume", NULL, &message);
        g_assert_cmpstr(name, ==, "org.vmsig.Error.InvalidState");
        g_assert_cmpstr(message, ==, "Cannot resume endpoint 'alpha': it is running.");
}

/* A reset starts a new memctx epoch, announced with PropertiesChanged. */
static void test_reset_bumps_epoch(Fixture *f, gconstpointer data) {
        g_assert_cmpuint(vt_get_uint(f->conn, ALPHA, VT_ENDPOINT_IFACE, "MemctxEpoch"), ==, 1);
        CallCtx *ctx = lifecycle(f, "Reset");
        g_assert_null(ctx->error);
        g_assert_cmpint(vt_signal_log_find(ctx->log,
                                           "PropertiesChanged " ALPHA
                                           " ('org.vmsig.Endpoint', {'MemctxEpoch': <uint64 2>",
                                           0),
                        >=, 0);
        call_ctx_free(ctx);
        g_assert_cmpuint(vt_get_uint(f->conn, ALPHA, VT_ENDPOINT_IFACE, "MemctxEpoch"), ==, 2);
        g_autofree char *state = state_of(f, ALPHA);
        g_assert_cmpstr(state, ==, "running");
}

/* Several calls in flight at once are each answered, in order. */
static void test_concurrent_calls(Fixture *f, gconstpointer data) {
        CallCtx ctx[3] = { 0 };
        const char *methods[3] = { "Pause", "Pause", "Resume" };
        VtSignalLog *log = vt_signal_log_new(f->conn);

        for (int i = 0; i < 3; i++) {
                ctx[i].log = log;
                g_dbus_connection_call(f->conn, VT_NAME, ALPHA, VT_ENDPOINT_IFACE, methods[i], NULL, NULL,
                                       G_DBUS_CALL_FLAGS_NO_AUTO_START, 20000, NULL, on_reply, &ctx[i]);
        }
        for (int i = 0; i < 3; i++)
                g_assert_true(vt_wait_for(replied, &ctx[i], 20000));
        g_assert_null(ctx[0].error);
        g_assert_cmpstr(ctx[1].error, ==, "org.vmsig.Error.InvalidState");
        g_assert_null(ctx[2].error);
        g_autofree char *state = state_of(f, ALPHA);
        g_assert_cmpstr(state, ==, "running");
        g_free(ctx[1].error);
        vt_signal_log_free(log);
}

static guint64 logged_sequence(gpointer log) {
        return GPOINTER_TO_SIZE(g_hash_table_lookup(((VtSignalLog *) log)->sequences, ALPHA));
}

/* Every PropertiesChanged of an endpoint carries the next Sequence (the
 * signal log aborts on a gap), and the property reads the last one sent;
 * the Sequence of another endpoint does not move. */

static void test_sequence(Fixture *f, gconstpointer data) {
        guint64 before = vt_get_uint(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Sequence");
        guint64 beta = vt_get_uint(f->conn, "/org/vmsig/endpoint/beta", VT_ENDPOINT_IFACE, "Sequence");
        const char *methods[] = { "Pause", "Resume", "Pause", "Resume", "Reset" }; /* a reset ends the lease */
        VtSignalLog *log = vt_signal_log_new(f->conn);
        guint64 sequence;

        g_assert_cmpuint(before, >, 0);
        for (size_t i = 0; i < G_N_ELEMENTS(methods); i++) {
                CallCtx *ctx = lifecycle(f, methods[i]);
                g_assert_null(ctx->error);
                call_ctx_free(ctx);
        }
        sequence = vt_get_uint(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Sequence");
        g_assert_cmpuint(sequence, >, before);
        /* The signals were sent before the replies; the log sees them all. */
        g_assert_true(vt_wait_for_value(logged_sequence, log, sequence, 5000));
        /* Four State changes and the new epoch at least, each counted. */
        g_assert_cmpuint(log->n_sequenced, >=, 5);
        g_assert_cmpuint(log->n_sequenced, ==, sequence - before);
        g_assert_cmpuint(vt_get_uint(f->conn, "/org/vmsig/endpoint/beta", VT_ENDPOINT_IFACE, "Sequence"), ==, beta);
        vt_signal_log_free(log);
}

/* Reading is open to everyone; changing a VM needs the power lease, which
 * nobody does not hold (test-bus-polkit covers authorization). */
static void test_unprivileged(Fixture *f, gconstpointer data) {
        g_autofree char *out = NULL;
        int status = vt_bus_run(f->bus, &out, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                "busctl", "--system", "get-property", "org.vmsig", ALPHA, VT_ENDPOINT_IFACE, "State",
                                NULL);
        g_assert_cmpint(status, ==, 0);
        g_assert_cmpstr(out, ==, "s \"running\"\n");

        g_autofree char *out2 = NULL;
        status = vt_bus_run(f->bus, &out2, "sh", "-c",
                            "setpriv --reuid=nobody --regid=nogroup --clear-groups gdbus call --system "
                            "--dest org.vmsig --object-path " ALPHA " --method org.vmsig.Endpoint.Pause 2>&1",
                            NULL);
        g_assert_cmpint(status, !=, 0);
        g_assert_nonnull(strstr(out2, "org.vmsig.Error.NotLeaseHolder"));
        g_autofree char *state = state_of(f, ALPHA);
        g_assert_cmpstr(state, ==, "running");
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        VT_FIXTURE_TESTS("/bus/endpoint/", test_properties, test_lifecycle, test_invalid_state_message,
                         test_reset_bumps_epoch, test_concurrent_calls, test_sequence, test_unprivileged);
        return g_test_run();
}
