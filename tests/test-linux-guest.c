/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* detect-linux against Debian's cloud kernel booting under TCG: from the
 * vCPU's CR3 the probe finds the running kernel (4 levels without PTI on
 * QEMU's default CPU; 5 levels and PTI on an Intel "max" CPU, where CR3
 * holds the user root), finds nothing in the firmware and the kernel's
 * decompressor, and after a reset finds the new boot. Every answer is
 * checked against the RAM file and QEMU's registers, not against the
 * probe's own re-check alone. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "detect-linux.h"
#include "linux-guest.h"
#include "memwrite.h"
#include "vt-util.h"

#define BOOT_TIMEOUT_MS 60000
#define PTI_USER_OFFSET UINT64_C(0x1000)
#define PTE_PRESENT UINT64_C(1)
#define KERNEL_IMAGE_VA UINT64_C(0xFFFFFFFF80000000)

/* --- helpers ------------------------------------------------------------------- */

static vmsig_guest_mem guest_mem(LinuxGuest *g) {
        return (vmsig_guest_mem) {
                .read_fd = g->ram_fd,
                .ranges = &g->range,
                .n_ranges = 1,
                .ram_size = g->source.ram_size,
        };
}

static uint64_t read_u64(LinuxGuest *g, uint64_t gpa) {
        uint64_t v;

        g_assert_cmpint(pread(g->ram_fd, &v, sizeof v, (off_t) gpa), ==, sizeof v);
        return GUINT64_FROM_LE(v);
}

/* Present entries of a root's kernel half, read straight from the file. */
static unsigned kernel_half_present(LinuxGuest *g, uint64_t root) {
        unsigned n = 0;

        for (unsigned i = 256; i < 512; i++)
                n += read_u64(g, root + i * 8) & PTE_PRESENT;
        return n;
}

/* The probe in steps of budget; the time it took in *ret_usec. */
static int probe(LinuxGuest *g, uint64_t cr3, unsigned levels, uint64_t budget, vmsig_linux_result *ret,
                 vmsig_linux_probe_stats *ret_stats, int64_t *ret_usec) {
        vmsig_linux_probe *p = NULL;
        int64_t start = g_get_monotonic_time();
        int r;

        g_assert_cmpint(vmsig_linux_probe_new(&g->source, cr3, levels, &p), ==, 0);
        do
                r = vmsig_linux_probe_step(p, budget, ret);
        while (r == 0);
        if (ret_usec)
                *ret_usec = g_get_monotonic_time() - start;
        if (ret_stats)
                vmsig_linux_probe_get_stats(p, ret_stats);
        vmsig_linux_probe_free(p);
        return r;
}

static void stop(LinuxGuest *g) {
        qmp_session_run(g->vm->session, "stop", NULL);
}

static void cont(LinuxGuest *g) {
        qmp_session_run(g->vm->session, "cont", NULL);
}

/* What a found result must be, checked from outside the probe: the banner
 * in the file where it says, the VA translating there through the root,
 * through CR3's kernel root, and through the CR3 the vCPU runs on. */
static void assert_found(LinuxGuest *g, const vmsig_linux_result *r, uint64_t cr3, unsigned levels) {
        g_autofree char *expect = g_strdup_printf("Linux version %s (", g->release);
        vmsig_guest_mem mem = guest_mem(g);
        char text[128] = {};
        uint64_t gpa;

        g_assert_cmpstr(r->release, ==, g->release);
        g_assert_cmpuint(r->levels, ==, levels);
        g_assert_cmphex(r->root & 0xFFF, ==, 0);
        g_assert_cmphex(r->cr3_root & 0xFFF, ==, 0);
        g_assert_cmphex(r->banner_va, >=, KERNEL_IMAGE_VA);

        g_assert_cmpuint(strlen(expect), <, sizeof text);
        g_assert_cmpint(pread(g->ram_fd, text, strlen(expect), (off_t) r->banner_gpa), ==, (ssize_t) strlen(expect));
        g_assert_cmpstr(text, ==, expect);

        g_assert_cmpint(vmsig_va_translate(&mem, r->root, levels, r->banner_va, &gpa, NULL, NULL), ==, 0);
        g_assert_cmphex(gpa, ==, r->banner_gpa);
        g_assert_cmpint(vmsig_va_translate(&mem, r->cr3_root, levels, r->banner_va, &gpa, NULL, NULL), ==, 0);
        g_assert_cmphex(gpa, ==, r->banner_gpa);
        g_assert_cmpint(vmsig_va_translate(&mem, cr3, levels, r->banner_va, &gpa, NULL, NULL), ==, 0);
        g_assert_cmphex(gpa, ==, r->banner_gpa);
        g_assert_cmpint(vmsig_linux_check(&g->source, r), ==, 1);

        /* init_mm's root maps the kernel half as the root CR3 led to. */
        if (r->init_mm)
                for (unsigned i = 256; i < 512; i++) {
                        uint64_t a = read_u64(g, r->root + i * 8), b = read_u64(g, r->cr3_root + i * 8);

                        if (!(a & PTE_PRESENT))
                                continue;
                        g_assert_cmphex(a & ~UINT64_C(0x60), ==, b & ~UINT64_C(0x60));
                }
}

static void report(const char *what, const vmsig_vcpu_state *v, uint64_t ip, const vmsig_linux_result *r,
                   const vmsig_linux_probe_stats *st, int64_t usec) {
        g_test_message("%s: CR3 0x%" PRIx64 " CR4 0x%" PRIx64 " RIP 0x%" PRIx64 " -> root 0x%" PRIx64
                       " (init_mm %d, CR3's kernel root 0x%" PRIx64 ", pti %d, %u kernel-half entries), %u levels, "
                       "banner VA 0x%" PRIx64 " GPA 0x%" PRIx64 " '%s'; %.2f ms, %" PRIu64 " bytes read, %u steps",
                       what, v->cr3, v->cr4, ip, r->root, r->init_mm, r->cr3_root, r->pti, r->kernel_entries,
                       r->levels, r->banner_va, r->banner_gpa, r->release, usec / 1000.0, st->bytes_read, st->steps);
}

/* --- a booted kernel --------------------------------------------------------------- */

static void test_default_cpu(void) {
        g_autoptr(LinuxGuest) g = NULL;
        vmsig_linux_result r = {}, again = {};
        vmsig_linux_probe_stats st, st_small;
        vmsig_vcpu_state v;
        int64_t usec, boot = g_get_monotonic_time();
        uint64_t ip;

        if (!linux_guest_available())
                return;
        g = linux_guest_new(NULL, false);
        linux_guest_start(g, false, true);
        linux_guest_wait_ready(g, 1, BOOT_TIMEOUT_MS);
        boot = g_get_monotonic_time() - boot;
        stop(g);
        linux_guest_registers(g, &v, &ip);
        /* qemu64: an AMD CPU without LA57, so 4 levels and no PTI. */
        g_assert_cmpuint(vmsig_vcpu_paging_levels(&v), ==, 4);

        g_assert_cmpint(probe(g, v.cr3, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, &st, &usec), ==, 1);
        g_test_message("booted to /init in %.2f s", boot / 1e6);
        report("default CPU", &v, ip, &r, &st, usec);
        assert_found(g, &r, v.cr3, 4);
        g_assert_false(r.pti);
        g_assert_cmphex(r.cr3_root, ==, v.cr3 & VMSIG_CR3_ROOT_MASK);
        /* A kernel root maps much of the kernel half: the direct map,
         * vmalloc, vmemmap, the CPU entry area, the image. */
        g_assert_cmpuint(r.kernel_entries, >=, 4);

        /* The smallest steps give the same answer. */
        g_assert_cmpint(probe(g, v.cr3, 4, VMSIG_LINUX_MIN_BUDGET, &again, &st_small, NULL), ==, 1);
        g_assert_cmpmem(&again, sizeof again, &r, sizeof r);
        g_assert_cmpuint(st_small.steps, >, st.steps);

        /* The wrong paging mode finds nothing (5-level walk of 4-level
         * tables), nor does a root inside the image that is none. */
        g_assert_cmpint(probe(g, v.cr3, 5, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &again, NULL, NULL), ==, -ENOENT);
        g_assert_cmpint(probe(g, r.banner_gpa, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &again, NULL, NULL), ==,
                        -ENOENT);
        cont(g);
}

/* An Intel CPU with everything: LA57 (5 levels) and PTI. /init spins in
 * user mode, so a sample of CR3 finds the user root. */
static void test_pti_la57(void) {
        g_autoptr(LinuxGuest) g = NULL;
        vmsig_linux_result r = {}, k = {};
        vmsig_linux_probe_stats st;
        vmsig_vcpu_state v;
        int64_t usec, deadline;
        uint64_t ip, user_root;

        if (!linux_guest_available())
                return;
        g = linux_guest_new("max,vendor=GenuineIntel", true);
        linux_guest_start(g, false, true);
        linux_guest_wait_ready(g, 1, BOOT_TIMEOUT_MS);

        deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        for (;;) {
                stop(g);
                linux_guest_registers(g, &v, &ip);
                if (v.cr3 & PTI_USER_OFFSET)
                        break;
                cont(g);
                if (g_get_monotonic_time() > deadline)
                        g_error("CR3 never held a user root (last 0x%" PRIx64 ", RIP 0x%" PRIx64 ")", v.cr3, ip);
                g_usleep(1000);
        }
        /* RIP is mostly in user mode, but may be in the kernel's entry
         * code, which runs on the user root until it switches. */
        g_assert_cmpuint(vmsig_vcpu_paging_levels(&v), ==, 5);
        user_root = v.cr3 & VMSIG_CR3_ROOT_MASK;

        g_assert_cmpint(probe(g, v.cr3, 5, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &r, &st, &usec), ==, 1);
        report("max,vendor=GenuineIntel, user mode", &v, ip, &r, &st, usec);
        assert_found(g, &r, v.cr3, 5);
        g_assert_true(r.pti);
        g_assert_cmphex(r.cr3_root, ==, user_root - PTI_USER_OFFSET);
        g_assert_cmphex(r.cr3_root & 0x1FFF, ==, 0);
        g_assert_cmphex(r.root & 0x1FFF, ==, 0);
        g_assert_cmphex(r.root, !=, user_root);
        g_assert_cmpuint(r.kernel_entries, ==, kernel_half_present(g, r.cr3_root));
        g_test_message("kernel-half entries: kernel root %u, user root %u", kernel_half_present(g, r.cr3_root),
                       kernel_half_present(g, user_root));
        g_assert_cmpuint(kernel_half_present(g, user_root), <, r.kernel_entries);

        /* From the kernel root itself (CR3 in kernel mode): the same root,
         * no PTI to undo. */
        v.cr3 = r.cr3_root;
        g_assert_cmpint(probe(g, v.cr3, 5, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &k, &st, &usec), ==, 1);
        report("max,vendor=GenuineIntel, from the kernel root", &v, ip, &k, &st, usec);
        g_assert_false(k.pti);
        g_assert_cmphex(k.root, ==, r.root);
        g_assert_cmphex(k.cr3_root, ==, r.cr3_root);
        g_assert_cmphex(k.banner_va, ==, r.banner_va);
        /* With 4 levels the same tables mean nothing. */
        g_assert_cmpint(probe(g, user_root, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &k, NULL, NULL), ==, -ENOENT);
        g_assert_cmpint(probe(g, r.cr3_root, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &k, NULL, NULL), ==, -ENOENT);
        cont(g);
}

/* The firmware (paging off, CR3 0) and the decompressor (an identity map,
 * nothing in the kernel half) have no kernel to find. */
static void test_before_kernel(void) {
        g_autoptr(LinuxGuest) g = NULL;
        vmsig_linux_result r;
        vmsig_vcpu_state v;
        int64_t deadline;
        uint64_t ip;

        if (!linux_guest_available())
                return;
        g = linux_guest_new(NULL, false);
        linux_guest_start(g, true, true);
        linux_guest_registers(g, &v, &ip);
        g_assert_cmpuint(vmsig_vcpu_paging_levels(&v), ==, 0);
        g_test_message("firmware: CR0 0x%" PRIx64 " CR3 0x%" PRIx64 " EIP 0x%" PRIx64, v.cr0, v.cr3, ip);
        g_assert_cmpint(probe(g, v.cr3, 4, VMSIG_LINUX_MIN_BUDGET, &r, NULL, NULL), ==, -ENOENT);
        g_assert_cmpint(probe(g, v.cr3, 5, VMSIG_LINUX_MIN_BUDGET, &r, NULL, NULL), ==, -ENOENT);

        /* The decompressor runs in long mode for about half a second;
         * polling catches it. */
        cont(g);
        deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
        do {
                if (g_get_monotonic_time() > deadline)
                        g_error("paging never went on");
                linux_guest_registers(g, &v, &ip);
        } while (vmsig_vcpu_paging_levels(&v) == 0);
        stop(g);
        linux_guest_registers(g, &v, &ip);
        if (ip >= KERNEL_IMAGE_VA)
                g_error("the kernel proper ran before a sample caught the decompressor (RIP 0x%" PRIx64 ")", ip);
        g_test_message("decompressor: CR3 0x%" PRIx64 " CR4 0x%" PRIx64 " RIP 0x%" PRIx64, v.cr3, v.cr4, ip);
        g_assert_cmpint(probe(g, v.cr3, vmsig_vcpu_paging_levels(&v), VMSIG_LINUX_MIN_BUDGET, &r, NULL, NULL), ==,
                        -ENOENT);
}

/* system_reset without -no-reboot: a new boot, found from the new CR3. */
static void test_reset(void) {
        g_autoptr(LinuxGuest) g = NULL;
        vmsig_linux_result before = {}, after = {};
        vmsig_linux_probe_stats st;
        vmsig_vcpu_state v;
        int64_t usec;
        uint64_t ip;

        if (!linux_guest_available())
                return;
        g = linux_guest_new(NULL, false);
        linux_guest_start(g, false, false);
        linux_guest_wait_ready(g, 1, BOOT_TIMEOUT_MS);
        stop(g);
        linux_guest_registers(g, &v, &ip);
        g_assert_cmpint(probe(g, v.cr3, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &before, &st, &usec), ==, 1);
        report("first boot", &v, ip, &before, &st, usec);
        cont(g);

        qmp_session_run(g->vm->session, "system_reset", NULL);
        linux_guest_wait_ready(g, 2, BOOT_TIMEOUT_MS);
        stop(g);
        linux_guest_registers(g, &v, &ip);
        g_assert_cmpuint(vmsig_vcpu_paging_levels(&v), ==, 4);
        g_assert_cmpint(probe(g, v.cr3, 4, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, &after, &st, &usec), ==, 1);
        report("after system_reset", &v, ip, &after, &st, usec);
        /* The banner maps through the CR3 the new kernel runs on. */
        assert_found(g, &after, v.cr3, 4);
        /* The old result usually fails its re-check (KASLR moved the
         * kernel, the new one overwrote the old tables), but may not. */
        g_test_message("the first boot's result re-checks as %d (root 0x%" PRIx64 " then, 0x%" PRIx64 " now)",
                       vmsig_linux_check(&g->source, &before), before.root, after.root);
        cont(g);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);

        VT_TESTS("/linux-guest/", test_default_cpu, test_pti_la57, test_before_kernel, test_reset);
        return g_test_run();
}
