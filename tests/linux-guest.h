/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Debian's cloud kernel as a real guest for the tests: QEMU under TCG (see
 * qemu-harness.h) with 512 MiB of RAM, -kernel, and a tiny initramfs whose
 * /init (static busybox) mounts /proc, prints LINUX_GUEST_MARKER on the
 * serial console and then sleeps forever, or with spin spins in user mode
 * (so that a vCPU sampled at any time runs on a user root, which under PTI
 * is the kernel root + 4 KiB).
 *
 * The initramfs is packed with cpio and gzip on first use and cached in
 * the build tree (LINUX_GUEST_INITRD in tests/ under VMSIG_BUILDDIR, or
 * next to the test program); a cache file is only ever renamed into place
 * whole. Each start deletes the RAM file first: a reused one keeps the
 * kernels of earlier boots, and a probe could find those.
 *
 * Environment:
 *   VMSIG_TEST_KERNEL  the kernel (default: the newest
 *                      /boot/vmlinuz-*-cloud-amd64)
 *   VMSIG_BUILDDIR     the build tree, for the cache
 *   CI                 "true": a missing kernel, busybox, cpio or gzip
 *                      fails instead of skipping
 */

#include <stdbool.h>
#include <stdint.h>

#include "detect.h"
#include "qemu-harness.h"
#include "vmsig-endpoint.h"

#define LINUX_GUEST_MARKER "vmsig-linux-guest: init is running"
/* Before the marker /init prints the line of linux_banner in
 * /proc/kallsyms after this prefix. */
#define LINUX_GUEST_BANNER_PREFIX "vmsig-linux-guest: kallsyms "
#define LINUX_GUEST_RAM_MIB 512
#define LINUX_GUEST_INITRD "linux-guest-initrd-2.cpio.gz"

typedef struct LinuxGuest {
        QemuVm *vm;
        char *kernel;  /* its path */
        char *release; /* from its file name: "6.1.0-57-cloud-amd64" */
        char *initrd;
        char *serial_path;
        char *append;
        int ram_fd; /* read-only, -1 while QEMU is not running */
        vmsig_gpa_range range;
        vmsig_guest_mem source; /* the RAM while QEMU runs */
} LinuxGuest;

/* true if QEMU, a kernel, a static busybox, cpio and gzip are there;
 * otherwise the test is skipped (or, under CI=true, aborted) with the
 * reason. */
bool linux_guest_available(void);

/* A guest, not started: cpu is QEMU's -cpu (NULL: QEMU's default, qemu64,
 * an AMD without LA57, so 4 levels and no PTI). Builds the initramfs if
 * it is not cached yet. */
LinuxGuest *linux_guest_new(const char *cpu, bool spin);
/* Deletes the RAM file, starts QEMU (with -S if paused; with -no-reboot
 * if no_reboot) and opens the RAM file read-only. */
void linux_guest_start(LinuxGuest *g, bool paused, bool no_reboot);
/* Waits until the serial console showed the marker count times (once a
 * boot); fails the test after timeout_ms, with the console's end. */
void linux_guest_wait_ready(LinuxGuest *g, unsigned count, unsigned timeout_ms);
/* The VA of linux_banner as the kernel of boot number boot (1, 2, ...)
 * printed it; false if it has not yet, or printed zeros (kptr_restrict). */
bool linux_guest_banner_va(LinuxGuest *g, unsigned boot, uint64_t *ret);
/* An HMP command through the test's QMP session (g_free() the text). */
char *linux_guest_hmp(LinuxGuest *g, const char *command);
/* The vCPU's control registers and instruction pointer, through
 * qmp_session_registers(), as the vmsig_vcpu_state that
 * vmsig_vcpu_paging_levels() takes. */
void linux_guest_registers(LinuxGuest *g, vmsig_vcpu_state *ret, uint64_t *ret_ip);
/* Kills QEMU, removes its files. */
void linux_guest_free(LinuxGuest *g);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(LinuxGuest, linux_guest_free)
