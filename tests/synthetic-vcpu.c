/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

#include "stub.h"
#include "synthetic-vcpu.h"

/* The stub backend simulates this very program (stub.h): one mailbox. */
_Static_assert(SYNTHETIC_VCPU_MAGIC == VMSIG_STUB_MAILBOX_MAGIC, "the stub's magic");
_Static_assert(SYNTHETIC_VCPU_MAGIC_GPA == VMSIG_STUB_MAILBOX_MAGIC_GPA, "the stub's mailbox");
_Static_assert(SYNTHETIC_VCPU_CR3_GPA == VMSIG_STUB_MAILBOX_CR3_GPA, "the stub's mailbox");

#define HANDSHAKE_TIMEOUT_USEC (10 * G_USEC_PER_SEC)

const char *synthetic_vcpu_program(void) {
        const char *p = g_getenv("VMSIG_SYNTHETIC_GUEST");

        if (p && *p)
                return p;
#ifdef SYNTHETIC_VCPU_PROGRAM
        return SYNTHETIC_VCPU_PROGRAM;
#else
        g_error("VMSIG_SYNTHETIC_GUEST is not set and SYNTHETIC_VCPU_PROGRAM was not compiled in");
#endif
}

static int open_ram(QemuVm *vm) {
        int fd = open(vm->ram_path, O_RDWR | O_CLOEXEC);

        if (fd < 0)
                g_error("synthetic vCPU: cannot open %s: %s", vm->ram_path, g_strerror(errno));
        return fd;
}

uint64_t synthetic_vcpu_peek(QemuVm *vm, uint64_t gpa) {
        int fd = open_ram(vm);
        uint64_t v;

        if (pread(fd, &v, sizeof v, (off_t) gpa) != sizeof v)
                g_error("synthetic vCPU: cannot read 0x%" PRIx64 ": %s", gpa, g_strerror(errno));
        close(fd);
        return v;
}

void synthetic_vcpu_poke(QemuVm *vm, uint64_t gpa, uint64_t value) {
        int fd = open_ram(vm);

        /* One aligned 8-byte write; the program reads the magic as two
         * halves, and a half-written magic only matches once complete. */
        if (pwrite(fd, &value, sizeof value, (off_t) gpa) != sizeof value)
                g_error("synthetic vCPU: cannot write 0x%" PRIx64 ": %s", gpa, g_strerror(errno));
        close(fd);
}

static void clear_mailbox(QemuVm *vm) {
        synthetic_vcpu_poke(vm, SYNTHETIC_VCPU_MAGIC_GPA, 0);
        synthetic_vcpu_poke(vm, SYNTHETIC_VCPU_CR3_GPA, 0);
        synthetic_vcpu_poke(vm, SYNTHETIC_VCPU_STATE_GPA, 0);
}

/* Until the program waits again with paging off; CR3 must be 0 too after
 * a reset (the firmware never loads one, nor does the waiting program). */
static void wait_waiting(QemuVm *vm, const char *what) {
        int64_t deadline = g_get_monotonic_time() + HANDSHAKE_TIMEOUT_USEC;
        QemuRegisters regs;
        g_autofree char *dump = NULL;

        while (synthetic_vcpu_peek(vm, SYNTHETIC_VCPU_STATE_GPA) != SYNTHETIC_VCPU_STATE_WAITING) {
                if (g_get_monotonic_time() > deadline) {
                        dump = qmp_session_registers(vm->session, NULL);
                        g_error("synthetic vCPU: the program does not wait (%s), state 0x%016" PRIx64 ":\n%s", what,
                                synthetic_vcpu_peek(vm, SYNTHETIC_VCPU_STATE_GPA), dump);
                }
                g_usleep(1000);
        }
        dump = qmp_session_registers(vm->session, &regs);
        if ((regs.cr0 & SYNTHETIC_VCPU_CR0_PG) || (regs.efer & SYNTHETIC_VCPU_EFER_LMA) || regs.cr3 != 0)
                g_error("synthetic vCPU: the program waits (%s) but paging is on:\n%s", what, dump);
}

void synthetic_vcpu_start(QemuVm *vm) {
        vm->kernel = synthetic_vcpu_program();
        /* A RAM file kept from an earlier run (after qemu_vm_kill) still
         * holds the last magic: the program would not wait. */
        if (access(vm->ram_path, F_OK) == 0)
                clear_mailbox(vm);
        qemu_vm_start(vm);
        if (vm->start_paused) {
                clear_mailbox(vm);
                qmp_session_run(vm->session, "cont", NULL);
        }
        wait_waiting(vm, "after the start");
}

void synthetic_vcpu_enter(QemuVm *vm, uint64_t cr3) {
        int64_t deadline = g_get_monotonic_time() + HANDSHAKE_TIMEOUT_USEC;

        /* The program loads the CR3 once it sees the magic: CR3 first. */
        synthetic_vcpu_poke(vm, SYNTHETIC_VCPU_CR3_GPA, cr3);
        synthetic_vcpu_poke(vm, SYNTHETIC_VCPU_MAGIC_GPA, SYNTHETIC_VCPU_MAGIC);
        for (;;) {
                QemuRegisters regs;
                g_autofree char *dump = qmp_session_registers(vm->session, &regs);

                if ((regs.cr0 & SYNTHETIC_VCPU_CR0_PG) && (regs.efer & SYNTHETIC_VCPU_EFER_LMA) && regs.cr3 == cr3 &&
                    synthetic_vcpu_peek(vm, SYNTHETIC_VCPU_STATE_GPA) == SYNTHETIC_VCPU_STATE_LONG)
                        return;
                if (g_get_monotonic_time() > deadline)
                        g_error("synthetic vCPU: not in long mode on CR3 0x%" PRIx64 " after 10 s (state "
                                "0x%016" PRIx64 "); missing identity map? Last registers:\n%s",
                                cr3, synthetic_vcpu_peek(vm, SYNTHETIC_VCPU_STATE_GPA), dump);
                g_usleep(1000);
        }
}

void synthetic_vcpu_reset(QemuVm *vm) {
        g_assert_false(vm->no_reboot); /* a reset would end QEMU */
        clear_mailbox(vm);
        qmp_session_run(vm->session, "system_reset", NULL);
        wait_waiting(vm, "after a reset");
}
