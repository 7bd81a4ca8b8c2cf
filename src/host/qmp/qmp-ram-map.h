/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The guest-physical map of a QEMU guest's RAM, asked of QEMU itself,
 * through a monitor (qmp-monitor.h: the QMP connection, or libvirt's
 * monitor passthrough). A RAM backend is not a flat image of
 * guest-physical memory: a q35 guest of 2.75 GiB or more has RAM at
 * [0, 2G) and from 4 GiB up, the part above 4 GiB at offset GPA - 2 GiB
 * (pc: 3 GiB), and the split depends on the machine type and version. So
 * nothing is assumed:
 *
 *   qom-list /objects                  the memory backends,
 *   qom-get /objects/ID mem-path       a file: each file backend's path,
 *                                      until the one whose inode is the
 *                                      RAM's (a symlink or a relative path
 *                                      on QEMU's command line match too);
 *   qom-get /objects/ID size           a memfd, which has no path: every
 *                                      memfd backend's size; the one of
 *                                      the RAM's size is it, and two of
 *                                      that size are refused (-ENOTUNIQ)
 *                                      rather than guessed;
 *   human-monitor-command              its ranges in the address space
 *     "info mtree -f"                  "memory" (qmp-hmp.h).
 *
 * A few round trips on every connection, each a fraction of a
 * millisecond; the guest runs on meanwhile.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "memctx.h"
#include "qmp-monitor.h"

/* The RAM whose backend is looked for. */
typedef struct qmp_ram_target {
        const char *name; /* for messages: its path, or what maps calls a memfd; copied */
        dev_t dev;        /* a file's inode */
        ino_t ino;
        uint64_t size; /* the backend's, which mtree's ranges must lie within */
        bool memfd;
} qmp_ram_target;

/* error 0: ranges (malloc()ed, the callee's to free) and n. Otherwise a
 * negative errno (-ENODEV: the monitor went away, -ENOENT: no backend of
 * QEMU's holds the RAM, -ENOTUNIQ: more than one memfd backend of its
 * size) and message says why. */
typedef void (*qmp_ram_map_fn)(int error, const char *message, vmsig_gpa_range *ranges, size_t n, void *userdata);

/* Below 1 MiB, what the vCPUs see depends on the devices and on the
 * firmware's progress: the VGA window [0xa0000, 0xc0000) is the VGA
 * device's when there is one, and [0xc0000, 0x100000) is the BIOS ROM
 * until the firmware programs the PAM registers (SeaBIOS does at once).
 * The RAM behind both is the backend's at its own address all the same,
 * so a hole there, with the file's offsets either side saying so, is
 * closed: the map then depends neither on when it was asked nor on the
 * devices, and is the one qemu-ram-layout.h computes. Ranges sorted by
 * GPA; returns their number now. */
size_t qmp_ram_map_close_legacy_hole(vmsig_gpa_range *ranges, size_t n);

/* Starts the queries on a ready monitor (copied); fn is called from the
 * loop, exactly once, unless this fails. */
int qmp_ram_map_query(const qmp_monitor *m, const qmp_ram_target *ram, qmp_ram_map_fn fn, void *userdata);
