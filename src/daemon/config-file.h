/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vmsigd.conf: XML read with libxml2, validated against the RelaxNG schema
 * data/vmsigd.conf.rng (compiled into the daemon), then checked for what a
 * schema cannot express (duplicates, ranges). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-id128.h>

#include "bus-names.h"
#include "memctx.h"
#include "vmsig-endpoint.h"

typedef struct vmsig_stub_vm_config {
        char *name;
        sd_id128_t uuid;  /* SD_ID128_NULL when the file gives none */
        uint64_t ram_size; /* bytes, page aligned */
        vmsig_state initial_state;
        uint64_t latency_usec; /* simulated duration of each request */
        uint64_t dtb;          /* reported address-space root, 0: none */
        bool bootstrap;        /* look for the root in RAM */
        unsigned fail_boots;   /* fail injection: bootstrap attempts that fail */
        bool no_vcpu_registers; /* simulate a host that cannot read them */
        vmsig_guest_os guest_os; /* pinned; UNKNOWN: detected */
        unsigned line; /* where it was declared, for messages */
} vmsig_stub_vm_config;

/* Per-uid admission; user and group names are resolved when the file is
 * loaded, so a reload picks up changes to the user database. */
typedef struct vmsig_admission_config {
        unsigned max_pending_calls; /* 0: unlimited */
        unsigned max_subscriptions;
        unsigned max_leases;
        uid_t *allow_uids;
        size_t n_allow_uids;
        gid_t *allow_gids;
        size_t n_allow_gids;
} vmsig_admission_config;

typedef struct vmsig_config {
        char *path;
        int log_level; /* syslog priority */
        size_t queue_limit;
        size_t max_endpoints;
        size_t max_write;     /* bytes per MemWrite */
        size_t bootstrap_backoff_max_ms;
        char *audit_target;   /* "auto", "journal" or "stderr" */
        char *private_socket; /* NULL when disabled */
        char *trigger_dir;    /* discovery; NULL when disabled */
        /* The libvirt backend (<libvirt>): off unless the file says so. */
        bool libvirt_enabled;
        char *libvirt_uri;    /* never NULL */
        bool libvirt_tagged;  /* only domains tagged in <metadata>; else all */
        bool libvirt_monitor; /* QEMU's monitor through libvirt (issue 17 part 2) */
        char *warning;        /* the first "FILE:LINE: ..." warning of loading it, or NULL */
        vmsig_admission_config admission;
        bool frames_enabled; /* load libvmsig-vgpu (read at start only) */
        double frames_rate;  /* captures per second per display */
        vmsig_stub_vm_config *stub_vms;
        size_t n_stub_vms;
} vmsig_config;

#define VMSIG_CONFIG_LOG_LEVEL_DEFAULT LOG_INFO
#define VMSIG_CONFIG_RAM_SIZE_DEFAULT (64ULL << 20)
#define VMSIG_CONFIG_PRIVATE_SOCKET_DEFAULT VMSIG_PRIVATE_SOCKET_DEFAULT
#define VMSIG_CONFIG_TRIGGER_DIR_DEFAULT "/run/vmsig/vms.d"
#define VMSIG_CONFIG_LIBVIRT_URI_DEFAULT "qemu:///system"
#define VMSIG_CONFIG_MAX_WRITE_MAX (1u << 20)
#define VMSIG_CONFIG_MAX_PENDING_CALLS_DEFAULT 64
#define VMSIG_CONFIG_MAX_SUBSCRIPTIONS_DEFAULT 64
#define VMSIG_CONFIG_MAX_LEASES_DEFAULT 16
/* Those of vmsig-vgpu.h (VMSIG_VGPU_RATE_*), which the daemon checks. */
#define VMSIG_CONFIG_FRAMES_RATE_DEFAULT 2.0
#define VMSIG_CONFIG_FRAMES_RATE_MAX 60.0

/* The configuration used when no file exists at the default path. */
int vmsig_config_new_default(vmsig_config **ret);
/* Returns 0, or a negative errno and *error set to "FILE:LINE: problem"
 * (FILE alone when no line applies), to be freed by the caller. What
 * loads but deserves a word (an obsolete setting, ignored) is in
 * (*ret)->warning, for the caller to log. */
int vmsig_config_load(const char *path, vmsig_config **ret, char **error);
vmsig_config *vmsig_config_free(vmsig_config *c);
const vmsig_stub_vm_config *vmsig_config_find_stub(const vmsig_config *c, const char *name);
