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

#include "vmsig-endpoint.h"

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
        uint32_t method; /* how the DTB was found: a vmsig_detect_method; 0 unknown */
        int ram_fd;
        uint64_t ram_size;
        size_t n_ranges;
        vmsig_gpa_range ranges[];
} vmsig_memctx;

/* Producer side, kept by a memctx sensor adapter. */
typedef struct vmsig_memctx_source {
        int ram_fd; /* read-only, owned */
        uint64_t ram_size;
        vmsig_gpa_range *ranges;
        size_t n_ranges;
        uint64_t epoch;
        uint64_t dtb;
        uint64_t kernel_hint;
        uint32_t method;
        bool invalidated; /* the current epoch was published as ended */
} vmsig_memctx_source;

/* Takes ownership of ram_fd (closed by _done, also on failure). */
int vmsig_memctx_source_init(vmsig_memctx_source *s, int ram_fd, uint64_t ram_size, const vmsig_gpa_range *ranges,
                             size_t n_ranges);
void vmsig_memctx_source_done(vmsig_memctx_source *s);
/* Publish the current epoch. */
int vmsig_memctx_source_publish(vmsig_memctx_source *s, vmsig_endpoint *ep);
/* Publish the end of the current epoch, then the next one with no DTB. */
int vmsig_memctx_source_new_epoch(vmsig_memctx_source *s, vmsig_endpoint *ep);
/* Publish the end of the current epoch and no next one (the RAM cannot be
 * trusted); the next new_epoch or set_root starts one. */
int vmsig_memctx_source_invalidate(vmsig_memctx_source *s, vmsig_endpoint *ep);
/* The bootstrap found the address-space root: end the current epoch and
 * publish the next one with it. */
int vmsig_memctx_source_set_root(vmsig_memctx_source *s, vmsig_endpoint *ep, uint64_t dtb, uint64_t kernel_hint,
                                 uint32_t method);

/* The retained datum of an endpoint, or NULL. */
const vmsig_memctx *vmsig_memctx_get(vmsig_core *c, vmsig_id endpoint);
/* Whether the RAM file behind fd still holds ram_size bytes. A file
 * truncated under the guest reads short, a write past its end would grow
 * it back (hiding the damage), and a mapping of it faults with SIGBUS. */
bool vmsig_memctx_ram_intact(int fd, uint64_t ram_size);
