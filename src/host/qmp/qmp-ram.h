/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The guest RAM of a QEMU VM for its memctx adapter (see qmp.h): QEMU's
 * memory-backend-file, opened read-only for the memctx datum and writable
 * for write_ram, watched for truncation, with its epochs and its
 * bootstrap. Which QEMU's guest it holds is told apart by the pid of the
 * QMP peer: a new QEMU is a new guest. The owner (qmp.c) says when QEMU
 * connects, answers where the RAM sits, or goes away.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "bootstrap.h"
#include "memctx.h"
#include "vmsig-endpoint.h"

typedef struct qmp_ram {
        const char *name; /* the endpoint's, for messages; borrowed */
        char *path;       /* QEMU's mem-path */
        vmsig_gpa_range *ranges;
        size_t n_ranges;
        /* The map came with the configuration (<gpa-map>): it wins over
         * what QEMU says. Otherwise QEMU is asked on every connection,
         * and the memctx waits for its answer. */
        bool ranges_configured;
        vmsig_bootstrap_config bootstrap_config;

        bool attached;
        vmsig_endpoint *endpoint; /* while attached; not a reference */
        vmsig_memctx_source memctx; /* ram_fd -1 until the RAM file was opened */
        int rw_fd;                  /* private, for write_ram only */
        dev_t dev;
        ino_t ino;
        pid_t pid;    /* the QEMU whose guest the RAM holds: 0 not known yet, -1 gone */
        int watch_fd; /* inotify on the RAM file, which may shrink under us */
        vmsig_cookie watch_cookie;
        bool is_short; /* it did: nothing of the guest's memory is read or written */
        vmsig_bootstrap *bootstrap;
        vmsig_subscriber *lifecycle_sub;
} qmp_ram;

/* Nothing open; name borrowed. */
void qmp_ram_init(qmp_ram *ram, const char *name);
/* Frees what init and the owner put in (path, ranges). */
void qmp_ram_done(qmp_ram *ram);
/* Takes ranges (NULL, 0: flat) as the map QEMU told. */
void qmp_ram_set_ranges(qmp_ram *ram, vmsig_gpa_range *ranges, size_t n);

/* The memctx adapter's attach and detach. */
int qmp_ram_attach(qmp_ram *ram, vmsig_endpoint *ep);
void qmp_ram_detach(qmp_ram *ram);

/* On attach (pid 0, not connected) and on every connection: the RAM of the
 * QEMU of pid. A new QEMU process is a new guest: new fds (it may have made
 * a new file), a new epoch, and the bootstrap starts over. */
void qmp_ram_sync(qmp_ram *ram, pid_t pid, bool connected);
/* QEMU is gone: its epoch ends, and there is nothing to look for any more. */
void qmp_ram_orphan(qmp_ram *ram);

/* The memctx adapter's write_ram and verify_root. */
int qmp_ram_write(qmp_ram *ram, uint64_t offset, const void *buf, size_t len);
int qmp_ram_verify_root(qmp_ram *ram);
