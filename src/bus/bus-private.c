/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>

#include "bus-audit.h"
#include "bus-front.h"
#include "bus-private.h"
#include "event-util.h"
#include "list.h"
#include "log.h"
#include "macro.h"

/* Root-only, but still bounded so a runaway script cannot eat all fds. */
#define PRIVATE_CONNECTIONS_MAX 256
/* A peer that stops reading gets everything sent to it queued in vmsigd,
 * once its socket buffer (which sd-bus makes large) is full: about 1 KiB
 * of memory per message, without bound. Past this many queued messages it
 * is disconnected, as dbus-daemon would for a bus client; it finds its
 * connection closed, its leases and subscriptions ended. A reader merely
 * behind is far from it. Checked every second while some peer has
 * messages queued, and only then: an idle peer costs no wakeups (a timer
 * that fired regardless kept the loop from ever being quiet, and so
 * memory-trim.c from ever trimming the heap, while a root control stayed
 * connected). */
#define PRIVATE_QUEUE_MAX 4096
#define PRIVATE_QUEUE_CHECK_USEC (1000 * 1000)
/* A connection that has not authenticated within this is closed: sd-bus
 * would wait 90 s, and meanwhile it counts against the limit of
 * connections. A local client takes a millisecond or two. */
#define PRIVATE_AUTH_TIMEOUT_USEC (3 * 1000 * 1000)
/* At most this many connections may be authenticating at once. One more
 * closes the oldest of them, as dbus-daemon does past
 * max_incomplete_connections: a flood of connections that never speak
 * then holds no place for long, while a real client, which authenticates
 * at once, is not turned away. */
#define PRIVATE_AUTHENTICATING_MAX 32

typedef struct private_connection {
        vmsig_bus_private *owner;
        struct private_connection *prev, *next;
        sd_bus *bus;
        vmsig_bus_front *front;
        sd_bus_slot *disconnected;
        sd_event_source *auth_timer; /* while it authenticates */
        unsigned number; /* the N of its label p2p-N */
        bool settling; /* accepted, first messages maybe not dispatched yet */
} private_connection;

struct vmsig_bus_private {
        sd_event *event;
        vmsig_core *core;
        const vmsig_bus_context *ctx;
        char *path;
        int fd;
        sd_event_source *accept_source;
        sd_event_source *settle_source;
        sd_event_source *exit_source;
        sd_event_source *queue_source; /* the check, armed while messages are queued */
        sd_event_source *watch_source; /* after each iteration with work: anything queued? */
        private_connection *connections; /* newest first */
        size_t n_connections;
        size_t n_authenticating;
        unsigned n_crowded_out; /* closed while authenticating, this flood */
        unsigned n_accepted; /* names private peers p2p-1, p2p-2, ... */
};

/* c authenticated, or is closed: it no longer counts as authenticating.
 * A flood is over when nothing is authenticating any more. */
static void authentication_over(private_connection *c) {
        vmsig_bus_private *p = c->owner;

        if (!c->auth_timer)
                return;
        c->auth_timer = sd_event_source_disable_unref(c->auth_timer);
        assert(p->n_authenticating > 0);
        if (--p->n_authenticating == 0 && p->n_crowded_out > 0) {
                log_debug("The flood of private connections is over: %u were closed before they authenticated.",
                          p->n_crowded_out);
                p->n_crowded_out = 0;
        }
}

static void connection_free(private_connection *c) {
        vmsig_bus_private *p = c->owner;

        LIST_REMOVE(p->connections, c);
        p->n_connections--;
        if (!p->connections)
                (void) sd_event_source_set_enabled(p->watch_source, SD_EVENT_OFF);
        authentication_over(c);
        c->disconnected = sd_bus_slot_unref(c->disconnected);
        c->front = vmsig_bus_front_free(c->front);
        /* Never sd_bus_flush(): it waits, without a timeout, until the
         * peer took everything queued for it (or, before that, until it
         * authenticated), and a peer that does not read would hold up the
         * whole daemon, its shutdown included. What it did not take is
         * dropped with the connection. */
        c->bus = sd_bus_close_unref(c->bus);
        free(c);
}

static int on_auth_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        private_connection *c = userdata;

        log_debug("Private connection p2p-%u did not authenticate within %u s: closing it.", c->number,
                  (unsigned) (PRIVATE_AUTH_TIMEOUT_USEC / 1000000));
        connection_free(c);
        return 0;
}

/* sd-bus (as of v252) does not look at its read buffer again when a
 * client's BEGIN and its first message arrive in one read: the message
 * would wait for more input that never comes. After each loop iteration,
 * process new connections until they have nothing left, once they are
 * running. */
static int on_settle(sd_event_source *s, void *userdata) {
        vmsig_bus_private *p = userdata;
        bool pending = false;

        for (private_connection *c = p->connections, *next; c; c = next) {
                next = c->next;
                if (!c->settling)
                        continue;
                if (sd_bus_is_ready(c->bus) <= 0) {
                        pending = true;
                        continue;
                }
                c->settling = false;
                authentication_over(c);
                sd_bus *bus = sd_bus_ref(c->bus); /* c may go with a Disconnected */
                while (sd_bus_process(bus, NULL) > 0)
                        ;
                sd_bus_unref(bus);
        }
        if (!pending)
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        private_connection *c = userdata;

        log_debug("Private connection closed.");
        /* sd-bus holds its own reference while it dispatches this. */
        connection_free(c);
        return 0;
}

/* sd-bus flushes every bus attached to the loop when the loop exits, and
 * that flush is the blocking one above: close the private connections
 * first. */
static int on_loop_exit(sd_event_source *s, void *userdata) {
        vmsig_bus_private *p = userdata;

        if (p->connections)
                log_debug("Closing %zu private connections.", p->n_connections);
        while (p->connections)
                connection_free(p->connections);
        return 0;
}

static bool anything_queued(vmsig_bus_private *p) {
        for (private_connection *c = p->connections; c; c = c->next) {
                uint64_t queued = 0;

                if (sd_bus_get_n_queued_write(c->bus, &queued) >= 0 && queued > 0)
                        return true;
        }
        return false;
}

/* Once a second from now, unless already due. */
static void queue_check_arm(vmsig_bus_private *p) {
        int enabled = SD_EVENT_OFF;

        if (sd_event_source_get_enabled(p->queue_source, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        if (sd_event_source_set_time_relative(p->queue_source, PRIVATE_QUEUE_CHECK_USEC) >= 0)
                (void) sd_event_source_set_enabled(p->queue_source, SD_EVENT_ONESHOT);
}

/* A post source: runs only after iterations that did something, which is
 * when a queue can have grown. */
static int on_watch(sd_event_source *s, void *userdata) {
        vmsig_bus_private *p = userdata;

        if (anything_queued(p))
                queue_check_arm(p);
        return 0;
}

static int on_queue_check(sd_event_source *s, uint64_t usec, void *userdata) {
        vmsig_bus_private *p = userdata;

        for (private_connection *c = p->connections, *next; c; c = next) {
                uint64_t queued = 0;

                next = c->next;
                if (sd_bus_get_n_queued_write(c->bus, &queued) < 0 || queued <= PRIVATE_QUEUE_MAX)
                        continue;
                log_warning("Private peer p2p-%u does not read what it is sent (%" PRIu64 " messages queued): "
                            "disconnecting it.", c->number, queued);
                connection_free(c);
        }
        if (anything_queued(p))
                queue_check_arm(p);
        return 0;
}

static int connection_start(private_connection *c, int fd) {
        sd_id128_t id;
        int r;

        r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_new(&c->bus);
        if (r < 0)
                return r;
        r = sd_bus_set_fd(c->bus, fd, fd);
        if (r >= 0)
                r = sd_bus_set_server(c->bus, 1, id);
        if (r >= 0)
                r = sd_bus_negotiate_fds(c->bus, 1);
        if (r >= 0)
                r = sd_bus_attach_event(c->bus, c->owner->event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_match_signal(c->bus, &c->disconnected, NULL, "/org/freedesktop/DBus/Local",
                                        "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, c);
        if (r >= 0)
                r = sd_bus_start(c->bus);
        if (r >= 0)
                r = vmsig_bus_front_new(c->owner->core, c->bus, c->owner->ctx, &c->front);
        if (r >= 0) {
                char label[32];
                c->number = ++c->owner->n_accepted;
                snprintf(label, sizeof label, "p2p-%u", c->number);
                r = vmsig_bus_front_set_peer_label(c->front, label);
        }
        return r;
}

static void refuse(int fd, const struct ucred *cred, const char *reason) {
        bus_audit_log(&(bus_audit_record) {
                .uid = cred->uid,
                .pid = cred->pid,
                .sender = "p2p",
                .action = "connect",
                .result = "denied",
                .reason = reason,
        });
        safe_close(fd);
}

/* The oldest connection still authenticating makes room for a new one. */
static void crowd_out_oldest(vmsig_bus_private *p) {
        private_connection *oldest = NULL;

        for (private_connection *c = p->connections; c; c = c->next)
                if (c->auth_timer)
                        oldest = c;
        assert(oldest);
        if (p->n_crowded_out++ == 0)
                log_warning("%zu private connections are authenticating at once: each new one closes the oldest "
                            "of them until none is left authenticating.", p->n_authenticating);
        connection_free(oldest);
}

static void accept_one(vmsig_bus_private *p, int fd) {
        struct ucred cred = {};
        socklen_t len = sizeof cred;
        private_connection *c;
        int r;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof cred) {
                log_warning_errno(errno, "Cannot read the credentials of a private connection: %m");
                safe_close(fd);
                return;
        }
        if (cred.uid != 0)
                return refuse(fd, &cred, "p2p-not-root");
        if (p->n_authenticating >= PRIVATE_AUTHENTICATING_MAX)
                crowd_out_oldest(p);
        if (p->n_connections >= PRIVATE_CONNECTIONS_MAX)
                return refuse(fd, &cred, "p2p-too-many");

        c = calloc(1, sizeof *c);
        if (!c) {
                log_oom();
                safe_close(fd);
                return;
        }
        c->owner = p;
        LIST_PREPEND(p->connections, c);
        p->n_connections++;
        r = connection_start(c, fd);
        if (r >= 0)
                r = sd_event_add_time_relative(p->event, &c->auth_timer, CLOCK_MONOTONIC, PRIVATE_AUTH_TIMEOUT_USEC,
                                               0, on_auth_timeout, c);
        if (r < 0) {
                log_warning_errno(r, "Cannot set up a private connection: %m");
                if (!c->bus)
                        safe_close(fd);
                connection_free(c);
                return;
        }
        p->n_authenticating++;
        c->settling = true;
        (void) sd_event_source_set_enabled(p->settle_source, SD_EVENT_ON);
        (void) sd_event_source_set_enabled(p->watch_source, SD_EVENT_ON);
        log_debug("Private connection from pid %d.", (int) cred.pid);
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(errno, "Cannot accept a private connection: %m");
                return 0;
        }
        accept_one(userdata, cfd);
        return 0;
}

/* Removes a socket at path; anything else there is not ours (-EEXIST:
 * bind() would say EADDRINUSE, which misleads). */
static int remove_stale_socket(const char *path) {
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

/* The socket file is root's alone (0600); SO_PEERCRED is checked anyway,
 * since a process with CAP_DAC_OVERRIDE may connect as another uid. It is
 * bound aside and renamed into place once it listens, so that whoever
 * finds it at path can connect. */
static int listen_on(const char *path) {
        union {
                struct sockaddr sa;
                struct sockaddr_un un;
        } addr = { .un.sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        mode_t old_umask;
        int r;

        if (snprintf(addr.un.sun_path, sizeof addr.un.sun_path, "%s.new", path) >= (int) sizeof addr.un.sun_path)
                return -ENAMETOOLONG;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        r = remove_stale_socket(path);
        if (r >= 0)
                r = remove_stale_socket(addr.un.sun_path);
        if (r < 0)
                return r;
        old_umask = umask(0177);
        r = bind(fd, &addr.sa, sizeof addr.un);
        umask(old_umask);
        if (r < 0)
                return -errno;
        if (listen(fd, SOMAXCONN) < 0 || rename(addr.un.sun_path, path) < 0) {
                r = -errno;
                (void) unlink(addr.un.sun_path);
                return r;
        }
        return TAKE_FD(fd);
}

int vmsig_bus_private_new(sd_event *event, vmsig_core *core, const vmsig_bus_context *ctx, const char *path,
                          vmsig_bus_private **ret) {
        _cleanup_(vmsig_bus_private_freep) vmsig_bus_private *p = NULL;
        _cleanup_free_ char *copy = NULL;
        int r;

        assert(event);
        assert(core);
        assert(ctx);
        assert(path);
        assert(ret);

        p = calloc(1, sizeof *p);
        copy = strdup(path);
        if (!p || !copy)
                return -ENOMEM;
        p->event = sd_event_ref(event);
        p->core = core;
        p->ctx = ctx;
        p->fd = listen_on(path);
        if (p->fd < 0)
                return p->fd; /* nothing of ours at path to unlink */
        p->path = TAKE_PTR(copy);
        r = sd_event_add_io(event, &p->accept_source, p->fd, EPOLLIN, on_accept, p);
        if (r >= 0)
                r = event_add_post_off(event, &p->settle_source, on_settle, p);
        if (r >= 0)
                r = sd_event_add_exit(event, &p->exit_source, on_loop_exit, p);
        if (r >= 0) /* before sd-bus's own exit sources, which run at 0 */
                r = sd_event_source_set_priority(p->exit_source, SD_EVENT_PRIORITY_IMPORTANT);
        if (r >= 0)
                r = event_add_timer_off(event, &p->queue_source, PRIVATE_QUEUE_CHECK_USEC, on_queue_check, p);
        if (r >= 0)
                r = event_add_post_off(event, &p->watch_source, on_watch, p);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

vmsig_bus_private *vmsig_bus_private_free(vmsig_bus_private *p) {
        if (!p)
                return NULL;
        while (p->connections)
                connection_free(p->connections);
        p->accept_source = sd_event_source_disable_unref(p->accept_source);
        p->settle_source = sd_event_source_disable_unref(p->settle_source);
        p->exit_source = sd_event_source_disable_unref(p->exit_source);
        p->queue_source = sd_event_source_disable_unref(p->queue_source);
        p->watch_source = sd_event_source_disable_unref(p->watch_source);
        p->fd = safe_close(p->fd);
        if (p->path)
                (void) unlink(p->path);
        free(p->path);
        sd_event_unref(p->event);
        return mfree(p);
}

size_t vmsig_bus_private_connections(const vmsig_bus_private *p) {
        return p ? p->n_connections : 0;
}
