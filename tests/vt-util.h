/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers for every test program and harness. */

/* Registering a program's tests from one list of their functions rather
 * than a line each. A test is named after its function under a prefix:
 * "test_" cut, '_' made '-', and the prefix's last part cut too where the
 * name starts with it. Under "/lease/", test_kill_9_ends_lease is
 * "/lease/kill-9-ends-lease"; under "/core/fd/", test_fd_demux is
 * "/core/fd/demux" and test_sealed "/core/fd/sealed". The list is the
 * macro's arguments, whose text gives the names. */

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <linux/capability.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* The n functions named in list ("test_a, test_b"), as paths under prefix
 * (g_strfreev() them). */
static inline char **vt_test_paths(const char *prefix, const char *list, size_t n) {
        g_auto(GStrv) names = g_strsplit(list, ",", -1);
        g_autofree char *group = g_path_get_basename(prefix);
        char **paths = g_new0(char *, n + 1);

        g_assert_cmpuint(g_strv_length(names), ==, n);
        for (size_t i = 0; i < n; i++) {
                char *name = g_strdelimit(g_strstrip(names[i]), "_", '-');
                size_t k = strlen(group);

                g_assert_true(g_str_has_prefix(name, "test-"));
                name += strlen("test-");
                if (strncmp(name, group, k) == 0 && name[k] == '-')
                        name += k + 1;
                paths[i] = g_strconcat(prefix, name, NULL);
        }
        return paths;
}

/* Registers test functions without data or fixture under prefix. */
#define VT_TESTS(prefix, ...)                                                                 \
        do {                                                                                  \
                void (*const _fns[])(void) = { __VA_ARGS__ };                                 \
                g_auto(GStrv) _paths = vt_test_paths(prefix, #__VA_ARGS__, G_N_ELEMENTS(_fns)); \
                for (size_t _i = 0; _i < G_N_ELEMENTS(_fns); _i++)                            \
                        g_test_add_func(_paths[_i], _fns[_i]);                                \
        } while (0)

/* Registers test functions on the program's Fixture, fixture_setup() and
 * fixture_teardown(), with data, under prefix. */
#define VT_FIXTURE_TESTS_WITH(prefix, data, ...)                                              \
        do {                                                                                  \
                void (*const _fns[])(Fixture *, gconstpointer) = { __VA_ARGS__ };             \
                g_auto(GStrv) _paths = vt_test_paths(prefix, #__VA_ARGS__, G_N_ELEMENTS(_fns)); \
                for (size_t _i = 0; _i < G_N_ELEMENTS(_fns); _i++)                            \
                        g_test_add(_paths[_i], Fixture, data, fixture_setup, _fns[_i], fixture_teardown); \
        } while (0)

/* The same without data. */
#define VT_FIXTURE_TESTS(prefix, ...) VT_FIXTURE_TESTS_WITH(prefix, NULL, __VA_ARGS__)

/* g_free() of each of the n pointers at p. */
static inline void vt_free_many(gpointer *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                g_free(p[i]);
}

/* g_free() of each argument, NULL or not. */
#define VT_FREE_MANY(...) vt_free_many((gpointer[]) { __VA_ARGS__ }, G_N_ELEMENTS(((gpointer[]) { __VA_ARGS__ })))

/* Sizes, for guest memory and the files that hold it. */
#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* A new temporary .conf file holding contents: its path (g_free() it;
 * the test unlinks it). */
static inline char *vt_write_temp(const char *contents) {
        g_autoptr(GError) error = NULL;
        char *path = NULL;
        int fd = g_file_open_tmp("vmsig-test-XXXXXX.conf", &path, &error);

        g_assert_no_error(error);
        close(fd);
        g_assert_true(g_file_set_contents(path, contents, -1, &error));
        return path;
}

/* A stream socket connected (or else bound) to the AF_UNIX address path. */
static inline int vt_unix_socket(const char *path, gboolean connected) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpuint(strlen(path), <, sizeof sa.sun_path);
        strcpy(sa.sun_path, path);
        if (connected)
                g_assert_cmpint(connect(fd, (struct sockaddr *) &sa, sizeof sa), ==, 0);
        else
                g_assert_cmpint(bind(fd, (struct sockaddr *) &sa, sizeof sa), ==, 0);
        return fd;
}

/* The guest-RAM fd a receiver gets is read-only and close-on-exec: a
 * write and a writable shared mapping through it fail. */
static inline void vt_assert_read_only_fd(int fd) {
        g_assert_cmpint(fcntl(fd, F_GETFL) & O_ACCMODE, ==, O_RDONLY);
        g_assert_cmpint(fcntl(fd, F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
        g_assert_cmpint(pwrite(fd, "x", 1, 0), ==, -1);
        g_assert_cmpint(errno, ==, EBADF);
        g_assert_true(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        g_assert_cmpint(errno, ==, EACCES);
}

/* Runs argv (a helper of the test program, or setpriv running one) in a
 * child that inherits fd under its own number, and dies with the test.
 * The exec also takes the helper out of valgrind, which does not follow
 * it: a forked copy of the test would report the test's memory as its own
 * leaks when it exits. */
static inline pid_t vt_spawn_with_fd(const char *const *argv, int fd) {
        pid_t pid = fork();

        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (fcntl(fd, F_SETFD, 0) < 0)
                        _exit(127);
                execv(argv[0], (char **) argv);
                _exit(127);
        }
        return pid;
}

/* The exit status of a child that must exit. */
static inline int vt_wait_exit(pid_t pid) {
        int status;

        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFEXITED(status));
        return WEXITSTATUS(status);
}

/* Root without any capability, for good, in this thread (a test's child):
 * mode bits then hold for it as for anyone, access(2) included, which
 * checks a root caller's permitted set rather than its effective one. */
static inline void vt_drop_capabilities(void) {
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {};

        g_assert_cmpint(syscall(SYS_capset, &header, none), ==, 0);
}
