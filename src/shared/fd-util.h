/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

/* Reopens the file behind fd through /proc/self/fd: a new open file
 * description of the same inode, with its own offset and status flags,
 * where a dup() would share them with every other copy. flags are open(2)'s
 * (O_CLOEXEC and O_NOCTTY are added). Only a regular file is reopened
 * (-EBADFD otherwise): opening a FIFO could block the loop. */
int fd_reopen(int fd, int flags);

/* Writes all n bytes, through short writes and EINTR. Inline, so that
 * vmsigctl and libvmsig-vgpu, which link nothing of ours, can use it. */
static inline int loop_write(int fd, const void *buf, size_t n) {
        const uint8_t *p = buf;

        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}
