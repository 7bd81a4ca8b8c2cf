/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "fd-util.h"
#include "inode-watch.h"
#include "list.h"
#include "log.h"
#include "macro.h"

/* The core's one inotify instance for inode watches, a layer of the core. */
typedef struct inode_watches {
        int fd;
        vmsig_cookie cookie;
        inode_watch *watches;
        /* While events are handed out: the next watch to look at, moved on
         * when a callee frees it. */
        inode_watch *dispatch_next;
} inode_watches;

struct inode_watch {
        inode_watches *owner;
        int wd; /* inotify gives one per inode: watches of one file share it */
        inode_watch_fn fn;
        void *userdata;
        inode_watch *prev, *next;
};

static void watches_free(vmsig_core *c, void *data) {
        inode_watches *ws = data;

        /* The owners free their watches before the core goes; what is left
         * is only unlinked, for theirs to be harmless later. */
        for (inode_watch *w = ws->watches; w; w = w->next)
                w->owner = NULL;
        (void) vmsig_core_remove_fd(c, ws->cookie);
        safe_close(ws->fd);
        free(ws);
}

static const vmsig_core_layer_ops watches_ops = {
        .free = watches_free,
};

/* Hands out one event: to the watches of its wd, or to all of them when
 * the kernel dropped events. */
static void dispatch(inode_watches *ws, const struct inotify_event *ev) {
        bool all = ev->mask & IN_Q_OVERFLOW;

        for (inode_watch *w = ws->watches; w; w = ws->dispatch_next) {
                ws->dispatch_next = w->next;
                if (all || w->wd == ev->wd)
                        w->fn(w->userdata);
        }
        ws->dispatch_next = NULL;
}

static void on_inotify(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        ssize_t n;

        while ((n = read(fd, buf, sizeof buf)) > 0)
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *) p;

                        dispatch(userdata, ev);
                        p += sizeof *ev + ev->len;
                }
}

static int watches_get(vmsig_core *c, inode_watches **ret) {
        inode_watches *ws = vmsig_core_get_layer(c, &watches_ops);
        int r;

        if (ws) {
                *ret = ws;
                return 0;
        }
        ws = calloc(1, sizeof *ws);
        if (!ws)
                return -ENOMEM;
        ws->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        r = ws->fd < 0 ? -errno : vmsig_core_add_fd(c, ws->fd, EPOLLIN, on_inotify, ws, &ws->cookie);
        if (r >= 0) {
                r = vmsig_core_set_layer(c, &watches_ops, ws);
                if (r < 0)
                        (void) vmsig_core_remove_fd(c, ws->cookie);
        }
        if (r < 0) {
                safe_close(ws->fd);
                free(ws);
                return r;
        }
        *ret = ws;
        return 0;
}

/* Whether a watch in the list has wd (the inode is watched for another). */
static bool wd_used(const inode_watches *ws, int wd) {
        for (const inode_watch *o = ws->watches; o; o = o->next)
                if (o->wd == wd)
                        return true;
        return false;
}

int inode_watches_prepare(vmsig_core *c) {
        inode_watches *ws;

        assert(c);
        return watches_get(c, &ws);
}

int inode_watch_add(vmsig_core *c, int fd, uint32_t mask, inode_watch_fn fn, void *userdata, inode_watch **ret) {
        char path[64];
        inode_watches *ws;
        inode_watch *w;
        int wd, r;

        assert(c);
        assert(fd >= 0);
        assert(fn);
        assert(ret);
        r = watches_get(c, &ws);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        wd = inotify_add_watch(ws->fd, path, mask);
        if (wd < 0)
                return -errno;
        w = malloc(sizeof *w);
        if (!w) {
                if (!wd_used(ws, wd))
                        (void) inotify_rm_watch(ws->fd, wd);
                return -ENOMEM;
        }
        *w = (inode_watch) { .owner = ws, .wd = wd, .fn = fn, .userdata = userdata };
        LIST_PREPEND(ws->watches, w);
        *ret = w;
        return 0;
}

inode_watch *inode_watch_free(inode_watch *w) {
        inode_watches *ws;

        if (!w)
                return NULL;
        ws = w->owner;
        if (ws) {
                if (ws->dispatch_next == w)
                        ws->dispatch_next = w->next;
                /* Removing a watch from a live instance queues its mark to
                 * the kernel's reaper and returns: no wait on the loop. It
                 * fails if the inode went (IN_IGNORED came). */
                LIST_REMOVE(ws->watches, w);
                if (!wd_used(ws, w->wd))
                        (void) inotify_rm_watch(ws->fd, w->wd);
        }
        return mfree(w);
}
