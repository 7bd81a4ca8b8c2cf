/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsigd and a real Linux guest: Debian's cloud kernel booting under QEMU
 * (TCG) with a busybox initramfs (tests/linux-guest.h). vmsigd is attached
 * before the guest starts (QEMU -S) and must see, in order: booting, with
 * no root published while the firmware and the kernel's decompressor run;
 * ready with the kernel's root; a write through a kernel virtual address
 * landing where QEMU reads it; a reset withdrawing the root at once; ready
 * again with the next boot's root. Everything vmsigd says is checked
 * against witnesses of the test's own: QEMU's registers and translation
 * (info registers, gva2gpa), the kernel's /proc/kallsyms, and a page walk
 * written here. One run with -cpu max,vendor=GenuineIntel: 5-level paging
 * and page-table isolation. */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "fixture.h"
#include "linux-guest.h"
#include "qemu-harness.h"

#define VM VT_ENDPOINT("guest")
#define BOOT_MS 60000

typedef struct {
        VT_FIXTURE;
        LinuxGuest *g;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data) {
        if (!linux_guest_available())
                return;
        f->g = linux_guest_new(data, false);
        linux_guest_start(f->g, true, false);
        vt_fixture_setup_discovering(&f->vt, "", VT_FIXTURE_SIGNAL_LOG);
}

/* Also when the guest could not be had and nothing was started. */
static void fixture_teardown(Fixture *f, gconstpointer data) {
        vt_fixture_teardown(&f->vt);
        linux_guest_free(f->g);
}

static void attach(Fixture *f) {
        vt_fixture_attach(&f->vt, "guest", f->g->vm->ram_path, f->g->vm->qmp_path);
}

static char *prop(Fixture *f, const char *name) {
        return vt_get_string(f->conn, VM, VT_ENDPOINT_IFACE, name);
}

/* For vt_wait_for(), data: the Fixture. */
static gboolean is_ready(gpointer data) {
        return vt_endpoint_property_is(((Fixture *) data)->conn, VM, "BootstrapState", "ready");
}

static gboolean is_booting(gpointer data) {
        return vt_endpoint_property_is(((Fixture *) data)->conn, VM, "BootstrapState", "booting");
}

/* --- the test's own page walk, over the RAM fd vmsigd handed out (flat: the
 * guest has 512 MiB) ------------------------------------------------------ */

static uint64_t read_u64(int fd, uint64_t gpa) {
        uint64_t v = 0;

        g_assert_cmpint(pread(fd, &v, sizeof v, (off_t) gpa), ==, sizeof v);
        return GUINT64_FROM_LE(v);
}

#define ADDR_MASK UINT64_C(0x000FFFFFFFFFF000)

/* 0 if va is not mapped under root. */
static uint64_t walk(int fd, uint64_t root, unsigned levels, uint64_t va) {
        uint64_t table = root & ADDR_MASK;

        for (unsigned level = levels; level >= 1; level--) {
                unsigned shift = 12 + 9 * (level - 1);
                uint64_t e = read_u64(fd, table + ((va >> shift) & 511) * 8);

                if (!(e & 1))
                        return 0;
                if (level <= 3 && level >= 2 && (e & 0x80)) /* 1 GiB, 2 MiB */
                        return (e & ADDR_MASK & ~((UINT64_C(1) << shift) - 1)) | (va & ((UINT64_C(1) << shift) - 1));
                table = e & ADDR_MASK;
        }
        return table | (va & 0xFFF);
}

/* The kernel halves of two top-level tables, entry for entry, but for the
 * accessed and dirty bits the CPU sets in each copy. */
static gboolean same_kernel_half(int fd, uint64_t a, uint64_t b) {
        unsigned present = 0;

        for (unsigned i = 256; i < 512; i++) {
                uint64_t ea = read_u64(fd, (a & ADDR_MASK) + i * 8), eb = read_u64(fd, (b & ADDR_MASK) + i * 8);

                if ((ea & ~UINT64_C(0x60)) != (eb & ~UINT64_C(0x60)))
                        return FALSE;
                present += ea & 1;
        }
        return present > 0;
}

static uint64_t qemu_gva2gpa(Fixture *f, uint64_t va) {
        g_autofree char *cmd = g_strdup_printf("gva2gpa 0x%" PRIx64, va);
        g_autofree char *out = linux_guest_hmp(f->g, cmd);
        uint64_t gpa = 0;

        /* "gpa: 0x68001a0" */
        g_assert_cmpint(sscanf(out, "gpa: %" SCNx64, &gpa), ==, 1);
        return gpa;
}

typedef struct {
        VtMemctx m;
        uint64_t banner_va, banner_gpa;
        unsigned levels;
} Root;

/* The published root, checked: the vCPU runs on its kernel half, and the
 * banner where the kernel says it is translates through it to where QEMU
 * translates it, and reads "Linux version <release>" there. */
static void check_root(Fixture *f, unsigned boot, Root *ret) {
        g_autofree char *method = prop(f, "BootstrapMethod"), *os = prop(f, "GuestOs");
        g_autofree char *release = prop(f, "GuestOsRelease");
        g_autofree char *want = g_strdup_printf("Linux version %s ", f->g->release);
        vmsig_vcpu_state vcpu;
        char text[128] = {};
        uint64_t cr3_root;

        g_assert_cmpstr(method, ==, "cr3+banner");
        g_assert_cmpstr(os, ==, "linux");
        g_assert_cmpstr(release, ==, f->g->release);
        ret->m = vt_subscribe_memctx(f->conn, VM);
        g_assert_cmphex(ret->m.dtb, !=, 0);
        g_assert_cmphex(ret->m.dtb & 0xFFF, ==, 0);

        linux_guest_registers(f->g, &vcpu, NULL);
        ret->levels = vmsig_vcpu_paging_levels(&vcpu);
        g_assert_cmpuint(ret->levels, >=, 4);
        /* With page-table isolation the vCPU may be on a user root: the
         * kernel's is 4 KiB below it. */
        cr3_root = vcpu.cr3 & ADDR_MASK;
        g_assert_true(same_kernel_half(ret->m.fd, cr3_root, ret->m.dtb) ||
                      ((cr3_root & 0x1000) && same_kernel_half(ret->m.fd, cr3_root & ~UINT64_C(0x1FFF), ret->m.dtb)));

        g_assert_true(linux_guest_banner_va(f->g, boot, &ret->banner_va));
        ret->banner_gpa = walk(ret->m.fd, ret->m.dtb, ret->levels, ret->banner_va);
        g_assert_cmphex(ret->banner_gpa, !=, 0);
        g_assert_cmphex(ret->banner_gpa, ==, qemu_gva2gpa(f, ret->banner_va));
        g_assert_cmpint(pread(ret->m.fd, text, sizeof text - 1, (off_t) ret->banner_gpa), ==, sizeof text - 1);
        g_assert_true(g_str_has_prefix(text, want));
        g_test_message("boot %u: root 0x%" PRIx64 " (%u levels), CR3 0x%" PRIx64 ", banner 0x%" PRIx64 " at 0x%" PRIx64,
                       boot, ret->m.dtb, ret->levels, vcpu.cr3, ret->banner_va, ret->banner_gpa);
}

static char *write_virtual(Fixture *f, uint64_t va, const char *bytes, guint64 epoch) {
        return vt_mem_write_virtual(f->conn, VM, va, bytes, strlen(bytes), epoch);
}

/* A root that stays: the kernel may run on early tables for a moment, and
 * a root of those is withdrawn when they go; init is running by now. */
static void wait_settled(Fixture *f, unsigned boot) {
        linux_guest_wait_ready(f->g, boot, BOOT_MS);
        g_assert_true(vt_wait_for(is_ready, f, BOOT_MS));
}

/* Through the firmware and the decompressor, watched from here: the tables
 * the vCPU runs on that map nothing in the kernel half are never
 * published. ram is the memctx's RAM descriptor. */
static void boot_without_early_roots(Fixture *f, int ram) {
        g_autoptr(GHashTable) no_kernel = g_hash_table_new(g_int64_hash, g_int64_equal);
        gint64 t = g_get_monotonic_time();

        qmp_session_run(f->g->vm->session, "cont", NULL);
        while (!is_ready(f)) {
                static gint64 roots[64];
                vmsig_vcpu_state vcpu;
                unsigned present = 0;

                g_assert_cmpint(g_get_monotonic_time() - t, <, (gint64) BOOT_MS * 1000);
                linux_guest_registers(f->g, &vcpu, NULL);
                uint64_t root = vcpu.cr3 & ADDR_MASK;
                for (unsigned i = 256; i < 512 && root + 4096 <= (uint64_t) LINUX_GUEST_RAM_MIB << 20; i++)
                        present += read_u64(ram, root + i * 8) & 1;
                if (vmsig_vcpu_paging_levels(&vcpu) > 0 && present == 0 && g_hash_table_size(no_kernel) < 64) {
                        roots[g_hash_table_size(no_kernel)] = (gint64) root;
                        g_hash_table_add(no_kernel, &roots[g_hash_table_size(no_kernel)]);
                }
                vt_bus_iterate(f->bus, 5);
        }
        g_test_message("cont -> ready: %.0f ms; %u decompressor roots seen", (g_get_monotonic_time() - t) / 1000.0,
                       g_hash_table_size(no_kernel));
        g_assert_cmpuint(g_hash_table_size(no_kernel), >, 0);
        for (int i = 0; (i = vt_signal_log_find(f->log, "MemctxChanged " VM, i)) >= 0; i++) {
                guint64 epoch, dtb;
                const char *entry = f->log->entries->pdata[i];
                g_assert_cmpint(sscanf(entry, "MemctxChanged " VM " (uint64 %" G_GUINT64_FORMAT
                                              ", uint64 %" G_GUINT64_FORMAT ")", &epoch, &dtb), ==, 2);
                gint64 key = (gint64) dtb;
                g_assert_false(g_hash_table_contains(no_kernel, &key));
        }
}

static void run(Fixture *f) {
        Root r1, r2;

        if (!f->g)
                return;
        attach(f);
        /* QEMU waits in -S: the vCPU has paging off. */
        g_assert_true(vt_wait_for(is_booting, f, 10000));
        VtMemctx before = vt_subscribe_memctx(f->conn, VM);
        g_assert_cmphex(before.dtb, ==, 0);
        boot_without_early_roots(f, before.fd);
        wait_settled(f, 1);
        check_root(f, 1, &r1);

        /* A write through the root lands where QEMU reads it. */
        uint64_t va = r1.banner_va + 0x40;
        g_assert_null(write_virtual(f, va, "vmsig!!!", r1.m.epoch));
        g_autofree char *xp_cmd = g_strdup_printf("xp /1gx 0x%" PRIx64, qemu_gva2gpa(f, va));
        g_autofree char *xp = linux_guest_hmp(f->g, xp_cmd);
        g_assert_nonnull(strstr(xp, "0x2121216769736d76")); /* "vmsig!!!" */

        /* A reset: the vCPU is in the firmware again. The root goes at
         * once; what RAM keeps of the old kernel is not published. */
        g_autofree char *invalidated = g_strdup_printf("MemctxInvalidated " VM " (uint64 %" G_GUINT64_FORMAT ",)",
                                                       r1.m.epoch);
        qmp_session_run(f->g->vm->session, "system_reset", NULL);
        g_assert_true(vt_signal_log_wait(f->log, invalidated, 3000));
        g_autofree char *stale = write_virtual(f, va, "stale!!!", r1.m.epoch);
        g_assert_cmpstr(stale, ==, "org.vmsig.Error.StaleEpoch");

        wait_settled(f, 2);
        check_root(f, 2, &r2);
        g_assert_cmpuint(r2.m.epoch, >, r1.m.epoch);
        /* KASLR: the next boot's kernel is elsewhere. */
        g_assert_cmphex(r2.banner_va, !=, r1.banner_va);
        vt_memctx_clear(&r1.m);
        vt_memctx_clear(&r2.m);
        vt_memctx_clear(&before);
}

static void test_default_cpu(Fixture *f, gconstpointer data) {
        run(f);
}

static void test_pti_la57(Fixture *f, gconstpointer data) {
        run(f);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add("/bootstrap-linux/default-cpu", Fixture, NULL, fixture_setup, test_default_cpu, fixture_teardown);
        g_test_add("/bootstrap-linux/pti-la57", Fixture, "max,vendor=GenuineIntel", fixture_setup, test_pti_la57,
                   fixture_teardown);
        return g_test_run();
}
