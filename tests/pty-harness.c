/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pty-harness.h"

VtPty *vt_pty_spawn(const char *const *argv, const char *const *envp) {
        return vt_pty_spawn_as((uid_t) -1, argv, envp);
}

VtPty *vt_pty_spawn_as(uid_t uid, const char *const *argv, const char *const *envp) {
        VtPty *t = g_new0(VtPty, 1);
        pid_t parent = getpid();

        t->out = g_string_new(NULL);
        t->status = -1;
        t->pid = forkpty(&t->master, NULL, NULL, NULL);
        g_assert_cmpint(t->pid, >=, 0);
        if (t->pid == 0) {
                /* Dies with the test, as the harness's other children do. */
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(126);
                /* Its user's group is the user's uid here: the tests'
                 * users (nobody aside) are made that way. */
                if (uid != (uid_t) -1 && (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0))
                        _exit(126);
                execve(argv[0], (char *const *) argv, (char *const *) envp);
                _exit(127);
        }
        return t;
}

gboolean vt_pty_read(VtPty *t, int timeout_ms) {
        struct pollfd p = { .fd = t->master, .events = POLLIN };
        char buf[4096];
        ssize_t n;

        if (poll(&p, 1, timeout_ms) <= 0)
                return FALSE;
        n = read(t->master, buf, sizeof buf);
        if (n <= 0) /* EIO: every process of the terminal is gone */
                return FALSE;
        g_string_append_len(t->out, buf, n);
        return TRUE;
}

gboolean vt_pty_wait_for(VtPty *t, const char *needle, guint timeout_ms) {
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;

        while (!strstr(t->out->str, needle)) {
                if (g_get_monotonic_time() > deadline) {
                        g_test_message("No '%s' on the terminal in time; it shows:\n%s", needle, t->out->str);
                        return FALSE;
                }
                (void) vt_pty_read(t, 50);
        }
        return TRUE;
}

int vt_pty_wait(VtPty *t, guint timeout_ms) {
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;
        int wstatus;
        pid_t r;

        while ((r = waitpid(t->pid, &wstatus, WNOHANG)) == 0) {
                if (g_get_monotonic_time() > deadline) {
                        kill(t->pid, SIGKILL);
                        r = waitpid(t->pid, &wstatus, 0);
                        g_test_fail_printf("pid %d did not exit in time; the terminal shows:\n%s", (int) t->pid,
                                           t->out->str);
                        break;
                }
                (void) vt_pty_read(t, 50);
        }
        g_assert_cmpint(r, ==, t->pid);
        /* What is still in the pty's buffer. */
        while (vt_pty_read(t, 50))
                ;
        g_test_message("terminal:\n%s", t->out->str);
        t->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
        return t->status;
}

void vt_pty_free(VtPty *t) {
        if (!t)
                return;
        close(t->master);
        g_string_free(t->out, TRUE);
        g_free(t);
}
