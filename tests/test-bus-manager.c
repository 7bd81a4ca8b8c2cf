/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vmsig.Manager and the ObjectManager over a real dbus-daemon. */
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "vt-util.h"

#define CONFIG_TWO_VMS                                                                                    \
        "<vmsigd>"                                                                                         \
        "<stub-vm name=\"alpha\" uuid=\"6f1c9a52-8d3e-4b7a-9c21-0e5f4d3b2a19\" ram-size=\"4M\"/>"          \
        "<stub-vm name=\"beta\" ram-size=\"2M\" state=\"paused\"/>"                                        \
        "</vmsigd>"

VT_FIXTURE_DEFINE(data ?: CONFIG_TWO_VMS, 0)

static void test_properties(Fixture *f, gconstpointer data) {
        g_autofree char *version = vt_get_string(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "Version");
        g_assert_cmpstr(version, ==, "0.3.5");
        g_assert_cmpuint(vt_get_uint(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "EndpointCount"), ==, 2);
}

static void test_list_endpoints(Fixture *f, gconstpointer data) {
        g_autoptr(GVariant) reply = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "ListEndpoints", NULL);
        g_autoptr(GVariantIter) it = NULL;
        const char *name, *state, *path;
        guint32 vmid;
        int n = 0;

        g_assert_cmpstr(g_variant_get_type_string(reply), ==, "(a(suso))");
        g_variant_get(reply, "(a(suso))", &it);
        while (g_variant_iter_loop(it, "(&su&s&o)", &name, &vmid, &state, &path)) {
                if (n == 0) {
                        g_assert_cmpstr(name, ==, "alpha");
                        g_assert_cmpuint(vmid, ==, 1);
                        g_assert_cmpstr(state, ==, "running");
                        g_assert_cmpstr(path, ==, "/org/vmsig/endpoint/alpha");
                } else {
                        g_assert_cmpstr(name, ==, "beta");
                        g_assert_cmpuint(vmid, ==, 2);
                        g_assert_cmpstr(state, ==, "paused");
                        g_assert_cmpstr(path, ==, "/org/vmsig/endpoint/beta");
                }
                n++;
        }
        g_assert_cmpint(n, ==, 2);
}

static void test_get_endpoint(Fixture *f, gconstpointer data) {
        g_autoptr(GVariant) a = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpoint",
                                        g_variant_new("(s)", "alpha"));
        g_autoptr(GVariant) b = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpointByVmid",
                                        g_variant_new("(u)", 2));
        const char *p;

        g_variant_get(a, "(&o)", &p);
        g_assert_cmpstr(p, ==, "/org/vmsig/endpoint/alpha");
        g_variant_get(b, "(&o)", &p);
        g_assert_cmpstr(p, ==, "/org/vmsig/endpoint/beta");
}

/* Each bad request gets its own error name and a message naming what was
 * wrong, and changes nothing. */
static void test_errors(Fixture *f, gconstpointer data) {
        static const struct {
                const char *method;
                const char *args;
                const char *error;
                const char *message_part;
        } cases[] = {
                { "GetEndpoint", "('nope',)", "org.vmsig.Error.NoSuchEndpoint", "nope" },
                { "GetEndpoint", "('',)", "org.vmsig.Error.InvalidArgument", "Invalid endpoint name" },
                { "GetEndpoint", "('../alpha',)", "org.vmsig.Error.InvalidArgument", "../alpha" },
                { "GetEndpointByVmid", "(uint32 0,)", "org.vmsig.Error.InvalidArgument", "vmid 0" },
                { "GetEndpointByVmid", "(uint32 99,)", "org.vmsig.Error.NoSuchEndpoint", "99" },
                { "GetEndpoint", "(uint32 5,)", "org.freedesktop.DBus.Error.InvalidArgs", NULL },
                { "GetEndpointByVmid", "('alpha',)", "org.freedesktop.DBus.Error.InvalidArgs", NULL },
                { "GetEndpoint", "('alpha', 'extra')", "org.freedesktop.DBus.Error.InvalidArgs", NULL },
                { "NoSuchMethod", "()", "org.freedesktop.DBus.Error.UnknownMethod", NULL },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *message = NULL;
                GVariant *args = g_variant_new_parsed(cases[i].args);
                g_autofree char *name = vt_call_error(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, cases[i].method,
                                                      args, &message);
                g_test_message("%s%s -> %s: %s", cases[i].method, cases[i].args, name, message);
                g_assert_cmpstr(name, ==, cases[i].error);
                if (cases[i].message_part)
                        g_assert_nonnull(strstr(message, cases[i].message_part));
        }
        /* Nothing changed. */
        g_assert_cmpuint(vt_get_uint(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "EndpointCount"), ==, 2);

        g_autofree char *e1 = vt_call_error(f->conn, VT_MANAGER_PATH, "org.freedesktop.DBus.Properties", "Get",
                                            g_variant_new("(ss)", VT_MANAGER_IFACE, "NoSuchProperty"), NULL);
        g_assert_cmpstr(e1, ==, "org.freedesktop.DBus.Error.UnknownProperty");
        g_autofree char *e2 = vt_call_error(f->conn, VT_MANAGER_PATH, "org.freedesktop.DBus.Properties", "Set",
                                            g_variant_new("(ssv)", VT_MANAGER_IFACE, "Version",
                                                          g_variant_new_string("9")),
                                            NULL);
        g_assert_cmpstr(e2, ==, "org.freedesktop.DBus.Error.PropertyReadOnly");
        g_autofree char *e3 = vt_call_error(f->conn, "/org/vmsig/endpoint/nope", VT_ENDPOINT_IFACE, "Pause", NULL,
                                            NULL);
        g_assert_cmpstr(e3, ==, "org.freedesktop.DBus.Error.UnknownObject");
}

static void test_object_manager(Fixture *f, gconstpointer data) {
        g_autoptr(GVariant) reply = vt_call(f->conn, VT_MANAGER_PATH, "org.freedesktop.DBus.ObjectManager",
                                            "GetManagedObjects", NULL);
        g_autoptr(GVariant) objects = g_variant_get_child_value(reply, 0);
        g_autoptr(GVariant) alpha = g_variant_lookup_value(objects, "/org/vmsig/endpoint/alpha", NULL);
        g_autoptr(GVariant) beta = g_variant_lookup_value(objects, "/org/vmsig/endpoint/beta", NULL);

        g_assert_nonnull(alpha);
        g_assert_nonnull(beta);
        g_autoptr(GVariant) props = g_variant_lookup_value(alpha, VT_ENDPOINT_IFACE, NULL);
        g_assert_nonnull(props);
        const char *s;
        g_assert_true(g_variant_lookup(props, "Name", "&s", &s));
        g_assert_cmpstr(s, ==, "alpha");
        g_assert_true(g_variant_lookup(props, "Uuid", "&s", &s));
        g_assert_cmpstr(s, ==, "6f1c9a52-8d3e-4b7a-9c21-0e5f4d3b2a19");
        g_autoptr(GVariant) beta_props = g_variant_lookup_value(beta, VT_ENDPOINT_IFACE, NULL);
        g_assert_true(g_variant_lookup(beta_props, "State", "&s", &s));
        g_assert_cmpstr(s, ==, "paused");
}

static gboolean count_is(gpointer p) {
        Fixture *f = p;
        return vt_get_uint(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "EndpointCount") == 3;
}

/* SIGHUP with a changed file: removed VMs leave, new ones arrive, each with
 * ObjectManager, Manager and PropertiesChanged signals. */
static void test_reload_signals(Fixture *f, gconstpointer data) {
        VtSignalLog *log = vt_signal_log_new(f->conn);

        vt_daemon_rewrite_config(f->daemon, "<vmsigd>"
                                            "<stub-vm name=\"alpha\" uuid=\"6f1c9a52-8d3e-4b7a-9c21-0e5f4d3b2a19\" "
                                            "ram-size=\"4M\"/>"
                                            "<stub-vm name=\"gamma\" ram-size=\"2M\"/>"
                                            "<stub-vm name=\"delta\" ram-size=\"2M\"/>"
                                            "</vmsigd>");
        vt_daemon_signal(f->daemon, SIGHUP);
        g_assert_true(vt_signal_log_wait(log, "EndpointAdded /org/vmsig (objectpath '/org/vmsig/endpoint/delta',)",
                                         20000));
        g_assert_true(vt_wait_for(count_is, f, 20000));

        int removed = vt_signal_log_find(log, "InterfacesRemoved /org/vmsig (objectpath '/org/vmsig/endpoint/beta'",
                                         0);
        int removed_sig = vt_signal_log_find(log, "EndpointRemoved /org/vmsig (objectpath '/org/vmsig/endpoint/beta'",
                                             0);
        int added = vt_signal_log_find(log, "InterfacesAdded /org/vmsig (objectpath '/org/vmsig/endpoint/gamma'", 0);
        int added_sig = vt_signal_log_find(log, "EndpointAdded /org/vmsig (objectpath '/org/vmsig/endpoint/gamma'", 0);
        int count = vt_signal_log_find(log, "PropertiesChanged /org/vmsig ('org.vmsig.Manager', {'EndpointCount'", 0);
        g_assert_cmpint(removed, >=, 0);
        g_assert_cmpint(removed_sig, >, removed);
        g_assert_cmpint(added, >, removed);
        g_assert_cmpint(added_sig, >, added);
        g_assert_cmpint(count, >=, 0);
        /* alpha did not change, so it was not touched. */
        g_assert_cmpint(vt_signal_log_find(log, "InterfacesRemoved /org/vmsig (objectpath '/org/vmsig/endpoint/alpha'",
                                           0),
                        ==, -1);
        /* The InterfacesAdded payload carries the properties. */
        const char *entry = g_ptr_array_index(log->entries, added);
        g_assert_nonnull(strstr(entry, "'Name': <'gamma'>"));

        g_autofree char *e = vt_call_error(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpoint",
                                           g_variant_new("(s)", "beta"), NULL);
        g_assert_cmpstr(e, ==, "org.vmsig.Error.NoSuchEndpoint");
        vt_signal_log_free(log);
}

/* The shipped interface XML is what the daemon really serves. */
static void compare_interface(Fixture *f, const char *path, const char *iface, const char *file) {
        g_autofree char *xml_path = g_build_filename(g_getenv("VMSIG_SRCDIR"), "dbus", file, NULL);
        g_autofree char *shipped = NULL;
        g_autoptr(GError) error = NULL;

        g_assert_true(g_file_get_contents(xml_path, &shipped, NULL, &error));
        g_autoptr(GDBusNodeInfo) want_node = g_dbus_node_info_new_for_xml(shipped, &error);
        g_assert_no_error(error);
        GDBusInterfaceInfo *want = g_dbus_node_info_lookup_interface(want_node, iface);
        g_assert_nonnull(want);

        g_autoptr(GVariant) reply = vt_call(f->conn, path, "org.freedesktop.DBus.Introspectable", "Introspect", NULL);
        const char *live_xml;
        g_variant_get(reply, "(&s)", &live_xml);
        g_autoptr(GDBusNodeInfo) live_node = g_dbus_node_info_new_for_xml(live_xml, &error);
        g_assert_no_error(error);
        GDBusInterfaceInfo *live = g_dbus_node_info_lookup_interface(live_node, iface);
        g_assert_nonnull(live);

        /* Compare canonical renderings: members, signatures, argument
         * names, access and annotations all count; comments do not. */
        g_autoptr(GString) a = g_string_new(NULL), b = g_string_new(NULL);
        g_dbus_interface_info_generate_xml(want, 0, a);
        g_dbus_interface_info_generate_xml(live, 0, b);
        g_assert_cmpstr(a->str, ==, b->str);
}

static void test_introspection_matches_xml(Fixture *f, gconstpointer data) {
        compare_interface(f, VT_MANAGER_PATH, VT_MANAGER_IFACE, "org.vmsig.Manager.xml");
        compare_interface(f, "/org/vmsig/endpoint/alpha", VT_ENDPOINT_IFACE, "org.vmsig.Endpoint.xml");

        g_autofree char *lease_path = NULL;
        int fd = vt_acquire_lease(f->conn, "/org/vmsig/endpoint/alpha", "input", &lease_path);
        compare_interface(f, lease_path, "org.vmsig.Lease", "org.vmsig.Lease.xml");
        close(fd);
}

static void test_busctl_tree(Fixture *f, gconstpointer data) {
        g_autofree char *out = NULL;
        int status = vt_bus_run(f->bus, &out, "busctl", "--system", "--no-pager", "--list", "tree", "org.vmsig", NULL);

        g_assert_cmpint(status, ==, 0);
        g_assert_nonnull(strstr(out, "/org/vmsig\n"));
        g_assert_nonnull(strstr(out, "/org/vmsig/endpoint/alpha\n"));
        g_assert_nonnull(strstr(out, "/org/vmsig/endpoint/beta\n"));

        g_autofree char *prop = NULL;
        status = vt_bus_run(f->bus, &prop, "busctl", "--system", "get-property", "org.vmsig",
                            "/org/vmsig/endpoint/beta", "org.vmsig.Endpoint", "State", NULL);
        g_assert_cmpint(status, ==, 0);
        g_assert_cmpstr(prop, ==, "s \"paused\"\n");
}

/* Names outside [a-z0-9] are escaped in object paths. */
static void test_path_escaping(Fixture *f, gconstpointer data) {
        g_autoptr(GVariant) r = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpoint",
                                        g_variant_new("(s)", "web-01.prod"));
        const char *p;
        g_variant_get(r, "(&o)", &p);
        g_assert_cmpstr(p, ==, "/org/vmsig/endpoint/web_2d01_2eprod");
        g_autofree char *name = vt_get_string(f->conn, p, VT_ENDPOINT_IFACE, "Name");
        g_assert_cmpstr(name, ==, "web-01.prod");
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
#define ADD(name, fn, cfg) g_test_add("/bus/manager/" name, Fixture, cfg, fixture_setup, fn, fixture_teardown)
        VT_FIXTURE_TESTS("/bus/manager/", test_properties, test_list_endpoints, test_get_endpoint, test_errors,
                         test_object_manager, test_reload_signals, test_introspection_matches_xml, test_busctl_tree);
        ADD("path-escaping", test_path_escaping, "<vmsigd><stub-vm name=\"web-01.prod\" ram-size=\"1M\"/></vmsigd>");
        return g_test_run();
}
