/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Real VMs found by discovery (trigger files, libvirt), attached as QEMU
 * endpoints. Only the armed build has the QMP backend; without it this
 * does nothing and says so once. */

#include "config-file.h"
#include "vmsig-core.h"

typedef struct vmsig_discovered vmsig_discovered;

/* Starts discovery as configured; *ret stays NULL when it is off. VMs
 * already announced are attached before this returns. */
int vmsig_discovered_new(vmsig_core *core, const vmsig_config *config, vmsig_discovered **ret);
/* Detaches every discovered VM. */
vmsig_discovered *vmsig_discovered_free(vmsig_discovered *d);
/* After a reload: the directories may have changed (restart), or not
 * (read them again, as after a lost event). */
int vmsig_discovered_reload(vmsig_discovered **d, vmsig_core *core, const vmsig_config *old, const vmsig_config *new);
