/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "libvirt-worker.h"
#include "log.h"
#include "macro.h"

typedef struct job_list {
        lv_job *head, *tail;
} job_list;

struct lv_worker {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        bool stopping;  /* under lock */
        job_list todo;  /* under lock: waiting for the worker */
        job_list done;  /* under lock: waiting for the loop */
        int done_fd;
        sd_event_source *done_source;
};

static void list_push(job_list *l, lv_job *job) {
        job->next = NULL;
        if (l->tail)
                l->tail->next = job;
        else
                l->head = job;
        l->tail = job;
}

static lv_job *list_take_all(job_list *l) {
        lv_job *head = l->head;

        *l = (job_list) {};
        return head;
}

static void finish(lv_worker *w, lv_job *job) {
        pthread_mutex_lock(&w->lock);
        list_push(&w->done, job);
        pthread_mutex_unlock(&w->lock);
        /* Cannot fail: the counter does not get near overflowing. */
        (void) eventfd_write(w->done_fd, 1);
}

static void *worker_main(void *userdata) {
        lv_worker *w = userdata;

        for (;;) {
                lv_job *job;

                pthread_mutex_lock(&w->lock);
                while (!w->stopping && !w->todo.head)
                        pthread_cond_wait(&w->wake, &w->lock);
                if (w->stopping) {
                        pthread_mutex_unlock(&w->lock);
                        return NULL;
                }
                job = w->todo.head;
                w->todo.head = job->next;
                if (!w->todo.head)
                        w->todo.tail = NULL;
                pthread_mutex_unlock(&w->lock);

                job->run(job);
                finish(w, job);
        }
}

static void complete_all(lv_job *list, bool cancelled) {
        while (list) {
                lv_job *job = list;

                list = job->next;
                job->cancelled = job->cancelled || cancelled;
                job->done(job);
        }
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        lv_worker *w = userdata;
        lv_job *list;
        eventfd_t v;

        (void) eventfd_read(fd, &v);
        pthread_mutex_lock(&w->lock);
        list = list_take_all(&w->done);
        pthread_mutex_unlock(&w->lock);
        complete_all(list, false);
        return 0;
}

int lv_worker_new(sd_event *e, lv_worker **ret) {
        _cleanup_free_ lv_worker *w = calloc(1, sizeof *w);
        int r;

        if (!w)
                return -ENOMEM;
        w->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->done_fd < 0)
                return -errno;
        r = sd_event_add_io(e, &w->done_source, w->done_fd, EPOLLIN, on_done, w);
        if (r < 0) {
                w->done_fd = safe_close(w->done_fd);
                return r;
        }
        (void) sd_event_source_set_description(w->done_source, "libvirt-worker");
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        r = -pthread_create(&w->thread, NULL, worker_main, w);
        if (r < 0) {
                w->done_source = sd_event_source_disable_unref(w->done_source);
                w->done_fd = safe_close(w->done_fd);
                return r;
        }
        *ret = TAKE_PTR(w);
        return 0;
}

lv_worker *lv_worker_free(lv_worker *w) {
        lv_job *todo;

        if (!w)
                return NULL;
        pthread_mutex_lock(&w->lock);
        w->stopping = true;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        /* The job running now finishes: libvirt calls cannot be
         * interrupted. */
        (void) pthread_join(w->thread, NULL);
        /* Cancelled, those run too: their owner is going away and must not
         * act on their results (attach domains, say). */
        todo = list_take_all(&w->todo);
        complete_all(list_take_all(&w->done), true);
        complete_all(todo, true);
        w->done_source = sd_event_source_disable_unref(w->done_source);
        (void) safe_close(w->done_fd);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
        return mfree(w);
}

void lv_worker_submit(lv_worker *w, lv_job *job) {
        assert(w && job && job->run && job->done);
        job->cancelled = false;
        pthread_mutex_lock(&w->lock);
        list_push(&w->todo, job);
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
}

void lv_worker_post(lv_worker *w, lv_job *job) {
        assert(w && job && job->done);
        job->cancelled = false;
        finish(w, job);
}
