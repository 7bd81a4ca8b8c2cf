/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Authorization against a real polkitd: root, nobody, rules, the
 * interactive flag, polkit's absence, the allow-list, quotas and the audit
 * records of each decision. Unprivileged calls are made by
 * vmsig-test-client under setpriv. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "vt-util.h"

#define ALPHA VT_ENDPOINT("alpha")
#define BETA VT_ENDPOINT("beta")

#define CONFIG_BASE                                                   \
        "<vmsigd><audit target=\"stderr\"/>"                          \
        "<stub-vm name=\"alpha\" ram-size=\"1M\"/>"                    \
        "<stub-vm name=\"beta\" ram-size=\"1M\"/>"

VT_FIXTURE_DEFINE(data ?: CONFIG_BASE "</vmsigd>", VT_FIXTURE_POLKIT)

/* Runs vmsig-test-client as nobody, first taking the lease of class lease
 * on path if lease is non-NULL; returns its output lines, e.g.
 * { "lease-error org.freedesktop.DBus.Error.AccessDenied ...", "error ..." }. */
static GStrv run_as_nobody(Fixture *f, gboolean interactive, const char *lease, const char *path, const char *iface,
                           const char *method, const char *args) {
        g_autofree char *client = g_build_filename(g_getenv("VMSIG_BUILDDIR"), "tests", "vmsig-test-client", NULL);
        g_autofree char *lease_arg = lease ? g_strdup_printf("--lease=%s", lease) : NULL;
        const char *argv[16] = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", client };
        size_t n = 5;
        g_autofree char *out = NULL;

        if (interactive)
                argv[n++] = "--interactive";
        if (lease_arg)
                argv[n++] = lease_arg;
        argv[n++] = path;
        argv[n++] = iface;
        argv[n++] = method;
        if (args)
                argv[n++] = args;
        argv[n] = NULL;
        (void) vt_bus_runv(f->bus, &out, argv);
        g_assert_nonnull(out);
        return g_strsplit(g_strchomp(out), "\n", -1);
}

/* The result line of a call made by nobody without a lease. */
static char *call_as_nobody(Fixture *f, gboolean interactive, const char *path, const char *iface,
                            const char *method, const char *args) {
        g_auto(GStrv) lines = run_as_nobody(f, interactive, NULL, path, iface, method, args);
        return g_strdup(lines[0] ? lines[0] : "");
}

static void assert_line(const char *line, const char *prefix) {
        g_test_message("got: %s", line);
        g_assert_true(g_str_has_prefix(line, prefix));
}

static void assert_error(const char *line, const char *name) {
        g_autofree char *want = g_strdup_printf("error %s ", name);
        g_test_message("got: %s", line);
        g_assert_true(g_str_has_prefix(line, want));
}

static void assert_state(Fixture *f, const char *path, const char *want) {
        g_autofree char *state = vt_get_string(f->conn, path, VT_ENDPOINT_IFACE, "State");

        g_assert_cmpstr(state, ==, want);
}

/* The audit line for uid/action/endpoint/result, or NULL. */
static gboolean log_has_audit(Fixture *f, const char *uid, const char *action, const char *endpoint,
                              const char *result, const char *reason) {
        g_autofree char *log = vt_daemon_log(f->daemon);
        g_auto(GStrv) lines = g_strsplit(log, "\n", -1);
        g_autofree char *who = g_strdup_printf("vmsig-audit: uid=%s ", uid);
        g_autofree char *what = g_strdup_printf(" action=%s endpoint=%s result=%s reason=%s", action, endpoint,
                                                result, reason);

        for (char **l = lines; *l; l++)
                if (strstr(*l, who) && strstr(*l, what))
                        return TRUE;
        return FALSE;
}

static guint count_log(Fixture *f, const char *needle) {
        return vt_daemon_log_count(f->daemon, needle);
}

static const char *const lifecycle_methods[] = { "Pause", "Resume", "Reset", "PowerOff", "Kill" };

static void test_root_allowed(Fixture *f, gconstpointer data) {
        if (!f->polkit)
                return;
        int lease = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL);
        close(lease);
        g_assert_true(log_has_audit(f, "0", "org.vmsig.lease-power", "alpha", "granted", "root"));
        assert_state(f, ALPHA, "paused");
        g_assert_true(log_has_audit(f, "0", "org.vmsig.lifecycle", "alpha", "granted", "root"));
        g_assert_true(log_has_audit(f, "0", "pause", "alpha", "ok", "-"));
}

/* auth_admin_keep for nobody: polkit would ask for a password; without the
 * interactive flag that is InteractiveAuthorizationRequired. Without the
 * power lease each lifecycle method is NotLeaseHolder. Nothing changes, and
 * each denial is audited. */
static void test_nobody_denied(Fixture *f, gconstpointer data) {
        const char *classes[] = { "input", "power", "memory-write" };

        if (!f->polkit)
                return;
        for (size_t i = 0; i < G_N_ELEMENTS(lifecycle_methods); i++) {
                g_auto(GStrv) lines = run_as_nobody(f, FALSE, "power", ALPHA, VT_ENDPOINT_IFACE,
                                                    lifecycle_methods[i], NULL);
                assert_line(lines[0], "lease-error org.freedesktop.DBus.Error.InteractiveAuthorizationRequired ");
                assert_error(lines[1], "org.vmsig.Error.NotLeaseHolder");
        }
        for (size_t i = 0; i < G_N_ELEMENTS(classes); i++) {
                g_auto(GStrv) lines = run_as_nobody(f, FALSE, classes[i], ALPHA, VT_MANAGER_IFACE, "NoSuchMethod",
                                                    NULL);
                assert_line(lines[0], "lease-error org.freedesktop.DBus.Error.InteractiveAuthorizationRequired ");
        }
        g_autofree char *holder = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "PowerLeaseHolder");
        g_assert_cmpstr(holder, ==, "");
        assert_state(f, ALPHA, "running");
        g_assert_cmpuint(vt_get_uint(f->conn, ALPHA, VT_ENDPOINT_IFACE, "MemctxEpoch"), ==, 1);
        g_assert_cmpuint(count_log(f, "uid=65534 "), >=, G_N_ELEMENTS(lifecycle_methods));
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.lease-power", "alpha", "denied", "interactive-required"));
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.lease-memwrite", "alpha", "denied",
                                    "interactive-required"));
        g_assert_cmpuint(count_log(f, "action=pause endpoint=alpha"), ==, 0);
}

/* With the interactive flag polkit may try an agent; there is none, so the
 * answer is a plain AccessDenied. */
static void test_interactive_flag(Fixture *f, gconstpointer data) {
        if (!f->polkit)
                return;
        for (size_t i = 0; i < G_N_ELEMENTS(lifecycle_methods); i++) {
                g_auto(GStrv) lines = run_as_nobody(f, TRUE, "power", ALPHA, VT_ENDPOINT_IFACE, lifecycle_methods[i],
                                                    NULL);
                assert_line(lines[0], "lease-error org.freedesktop.DBus.Error.AccessDenied ");
                assert_error(lines[1], "org.vmsig.Error.NotLeaseHolder");
        }
        assert_state(f, ALPHA, "running");
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.lease-power", "alpha", "denied", "polkit"));
}

/* A rule for one action on one endpoint: exactly that works. */
static void test_rule_grants_one_action(Fixture *f, gconstpointer data) {
        if (!f->polkit)
                return;
        vt_polkit_allow(f->polkit,
                        "action.id == \"org.vmsig.lease-power\" && subject.user == \"nobody\" &&\n"
                        "      action.lookup(\"endpoint\") == \"alpha\" && action.lookup(\"vmid\") == \"1\" &&\n"
                        "      action.lookup(\"class\") == \"power\"");
        /* The lease is granted; Pause also needs org.vmsig.lifecycle. */
        g_auto(GStrv) one = run_as_nobody(f, FALSE, "power", ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL);
        assert_line(one[0], "lease ok");
        assert_error(one[1], "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired");
        assert_state(f, ALPHA, "running");
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.lease-power", "alpha", "granted", "polkit"));
        g_assert_true(log_has_audit(f, "65534", "acquire-lease", "alpha", "ok", "-"));
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.lifecycle", "alpha", "denied", "interactive-required"));

        /* Same action, other endpoint; other actions: still denied. */
        g_auto(GStrv) other = run_as_nobody(f, FALSE, "power", BETA, VT_ENDPOINT_IFACE, "Pause", NULL);
        assert_line(other[0], "lease-error org.freedesktop.DBus.Error.InteractiveAuthorizationRequired ");
        g_auto(GStrv) input = run_as_nobody(f, FALSE, "input", ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL);
        assert_line(input[0], "lease-error org.freedesktop.DBus.Error.InteractiveAuthorizationRequired ");
        g_autofree char *reload = call_as_nobody(f, FALSE, VT_MANAGER_PATH, VT_MANAGER_IFACE, "Reload", NULL);
        assert_error(reload, "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired");
        g_autofree char *detach = call_as_nobody(f, FALSE, VT_MANAGER_PATH, VT_MANAGER_IFACE, "DetachEndpoint",
                                                 "('alpha',)");
        assert_error(detach, "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired");
        g_assert_cmpuint(vt_get_uint(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "EndpointCount"), ==, 2);
        assert_state(f, BETA, "running");
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.admin", "alpha", "denied", "interactive-required"));

        /* With org.vmsig.lifecycle too, nobody may pause alpha. */
        vt_polkit_allow(f->polkit,
                        "(action.id == \"org.vmsig.lease-power\" || action.id == \"org.vmsig.lifecycle\") &&\n"
                        "      subject.user == \"nobody\" && action.lookup(\"endpoint\") == \"alpha\"");
        g_auto(GStrv) both = run_as_nobody(f, FALSE, "power", ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL);
        assert_line(both[0], "lease ok");
        assert_line(both[1], "ok ()");
        assert_state(f, ALPHA, "paused");
        g_assert_true(log_has_audit(f, "65534", "pause", "alpha", "ok", "-"));

        /* Removing the rule takes the grant away again. */
        vt_polkit_set_rules(f->polkit, NULL);
        g_auto(GStrv) again = run_as_nobody(f, FALSE, "power", ALPHA, VT_ENDPOINT_IFACE, "Resume", NULL);
        assert_line(again[0], "lease-error org.freedesktop.DBus.Error.InteractiveAuthorizationRequired ");
}

/* Reading is public: with polkit up and nobody granted nothing, nobody's
 * GetEndpoint, GetEndpointByVmid and ListEndpoints are answered without
 * polkit being asked (no decision, so no record). vmsigctl status works;
 * pause is refused naming the action it needs: the power lease's, and
 * with the lease granted, org.vmsig.lifecycle. */
static void test_reads_public(Fixture *f, gconstpointer data) {
        static const char *const status[] = { "status", "alpha", NULL }, *const pause[] = { "pause", "alpha", NULL };
        g_autofree char *client = g_build_filename(g_getenv("VMSIG_BUILDDIR"), "tests", "vmsig-test-client", NULL);
        g_autofree char *out = NULL, *shown = NULL, *lease_err = NULL, *lifecycle_err = NULL;

        if (!f->polkit)
                return;
        int st = vt_bus_run(f->bus, &out, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", client,
                            "--repeat=3", VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpoint", "('beta',)", NULL);
        g_assert_cmpint(st, ==, 0);
        g_auto(GStrv) lines = g_strsplit(g_strchomp(out), "\n", -1);
        g_assert_cmpuint(g_strv_length(lines), ==, 3);
        for (char **l = lines; *l; l++)
                assert_line(*l, "ok (objectpath '/org/vmsig/endpoint/beta',)");
        g_autofree char *by_vmid = call_as_nobody(f, FALSE, VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpointByVmid",
                                                  "(uint32 1,)");
        assert_line(by_vmid, "ok (objectpath '/org/vmsig/endpoint/alpha',)");
        g_autofree char *list = call_as_nobody(f, FALSE, VT_MANAGER_PATH, VT_MANAGER_IFACE, "ListEndpoints", NULL);
        assert_line(list, "ok ([('alpha', uint32 1, 'running', objectpath '/org/vmsig/endpoint/alpha'), ");
        g_assert_cmpint(vt_bus_run_as_nobody(f->bus, &shown, NULL, "vmsigctl", status), ==, 0);
        g_assert_nonnull(strstr(shown, "          Endpoint: alpha\n"));
        g_assert_cmpuint(count_log(f, "uid=65534 "), ==, 0);

        g_assert_cmpint(vt_bus_run_as_nobody(f->bus, NULL, &lease_err, "vmsigctl", pause), ==, 1);
        g_assert_nonnull(strstr(lease_err, "Interactive authentication is required for org.vmsig.lease-power."));
        vt_polkit_allow(f->polkit, "action.id == \"org.vmsig.lease-power\" && subject.user == \"nobody\" &&\n"
                                   "      action.lookup(\"class\") == \"power\"");
        g_assert_cmpint(vt_bus_run_as_nobody(f->bus, NULL, &lifecycle_err, "vmsigctl", pause), ==, 1);
        g_assert_true(g_str_has_prefix(lifecycle_err, "Failed to pause 'alpha': "));
        g_assert_nonnull(strstr(lifecycle_err, "Interactive authentication is required for org.vmsig.lifecycle."));
        assert_state(f, ALPHA, "running");
        /* Only the two actions were decided on; the lease came and went. */
        g_assert_cmpuint(count_log(f, "uid=65534 "), ==, 5);
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.lease-power", "alpha", "denied", "interactive-required"));
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.lease-power", "alpha", "granted", "polkit"));
        g_assert_true(log_has_audit(f, "65534", "acquire-lease", "alpha", "ok", "-"));
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.lifecycle", "alpha", "denied", "interactive-required"));
        g_assert_true(log_has_audit(f, "65534", "release-lease", "alpha", "ok", "-"));
}

/* Reload through the bus is org.vmsig.admin; root may, and a bad file is
 * reported with its line and changes nothing. */
static void test_reload_and_detach(Fixture *f, gconstpointer data) {
        if (!f->polkit)
                return;
        vt_daemon_rewrite_config(f->daemon, CONFIG_BASE "<stub-vm name=\"gamma\" ram-size=\"1M\"/></vmsigd>");
        g_autoptr(GVariant) r = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "Reload", NULL);
        g_assert_cmpuint(vt_get_uint(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "EndpointCount"), ==, 3);
        g_assert_true(log_has_audit(f, "0", "reload", "-", "ok", "-"));

        vt_daemon_rewrite_config(f->daemon, "<vmsigd>\n<stub-vm name=\"x\" ram-size=\"3\"/>\n</vmsigd>\n");
        g_autofree char *message = NULL;
        g_autofree char *name = vt_call_error(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "Reload", NULL, &message);
        g_assert_cmpstr(name, ==, "org.vmsig.Error.InvalidConfiguration");
        g_autofree char *where = g_strdup_printf("%s:2:", vt_daemon_config_path(f->daemon));
        g_assert_nonnull(strstr(message, where));
        g_assert_cmpuint(vt_get_uint(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "EndpointCount"), ==, 3);

        g_autoptr(GVariant) d = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "DetachEndpoint",
                                        g_variant_new("(s)", "gamma"));
        g_assert_cmpuint(vt_get_uint(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "EndpointCount"), ==, 2);
        g_assert_true(log_has_audit(f, "0", "detach", "gamma", "ok", "-"));
        g_autofree char *gone = vt_call_error(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "DetachEndpoint",
                                              g_variant_new("(s)", "gamma"), NULL);
        g_assert_cmpstr(gone, ==, "org.vmsig.Error.NoSuchEndpoint");
        g_autofree char *bad = vt_call_error(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "DetachEndpoint",
                                             g_variant_new("(s)", "no/such"), NULL);
        g_assert_cmpstr(bad, ==, "org.vmsig.Error.InvalidArgument");
}

/* Without polkit on the bus: root still may, everyone else may not. */
static void test_polkit_absent(void) {
        Fixture fx = {}, *f = &fx;

        vt_fixture_setup(f, CONFIG_BASE "</vmsigd>", 0);
        /* Reading is public: no polkit needed, no decision recorded. */
        g_autofree char *list = call_as_nobody(f, FALSE, VT_MANAGER_PATH, VT_MANAGER_IFACE, "ListEndpoints", NULL);
        assert_line(list, "ok ([('alpha', uint32 1, 'running', ");
        g_autofree char *get = call_as_nobody(f, FALSE, VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpoint", "('beta',)");
        assert_line(get, "ok (objectpath '/org/vmsig/endpoint/beta',)");
        g_autofree char *by_vmid = call_as_nobody(f, FALSE, VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpointByVmid",
                                                  "(uint32 2,)");
        assert_line(by_vmid, "ok (objectpath '/org/vmsig/endpoint/beta',)");
        g_assert_cmpuint(count_log(f, "uid=65534 "), ==, 0);
        g_auto(GStrv) pause = run_as_nobody(f, TRUE, "power", ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL);
        assert_line(pause[0], "lease-error org.freedesktop.DBus.Error.AccessDenied ");
        g_assert_nonnull(strstr(pause[0], "polkit is not available to authorize org.vmsig.lease-power."));
        assert_error(pause[1], "org.vmsig.Error.NotLeaseHolder");
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.lease-power", "alpha", "denied", "no-polkit"));
        g_autofree char *memctx = call_as_nobody(f, FALSE, ALPHA, VT_ENDPOINT_IFACE, "SubscribeMemctx", NULL);
        assert_error(memctx, "org.freedesktop.DBus.Error.AccessDenied");
        g_assert_nonnull(strstr(memctx, "polkit is not available to authorize org.vmsig.memctx."));
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.memctx", "alpha", "denied", "no-polkit"));
        int lease = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL);
        close(lease);
        assert_state(f, ALPHA, "paused");
        fixture_teardown(f, NULL);
}

/* The allow-list comes before polkit: nobody is not on the list, so its
 * SubscribeMemctx is refused without polkit being asked. Reading is public,
 * as GetManagedObjects is: the list does not apply. A reload that lists
 * nobody lets it on to polkit (which would ask for a password). */
static void test_allow_list(Fixture *f, gconstpointer data) {
        if (!f->polkit)
                return;
        g_autofree char *denied = call_as_nobody(f, FALSE, ALPHA, VT_ENDPOINT_IFACE, "SubscribeMemctx", NULL);
        assert_error(denied, "org.freedesktop.DBus.Error.AccessDenied");
        g_assert_nonnull(strstr(denied, "allow-list"));
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.memctx", "alpha", "denied", "allow-list"));
        g_autofree char *list = call_as_nobody(f, FALSE, VT_MANAGER_PATH, VT_MANAGER_IFACE, "ListEndpoints", NULL);
        g_assert_true(g_str_has_prefix(list, "ok "));
        g_assert_cmpuint(count_log(f, "uid=65534 "), ==, 1);

        vt_daemon_rewrite_config(f->daemon, CONFIG_BASE "<admission><allow user=\"daemon\"/><allow user=\"nobody\"/>"
                                                       "</admission></vmsigd>");
        g_autoptr(GVariant) r = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "Reload", NULL);
        g_autofree char *allowed = call_as_nobody(f, FALSE, ALPHA, VT_ENDPOINT_IFACE, "SubscribeMemctx", NULL);
        assert_error(allowed, "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired");
        g_assert_true(log_has_audit(f, "65534", "org.vmsig.memctx", "alpha", "denied", "interactive-required"));
}

typedef VtReplies Pending;

static gboolean all_done(gpointer data) {
        Pending *p = data;
        return p->done == 3;
}

/* Three slow calls from one uid with a limit of two pending: the third is
 * refused with QuotaExceeded and changes nothing; another uid is not
 * affected; once the calls are answered the quota is free again. */
static void test_quota_pending_calls(Fixture *f, gconstpointer data) {
        const char *paths[] = { ALPHA, BETA, "/org/vmsig/endpoint/gamma" };
        Pending p = { .errors = g_ptr_array_new_with_free_func(g_free) };

        int leases[G_N_ELEMENTS(paths)];

        if (!f->polkit)
                return;
        for (size_t i = 0; i < G_N_ELEMENTS(paths); i++)
                leases[i] = vt_acquire_lease(f->conn, paths[i], "power", NULL);
        for (size_t i = 0; i < G_N_ELEMENTS(paths); i++)
                g_dbus_connection_call(f->conn, VT_NAME, paths[i], VT_ENDPOINT_IFACE, "Pause", NULL, NULL,
                                       G_DBUS_CALL_FLAGS_NONE, 10000, NULL, vt_replies_collect, &p);
        /* nobody's call goes on to polkit, its own quota untouched. */
        g_autofree char *other = call_as_nobody(f, FALSE, ALPHA, VT_ENDPOINT_IFACE, "SubscribeMemctx", NULL);
        assert_error(other, "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired");
        g_assert_true(vt_wait_for(all_done, &p, 10000));
        g_assert_cmpuint(p.errors->len, ==, 1);
        g_assert_cmpstr(g_ptr_array_index(p.errors, 0), ==, "org.vmsig.Error.QuotaExceeded");
        assert_state(f, "/org/vmsig/endpoint/gamma", "running");
        g_assert_true(log_has_audit(f, "0", "pause", "gamma", "failed", "EDQUOT"));
        g_autoptr(GVariant) r = vt_call(f->conn, "/org/vmsig/endpoint/gamma", VT_ENDPOINT_IFACE, "Pause", NULL);
        g_ptr_array_unref(p.errors);
        for (size_t i = 0; i < G_N_ELEMENTS(paths); i++)
                close(leases[i]);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
#define ADD(name, fn, config) \
        g_test_add("/polkit/" name, Fixture, config, fixture_setup, fn, fixture_teardown)
        VT_FIXTURE_TESTS("/polkit/", test_root_allowed, test_nobody_denied, test_interactive_flag,
                         test_rule_grants_one_action, test_reads_public, test_reload_and_detach);
        ADD("allow-list", test_allow_list, CONFIG_BASE "<admission><allow user=\"daemon\"/></admission></vmsigd>");
        ADD("quota-pending-calls", test_quota_pending_calls,
            "<vmsigd><audit target=\"stderr\"/><admission max-pending-calls=\"2\"/>"
            "<stub-vm name=\"alpha\" ram-size=\"1M\" latency-ms=\"300\"/>"
            "<stub-vm name=\"beta\" ram-size=\"1M\" latency-ms=\"300\"/>"
            "<stub-vm name=\"gamma\" ram-size=\"1M\" latency-ms=\"300\"/></vmsigd>");
        g_test_add_func("/polkit/absent", test_polkit_absent);
        return g_test_run();
}
