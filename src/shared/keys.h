/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Key codes: the KEY input events of every backend carry QEMU's QKeyCode
 * numbers (vmsig-endpoint.h). This is the one table of them, with what
 * each backend sends: the QMP backend QEMU's name of the key
 * (input-send-event), the libvirt backend its Linux input keycode
 * (virDomainSendKey with VIR_KEYCODE_SET_LINUX, libvirt's own reference
 * set). vmsigctl names keys from it too, so that a client can name every
 * key the daemon takes.
 */

#include <stdint.h>

/* Every KEY code is below this (the table holds QEMU 7.2's 149 keys and
 * room for those QEMU appends): a bitmap of keys has this many bits. */
#define KEY_CODE_LIMIT 256

/* QEMU's name of a KEY code ("a", "ret", "shift"), or NULL for none (0,
 * "unmapped", is none). */
const char *key_name(uint32_t code);
/* The KEY code of a QEMU key name, or -EINVAL. */
int key_from_name(const char *name);
/* The Linux keycode (KEY_* of linux/input-event-codes.h) of a KEY code,
 * or -EINVAL for none. */
int key_linux_code(uint32_t code);
