/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Where QEMU puts a PC guest's RAM in guest-physical space, computed from
 * the machine type and the RAM size alone, for when QEMU cannot be asked
 * (the libvirt backend with <libvirt monitor="no">; the monitor's answer,
 * qmp-ram-map.h, is preferred wherever there is one). The rules are QEMU
 * 7.2's (Debian 12), from hw/i386/pc_q35.c and hw/i386/pc_piix.c:
 *
 *   pc-q35-2.4 .. 7.2     RAM of 2.75 GiB (0xb0000000) or more: 2 GiB low,
 *                         the rest from 4 GiB; less: all of it low.
 *   pc-i440fx-2.0 .. 7.2  RAM of 3.5 GiB (0xe0000000) or more: 3 GiB low
 *                         (gigabyte_align), the rest from 4 GiB.
 *   pc-i440fx-1.4 .. 1.7  the same without gigabyte_align: 3.5 GiB low.
 *
 * The part above 4 GiB follows the low part in the RAM backend. Below
 * 1 MiB the map is the backend's at its own address, although the VGA
 * window and the BIOS areas (0xa0000..0x100000) may show the vCPUs a
 * device or a ROM there, depending on the devices and on how far the
 * firmware got: the RAM behind them is still the backend's, at that
 * offset, and a map that does not change with those is the one both
 * paths give (qmp_ram_map_close_legacy_hole() makes QEMU's answer so).
 *
 * Everything else is refused with the reason, never guessed: other
 * machine types (aliases such as "q35" among them: which version they name
 * depends on the QEMU), versions QEMU 7.2 does not have, and guests whose
 * RAM (or maximum memory) reaches 512 GiB, where QEMU may move the RAM
 * above 4 GiB to 1 TiB (AMD vCPUs, pc_memory_init()'s HyperTransport hole).
 * What QEMU's command line may change beyond the machine type
 * (max-ram-below-4g) is the caller's to rule out.
 */

#include <stddef.h>
#include <stdint.h>

#include "memctx.h"

#define QEMU_RAM_LAYOUT_MAX_RANGES 2

/* 0 and the ranges (sorted by GPA) in ret; or -EOPNOTSUPP (-EINVAL for
 * no RAM) and why in msg, with nothing in ret. max_ram_size: the guest's
 * maximum memory with hotplug (0: none). */
int qemu_ram_layout(const char *machine, uint64_t ram_size, uint64_t max_ram_size,
                    vmsig_gpa_range ret[static QEMU_RAM_LAYOUT_MAX_RANGES], size_t *ret_n, char *msg, size_t size);
