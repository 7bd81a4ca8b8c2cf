/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Parsers for the two facts the QEMU backend needs that QEMU gives only as
 * human-monitor (HMP) text, through QMP's human-monitor-command: no QMP
 * command returns a vCPU's control registers, nor the guest-physical map
 * of a RAM backend.
 *
 *  "info registers"  CR0, CR3, CR4 and EFER of the first vCPU block (QEMU
 *                    prints the monitor's current CPU, CPU#0; "-a" prints
 *                    every CPU, CPU#0 first). Both layouts are understood:
 *                    32-bit ("EIP=", 8-digit fields) and long mode ("RIP=",
 *                    16-digit CR2/CR3), as well as a block without the
 *                    "CPU#n" line, which older QEMUs printed only with -a.
 *
 *  "info mtree -f"   The entries of one RAM region (the backend's id, such
 *                    as "ram0") in the FlatView of the address space
 *                    "memory", which is what the vCPUs see outside SMM.
 *                    Parts of RAM that the firmware shadows read-only are
 *                    listed as "rom" but are the same file, so they count.
 *                    Entries contiguous in both guest-physical address and
 *                    file offset are merged: a q35 guest of 3 GiB comes out
 *                    as [0, 2G) at offset 0 and [4G, 5G) at offset 2G.
 *                    Until the firmware has programmed the PAM registers,
 *                    [0xc0000, 0x100000) is the BIOS, not RAM, and the low
 *                    range comes out split in two around it.
 *
 * The text comes from another process and is parsed as hostile: no
 * regular expressions, no strtoull() (it skips blanks and takes signs and
 * "0x"), explicit digit counts, no arithmetic that can wrap, and a cap on
 * the number of ranges. Both parsers stop at the first NUL: a caller that
 * holds the text as a JSON string must refuse one with an embedded NUL
 * (json_object_get_string_len() != strlen()), or a truncated text would be
 * read as a complete one.
 */

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "memctx.h"
#include "qmp-monitor.h"
#include "vmsig-endpoint.h"

/* More ranges than this in one map is not a machine QEMU builds. */
#define QMP_HMP_MAX_RANGES 1024

/* 0, or -EBADMSG if a register is missing, given twice or malformed
 * (nothing written to *ret then). */
int qmp_hmp_parse_registers(const char *text, vmsig_vcpu_state *ret);

/* The ranges of region `region` in the address space "memory", merged and
 * sorted by GPA, each checked to lie within file_size bytes of the file
 * (-ERANGE if not); -ENOENT if the region is not there; -EBADMSG on
 * malformed text (also: no "memory" FlatView, or two of them, or entries
 * out of order or overlapping); -E2BIG for more than QMP_HMP_MAX_RANGES
 * ranges; -EINVAL if region is empty or holds a blank or a control
 * character (no QOM id does); -ENOMEM. *ret is malloc()ed; nothing is
 * written to *ret or *ret_n on failure. Two GPAs may map the same file
 * offset (an alias). */
int qmp_hmp_parse_mtree(const char *text, const char *region, uint64_t file_size, vmsig_gpa_range **ret,
                        size_t *ret_n);

/* The arguments of human-monitor-command for command_line; NULL when out
 * of memory (QEMU then refuses the command). */
json_object *qmp_hmp_command(const char *command_line);

/* The host seam's read_vcpu for every backend that speaks to QEMU: asks
 * monitor for "info registers" (the one way QMP shows a vCPU's control
 * registers, about 1 ms of QEMU's time; it answers while the guest runs)
 * and answers done from the loop with the registers, or with the reply's
 * error (or -EBADMSG for an answer without them) and its words. 0, or
 * -EINVAL without done, -ENOMEM, or execute's error (done is not called
 * then). */
int qmp_hmp_read_vcpu(const qmp_monitor *monitor, vmsig_vcpu_done_fn done, void *userdata);
