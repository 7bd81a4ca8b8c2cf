/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Plugin libraries vmsigd loads at run time: libvmsig-vgpu (frames of the
 * guest displays). A library that cannot be loaded leaves vmsigd running
 * without what it senses. */

#include "config-file.h"
#include "vmsig-core.h"

typedef struct vmsig_plugins vmsig_plugins;

/* After the core is created and before endpoints attach. Fails only for
 * want of memory: a missing library is logged and skipped. */
int vmsig_plugins_new(vmsig_core *core, const vmsig_config *config, vmsig_plugins **ret);
/* A reload: applies the new rate; enabling or disabling frames takes a
 * restart, which is logged. */
void vmsig_plugins_reload(vmsig_plugins *s, const vmsig_config *old, const vmsig_config *new);
/* Before the core is freed: the plugins stop and let go of the core. */
void vmsig_plugins_stop(vmsig_plugins *s);
/* After the core is freed: events still retained held payloads whose free
 * functions live in the libraries, so they are unloaded only now. */
vmsig_plugins *vmsig_plugins_free(vmsig_plugins *s);
