/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A libFuzzer harness as a plain program, for `make check` (any compiler,
 * valgrind): it runs the files (or the files in the directories) it is
 * given, by default $VMSIG_SRCDIR/tests/data/FUZZ_NAME, through
 * LLVMFuzzerTestOneInput() and prints TAP. A broken check aborts, which
 * fails the test with the file named in the log just before. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "macro.h"

#ifndef FUZZ_NAME
#error "FUZZ_NAME must name the harness, e.g. \"fuzz-config\""
#endif

static int read_file(const char *path, uint8_t **ret, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        uint8_t *buf;

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        if (read(fd, buf, (size_t) st.st_size) != st.st_size) {
                free(buf);
                return -EIO;
        }
        *ret = buf;
        *ret_len = (size_t) st.st_size;
        return 0;
}

static int run_file(const char *path, unsigned *n) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r;

        r = read_file(path, &buf, &len);
        if (r < 0) {
                printf("not ok %u - %s: %s\n", ++*n, path, strerror(-r));
                return r;
        }
        /* Named before it runs: an abort leaves the culprit in the log. */
        printf("# %s\n", path);
        fflush(stdout);
        LLVMFuzzerTestOneInput(buf, len);
        printf("ok %u - %s\n", ++*n, path);
        return 0;
}

static int run_dir(const char *path, unsigned *n) {
        struct dirent **entries = NULL;
        int k, r = 0;

        k = scandir(path, &entries, NULL, alphasort);
        if (k < 0)
                return run_file(path, n);
        for (int i = 0; i < k; i++) {
                char file[4096];

                if (entries[i]->d_name[0] != '.') {
                        snprintf(file, sizeof file, "%s/%s", path, entries[i]->d_name);
                        r |= run_file(file, n);
                }
                free(entries[i]);
        }
        free(entries);
        return r;
}

int main(int argc, char **argv) {
        const char *srcdir = getenv("VMSIG_SRCDIR");
        char dflt[4096];
        unsigned n = 0, given = 0;
        int r = 0;

        /* run-test.sh passes --tap; TAP is all this prints anyway. */
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--tap") != 0) {
                        r |= run_dir(argv[i], &n);
                        given++;
                }
        if (given == 0) {
                snprintf(dflt, sizeof dflt, "%s/tests/data/%s", srcdir ?: ".", FUZZ_NAME);
                r |= run_dir(dflt, &n);
        }
        if (n == 0) {
                printf("not ok %u - no inputs\n", ++n);
                r = -1;
        }
        printf("1..%u\n", n);
        fuzz_teardown();
        return r < 0 ? 1 : 0;
}
