/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
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

/* "NAME=<hex>" anywhere in the text, at the start of a line or after a
 * space, so that "CR3=" does not match inside another name. */
static bool find_hex(const char *text, const char *name, uint64_t *ret) {
        size_t len = strlen(name);

        for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
                char *end;

                if (p != text && !g_ascii_isspace(p[-1]))
                        continue;
                if (p[len] != '=' || !g_ascii_isxdigit(p[len + 1]))
                        continue;
                errno = 0;
                *ret = strtoull(p + len + 1, &end, 16);
                return errno == 0 && (*end == '\0' || g_ascii_isspace(*end));
        }
        return false;
}

bool synthetic_vcpu_parse_regs(const char *text, SyntheticVcpuRegs *ret) {
        SyntheticVcpuRegs r = {};
        uint64_t hlt = 0;

        /* EIP in legacy and compatibility mode, RIP in 64-bit mode. */
        if (!find_hex(text, "RIP", &r.ip) && !find_hex(text, "EIP", &r.ip))
                return false;
        if (!find_hex(text, "CR0", &r.cr0) || !find_hex(text, "CR3", &r.cr3) || !find_hex(text, "CR4", &r.cr4) ||
            !find_hex(text, "EFER", &r.efer))
                return false;
        (void) find_hex(text, "HLT", &hlt);
        r.halted = hlt != 0;
        *ret = r;
        return true;
}

char *synthetic_vcpu_read_regs(QemuVm *vm, SyntheticVcpuRegs *ret) {
        json_object *r = qmp_session_execute(vm->session, "human-monitor-command",
                                             "{\"command-line\": \"info registers\"}", NULL);
        char *text = g_strdup(json_object_get_string(r));

        json_object_put(r);
        if (ret && !synthetic_vcpu_parse_regs(text, ret))
                g_error("synthetic vCPU: cannot parse 'info registers':\n%s", text);
        return text;
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
        SyntheticVcpuRegs regs;
        g_autofree char *dump = NULL;

        while (synthetic_vcpu_peek(vm, SYNTHETIC_VCPU_STATE_GPA) != SYNTHETIC_VCPU_STATE_WAITING) {
                if (g_get_monotonic_time() > deadline) {
                        dump = synthetic_vcpu_read_regs(vm, NULL);
                        g_error("synthetic vCPU: the program does not wait (%s), state 0x%016" PRIx64 ":\n%s", what,
                                synthetic_vcpu_peek(vm, SYNTHETIC_VCPU_STATE_GPA), dump);
                }
                g_usleep(1000);
        }
        dump = synthetic_vcpu_read_regs(vm, &regs);
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
                SyntheticVcpuRegs regs;
                g_autofree char *dump = synthetic_vcpu_read_regs(vm, &regs);

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
