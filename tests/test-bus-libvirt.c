/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmsigd with <libvirt enabled="yes"/> against the private libvirtd of
 * libvirt-harness.h (vmsigd runs in the test's mount namespace, so
 * qemu:///system is that libvirtd): a running domain and one started
 * later are announced on the bus with Backend "libvirt"; Pause through the
 * bus is libvirt's pause; a reload that changes the URI replaces the
 * endpoints of the old connection with those of the new one.
 *
 * The guest's memory through libvirt (issue 17, part 2): memctx and
 * MemWrite on the file and the memfd backings, with no writable route for
 * nobody; the real-guest bootstrap reaches ready through the monitor
 * passthrough, and again after a reset; a domain without shared RAM is an
 * endpoint without memctx, whose memory calls name the XML it lacks; with
 * <libvirt monitor="no">, pointer events are refused saying why, keys
 * still go, the bootstrap goes by memory witnesses alone, the map is the
 * machine type's (split for a q35 guest of 3 GiB) and a split moved on
 * QEMU's command line means no memctx, with the reason in the log and in
 * the memory calls' RamUnavailable. The absolute pointer reaches a
 * domain's USB tablet (issue 17, part 3). vmsigd without CAP_SYS_PTRACE
 * cannot read the RAM of a QEMU of libvirt-qemu: its memory calls say so
 * (RamUnavailable, naming the capability and the drop-in) and change
 * nothing; with it, the same domain subscribes.
 */
#include <string.h>
#include <sys/mman.h>
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

        if (!(h = libvirt_harness_new_started()))
                return;
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

/* A GPA the test guest leaves alone while paused, and 8 bytes for it. */
#define WRITE_GPA G_GUINT64_CONSTANT(0x7000000)
static const guint8 write_bytes[8] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };

static GVariant *mem_write_args(guint64 gpa, const guint8 *bytes, gsize len) {
        return g_variant_new("(t@aya{sv})", gpa, g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, bytes, len, 1), NULL);
}

static void set_paused(VtFixture *f, const char *path, gboolean paused) {
        g_autoptr(GVariant) r = vt_call(f->conn, path, VT_ENDPOINT_IFACE, paused ? "Pause" : "Resume", NULL);

        g_assert_true(vt_endpoint_wait_property(f->conn, path, "State", paused ? "paused" : "running", TRUE, WAIT_MS));
}

typedef struct Watch {
        VtFixture *f;
        const char *path;
        guint64 epoch; /* more than this */
} Watch;

static gboolean is_published(gpointer data) {
        Watch *w = data;

        return vt_get_uint(w->f->conn, w->path, VT_ENDPOINT_IFACE, "MemctxEpoch") > w->epoch;
}

/* The memctx is published a few monitor round trips after the endpoint. */
static void wait_memctx(VtFixture *f, const char *path) {
        Watch w = { f, path, 0 };

        if (!vt_wait_for(is_published, &w, WAIT_MS)) {
                g_autofree char *log = vt_daemon_log(f->daemon);

                g_error("no memctx for %s; vmsigd's log:\n%s", path, log);
        }
}

/* BootstrapState ready, at an epoch after w->epoch. */
static gboolean is_ready(gpointer data) {
        Watch *w = data;

        return vt_get_uint(w->f->conn, w->path, VT_ENDPOINT_IFACE, "MemctxEpoch") > w->epoch &&
               vt_endpoint_property_is(w->f->conn, w->path, "BootstrapState", "ready");
}

/* Bytes written through MemWrite read back through the subscriber's fd;
 * a write past the RAM's end is refused and changes nothing. Paused, so
 * that the guest writes nothing meanwhile. */
static void assert_mem_write(VtFixture *f, const char *path) {
        int power = vt_acquire_lease(f->conn, path, "power", NULL);
        int mw = vt_acquire_lease(f->conn, path, "memory-write", NULL);
        g_autofree guint8 *before = NULL;
        g_autofree char *error = NULL;
        const guint8 *ram;
        VtMemctx d;

        wait_memctx(f, path);
        d = vt_subscribe_memctx(f->conn, path);

        g_assert_cmpuint(d.size, ==, (guint64) RAM_MIB << 20);
        ram = mmap(NULL, d.size, PROT_READ, MAP_SHARED, d.fd, 0);
        g_assert_true(ram != MAP_FAILED);
        set_paused(f, path, TRUE);
        g_variant_unref(vt_call(f->conn, path, VT_ENDPOINT_IFACE, "MemWrite",
                                mem_write_args(WRITE_GPA, write_bytes, sizeof write_bytes)));
        g_assert_cmpmem(ram + WRITE_GPA, sizeof write_bytes, write_bytes, sizeof write_bytes);

        before = g_memdup2(ram, d.size);
        error = vt_call_error(f->conn, path, VT_ENDPOINT_IFACE, "MemWrite",
                              mem_write_args(d.size - 4, write_bytes, sizeof write_bytes), NULL);
        g_assert_cmpstr(error, ==, "org.vmsig.Error.OutOfRange");
        g_assert_cmpmem(before, d.size, ram, d.size);
        set_paused(f, path, FALSE);
        munmap((void *) ram, d.size);
        close(mw);
        close(power);
        vt_memctx_clear(&d);
}

/* Whoever gets the RAM fd can read the guest and never write it. */
static void assert_no_write_route(VtFixture *f, const char *path) {
        g_auto(GStrv) nobody = vt_probe_memctx(f->bus, TRUE, path);

        g_assert_true(g_strv_contains((const char *const *) nobody, "reopen-rw EACCES"));
        g_assert_true(g_strv_contains((const char *const *) nobody, "mmap-write EACCES"));
        g_assert_true(g_strv_contains((const char *const *) nobody, "write EBADF"));
}

static void test_memctx(void) {
        static const struct {
                const char *name, *path;
                LibvirtRam ram;
        } domains[] = {
                { "lvfile", VT_ENDPOINT("lvfile"), LIBVIRT_RAM_FILE },
                { "lvmemfd", VT_ENDPOINT("lvmemfd"), LIBVIRT_RAM_MEMFD },
        };
        g_autoptr(LibvirtHarness) h = NULL;
        VtFixture f = {};

        if (!(h = libvirt_harness_new_started()))
                return;
        vt_fixture_setup(&f, CONFIG(""), VT_FIXTURE_POLKIT | VT_FIXTURE_SIGNAL_LOG);
        if (f.polkit)
                vt_polkit_allow(f.polkit, "action.id == \"org.vmsig.memctx\" && subject.user == \"nobody\"");
        for (size_t i = 0; i < G_N_ELEMENTS(domains); i++) {
                virDomainFree(libvirt_harness_start_domain(h, domains[i].name, domains[i].ram, RAM_MIB));
                wait_added(&f, domains[i].path);
                assert_mem_write(&f, domains[i].path);
                if (f.polkit)
                        assert_no_write_route(&f, domains[i].path);
        }
        vt_fixture_teardown(&f);
}

/* The guest's kernel found: ready, and a root published with the datum. */
static guint64 wait_ready(VtFixture *f, const char *path, guint64 after) {
        Watch w = { f, path, after };
        VtMemctx d;
        guint64 epoch;

        if (!vt_wait_for(is_ready, &w, WAIT_MS)) {
                g_autofree char *log = vt_daemon_log(f->daemon);

                g_error("%s not ready; vmsigd's log:\n%s", path, log);
        }
        d = vt_subscribe_memctx(f->conn, path);
        g_assert_cmpuint(d.dtb, !=, 0);
        epoch = d.epoch;
        vt_memctx_clear(&d);
        return epoch;
}

static GVariant *input_args(guint type, guint code, gint value) {
        GVariantBuilder b;

        g_variant_builder_init(&b, G_VARIANT_TYPE("a(uui)"));
        g_variant_builder_add(&b, "(uui)", type, code, value);
        return g_variant_new("(a(uui))", &b);
}

/* vCPU registers and pointer events through the passthrough; a reset (libvirt's own call) is
 * a new epoch, ready again. */
static void test_bootstrap(void) {
        g_autoptr(LibvirtHarness) h = NULL;
        VtFixture f = {};
        virDomainPtr dom;
        guint64 epoch;

        if (!(h = libvirt_harness_new_started()))
                return;
        dom = libvirt_harness_start_domain(h, "lvboot", LIBVIRT_RAM_MEMFD, RAM_MIB);
        vt_fixture_setup(&f, CONFIG(""), VT_FIXTURE_SIGNAL_LOG);
        g_assert_true(vt_endpoint_wait_property(f.conn, VT_ENDPOINT("lvboot"), "Backend", "libvirt", TRUE, WAIT_MS));
        epoch = wait_ready(&f, VT_ENDPOINT("lvboot"), 0);
        /* The vCPU's CR3 came through the passthrough: */
        g_autofree char *method = vt_get_string(f.conn, VT_ENDPOINT("lvboot"), VT_ENDPOINT_IFACE, "BootstrapMethod");
        g_assert_cmpstr(method, ==, "cr3+banner");
        /* Pointer events too: a move of the PS/2 mouse and a click (the
         * domain has no tablet, which QEMU says of an absolute event). */
        int lease = vt_acquire_lease(f.conn, VT_ENDPOINT("lvboot"), "input", NULL);
        g_autofree char *abs_message = NULL;
        g_autofree char *abs_error = vt_call_error(f.conn, VT_ENDPOINT("lvboot"), VT_ENDPOINT_IFACE, "InjectInput",
                                                   input_args(3, 0, 16384), &abs_message);
        g_assert_nonnull(strstr(abs_message, "QEMU: GenericError: Input handler not found"));
        g_variant_unref(vt_call(f.conn, VT_ENDPOINT("lvboot"), VT_ENDPOINT_IFACE, "InjectInput", input_args(2, 0, 5)));
        g_variant_unref(vt_call(f.conn, VT_ENDPOINT("lvboot"), VT_ENDPOINT_IFACE, "InjectInput", input_args(1, 0, 1)));
        g_variant_unref(vt_call(f.conn, VT_ENDPOINT("lvboot"), VT_ENDPOINT_IFACE, "InjectInput", input_args(1, 0, 0)));
        close(lease);
        g_assert_cmpint(virDomainReset(dom, 0), ==, 0);
        g_assert_cmpuint(wait_ready(&f, VT_ENDPOINT("lvboot"), epoch), >, epoch);
        virDomainFree(dom);
        vt_fixture_teardown(&f);
}

static GVariant *abs_args(gint x, gint y) {
        GVariantBuilder b;

        g_variant_builder_init(&b, G_VARIANT_TYPE("a(uui)"));
        g_variant_builder_add(&b, "(uui)", 3 /* abs */, 0, x);
        g_variant_builder_add(&b, "(uui)", 3, 1, y);
        return g_variant_new("(a(uui))", &b);
}

/* The absolute pointer end to end: InjectInput's absolute events reach
 * the USB tablet of a domain that has one (QEMU refuses them without a
 * handler, as test_bootstrap shows), at the positions sent, as QEMU's
 * trace of its input events says. */
static void test_tablet(void) {
        g_autoptr(LibvirtHarness) h = NULL;
        g_autofree char *mice = NULL, *log = NULL;
        VtFixture f = {};
        int lease;

        if (!(h = libvirt_harness_new_started()))
                return;
        virDomainFree(libvirt_harness_start_tablet_domain(h, "lvtab", LIBVIRT_RAM_FILE, RAM_MIB));
        mice = libvirt_harness_hmp(h, "lvtab", "info mice");
        g_assert_nonnull(strstr(mice, "QEMU HID Tablet (absolute)"));
        free(libvirt_harness_hmp(h, "lvtab", "trace-event input_event_abs on"));
        vt_fixture_setup(&f, CONFIG(""), VT_FIXTURE_SIGNAL_LOG);
        g_assert_true(vt_endpoint_wait_property(f.conn, VT_ENDPOINT("lvtab"), "Backend", "libvirt", TRUE, WAIT_MS));
        lease = vt_acquire_lease(f.conn, VT_ENDPOINT("lvtab"), "input", NULL);
        g_variant_unref(vt_call(f.conn, VT_ENDPOINT("lvtab"), VT_ENDPOINT_IFACE, "InjectInput", abs_args(16384, 8192)));
        g_variant_unref(vt_call(f.conn, VT_ENDPOINT("lvtab"), VT_ENDPOINT_IFACE, "InjectInput", abs_args(0, 32767)));
        close(lease);
        log = libvirt_harness_qemu_log(h, "lvtab");
        g_assert_nonnull(strstr(log, "axis x, value 0x4000\n"));
        g_assert_nonnull(strstr(log, "axis y, value 0x2000\n"));
        g_assert_nonnull(strstr(log, "axis x, value 0x0\n"));
        g_assert_nonnull(strstr(log, "axis y, value 0x7fff\n"));
        vt_fixture_teardown(&f);
}

static gboolean has_capability(VtFixture *f, const char *path, const char *cap) {
        g_autoptr(GVariant) caps = vt_get_property(f->conn, path, VT_ENDPOINT_IFACE, "Capabilities");
        g_autofree const char **strv = g_variant_get_strv(caps, NULL);

        return g_strv_contains(strv, cap);
}

/* Without shared RAM: an endpoint, no memctx, and memory calls that say
 * which XML the domain needs; nothing was written. */
static void assert_no_memctx(VtFixture *f, const char *path) {
        g_autofree char *message = NULL, *write_message = NULL;
        g_autofree char *error = NULL, *write_error = NULL;
        int mw;

        g_assert_false(has_capability(f, path, "memctx"));
        g_assert_true(has_capability(f, path, "input"));
        error = vt_call_error(f->conn, path, VT_ENDPOINT_IFACE, "SubscribeMemctx", NULL, &message);
        g_assert_cmpstr(error, ==, "org.vmsig.Error.NotSupported");
        g_assert_nonnull(strstr(message, "<memoryBacking>"));
        mw = vt_acquire_lease(f->conn, path, "memory-write", NULL);
        write_error = vt_call_error(f->conn, path, VT_ENDPOINT_IFACE, "MemWrite",
                                    mem_write_args(WRITE_GPA, write_bytes, sizeof write_bytes), &write_message);
        g_assert_cmpstr(write_error, ==, "org.vmsig.Error.NotSupported");
        g_assert_nonnull(strstr(write_message, "<memoryBacking>"));
        close(mw);
}

/* monitor="no": pointer events, relative and absolute, refused saying
 * why; keys still go. */
static void assert_monitor_off_input(VtFixture *f, const char *path) {
        int lease = vt_acquire_lease(f->conn, path, "input", NULL);

        for (guint type = 2 /* rel */; type <= 3 /* abs */; type++) {
                g_autofree char *message = NULL;
                g_autofree char *error =
                        vt_call_error(f->conn, path, VT_ENDPOINT_IFACE, "InjectInput", input_args(type, 0, 5), &message);

                g_assert_cmpstr(error, ==, "org.vmsig.Error.NotSupported");
                g_assert_nonnull(strstr(message, "monitor=\"no\""));
        }
        g_variant_unref(vt_call(f->conn, path, VT_ENDPOINT_IFACE, "InjectInput", input_args(0, 36, 1)));
        g_variant_unref(vt_call(f->conn, path, VT_ENDPOINT_IFACE, "InjectInput", input_args(0, 36, 0)));
        close(lease);
}

static gboolean two_attempts(gpointer data) {
        VtFixture *f = data;

        return vt_get_uint(f->conn, VT_ENDPOINT("lvnomon"), VT_ENDPOINT_IFACE, "BootstrapAttempts") >= 2;
}

/* monitor="no" and a guest over its PCI hole: the map of its machine type
 * (pc-q35: 2 GiB low, the rest from 4 GiB), not a flat one. */
static void assert_split_map(VtFixture *f, const char *path) {
        VtMemctx d;
        guint64 gpa, size, offset;

        wait_memctx(f, path);
        d = vt_subscribe_memctx(f->conn, path);
        g_assert_cmpuint(d.size, ==, 3 * (G_GUINT64_CONSTANT(1) << 30));
        g_assert_cmpuint(g_variant_n_children(d.ranges), ==, 2);
        g_variant_get_child(d.ranges, 0, "(ttt)", &gpa, &size, &offset);
        g_assert_cmphex(gpa, ==, 0);
        g_assert_cmphex(size, ==, G_GUINT64_CONSTANT(0x80000000));
        g_assert_cmphex(offset, ==, 0);
        g_variant_get_child(d.ranges, 1, "(ttt)", &gpa, &size, &offset);
        g_assert_cmphex(gpa, ==, G_GUINT64_CONSTANT(0x100000000));
        g_assert_cmphex(size, ==, G_GUINT64_CONSTANT(0x40000000));
        g_assert_cmphex(offset, ==, G_GUINT64_CONSTANT(0x80000000));
        vt_memctx_clear(&d);
}

/* A split moved on QEMU's command line: no map is guessed, so no memctx,
 * and the log says why. */
static void assert_moved_refused(VtFixture *f, const char *path) {
        void *args[2] = { f->daemon, "libvirt domain 'lvmoved' has no memory context: Its <qemu:commandline> "
                                     "argument '-machine' may change where QEMU puts the RAM." };

        g_autofree char *message = NULL, *error = NULL;

        g_assert_true(vt_wait_for(vt_daemon_log_has, args, WAIT_MS));
        g_assert_cmpuint(vt_get_uint(f->conn, path, VT_ENDPOINT_IFACE, "MemctxEpoch"), ==, 0);
        /* Not "no memory context yet": the reason. */
        error = vt_call_error(f->conn, path, VT_ENDPOINT_IFACE, "SubscribeMemctx", NULL, &message);
        g_assert_cmpstr(error, ==, "org.vmsig.Error.RamUnavailable");
        g_assert_nonnull(strstr(message, "argument '-machine' may change where QEMU puts the RAM"));
}

static void test_without(void) {
        g_autoptr(LibvirtHarness) h = NULL;
        VtFixture f = {};

        if (!(h = libvirt_harness_new_started()))
                return;
        virDomainFree(libvirt_harness_start_domain(h, "lvnoram", LIBVIRT_RAM_NONE, RAM_MIB));
        virDomainFree(libvirt_harness_start_domain(h, "lvnomon", LIBVIRT_RAM_FILE, RAM_MIB));
        virDomainFree(libvirt_harness_start_paused(h, "lvsplit", "q35", 3072, NULL));
        virDomainFree(libvirt_harness_start_paused(h, "lvmoved", "q35", 3072,
                                                   "<qemu:commandline><qemu:arg value='-machine'/>"
                                                   "<qemu:arg value='max-ram-below-4g=1G'/></qemu:commandline>"));
        vt_fixture_setup(&f, CONFIG(" monitor=\"no\""), VT_FIXTURE_SIGNAL_LOG);
        g_assert_true(vt_endpoint_wait_property(f.conn, VT_ENDPOINT("lvsplit"), "Backend", "libvirt", TRUE, WAIT_MS));
        g_assert_true(vt_endpoint_wait_property(f.conn, VT_ENDPOINT("lvmoved"), "Backend", "libvirt", TRUE, WAIT_MS));
        assert_split_map(&f, VT_ENDPOINT("lvsplit"));
        assert_moved_refused(&f, VT_ENDPOINT("lvmoved"));
        g_assert_true(vt_endpoint_wait_property(f.conn, VT_ENDPOINT("lvnoram"), "Backend", "libvirt", TRUE, WAIT_MS));
        g_assert_true(vt_endpoint_wait_property(f.conn, VT_ENDPOINT("lvnomon"), "Backend", "libvirt", TRUE, WAIT_MS));
        assert_no_memctx(&f, VT_ENDPOINT("lvnoram"));
        assert_monitor_off_input(&f, VT_ENDPOINT("lvnomon"));
        /* 128 MiB lie flat, as pc-q35 puts them. The
         * bootstrap goes by memory witnesses alone, which a Linux guest
         * does not give (it needs CR3): it keeps looking, and says why. */
        g_assert_true(has_capability(&f, VT_ENDPOINT("lvnomon"), "memctx"));
        wait_memctx(&f, VT_ENDPOINT("lvnomon"));
        g_assert_true(vt_wait_for(two_attempts, &f, WAIT_MS));
        g_assert_false(vt_endpoint_property_is(f.conn, VT_ENDPOINT("lvnomon"), "BootstrapState", "ready"));
        g_autofree char *log = vt_daemon_log(f.daemon);
        g_assert_nonnull(strstr(log, "The host of 'lvnomon' cannot tell the vCPU's registers"));
        vt_fixture_teardown(&f);
}

static GVariant *endpoint_properties(VtFixture *f, const char *path) {
        return vt_call(f->conn, path, "org.freedesktop.DBus.Properties", "GetAll",
                       g_variant_new("(s)", VT_ENDPOINT_IFACE));
}

/* SubscribeMemctx and MemWrite of an endpoint whose RAM vmsigd may not
 * read: RamUnavailable, naming what vmsigd lacks and what grants it;
 * nothing changes. */
static void assert_unreadable(VtFixture *f, const char *path) {
        static const char *const methods[] = { "SubscribeMemctx", "MemWrite" };
        int mw = vt_acquire_lease(f->conn, path, "memory-write", NULL);
        g_autoptr(GVariant) before = endpoint_properties(f, path), after = NULL;
        g_autofree char *before_text = NULL, *after_text = NULL;

        for (size_t i = 0; i < G_N_ELEMENTS(methods); i++) {
                g_autofree char *message = NULL;
                g_autofree char *error = vt_call_error(
                        f->conn, path, VT_ENDPOINT_IFACE, methods[i],
                        i == 0 ? NULL : mem_write_args(WRITE_GPA, write_bytes, sizeof write_bytes), &message);

                if (g_strcmp0(error, "org.vmsig.Error.RamUnavailable") != 0) {
                        g_autofree char *log = vt_daemon_log(f->daemon);

                        g_error("%s: %s: %s; vmsigd's log:\n%s", methods[i], error, message, log);
                }
                g_assert_nonnull(strstr(message, "CAP_SYS_PTRACE"));
                g_assert_nonnull(strstr(message, "vmsigd-libvirt-memctx.conf"));
        }
        after = endpoint_properties(f, path);
        close(mw);
        before_text = g_variant_print(before, FALSE);
        after_text = g_variant_print(after, FALSE);
        g_assert_cmpstr(after_text, ==, before_text);
}

/* vmsigd as vmsigd.service runs it without the drop-in, as far as the RAM
 * goes: without CAP_SYS_PTRACE (bounding set, before whatever
 * VMSIG_DAEMON_WRAPPER says). Then a vmsigd with it: the same domain
 * subscribes. */
static void start_without_ptrace(VtFixture *f) {
        g_autofree char *wrapper = g_strdup(g_getenv("VMSIG_DAEMON_WRAPPER"));
        g_autofree char *restricted = g_strconcat("setpriv --bounding-set=-sys_ptrace ", wrapper ?: "", NULL);

        g_setenv("VMSIG_DAEMON_WRAPPER", restricted, TRUE);
        vt_fixture_setup(f, CONFIG(""), VT_FIXTURE_SIGNAL_LOG);
        if (wrapper)
                g_setenv("VMSIG_DAEMON_WRAPPER", wrapper, TRUE);
        else
                g_unsetenv("VMSIG_DAEMON_WRAPPER");
}

static void test_unreadable(void) {
        g_autoptr(LibvirtHarness) h = NULL;
        VtFixture f = {};
        VtMemctx d;

        if (!(h = libvirt_harness_new_started()))
                return;
        virDomainFree(libvirt_harness_start_domain(h, "lvdenied", LIBVIRT_RAM_MEMFD, RAM_MIB));
        start_without_ptrace(&f);
        g_assert_true(vt_endpoint_wait_property(f.conn, VT_ENDPOINT("lvdenied"), "Backend", "libvirt", TRUE, WAIT_MS));
        g_assert_false(has_capability(&f, VT_ENDPOINT("lvdenied"), "memctx"));
        assert_unreadable(&f, VT_ENDPOINT("lvdenied"));
        vt_fixture_teardown(&f);

        f = (VtFixture) {};
        vt_fixture_setup(&f, CONFIG(""), VT_FIXTURE_SIGNAL_LOG);
        g_assert_true(vt_endpoint_wait_property(f.conn, VT_ENDPOINT("lvdenied"), "Backend", "libvirt", TRUE, WAIT_MS));
        wait_memctx(&f, VT_ENDPOINT("lvdenied"));
        d = vt_subscribe_memctx(f.conn, VT_ENDPOINT("lvdenied"));
        g_assert_cmpuint(d.size, ==, (guint64) RAM_MIB << 20);
        vt_memctx_clear(&d);
        vt_fixture_teardown(&f);
}

int main(int argc, char **argv) {
        /* Before GLib can start a thread: see libvirt-harness.h. */
        libvirt_harness_enter_namespace();
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/bus-libvirt/", test_bus_libvirt, test_memctx, test_bootstrap, test_tablet, test_without, test_unreadable);
        return g_test_run();
}
