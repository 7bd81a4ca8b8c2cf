/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A Debian 12 guest with systemd as PID 1, for the tests that run the
 * installed package under systemd: the image of tests/systemd-guest-image.sh
 * (built in the build tree's tests/systemd-guest/ when missing or out of
 * date), booted with Debian's cloud kernel and the host's initrd under QEMU
 * TCG (see qemu-harness.h) as a snapshot, so every boot starts clean.
 *
 * The guest sees its root as /dev/vda and, if the test gave a directory,
 * a copy of it as an ext4 file system on /dev/vdb (not mounted; writes to
 * it do not persist). Commands go to a root shell on ttyS1 through a
 * serial socket; the kernel's console (ttyS0) goes to a file, whose end is
 * printed when something fails.
 *
 * Environment:
 *   VMSIG_TEST_KERNEL  the kernel (default: the newest
 *                      /boot/vmlinuz-*-cloud-amd64 with an initrd.img)
 *   CI                 "true": a missing part fails instead of skipping
 */

#include <stdbool.h>
#include <stdint.h>

#include "qemu-harness.h"

#define SYSTEMD_GUEST_RAM_MIB 768
/* What a command may take unless told otherwise. */
#define SYSTEMD_GUEST_RUN_TIMEOUT_MS 60000

typedef struct SystemdGuest {
        QemuVm *vm;
        char *kernel, *initrd, *image, *data_image, *append;
        char *console_path, *shell_path;
        GPtrArray *extra_args;
        int shell_fd;      /* -1 until the shell answered */
        GString *pending;  /* read from the shell, not consumed yet */
        unsigned next_id;  /* of the markers */
        int64_t started;   /* g_get_monotonic_time() at QEMU's start */
        int64_t shell_ready; /* ... and when the shell first answered */
} SystemdGuest;

/* true if QEMU, the kernel and initrd, mmdebstrap and mke2fs are there and
 * we are root; otherwise the test is skipped (or, under CI=true, aborted)
 * with the reason. */
bool systemd_guest_available(void);

/* Builds the image if needed (this can take a minute) and prepares a
 * guest; data_dir, if not NULL, becomes its second disk. QEMU is not
 * started. */
SystemdGuest *systemd_guest_new(const char *data_dir);

/* Starts QEMU and waits until the shell on ttyS1 answers, g_error()ing
 * with the console's end after timeout_ms. */
void systemd_guest_start(SystemdGuest *g, unsigned timeout_ms);

/* Runs a shell command line (stdin /dev/null, stderr into stdout, in a
 * subshell: "exit" ends only the command) and returns its exit status;
 * its output goes to *ret_out if given (g_free() it). g_error()s if the
 * command did not end in timeout_ms. */
int systemd_guest_run_timeout(SystemdGuest *g, const char *cmd, char **ret_out, unsigned timeout_ms);
#define guest_run(g, cmd, ret_out) systemd_guest_run_timeout((g), (cmd), (ret_out), SYSTEMD_GUEST_RUN_TIMEOUT_MS)

/* guest_run(), g_error()ing with the command's output unless it exited
 * with expected. */
void systemd_guest_assert_run(SystemdGuest *g, const char *cmd, int expected, char **ret_out);
/* g_error()s unless out contains needle. */
void systemd_guest_assert_contains(const char *out, const char *needle);

/* Milliseconds from QEMU's start to the shell's first answer. */
unsigned systemd_guest_boot_ms(const SystemdGuest *g);

/* The last max_len bytes of the kernel's console (g_free() it). */
char *systemd_guest_console_tail(SystemdGuest *g, size_t max_len);

/* Asks systemd to power off and waits for QEMU to exit; true if it did in
 * timeout_ms, false if it had to be killed. */
bool systemd_guest_poweroff(SystemdGuest *g, unsigned timeout_ms);

/* Kills QEMU if it still runs and removes the guest's files. */
void systemd_guest_free(SystemdGuest *g);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SystemdGuest, systemd_guest_free)
