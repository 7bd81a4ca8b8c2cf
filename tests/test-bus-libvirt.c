/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmsigd with <libvirt enabled="yes"/> against the private libvirtd of
 * libvirt-harness.h (vmsigd runs in the test's mount namespace, so
 * qemu:///system is that libvirtd): a running domain and one started
 * later are announced on the bus with Backend "libvirt"; Pause through the
 * bus is libvirt's pause; a reload that changes the URI replaces the
 * endpoints of the old connection with those of the new one.
 */
#include <string.h>
#include <libvirt/libvirt.h>

#include "fixture.h"
#include "libvirt-harness.h"
#include "vt-util.h"

#define RAM_MIB 128
#define WAIT_MS 60000
#define ONE VT_ENDPOINT("lvbus1")
#define TWO VT_ENDPOINT("lvbus2")
#define CONFIG(attrs) "<vmsigd><audit target=\"stderr\"/><libvirt enabled=\"yes\"" attrs "/></vmsigd>"

/* The signal member for path, or a failure that shows vmsigd's log. */
static void wait_signal(VtFixture *f, const char *member, const char *path) {
        g_autofree char *want = g_strdup_printf("%s /org/vmsig (objectpath '%s',)", member, path);

        if (!vt_signal_log_wait(f->log, want, WAIT_MS)) {
                g_autofree char *log = vt_daemon_log(f->daemon);

                g_error("no %s; vmsigd's log:\n%s", want, log);
        }
}

static void wait_added(VtFixture *f, const char *path) {
        wait_signal(f, "EndpointAdded", path);
}

static void wait_removed(VtFixture *f, const char *path) {
        wait_signal(f, "EndpointRemoved", path);
}

static int domain_state(LibvirtHarness *h, const char *name) {
        virDomainPtr dom = virDomainLookupByName(h->conn, name);
        int state = -1, reason;

        g_assert_nonnull(dom);
        g_assert_cmpint(virDomainGetState(dom, &state, &reason, 0), ==, 0);
        virDomainFree(dom);
        return state;
}

static void test_bus_libvirt(void) {
        g_autoptr(LibvirtHarness) h = NULL;
        VtFixture f = {};
        int lease;

        if (!libvirt_harness_available())
                return;
        h = libvirt_harness_new();
        libvirt_harness_start(h);
        virDomainFree(libvirt_harness_start_domain(h, "lvbus1", LIBVIRT_RAM_FILE, RAM_MIB));
        vt_fixture_setup(&f, CONFIG(""), VT_FIXTURE_SIGNAL_LOG);
        /* Listed at once: perhaps announced before the test listened. */
        g_assert_true(vt_endpoint_wait_property(f.conn, ONE, "Backend", "libvirt", TRUE, WAIT_MS));

        /* Started as virsh starts it: libvirt's event. */
        virDomainFree(libvirt_harness_start_domain(h, "lvbus2", LIBVIRT_RAM_MEMFD, RAM_MIB));
        wait_added(&f, TWO);

        lease = vt_acquire_lease(f.conn, ONE, "power", NULL);
        g_variant_unref(vt_call(f.conn, ONE, VT_ENDPOINT_IFACE, "Pause", NULL));
        g_assert_cmpint(domain_state(h, "lvbus1"), ==, VIR_DOMAIN_PAUSED);
        g_assert_true(vt_endpoint_wait_property(f.conn, ONE, "State", "paused", TRUE, WAIT_MS));
        close(lease);

        /* Another URI: libvirt's test driver, whose one domain is "test". */
        vt_daemon_rewrite_config(f.daemon, CONFIG(" uri=\"test:///default\""));
        vt_daemon_signal(f.daemon, SIGHUP);
        wait_removed(&f, ONE);
        wait_removed(&f, TWO);
        wait_added(&f, VT_ENDPOINT("test"));
        vt_fixture_teardown(&f);
}

int main(int argc, char **argv) {
        /* Before GLib can start a thread: see libvirt-harness.h. */
        libvirt_harness_enter_namespace();
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/bus-libvirt/", test_bus_libvirt);
        return g_test_run();
}
