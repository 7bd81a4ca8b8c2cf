/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl-pager.h"
#include "ctl-util.h"

static pid_t pager_pid;
static int saved_stdout = -1, saved_stderr = -1;

/* The pager the environment names, NULL for the default (less, more), or
 * "" for none. */
static const char *pager_from_env(void) {
        static const char *const vars[] = { "VMSIG_PAGER", "SYSTEMD_PAGER", "PAGER" };

        for (size_t i = 0; i < ELEMENTSOF(vars); i++) {
                const char *p = getenv(vars[i]);
                if (!p)
                        continue;
                p += strspn(p, " \t\n");
                if (strcmp(p, "cat") == 0 || strspn(p, " \t\n") == strlen(p))
                        return "";
                return p;
        }
        return NULL;
}

/* Without any pager: what we print goes through as it is. */
_Noreturn static void copy_through(void) {
        char buf[4096];
        ssize_t n;

        while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0)
                if (write(STDOUT_FILENO, buf, (size_t) n) != n)
                        break;
        _exit(EXIT_SUCCESS);
}

/* A pager named with shell syntax ("less -S | tee log", quotes, a
 * redirection) is run by the shell, as git does; plain words are run
 * directly, and where that fails the defaults are tried, as systemd does. */
static void exec_named(const char *pager) {
        char *copy, *words[32], *save = NULL;
        size_t n = 0;

        if (strpbrk(pager, "|&;<>()$`\\\"'*?[#~=%")) {
                execl("/bin/sh", "sh", "-c", pager, (char *) NULL);
                return;
        }
        copy = strdup(pager);
        if (!copy)
                return;
        for (char *w = strtok_r(copy, " \t\n", &save); w && n + 1 < ELEMENTSOF(words);
             w = strtok_r(NULL, " \t\n", &save))
                words[n++] = w;
        words[n] = NULL;
        execvp(words[0], words);
        fprintf(stderr, "Failed to run the pager '%s', trying less and more: %s\n", words[0], strerror(errno));
        free(copy);
}

_Noreturn static void run_pager(const int fds[2], pid_t parent, const char *pager) {
        sigset_t none;

        /* Our copy of the write end would keep the input from ever ending
         * where no exec closes it (the copy through). */
        close(fds[1]);
        if (dup2(fds[0], STDIN_FILENO) < 0)
                _exit(EXIT_FAILURE);
        if (fds[0] != STDIN_FILENO)
                close(fds[0]);
        /* Signals vmsigctl blocks or ignores are the pager's own again. */
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        (void) signal(SIGPIPE, SIG_DFL);
        /* A vmsigctl that dies leaves no pager holding the terminal. */
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
                _exit(EXIT_FAILURE);
        /* Quit at the end of a screenful, raw colours, quit on Ctrl-C: as
         * systemd sets it. A privileged less must not run shell commands
         * for whoever is at the keyboard. */
        (void) setenv("LESS", "FRXMK", 0);
        if (getenv("SUDO_UID") || geteuid() != getuid())
                (void) setenv("LESSSECURE", "1", 1);
        if (pager)
                exec_named(pager);
        execlp("less", "less", (char *) NULL);
        execlp("more", "more", (char *) NULL);
        copy_through();
}

/* Our stdout, and our stderr if it is the terminal too (so errors show in
 * the pager, not under it), become the pipe into the pager. */
static void redirect_output(int fd) {
        /* Only what can be given back at the end is redirected: else the
         * pager would wait for an end of its input that never comes. */
        saved_stdout = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        if (saved_stdout >= 0)
                (void) dup2(fd, STDOUT_FILENO);
        if (isatty(STDERR_FILENO))
                saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        if (saved_stderr >= 0)
                (void) dup2(fd, STDERR_FILENO);
}

void ctl_pager_open(void) {
        const char *pager;
        pid_t parent = getpid();
        int fds[2];

        if (!arg.pager || pager_pid > 0 || !isatty(STDOUT_FILENO))
                return;
        pager = pager_from_env();
        if (pager && !*pager)
                return;
        fflush(stdout);
        fflush(stderr);
        if (pipe2(fds, O_CLOEXEC) < 0)
                return;
        pager_pid = fork();
        if (pager_pid < 0) {
                pager_pid = 0;
                close(fds[0]);
                close(fds[1]);
                return;
        }
        if (pager_pid == 0)
                run_pager(fds, parent, pager);
        close(fds[0]);
        redirect_output(fds[1]);
        close(fds[1]);
        /* A human who quits the pager before the end makes our writes fail
         * with EPIPE, which we let pass: vmsigctl ends as it would have, and
         * quietly, as systemctl does. */
        (void) signal(SIGPIPE, SIG_IGN);
}

static void restore(int saved, int fd) {
        if (saved < 0)
                return;
        (void) dup2(saved, fd);
        close(saved);
}

void ctl_pager_close(void) {
        if (pager_pid <= 0)
                return;
        /* Whatever stdio still holds goes in; errors (EPIPE) are the
         * human's choice to quit. Then the pager's input ends: no fd of
         * ours refers to the pipe any more. */
        fflush(stdout);
        fflush(stderr);
        clearerr(stdout);
        restore(saved_stdout, STDOUT_FILENO);
        restore(saved_stderr, STDERR_FILENO);
        saved_stdout = saved_stderr = -1;
        while (waitpid(pager_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        pager_pid = 0;
}
