/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "list.h"
#include "log.h"
#include "macro.h"
#include "qmp-conn.h"
#include "time-util.h"

#define READ_CHUNK 16384
#define READS_PER_WAKEUP 16 /* then let the loop run others; epoll is level-triggered */
#define QMP_GREETING_WARN_USEC (5 * UINT64_C(1000000))

typedef enum conn_state {
        CONN_DISCONNECTED,
        CONN_CONNECTING,  /* connect() in progress */
        CONN_GREETING,    /* waiting for {"QMP": ...} */
        CONN_NEGOTIATING, /* qmp_capabilities sent */
        CONN_READY,
} conn_state;

/* A descriptor that goes out with the byte at offset of the output
 * buffer: QEMU takes the last one received for the next command that
 * wants one, so it must travel with that command's text. */
typedef struct out_fd {
        size_t offset;
        int fd; /* ours, a duplicate; closed once sent */
        struct out_fd *next;
} out_fd;

typedef struct pending {
        uint64_t id;
        qmp_reply_fn fn;
        void *userdata;
        struct pending *next;
} pending;

struct qmp_conn {
        unsigned n_ref; /* callbacks may free the connection under our feet */
        bool closed;
        vmsig_endpoint *endpoint; /* not a reference: we live in its adapter */
        char *path;
        qmp_conn_callbacks callbacks;
        void *userdata;

        conn_state state;
        int fd;
        vmsig_cookie fd_cookie;
        uint32_t fd_events;
        pid_t peer_pid;
        json_tokener *tok;
        char *out;
        size_t out_len, out_size;
        out_fd *out_fds; /* ordered by offset */

        uint64_t next_id;
        pending *head, *tail;

        int timer_fd;
        vmsig_cookie timer_cookie;
        uint64_t backoff_usec;
        bool outage_logged; /* one line per outage, not one per retry */
};

static const char *conn_name(const qmp_conn *c) {
        return vmsig_endpoint_get_name(c->endpoint);
}

static void conn_free(qmp_conn *c) {
        free(c->out);
        free(c->path);
        free(c);
}

DEFINE_PRIVATE_TRIVIAL_REF_UNREF_FUNC(qmp_conn, conn, conn_free);

/* The timer: when disconnected, "try to connect now"; when waiting for
 * the greeting, "it is late". usec from now; 0 fires at once. */
static int arm_timer(qmp_conn *c, uint64_t usec) {
        return timerfd_arm_usec(c->timer_fd, usec, 0);
}

static void schedule_reconnect(qmp_conn *c) {
        int r = arm_timer(c, c->backoff_usec);
        if (r < 0)
                log_error_errno(r, "Cannot arm the QMP reconnect timer of '%s': %m", conn_name(c));
        c->backoff_usec = MIN(c->backoff_usec * 2, QMP_RECONNECT_MAX_USEC);
}

static pending *pop_command(qmp_conn *c) {
        return QUEUE_POP(c->head, c->tail);
}

static pending *take_command(qmp_conn *c, uint64_t id) {
        for (pending **p = &c->head, *prev = NULL; *p; prev = *p, p = &(*p)->next) {
                pending *cmd = *p;
                if (cmd->id != id)
                        continue;
                *p = cmd->next;
                if (c->tail == cmd)
                        c->tail = prev;
                return cmd;
        }
        return NULL;
}

static void complete(qmp_conn *c, pending *cmd, const qmp_reply *reply) {
        if (cmd->fn)
                cmd->fn(c, reply, cmd->userdata);
        free(cmd);
}

/* One at a time from the head: a callback may free the connection, which
 * then fails the rest itself. */
static void fail_all(qmp_conn *c, int error, const char *message) {
        qmp_reply reply = { .error = error, .message = message };

        for (pending *cmd; (cmd = pop_command(c));)
                complete(c, cmd, &reply);
}

static out_fd *out_fd_pop(qmp_conn *c) {
        out_fd *a = c->out_fds;

        c->out_fds = a->next;
        safe_close(a->fd);
        free(a);
        return c->out_fds;
}

static void close_socket(qmp_conn *c) {
        if (c->fd >= 0) {
                /* Unregister before closing: epoll must not see a recycled fd. */
                (void) vmsig_endpoint_remove_fd(c->endpoint, c->fd_cookie);
                c->fd = safe_close(c->fd);
        }
        if (c->tok) {
                json_tokener_free(c->tok);
                c->tok = NULL;
        }
        c->out_len = 0;
        while (c->out_fds)
                (void) out_fd_pop(c);
        c->state = CONN_DISCONNECTED;
        c->peer_pid = 0;
}

static void notify(qmp_conn *c, qmp_conn_event event) {
        if (!c->closed && c->callbacks.state)
                c->callbacks.state(c, event, c->userdata);
}

/* An established connection ended: fail what it carried, tell the owner,
 * and come back later. */
static void disconnect(qmp_conn *c) {
        bool established = c->state >= CONN_GREETING;

        close_socket(c);
        if (!c->outage_logged)
                log_info("QMP connection of '%s' at %s closed; reconnecting.", conn_name(c), c->path);
        c->outage_logged = true;
        fail_all(c, -EIO, "QEMU closed the QMP connection before answering.");
        if (c->closed)
                return;
        if (established)
                notify(c, QMP_CONN_LOST);
        if (!c->closed)
                schedule_reconnect(c);
}

static int set_events(qmp_conn *c, uint32_t events) {
        if (c->fd < 0 || c->fd_events == events)
                return 0;
        c->fd_events = events;
        return vmsig_core_set_fd_events(vmsig_endpoint_get_core(c->endpoint), c->fd_cookie, events);
}

/* len bytes, with fd (if >= 0) on the first of them. */
static ssize_t send_chunk(int sock, const char *buf, size_t len, int fd) {
        union {
                struct cmsghdr cmsg;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        struct cmsghdr *cmsg;

        if (fd < 0)
                return send(sock, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        mh.msg_control = &control;
        mh.msg_controllen = sizeof control.buf;
        cmsg = CMSG_FIRSTHDR(&mh);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
        return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Never fails the connection itself: a socket that broke is seen by the
 * reading side, from the loop. */
static void flush(qmp_conn *c) {
        size_t done = 0;

        while (c->fd >= 0 && done < c->out_len) {
                out_fd *a = c->out_fds;
                bool with_fd = a && a->offset == done;
                /* A chunk never runs into the next descriptor's byte. */
                out_fd *next = with_fd ? a->next : a;
                size_t end = next ? next->offset : c->out_len;
                ssize_t n = send_chunk(c->fd, c->out + done, end - done, with_fd ? a->fd : -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                log_debug_errno(errno, "Cannot write to the QMP socket of '%s': %m", conn_name(c));
                        break;
                }
                if (with_fd) /* it went with the first byte, now QEMU's */
                        (void) out_fd_pop(c);
                done += (size_t) n;
        }
        memmove(c->out, c->out + done, c->out_len - done);
        c->out_len -= done;
        for (out_fd *a = c->out_fds; a; a = a->next)
                a->offset -= done;
        (void) set_events(c, EPOLLIN | (c->out_len > 0 ? EPOLLOUT : 0));
}

static int append(qmp_conn *c, const char *s, size_t len) {
        if (c->out_len + len > c->out_size) {
                size_t size = MAX(c->out_size * 2, c->out_len + len);
                char *t = realloc(c->out, size);
                if (!t)
                        return -ENOMEM;
                c->out = t;
                c->out_size = size;
        }
        memcpy(c->out + c->out_len, s, len);
        c->out_len += len;
        return 0;
}

/* Queues a duplicate of fd to go with the byte the output buffer is about
 * to get. */
static int attach_fd(qmp_conn *c, int fd, out_fd **ret) {
        out_fd *a = calloc(1, sizeof *a);

        if (!a)
                return -ENOMEM;
        a->offset = c->out_len;
        a->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (a->fd < 0) {
                free(a);
                return -errno;
        }
        *ret = a;
        return 0;
}

static void out_fd_append(qmp_conn *c, out_fd *a) {
        out_fd **p = &c->out_fds;

        while (*p)
                p = &(*p)->next;
        *p = a;
}

static int send_command(qmp_conn *c, const char *name, json_object *arguments, int fd, qmp_reply_fn fn,
                        void *userdata) {
        json_object *msg = json_object_new_object();
        pending *cmd = calloc(1, sizeof *cmd);
        out_fd *a = NULL;
        size_t out_len = c->out_len;
        const char *s;
        size_t len;
        int r = -ENOMEM;

        if (!msg || !cmd)
                goto fail;
        if (fd >= 0 && (r = attach_fd(c, fd, &a)) < 0)
                goto fail;
        r = -ENOMEM;
        *cmd = (pending) { .id = ++c->next_id, .fn = fn, .userdata = userdata };
        if (json_object_object_add(msg, "execute", json_object_new_string(name)) < 0 ||
            json_object_object_add(msg, "id", json_object_new_int64((int64_t) cmd->id)) < 0)
                goto fail;
        if (arguments && json_object_object_add(msg, "arguments", TAKE_PTR(arguments)) < 0)
                goto fail;
        s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len);
        if (!s || append(c, s, len) < 0 || append(c, "\n", 1) < 0) {
                c->out_len = out_len; /* no half command */
                goto fail;
        }
        json_object_put(msg);
        if (a)
                out_fd_append(c, a);
        QUEUE_PUSH(c->head, c->tail, cmd);
        flush(c);
        return 0;
fail:
        if (a) {
                safe_close(a->fd);
                free(a);
        }
        json_object_put(arguments);
        json_object_put(msg);
        free(cmd);
        return r;
}

int qmp_conn_execute(qmp_conn *c, const char *command, json_object *arguments, qmp_reply_fn fn, void *userdata) {
        return qmp_conn_execute_with_fd(c, command, arguments, -1, fn, userdata);
}

int qmp_conn_execute_with_fd(qmp_conn *c, const char *command, json_object *arguments, int fd, qmp_reply_fn fn,
                             void *userdata) {
        if (c->closed || c->state != CONN_READY) {
                json_object_put(arguments);
                return -ENOTCONN;
        }
        return send_command(c, command, arguments, fd, fn, userdata);
}

/* The monitor face: a command's (fn, userdata) ride along with it. */
typedef struct monitor_call {
        qmp_monitor_reply_fn fn;
        void *userdata;
} monitor_call;

static void on_monitor_reply(qmp_conn *c, const qmp_reply *reply, void *userdata) {
        monitor_call call = *(monitor_call *) userdata;

        free(userdata);
        call.fn(reply, call.userdata);
}

static int monitor_execute(void *data, const char *command, json_object *arguments, qmp_monitor_reply_fn fn,
                           void *userdata) {
        monitor_call *call = malloc(sizeof *call);
        int r;

        if (!call) {
                json_object_put(arguments);
                return -ENOMEM;
        }
        *call = (monitor_call) { fn, userdata };
        r = qmp_conn_execute(data, command, arguments, on_monitor_reply, call);
        if (r < 0)
                free(call);
        return r;
}

qmp_monitor qmp_conn_monitor(qmp_conn *c) {
        return (qmp_monitor) { .execute = monitor_execute, .data = c };
}

static void on_capabilities(qmp_conn *c, const qmp_reply *reply, void *userdata) {
        /* Also called when the connection failed under the command. */
        if (c->closed || c->state != CONN_NEGOTIATING)
                return;
        if (reply->error < 0) {
                log_warning("QEMU of '%s' refused qmp_capabilities: %s", conn_name(c), reply->message);
                return disconnect(c);
        }
        c->state = CONN_READY;
        c->backoff_usec = QMP_RECONNECT_INITIAL_USEC;
        c->outage_logged = false;
        log_info("Connected to QEMU of '%s' (pid %d) at %s.", conn_name(c), (int) c->peer_pid, c->path);
        notify(c, QMP_CONN_READY);
}

static void protocol_error(qmp_conn *c, const char *why) {
        log_warning("Protocol error on the QMP socket of '%s': %s", conn_name(c), why);
        disconnect(c);
}

static void handle_reply(qmp_conn *c, json_object *msg) {
        json_object *id;
        qmp_reply reply = {};
        char buf[512];
        pending *cmd;

        /* QEMU answers unparsable input with an error that carries no id:
         * it cannot be matched with anything, so it is only logged. */
        if (!json_object_object_get_ex(msg, "id", &id) || !json_object_is_type(id, json_type_int) ||
            !(cmd = take_command(c, (uint64_t) json_object_get_int64(id)))) {
                log_warning("Unexpected QMP reply from QEMU of '%s': %s", conn_name(c),
                            json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN));
                return;
        }
        qmp_reply_from_message(msg, buf, sizeof buf, &reply);
        complete(c, cmd, &reply);
}

static void handle_message(qmp_conn *c, json_object *msg) {
        json_object *v, *data = NULL;

        if (!json_object_is_type(msg, json_type_object))
                return protocol_error(c, "a message is not a JSON object");
        if (json_object_object_get_ex(msg, "QMP", &v)) {
                if (c->state != CONN_GREETING)
                        return protocol_error(c, "an unexpected greeting");
                c->state = CONN_NEGOTIATING;
                if (send_command(c, "qmp_capabilities", NULL, -1, on_capabilities, NULL) < 0)
                        return protocol_error(c, "out of memory for qmp_capabilities");
        } else if (json_object_object_get_ex(msg, "event", &v)) {
                (void) json_object_object_get_ex(msg, "data", &data);
                if (c->callbacks.event && json_object_is_type(v, json_type_string))
                        c->callbacks.event(c, json_object_get_string(v), data, c->userdata);
        } else if (json_object_object_get_ex(msg, "return", &v) || json_object_object_get_ex(msg, "error", &v))
                handle_reply(c, msg);
        else
                log_debug("Ignoring an unknown QMP message from QEMU of '%s'.", conn_name(c));
}

/* QMP messages are JSON objects, one after the other; the tokener keeps
 * a message that spans reads. Stops when a callback closed the socket. */
static void feed(qmp_conn *c, const char *buf, size_t n) {
        int fd = c->fd;

        for (size_t off = 0; off < n && c->fd == fd && !c->closed;) {
                json_object *msg = json_tokener_parse_ex(c->tok, buf + off, (int) (n - off));
                enum json_tokener_error e = json_tokener_get_error(c->tok);

                if (e == json_tokener_continue)
                        return;
                if (e != json_tokener_success)
                        return protocol_error(c, json_tokener_error_desc(e));
                off += json_tokener_get_parse_end(c->tok);
                handle_message(c, msg);
                json_object_put(msg);
        }
}

static void do_read(qmp_conn *c) {
        char buf[READ_CHUNK];
        int fd = c->fd;

        for (unsigned i = 0; i < READS_PER_WAKEUP && c->fd == fd && !c->closed; i++) {
                ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        if (n < 0)
                                log_debug_errno(errno, "QMP socket of '%s' failed: %m", conn_name(c));
                        return disconnect(c);
                }
                feed(c, buf, (size_t) n);
        }
}

static void connected(qmp_conn *c) {
        struct ucred cred = {};
        socklen_t len = sizeof cred;

        /* The pid tells a restarted QEMU from the one we knew. */
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
                c->peer_pid = cred.pid;
        c->tok = json_tokener_new();
        if (!c->tok) {
                log_oom();
                return disconnect(c);
        }
        c->state = CONN_GREETING;
        (void) set_events(c, EPOLLIN);
        (void) arm_timer(c, QMP_GREETING_WARN_USEC);
}

static void connect_failed(qmp_conn *c, int error) {
        bool absent = error == ENOENT || error == ECONNREFUSED;

        close_socket(c);
        if (!c->outage_logged) {
                if (absent)
                        log_info("QEMU of '%s' is not running (%s: %s); retrying.", conn_name(c), c->path,
                                 strerror(error));
                else
                        log_warning("Cannot connect to the QMP socket %s of '%s': %s; retrying.", c->path,
                                    conn_name(c), strerror(error));
        }
        c->outage_logged = true;
        if (absent)
                notify(c, QMP_CONN_ABSENT);
        if (!c->closed)
                schedule_reconnect(c);
}

static void on_socket(vmsig_core *core, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        qmp_conn *c = conn_ref(userdata);
        int error = 0;
        socklen_t len = sizeof error;

        if (c->state == CONN_CONNECTING) {
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        error = errno;
                if (error != 0)
                        connect_failed(c, error);
                else
                        connected(c);
        } else {
                /* Hangups and errors are read too: the data before them
                 * (a SHUTDOWN event, say) comes first, then EOF. */
                if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                        do_read(c);
                if ((revents & EPOLLOUT) && !c->closed)
                        flush(c);
        }
        conn_unref(c);
}

static int open_socket(qmp_conn *c) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        strncpy(sa.sun_path, c->path, sizeof sa.sun_path - 1);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
                return -errno;
        r = vmsig_endpoint_add_fd(c->endpoint, c->fd, EPOLLIN, on_socket, c, &c->fd_cookie);
        if (r < 0) {
                c->fd = safe_close(c->fd);
                return r;
        }
        c->fd_events = EPOLLIN;
        if (connect(c->fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                if (errno != EINPROGRESS)
                        return -errno;
                c->state = CONN_CONNECTING;
                return set_events(c, EPOLLOUT);
        }
        return 1;
}

static void on_timer(vmsig_core *core, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        qmp_conn *c = conn_ref(userdata);
        uint64_t expirations;
        int r;

        (void) !read(fd, &expirations, sizeof expirations);
        /* QMP serves one client at a time: a connection it accepted
         * stays silent while another client holds the monitor. Keep our
         * place, but say why nothing happens. */
        if (c->state == CONN_GREETING)
                log_warning("QEMU of '%s' has not greeted us on %s yet: is another QMP client connected to it?",
                            conn_name(c), c->path);
        if (c->state == CONN_DISCONNECTED) {
                r = open_socket(c);
                if (r < 0)
                        connect_failed(c, -r);
                else if (r > 0)
                        connected(c);
        }
        conn_unref(c);
}

int qmp_conn_new(vmsig_endpoint *ep, const char *path, const qmp_conn_callbacks *callbacks, void *userdata,
                 qmp_conn **ret) {
        qmp_conn *c = calloc(1, sizeof *c);
        int r = -ENOMEM;

        if (!c)
                return -ENOMEM;
        *c = (qmp_conn) {
                .n_ref = 1,
                .endpoint = ep,
                .callbacks = *callbacks,
                .userdata = userdata,
                .fd = -1,
                .timer_fd = -1,
                .backoff_usec = QMP_RECONNECT_INITIAL_USEC,
        };
        c->path = strdup(path);
        if (!c->path)
                goto fail;
        c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (c->timer_fd < 0) {
                r = -errno;
                goto fail;
        }
        r = vmsig_endpoint_add_fd(ep, c->timer_fd, EPOLLIN, on_timer, c, &c->timer_cookie);
        if (r < 0) {
                c->timer_fd = safe_close(c->timer_fd);
                goto fail;
        }
        /* From the loop, so the owner hears of the outcome from there too. */
        r = arm_timer(c, 0);
        if (r < 0)
                goto fail;
        *ret = c;
        return 0;
fail:
        qmp_conn_free(c, -ENODEV, NULL);
        return r;
}

qmp_conn *qmp_conn_free(qmp_conn *c, int error, const char *message) {
        if (!c || c->closed)
                return NULL;
        c->closed = true;
        close_socket(c);
        if (c->timer_fd >= 0) {
                (void) vmsig_endpoint_remove_fd(c->endpoint, c->timer_cookie);
                c->timer_fd = safe_close(c->timer_fd);
        }
        fail_all(c, error, message);
        conn_unref(c);
        return NULL;
}

bool qmp_conn_is_ready(const qmp_conn *c) {
        return c && !c->closed && c->state == CONN_READY;
}

pid_t qmp_conn_peer_pid(const qmp_conn *c) {
        return c && c->state >= CONN_GREETING ? c->peer_pid : 0;
}
