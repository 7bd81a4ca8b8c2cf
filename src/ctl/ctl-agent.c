/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include "ctl-agent.h"
#include "ctl-util.h"

#ifndef POLKIT_AGENT_BINARY_PATH
#define POLKIT_AGENT_BINARY_PATH "/usr/bin/pkttyagent"
#endif

/* How long we wait for the agent to register before going on without. */
#define AGENT_REGISTER_TIMEOUT_MS 5000

static bool agent_wanted(void) {
        /* ask_password means a terminal to ask on. The agent talks to
         * polkit on this machine, not the remote one; vmsigd lets root do
         * everything without asking polkit at all. */
        return arg.ask_password && !arg.host && geteuid() != 0;
}

/* In a login session, our agent is only a fallback: polkit asks the
 * session's own agent (a desktop's dialog) first. Without a session (su,
 * sudo -u, a container, ssh without pam_systemd, no logind at all) polkit
 * never turns to a fallback agent (it looks for one only through the
 * session), so there ours must be the agent of this process outright, or
 * nobody would ever be asked. */
static bool in_login_session(void) {
        _cleanup_free_ char *session = NULL;

        return sd_pid_get_session(0, &session) >= 0;
}

static _Noreturn void exec_agent(int notify_fd, pid_t parent, bool fallback) {
        char fd_arg[32], pid_arg[32];
        sigset_t none;

        /* Signals blocked for our event loop must not stay blocked in it. */
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        /* The agent is ours alone: it goes when we go. */
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
                _exit(EXIT_FAILURE);
        snprintf(fd_arg, sizeof fd_arg, "--notify-fd=%d", notify_fd);
        snprintf(pid_arg, sizeof pid_arg, "--process=%d", (int) parent);
        execl(POLKIT_AGENT_BINARY_PATH, POLKIT_AGENT_BINARY_PATH, fd_arg, pid_arg,
              fallback ? "--fallback" : (char *) NULL, (char *) NULL);
        _exit(EXIT_FAILURE);
}

pid_t ctl_polkit_agent_open(void) {
        bool fallback = in_login_session();
        pid_t parent = getpid(), pid;
        int pipefd[2];

        if (!agent_wanted() || access(POLKIT_AGENT_BINARY_PATH, X_OK) < 0)
                return 0;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return 0;
        pid = fork();
        if (pid < 0) {
                close(pipefd[0]);
                close(pipefd[1]);
                return 0;
        }
        if (pid == 0) {
                /* The write end must survive exec; the agent closes it once
                 * it is registered. */
                close(pipefd[0]);
                if (fcntl(pipefd[1], F_SETFD, 0) < 0)
                        _exit(EXIT_FAILURE);
                exec_agent(pipefd[1], parent, fallback);
        }
        close(pipefd[1]);
        /* Calls made before the agent is registered would find no one to ask
         * the password. An agent that fails closes the pipe too. */
        struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
        while (poll(&p, 1, AGENT_REGISTER_TIMEOUT_MS) < 0 && errno == EINTR)
                ;
        close(pipefd[0]);
        return pid;
}

void ctl_polkit_agent_close(pid_t pid) {
        if (pid <= 0)
                return;
        (void) kill(pid, SIGTERM);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}
