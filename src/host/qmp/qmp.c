/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "guest-memory.h"
#include "host-common.h"
#include "log.h"
#include "macro.h"
#include "qmp-conn.h"
#include "qmp-display.h"
#include "qmp-hmp.h"
#include "qmp-input.h"
#include "qmp-ram-map.h"
#include "host-ram.h"
#include "qmp.h"

/* A request of the control side: in flight as a QMP command, or waiting
 * on the defer queue to be completed from the loop (its base's error and
 * message), or on the input queue for its turn. */
typedef struct request {
        host_request base; /* first: the queues hold it */
        json_object *input; /* input-send-event arguments waiting their turn */
        vmsig_input_event *events; /* what input carries, for owner->held once sent */
        size_t n_events;
        struct vmsig_qmp *owner;
} request;

struct vmsig_qmp {
        unsigned n_ref; /* one per adapter role */
        vmsig_endpoint *endpoint; /* while an adapter is attached; not a reference */
        char *name, *qmp_socket;

        /* host */
        bool host_attached;
        qmp_conn *conn;
        bool shutdown_seen; /* on this connection: the hangup that follows is QEMU exiting */
        int defer_fd;
        vmsig_cookie defer_cookie;
        host_queue deferred;

        /* input: one input-send-event at a time, the rest wait here */
        host_queue input;
        bool input_in_flight;
        qmp_input_held held; /* what the events sent left down, released at the lease's end */

        /* display */
        qmp_display *display;

        /* memctx */
        host_ram ram;
};

static const char *const op_commands[_VMSIG_OP_MAX] = {
        [VMSIG_OP_PAUSE] = "stop",
        [VMSIG_OP_RESUME] = "cont",
        [VMSIG_OP_RESET] = "system_reset",
        [VMSIG_OP_POWER_OFF] = "system_powerdown",
        [VMSIG_OP_KILL] = "quit",
};

static void qmp_free(vmsig_qmp *q) {
        qmp_display_free(q->display);
        host_ram_done(&q->ram);
        free(q->qmp_socket);
        free(q->name);
        free(q);
}

DEFINE_PRIVATE_TRIVIAL_REF_UNREF_FUNC(vmsig_qmp, qmp, qmp_free);

static vmsig_state current_state(vmsig_qmp *q) {
        return q->endpoint ? vmsig_endpoint_get_state(q->endpoint) : VMSIG_STATE_UNKNOWN;
}

static void report(vmsig_qmp *q, vmsig_lifecycle_op op, vmsig_state state) {
        if (q->endpoint)
                vmsig_endpoint_report_lifecycle(q->endpoint, op, state);
}

static void observe(vmsig_qmp *q, vmsig_state state) {
        host_observe_state(q->endpoint, state);
}

static void complete(request *rq, int error, const char *message) {
        host_request_answer(&rq->base, error, message);
        json_object_put(rq->input);
        free(rq->events);
        free(rq);
}

static request *queue_pop(host_queue *queue) {
        return (request *) host_queue_pop(queue);
}

/* The memctx adapter: the RAM file, its epochs, the bootstrap (host-ram.h). */

static void memctx_detach(void *data, vmsig_endpoint *ep) {
        vmsig_qmp *q = data;

        host_ram_detach(&q->ram);
        if (!q->host_attached)
                q->endpoint = NULL;
}

static int memctx_attach(void *data, vmsig_endpoint *ep) {
        vmsig_qmp *q = data;
        int r;

        q->endpoint = ep;
        r = host_ram_attach(&q->ram, ep);
        if (r < 0 && !q->host_attached)
                q->endpoint = NULL;
        return r;
}

DEFINE_HOST_RAM_MEMCTX_OPS(static, qmp_memctx_ops, vmsig_qmp, ram, memctx_attach, memctx_detach, qmp_unref_data);

/* Completions that must not happen inside the call that asked: queued and
 * run from the loop through an eventfd. */

/* Completed from the loop with the request's error and message. */
static void defer(vmsig_qmp *q, request *rq) {
        host_queue_push(&q->deferred, &rq->base);
        /* Cannot fail: the counter does not get near overflowing. */
        (void) eventfd_write(q->defer_fd, 1);
}

/* whom: the callback to answer, and its userdata. */
static int complete_later(vmsig_qmp *q, host_request whom, int error, const char *message) {
        request *rq = calloc(1, sizeof *rq);

        if (!rq)
                return -ENOMEM;
        *rq = (request) { .base = whom };
        host_request_set_error(&rq->base, error, message);
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
        host_request *tail = q->deferred.tail;
        for (request *rq; q->host_attached && (rq = queue_pop(&q->deferred));) {
                bool last = &rq->base == tail;
                complete(rq, rq->base.error, rq->base.error < 0 ? rq->base.message : NULL);
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

static int refuse_later(vmsig_qmp *q, host_request whom) {
        char msg[HOST_MESSAGE_MAX];
        int error = refusal(q, msg, sizeof msg);

        return complete_later(q, whom, error, msg);
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
                return refuse_later(q, (host_request) { .done = done, .userdata = userdata });
        }
        rq = calloc(1, sizeof *rq);
        if (!rq) {
                json_object_put(arguments);
                return -ENOMEM;
        }
        *rq = (request) { .base = { .done = done, .userdata = userdata } };
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
        host_ram_set_ranges(&q->ram, NULL, 0);
        if (error < 0)
                /* Flat is right for guests below 2 GiB, and the best left. */
                log_warning("Cannot learn the guest-physical map of '%s' from QEMU (%s); taking the RAM file as "
                            "flat. Set <gpa-map> in its trigger file if the guest has more than 2 GiB.",
                            q->name, message ?: strerror(-error));
        else
                host_ram_set_ranges(&q->ram, ranges, n);
        if (qmp_conn_is_ready(q->conn))
                host_ram_sync(&q->ram, qmp_conn_peer_pid(q->conn), true);
}

/* Where the RAM file sits in guest-physical space, from QEMU; the memctx
 * follows. */
static void query_ram_map(vmsig_qmp *q) {
        qmp_monitor monitor = qmp_conn_monitor(q->conn);
        struct stat st;
        int r;

        if (stat(q->ram.path, &st) < 0) {
                if (errno == ENOENT) /* no RAM file: host_ram_sync() says so */
                        return host_ram_sync(&q->ram, qmp_conn_peer_pid(q->conn), true);
                return on_ram_map(-errno, NULL, NULL, 0, q);
        }
        r = qmp_ram_map_query(&monitor,
                              &(qmp_ram_target) { .name = q->ram.path, .dev = st.st_dev, .ino = st.st_ino,
                                                  .size = (uint64_t) st.st_size },
                              on_ram_map, q);
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
        host_ram_orphan(&q->ram);
}

static void on_conn_state(qmp_conn *c, qmp_conn_event event, void *userdata) {
        vmsig_qmp *q = userdata;

        switch (event) {
        case QMP_CONN_READY:
                q->shutdown_seen = false;
                q->held = (qmp_input_held) {}; /* a new QEMU: nothing is down */
                qmp_display_connected(q->display);
                if (q->ram.ranges_configured || !q->ram.attached)
                        host_ram_sync(&q->ram, qmp_conn_peer_pid(c), true);
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

        host_detached_message(msg, sizeof msg, q->name);
        q->host_attached = false;
        for (request *rq; (rq = queue_pop(&q->input));)
                complete(rq, -ENODEV, msg);
        q->conn = qmp_conn_free(q->conn, -ENODEV, msg);
        for (request *rq; (rq = queue_pop(&q->deferred));)
                complete(rq, -ENODEV, msg);
        (void) vmsig_endpoint_remove_fd(ep, q->defer_cookie);
        q->defer_fd = safe_close(q->defer_fd);
        if (!q->ram.attached)
                q->endpoint = NULL;
}

static int host_lifecycle(void *data, vmsig_lifecycle_op op, vmsig_done_fn done, void *userdata) {
        if ((unsigned) op >= _VMSIG_OP_MAX)
                return -EINVAL;
        return submit(data, op_commands[op], NULL, done, userdata);
}

/* Through the monitor (qmp-hmp.h) while QEMU is connected; otherwise
 * why not, from the loop. */
static int host_read_vcpu(void *data, vmsig_vcpu_done_fn done, void *userdata) {
        vmsig_qmp *q = data;
        qmp_monitor monitor;

        if (!done)
                return -EINVAL;
        if (!q->host_attached)
                return -ENODEV;
        if (!qmp_conn_is_ready(q->conn))
                return refuse_later(q, (host_request) { .vcpu_done = done, .userdata = userdata });
        monitor = qmp_conn_monitor(q->conn);
        return qmp_hmp_read_vcpu(&monitor, done, userdata);
}

static const vmsig_host_ops qmp_host_ops = {
        .base = { .attach = host_attach, .detach = host_detach, .free = qmp_unref_data },
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

/* Writes rq's events to QEMU, which cannot take them back: from then on
 * what they press is held down until an event releases it. */
static int input_send(vmsig_qmp *q, request *rq) {
        int r;

        r = qmp_conn_execute(q->conn, "input-send-event", TAKE_PTR(rq->input), on_input_reply, rq);
        if (r < 0)
                return r;
        qmp_input_held_update(&q->held, rq->events, rq->n_events);
        q->input_in_flight = true;
        return 0;
}

/* From the loop: sends the oldest waiting input, or fails it (and the
 * next) when QEMU cannot take it now. */
static void input_next(vmsig_qmp *q) {
        request *rq;
        int r;

        while (!q->input_in_flight && (rq = queue_pop(&q->input))) {
                if (!qmp_conn_is_ready(q->conn)) {
                        r = refusal(q, rq->base.message, sizeof rq->base.message);
                        complete(rq, r, rq->base.message);
                        continue;
                }
                r = input_send(q, rq);
                if (r < 0)
                        complete(rq, r, NULL);
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
                return complete_later(q, (host_request) { .done = done, .userdata = userdata }, -EBADFD, msg);
        }
        if (!args) /* nothing to send */
                return complete_later(q, (host_request) { .done = done, .userdata = userdata }, 0, NULL);
        rq = calloc(1, sizeof *rq);
        if (!rq) {
                json_object_put(args);
                return -ENOMEM;
        }
        *rq = (request) { .base = { .done = done, .userdata = userdata }, .input = args, .owner = q,
                          .events = memdup_array(events, n, sizeof *events), .n_events = n };
        if (!rq->events) {
                json_object_put(args);
                free(rq);
                return -ENOMEM;
        }
        /* Nothing ahead of it: straight to QEMU (the reply comes from the
         * loop). Else it waits its turn, and anything that must fail does
         * so from the loop, never from here. */
        if (!q->input_in_flight && !q->input.head && qmp_conn_is_ready(q->conn)) {
                r = input_send(q, rq);
                if (r < 0) {
                        json_object_put(rq->input);
                        free(rq->events);
                        free(rq);
                }
                return r;
        }
        host_queue_push(&q->input, &rq->base);
        if (!q->input_in_flight)
                (void) eventfd_write(q->defer_fd, 1);
        return 0;
}

/* qmp_input_lease_end()'s way to QEMU: the input queue, behind what is
 * in flight. */
static int queue_release(json_object *arguments, void *userdata, char *msg, size_t size) {
        vmsig_qmp *q = userdata;
        request *rq = calloc(1, sizeof *rq);

        if (!rq) {
                json_object_put(arguments);
                snprintf(msg, size, "out of memory");
                return -ENOMEM;
        }
        *rq = (request) { .input = arguments, .owner = q };
        host_queue_push(&q->input, &rq->base);
        if (!q->input_in_flight)
                (void) eventfd_write(q->defer_fd, 1);
        return 0;
}

/* The input lease ended: what waits is dropped, and what was sent and
 * left down is released after what is in flight (qmp-input.h). */
static void input_cancel(void *data, const char *message) {
        vmsig_qmp *q = data;
        request *rq;

        while ((rq = queue_pop(&q->input))) {
                host_request_set_error(&rq->base, -ECANCELED, message);
                defer(q, rq);
        }
        qmp_input_lease_end(&q->held, q->name, queue_release, q);
}

static const vmsig_input_ops qmp_input_ops = {
        .base = { .free = qmp_unref_data },
        .inject = input_inject,
        .cancel = input_cancel,
};

/* The display adapter: screendump, see qmp-display.h. Pending captures
 * wait on QMP commands, so the host adapter's detach (which frees the
 * connection) completes them with -ENODEV. */

static int display_capture(void *data, vmsig_display_done_fn done, void *userdata) {
        vmsig_qmp *q = data;

        if (!q->host_attached)
                return -ENODEV;
        if (qmp_display_is_busy(q->display))
                return -EBUSY;
        if (!qmp_conn_is_ready(q->conn))
                return refuse_later(q, (host_request) { .display_done = done, .userdata = userdata });
        return qmp_display_capture(q->display, q->conn, done, userdata);
}

static const vmsig_display_ops qmp_display_ops = {
        .base = { .free = qmp_unref_data },
        .capture = display_capture,
};

static int copy_spec(vmsig_qmp *q, const vmsig_qmp_spec *spec) {
        int r;

        q->name = strdup(spec->name);
        q->qmp_socket = strdup(spec->qmp_socket);
        if (!q->name || !q->qmp_socket)
                return -ENOMEM;
        q->ram.name = q->name;
        if (spec->ram_path && !(q->ram.path = strdup(spec->ram_path)))
                return -ENOMEM;
        if (spec->n_ranges > 0) {
                r = vmsig_gpa_ranges_dup(spec->ranges, spec->n_ranges, &q->ram.ranges);
                if (r < 0)
                        return r;
                q->ram.n_ranges = spec->n_ranges;
                q->ram.ranges_configured = true;
        }
        q->ram.bootstrap_config = spec->bootstrap_config;
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
        q->defer_fd = -1;
        host_ram_init(&q->ram, NULL);
        r = copy_spec(q, spec);
        if (r < 0) {
                q->n_ref = 1;
                qmp_unref(q);
                return r;
        }

        host_endpoint_spec_init(ret, q->name, spec->uuid, VMSIG_STATE_UNKNOWN /* until QEMU says */);
        if (q->ram.path)
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
