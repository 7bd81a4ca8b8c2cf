/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bootstrap of vmsigd against a real QEMU (TCG) whose vCPU runs on
 * synthetic Windows-like page tables (tests/synthetic-vcpu.h), with images
 * written by tests/win-image.c, which shares nothing with vmsigd's detector
 * nor with tests/guest-image.c. vmsigd finds the VM through its trigger
 * file, learns the guest-physical map and the vCPU's registers from QEMU,
 * and must publish the live root, and only that one:
 *  - nothing while the vCPU waits with paging off, though RAM holds a
 *    complete kernel of an earlier boot;
 *  - the root withdrawn at once on a reset, and the next boot's root found
 *    past the stale one;
 *  - a look-alike PML4 before the real one, a root above 16 MiB with a
 *    random self-reference and no low stub, and a System EPROCESS above
 *    4 GiB of a q35 guest of 3 GiB;
 * and a write through a virtual address lands where QEMU reads it. */
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <gio/gunixfdlist.h>

#include "fixture.h"
#include "qemu-harness.h"
#include "synthetic-vcpu.h"
#include "win-image.h"

#define VM VT_ENDPOINT("guest")
#define SEED 0x5eedu

typedef struct {
        VT_FIXTURE;
        QemuVm *qemu;
        int ram_fd;
        win_range ranges[2];
        win_image img;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data) {
        uint64_t ram_mib = GPOINTER_TO_UINT(data) ?: 128;

        f->ram_fd = -1;
        if (!qemu_harness_available())
                return;
        f->qemu = qemu_vm_new();
        f->qemu->ram_mib = ram_mib;
        synthetic_vcpu_start(f->qemu);
        f->ram_fd = open(f->qemu->ram_path, O_RDWR | O_CLOEXEC);
        g_assert_cmpint(f->ram_fd, >=, 0);
        f->img = (win_image) { .fd = f->ram_fd, .ranges = f->ranges,
                               .n_ranges = win_ranges_q35(ram_mib, f->ranges) };

        vt_fixture_setup_discovering(&f->vt, "<limits bootstrap-backoff-max-ms=\"1000\"/>", VT_FIXTURE_SIGNAL_LOG);
}

/* Also when QEMU could not be had and nothing was started. */
static void fixture_teardown(Fixture *f, gconstpointer data) {
        vt_fixture_teardown(&f->vt);
        if (f->ram_fd >= 0)
                close(f->ram_fd);
        qemu_vm_free(f->qemu);
}

static void attach(Fixture *f) {
        vt_fixture_attach(&f->vt, "guest", f->qemu->ram_path, f->qemu->qmp_path);
}

static char *bootstrap_state(Fixture *f) {
        return vt_get_string(f->conn, VM, VT_ENDPOINT_IFACE, "BootstrapState");
}

/* For vt_wait_for(), data: the Fixture. */
static gboolean is_ready(gpointer data) {
        return vt_endpoint_property_is(((Fixture *) data)->conn, VM, "BootstrapState", "ready");
}

static gboolean is_booting(gpointer data) {
        return vt_endpoint_property_is(((Fixture *) data)->conn, VM, "BootstrapState", "booting");
}

static void assert_root(Fixture *f, const win_expect *e) {
        g_autofree char *method = vt_get_string(f->conn, VM, VT_ENDPOINT_IFACE, "BootstrapMethod");
        g_autofree char *os = vt_get_string(f->conn, VM, VT_ENDPOINT_IFACE, "GuestOs");
        g_autofree char *release = vt_get_string(f->conn, VM, VT_ENDPOINT_IFACE, "GuestOsRelease");
        g_autofree char *want_release = g_strdup_printf("%u", e->build);
        QemuRegisters regs;
        g_autofree char *dump = qmp_session_registers(f->qemu->session, &regs);
        VtMemctx d = vt_subscribe_memctx(f->conn, VM);

        g_assert_cmphex(d.dtb, ==, e->dtb);
        /* QEMU's own view: the vCPU runs on it. */
        g_assert_cmphex(regs.cr3, ==, e->dtb);
        g_assert_cmpstr(method, ==, "eprocess+self-ref+cr3");
        g_assert_cmpstr(os, ==, "windows");
        g_assert_cmpstr(release, ==, want_release);
        vt_memctx_clear(&d);
}

static char *write_virtual(Fixture *f, uint64_t va, uint64_t value, guint64 expected_epoch) {
        uint64_t le = GUINT64_TO_LE(value);

        return vt_mem_write_virtual(f->conn, VM, va, &le, sizeof le, expected_epoch);
}

static double ms_since(gint64 start) {
        return (double) (g_get_monotonic_time() - start) / 1000.0;
}

/* Boot 1 runs and its root is published; a reset withdraws it at once
 * and, while the program waits with paging off over boot 1's intact
 * kernel, nothing is published; boot 2 runs on tables elsewhere and its
 * root is found past boot 1's System, which lies lower in RAM. */
static void test_stale_boot(Fixture *f, gconstpointer data) {
        win_expect e1, e2;

        if (!f->qemu)
                return;
        attach(f);
        g_assert_true(vt_wait_for(is_booting, f, 10000));
        g_assert_cmpint(win_stale_boot_write(&f->img, 1, 19041, SEED, &e1), ==, 0);
        /* RAM holds a whole kernel; the vCPU does not run it. */
        vt_bus_iterate(f->bus, 1000);
        g_assert_true(is_booting(f));

        gint64 t = g_get_monotonic_time();
        synthetic_vcpu_enter(f->qemu, e1.dtb);
        g_assert_true(vt_wait_for(is_ready, f, 10000));
        g_test_message("boot 1: kernel running -> ready in %.0f ms", ms_since(t));
        assert_root(f, &e1);
        VtMemctx d1 = vt_subscribe_memctx(f->conn, VM);

        /* A write through the root lands where QEMU reads it. */
        g_assert_null(write_virtual(f, e1.eprocess_va + 0x30, UINT64_C(0x1122334455667788), d1.epoch));
        g_assert_cmphex(qmp_session_xp(f->qemu->session, e1.eprocess_gpa + 0x30), ==, UINT64_C(0x1122334455667788));

        synthetic_vcpu_reset(f->qemu);
        g_autofree char *invalidated = g_strdup_printf("MemctxInvalidated " VM " (uint64 %" G_GUINT64_FORMAT ",)",
                                                       d1.epoch);
        g_assert_true(vt_signal_log_wait(f->log, invalidated, 2000));
        g_assert_true(vt_wait_for(is_booting, f, 5000));
        g_autofree char *stale = write_virtual(f, e1.eprocess_va + 0x30, 0x99, d1.epoch);
        g_assert_cmpstr(stale, ==, "org.vmsig.Error.StaleEpoch");
        g_assert_cmphex(qmp_session_xp(f->qemu->session, e1.eprocess_gpa + 0x30), ==, UINT64_C(0x1122334455667788));
        vt_bus_iterate(f->bus, 1000);
        g_assert_true(is_booting(f));

        g_assert_cmpint(win_stale_boot_write(&f->img, 2, 19041, SEED, &e2), ==, 0);
        g_assert_cmphex(e2.stale_dtb, ==, e1.dtb);
        g_assert_cmphex(e2.stale_eprocess_gpa, <, e2.eprocess_gpa);
        t = g_get_monotonic_time();
        synthetic_vcpu_enter(f->qemu, e2.dtb);
        g_assert_true(vt_wait_for(is_ready, f, 10000));
        g_test_message("boot 2: kernel running -> ready in %.0f ms", ms_since(t));
        assert_root(f, &e2);
        vt_memctx_clear(&d1);
}

/* A scenario of win-image: the root the vCPU runs on is the one. */
static void run_scenario(Fixture *f, win_scenario s) {
        win_expect e;

        if (!f->qemu)
                return;
        attach(f);
        g_assert_cmpint(win_scenario_write(&f->img, s, 19041, SEED, &e), ==, 0);
        synthetic_vcpu_enter(f->qemu, e.dtb);
        g_assert_true(vt_wait_for(is_ready, f, 10000));
        assert_root(f, &e);
}

static void test_lookalike(Fixture *f, gconstpointer data) {
        run_scenario(f, WIN_SCENARIO_LOOKALIKE);
}

static void test_high_root(Fixture *f, gconstpointer data) {
        run_scenario(f, WIN_SCENARIO_HIGH_ROOT);
}

/* q35 with 3 GiB: RAM at [0, 2G) and [4G, 5G), the second at file offset
 * 2G, as vmsigd learns from QEMU without a <gpa-map>; the System EPROCESS
 * lies above 4 GiB. */
static void test_above_4g(Fixture *f, gconstpointer data) {
        guint64 gpa, size, offset;

        run_scenario(f, WIN_SCENARIO_ABOVE_4G);
        if (!f->qemu)
                return;
        VtMemctx d = vt_subscribe_memctx(f->conn, VM);
        g_assert_cmpuint(g_variant_n_children(d.ranges), ==, 2);
        g_variant_get_child(d.ranges, 0, "(ttt)", &gpa, &size, &offset);
        g_assert_cmphex(gpa, ==, 0);
        g_assert_cmphex(size, ==, UINT64_C(2) << 30);
        g_assert_cmphex(offset, ==, 0);
        g_variant_get_child(d.ranges, 1, "(ttt)", &gpa, &size, &offset);
        g_assert_cmphex(gpa, ==, UINT64_C(4) << 30);
        g_assert_cmphex(size, ==, UINT64_C(1) << 30);
        g_assert_cmphex(offset, ==, UINT64_C(2) << 30);
        vt_memctx_clear(&d);
}

/* Nothing to find: it never gets ready, and says so once. */
static void test_noise_only(Fixture *f, gconstpointer data) {
        win_expect e;

        if (!f->qemu)
                return;
        attach(f);
        g_assert_cmpint(win_scenario_write(&f->img, WIN_SCENARIO_NOISE_ONLY, 19041, SEED, &e), ==, 0);
        /* Some root for the vCPU to run on: the noise has none. */
        win_kernel k;
        win_expect ek;
        win_root_init(&k, 0x1AA000, 0x1AB000, 0x1ED, 6, SEED);
        g_assert_cmpint(win_kernel_write(&f->img, &k, &ek), ==, 0);
        synthetic_vcpu_enter(f->qemu, ek.dtb);
        vt_bus_iterate(f->bus, 3000);
        g_autofree char *s = bootstrap_state(f);
        g_assert_true(g_str_equal(s, "retrying") || g_str_equal(s, "searching"));
        g_autofree char *log = vt_daemon_log(f->daemon);
        g_assert_nonnull(strstr(log, "No address-space root in the RAM of 'guest' yet"));
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
#define ADD(name, mib, fn) \
        g_test_add("/bootstrap-qemu/" name, Fixture, GUINT_TO_POINTER(mib), fixture_setup, fn, fixture_teardown)
        ADD("stale-boot", win_scenario_ram_mib(WIN_SCENARIO_STALE_BOOT), test_stale_boot);
        ADD("lookalike", win_scenario_ram_mib(WIN_SCENARIO_LOOKALIKE), test_lookalike);
        ADD("high-root", win_scenario_ram_mib(WIN_SCENARIO_HIGH_ROOT), test_high_root);
        ADD("above-4g", win_scenario_ram_mib(WIN_SCENARIO_ABOVE_4G), test_above_4g);
        ADD("noise-only", win_scenario_ram_mib(WIN_SCENARIO_NOISE_ONLY), test_noise_only);
        return g_test_run();
}
