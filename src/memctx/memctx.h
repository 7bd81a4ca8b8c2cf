/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * memctx: the guest address-space context of one endpoint, published as a
 * MEMCTX event. A datum pairs the address-space root (the System DTB, 0
 * until the bootstrap finds it) with a read-only fd of the guest RAM region,
 * the GPA -> file offset map and an epoch. A guest reset ends an epoch: the
 * old one is published as invalidated, then the next one.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmsig-core.h"

/* Which guest OS runs: detected by the bootstrap, or pinned by
 * configuration. */
typedef enum vmsig_guest_os {
        VMSIG_GUEST_OS_UNKNOWN,
        VMSIG_GUEST_OS_WINDOWS,
        VMSIG_GUEST_OS_LINUX,
        _VMSIG_GUEST_OS_MAX,
} vmsig_guest_os;

/* "unknown", "windows", "linux"; NULL if out of range. */
const char *vmsig_guest_os_to_string(vmsig_guest_os os);
/* _VMSIG_GUEST_OS_MAX if unknown. */
vmsig_guest_os vmsig_guest_os_from_string(const char *s);

/* The witnesses that agreed on a published root. A root is published only
 * when two independent ones agree (see bootstrap.h). */
enum {
        VMSIG_WITNESS_CONFIG = 1u << 0,   /* given by configuration */
        VMSIG_WITNESS_EPROCESS = 1u << 1, /* the System EPROCESS names it, its neighbours point back */
        VMSIG_WITNESS_SELF_REF = 1u << 2, /* the table maps itself, as Windows' does */
        VMSIG_WITNESS_CR3 = 1u << 3,      /* the vCPU runs on it (on its kernel half) */
        VMSIG_WITNESS_BANNER = 1u << 4,   /* Linux's banner is mapped in its kernel half */
        VMSIG_WITNESS_LIVE = 1u << 5,     /* without registers: seen changing as a running kernel's do */
        _VMSIG_WITNESS_ALL = (1u << 6) - 1,
};

/* The names joined with '+' in bit order ("eprocess+self-ref+cr3"), "" for
 * none, truncated to fit size. */
const char *vmsig_witnesses_to_string(uint32_t witnesses, char *buf, size_t size);
#define VMSIG_WITNESSES_STRING_MAX 64

/* A root and what is known about it. */
typedef struct vmsig_memctx_root {
        uint64_t dtb;         /* GPA of the top-level table */
        uint64_t kernel_hint; /* a kernel VA, 0 if unknown */
        unsigned levels;      /* paging levels: 4, or 5 (LA57); 0 means 4 */
        vmsig_guest_os os;
        uint32_t witnesses;
} vmsig_memctx_root;

typedef struct vmsig_gpa_range {
        uint64_t gpa;
        uint64_t size;
        uint64_t offset; /* in the RAM file */
} vmsig_gpa_range;

/* The MEMCTX payload. Immutable once published; owns ram_fd. */
typedef struct vmsig_memctx {
        uint64_t epoch;
        bool invalidated;
        uint64_t dtb;
        uint64_t kernel_hint;
        unsigned levels; /* 4 or 5 with a root, 0 without */
        vmsig_guest_os os;
        uint32_t witnesses;
        int ram_fd;
        uint64_t ram_size;
        size_t n_ranges;
        vmsig_gpa_range ranges[];
} vmsig_memctx;

/* Producer side, kept by a memctx adapter. */
typedef struct vmsig_memctx_source {
        int ram_fd; /* read-only, owned */
        uint64_t ram_size;
        vmsig_gpa_range *ranges;
        size_t n_ranges;
        uint64_t epoch;
        vmsig_memctx_root root; /* dtb 0: none */
        bool invalidated; /* the current epoch was published as ended */
} vmsig_memctx_source;

/* Takes ownership of ram_fd (closed by _done, also on failure). */
int vmsig_memctx_source_init(vmsig_memctx_source *s, int ram_fd, uint64_t ram_size, const vmsig_gpa_range *ranges,
                             size_t n_ranges);
void vmsig_memctx_source_done(vmsig_memctx_source *s);
/* Publish the current epoch. */
int vmsig_memctx_source_publish(vmsig_memctx_source *s, vmsig_endpoint *ep);
/* Publish the end of the current epoch (if it had a root: an epoch
 * without one was never usable for virtual addresses), then the next one
 * with no DTB. */
int vmsig_memctx_source_new_epoch(vmsig_memctx_source *s, vmsig_endpoint *ep);
/* Publish the end of the current epoch and no next one (the RAM cannot be
 * trusted); the next new_epoch or set_root starts one. */
int vmsig_memctx_source_invalidate(vmsig_memctx_source *s, vmsig_endpoint *ep);
/* The bootstrap found the address-space root: end the current epoch (as
 * new_epoch does) and publish the next one with it. */
int vmsig_memctx_source_set_root(vmsig_memctx_source *s, vmsig_endpoint *ep, const vmsig_memctx_root *root);

/* The retained datum of an endpoint, or NULL. */
const vmsig_memctx *vmsig_memctx_get(vmsig_core *c, vmsig_id endpoint);
/* Whether the RAM file behind fd still holds ram_size bytes. A file
 * truncated under the guest reads short, a write past its end would grow
 * it back (hiding the damage), and a mapping of it faults with SIGBUS. */
bool vmsig_memctx_ram_intact(int fd, uint64_t ram_size);
