/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A program on a terminal of its own: a new pty, which becomes its
 * controlling terminal and its stdin, stdout and stderr, read by the test
 * as a human would see it. For what only happens on a terminal (pagers,
 * polkit agents asking for passwords). */

#include <glib.h>
#include <sys/types.h>

typedef struct VtPty {
        GPid pid;
        int master;    /* the test's end: read what is shown, write keys */
        GString *out;  /* everything shown so far */
        int status;    /* exit status once vt_pty_wait() saw it, 128 + signal if killed */
} VtPty;

/* Runs argv[0] (a path, not searched) with exactly envp (NULL-terminated;
 * entries that are NULL end it early, so optional ones may go last). */
VtPty *vt_pty_spawn(const char *const *argv, const char *const *envp);
/* The same as uid (and as the group of the same number), without
 * supplementary groups. */
VtPty *vt_pty_spawn_as(uid_t uid, const char *const *argv, const char *const *envp);
/* Appends what the pty shows within timeout_ms; FALSE when nothing came
 * (or every process of the terminal is gone). */
gboolean vt_pty_read(VtPty *t, int timeout_ms);
/* Reads until needle was shown; FALSE after timeout_ms without it. */
gboolean vt_pty_wait_for(VtPty *t, const char *needle, guint timeout_ms);
/* Reads until the program exits, killing it after timeout_ms (and failing
 * the test); returns its exit status. */
int vt_pty_wait(VtPty *t, guint timeout_ms);
/* Closes the pty; the program must have been waited for. */
void vt_pty_free(VtPty *t);
