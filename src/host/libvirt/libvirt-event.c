/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/libvirt.h>

#include "libvirt-event.h"
#include "log.h"
#include "macro.h"

/* libvirt gives timeouts in ms and expects about that precision (its own
 * loop polls with ms timeouts); sd-event's default accuracy of 250 ms
 * would delay keepalives and event flushes noticeably. */
#define TIMEOUT_ACCURACY_USEC UINT64_C(1000)
#define USEC_PER_MSEC UINT64_C(1000)

typedef enum watch_kind {
        WATCH_HANDLE,
        WATCH_TIMEOUT,
} watch_kind;

/* A handle or a timeout that libvirt registered. It outlives its removal
 * until its free callback ran: a callback of its own may be running when
 * libvirt removes it.
 *
 * Threads: libvirt calls add/update/remove from whichever thread runs a
 * call (the libvirt backend's worker, say), but sd-event belongs to the
 * loop's thread. So the lists and the pending fields are under the
 * adapter's mutex, and a call from another thread only records what it
 * wants (dirty, pending, deleted) and wakes the loop through an eventfd;
 * the loop applies it. A call on the loop's thread first applies what is
 * recorded, then its own change directly, so changes keep their order.
 * The mutex is never held while libvirt is called back. */
typedef struct watch {
        watch_kind kind;
        int id;
        int fd;        /* WATCH_HANDLE */
        int frequency; /* WATCH_TIMEOUT: ms, 0 every iteration, < 0 off; loop thread only */
        sd_event_source *source; /* loop thread only */
        virEventHandleCallback handle_cb;
        virEventTimeoutCallback timeout_cb;
        void *opaque;
        virFreeCallback ff;
        struct watch *next;
        /* Under the mutex: */
        bool deleted;   /* removed by libvirt: no callback may follow */
        bool dirty;     /* on the dirty list, pending to apply */
        int pending;    /* the mask or frequency to apply */
        struct watch *dirty_next;
} watch;

/* Process-global, as virEventRegisterImpl is. Lists, not a hash: a
 * process has a handle per connection and a few timers. */
static struct {
        sd_event *event;
        pthread_t loop_thread;
        pthread_mutex_t lock;
        int last_id;
        watch *live;
        watch *dirty, *dirty_tail; /* recorded off the loop's thread, to apply, oldest first */
        int wake_fd;    /* written when dirty gets a watch */
        sd_event_source *wake;
        watch *removed; /* newest first, waiting for the reaper; loop thread only */
        sd_event_source *reaper;
} adapter = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake_fd = -1 };

static uint32_t epoll_from_vir(int events) {
        return (events & VIR_EVENT_HANDLE_READABLE ? EPOLLIN : 0) |
               (events & VIR_EVENT_HANDLE_WRITABLE ? EPOLLOUT : 0) |
               (events & VIR_EVENT_HANDLE_ERROR ? EPOLLERR : 0) |
               (events & VIR_EVENT_HANDLE_HANGUP ? EPOLLHUP : 0);
}

static int vir_from_epoll(uint32_t revents) {
        return (revents & EPOLLIN ? VIR_EVENT_HANDLE_READABLE : 0) |
               (revents & EPOLLOUT ? VIR_EVENT_HANDLE_WRITABLE : 0) |
               (revents & EPOLLERR ? VIR_EVENT_HANDLE_ERROR : 0) |
               (revents & EPOLLHUP ? VIR_EVENT_HANDLE_HANGUP : 0);
}

static bool on_loop_thread(void) {
        return pthread_equal(pthread_self(), adapter.loop_thread);
}

static watch *watch_find(watch_kind kind, int id) {
        for (watch *w = adapter.live; w; w = w->next)
                if (w->kind == kind && w->id == id)
                        return w;
        return NULL;
}

/* Ids are never reused: libvirt may still hold a removed one, and a call
 * with it must not reach a newer watch. Under the mutex. */
static watch *watch_new(watch_kind kind, void *opaque, virFreeCallback ff) {
        watch *w;

        if (adapter.last_id == INT32_MAX) {
                log_error("libvirt event adapter: out of watch ids");
                return NULL;
        }
        w = calloc(1, sizeof *w);
        if (!w) {
                log_oom();
                return NULL;
        }
        *w = (watch) { .kind = kind, .id = ++adapter.last_id, .fd = -1, .opaque = opaque, .ff = ff };
        return w;
}

static void watch_link(watch *w) {
        w->next = adapter.live;
        adapter.live = w;
}

/* Whether libvirt removed w since; its callbacks ask before they run. */
static bool watch_is_deleted(watch *w) {
        bool deleted;

        pthread_mutex_lock(&adapter.lock);
        deleted = w->deleted;
        pthread_mutex_unlock(&adapter.lock);
        return deleted;
}

/* On the loop's thread: no callback follows; the free callback runs from
 * the reaper. */
static void watch_retire(watch *w) {
        /* Freed by sd-event after the dispatch if this is its own callback. */
        w->source = sd_event_source_disable_unref(w->source);
        w->next = adapter.removed;
        adapter.removed = w;
        /* The reaper is ours and exists: enabling cannot fail. */
        (void) sd_event_source_set_enabled(adapter.reaper, SD_EVENT_ONESHOT);
}

/* The free callbacks, on the loop's clean stack: libvirt takes its own
 * locks in them, which its remove calls may be holding. */
static int on_reap(sd_event_source *s, void *userdata) {
        watch *list = adapter.removed, *fifo = NULL;

        adapter.removed = NULL;
        /* In the order of removal. */
        while (list) {
                watch *w = list;

                list = w->next;
                w->next = fifo;
                fifo = w;
        }
        while (fifo) {
                watch *w = fifo;

                fifo = w->next;
                /* An ff that removes more re-enables the reaper. */
                if (w->ff)
                        w->ff(w->opaque);
                free(w);
        }
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        watch *w = userdata;

        /* Removed by another thread, not yet applied: as if gone. */
        if (!watch_is_deleted(w))
                w->handle_cb(w->id, fd, vir_from_epoll(revents), w->opaque);
        /* Always 0: a negative return would make sd-event disable the
         * source, and libvirt's callbacks return nothing to pass on. */
        return 0;
}

/* Mask 0 means "not now": epoll would still report errors and hangups,
 * so the source is switched off instead. The source is made on first use,
 * with the first mask. */
static int handle_set_events(watch *w, int events) {
        uint32_t mask = epoll_from_vir(events);
        int r;

        if (!w->source) {
                r = sd_event_add_io(adapter.event, &w->source, w->fd, mask, on_io, w);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(w->source, "libvirt-handle");
        } else if (mask != 0) {
                r = sd_event_source_set_io_events(w->source, mask);
                if (r < 0)
                        return r;
        }
        return sd_event_source_set_enabled(w->source, mask != 0 ? SD_EVENT_ON : SD_EVENT_OFF);
}

static int on_timeout_due(sd_event_source *s, uint64_t usec, void *userdata) {
        watch *w = userdata;
        int r;

        if (watch_is_deleted(w))
                return 0;
        /* Periodic, from now on, as libvirt's own loop does; re-armed
         * before the callback, which may change or remove it. */
        r = sd_event_source_set_time_relative(s, (uint64_t) w->frequency * USEC_PER_MSEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "libvirt event adapter: cannot re-arm timeout %d: %m", w->id);
        w->timeout_cb(w->id, w->opaque);
        return 0;
}

static int on_timeout_defer(sd_event_source *s, void *userdata) {
        watch *w = userdata;

        if (!watch_is_deleted(w))
                w->timeout_cb(w->id, w->opaque);
        return 0;
}

/* A new source for the frequency: none for < 0, a defer source that
 * stays on (it fires at every iteration) for 0, a time source for ms. */
static int timeout_arm(watch *w, int frequency) {
        int r;

        w->source = sd_event_source_disable_unref(w->source);
        w->frequency = frequency;
        if (frequency < 0)
                return 0;
        if (frequency == 0) {
                r = sd_event_add_defer(adapter.event, &w->source, on_timeout_defer, w);
                if (r >= 0)
                        r = sd_event_source_set_enabled(w->source, SD_EVENT_ON);
        } else
                r = sd_event_add_time_relative(adapter.event, &w->source, CLOCK_MONOTONIC,
                                               (uint64_t) frequency * USEC_PER_MSEC, TIMEOUT_ACCURACY_USEC,
                                               on_timeout_due, w);
        if (r < 0) {
                w->source = sd_event_source_disable_unref(w->source);
                return r;
        }
        (void) sd_event_source_set_description(w->source, "libvirt-timeout");
        return 0;
}

static const char *watch_kind_name(watch_kind kind) {
        return kind == WATCH_HANDLE ? "handle" : "timeout";
}

/* libvirt's new event mask (handles) or frequency (timeouts), on the
 * loop's thread. */
static int watch_apply(watch *w, int value) {
        int r = w->kind == WATCH_HANDLE ? handle_set_events(w, value) : timeout_arm(w, value);

        if (r < 0)
                log_error_errno(r, "libvirt event adapter: cannot set %s %d (fd %d) to %d: %m",
                                watch_kind_name(w->kind), w->id, w->fd, value);
        return r;
}

/* On the loop's thread, under the mutex: what other threads recorded, in
 * the order it was recorded. */
static void apply_dirty(void) {
        watch *list = adapter.dirty;

        adapter.dirty = adapter.dirty_tail = NULL;
        while (list) {
                watch *w = list;

                list = w->dirty_next;
                w->dirty = false;
                if (w->deleted)
                        watch_retire(w);
                else
                        (void) watch_apply(w, w->pending);
        }
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        eventfd_t v;

        (void) eventfd_read(fd, &v);
        pthread_mutex_lock(&adapter.lock);
        apply_dirty();
        pthread_mutex_unlock(&adapter.lock);
        return 0;
}

/* Under the mutex: the change to w (its new value, or its removal) now
 * on the loop's thread, after what was recorded before; else recorded for
 * the loop. */
static int watch_change(watch *w, int value, bool remove) {
        if (on_loop_thread()) {
                apply_dirty();
                if (remove) {
                        w->deleted = true;
                        watch_retire(w);
                        return 0;
                }
                return watch_apply(w, value);
        }
        if (remove)
                w->deleted = true;
        w->pending = value;
        if (!w->dirty) {
                w->dirty = true;
                w->dirty_next = NULL;
                if (adapter.dirty_tail)
                        adapter.dirty_tail->dirty_next = w;
                else
                        adapter.dirty = w;
                adapter.dirty_tail = w;
        }
        /* Cannot fail: the counter does not get near overflowing. */
        (void) eventfd_write(adapter.wake_fd, 1);
        return 0;
}

/* Takes w (NULL: watch_new() failed and said why). Under the mutex. Off
 * the loop's thread the id is returned at once and a source that cannot
 * be made is only logged: libvirt's own loop cannot fail there either. */
static int watch_add(watch *w, int value) {
        _cleanup_free_ watch *owned = w;

        assert(adapter.event);
        if (!owned)
                return -1;
        if (watch_change(owned, value, false) < 0) {
                owned->source = sd_event_source_disable_unref(owned->source);
                return -1;
        }
        watch_link(owned);
        return TAKE_PTR(owned)->id;
}

static void watch_update(watch_kind kind, int id, int value) {
        watch *w;

        pthread_mutex_lock(&adapter.lock);
        w = watch_find(kind, id);
        if (w)
                (void) watch_change(w, value, false);
        else
                log_debug("libvirt event adapter: update of unknown %s %d", watch_kind_name(kind), id);
        pthread_mutex_unlock(&adapter.lock);
}

static int watch_remove(watch_kind kind, int id) {
        watch **p;
        int r = -1;

        pthread_mutex_lock(&adapter.lock);
        for (p = &adapter.live; *p; p = &(*p)->next)
                if ((*p)->kind == kind && (*p)->id == id)
                        break;
        if (*p) {
                watch *w = *p;

                *p = w->next;
                (void) watch_change(w, 0, true);
                r = 0;
        }
        pthread_mutex_unlock(&adapter.lock);
        return r;
}

static int add_handle(int fd, int events, virEventHandleCallback cb, void *opaque, virFreeCallback ff) {
        watch *w;
        int id;

        pthread_mutex_lock(&adapter.lock);
        w = watch_new(WATCH_HANDLE, opaque, ff);
        if (w) {
                w->fd = fd;
                w->handle_cb = cb;
        }
        id = watch_add(w, events);
        pthread_mutex_unlock(&adapter.lock);
        return id;
}

static void update_handle(int id, int events) {
        watch_update(WATCH_HANDLE, id, events);
}

static int remove_handle(int id) {
        return watch_remove(WATCH_HANDLE, id);
}

static int add_timeout(int frequency, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff) {
        watch *w;
        int id;

        pthread_mutex_lock(&adapter.lock);
        w = watch_new(WATCH_TIMEOUT, opaque, ff);
        if (w)
                w->timeout_cb = cb;
        id = watch_add(w, frequency);
        pthread_mutex_unlock(&adapter.lock);
        return id;
}

static void update_timeout(int id, int frequency) {
        watch_update(WATCH_TIMEOUT, id, frequency);
}

static int remove_timeout(int id) {
        return watch_remove(WATCH_TIMEOUT, id);
}

/* The reaper, and the eventfd through which other threads wake the loop. */
static int add_sources(sd_event *e) {
        int r;

        r = sd_event_add_defer(e, &adapter.reaper, on_reap, NULL);
        if (r < 0)
                return log_error_errno(r, "libvirt event adapter: cannot add the reaper: %m");
        (void) sd_event_source_set_description(adapter.reaper, "libvirt-reaper");
        (void) sd_event_source_set_enabled(adapter.reaper, SD_EVENT_OFF);
        adapter.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (adapter.wake_fd < 0)
                r = -errno;
        else
                r = sd_event_add_io(e, &adapter.wake, adapter.wake_fd, EPOLLIN, on_wake, NULL);
        if (r < 0) {
                adapter.reaper = sd_event_source_disable_unref(adapter.reaper);
                if (adapter.wake_fd >= 0)
                        (void) close(adapter.wake_fd);
                adapter.wake_fd = -1;
                return log_error_errno(r, "libvirt event adapter: cannot add its wake-up eventfd: %m");
        }
        (void) sd_event_source_set_description(adapter.wake, "libvirt-wake");
        /* Ahead of libvirt's own sources: a zero timeout is a defer source
         * that stays pending, and would starve the removal of itself that
         * another thread recorded. */
        (void) sd_event_source_set_priority(adapter.wake, SD_EVENT_PRIORITY_IMPORTANT);
        return 0;
}

int vmsig_libvirt_event_register(sd_event *e) {
        int r;

        assert(e);
        if (adapter.event == e)
                return 0;
        if (adapter.event)
                return -EBUSY;

        r = add_sources(e);
        if (r < 0)
                return r;
        adapter.event = sd_event_ref(e);
        adapter.loop_thread = pthread_self();
        virEventRegisterImpl(add_handle, update_handle, remove_handle, add_timeout, update_timeout,
                             remove_timeout);
        return 0;
}

sd_event *vmsig_libvirt_event_loop(void) {
        return adapter.event;
}
