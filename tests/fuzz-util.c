/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The scratch directory of a fuzz harness (see fuzz.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "fuzz.h"

static char scratch[256];

const char *fuzz_scratch_dir(void) {
        const char *tmp = getenv("TMPDIR");

        if (scratch[0])
                return scratch;
        snprintf(scratch, sizeof scratch, "%s/vmsig-fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(scratch)) {
                scratch[0] = '\0';
                return NULL;
        }
        /* libFuzzer never calls fuzz_teardown(), but it exits normally. */
        atexit(fuzz_scratch_done);
        return scratch;
}

int fuzz_scratch_write(const char *name, const void *data, size_t size, char *path, size_t path_size) {
        const char *dir = fuzz_scratch_dir();
        const uint8_t *p = data;
        int fd;

        if (!dir || (size_t) snprintf(path, path_size, "%s/%s", dir, name) >= path_size)
                return -ENAMETOOLONG;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        close(fd);
                        return n < 0 ? -errno : -EIO;
                }
                p += n;
                size -= (size_t) n;
        }
        return close(fd) < 0 ? -errno : 0;
}

void fuzz_scratch_done(void) {
        DIR *d;

        if (!scratch[0])
                return;
        d = opendir(scratch);
        for (struct dirent *e; d && (e = readdir(d));)
                if (e->d_name[0] != '.')
                        (void) unlinkat(dirfd(d), e->d_name, 0);
        if (d)
                closedir(d);
        (void) rmdir(scratch);
        scratch[0] = '\0';
}

int fuzz_count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        if (!d)
                abort();
        for (struct dirent *e; (e = readdir(d));)
                n += e->d_name[0] != '.';
        closedir(d);
        return n;
}
