/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsigd.conf loading: every setting, and each kind of mistake reported
 * as FILE:LINE: problem with nothing returned. */
#include <errno.h>
#include <string.h>
#include <syslog.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "config-file.h"
#include "vt-util.h"

static char *data_path(const char *name) {
        return g_build_filename(g_getenv("VMSIG_SRCDIR") ?: ".", "tests", "data", "config", name, NULL);
}

static void test_full(void) {
        g_autofree char *path = data_path("full.conf");
        vmsig_config *c = NULL;
        char *error = NULL;
        sd_id128_t uuid;

        g_assert_cmpint(vmsig_config_load(path, &c, &error), ==, 0);
        g_assert_null(error);
        g_assert_cmpstr(c->path, ==, path);
        g_assert_cmpint(c->log_level, ==, LOG_DEBUG);
        g_assert_cmpuint(c->queue_limit, ==, 64);
        g_assert_cmpuint(c->max_endpoints, ==, 300);
        g_assert_cmpuint(c->n_stub_vms, ==, 4);

        g_assert_cmpstr(c->stub_vms[0].name, ==, "alpha");
        g_assert_cmpint(sd_id128_from_string("6f1c9a52-8d3e-4b7a-9c21-0e5f4d3b2a19", &uuid), ==, 0);
        g_assert_true(sd_id128_equal(c->stub_vms[0].uuid, uuid));
        g_assert_cmpuint(c->stub_vms[0].ram_size, ==, 4ULL << 20);
        g_assert_cmpint(c->stub_vms[0].initial_state, ==, VMSIG_STATE_RUNNING);
        g_assert_cmpuint(c->stub_vms[0].line, ==, 4);

        g_assert_cmpstr(c->stub_vms[1].name, ==, "beta.2");
        g_assert_true(sd_id128_is_null(c->stub_vms[1].uuid));
        g_assert_cmpuint(c->stub_vms[1].ram_size, ==, 1ULL << 30);
        g_assert_cmpint(c->stub_vms[1].initial_state, ==, VMSIG_STATE_PAUSED);

        g_assert_cmpuint(c->stub_vms[2].ram_size, ==, 1048576);
        g_assert_cmpint(c->stub_vms[2].initial_state, ==, VMSIG_STATE_SHUT_OFF);
        g_assert_cmpuint(c->stub_vms[3].ram_size, ==, VMSIG_CONFIG_RAM_SIZE_DEFAULT);
        g_assert_cmpuint(c->stub_vms[3].latency_usec, ==, 250000);
        g_assert_cmpuint(c->stub_vms[0].latency_usec, ==, 0);

        g_assert_cmpstr(c->audit_target, ==, "stderr");
        g_assert_cmpstr(c->private_socket, ==, "/run/vmsig-test/private");
        g_assert_cmpuint(c->admission.max_pending_calls, ==, 3);
        g_assert_cmpuint(c->admission.max_subscriptions, ==, 0);
        g_assert_cmpuint(c->admission.max_leases, ==, 2);
        g_assert_cmpuint(c->admission.n_allow_uids, ==, 1);
        g_assert_cmpuint(c->admission.allow_uids[0], ==, 65534);
        g_assert_cmpuint(c->admission.n_allow_gids, ==, 1);
        g_assert_cmpuint(c->admission.allow_gids[0], ==, 0);

        g_assert_true(vmsig_config_find_stub(c, "gamma_3") == &c->stub_vms[2]);
        g_assert_null(vmsig_config_find_stub(c, "gamma"));
        vmsig_config_free(c);
}

static void test_defaults(void) {
        g_autofree char *path = vt_write_temp("<vmsigd/>");
        vmsig_config *c = NULL, *d = NULL;

        g_assert_cmpint(vmsig_config_load(path, &c, NULL), ==, 0);
        g_assert_cmpint(c->log_level, ==, VMSIG_CONFIG_LOG_LEVEL_DEFAULT);
        g_assert_cmpuint(c->queue_limit, ==, VMSIG_CORE_QUEUE_LIMIT_DEFAULT);
        g_assert_cmpuint(c->max_endpoints, ==, VMSIG_CORE_ENDPOINTS_MAX_DEFAULT);
        g_assert_cmpuint(c->n_stub_vms, ==, 0);
        g_assert_cmpstr(c->audit_target, ==, "auto");
        g_assert_cmpstr(c->private_socket, ==, VMSIG_CONFIG_PRIVATE_SOCKET_DEFAULT);
        g_assert_cmpuint(c->admission.max_pending_calls, ==, VMSIG_CONFIG_MAX_PENDING_CALLS_DEFAULT);
        g_assert_cmpuint(c->admission.n_allow_uids + c->admission.n_allow_gids, ==, 0);
        g_assert_cmpint(vmsig_config_new_default(&d), ==, 0);
        g_assert_cmpstr(d->private_socket, ==, VMSIG_CONFIG_PRIVATE_SOCKET_DEFAULT);
        g_assert_null(d->path);
        g_assert_cmpuint(d->queue_limit, ==, c->queue_limit);
        g_assert_cmpuint(d->n_stub_vms, ==, 0);
        vmsig_config_free(c);
        vmsig_config_free(d);
        g_unlink(path);
}

static void test_missing_file(void) {
        vmsig_config *c = NULL;
        g_autofree char *error = NULL;

        g_assert_cmpint(vmsig_config_load("/nonexistent/vmsigd.conf", &c, &error), ==, -ENOENT);
        g_assert_null(c);
        g_assert_true(g_str_has_prefix(error, "/nonexistent/vmsigd.conf: "));
        g_assert_nonnull(strstr(error, "No such file"));
}

/* Each bad file: the error starts with FILE:LINE: and says what is wrong. */
static const struct {
        const char *contents;
        unsigned line;
        const char *says;
} bad_files[] = {
        { "<vmsigd>\n<stub-vm name=\"a\">\n</vmsigd>\n", 3, "mismatch" },
        { "<vmsigd>\n\n<stub-vm name=\"a\" bogus=\"1\"/>\n</vmsigd>\n", 3, "bogus" },
        { "<vmsigd>\n<stub-vm/>\n</vmsigd>\n", 2, "name" },
        { "<vmsigd>\n<stub-vm name=\"a b\"/>\n</vmsigd>\n", 2, "name" },
        { "<vmsigd>\n<unknown/>\n</vmsigd>\n", 2, "unknown" },
        { "<config/>\n", 1, "vmsigd" },
        { "<vmsigd>\n<log level=\"loud\"/>\n</vmsigd>\n", 2,
          "level=\"loud\" is not one of emerg, alert, crit, err, warning, notice, info or debug." },
        { "<vmsigd>\n<log level=\"warn\"/>\n</vmsigd>\n", 2, "(did you mean \"warning\"?)" },
        { "<vmsigd>\n<limits queue-length=\"0\"/>\n</vmsigd>\n", 2, "queue-length" },
        { "<vmsigd>\n<limits max-endpoints=\"99999999999\"/>\n</vmsigd>\n", 2, "out of range" },
        { "<vmsigd>\n<stub-vm name=\"a\" state=\"sleeping\"/>\n</vmsigd>\n", 2,
          "state=\"sleeping\" is not one of running, paused or shut-off." },
        { "<vmsigd>\n<stub-vm name=\"a\" state=\"paus\"/>\n</vmsigd>\n", 2,
          "state=\"paus\" is not one of running, paused or shut-off (did you mean \"paused\"?)." },
        { "<vmsigd>\n<stub-vm name=\"a\" state=\"Running\"/>\n</vmsigd>\n", 2, "(did you mean \"running\"?)" },
        { "<vmsigd>\n<stub-vm name=\"a\" bootstrap=\"yess\"/>\n</vmsigd>\n", 2,
          "bootstrap=\"yess\" is not one of yes or no (did you mean \"yes\"?)." },
        { "<vmsigd>\n<stub-vm name=\"a\" bootstrap=\"yes\" guest-os=\"linus\"/>\n</vmsigd>\n", 2,
          "guest-os=\"linus\" is not one of windows or linux (did you mean \"linux\"?)." },
        { "<vmsigd>\n<stub-vm name=\"a\" vcpu-registers=\"off\"/>\n</vmsigd>\n", 2,
          "vcpu-registers=\"off\" is not one of yes or no." },
        { "<vmsigd>\n<stub-vm name=\"a\" uuid=\"not-a-uuid\"/>\n</vmsigd>\n", 2, "uuid" },
        { "<vmsigd>\n<stub-vm name=\"a\" ram-size=\"1048577\"/>\n</vmsigd>\n", 2, "multiple of 4096" },
        { "<vmsigd>\n<stub-vm name=\"a\" ram-size=\"4K\"/>\n</vmsigd>\n", 2, "out of range" },
        { "<vmsigd>\n<stub-vm name=\"a\" ram-size=\"65G\"/>\n</vmsigd>\n", 2, "out of range" },
        { "<vmsigd>\n<stub-vm name=\"a\" ram-size=\"99999999999999999999G\"/>\n</vmsigd>\n", 2, "out of range" },
        { "<vmsigd>\n<stub-vm name=\"a\" ram-size=\"1T\"/>\n</vmsigd>\n", 2, "is not a size" },
        { "<vmsigd>\n<stub-vm name=\"a\" latency-ms=\"60001\"/>\n</vmsigd>\n", 2, "latency-ms" },
        { "<vmsigd>\n<audit target=\"syslog\"/>\n</vmsigd>\n", 2, "target=\"syslog\" is not one of auto, journal or stderr." },
        { "<vmsigd>\n<audit target=\"jornal\"/>\n</vmsigd>\n", 2, "(did you mean \"journal\"?)" },
        { "<vmsigd>\n<private-socket path=\"relative\"/>\n</vmsigd>\n", 2, "must be absolute" },
        { "<vmsigd>\n<private-socket enabled=\"maybe\"/>\n</vmsigd>\n", 2, "enabled=\"maybe\" is not one of yes or no." },
        { "<vmsigd>\n<admission>\n<allow user=\"no-such-user-vmsig\"/>\n</admission>\n</vmsigd>\n", 3,
          "unknown user \"no-such-user-vmsig\"" },
        { "<vmsigd>\n<admission>\n<allow group=\"no-such-group-vmsig\"/>\n</admission>\n</vmsigd>\n", 3,
          "unknown group" },
        { "<vmsigd>\n<admission>\n<allow user=\"root\" group=\"root\"/>\n</admission>\n</vmsigd>\n", 3,
          "exactly one" },
        { "<vmsigd>\n<admission max-leases=\"-1\"/>\n</vmsigd>\n", 2, "max-leases" },
        { "<vmsigd>\n<libvirt uri=\"\"/>\n</vmsigd>\n", 2,
          "uri=\"\" is not a libvirt URI (such as qemu:///system)." },
        { "<vmsigd>\n<libvirt uri=\"/run/libvirt/libvirt-sock\"/>\n</vmsigd>\n", 2, "is not a libvirt URI" },
        { "<vmsigd>\n<libvirt domains=\"some\"/>\n</vmsigd>\n", 2, "domains=\"some\" is not one of all or tagged." },
        { "<vmsigd>\n<libvirt domains=\"taged\"/>\n</vmsigd>\n", 2, "(did you mean \"tagged\"?)" },
        { "<vmsigd>\n<libvirt monitor=\"off\"/>\n</vmsigd>\n", 2, "monitor=\"off\" is not one of yes or no." },
        { "<vmsigd>\n<libvirt enabled=\"1\"/>\n</vmsigd>\n", 2, "enabled=\"1\" is not one of yes or no." },
        { "<vmsigd>\n<stub-vm name=\"a\"/>\n<stub-vm name=\"b\"/>\n<stub-vm name=\"a\"/>\n</vmsigd>\n", 4,
          "duplicate stub-vm name \"a\" (first declared on line 2)" },
        { "<vmsigd>\n<stub-vm name=\"a\" uuid=\"6f1c9a52-8d3e-4b7a-9c21-0e5f4d3b2a19\"/>\n"
          "<stub-vm name=\"b\" uuid=\"6F1C9A52-8D3E-4B7A-9C21-0E5F4D3B2A19\"/>\n</vmsigd>\n",
          3, "duplicate stub-vm uuid" },
};

static void test_bad_files(void) {
        for (size_t i = 0; i < G_N_ELEMENTS(bad_files); i++) {
                g_autofree char *path = vt_write_temp(bad_files[i].contents);
                g_autofree char *where = g_strdup_printf("%s:%u: ", path, bad_files[i].line);
                g_autofree char *error = NULL;
                vmsig_config *c = NULL;

                g_test_message("case %zu: %s", i, bad_files[i].contents);
                g_assert_cmpint(vmsig_config_load(path, &c, &error), <, 0);
                g_test_message("error: %s", error);
                g_assert_null(c);
                g_assert_true(g_str_has_prefix(error, where));
                g_assert_nonnull(strstr(error, bad_files[i].says));
                g_assert_null(strchr(error, '\n'));
                g_unlink(path);
        }
}

static void test_private_socket_disabled(void) {
        g_autofree char *path = vt_write_temp("<vmsigd><private-socket enabled=\"no\"/></vmsigd>");
        vmsig_config *c = NULL;

        g_assert_cmpint(vmsig_config_load(path, &c, NULL), ==, 0);
        g_assert_null(c->private_socket);
        vmsig_config_free(c);
        g_unlink(path);
}

/* <libvirt>: off when absent; its settings as given. */
static void test_libvirt(void) {
        g_autofree char *path = vt_write_temp("<vmsigd><libvirt uri=\"qemu+ssh://root@host/system\" domains=\"tagged\" "
                                           "monitor=\"no\"/></vmsigd>");
        g_autofree char *plain = vt_write_temp("<vmsigd><libvirt/></vmsigd>");
        g_autofree char *off = vt_write_temp("<vmsigd><libvirt enabled=\"no\" uri=\"test:///default\"/></vmsigd>");
        vmsig_config *c = NULL;

        g_assert_cmpint(vmsig_config_new_default(&c), ==, 0);
        g_assert_false(c->libvirt_enabled);
        g_assert_cmpstr(c->libvirt_uri, ==, "qemu:///system");
        c = vmsig_config_free(c);

        g_assert_cmpint(vmsig_config_load(path, &c, NULL), ==, 0);
        g_assert_true(c->libvirt_enabled);
        g_assert_cmpstr(c->libvirt_uri, ==, "qemu+ssh://root@host/system");
        g_assert_true(c->libvirt_tagged);
        g_assert_false(c->libvirt_monitor);
        g_assert_null(c->warning);
        c = vmsig_config_free(c);

        g_assert_cmpint(vmsig_config_load(plain, &c, NULL), ==, 0);
        g_assert_true(c->libvirt_enabled);
        g_assert_cmpstr(c->libvirt_uri, ==, "qemu:///system");
        g_assert_false(c->libvirt_tagged);
        g_assert_true(c->libvirt_monitor);
        c = vmsig_config_free(c);

        g_assert_cmpint(vmsig_config_load(off, &c, NULL), ==, 0);
        g_assert_false(c->libvirt_enabled);
        vmsig_config_free(c);
        g_unlink(path);
        g_unlink(plain);
        g_unlink(off);
}

/* The status-file reader is gone: a file that still asks for it loads,
 * with a warning that names the line and the replacement, and reads no
 * status files. */
static void test_libvirt_status_files_obsolete(void) {
        g_autofree char *path = vt_write_temp("<vmsigd>\n<discovery trigger-dir=\"/run/t\" libvirt=\"yes\" "
                                           "libvirt-dir=\"/run/libvirt/qemu\"/>\n</vmsigd>\n");
        g_autofree char *where = NULL;
        vmsig_config *c = NULL;

        g_assert_cmpint(vmsig_config_load(path, &c, NULL), ==, 0);
        where = g_strdup_printf("%s:2: ", path);
        g_assert_nonnull(c->warning);
        g_assert_true(g_str_has_prefix(c->warning, where));
        g_assert_nonnull(strstr(c->warning, "obsolete and ignored"));
        g_assert_nonnull(strstr(c->warning, "<libvirt enabled=\"yes\"/>"));
        g_assert_cmpstr(c->trigger_dir, ==, "/run/t");
        g_assert_false(c->libvirt_enabled);
        vmsig_config_free(c);
        g_unlink(path);
}

/* An external entity is not expanded: the file it names is never read into
 * the configuration (or into the error message). */
static void test_external_entity_not_expanded(void) {
        g_autofree char *secret = vt_write_temp("vmsig-secret-7f3a9c\n");
        g_autofree char *xml = g_strdup_printf("<?xml version=\"1.0\"?>\n"
                                               "<!DOCTYPE vmsigd [ <!ENTITY secret SYSTEM \"file://%s\"> ]>\n"
                                               "<vmsigd><stub-vm name=\"&secret;\"/></vmsigd>\n",
                                               secret);
        g_autofree char *path = vt_write_temp(xml);
        g_autofree char *shipped = data_path("entity.conf");
        g_autofree char *error = NULL, *error2 = NULL;
        vmsig_config *c = NULL;

        g_assert_cmpint(vmsig_config_load(path, &c, &error), <, 0);
        g_assert_null(c);
        g_test_message("error: %s", error);
        g_assert_true(g_str_has_prefix(error, path));
        g_assert_null(strstr(error, "vmsig-secret-7f3a9c"));
        g_assert_cmpint(vmsig_config_load(shipped, &c, &error2), <, 0);
        g_assert_null(c);
        g_unlink(path);
        g_unlink(secret);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/config/", test_full, test_defaults, test_missing_file, test_bad_files, test_private_socket_disabled,
                 test_libvirt, test_libvirt_status_files_obsolete,
                 test_external_entity_not_expanded);
        return g_test_run();
}
