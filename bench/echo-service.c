/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * echo-service: the baseline for the bench programs. A trivial sd-bus
 * service built the way vmsigd is (sd-event loop, sd_bus_open_system(), one
 * object vtable) but doing nothing else: it owns org.vmsig.BenchEcho and
 * serves
 *   /org/vmsig/BenchEcho  org.vmsig.BenchEcho
 *     Echo(s) -> s          returns its argument
 *     EchoFd() -> h t t t a(ttt)
 *                           an fd of a memfd it made at start-up, in the
 *                           shape of Endpoint.SubscribeMemctx's reply
 *     EchoBatch(a(tay) writes, a{sv} options)
 *                           Endpoint.MemWriteBatch's call and empty reply:
 *                           reads every entry and the options, keeps none
 *     Version  property s   a constant
 *     State    property s   a constant
 * With --private-socket=PATH it serves the same object peer-to-peer on a
 * unix socket too, the way vmsigd's private socket does.
 * Exits on SIGTERM/SIGINT or when the bus goes away.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "bench-lib.h"

#define ECHO_FD_SIZE (4u << 20)

static int echo_fd = -1; /* the memfd EchoFd hands out */

static int method_echo(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *s;
        int r;

        r = sd_bus_message_read(m, "s", &s);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "s", s);
}

/* The same reply as SubscribeMemctx: the fd (sd-bus sends a dup of it),
 * three integers and one range. */
static int method_echo_fd(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "httta(ttt)", echo_fd, UINT64_C(0), UINT64_C(1),
                                          (uint64_t) ECHO_FD_SIZE, 1, UINT64_C(0), (uint64_t) ECHO_FD_SIZE,
                                          UINT64_C(0));
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

/* What the bus must carry for a MemWriteBatch, and the least its receiver
 * must do: read each entry (sd-bus hands out the bytes in place) and the
 * options, then answer. */
static int method_echo_batch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const void *data;
        uint64_t gpa;
        size_t len;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(tay)");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'r', "tay")) > 0) {
                r = sd_bus_message_read(m, "t", &gpa);
                if (r >= 0)
                        r = sd_bus_message_read_array(m, 'y', &data, &len);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0)
                r = sd_bus_message_skip(m, "a{sv}");
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", "0.0-echo");
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", (const char *) userdata);
}

static const sd_bus_vtable echo_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Echo", SD_BUS_ARGS("s", text), SD_BUS_RESULT("s", text), method_echo,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("EchoFd", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("h", fd, "t", dtb, "t", epoch, "t", size, "a(ttt)", ranges),
                                method_echo_fd, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("EchoBatch", SD_BUS_ARGS("a(tay)", writes, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_echo_batch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* Peer-to-peer connections, as vmsigd's private socket serves them. */
typedef struct p2p_connection {
        struct p2p_connection *next;
        sd_bus *bus;
        sd_bus_slot *slot;
        bool settling; /* accepted; its first message may sit unread */
} p2p_connection;

static p2p_connection *p2p_connections;
static sd_event_source *settle_source, *reap_source;

static void p2p_connection_free(p2p_connection *c) {
        for (p2p_connection **p = &p2p_connections; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        sd_bus_slot_unref(c->slot);
        sd_bus_flush_close_unref(c->bus);
        free(c);
}

/* Closed connections go at idle priority, after sd-bus is done with them. */
static int on_p2p_reap(sd_event_source *s, void *userdata) {
        for (p2p_connection *c = p2p_connections, *next; c; c = next) {
                next = c->next;
                if (sd_bus_is_open(c->bus) <= 0)
                        p2p_connection_free(c);
        }
        return sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

static int on_p2p_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return sd_event_source_set_enabled(reap_source, SD_EVENT_ONESHOT);
}

/* sd-bus 252 does not look at its read buffer again when a client's BEGIN
 * and first message arrive in one read (see src/bus/bus-private.c): after
 * each loop iteration, process new connections until they are idle. */
static int on_settle(sd_event_source *s, void *userdata) {
        bool pending = false;

        for (p2p_connection *c = p2p_connections; c; c = c->next) {
                if (!c->settling)
                        continue;
                if (sd_bus_is_ready(c->bus) <= 0) {
                        pending = true;
                        continue;
                }
                c->settling = false;
                while (sd_bus_process(c->bus, NULL) > 0)
                        ;
        }
        return pending ? 0 : sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

static int p2p_start(sd_event *event, int fd) {
        p2p_connection *c = calloc(1, sizeof *c);
        sd_id128_t id;
        int r;

        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        c->next = p2p_connections;
        p2p_connections = c;
        r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_new(&c->bus);
        if (r < 0) {
                close(fd);
                p2p_connection_free(c);
                return r;
        }
        r = sd_bus_set_fd(c->bus, fd, fd);
        if (r >= 0)
                r = sd_bus_set_server(c->bus, 1, id);
        if (r >= 0)
                r = sd_bus_negotiate_fds(c->bus, 1);
        if (r >= 0)
                r = sd_bus_attach_event(c->bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_match_signal(c->bus, NULL, NULL, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                        "Disconnected", on_p2p_disconnected, NULL);
        if (r >= 0)
                r = sd_bus_add_object_vtable(c->bus, &c->slot, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, echo_vtable,
                                             (void *) "running");
        if (r >= 0)
                r = sd_bus_start(c->bus);
        if (r < 0) {
                p2p_connection_free(c);
                return r;
        }
        c->settling = true;
        return sd_event_source_set_enabled(settle_source, SD_EVENT_ON);
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int r;

        if (cfd < 0)
                return 0;
        r = p2p_start(sd_event_source_get_event(s), cfd);
        if (r < 0)
                fprintf(stderr, "echo-service: cannot set up a private connection: %s\n", strerror(-r));
        return 0;
}

static int p2p_listen(sd_event *event, const char *path, sd_event_source **ret) {
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        mode_t old_umask;
        int fd, r;

        if (strlen(path) >= sizeof addr.sun_path)
                return -ENAMETOOLONG;
        strcpy(addr.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        old_umask = umask(0177);
        r = bind(fd, (struct sockaddr *) &addr, sizeof addr) < 0 || listen(fd, SOMAXCONN) < 0 ? -errno : 0;
        umask(old_umask);
        if (r >= 0)
                r = sd_event_add_io(event, ret, fd, EPOLLIN, on_accept, NULL);
        if (r >= 0)
                r = sd_event_source_set_io_fd_own(*ret, true);
        if (r < 0)
                close(fd);
        return r;
}

/* The private socket, and the sources that settle and reap its peers. */
static int p2p_serve(sd_event *event, const char *path, sd_event_source **ret) {
        int r = sd_event_add_post(event, &settle_source, on_settle, NULL);

        if (r >= 0)
                r = sd_event_source_set_enabled(settle_source, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_defer(event, &reap_source, on_p2p_reap, NULL);
        if (r >= 0)
                r = sd_event_source_set_priority(reap_source, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(reap_source, SD_EVENT_OFF);
        return r < 0 ? r : p2p_listen(event, path, ret);
}

static int make_echo_fd(void) {
        int fd = memfd_create("bench-echo", MFD_CLOEXEC);

        if (fd < 0)
                return -errno;
        if (ftruncate(fd, ECHO_FD_SIZE) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

int main(int argc, char *argv[]) {
        const char *private_socket = NULL;
        const bench_option options[] = { BENCH_OPT_S("private-socket", &private_socket), {} };
        sd_event_source *listen_source = NULL;
        sd_event *event = NULL;
        sd_bus *bus = NULL;
        sd_bus_slot *slot = NULL;
        sigset_t mask;
        int r;

        bench_parse_options(argc, argv, options, "echo-service [--private-socket PATH]\n");

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        r = sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ? -errno : 0;
        if (r >= 0)
                r = echo_fd = make_echo_fd();
        if (r >= 0)
                r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_set_exit_on_disconnect(bus, true);
        if (r >= 0)
                /* The object's userdata is the State value. */
                r = sd_bus_add_object_vtable(bus, &slot, BENCH_ECHO_PATH, BENCH_ECHO_INTERFACE, echo_vtable,
                                             (void *) "running");
        if (r >= 0)
                r = sd_bus_request_name(bus, BENCH_ECHO_NAME, 0);
        if (r >= 0 && private_socket)
                r = p2p_serve(event, private_socket, &listen_source);
        if (r < 0)
                goto finish;

        r = sd_event_loop(event);
finish:
        if (r < 0)
                fprintf(stderr, "echo-service: %s\n", strerror(-r));
        while (p2p_connections)
                p2p_connection_free(p2p_connections);
        sd_event_source_disable_unref(listen_source);
        sd_event_source_disable_unref(settle_source);
        sd_event_source_disable_unref(reap_source);
        if (private_socket)
                (void) unlink(private_socket);
        sd_bus_slot_unref(slot);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(event);
        if (echo_fd >= 0)
                close(echo_fd);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
