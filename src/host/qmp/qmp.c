/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "qmp-conn.h"
#include "qmp-display.h"
#include "qmp-hmp.h"
#include "qmp-input.h"
#include "qmp-ram-map.h"
#include "qmp.h"

/* A request of the control side: in flight as a QMP command, or waiting
 * on the defer queue to be completed from the loop. */
typedef struct request {
        vmsig_done_fn done;
        vmsig_display_done_fn display_done; /* instead of done, for a capture refused */
        vmsig_vcpu_done_fn vcpu_done;       /* instead of done, for a vCPU read */
        void *userdata;
        int error;
        char message[160];
        json_object *input; /* input-send-event arguments waiting their turn */
        struct vmsig_qmp *owner;
        struct request *next;
} request;

typedef struct request_queue {
        request *head, *tail;
} request_queue;

struct vmsig_qmp {
        unsigned n_ref; /* one per adapter role */
        vmsig_endpoint *endpoint; /* while an adapter is attached; not a reference */
        char *name, *qmp_socket, *ram_path;
        vmsig_gpa_range *ranges;
        size_t n_ranges;
        /* The map came with the configuration (<gpa-map>): it wins over
         * what QEMU says. Otherwise QEMU is asked on every connection,
         * and the memctx waits for its answer. */
        bool ranges_configured;
        vmsig_bootstrap_config bootstrap_config;

        /* host */
        bool host_attached;
        qmp_conn *conn;
        bool shutdown_seen; /* on this connection: the hangup that follows is QEMU exiting */
        int defer_fd;
        vmsig_cookie defer_cookie;
        request_queue deferred;

        /* input: one input-send-event at a time, the rest wait here */
        request_queue input;
        bool input_in_flight;

        /* display */
        qmp_display *display;

        /* memctx */
        bool memctx_attached;
        vmsig_memctx_source memctx; /* ram_fd -1 until the RAM file was opened */
        int ram_rw_fd;              /* private, for write_ram only */
        dev_t ram_dev;
        ino_t ram_ino;
        pid_t ram_pid; /* the QEMU whose guest the RAM holds: 0 not known yet, -1 gone */
        int ram_watch_fd; /* inotify on the RAM file, which may shrink under us */
        vmsig_cookie ram_watch_cookie;
        bool ram_short;   /* it did: nothing of the guest's memory is read or written */
        vmsig_bootstrap *bootstrap;
        vmsig_subscriber *lifecycle_sub;
};

static const char *const op_commands[_VMSIG_OP_MAX] = {
        [VMSIG_OP_PAUSE] = "stop",
        [VMSIG_OP_RESUME] = "cont",
        [VMSIG_OP_RESET] = "system_reset",
        [VMSIG_OP_POWER_OFF] = "system_powerdown",
        [VMSIG_OP_KILL] = "quit",
};

static vmsig_qmp *qmp_unref(vmsig_qmp *q) {
        if (!q || --q->n_ref > 0)
                return NULL;
        qmp_display_free(q->display);
        free(q->ranges);
        free(q->ram_path);
        free(q->qmp_socket);
        free(q->name);
        free(q);
        return NULL;
}

static void adapter_free(void *data) {
        qmp_unref(data);
}

static vmsig_state current_state(vmsig_qmp *q) {
        return q->endpoint ? vmsig_endpoint_get_state(q->endpoint) : VMSIG_STATE_UNKNOWN;
}

static void report(vmsig_qmp *q, vmsig_lifecycle_op op, vmsig_state state) {
        if (q->endpoint)
                vmsig_endpoint_report_lifecycle(q->endpoint, op, state);
}

/* A state QEMU told us about, with the op that leads there: there is no
 * op for "observed", and a LIFECYCLE event needs one. */
static void observe(vmsig_qmp *q, vmsig_state state) {
        static const vmsig_lifecycle_op op_to[_VMSIG_STATE_MAX] = {
                [VMSIG_STATE_RUNNING] = VMSIG_OP_RESUME,
                [VMSIG_STATE_PAUSED] = VMSIG_OP_PAUSE,
                [VMSIG_STATE_SHUT_OFF] = VMSIG_OP_POWER_OFF,
        };

        if (state != VMSIG_STATE_UNKNOWN && current_state(q) != state)
                report(q, op_to[state], state);
}

static void complete(request *rq, int error, const char *message) {
        vmsig_result res = { .error = error, .message = message };

        if (rq->done)
                rq->done(&res, rq->userdata);
        else if (rq->display_done)
                rq->display_done(&res, NULL, rq->userdata);
        else if (rq->vcpu_done)
                rq->vcpu_done(&res, NULL, rq->userdata);
        json_object_put(rq->input);
        free(rq);
}

static void queue_push(request_queue *queue, request *rq) {
        rq->next = NULL;
        if (queue->tail)
                queue->tail->next = rq;
        else
                queue->head = rq;
        queue->tail = rq;
}

static request *queue_pop(request_queue *queue) {
        request *rq = queue->head;
        if (rq) {
                queue->head = rq->next;
                if (!queue->head)
                        queue->tail = NULL;
        }
        return rq;
}

/* The memctx sensor: the RAM file, its epochs, the bootstrap. */

static void bootstrap_stop(vmsig_qmp *q) {
        if (!q->bootstrap)
                return;
        q->bootstrap = vmsig_bootstrap_free(q->bootstrap);
        (void) vmsig_bootstrap_publish_fixed(q->endpoint, VMSIG_BOOTSTRAP_IDLE, 0);
}

static int bootstrap_restart(vmsig_qmp *q) {
        int r;

        if (!q->bootstrap) {
                r = vmsig_bootstrap_new(q->endpoint, &q->memctx, &q->bootstrap_config, &q->bootstrap);
                if (r < 0)
                        return r;
        }
        return vmsig_bootstrap_start(q->bootstrap);
}

static int check_ranges(vmsig_qmp *q, uint64_t size) {
        for (size_t i = 0; i < q->n_ranges; i++)
                if (q->ranges[i].offset > size || q->ranges[i].size > size - q->ranges[i].offset)
                        return log_error_errno(ERANGE,
                                               "GPA range %zu of '%s' lies beyond the end of its RAM file %s.", i,
                                               q->name, q->ram_path);
        return 0;
}

/* Opens the RAM file twice: read-only for the memctx data, writable for
 * write_ram. Both must be the same file, not one replaced in between. */
static int ram_open(vmsig_qmp *q, int *ret_ro, int *ret_rw, struct stat *ret_st) {
        _cleanup_close_ int ro = -1, rw = -1;
        struct stat st, st_rw;
        int r;

        ro = open(q->ram_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (ro < 0)
                return -errno;
        if (fstat(ro, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size <= 0)
                return log_error_errno(EBADF, "RAM file %s of '%s' is not a regular, non-empty file.",
                                       q->ram_path, q->name);
        r = check_ranges(q, (uint64_t) st.st_size);
        if (r < 0)
                return r;
        /* QEMU creates it 0644 under the default umask: then anyone on the
         * host can read the guest's memory. It is QEMU's file, not ours to
         * change, so say so and go on. */
        if (st.st_mode & 0004)
                log_warning("RAM file %s of '%s' is readable by everyone (mode %04o): anyone on the host can read "
                            "the guest's memory. Start QEMU with umask 077.",
                            q->ram_path, q->name, (unsigned) (st.st_mode & 07777));
        rw = open(q->ram_path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (rw < 0)
                log_warning_errno(errno, "Cannot open RAM file %s of '%s' for writing, guest memory writes will "
                                  "fail: %m", q->ram_path, q->name);
        else if (fstat(rw, &st_rw) < 0 || st_rw.st_dev != st.st_dev || st_rw.st_ino != st.st_ino)
                return -ESTALE;
        *ret_ro = TAKE_FD(ro);
        *ret_rw = TAKE_FD(rw);
        *ret_st = st;
        return 0;
}

static void ram_watch_stop(vmsig_qmp *q) {
        if (q->ram_watch_fd < 0)
                return;
        /* Unregister before closing: epoll must not see a recycled fd. */
        (void) vmsig_endpoint_remove_fd(q->endpoint, q->ram_watch_cookie);
        q->ram_watch_fd = safe_close(q->ram_watch_fd);
}

static void ram_check(vmsig_qmp *q);

static void on_ram_watch(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

        /* Which change it was does not matter, only the size now. */
        while (read(fd, buf, sizeof buf) > 0)
                ;
        ram_check(userdata);
}

/* Truncation is a modification, and inotify tells of it at once; the
 * guest's own writes go through QEMU's mapping and cost nothing here. The
 * watch is on the inode we opened, not on whatever the path names later. */
static void ram_watch_start(vmsig_qmp *q) {
        char path[64];
        int fd, r;

        ram_watch_stop(q);
        fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (fd < 0) {
                r = -errno;
                goto fail;
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", q->memctx.ram_fd);
        if (inotify_add_watch(fd, path, IN_MODIFY) < 0) {
                r = -errno;
                safe_close(fd);
                goto fail;
        }
        r = vmsig_endpoint_add_fd(q->endpoint, fd, EPOLLIN, on_ram_watch, q, &q->ram_watch_cookie);
        if (r < 0) {
                safe_close(fd);
                goto fail;
        }
        q->ram_watch_fd = fd;
        return;
fail:
        log_warning_errno(r, "Cannot watch RAM file %s of '%s'; a truncation is noticed only when the guest's "
                          "memory is used next: %m", q->ram_path, q->name);
}

static int ram_install(vmsig_qmp *q, int ro, int rw, const struct stat *st) {
        uint64_t epoch = q->memctx.epoch;
        bool invalidated = q->memctx.invalidated;
        int r;

        ram_watch_stop(q);
        vmsig_memctx_source_done(&q->memctx);
        safe_close(q->ram_rw_fd);
        q->ram_rw_fd = rw;
        q->ram_dev = st->st_dev;
        q->ram_ino = st->st_ino;
        q->ram_short = false;
        r = vmsig_memctx_source_init(&q->memctx, ro, (uint64_t) st->st_size, q->ranges, q->n_ranges);
        /* Epochs go on across QEMU processes: a datum is never reused. */
        q->memctx.epoch = epoch;
        q->memctx.invalidated = invalidated;
        if (r < 0)
                return r;
        ram_watch_start(q);
        return epoch == 0 ? vmsig_memctx_source_publish(&q->memctx, q->endpoint)
                          : vmsig_memctx_source_new_epoch(&q->memctx, q->endpoint);
}

/* Someone truncated the RAM file under QEMU (QEMU itself faults when the
 * guest touches what is gone). vmsigd only ever reads it with pread(2)
 * and writes it with pwrite(2), so it takes no SIGBUS; but what it reads
 * is not the guest's any more, and a write past the end would grow the
 * file back and hide the damage. The epoch ends, the bootstrap stops in
 * "error", and memory calls fail with RamUnavailable until the file is
 * back to its size: then a new epoch starts and the root is looked for
 * again, since the contents may be anything. */
static void ram_check(vmsig_qmp *q) {
        struct stat st;
        bool now_short;

        if (q->memctx.ram_fd < 0 || fstat(q->memctx.ram_fd, &st) < 0)
                return;
        now_short = (uint64_t) st.st_size < q->memctx.ram_size;
        if (now_short == q->ram_short)
                return;
        q->ram_short = now_short;
        if (now_short) {
                log_error("RAM file %s of '%s' shrank to %" PRIu64 " of the guest's %" PRIu64 " bytes: its memory "
                          "is unavailable until the file is back to its size.",
                          q->ram_path, q->name, (uint64_t) st.st_size, q->memctx.ram_size);
                q->bootstrap = vmsig_bootstrap_free(q->bootstrap);
                (void) vmsig_memctx_source_invalidate(&q->memctx, q->endpoint);
                (void) vmsig_bootstrap_publish_fixed(q->endpoint, VMSIG_BOOTSTRAP_ERROR, 0);
                return;
        }
        log_info("RAM file %s of '%s' is back to its size: a new memory context.", q->ram_path, q->name);
        (void) vmsig_memctx_source_new_epoch(&q->memctx, q->endpoint);
        if (q->ram_pid >= 0 && bootstrap_restart(q) < 0)
                bootstrap_stop(q);
        else if (q->ram_pid < 0)
                (void) vmsig_bootstrap_publish_fixed(q->endpoint, VMSIG_BOOTSTRAP_IDLE, 0);
}

/* On attach and on every connection: the RAM of the QEMU we talk to. A
 * new QEMU process is a new guest: new fds (it may have made a new file),
 * a new epoch, and the bootstrap starts over. */
static void ram_sync(vmsig_qmp *q, pid_t pid, bool connected) {
        int ro = -1, rw = -1, r;
        struct stat st = {};

        if (!q->memctx_attached)
                return;
        /* The same QEMU again: its RAM has its size, unless the file was
         * truncated under it. */
        if (q->memctx.ram_fd >= 0 && pid > 0 && q->ram_pid == pid && stat(q->ram_path, &st) == 0 &&
            st.st_dev == q->ram_dev && st.st_ino == q->ram_ino) {
                ram_check(q);
                return;
        }
        if (q->memctx.ram_fd >= 0 && (q->ram_pid == pid || q->ram_pid == 0) && stat(q->ram_path, &st) == 0 &&
            st.st_dev == q->ram_dev && st.st_ino == q->ram_ino && (uint64_t) st.st_size == q->memctx.ram_size) {
                /* The guest we already know (0: the one whose file was
                 * there at attach). */
                q->ram_pid = pid;
                return;
        }
        r = ram_open(q, &ro, &rw, &st);
        if (r < 0) {
                if (connected || r != -ENOENT)
                        log_warning_errno(r, "Cannot open RAM file %s of '%s': %m", q->ram_path, q->name);
                return;
        }
        r = ram_install(q, ro, rw, &st);
        if (r >= 0)
                r = bootstrap_restart(q);
        if (r < 0) {
                log_warning_errno(r, "Cannot publish the memory context of '%s': %m", q->name);
                bootstrap_stop(q);
        }
        q->ram_pid = pid;
}

/* The guest is gone: its epoch ends (a root found in it means nothing
 * now), and there is nothing to look for any more. The file stays open
 * and readable, as the last thing the guest left. */
static void ram_orphan(vmsig_qmp *q) {
        if (q->memctx.ram_fd < 0 || q->ram_pid < 0)
                return;
        q->ram_pid = -1;
        if (q->ram_short) /* stays in error, with nothing valid to offer */
                return;
        (void) vmsig_memctx_source_new_epoch(&q->memctx, q->endpoint);
        bootstrap_stop(q);
}

static int on_lifecycle(vmsig_subscriber *sub, const vmsig_delivery *d, void *userdata) {
        vmsig_qmp *q = userdata;
        const vmsig_lifecycle_payload *p = d->event->payload;

        if (d->replay || !q->memctx_attached || p->op != VMSIG_OP_RESET || q->memctx.ram_fd < 0 || q->ram_short)
                return VMSIG_DELIVER_OK;
        (void) vmsig_memctx_source_new_epoch(&q->memctx, q->endpoint);
        /* A rebooting guest: its root must be found again. */
        (void) bootstrap_restart(q);
        return VMSIG_DELIVER_OK;
}

static void memctx_detach(void *data, vmsig_endpoint *ep) {
        vmsig_qmp *q = data;

        q->lifecycle_sub = vmsig_subscriber_free(q->lifecycle_sub);
        q->bootstrap = vmsig_bootstrap_free(q->bootstrap);
        ram_watch_stop(q);
        vmsig_memctx_source_done(&q->memctx);
        q->ram_rw_fd = safe_close(q->ram_rw_fd);
        q->memctx_attached = false;
        if (!q->host_attached)
                q->endpoint = NULL;
}

static int memctx_attach(void *data, vmsig_endpoint *ep) {
        vmsig_qmp *q = data;
        vmsig_filter f = { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_LIFECYCLE), .endpoint = vmsig_endpoint_get_id(ep) };
        int r;

        q->endpoint = ep;
        q->memctx_attached = true;
        r = vmsig_core_subscribe(vmsig_endpoint_get_core(ep), &f, 0, on_lifecycle, q, &q->lifecycle_sub);
        if (r < 0) {
                memctx_detach(q, ep); /* the endpoint only detaches adapters that attached */
                return r;
        }
        /* QEMU may not have started yet: then the RAM comes with the first
         * connection. Whose guest it holds is known once QEMU answers, and
         * where its RAM sits in guest-physical space too, unless the
         * configuration says. */
        if (q->ranges_configured)
                ram_sync(q, 0, false);
        if (!q->bootstrap)
                (void) vmsig_bootstrap_publish_fixed(ep, VMSIG_BOOTSTRAP_IDLE, 0);
        return 0;
}

static int memctx_write_ram(void *data, uint64_t offset, const void *buf, size_t len) {
        vmsig_qmp *q = data;
        const uint8_t *p = buf;

        if (q->memctx.ram_fd < 0)
                return -ENODEV;
        if (q->ram_rw_fd < 0)
                return -EROFS;
        if (offset > q->memctx.ram_size || len > q->memctx.ram_size - offset)
                return -ERANGE;
        /* A pwrite past the end of a truncated file would grow it back. */
        ram_check(q);
        if (q->ram_short)
                return -ENOMEDIUM;
        while (len > 0) {
                ssize_t n = pwrite(q->ram_rw_fd, p, len, (off_t) offset);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                p += n;
                offset += (uint64_t) n;
                len -= (size_t) n;
        }
        return 0;
}

static int memctx_verify_root(void *data) {
        vmsig_qmp *q = data;

        return q->bootstrap ? vmsig_bootstrap_verify(q->bootstrap) : 0;
}

static const vmsig_sensor_ops qmp_memctx_ops = {
        .base = { .attach = memctx_attach, .detach = memctx_detach, .free = adapter_free },
        .write_ram = memctx_write_ram,
        .verify_root = memctx_verify_root,
};

/* Completions that must not happen inside the call that asked: queued and
 * run from the loop through an eventfd. */

/* Completed from the loop with the request's error and message. */
static void defer(vmsig_qmp *q, request *rq) {
        queue_push(&q->deferred, rq);
        /* Cannot fail: the counter does not get near overflowing. */
        (void) eventfd_write(q->defer_fd, 1);
}

static int complete_later(vmsig_qmp *q, vmsig_done_fn done, void *userdata, int error, const char *message) {
        request *rq = calloc(1, sizeof *rq);

        if (!rq)
                return -ENOMEM;
        *rq = (request) { .done = done, .userdata = userdata, .error = error };
        if (message)
                snprintf(rq->message, sizeof rq->message, "%s", message);
        defer(q, rq);
        return 0;
}

static void input_next(vmsig_qmp *q);
static void query_ram_map(vmsig_qmp *q);

static void on_defer(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        vmsig_qmp *q = userdata;
        eventfd_t v;

        (void) eventfd_read(fd, &v);
        /* Only what was queued before now: completions may queue more. */
        request *tail = q->deferred.tail;
        for (request *rq; q->host_attached && (rq = queue_pop(&q->deferred));) {
                bool last = rq == tail;
                complete(rq, rq->error, rq->error < 0 ? rq->message : NULL);
                if (last)
                        break;
        }
        if (q->host_attached)
                input_next(q);
        if (q->deferred.head && q->host_attached)
                (void) eventfd_write(q->defer_fd, 1);
}

/* Why a request cannot go to QEMU now. */
static int refusal(vmsig_qmp *q, char *msg, size_t size) {
        if (current_state(q) == VMSIG_STATE_SHUT_OFF) {
                snprintf(msg, size, "Endpoint '%s' is shut off: its QEMU is not running.", q->name);
                return -EBADFD;
        }
        snprintf(msg, size, "QEMU of '%s' is not connected yet: reconnecting to %s.", q->name, q->qmp_socket);
        return -EIO;
}

static int refuse_later(vmsig_qmp *q, vmsig_done_fn done, void *userdata) {
        char msg[160];
        int error = refusal(q, msg, sizeof msg);

        return complete_later(q, done, userdata, error, msg);
}

static void on_request_reply(qmp_conn *c, const qmp_reply *reply, void *userdata) {
        complete(userdata, reply->error, reply->message);
}

/* Sends command for a control-side request. Takes arguments. */
static int submit(vmsig_qmp *q, const char *command, json_object *arguments, vmsig_done_fn done, void *userdata) {
        request *rq;
        int r;

        if (!q->host_attached) {
                json_object_put(arguments);
                return -ENODEV;
        }
        if (!qmp_conn_is_ready(q->conn)) {
                json_object_put(arguments);
                return refuse_later(q, done, userdata);
        }
        rq = calloc(1, sizeof *rq);
        if (!rq) {
                json_object_put(arguments);
                return -ENOMEM;
        }
        *rq = (request) { .done = done, .userdata = userdata };
        r = qmp_conn_execute(q->conn, command, arguments, on_request_reply, rq);
        if (r < 0)
                free(rq);
        return r;
}

/* The host-management seam: the connection, and the state QEMU reports. */

static void on_status(qmp_conn *c, const qmp_reply *reply, void *userdata) {
        vmsig_qmp *q = userdata;
        json_object *running = NULL, *status = NULL;

        if (reply->error == -ENODEV)
                return; /* detached */
        if (reply->error < 0) {
                log_warning("Cannot query the status of '%s': %s", q->name, reply->message);
                return;
        }
        (void) json_object_object_get_ex(reply->result, "running", &running);
        (void) json_object_object_get_ex(reply->result, "status", &status);
        if (json_object_get_boolean(running))
                observe(q, VMSIG_STATE_RUNNING);
        else if (status && strcmp(json_object_get_string(status), "shutdown") == 0)
                observe(q, VMSIG_STATE_SHUT_OFF);
        else
                /* prelaunch, paused, suspended, debug, io-error, ...:
                 * alive, but its vCPUs do not run. */
                observe(q, VMSIG_STATE_PAUSED);
}

static void query_status(vmsig_qmp *q) {
        int r = qmp_conn_execute(q->conn, "query-status", NULL, on_status, q);
        if (r < 0)
                log_warning_errno(r, "Cannot query the status of '%s': %m", q->name);
}

static void on_ram_map(int error, const char *message, vmsig_gpa_range *ranges, size_t n, void *userdata) {
        vmsig_qmp *q = userdata;

        if (error == -ENODEV) /* detached, or the connection went: the next one asks again */
                return;
        free(q->ranges);
        q->ranges = NULL;
        q->n_ranges = 0;
        if (error < 0)
                /* Flat is right for guests below 2 GiB, and the best left. */
                log_warning("Cannot learn the guest-physical map of '%s' from QEMU (%s); taking the RAM file as "
                            "flat. Set <gpa-map> in its trigger file if the guest has more than 2 GiB.",
                            q->name, message ?: strerror(-error));
        else {
                q->ranges = ranges;
                q->n_ranges = n;
        }
        if (qmp_conn_is_ready(q->conn))
                ram_sync(q, qmp_conn_peer_pid(q->conn), true);
}

/* Where the RAM file sits in guest-physical space, from QEMU; the memctx
 * follows. */
static void query_ram_map(vmsig_qmp *q) {
        int r = qmp_ram_map_query(q->conn, q->ram_path, on_ram_map, q);

        if (r == -ENOENT) /* no RAM file: ram_sync() says so */
                return ram_sync(q, qmp_conn_peer_pid(q->conn), true);
        if (r < 0)
                on_ram_map(r, NULL, NULL, 0, q);
}

/* QEMU exited: the guest is off until a QEMU comes back. */
static void qemu_gone(vmsig_qmp *q) {
        if (current_state(q) != VMSIG_STATE_SHUT_OFF)
                log_info("QEMU of '%s' is gone: the guest is shut off.", q->name);
        observe(q, VMSIG_STATE_SHUT_OFF);
        /* Nobody controls a VM that no longer exists; a new QEMU is a new
         * guest, leased afresh. */
        if (q->endpoint)
                vmsig_endpoint_lease_revoke_all(q->endpoint, "host-gone");
        ram_orphan(q);
}

static void on_conn_state(qmp_conn *c, qmp_conn_event event, void *userdata) {
        vmsig_qmp *q = userdata;

        switch (event) {
        case QMP_CONN_READY:
                q->shutdown_seen = false;
                qmp_display_connected(q->display);
                if (q->ranges_configured || !q->memctx_attached)
                        ram_sync(q, qmp_conn_peer_pid(c), true);
                else
                        query_ram_map(q);
                query_status(q);
                break;
        case QMP_CONN_LOST:
                /* Without a SHUTDOWN it may be just the socket: the next
                 * connection attempt tells whether QEMU is still there. */
                if (q->shutdown_seen)
                        qemu_gone(q);
                break;
        case QMP_CONN_ABSENT:
                qemu_gone(q);
                break;
        }
}

static const char *event_reason(json_object *data) {
        json_object *reason = NULL;

        if (data)
                (void) json_object_object_get_ex(data, "reason", &reason);
        return reason ? json_object_get_string(reason) : "no reason given";
}

static void on_stop(vmsig_qmp *q, json_object *data) {
        /* QEMU also stops a guest that shut down under -no-shutdown: that
         * one stays off. */
        if (current_state(q) != VMSIG_STATE_SHUT_OFF)
                observe(q, VMSIG_STATE_PAUSED);
}

static void on_resume(vmsig_qmp *q, json_object *data) {
        q->shutdown_seen = false; /* -no-shutdown: back from the dead */
        observe(q, VMSIG_STATE_RUNNING);
}

static void on_reset(vmsig_qmp *q, json_object *data) {
        q->shutdown_seen = false;
        log_debug("QEMU reset the guest of '%s' (%s).", q->name, event_reason(data));
        /* Always reported: a reset is news even when the state stays
         * (memctx starts a new epoch, leases end). */
        report(q, VMSIG_OP_RESET, current_state(q));
        /* Out of a shutdown, QEMU goes to prelaunch: ask. */
        if (current_state(q) == VMSIG_STATE_SHUT_OFF)
                query_status(q);
}

static void on_shutdown(vmsig_qmp *q, json_object *data) {
        const char *reason = event_reason(data);

        q->shutdown_seen = true;
        log_info("QEMU of '%s' shut the guest down (%s).", q->name, reason);
        /* quit, from us or from another QMP client: the VM was killed, the
         * guest had no say. */
        if (strcmp(reason, "host-qmp-quit") == 0 && current_state(q) != VMSIG_STATE_SHUT_OFF)
                report(q, VMSIG_OP_KILL, VMSIG_STATE_SHUT_OFF);
        else
                observe(q, VMSIG_STATE_SHUT_OFF);
}

static void on_powerdown(vmsig_qmp *q, json_object *data) {
        /* Only the power button: the guest decides what follows. */
        log_info("The power button of '%s' was pressed.", q->name);
}

static const struct {
        const char *name;
        void (*handle)(vmsig_qmp *q, json_object *data);
} event_handlers[] = {
        { "STOP", on_stop },         { "RESUME", on_resume },       { "RESET", on_reset },
        { "SHUTDOWN", on_shutdown }, { "POWERDOWN", on_powerdown },
};

static void on_conn_event(qmp_conn *c, const char *name, json_object *data, void *userdata) {
        vmsig_qmp *q = userdata;

        for (size_t i = 0; i < ELEMENTSOF(event_handlers); i++)
                if (strcmp(name, event_handlers[i].name) == 0)
                        return event_handlers[i].handle(q, data);
        log_debug("QMP event %s of '%s'.", name, q->name);
}

static const qmp_conn_callbacks conn_callbacks = {
        .state = on_conn_state,
        .event = on_conn_event,
};

static int host_attach(void *data, vmsig_endpoint *ep) {
        vmsig_qmp *q = data;
        int r;

        q->endpoint = ep;
        q->defer_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (q->defer_fd < 0)
                return -errno;
        r = vmsig_endpoint_add_fd(ep, q->defer_fd, EPOLLIN, on_defer, q, &q->defer_cookie);
        if (r >= 0)
                r = qmp_conn_new(ep, q->qmp_socket, &conn_callbacks, q, &q->conn);
        if (r < 0) {
                (void) vmsig_endpoint_remove_fd(ep, q->defer_cookie);
                q->defer_fd = safe_close(q->defer_fd);
                return r;
        }
        q->host_attached = true;
        return 0;
}

static void host_detach(void *data, vmsig_endpoint *ep) {
        vmsig_qmp *q = data;
        char msg[128];

        snprintf(msg, sizeof msg, "Endpoint '%s' was detached.", q->name);
        q->host_attached = false;
        for (request *rq; (rq = queue_pop(&q->input));)
                complete(rq, -ENODEV, msg);
        q->conn = qmp_conn_free(q->conn, -ENODEV, msg);
        for (request *rq; (rq = queue_pop(&q->deferred));)
                complete(rq, -ENODEV, msg);
        (void) vmsig_endpoint_remove_fd(ep, q->defer_cookie);
        q->defer_fd = safe_close(q->defer_fd);
        if (!q->memctx_attached)
                q->endpoint = NULL;
}

static int host_lifecycle(void *data, vmsig_lifecycle_op op, vmsig_done_fn done, void *userdata) {
        if ((unsigned) op >= _VMSIG_OP_MAX)
                return -EINVAL;
        return submit(data, op_commands[op], NULL, done, userdata);
}

static void on_registers(qmp_conn *c, const qmp_reply *reply, void *userdata) {
        request *rq = userdata;
        vmsig_result res = {};
        vmsig_vcpu_state vcpu;
        const char *text;

        if (reply->error < 0)
                return complete(rq, reply->error, reply->message);
        text = json_object_get_string(reply->result);
        /* The parser stops at a NUL: a text with one would read short. */
        if (!text || (size_t) json_object_get_string_len(reply->result) != strlen(text) ||
            qmp_hmp_parse_registers(text, &vcpu) < 0)
                return complete(rq, -EBADMSG, "QEMU's info registers answer has no control registers.");
        rq->vcpu_done(&res, &vcpu, rq->userdata);
        free(rq);
}

/* info registers: the one way QMP shows a vCPU's control registers, about
 * 1 ms of QEMU's time; it answers while the guest runs. */
static int host_read_vcpu(void *data, vmsig_vcpu_done_fn done, void *userdata) {
        vmsig_qmp *q = data;
        request *rq;
        int r;

        if (!done)
                return -EINVAL;
        if (!q->host_attached)
                return -ENODEV;
        rq = calloc(1, sizeof *rq);
        if (!rq)
                return -ENOMEM;
        *rq = (request) { .vcpu_done = done, .userdata = userdata };
        if (!qmp_conn_is_ready(q->conn)) {
                rq->error = refusal(q, rq->message, sizeof rq->message);
                defer(q, rq);
                return 0;
        }
        r = qmp_conn_execute(q->conn, "human-monitor-command", qmp_hmp_command("info registers"), on_registers, rq);
        if (r < 0)
                free(rq);
        return r;
}

static const vmsig_host_ops qmp_host_ops = {
        .base = { .attach = host_attach, .detach = host_detach, .free = adapter_free },
        .backend = "qemu",
        .lifecycle = host_lifecycle,
        .read_vcpu = host_read_vcpu,
};

/* The input actuator: one input-send-event per call, and one in flight
 * at a time. QEMU would queue them just as well, but what is written to
 * its socket cannot be taken back: events waiting here can, when the
 * input lease ends. */

static void on_input_reply(qmp_conn *c, const qmp_reply *reply, void *userdata) {
        request *rq = userdata;
        vmsig_qmp *q = rq->owner;

        q->input_in_flight = false;
        complete(rq, reply->error, reply->message);
        if (q->host_attached)
                input_next(q);
}

/* From the loop: sends the oldest waiting input, or fails it (and the
 * next) when QEMU cannot take it now. */
static void input_next(vmsig_qmp *q) {
        request *rq;
        int r;

        while (!q->input_in_flight && (rq = queue_pop(&q->input))) {
                if (!qmp_conn_is_ready(q->conn)) {
                        r = refusal(q, rq->message, sizeof rq->message);
                        complete(rq, r, rq->message);
                        continue;
                }
                r = qmp_conn_execute(q->conn, "input-send-event", TAKE_PTR(rq->input), on_input_reply, rq);
                if (r < 0) {
                        complete(rq, r, NULL);
                        continue;
                }
                q->input_in_flight = true;
        }
}

static int input_inject(void *data, const vmsig_input_event *events, size_t n, vmsig_done_fn done, void *userdata) {
        vmsig_qmp *q = data;
        json_object *args = NULL;
        request *rq;
        char msg[128];
        int r;

        r = qmp_input_build(events, n, &args);
        if (r < 0)
                return r;
        if (!q->host_attached) {
                json_object_put(args);
                return -ENODEV;
        }
        if (current_state(q) == VMSIG_STATE_SHUT_OFF) {
                json_object_put(args);
                snprintf(msg, sizeof msg, "Endpoint '%s' is shut off and takes no input.", q->name);
                return complete_later(q, done, userdata, -EBADFD, msg);
        }
        if (!args) /* nothing to send */
                return complete_later(q, done, userdata, 0, NULL);
        rq = calloc(1, sizeof *rq);
        if (!rq) {
                json_object_put(args);
                return -ENOMEM;
        }
        *rq = (request) { .done = done, .userdata = userdata, .input = args, .owner = q };
        /* Nothing ahead of it: straight to QEMU (the reply comes from the
         * loop). Else it waits its turn, and anything that must fail does
         * so from the loop, never from here. */
        if (!q->input_in_flight && !q->input.head && qmp_conn_is_ready(q->conn)) {
                r = qmp_conn_execute(q->conn, "input-send-event", TAKE_PTR(rq->input), on_input_reply, rq);
                if (r < 0) {
                        free(rq);
                        return r;
                }
                q->input_in_flight = true;
                return 0;
        }
        queue_push(&q->input, rq);
        if (!q->input_in_flight)
                (void) eventfd_write(q->defer_fd, 1);
        return 0;
}

static void input_cancel(void *data, const char *message) {
        vmsig_qmp *q = data;

        for (request *rq; (rq = queue_pop(&q->input));) {
                rq->error = -ECANCELED;
                snprintf(rq->message, sizeof rq->message, "%s", message);
                defer(q, rq);
        }
}

static const vmsig_input_ops qmp_input_ops = {
        .base = { .free = adapter_free },
        .inject = input_inject,
        .cancel = input_cancel,
};

/* The display adapter: screendump, see qmp-display.h. Pending captures
 * wait on QMP commands, so the host adapter's detach (which frees the
 * connection) completes them with -ENODEV. */

static int display_capture(void *data, vmsig_display_done_fn done, void *userdata) {
        vmsig_qmp *q = data;
        request *rq;

        if (!q->host_attached)
                return -ENODEV;
        if (qmp_display_is_busy(q->display))
                return -EBUSY;
        if (qmp_conn_is_ready(q->conn))
                return qmp_display_capture(q->display, q->conn, done, userdata);
        rq = calloc(1, sizeof *rq);
        if (!rq)
                return -ENOMEM;
        *rq = (request) { .display_done = done, .userdata = userdata };
        rq->error = refusal(q, rq->message, sizeof rq->message);
        defer(q, rq);
        return 0;
}

static const vmsig_display_ops qmp_display_ops = {
        .base = { .free = adapter_free },
        .capture = display_capture,
};

static int copy_spec(vmsig_qmp *q, const vmsig_qmp_spec *spec) {
        int r;

        q->name = strdup(spec->name);
        q->qmp_socket = strdup(spec->qmp_socket);
        if (!q->name || !q->qmp_socket)
                return -ENOMEM;
        if (spec->ram_path && !(q->ram_path = strdup(spec->ram_path)))
                return -ENOMEM;
        if (spec->n_ranges > 0) {
                q->ranges = calloc(spec->n_ranges, sizeof *q->ranges);
                if (!q->ranges)
                        return -ENOMEM;
                memcpy(q->ranges, spec->ranges, spec->n_ranges * sizeof *q->ranges);
                q->n_ranges = spec->n_ranges;
                q->ranges_configured = true;
        }
        q->bootstrap_config = spec->bootstrap_config;
        r = qmp_display_new(q->name, &q->display);
        if (r < 0)
                return r;
        qmp_display_set_ppm_only(q->display, spec->display_ppm);
        return 0;
}

static bool range_is_valid(const vmsig_gpa_range *r) {
        return r->size > 0 && r->offset + r->size > r->offset && r->gpa + r->size > r->gpa;
}

static bool spec_is_valid(const vmsig_qmp_spec *spec) {
        if (!vmsig_endpoint_name_is_valid(spec->name) || !spec->qmp_socket || spec->qmp_socket[0] == '\0')
                return false;
        /* A unix socket address holds at most 107 bytes of path. */
        if (strlen(spec->qmp_socket) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                return false;
        if (spec->ram_path && spec->ram_path[0] == '\0')
                return false;
        if (spec->n_ranges > 0 && (!spec->ram_path || !spec->ranges))
                return false;
        for (size_t i = 0; i < spec->n_ranges; i++)
                if (!range_is_valid(&spec->ranges[i]))
                        return false;
        return true;
}

int vmsig_qmp_new(const vmsig_qmp_spec *spec, vmsig_endpoint_spec *ret, vmsig_qmp **ret_qmp) {
        vmsig_qmp *q;
        int r;

        if (!spec_is_valid(spec))
                return -EINVAL;
        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        q->n_ref = _VMSIG_ADAPTER_MAX;
        q->defer_fd = q->ram_rw_fd = q->ram_watch_fd = -1;
        q->memctx.ram_fd = -1;
        r = copy_spec(q, spec);
        if (r < 0) {
                q->n_ref = 1;
                qmp_unref(q);
                return r;
        }

        *ret = (vmsig_endpoint_spec) {
                .name = q->name,
                .uuid = spec->uuid,
                .initial_state = VMSIG_STATE_UNKNOWN, /* until QEMU says */
        };
        if (sd_id128_is_null(ret->uuid))
                (void) sd_id128_randomize(&ret->uuid);
        if (q->ram_path)
                ret->adapters[VMSIG_ADAPTER_MEMCTX] = (vmsig_adapter) { &qmp_memctx_ops.base, q };
        else
                q->n_ref--;
        ret->adapters[VMSIG_ADAPTER_INPUT] = (vmsig_adapter) { &qmp_input_ops.base, q };
        ret->adapters[VMSIG_ADAPTER_HOST] = (vmsig_adapter) { &qmp_host_ops.base, q };
        ret->adapters[VMSIG_ADAPTER_DISPLAY] = (vmsig_adapter) { &qmp_display_ops.base, q };
        if (ret_qmp)
                *ret_qmp = q;
        return 0;
}

bool vmsig_qmp_is_connected(vmsig_qmp *q) {
        return q->host_attached && qmp_conn_is_ready(q->conn);
}
