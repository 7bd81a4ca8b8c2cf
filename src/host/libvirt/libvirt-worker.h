/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The one thread on which the libvirt backend calls libvirt. libvirt's C
 * API is synchronous: virDomainDestroy can take seconds, and any domain
 * call waits behind a running domain job for up to 30 s. vmsigd's loop
 * must never wait, so each call is a job: run() on the worker, in the
 * order submitted, then done() back on the loop's thread (an eventfd wakes
 * it), where it answers whoever asked.
 *
 * One thread, not a pool: jobs of one domain keep their order (a Pause
 * then a Resume), and libvirt serializes calls on one connection anyway.
 */

#include <stdbool.h>
#include <systemd/sd-event.h>

typedef struct lv_job {
        struct lv_job *next;
        /* On the worker: the libvirt calls. NULL for a job that only
         * carries news to the loop (lv_worker_post()). */
        void (*run)(struct lv_job *job);
        /* On the loop's thread, after run(); with cancelled set when the
         * worker is freed before this was called (run() or not). Frees
         * the job. */
        void (*done)(struct lv_job *job);
        bool cancelled;
} lv_job;

typedef struct lv_worker lv_worker;

int lv_worker_new(sd_event *e, lv_worker **ret);
/* Waits for the job being run (if any), then completes every job left,
 * run or not, with cancelled set, from this call. */
lv_worker *lv_worker_free(lv_worker *w);

/* From the loop's thread: run job on the worker, after those before. */
void lv_worker_submit(lv_worker *w, lv_job *job);
/* From any thread: done() on the loop, without running anything (a
 * callback of libvirt's handing news to the loop). */
void lv_worker_post(lv_worker *w, lv_job *job);
