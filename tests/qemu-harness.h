/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A real QEMU for the tests: qemu-system-x86_64 under TCG with a 128 MiB
 * file-backed RAM (share=on, created under umask 077) and two QMP sockets,
 * one for the code under test and one for the test's own session, in a
 * temporary directory. QMP takes one client per socket, hence two.
 *
 * The session is a small synchronous QMP client: it blocks (with a
 * timeout) and asserts on failure with a message saying what went wrong.
 *
 * Environment:
 *   VMSIG_QEMU  the QEMU binary (default: qemu-system-x86_64 from PATH)
 *   CI          "true": a missing QEMU fails instead of skipping
 */

#include <glib.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#define QEMU_RAM_SIZE (128 * 1024 * 1024)

typedef struct QmpSession QmpSession;

typedef struct QemuVm {
        char *dir;
        char *ram_path;
        char *qmp_path;     /* for the code under test */
        char *session_path; /* for the test's session */
        GPid pid;           /* 0 when not running */
        QmpSession *session;
        gboolean vga; /* a standard VGA display (SeaBIOS's screen); set before starting */
        /* Set before starting; zeros and NULLs give the defaults. */
        const char *machine;  /* -machine type, default "q35" */
        uint64_t ram_mib;     /* default QEMU_RAM_SIZE */
        const char *cpu;      /* -cpu, default QEMU's */
        const char *kernel;   /* -kernel, and with it: */
        const char *initrd;   /* -initrd */
        const char *append;   /* -append */
        const char *serial_path; /* the first serial port goes to this file */
        gboolean no_reboot;   /* -no-reboot: a guest reset shuts QEMU down */
        gboolean start_paused; /* -S: the vCPUs wait for "cont" */
        const char *const *extra_args; /* NULL-terminated, appended as they are */
} QemuVm;

/* true if QEMU can be run; otherwise the test is skipped (or, under
 * CI=true, aborted) with the reason. */
bool qemu_harness_available(void);

/* A new temporary directory with the paths; QEMU is not started. */
QemuVm *qemu_vm_new(void);
/* Starts QEMU on the VM's paths (again, after a kill), waits for both
 * sockets and opens the session. */
void qemu_vm_start(QemuVm *vm);
/* SIGKILL, reaped; the session is closed, the files stay. */
void qemu_vm_kill(QemuVm *vm);
/* Waits for QEMU to exit on its own (after quit, say); false on timeout. */
bool qemu_vm_wait_exit(QemuVm *vm, unsigned timeout_ms);
/* Kills QEMU if running and removes the directory. */
void qemu_vm_free(QemuVm *vm);

QmpSession *qmp_session_open(const char *path);
void qmp_session_close(QmpSession *s);
/* Runs a command; args is a JSON object text or NULL. Returns the
 * "return" value (json_object_put() it), or NULL with *ret_error set to
 * "<class>: <desc>" (g_free() it) if QEMU refused. */
json_object *qmp_session_execute(QmpSession *s, const char *command, const char *args, char **ret_error);
/* The same, asserting success; the result is dropped. */
void qmp_session_run(QmpSession *s, const char *command, const char *args);
/* query-status "status" (g_free() it). */
char *qmp_session_status(QmpSession *s);
/* Reads a guest-physical quadword through "xp /1gx". */
uint64_t qmp_session_xp(QmpSession *s, uint64_t gpa);

/* What "info registers" says about a vCPU. The tests read it with this
 * parser of their own, never with vmsigd's (src/host/qmp/qmp-hmp.c): a
 * witness that shares vmsigd's code would share its mistakes. */
typedef struct QemuRegisters {
        uint64_t ip; /* RIP in 64-bit mode, else EIP */
        uint64_t cr0, cr3, cr4, efer;
        bool halted; /* HLT=1 */
} QemuRegisters;

/* Parses "info registers" text, of the first CPU block only (with -a,
 * QEMU prints a "CPU#<n>" line and a block for each vCPU); false if the
 * IP, CR0, CR3, CR4 or EFER is missing or malformed there. */
bool qemu_parse_registers(const char *text, QemuRegisters *ret);
/* Runs "info registers" (the monitor's current vCPU, the first unless
 * changed) and returns its text (g_free() it); fills *ret if ret is
 * given, or g_error()s with the text if it does not parse. */
char *qmp_session_registers(QmpSession *s, QemuRegisters *ret);
/* Waits until an event of that name arrived (seen before or now) and
 * forgets the events seen up to it; false on timeout. */
bool qmp_session_wait_event(QmpSession *s, const char *name, unsigned timeout_ms);
