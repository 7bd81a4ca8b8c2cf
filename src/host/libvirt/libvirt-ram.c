/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fd-util.h"
#include "libvirt-ram.h"
#include "macro.h"

#define UUID_STRING_LEN 36
#define MEMFD_NAME "/memfd:memory-backend-memfd (deleted)"
#define DELETED_SUFFIX " (deleted)"
#define MAIN_BACKEND "pc.ram"

/* Debian 12's glibc has no wrappers for these. */
static int sys_pidfd_open(pid_t pid) {
        return (int) syscall(SYS_pidfd_open, pid, 0);
}

static int sys_pidfd_send_signal(int pidfd, int sig) {
        return (int) syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* Whether the pidfd's process is still there. Signal 0 is only a probe:
 * EPERM (QEMU is another user's and vmsigd has no CAP_KILL, which it
 * does not need) says it exists, only ESRCH that it is gone. */
static bool pidfd_alive(int pidfd) {
        return sys_pidfd_send_signal(pidfd, 0) >= 0 || errno == EPERM;
}

static _printf_(4, 5) int fail(int error, char *msg, size_t size, const char *format, ...) {
        va_list ap;

        assert(error > 0);
        if (msg && size > 0) {
                va_start(ap, format);
                vsnprintf(msg, size, format, ap);
                va_end(ap);
        }
        return -error;
}

/* The maps parser: fields of a kernel-written line, read as hostile. */

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        c = (char) tolower((unsigned char) c);
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* 1 to 16 hex digits at *p, up to one that is not. */
static bool take_hex(const char **p, const char *end, uint64_t *ret) {
        uint64_t v = 0;
        int n = 0, d;

        for (; *p < end && (d = hex_digit(**p)) >= 0; (*p)++, n++) {
                if (n == 16)
                        return false;
                v = v << 4 | (uint64_t) d;
        }
        *ret = v;
        return n > 0;
}

static bool take_dec(const char **p, const char *end, uint64_t *ret) {
        uint64_t v = 0;
        int n = 0;

        for (; *p < end && **p >= '0' && **p <= '9'; (*p)++, n++) {
                if (n == 20 || v > (UINT64_MAX - 9) / 10)
                        return false;
                v = v * 10 + (uint64_t) (**p - '0');
        }
        *ret = v;
        return n > 0;
}

static bool take_char(const char **p, const char *end, char c) {
        if (*p >= end || **p != c)
                return false;
        (*p)++;
        return true;
}

/* "rw-s": read, write, exec, then shared or private. */
static bool take_perms(const char **p, const char *end, bool *ret_writable, bool *ret_shared) {
        const char *s = *p;

        if (end - s < 4 || !strchr("r-", s[0]) || !strchr("w-", s[1]) || !strchr("x-", s[2]) || !strchr("sp", s[3]) ||
            s[0] == '\0' || s[1] == '\0' || s[2] == '\0' || s[3] == '\0')
                return false;
        *ret_writable = s[1] == 'w';
        *ret_shared = s[3] == 's';
        *p += 4;
        return true;
}

int libvirt_ram_parse_maps_line(const char *line, size_t len, libvirt_ram_vma *ret) {
        const char *p = line, *end = line + len;
        uint64_t start, stop, offset, major, minor, ino;
        bool writable, shared;

        assert(line || len == 0);
        assert(ret);
        if (memchr(line, '\0', len) || len >= sizeof ret->name)
                return -EBADMSG;
        if (!take_hex(&p, end, &start) || !take_char(&p, end, '-') || !take_hex(&p, end, &stop) ||
            !take_char(&p, end, ' ') || !take_perms(&p, end, &writable, &shared) || !take_char(&p, end, ' ') ||
            !take_hex(&p, end, &offset) || !take_char(&p, end, ' ') || !take_hex(&p, end, &major) ||
            !take_char(&p, end, ':') || !take_hex(&p, end, &minor) || !take_char(&p, end, ' ') ||
            !take_dec(&p, end, &ino))
                return -EBADMSG;
        if (stop <= start || major > 0xfff || minor > 0xfffff)
                return -EBADMSG;
        /* Padding, then the name to the end of the line, if any. */
        if (p < end && *p != ' ')
                return -EBADMSG;
        while (p < end && *p == ' ')
                p++;
        *ret = (libvirt_ram_vma) {
                .start = start,
                .end = stop,
                .offset = offset,
                .dev = makedev((unsigned) major, (unsigned) minor),
                .ino = ino,
                .shared = shared,
                .writable = writable,
        };
        memcpy(ret->name, p, (size_t) (end - p));
        ret->name[end - p] = '\0';
        return 0;
}

/* Which shared mappings may be a memory backend: regular files, which is
 * all that has a path outside /dev (but shared memory and hugetlbfs), and
 * not shared anonymous memory ("/dev/zero (deleted)") or SysV segments. */
static bool is_backend_candidate(const libvirt_ram_vma *v) {
        if (!v->shared || !v->writable || v->ino == 0 || v->name[0] != '/')
                return false;
        if (strncmp(v->name, "/SYSV", 5) == 0)
                return false;
        if (strncmp(v->name, "/dev/", 5) == 0)
                return strncmp(v->name, "/dev/shm/", 9) == 0 || strncmp(v->name, "/dev/hugepages", 14) == 0;
        return true;
}

/* libvirt's main RAM backend: a memfd (every memfd backend has this name),
 * or the file named after the backend id "pc.ram". */
static bool is_main_backend(const char *name) {
        size_t n = strlen(name), k = strlen(DELETED_SUFFIX), m = strlen(MAIN_BACKEND);

        if (strcmp(name, MEMFD_NAME) == 0)
                return true;
        if (n > k && strcmp(name + n - k, DELETED_SUFFIX) == 0)
                n -= k;
        return n > m && strncmp(name + n - m, MAIN_BACKEND, m) == 0 && name[n - m - 1] == '/';
}

void libvirt_ram_scan_init(libvirt_ram_scan *s) {
        *s = (libvirt_ram_scan) {};
}

static bool continues_last(const libvirt_ram_scan *s, const libvirt_ram_vma *v) {
        return s->last_ino != 0 && v->dev == s->last_dev && v->ino == s->last_ino && v->start == s->last_end &&
               v->offset == s->last_offset_end;
}

int libvirt_ram_scan_feed(libvirt_ram_scan *s, const char *line, size_t len) {
        _cleanup_free_ libvirt_ram_vma *v = malloc(sizeof *v);
        int r;

        if (!v)
                return -ENOMEM;
        if (++s->n_lines > LIBVIRT_RAM_MAPS_MAX)
                return -E2BIG;
        r = libvirt_ram_parse_maps_line(line, len, v);
        if (r < 0)
                return r;
        if (!is_backend_candidate(v)) {
                s->last_ino = 0;
                return 0;
        }
        /* The offset is at most 2^64 - 1: end - start fits, the sum may not. */
        uint64_t offset_end = v->offset + (v->end - v->start);
        if (offset_end < v->offset)
                return -EBADMSG;
        if (continues_last(s, v)) {
                if (s->last)
                        s->last->end = v->end;
        } else if (v->offset != 0) {
                /* A window into a file, not a backend QEMU maps whole. */
                s->last_ino = 0;
                return 0;
        } else {
                bool main = is_main_backend(v->name);
                unsigned *n = main ? &s->n_main : &s->n_other;
                libvirt_ram_vma *slot = main ? &s->main : &s->other;

                s->last = NULL;
                if ((*n)++ == 0) {
                        *slot = *v;
                        s->last = slot;
                }
        }
        s->last_dev = v->dev;
        s->last_ino = v->ino;
        s->last_end = v->end;
        s->last_offset_end = offset_end;
        return 0;
}

int libvirt_ram_scan_result(const libvirt_ram_scan *s, const libvirt_ram_vma **ret) {
        if (s->n_main == 1) {
                *ret = &s->main;
                return 0;
        }
        if (s->n_main > 1 || s->n_other > 0)
                return -ENOTUNIQ;
        return -ENOENT;
}

bool libvirt_ram_cmdline_has_uuid(const char *cmdline, size_t len, const char *uuid) {
        const char *end = cmdline + len;
        size_t k = strlen(uuid);

        assert(cmdline || len == 0);
        /* Each argument ends in a NUL; a last one without is cut short. */
        for (const char *p = cmdline; p < end;) {
                const char *nul = memchr(p, '\0', (size_t) (end - p));

                if (!nul)
                        break;
                if (strcmp(p, "-uuid") == 0 && nul + 1 < end) {
                        const char *arg = nul + 1, *arg_end = memchr(arg, '\0', (size_t) (end - arg));

                        if (arg_end && (size_t) (arg_end - arg) == k && strncasecmp(arg, uuid, k) == 0)
                                return true;
                }
                p = nul + 1;
        }
        return false;
}

static bool uuid_is_valid(const char *uuid) {
        if (strlen(uuid) != UUID_STRING_LEN)
                return false;
        for (size_t i = 0; i < UUID_STRING_LEN; i++)
                if (i == 8 || i == 13 || i == 18 || i == 23 ? uuid[i] != '-' : hex_digit(uuid[i]) < 0)
                        return false;
        return true;
}

/* Reads at most size bytes of /proc/PID/NAME into buf; the length, or a
 * negative errno. */
static ssize_t read_proc(int proc_pid_fd, const char *name, char *buf, size_t size) {
        _cleanup_close_ int fd = openat(proc_pid_fd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        size_t n = 0;

        if (fd < 0)
                return -errno;
        while (n < size) {
                ssize_t k = read(fd, buf + n, size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        return (ssize_t) n;
}

/* Whether /proc/PID is a process of uid (any for -1) whose command line
 * claims uuid. buf holds LIBVIRT_RAM_CMDLINE_MAX bytes. */
static bool claims_uuid(int proc_pid_fd, const char *uuid, uid_t uid, char *buf) {
        struct stat st;
        ssize_t n;

        if (uid != (uid_t) -1 && (fstat(proc_pid_fd, &st) < 0 || st.st_uid != uid))
                return false;
        n = read_proc(proc_pid_fd, "cmdline", buf, LIBVIRT_RAM_CMDLINE_MAX);
        return n > 0 && libvirt_ram_cmdline_has_uuid(buf, (size_t) n, uuid);
}

static bool is_pid_name(const char *s, pid_t *ret) {
        uint64_t v;
        const char *p = s;

        if (!take_dec(&p, s + strlen(s), &v) || *p != '\0' || v == 0 || v > INT32_MAX)
                return false;
        *ret = (pid_t) v;
        return true;
}

/* Every process that claims uuid: the first in *ret, their number. */
static int scan_proc(const char *uuid, uid_t uid, pid_t *ret) {
        _cleanup_free_ char *buf = malloc(LIBVIRT_RAM_CMDLINE_MAX);
        DIR *proc;
        int n = 0;

        if (!buf)
                return -ENOMEM;
        proc = opendir("/proc");
        if (!proc)
                return -errno;
        for (struct dirent *de; (de = readdir(proc));) {
                pid_t pid;
                if (!is_pid_name(de->d_name, &pid) || pid == getpid())
                        continue;
                _cleanup_close_ int fd = openat(dirfd(proc), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd >= 0 && claims_uuid(fd, uuid, uid, buf) && n++ == 0)
                        *ret = pid;
        }
        closedir(proc);
        return n;
}

/* Is the process of pidfd (pid) the one that claims uuid? Read after the
 * pidfd was opened: a reused pid is another process, whose command line
 * says something else. */
static bool pidfd_claims_uuid(pid_t pid, const char *uuid, uid_t uid) {
        _cleanup_free_ char *buf = malloc(LIBVIRT_RAM_CMDLINE_MAX);
        char path[32];

        snprintf(path, sizeof path, "/proc/%d", (int) pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return buf && fd >= 0 && claims_uuid(fd, uuid, uid, buf);
}

int libvirt_ram_find_qemu(const char *uuid, uid_t uid, pid_t *ret_pid, int *ret_pidfd, char *msg, size_t size) {
        _cleanup_close_ int pidfd = -1;
        pid_t pid = 0;
        int n;

        assert(uuid && ret_pid && ret_pidfd);
        if (!uuid_is_valid(uuid))
                return fail(EINVAL, msg, size, "'%s' is not a domain UUID.", uuid);
        n = scan_proc(uuid, uid, &pid);
        if (n < 0)
                return fail(-n, msg, size, "Cannot read the processes of /proc: %s", strerror(-n));
        if (n == 0)
                return fail(ESRCH, msg, size, "No QEMU process runs domain %s (none has -uuid %s).", uuid, uuid);
        if (n > 1)
                return fail(ENOTUNIQ, msg, size,
                            "%d processes claim to run domain %s (-uuid %s); none is taken for its QEMU.", n, uuid,
                            uuid);
        pidfd = sys_pidfd_open(pid);
        if (pidfd < 0 || !pidfd_claims_uuid(pid, uuid, uid))
                return fail(ESRCH, msg, size, "The QEMU process %d of domain %s exited.", (int) pid, uuid);
        *ret_pid = pid;
        *ret_pidfd = TAKE_FD(pidfd);
        return 0;
}

/* Feeds every line of maps to the scan: at most LIBVIRT_RAM_LINE_MAX
 * bytes a line, read in blocks. */
static int scan_maps(int maps_fd, libvirt_ram_scan *s) {
        _cleanup_free_ char *buf = malloc(LIBVIRT_RAM_LINE_MAX + 1);
        size_t have = 0;
        int r;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(maps_fd, buf + have, LIBVIRT_RAM_LINE_MAX + 1 - have);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                have += (size_t) k;
                char *p = buf, *nl;
                while ((nl = memchr(p, '\n', have - (size_t) (p - buf)))) {
                        r = libvirt_ram_scan_feed(s, p, (size_t) (nl - p));
                        if (r < 0)
                                return r;
                        p = nl + 1;
                }
                have -= (size_t) (p - buf);
                memmove(buf, p, have);
                if (k == 0)
                        return have == 0 ? 0 : libvirt_ram_scan_feed(s, buf, have);
                if (have > LIBVIRT_RAM_LINE_MAX)
                        return -EBADMSG; /* a line longer than any the kernel writes */
        }
}

static int find_mapping(int proc_fd, pid_t pid, libvirt_ram_vma *ret, char *msg, size_t size) {
        _cleanup_free_ libvirt_ram_scan *s = malloc(sizeof *s);
        _cleanup_close_ int maps = openat(proc_fd, "maps", O_RDONLY | O_CLOEXEC | O_NOCTTY);
        const libvirt_ram_vma *v;
        int r;

        if (!s)
                return -ENOMEM;
        if (maps < 0)
                return fail(errno, msg, size, "Cannot open the memory map of QEMU process %d (it needs ptrace read "
                            "access, CAP_SYS_PTRACE, which vmsigd.service grants only with the drop-in "
                            LIBVIRT_RAM_DROP_IN "): %s", (int) pid, strerror(errno));
        libvirt_ram_scan_init(s);
        r = scan_maps(maps, s);
        if (r < 0)
                return fail(-r, msg, size, "Cannot read the memory map of QEMU process %d: %s", (int) pid,
                            strerror(-r));
        r = libvirt_ram_scan_result(s, &v);
        if (r == -ENOENT)
                return fail(ENOENT, msg, size, "QEMU process %d has no shared guest RAM: the domain needs %s.",
                            (int) pid, LIBVIRT_RAM_SHARED_XML);
        if (r < 0)
                return fail(ENOTUNIQ, msg, size, "The guest RAM of QEMU process %d is spread over %u backends (NUMA "
                            "cells, memory hotplug, shared-memory devices; first: %s); only one is supported.",
                            (int) pid, s->n_main + s->n_other, s->n_main > 0 ? s->main.name : s->other.name);
        *ret = *v;
        return 0;
}

/* QEMU's own fd of the mapping's inode: found among /proc/PID/fd by stat
 * (the links are followed without opening anything), opened through its
 * link in QEMU's access mode (the link's own mode says it: S_IWUSR for a
 * writable fd) and checked again, since the number may have been reused
 * in between. Opening the link takes ptrace read access, not the attach
 * access of pidfd_getfd(2): no @debug system call, and Yama's
 * ptrace_scope does not apply. The caller checks that the process is
 * still the pidfd's afterwards. */
static int copy_qemu_fd(int proc_fd, const libvirt_ram_vma *v) {
        _cleanup_close_ int dir_fd = openat(proc_fd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *dir;
        int r = -EBADF;

        if (dir_fd < 0)
                return -errno;
        dir = fdopendir(dir_fd);
        if (!dir)
                return -errno;
        dir_fd = -1;
        for (struct dirent *de; (de = readdir(dir));) {
                struct stat st, link;
                pid_t n;

                if (!is_pid_name(de->d_name, &n))
                        continue;
                if (fstatat(dirfd(dir), de->d_name, &st, 0) < 0) {
                        /* Following the link takes ptrace read access (some
                         * kernels let maps be read without it): without it
                         * the caller must hear that, not "no descriptor". */
                        if (errno == EACCES || errno == EPERM)
                                r = -errno;
                        continue;
                }
                if (!S_ISREG(st.st_mode) || st.st_dev != v->dev || (uint64_t) st.st_ino != v->ino ||
                    fstatat(dirfd(dir), de->d_name, &link, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                int fd = openat(dirfd(dir), de->d_name,
                                ((link.st_mode & S_IWUSR) ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        r = -errno;
                        break;
                }
                if (fstat(fd, &st) == 0 && st.st_dev == v->dev && (uint64_t) st.st_ino == v->ino) {
                        r = fd;
                        break;
                }
                close(fd);
        }
        closedir(dir);
        return r;
}

/* No write for group and others (see the header), checked after. */
static int narrow_mode(int fd, mode_t *ret) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if ((st.st_mode & 0033) != 0 && fchmod(fd, st.st_mode & 07777 & ~(mode_t) 0033) < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if ((st.st_mode & 0022) != 0)
                return -EPERM;
        *ret = st.st_mode & 07777;
        return 0;
}

static int open_fds(int proc_fd, pid_t pid, libvirt_ram *r, char *msg, size_t size) {
        struct stat st;
        int k;

        k = copy_qemu_fd(proc_fd, &(libvirt_ram_vma) { .dev = r->dev, .ino = r->ino });
        if (k == -EBADF)
                return fail(EBADF, msg, size, "No descriptor of QEMU process %d holds its guest RAM %s.", (int) pid,
                            r->name);
        if (k < 0)
                return fail(-k, msg, size, "Cannot open QEMU process %d's descriptor of its guest RAM (it needs "
                            "CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH for its fd directory, CAP_DAC_OVERRIDE for a "
                            "file of another user; under vmsigd.service, the drop-in " LIBVIRT_RAM_DROP_IN "): %s",
                            (int) pid, strerror(-k));
        r->rw_fd = k;
        if (fstat(r->rw_fd, &st) < 0 || (uint64_t) st.st_size < r->size)
                return fail(EBADF, msg, size, "The guest RAM %s of QEMU process %d is shorter than its mapping.",
                            r->name, (int) pid);
        k = narrow_mode(r->rw_fd, &r->mode);
        if (k < 0)
                return fail(-k, msg, size, "Cannot take write access for others off the guest RAM %s of QEMU process "
                            "%d (it needs CAP_FOWNER, which vmsigd.service grants only with the drop-in "
                            LIBVIRT_RAM_DROP_IN "): %s; it is not handed out.", r->name, (int) pid, strerror(-k));
        r->ro_fd = fd_reopen(r->rw_fd, O_RDONLY);
        if (r->ro_fd < 0)
                return fail(-r->ro_fd, msg, size, "Cannot reopen the guest RAM %s of QEMU process %d read-only: %s",
                            r->name, (int) pid, strerror(-r->ro_fd));
        /* Only QEMU's opening mode makes the copy writable. */
        k = fcntl(r->rw_fd, F_GETFL);
        if (k < 0 || (k & O_ACCMODE) != O_RDWR)
                r->rw_fd = safe_close(r->rw_fd);
        return 0;
}

int libvirt_ram_open(int pidfd, pid_t pid, libvirt_ram *ret, char *msg, size_t size) {
        _cleanup_free_ libvirt_ram_vma *v = malloc(sizeof *v);
        _cleanup_free_ libvirt_ram *r = malloc(sizeof *r);
        _cleanup_close_ int proc_fd = -1;
        char path[32];
        int k;

        assert(pidfd >= 0 && pid > 0 && ret);
        if (!v || !r)
                return -ENOMEM;
        snprintf(path, sizeof path, "/proc/%d", (int) pid);
        proc_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        /* What is read through /proc/PID is the pidfd's process as long
         * as that is alive afterwards: its pid cannot be reused before. */
        if (proc_fd < 0 || !pidfd_alive(pidfd))
                return fail(ESRCH, msg, size, "QEMU process %d exited.", (int) pid);
        k = find_mapping(proc_fd, pid, v, msg, size);
        /* An exiting process shows an empty map: say what happened. */
        if (k < 0 && !pidfd_alive(pidfd))
                return fail(ESRCH, msg, size, "QEMU process %d exited.", (int) pid);
        if (k < 0)
                return k;
        *r = (libvirt_ram) {
                .pid = pid,
                .ro_fd = -1,
                .rw_fd = -1,
                .size = v->end - v->start,
                .memfd = strcmp(v->name, MEMFD_NAME) == 0,
                .dev = v->dev,
                .ino = v->ino,
        };
        memcpy(r->name, v->name, sizeof r->name);
        k = open_fds(proc_fd, pid, r, msg, size);
        if (k >= 0 && !pidfd_alive(pidfd))
                k = fail(ESRCH, msg, size, "QEMU process %d exited.", (int) pid);
        if (k < 0) {
                libvirt_ram_done(r);
                return k;
        }
        *ret = *r;
        return 0;
}

void libvirt_ram_done(libvirt_ram *r) {
        r->ro_fd = safe_close(r->ro_fd);
        r->rw_fd = safe_close(r->rw_fd);
}
