/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Real VMs found by discovery (trigger files), attached as QEMU
 * endpoints. Only the armed build has the QMP backend; without it this
 * does nothing and says so once. */

#include "config-file.h"
#include "vmsig-core.h"

typedef struct vmsig_qemu_vms vmsig_qemu_vms;

/* Starts discovery as configured; *ret stays NULL when it is off. VMs
 * already announced are attached before this returns. */
int vmsig_qemu_vms_new(vmsig_core *core, const vmsig_config *config, vmsig_qemu_vms **ret);
/* Detaches every discovered VM. */
vmsig_qemu_vms *vmsig_qemu_vms_free(vmsig_qemu_vms *d);
/* After a reload: the directory may have changed (restart), or not
 * (read it again, as after a lost event). */
int vmsig_qemu_vms_reload(vmsig_qemu_vms **d, vmsig_core *core, const vmsig_config *old, const vmsig_config *new);
