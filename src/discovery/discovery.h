/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * VM discovery: which VMs exist on this host, where their QMP socket and
 * RAM file are, and when they come and go. No D-Bus and no QMP here: the
 * daemon turns the attach and detach callbacks into endpoints of the QMP
 * backend.
 *
 * Trigger directory (/run/vmsig/vms.d by default)
 *   One XML file per VM, named *.xml, in the format of data/vm.rng: name,
 *   optional uuid, QMP socket, RAM file and optional GPA map. Whoever starts
 *   the VM writes the file (best under another name, then renamed into
 *   place) and removes it when the VM stops. Other names, dotfiles and
 *   temporary files are ignored. The directory is watched with inotify, so a
 *   file is read as soon as it is closed after writing or renamed in; there
 *   is no polling. If the directory does not exist yet, its nearest existing
 *   ancestor is watched until it does.
 *
 * libvirt's domains are not found here: the libvirt backend
 *   (src/host/libvirt) asks libvirt's API. Trigger files are for QEMUs that
 *   no libvirt manages.
 *
 * Files are trusted only when owned by root (or by the user vmsigd runs as)
 * and not writable by group or others: a trigger file decides which file
 * vmsigd opens as guest RAM. Symbolic links are not followed.
 *
 * Host probe
 *   Before a VM is attached, its QMP socket must exist as a socket and its
 *   RAM file as a regular file, both accessible (and the RAM file as large as
 *   the GPA map says). When QEMU is still starting, the check is retried from
 *   a timer, 50 ms after the first attempt and then twice as long each time
 *   up to 2 s, for at most the probe timeout (60 s by default); then one
 *   warning is logged. Rewriting (or touching) the file starts a new probe.
 *   Nothing ever waits in the loop, and no timer is armed while no probe
 *   runs.
 *
 * Problems are logged as warnings "FILE:LINE: problem" and only concern that
 * file; all other VMs keep working. A second file that names a VM (or uuid)
 * already known is rejected until the first one is removed. A rewrite that
 * fails to parse keeps the previous description (an editing mistake does
 * not detach a running VM); a rewrite that changes anything detaches the
 * VM and attaches it again with the new description.
 */

#include <stdint.h>
#include <stddef.h>
#include <systemd/sd-id128.h>

#include "memctx.h"
#include "vmsig-core.h"

#define VMSIG_DISCOVERY_TRIGGER_DIR_DEFAULT "/run/vmsig/vms.d"
#define VMSIG_DISCOVERY_PROBE_TIMEOUT_USEC_DEFAULT (60ULL * 1000000ULL)
#define VMSIG_DISCOVERY_PROBE_DELAY_MIN_USEC (50ULL * 1000ULL)
#define VMSIG_DISCOVERY_PROBE_DELAY_MAX_USEC (2ULL * 1000000ULL)

typedef struct vmsig_discovery vmsig_discovery;

typedef enum vmsig_vm_origin {
        VMSIG_VM_ORIGIN_TRIGGER, /* a file of the trigger directory */
        _VMSIG_VM_ORIGIN_MAX,
} vmsig_vm_origin;

/* Valid only during the callback: copy what is kept. */
typedef struct vmsig_vm_description {
        const char *file; /* where it was read from */
        vmsig_vm_origin origin;
        const char *name; /* a valid endpoint name */
        sd_id128_t uuid;  /* SD_ID128_NULL when the trigger file gives none */
        const char *qmp_socket;
        const char *ram_path;
        /* Sorted by GPA, not overlapping, 4 KiB aligned. None given (NULL,
         * 0): the whole RAM file maps 1:1 from GPA 0, as memctx does. */
        const vmsig_gpa_range *ranges;
        size_t n_ranges;
        vmsig_guest_os guest_os; /* pinned by the file; UNKNOWN: detected */
} vmsig_vm_description;

/* The callbacks run from the event loop, or from vmsig_discovery_new() and
 * vmsig_discovery_rescan() for files that are already there. They must not
 * call back into the discovery object. A name is attached at most once at a
 * time; a VM that changes is detached before it is attached again. */
typedef struct vmsig_discovery_ops {
        /* Return 0, or a negative errno when the VM cannot be attached (for
         * example -ENOSPC): then it is not detached later either, and the
         * next rewrite of its file tries again. */
        int (*attach)(const vmsig_vm_description *d, void *userdata);
        void (*detach)(const char *name, void *userdata);
} vmsig_discovery_ops;

typedef struct vmsig_discovery_stats {
        size_t files;    /* *.xml files known, in all directories */
        size_t attached;
        size_t probing;  /* waiting for the QMP socket or RAM file */
        size_t rejected; /* invalid, name clash, probe gave up, attach failed */
} vmsig_discovery_stats;

/* Watches trigger_dir (NULL: the default) and attaches the VMs found
 * there before it returns. A directory that does not exist yet is waited
 * for. */
int vmsig_discovery_new(vmsig_core *core, const char *trigger_dir, const vmsig_discovery_ops *ops, void *userdata, vmsig_discovery **ret);
/* Makes no detach calls: the caller detaches what it attached. */
vmsig_discovery *vmsig_discovery_free(vmsig_discovery *d);
/* How long a probe waits for the QMP socket and RAM file; also applies to
 * the probes running now. 0 restores the default. */
void vmsig_discovery_set_probe_timeout(vmsig_discovery *d, uint64_t usec);
/* Reads the directory again, as after a lost inotify event: for a
 * reload, or for an administrator who fixed permissions. */
void vmsig_discovery_rescan(vmsig_discovery *d);
void vmsig_discovery_get_stats(vmsig_discovery *d, vmsig_discovery_stats *ret);
