/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux-initrd.h"

char *linux_initrd_find_kernel(void) {
        const char *env = getenv("VMSIG_TEST_KERNEL");
        char *best = NULL, *path = NULL;
        struct dirent *de;
        struct stat st;
        DIR *d;

        if (env && *env)
                return stat(env, &st) == 0 && S_ISREG(st.st_mode) ? strdup(env) : NULL;
        d = opendir(LINUX_INITRD_KERNEL_DIR);
        while (d && (de = readdir(d))) {
                size_t n = strlen(de->d_name), p = strlen(LINUX_INITRD_KERNEL_PREFIX),
                       s = strlen(LINUX_INITRD_KERNEL_SUFFIX);

                if (n <= p + s || strncmp(de->d_name, LINUX_INITRD_KERNEL_PREFIX, p) != 0 ||
                    strcmp(de->d_name + n - s, LINUX_INITRD_KERNEL_SUFFIX) != 0)
                        continue;
                /* The newest by version, not by spelling: -57 is newer than -9. */
                if (!best || strverscmp(de->d_name, best) > 0) {
                        free(best);
                        best = strdup(de->d_name);
                }
        }
        if (d)
                closedir(d);
        if (best && asprintf(&path, "%s/%s", LINUX_INITRD_KERNEL_DIR, best) < 0)
                path = NULL;
        free(best);
        return path;
}

static bool is_static_elf(const char *path) {
        Elf64_Ehdr eh;
        Elf64_Phdr ph;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        bool ok;

        if (fd < 0)
                return false;
        ok = pread(fd, &eh, sizeof eh, 0) == sizeof eh && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
             eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof ph;
        for (unsigned i = 0; ok && i < eh.e_phnum; i++)
                ok = pread(fd, &ph, sizeof ph, (off_t) (eh.e_phoff + (uint64_t) i * sizeof ph)) == sizeof ph &&
                     ph.p_type != PT_INTERP;
        close(fd);
        return ok;
}

char *linux_initrd_find_busybox(void) {
        const char *path = getenv("PATH");
        char candidate[4096];

        for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
                size_t n = strcspn(p, ":");

                snprintf(candidate, sizeof candidate, "%.*s/busybox", (int) n, p);
                if (n > 0 && is_static_elf(candidate))
                        return strdup(candidate);
                p += n + (p[n] == ':');
        }
        return NULL;
}

/* The tree in a temporary directory, packed to PATH.PID.tmp, renamed. */
static const char pack_script[] =
        "set -e; t=$(mktemp -d \"${TMPDIR:-/tmp}/vmsig-initrd-XXXXXX\"); trap 'rm -rf \"$t\" \"$4.$$.tmp\"' EXIT; "
        "mkdir \"$t/bin\" \"$t/proc\"; cp \"$1\" \"$t/bin/busybox\"; printf '%s' \"$2\" > \"$t/init\"; "
        "chmod 0755 \"$t/bin/busybox\" \"$t/init\"; "
        "(cd \"$t\" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -n \"-$3\") > \"$4.$$.tmp\"; "
        "mv -f \"$4.$$.tmp\" \"$4\"";

int linux_initrd_pack(const char *busybox, const char *init, int gzip_level, const char *path) {
        char level[16];
        int status;
        pid_t pid;

        snprintf(level, sizeof level, "%d", gzip_level);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                execl("/bin/sh", "sh", "-c", pack_script, "sh", busybox, init, level, path, (char *) NULL);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) != pid)
                return -errno;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "packing the initramfs %s failed\n", path);
                return -EIO;
        }
        return 0;
}
