/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Watches on the inodes of files vmsigd holds open (a guest's RAM, which
 * may be truncated under QEMU), all through one inotify instance per core,
 * kept until the core is freed.
 *
 * Why one, and why kept: closing an inotify instance that had watches
 * waits for a kernel grace period (fsnotify's mark reaper, about 12 ms on
 * the development VM), and it would happen on the loop each time a QEMU
 * went or its RAM was opened again, stalling every caller (bench-load's
 * flood: 6 s in 25). Removing one watch from a live instance does not
 * wait. sd-event's shared instance would do for the first part, but it
 * closes its instance with the last watch, that is with the last VM.
 */

#include <stdint.h>

#include "vmsig-core.h"

typedef struct inode_watch inode_watch;

/* Called from the loop after the inode changed (mask), and also when the
 * kernel may have lost events (its queue overflowed): the callee looks at
 * the file again, whatever the change was. */
typedef void (*inode_watch_fn)(void *userdata);

/* Opens the core's instance now instead of at the first watch: a daemon
 * that will watch files has the same fds from its start on, which is what
 * fd-leak checks compare with. */
int inode_watches_prepare(vmsig_core *c);

/* Watches the inode of fd for mask (IN_MODIFY, ...; every watch of one
 * core uses the same mask: inotify keeps one per inode). The file may be
 * closed after: the watch is on the inode. */
int inode_watch_add(vmsig_core *c, int fd, uint32_t mask, inode_watch_fn fn, void *userdata, inode_watch **ret);
/* Safe from inside any inode_watch_fn, for any watch. */
inode_watch *inode_watch_free(inode_watch *w);
