/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The guest-physical map of a QEMU guest's RAM file, asked of QEMU itself.
 * A RAM file is not a flat image of guest-physical memory: a q35 guest of
 * 2.75 GiB or more has RAM at [0, 2G) and from 4 GiB up, the part above
 * 4 GiB at file offset GPA - 2 GiB (pc: 3 GiB), and the split depends on
 * the machine type and version. So nothing is assumed:
 *
 *   qom-list /objects                  the memory backends,
 *   qom-get /objects/ID mem-path       each one's file, until the one whose
 *                                      inode is the RAM file's,
 *   human-monitor-command              its ranges in the address space
 *     "info mtree -f"                  "memory" (qmp-hmp.h).
 *
 * Three to a few round trips on every connection, each a fraction of a
 * millisecond; the guest runs on meanwhile.
 */

#include <stddef.h>

#include "memctx.h"
#include "qmp-conn.h"

/* error 0: ranges (malloc()ed, the callee's to free) and n. Otherwise a
 * negative errno (-ENODEV: the connection was freed, -ENOENT: no backend
 * of QEMU's uses the file) and message says why. */
typedef void (*qmp_ram_map_fn)(int error, const char *message, vmsig_gpa_range *ranges, size_t n, void *userdata);

/* Until the firmware programs the PAM registers, [0xc0000, 0x100000) is
 * the BIOS ROM, not the RAM file, and a map asked for then has a hole
 * there that goes away a moment later (SeaBIOS opens it at once). The
 * hole is the file's, at the offsets either side say: this closes it,
 * so that the map does not depend on when it was asked. Ranges sorted by
 * GPA; returns their number now. */
size_t qmp_ram_map_close_pam_hole(vmsig_gpa_range *ranges, size_t n);

/* Starts the queries on a ready connection; fn is called from the loop,
 * exactly once, unless this fails. */
int qmp_ram_map_query(qmp_conn *c, const char *ram_path, qmp_ram_map_fn fn, void *userdata);
