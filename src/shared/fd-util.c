/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fd-util.h"

int fd_reopen(int fd, int flags) {
        struct stat st;
        char path[64];
        int r;

        assert(fd >= 0);
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        r = open(path, flags | O_CLOEXEC | O_NOCTTY);
        return r < 0 ? -errno : r;
}
