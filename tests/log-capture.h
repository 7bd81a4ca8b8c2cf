/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What vmsig's own code logs, captured for a test to read. */

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>

/* log.c writes to stderr: point fd 2 at a memfd for a while. What was
 * captured is copied to the real stderr afterwards, for the test log. */
typedef struct capture {
        int saved;
        int fd;
} capture;

static inline void capture_begin(capture *c) {
        fflush(stderr);
        c->fd = memfd_create("vmsig-log", MFD_CLOEXEC);
        g_assert_cmpint(c->fd, >=, 0);
        c->saved = dup(STDERR_FILENO);
        g_assert_cmpint(c->saved, >=, 0);
        g_assert_cmpint(dup2(c->fd, STDERR_FILENO), ==, STDERR_FILENO);
}

static inline char *capture_end(capture *c) {
        GString *s = g_string_new(NULL);
        char buf[4096];
        ssize_t n;

        fflush(stderr);
        g_assert_cmpint(dup2(c->saved, STDERR_FILENO), ==, STDERR_FILENO);
        close(c->saved);
        g_assert_cmpint(lseek(c->fd, 0, SEEK_SET), ==, 0);
        while ((n = read(c->fd, buf, sizeof buf)) > 0)
                g_string_append_len(s, buf, n);
        close(c->fd);
        fputs(s->str, stderr);
        return g_string_free(s, false);
}

