/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libvirt's domains, through the libvirt backend, as the configuration's
 * <libvirt> element says. Only the armed build (--enable-libvirt) has the
 * backend; without it an enabled <libvirt> is a warning. */

#include "config-file.h"
#include "vmsig-core.h"

typedef struct vmsig_libvirt_vms vmsig_libvirt_vms;

/* Starts the backend (old NULL), or after a reload restarts it when its
 * settings changed (URI, domains, monitor: the endpoints of the old
 * connection go, those of the new one come) or stops it. */
int vmsig_libvirt_vms_apply(vmsig_libvirt_vms **v, vmsig_core *core, const vmsig_config *old,
                            const vmsig_config *new);
vmsig_libvirt_vms *vmsig_libvirt_vms_free(vmsig_libvirt_vms *v);
