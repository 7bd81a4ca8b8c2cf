/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core-internal.h"
#include "macro.h"

/* Adapter fds live in an epoll set of the core's own, nested in sd-event as
 * a single io source. The epoll data of each fd is its cookie (table index
 * and generation), so the core demultiplexes by cookie and can tell a live
 * registration from one removed earlier in the same batch. */

#define BATCH 64

static vmsig_cookie make_cookie(size_t index, uint32_t gen) {
        return ((uint64_t) (index + 1) << 32) | gen;
}

static fd_source *lookup(vmsig_core *c, vmsig_cookie cookie) {
        uint64_t index = (cookie >> 32);
        if (index == 0 || index > c->n_sources)
                return NULL;
        fd_source *s = &c->sources[index - 1];
        if (!s->used || s->generation != (uint32_t) cookie)
                return NULL;
        return s;
}

static int on_epoll(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        vmsig_core *c = userdata;
        struct epoll_event ev[BATCH];
        int n;

        n = epoll_wait(c->epoll_fd, ev, BATCH, 0);
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        for (int i = 0; i < n; i++) {
                fd_source *s = lookup(c, ev[i].data.u64);
                if (!s)
                        continue; /* removed by an earlier callback of this batch */
                c->stats.fd_dispatches++;
                s->fn(c, ev[i].data.u64, s->fd, ev[i].events, s->userdata);
        }
        return 0;
}

int sources_init(vmsig_core *c) {
        int r;

        c->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (c->epoll_fd < 0)
                return -errno;
        r = sd_event_add_io(c->event, &c->epoll_source, c->epoll_fd, EPOLLIN, on_epoll, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(c->epoll_source, "vmsig-adapter-fds");
        return 0;
}

void sources_done(vmsig_core *c) {
        c->epoll_source = sd_event_source_disable_unref(c->epoll_source);
        c->epoll_fd = safe_close(c->epoll_fd);
        free(c->sources);
        c->sources = NULL;
        c->n_sources = c->n_sources_used = 0;
}

static int alloc_source(vmsig_core *c, size_t *ret) {
        if (c->sources_free_head) {
                *ret = c->sources_free_head - 1;
                c->sources_free_head = c->sources[*ret].free_next;
                return 0;
        }
        size_t n = c->n_sources ? c->n_sources * 2 : 16;
        fd_source *t = realloc(c->sources, n * sizeof(fd_source));
        if (!t)
                return -ENOMEM;
        memset(t + c->n_sources, 0, (n - c->n_sources) * sizeof(fd_source));
        /* Chain the new entries, except the one returned, onto the free list. */
        for (size_t i = n - 1; i > c->n_sources; i--) {
                t[i].free_next = c->sources_free_head;
                c->sources_free_head = (uint32_t) (i + 1);
        }
        *ret = c->n_sources;
        c->sources = t;
        c->n_sources = n;
        return 0;
}

int vmsig_core_add_fd(vmsig_core *c, int fd, uint32_t events, vmsig_fd_fn fn, void *userdata, vmsig_cookie *ret) {
        size_t i;
        int r;

        if (fd < 0 || !fn)
                return -EINVAL;
        r = alloc_source(c, &i);
        if (r < 0)
                return r;

        fd_source *s = &c->sources[i];
        s->generation++;
        vmsig_cookie cookie = make_cookie(i, s->generation);
        struct epoll_event ev = { .events = events, .data.u64 = cookie };
        if (epoll_ctl(c->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                r = -errno;
                s->free_next = c->sources_free_head;
                c->sources_free_head = (uint32_t) (i + 1);
                return r;
        }
        s->fd = fd;
        s->used = true;
        s->fn = fn;
        s->userdata = userdata;
        c->n_sources_used++;
        if (ret)
                *ret = cookie;
        return 0;
}

int vmsig_core_set_fd_events(vmsig_core *c, vmsig_cookie cookie, uint32_t events) {
        fd_source *s = lookup(c, cookie);
        if (!s)
                return -ESTALE;
        struct epoll_event ev = { .events = events, .data.u64 = cookie };
        return epoll_ctl(c->epoll_fd, EPOLL_CTL_MOD, s->fd, &ev) < 0 ? -errno : 0;
}

int vmsig_core_remove_fd(vmsig_core *c, vmsig_cookie cookie) {
        fd_source *s = lookup(c, cookie);
        if (!s)
                return -ESTALE;
        /* The fd may already be closed by its owner; then the kernel dropped
         * it from the set itself and ENOENT/EBADF are expected. */
        (void) epoll_ctl(c->epoll_fd, EPOLL_CTL_DEL, s->fd, NULL);
        s->used = false;
        s->fn = NULL;
        s->userdata = NULL;
        s->fd = -1;
        s->free_next = c->sources_free_head;
        c->sources_free_head = (uint32_t) ((s - c->sources) + 1);
        c->n_sources_used--;
        return 0;
}
