/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The synthetic vCPU (tests/guest/longmode.S through tests/synthetic-vcpu.h)
 * against a real QEMU under TCG, running on the adversarial images of
 * tests/win-image.h: the program waits with paging off, runs on each
 * scenario's root, and waits again after a reset, RAM kept. The images are
 * also checked with the project's detector, which must find the System
 * EPROCESS where a correct one would; what its cheap ways in (low stub,
 * PML4 scan) find is reported, not asserted, as they are being reworked. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "detect.h"
#include "synthetic-vcpu.h"
#include "win-image.h"
#include "vt-util.h"

#define SEED 0x14u
#define CR4_PAE (UINT64_C(1) << 5)

typedef struct Vcpu {
        QemuVm *vm;
        win_range ranges[2];
        size_t n_ranges;
        int fd; /* read-write, for the image writer */
        win_image img;
} Vcpu;

static double ms_since(int64_t start) {
        return (double) (g_get_monotonic_time() - start) / 1000.0;
}

static void vcpu_start(Vcpu *v, uint64_t ram_mib) {
        int64_t t = g_get_monotonic_time();

        *v = (Vcpu) { .vm = qemu_vm_new(), .fd = -1 };
        v->vm->ram_mib = ram_mib;
        v->n_ranges = win_ranges_q35(ram_mib, v->ranges);
        synthetic_vcpu_start(v->vm);
        g_test_message("QEMU (%" PRIu64 " MiB) start -> program waiting: %.1f ms", ram_mib, ms_since(t));
        v->fd = open(v->vm->ram_path, O_RDWR | O_CLOEXEC);
        g_assert_cmpint(v->fd, >=, 0);
        v->img = (win_image) { .fd = v->fd, .ranges = v->ranges, .n_ranges = v->n_ranges };
}

static void vcpu_stop(Vcpu *v) {
        if (v->fd >= 0)
                close(v->fd);
        qemu_vm_free(v->vm);
}

static void enter(Vcpu *v, uint64_t cr3) {
        int64_t t = g_get_monotonic_time();
        QemuRegisters regs;
        g_autofree char *dump = NULL;

        synthetic_vcpu_enter(v->vm, cr3);
        g_test_message("magic written -> long mode on CR3 0x%" PRIx64 ": %.1f ms", cr3, ms_since(t));
        dump = qmp_session_registers(v->vm->session, &regs);
        g_assert_cmphex(regs.cr3, ==, cr3);
        g_assert_true(regs.cr0 & SYNTHETIC_VCPU_CR0_PG);
        g_assert_true(regs.cr4 & CR4_PAE);
        g_assert_true(regs.efer & SYNTHETIC_VCPU_EFER_LMA);
        /* Still in the program, on the test's identity map. */
        g_assert_cmphex(regs.ip, >=, SYNTHETIC_VCPU_PROGRAM_GPA);
        g_assert_cmphex(regs.ip, <, SYNTHETIC_VCPU_PROGRAM_END);
}

static void reset(Vcpu *v) {
        int64_t t = g_get_monotonic_time();
        QemuRegisters regs;
        g_autofree char *dump = NULL;

        synthetic_vcpu_reset(v->vm);
        g_test_message("system_reset -> program waiting again: %.1f ms", ms_since(t));
        dump = qmp_session_registers(v->vm->session, &regs);
        g_assert_false(regs.cr0 & SYNTHETIC_VCPU_CR0_PG);
        g_assert_false(regs.efer & SYNTHETIC_VCPU_EFER_LMA);
        g_assert_cmphex(regs.cr3, ==, 0);
}

static const char *method_name(int r, const vmsig_detect_result *d) {
        return r < 0 ? "error" : r == 0 ? "nothing" : vmsig_detect_method_to_string(d->method);
}

/* The cheap ways in, reported against what a correct detector would say:
 * the stub's root is a loader's (valid, not the answer), and a PML4 scan
 * may stop at the first table that passes. */
static void report_cheap_ways(const vmsig_guest_mem *src, const win_expect *e, const char *what) {
        vmsig_detect_result stub = {}, scan = {};
        int r_stub = vmsig_detect_low_stub(src, &stub);
        int r_scan = vmsig_detect_pml4_scan(src, &scan);

        g_test_message("%s: low stub: %s 0x%" PRIx64 " (expected %s 0x%" PRIx64 "); PML4 scan: %s 0x%" PRIx64
                       " (the System root 0x%" PRIx64 "%s)",
                       what, method_name(r_stub, &stub), stub.dtb, e->stub_dtb ? "the loader's" : "none",
                       e->stub_dtb, method_name(r_scan, &scan), scan.dtb, e->dtb,
                       e->dtb < VMSIG_DETECT_PML4_SCAN_LIMIT ? ", in its range" : ", beyond its range");
        if (r_stub > 0 && stub.dtb != e->stub_dtb)
                g_test_message("%s: OBSERVED: the low stub check accepted 0x%" PRIx64, what, stub.dtb);
        if (r_stub == 0 && e->stub_dtb)
                g_test_message("%s: OBSERVED: the low stub check rejected the stub", what);
        if (r_scan > 0 && e->stale_dtb && scan.dtb == e->stale_dtb)
                g_test_message("%s: OBSERVED: the PML4 scan took the previous boot's root 0x%" PRIx64, what,
                               scan.dtb);
        else if (r_scan > 0 && scan.dtb != e->dtb && scan.dtb != e->other_dtb && scan.dtb != e->stub_dtb)
                g_test_message("%s: OBSERVED: the PML4 scan accepted 0x%" PRIx64 ", which is no process's root",
                               what, scan.dtb);
}

/* The project's detector on the RAM file, read-only, full scan. */
static void check_detector(Vcpu *v, const win_expect *e, const char *what) {
        vmsig_gpa_range ranges[2];
        vmsig_detect_result all = {};
        struct stat st;
        int64_t t;
        int fd, r;
        bool live, stale;

        for (size_t i = 0; i < v->n_ranges; i++)
                ranges[i] = (vmsig_gpa_range) {
                        .gpa = v->ranges[i].gpa, .size = v->ranges[i].size, .offset = v->ranges[i].offset
                };
        fd = open(v->vm->ram_path, O_RDONLY | O_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(fstat(fd, &st), ==, 0);
        vmsig_guest_mem src = {
                .read_fd = fd, .ranges = ranges, .n_ranges = v->n_ranges, .ram_size = (uint64_t) st.st_size
        };

        t = g_get_monotonic_time();
        r = vmsig_detect_all(&src, true, &all);
        g_test_message("%s: detect_all (full scan, %.1f ms): %s, dtb 0x%" PRIx64 ", EPROCESS 0x%" PRIx64
                       " (VA 0x%" PRIx64 ", build %u, self-ref 0x%x)",
                       what, ms_since(t), method_name(r, &all), all.dtb, all.eprocess_gpa, all.eprocess_va,
                       all.build, all.self_ref);
        g_assert_cmpint(r, >=, 0);

        report_cheap_ways(&src, e, what);

        if (e->dtb == 0) {
                g_assert_false(r > 0 && all.method == VMSIG_DETECT_EPROCESS);
                close(fd);
                return;
        }
        g_assert_cmpint(r, ==, 1);
        g_assert_cmpint(all.method, ==, VMSIG_DETECT_EPROCESS);
        live = all.dtb == e->dtb && all.eprocess_gpa == e->eprocess_gpa;
        /* RAM alone cannot tell an intact earlier boot from the live one. */
        stale = e->stale_dtb && all.dtb == e->stale_dtb && all.eprocess_gpa == e->stale_eprocess_gpa;
        if (stale)
                g_test_message("%s: OBSERVED: the EPROCESS scan found the previous boot's System (0x%" PRIx64
                               "); only the vCPU's CR3 tells the live one",
                               what, all.eprocess_gpa);
        g_assert_true(live || stale);
        if (live) {
                g_assert_cmphex(all.eprocess_va, ==, e->eprocess_va);
                g_assert_cmpuint(all.build, ==, e->build);
                g_assert_cmphex(all.self_ref, ==, e->self_ref);
        }
        close(fd);
}

/* --- no QEMU needed --------------------------------------------------- */

static void assert_registers(const char *text, QemuRegisters want) {
        QemuRegisters r;

        if (!qemu_parse_registers(text, &r))
                g_error("does not parse:\n%s", text);
        g_assert_cmphex(r.ip, ==, want.ip);
        g_assert_cmphex(r.cr0, ==, want.cr0);
        g_assert_cmphex(r.cr3, ==, want.cr3);
        g_assert_cmphex(r.cr4, ==, want.cr4);
        g_assert_cmphex(r.efer, ==, want.efer);
        g_assert_cmpint(r.halted, ==, want.halted);
}

/* What the parser must refuse. */
static const char *const bad_registers[] = {
        "",
        "CR0=11 CR3=0 EFER=0\r\n", /* no IP, no CR4 */
        "EIP=1 CR0=1 CR3=2 CR4=3", /* no EFER */
        "CR0=1 CR3=2 CR4=3 EFER=0", /* no IP */
        "EIP=1 CR0=1 XCR3=2 CR4=3 EFER=0", /* CR3 only inside another name */
        /* A value that is none, or not as QEMU prints one. */
        "EIP=1 CR0=1 CR3=zz CR4=3 EFER=0",
        "EIP=1 CR0=1 CR3= CR4=3 EFER=0",
        "EIP=1 CR0=1 CR3=0x2 CR4=3 EFER=0",
        "EIP=1 CR0=1 CR3=10000000000000000 CR4=3 EFER=0",
        "EIP=1 CR0=1 CR3=2CR4=3 EFER=0",
        "RIP=zz EIP=1 CR0=1 CR3=2 CR4=3 EFER=0",
        /* Only the first CPU's block counts. */
        "CPU#0\r\nEIP=1 CR0=1 CR3=2 CR4=3\r\nCPU#1\r\nEFER=0\r\n",
        "CPU#0\r\nCPU#1\r\nEIP=1 CR0=1 CR3=2 CR4=3 EFER=0\r\n",
        "CPU#0",
};

/* The tests' own parser of "info registers" (qemu-harness.h). */
static void test_parse_registers(void) {
        /* The program waiting: 32-bit, \r\n as QEMU sends it over QMP. */
        static const char legacy[] =
                "EAX=2badb002 EBX=00009500 ECX=00000000 EDX=00000000\r\n"
                "EIP=001000b2 EFL=00000206 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n"
                "CR0=00000011 CR2=00000000 CR3=00000000 CR4=00000000\r\n"
                "DR0=00000000 DR1=00000000 DR2=00000000 DR3=00000000 \r\n"
                "EFER=0000000000000000\r\n";
        static const char longmode[] =
                "RAX=0000000000000000 RBX=0000000000009500\r\n"
                "RIP=0000000000100137 RFL=00000046 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n"
                "CR0=80000011 CR2=0000000000000000 CR3=00000001aa000000 CR4=00000020\r\n"
                "DR0=0000000000000000 DR3=0000000000000000\r\n"
                "EFER=0000000000000500\r\n";
        /* Linux running, as QEMU 7.2 prints it: after a "CPU#0" line. */
        static const char kernel[] =
                "\r\nCPU#0\r\n"
                "RAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000001 RDX=0000000000000000\r\n"
                "RIP=ffffffff91ce7d1e RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n"
                "CS =0010 0000000000000000 ffffffff 00a09b00 DPL=0 CS64 [-RA]\r\n"
                "CR0=80050033 CR2=00007ffd2b9c8f88 CR3=000000000291e000 CR4=000006b0\r\n"
                "DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 \r\n"
                "EFER=0000000000000d01\r\n";
        static const QemuRegisters kernel_regs = {
                .ip = UINT64_C(0xffffffff91ce7d1e), .cr0 = 0x80050033, .cr3 = 0x291e000, .cr4 = 0x6b0,
                .efer = 0xd01, .halted = true
        };
        /* The firmware at the reset vector, with \n alone. */
        static const char firmware[] =
                "EAX=00000000 EBX=00000000 ECX=00000000 EDX=00060fb1\n"
                "EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0\n"
                "CR0=60000010 CR2=00000000 CR3=00000000 CR4=00000000\n"
                "EFER=0000000000000000\n";
        g_autofree char *all_cpus = g_strconcat("\r\nCPU#0\r\n", legacy, "\r\nCPU#1\r\n", longmode, NULL);
        QemuRegisters r;

        assert_registers(legacy, (QemuRegisters) { .ip = 0x1000b2, .cr0 = 0x11, .halted = true });
        /* DR3= must not pass for CR3=. */
        assert_registers(longmode, (QemuRegisters) {
                .ip = 0x100137, .cr0 = 0x80000011, .cr3 = UINT64_C(0x1aa000000), .cr4 = 0x20, .efer = 0x500,
                .halted = true });
        assert_registers(kernel, kernel_regs);
        assert_registers(kernel + strlen("\r\nCPU#0\r\n"), kernel_regs); /* as older QEMUs print it */
        assert_registers(firmware, (QemuRegisters) { .ip = 0xfff0, .cr0 = 0x60000010 });
        /* "info registers -a": CPU#1 is in long mode, CPU#0 is not. */
        assert_registers(all_cpus, (QemuRegisters) { .ip = 0x1000b2, .cr0 = 0x11, .halted = true });
        /* A small text that parses: HLT= is optional, the digits of any
         * case and count, and XCR0= is no CR0=. */
        assert_registers("EIP=1 XCR0=7 CR0=8000AbCd CR3=2 CR4=3\nEFER=0",
                         (QemuRegisters) { .ip = 1, .cr0 = 0x8000abcd, .cr3 = 2, .cr4 = 3 });

        for (size_t i = 0; i < G_N_ELEMENTS(bad_registers); i++)
                if (qemu_parse_registers(bad_registers[i], &r))
                        g_error("parses:\n%s", bad_registers[i]);
}

/* The images themselves, in a plain file: the layout a correct detector
 * relies on, read back. */
static void test_image_layout(void) {
        g_autofree char *path = g_build_filename(g_get_tmp_dir(), "vmsig-win-image-XXXXXX", NULL);
        win_range range[2];
        win_image img;
        win_expect e;
        uint64_t q[512], stub[21];
        unsigned zeros[2] = {}, kernel = 0;
        char name[16];
        int fd;

        fd = g_mkstemp(path);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(unlink(path), ==, 0);
        g_assert_cmpuint(win_ranges_q35(128, range), ==, 1);
        g_assert_cmpint(ftruncate(fd, 128 << 20), ==, 0);
        img = (win_image) { .fd = fd, .ranges = range, .n_ranges = 1 };

        g_assert_cmpint(win_scenario_write(&img, WIN_SCENARIO_PLAIN, 0, SEED, &e), ==, 0);
        g_assert_cmpuint(e.build, ==, 19041);
        g_assert_cmphex(e.dtb, ==, 0x1AA000);
        g_assert_cmpuint(e.self_ref, >=, 0x100);
        g_assert_cmpuint(e.self_ref, <=, 0x1FF);

        g_assert_cmpint(win_image_read(&img, e.dtb, q, sizeof q), ==, 0);
        g_assert_cmphex(q[e.self_ref] & ~(UINT64_C(1) << 63), ==, e.dtb | 0x063);
        g_assert_cmphex(q[0] & 0xFFF, ==, 0x067);
        for (unsigned i = 0; i < 512; i++) {
                if (q[i] == 0)
                        zeros[i >= 256]++;
                else if (i >= 256 && i != e.self_ref) {
                        g_assert_cmphex(q[i] & 0xFFF, ==, 0x063);
                        g_assert_cmphex(q[i] >> 63, ==, 0);
                        kernel++;
                }
        }
        g_assert_cmpuint(kernel, >=, 6);
        g_assert_cmpuint(zeros[0], >, 64);
        g_assert_cmpuint(zeros[1], >, 64);

        g_assert_cmpint(win_image_read(&img, WIN_STUB_GPA, stub, sizeof stub), ==, 0);
        g_assert_cmphex(stub[0] & UINT64_C(0xFFFFFFFFFFFF00FF), ==, UINT64_C(0x00000001000600E9));
        g_assert_cmphex(stub[0x70 / 8], ==, WIN_KERNEL_HINT);
        g_assert_cmphex(stub[0xA0 / 8], ==, e.stub_dtb);
        g_assert_cmphex(e.stub_dtb, !=, e.dtb);

        g_assert_cmpint(win_image_read(&img, e.eprocess_gpa, q, 0x600), ==, 0);
        g_assert_cmphex(q[0] & 0xFF, ==, 3);
        g_assert_cmphex(q[1], ==, e.eprocess_va + 8);
        g_assert_cmphex(q[0x28 / 8], ==, e.dtb);
        g_assert_cmphex(q[0x440 / 8], ==, 4);
        memcpy(name, (char *) q + 0x5A8, 15);
        g_assert_cmpmem(name, 15, "System\0\0\0\0\0\0\0\0", 15);

        /* The high-root scenario needs a randomised self-reference. */
        g_assert_cmpint(win_scenario_write(&img, WIN_SCENARIO_HIGH_ROOT, 7601, SEED, &e), ==, -EINVAL);
        close(fd);
}

/* --- against QEMU ----------------------------------------------------- */

/* utime + stime of a process, in clock ticks. */
static unsigned long cpu_ticks(GPid pid) {
        g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int) pid), *stat = NULL;
        unsigned long user, sys;

        g_assert_true(g_file_get_contents(path, &stat, NULL, NULL));
        /* After "pid (comm) ": state, ppid, pgrp, session, tty, tpgid,
         * flags, four fault counts, then utime and stime. */
        g_assert_cmpint(sscanf(strrchr(stat, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &user,
                               &sys),
                        ==, 2);
        return user + sys;
}

static void test_waits(void) {
        QemuRegisters regs;
        g_autofree char *dump = NULL;
        unsigned long before;
        Vcpu v;

        if (!qemu_harness_available())
                return;
        vcpu_start(&v, 128);
        dump = qmp_session_registers(v.vm->session, &regs);
        g_assert_false(regs.cr0 & SYNTHETIC_VCPU_CR0_PG);
        g_assert_cmphex(regs.cr3, ==, 0);
        g_assert_false(regs.efer & SYNTHETIC_VCPU_EFER_LMA);
        g_assert_cmphex(regs.ip, >=, SYNTHETIC_VCPU_PROGRAM_GPA);
        g_assert_cmphex(regs.ip, <, SYNTHETIC_VCPU_PROGRAM_END);
        g_assert_cmphex(synthetic_vcpu_peek(v.vm, SYNTHETIC_VCPU_STATE_GPA), ==, SYNTHETIC_VCPU_STATE_WAITING);
        g_assert_cmphex(synthetic_vcpu_peek(v.vm, SYNTHETIC_VCPU_MAGIC_GPA), ==, 0);

        /* It waits in hlt: QEMU's CPU time over half a second, reported. */
        before = cpu_ticks(v.vm->pid);
        g_usleep(G_USEC_PER_SEC / 2);
        g_test_message("QEMU CPU while the program waits: %.0f%%",
                       100.0 * (double) (cpu_ticks(v.vm->pid) - before) / (double) sysconf(_SC_CLK_TCK) / 0.5);
        vcpu_stop(&v);
}

typedef struct ScenarioCase {
        win_scenario scenario;
        unsigned build;
        uint32_t seed; /* one each: other VAs, self-references, filler entries */
} ScenarioCase;

static const ScenarioCase scenario_cases[] = {
        { WIN_SCENARIO_PLAIN, 19041, SEED },
        { WIN_SCENARIO_PLAIN, 18362, SEED + 1 },
        { WIN_SCENARIO_PLAIN, 7601, SEED + 2 },
        { WIN_SCENARIO_STALE_COPY, 19041, SEED + 3 },
        { WIN_SCENARIO_LOOKALIKE, 19041, SEED + 4 },
        { WIN_SCENARIO_HIGH_ROOT, 18362, SEED + 5 },
        { WIN_SCENARIO_SYSTEM_STRINGS, 19041, SEED + 6 },
        { WIN_SCENARIO_NOISE_ONLY, 0, SEED + 7 },
        { WIN_SCENARIO_NAME_FAR, 19041, SEED + 8 },
};

static void test_scenario(gconstpointer data) {
        const ScenarioCase *c = data;
        g_autofree char *what = g_strdup_printf("%s/%u", win_scenario_to_string(c->scenario), c->build);
        win_expect e;
        Vcpu v;

        if (!qemu_harness_available())
                return;
        vcpu_start(&v, win_scenario_ram_mib(c->scenario));
        g_assert_cmpint(win_scenario_write(&v.img, c->scenario, c->build, c->seed, &e), ==, 0);
        check_detector(&v, &e, what);
        if (e.dtb == 0) {
                QemuRegisters regs;
                g_autofree char *dump = qmp_session_registers(v.vm->session, &regs);
                g_assert_false(regs.cr0 & SYNTHETIC_VCPU_CR0_PG);
                vcpu_stop(&v);
                return;
        }
        enter(&v, e.dtb);
        /* Running on the tables changes nothing a detector reads. */
        check_detector(&v, &e, what);
        /* Another process's root, the same kernel half: a CR3 a running
         * kernel may well hold. */
        reset(&v);
        enter(&v, e.other_dtb);
        vcpu_stop(&v);
}

/* A reset keeps RAM: boot 1's tables and System stay intact while boot 2
 * builds its own elsewhere (higher up). */
static void test_stale_boot(void) {
        win_expect e1, e2;
        Vcpu v;

        if (!qemu_harness_available())
                return;
        vcpu_start(&v, 128);
        g_assert_cmpint(win_stale_boot_write(&v.img, 1, 19041, SEED, &e1), ==, 0);
        check_detector(&v, &e1, "stale-boot/1");
        enter(&v, e1.dtb);

        reset(&v);
        g_assert_cmpint(win_stale_boot_write(&v.img, 2, 19041, SEED, &e2), ==, 0);
        g_assert_cmphex(e2.stale_dtb, ==, e1.dtb);
        g_assert_cmphex(e2.stale_eprocess_gpa, ==, e1.eprocess_gpa);
        g_assert_cmphex(e2.dtb, !=, e1.dtb);
        check_detector(&v, &e2, "stale-boot/2");
        enter(&v, e2.dtb);
        vcpu_stop(&v);
}

/* q35 with 3 GiB: RAM at 0-2 GiB and 4-5 GiB, file offset GPA - 2 GiB up
 * there, as `info mtree -f` must confirm; the System EPROCESS above 4 GiB,
 * the tables below 2 GiB. Then a root above 4 GiB, which the program loads
 * in 64-bit mode. */
static void test_above_4g(void) {
        g_autofree char *mtree = NULL;
        json_object *r;
        win_kernel high;
        win_expect e, eh;
        const char *flat;
        unsigned checked = 0;
        Vcpu v;

        if (!qemu_harness_available())
                return;
        vcpu_start(&v, win_scenario_ram_mib(WIN_SCENARIO_ABOVE_4G));
        g_assert_cmpuint(v.n_ranges, ==, 2);

        /* Each ram0 piece of the system address space where the ranges
         * say: "START-END (prio N, ram): ram0[ @OFFSET]". */
        r = qmp_session_execute(v.vm->session, "human-monitor-command", "{\"command-line\": \"info mtree -f\"}",
                                NULL);
        mtree = g_strdup(json_object_get_string(r));
        json_object_put(r);
        flat = strstr(mtree, "Root memory region: system");
        g_assert_nonnull(flat);
        for (const char *line = flat; line && *line && !g_str_has_prefix(line, "\r\n\r\n") &&
                                      !g_str_has_prefix(line, "\n\n");
             line = strchr(line + 1, '\n')) {
                uint64_t start, end, offset = 0, file;
                const char *at, *eol = strchr(line + 1, '\n');
                g_autofree char *text = g_strndup(line, eol ? (size_t) (eol - line) : strlen(line));

                if (!strstr(text, ": ram0") || sscanf(text, " %" SCNx64 "-%" SCNx64, &start, &end) != 2)
                        continue;
                at = strstr(text, "ram0 @");
                if (at)
                        g_assert_cmpint(sscanf(at + 6, "%" SCNx64, &offset), ==, 1);
                else
                        offset = start;
                g_assert_cmpint(win_image_offset(&v.img, start, end - start + 1, &file), ==, 0);
                g_assert_cmphex(file, ==, offset);
                checked++;
        }
        g_assert_cmpuint(checked, >=, 2);

        g_assert_cmpint(win_scenario_write(&v.img, WIN_SCENARIO_ABOVE_4G, 19041, SEED, &e), ==, 0);
        g_assert_cmphex(e.eprocess_gpa, >=, UINT64_C(1) << 32);
        g_assert_cmphex(e.dtb, <, UINT64_C(1) << 31);
        check_detector(&v, &e, "above-4g");
        enter(&v, e.dtb);
        check_detector(&v, &e, "above-4g, running");

        /* A root alone at 4.9 GiB. */
        reset(&v);
        win_root_init(&high, UINT64_C(0x13A000000), UINT64_C(0x13A001000), 0x1ED, 6, SEED);
        g_assert_cmpint(win_kernel_write(&v.img, &high, &eh), ==, 0);
        enter(&v, eh.dtb);
        vcpu_stop(&v);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/synthetic-vcpu/", test_parse_registers, test_image_layout, test_waits);
        for (size_t i = 0; i < G_N_ELEMENTS(scenario_cases); i++) {
                g_autofree char *path = g_strdup_printf("/synthetic-vcpu/scenario/%s/%u",
                                                        win_scenario_to_string(scenario_cases[i].scenario),
                                                        scenario_cases[i].build);
                g_test_add_data_func(path, &scenario_cases[i], test_scenario);
        }
        VT_TESTS("/synthetic-vcpu/", test_stale_boot, test_above_4g);
        return g_test_run();
}
