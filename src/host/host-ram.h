/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The guest RAM of a QEMU VM for a backend's memctx adapter, whichever
 * backend speaks to that QEMU (QMP, libvirt): a read-only fd of it for the
 * memctx datum and a private writable one for write_ram, a watch for
 * truncation, its epochs and its bootstrap. The RAM comes one of two ways:
 *
 *   a path     QEMU's memory-backend-file mem-path, opened here (the QMP
 *              backend: host_ram_sync());
 *   ready fds  opened by the backend, a memfd as well as a file (the
 *              libvirt backend, from the QEMU process: libvirt-ram.h;
 *              host_ram_sync_fds()).
 *
 * Which QEMU's guest it holds is told apart by QEMU's pid: a new QEMU is a
 * new guest. The owner says when QEMU is there, where the RAM sits in
 * guest-physical space (the ranges, qmp-ram-map.h), or that it went away.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "bootstrap.h"
#include "memctx.h"
#include "vmsig-endpoint.h"

typedef struct inode_watch inode_watch;

typedef struct host_ram {
        const char *name; /* the endpoint's, for messages; borrowed */
        char *path;       /* QEMU's mem-path; NULL: the owner hands in fds */
        vmsig_gpa_range *ranges;
        size_t n_ranges;
        /* The map came with the configuration (<gpa-map>): it wins over
         * what QEMU says. Otherwise QEMU is asked on every connection,
         * and the memctx waits for its answer. */
        bool ranges_configured;
        vmsig_bootstrap_config bootstrap_config;

        bool attached;
        vmsig_endpoint *endpoint; /* while attached; not a reference */
        vmsig_memctx_source memctx; /* ram_fd -1 until the RAM was opened */
        int rw_fd;                  /* private, for write_ram only */
        dev_t dev;
        ino_t ino;
        pid_t pid;    /* the QEMU whose guest the RAM holds: 0 not known yet, -1 gone */
        inode_watch *watch; /* on the RAM's inode, which may shrink under us */
        bool is_short; /* it did: nothing of the guest's memory is read or written */
        vmsig_bootstrap *bootstrap;
        vmsig_subscriber *lifecycle_sub;
} host_ram;

/* Nothing open; name borrowed. */
void host_ram_init(host_ram *ram, const char *name);
/* Frees what init and the owner put in (path, ranges). */
void host_ram_done(host_ram *ram);
/* Takes ranges (NULL, 0: flat) as the map QEMU told. */
void host_ram_set_ranges(host_ram *ram, vmsig_gpa_range *ranges, size_t n);

/* The memctx adapter's attach and detach. */
int host_ram_attach(host_ram *ram, vmsig_endpoint *ep);
void host_ram_detach(host_ram *ram);

/* On attach (pid 0, not connected) and on every connection: the RAM of the
 * QEMU of pid, at ram->path. A new QEMU process is a new guest: new fds (it
 * may have made a new file), a new epoch, and the bootstrap starts over. */
void host_ram_sync(host_ram *ram, pid_t pid, bool connected);
/* The same for a RAM the owner opened (no path): ro (O_RDONLY, safe to
 * hand out, see libvirt-ram.h) and rw (-1: writes fail with -EROFS), both
 * taken, whatever the outcome. The same QEMU with the same inode keeps
 * what it has and the fds are closed. 0, or a negative errno (-ENODEV
 * when not attached). */
int host_ram_sync_fds(host_ram *ram, pid_t pid, int ro, int rw);
/* QEMU is gone: its epoch ends, and there is nothing to look for any more. */
void host_ram_orphan(host_ram *ram);

/* The memctx adapter's write_ram and verify_root. */
int host_ram_write(host_ram *ram, uint64_t offset, const void *buf, size_t len);
int host_ram_verify_root(host_ram *ram);

/* The memctx adapter ops of an owner type whose guest RAM is its host_ram
 * member: write_ram and verify_root go to that member, the same for every
 * backend; attach, detach and free are the owner's. scope is static or
 * empty. */
#define DEFINE_HOST_RAM_MEMCTX_OPS(scope, ops, type, member, attach_fn, detach_fn, free_fn)       \
        static int ops##_write_ram(void *data, uint64_t offset, const void *buf, size_t len) { \
                return host_ram_write(&((type *) data)->member, offset, buf, len);             \
        }                                                                                     \
        static int ops##_verify_root(void *data) {                                            \
                return host_ram_verify_root(&((type *) data)->member);                         \
        }                                                                                     \
        scope const vmsig_memctx_ops ops = {                                                  \
                .base = { .attach = attach_fn, .detach = detach_fn, .free = free_fn },        \
                .write_ram = ops##_write_ram,                                                 \
                .verify_root = ops##_verify_root,                                             \
        }
