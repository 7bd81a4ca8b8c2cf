/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The parts of a Debian cloud kernel guest that are files, without GLib,
 * for tests/linux-guest.c and bench/bench-bootstrap.c alike: the kernel,
 * a static busybox, and an initramfs of busybox and an /init script.
 */

#include <stdbool.h>

#define LINUX_INITRD_KERNEL_DIR "/boot"
#define LINUX_INITRD_KERNEL_PREFIX "vmlinuz-"
#define LINUX_INITRD_KERNEL_SUFFIX "-cloud-amd64"

/* $VMSIG_TEST_KERNEL if it is a regular file, else the newest
 * /boot/vmlinuz-*-cloud-amd64; NULL if none (free() it). */
char *linux_initrd_find_kernel(void);
/* The first busybox in $PATH that is a static ELF (an initramfs has no
 * libc for any other); NULL if none (free() it). */
char *linux_initrd_find_busybox(void);
/* Packs busybox as /bin/busybox and init as /init (0755), sorted and owned
 * by root whoever packs it, gzip -gzip_level, into path: renamed into
 * place whole, so that a reader at the same time never sees half. 0 or
 * -errno (-EIO: the packing failed; it says why on stderr). */
int linux_initrd_pack(const char *busybox, const char *init, int gzip_level, const char *path);
