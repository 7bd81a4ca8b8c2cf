/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reopens the file behind fd through /proc/self/fd: a new open file
 * description of the same inode, with its own offset and status flags,
 * where a dup() would share them with every other copy. flags are open(2)'s
 * (O_CLOEXEC and O_NOCTTY are added). Only a regular file is reopened
 * (-EBADFD otherwise): opening a FIFO could block the loop. */
int fd_reopen(int fd, int flags);
