/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the QMP reader and what the QEMU backend does with
 * what it reads: the input is what a hostile or broken QEMU says on the
 * monitor socket. Each input gets a fresh core with one QEMU endpoint
 * (vmsig_qmp_new(), as vmsigd attaches it) whose QMP socket the harness
 * listens on; the harness plays QEMU, writing the input to the accepted
 * connection in chunks and running the loop between them, so JSON split
 * across reads, several messages in one read, greetings, replies to the
 * ids vmsigd uses (qmp_capabilities is 1, query-status 2, then the
 * requests below in order) and events all go through the real code.
 *
 * Checks: nothing crashes or leaks; everything vmsigd writes is a JSON
 * command with an increasing id; the loop goes idle (no livelock); and
 * every request the harness made completes exactly once, at the latest
 * when the endpoint is detached.
 *
 * Input: u8 flags (bit 0: the endpoint has a RAM file, so the memctx side
 * and the bootstrap run too; bits 1-3: the chunk size, see chunk_sizes),
 * then lines. A line is written to the socket with its newline, unless it
 * is a control line:
 *   #p #r #R #o #k   Pause, Resume, Reset, PowerOff, Kill
 *   #iTCV            inject one input event: type T (mod 4), code C, value V (signed)
 *   #c               cancel the waiting input
 *   #w               write 16 bytes of guest RAM
 *   #h               hang up: QEMU goes away (the rest is not sent)
 *   #d               detach the endpoint now (the rest is not sent)
 *
 * Seeds: tests/data/fuzz-qmp (QEMU sessions: greeting, negotiation,
 * status, events, errors, hang-ups).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "fuzz.h"
#include "log.h"
#include "macro.h"
#include "qmp.h"
#include "vmsig-core.h"
#include "vmsig-endpoint.h"

#define RAM_SIZE (64 * 1024)
#define LOOP_MAX 20000 /* iterations before an idle loop counts as a livelock */
#define SENT_MAX (64 * 1024)

typedef struct Session {
        sd_event *event;
        vmsig_core *core;
        vmsig_endpoint *ep;
        int qemu_fd; /* our end: we are QEMU */
        unsigned issued, completed;
        char sent[SENT_MAX]; /* what vmsigd wrote, not yet a whole line */
        size_t n_sent;
        int64_t last_id;
} Session;

static int listen_fd = -1, ram_fd = -1;
static char socket_path[108], ram_path[512];

static const size_t chunk_sizes[8] = { SIZE_MAX, 1, 2, 3, 7, 16, 64, 4096 };

static void setup_once(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *dir = fuzz_scratch_dir();

        if (listen_fd >= 0)
                return;
        log_set_max_level(LOG_DEBUG); /* every message formatted, under the sanitizers too */
        if (!dir || (size_t) snprintf(socket_path, sizeof socket_path, "%s/qmp", dir) >= sizeof socket_path)
                abort();
        memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(listen_fd, 16) < 0)
                abort();
        if (fuzz_scratch_write("ram", "", 0, ram_path, sizeof ram_path) < 0)
                abort();
        ram_fd = open(ram_path, O_RDWR | O_CLOEXEC);
        if (ram_fd < 0)
                abort();
}

/* Runs the loop until nothing is left to do right now. */
static void settle(Session *s) {
        int r, i;

        for (i = 0; i < LOOP_MAX && (r = sd_event_run(s->event, 0)) > 0; i++)
                ;
        fuzz_check(i < LOOP_MAX);
        fuzz_check(r >= 0);
}

static void on_done(const vmsig_result *res, void *userdata) {
        Session *s = userdata;

        fuzz_check(res->error <= 0);
        s->completed++;
        fuzz_check(s->completed <= s->issued);
}

/* One command vmsigd sent: {"execute": NAME, "id": N[, "arguments": {...}]}. */
static void check_command(Session *s, const char *line) {
        json_object *msg = json_tokener_parse(line), *v;

        fuzz_check(msg && json_object_is_type(msg, json_type_object));
        fuzz_check(json_object_object_get_ex(msg, "execute", &v) && json_object_is_type(v, json_type_string));
        fuzz_check(json_object_object_get_ex(msg, "id", &v) && json_object_is_type(v, json_type_int));
        fuzz_check(json_object_get_int64(v) > s->last_id);
        s->last_id = json_object_get_int64(v);
        if (json_object_object_get_ex(msg, "arguments", &v))
                fuzz_check(json_object_is_type(v, json_type_object));
        json_object_put(msg);
}

static void read_commands(Session *s) {
        char *nl;
        ssize_t n;

        while (s->qemu_fd >= 0 && (n = recv(s->qemu_fd, s->sent + s->n_sent, SENT_MAX - 1 - s->n_sent, MSG_DONTWAIT)) > 0) {
                s->n_sent += (size_t) n;
                s->sent[s->n_sent] = '\0';
                while ((nl = strchr(s->sent, '\n'))) {
                        *nl = '\0';
                        check_command(s, s->sent);
                        s->n_sent -= (size_t) (nl + 1 - s->sent);
                        memmove(s->sent, nl + 1, s->n_sent + 1);
                }
                fuzz_check(s->n_sent < SENT_MAX - 1);
        }
}

static void send_data(Session *s, const uint8_t *p, size_t len, size_t chunk) {
        while (len > 0 && s->qemu_fd >= 0) {
                size_t n = MIN(len, chunk);
                ssize_t k = send(s->qemu_fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (k < 0 && errno == EAGAIN)
                        k = 0; /* vmsigd reads on the next iteration */
                else if (k < 0)
                        return; /* vmsigd hung up on us: a protocol error */
                p += k;
                len -= (size_t) k;
                settle(s);
                read_commands(s);
        }
}

static void hang_up(Session *s) {
        s->qemu_fd = safe_close(s->qemu_fd);
        settle(s);
}

static void detach(Session *s) {
        if (!s->ep)
                return;
        fuzz_check(vmsig_core_detach_endpoint(s->core, s->ep) == 0);
        s->ep = NULL;
        settle(s);
}

static void issue(Session *s, int r) {
        /* Refused at once: no completion follows. */
        if (r >= 0)
                s->issued++;
}

static void inject(Session *s, const uint8_t *args, size_t n) {
        vmsig_input_event e = {
                .type = n > 0 ? args[0] % 4 : 0,
                .code = n > 1 ? args[1] : 30,
                .value = n > 2 ? (int8_t) args[2] : 1,
        };

        issue(s, vmsig_endpoint_inject_input(s->ep, &e, 1, on_done, s));
}

/* Returns false when nothing more is to be sent. */
static bool control(Session *s, const uint8_t *line, size_t len) {
        static const char ops[] = "prRok"; /* in vmsig_lifecycle_op order */
        const char *op = len > 1 ? memchr(ops, line[1], sizeof ops - 1) : NULL;

        if (!s->ep)
                return false;
        if (op)
                issue(s, vmsig_endpoint_lifecycle(s->ep, (vmsig_lifecycle_op) (op - ops), on_done, s));
        else if (len > 1 && line[1] == 'i')
                inject(s, line + 2, len - 2);
        else if (len > 1 && line[1] == 'c')
                vmsig_endpoint_cancel_input(s->ep, "cancelled by the fuzzer");
        else if (len > 1 && line[1] == 'w')
                (void) vmsig_endpoint_write_ram(s->ep, RAM_SIZE / 2, "0123456789abcdef", 16);
        else if (len > 1 && line[1] == 'h')
                hang_up(s);
        else if (len > 1 && line[1] == 'd')
                detach(s);
        settle(s);
        read_commands(s);
        return s->qemu_fd >= 0 && s->ep;
}

static void play(Session *s, FuzzInput *in, size_t chunk) {
        while (in->left > 0) {
                const uint8_t *line = in->p, *nl = memchr(in->p, '\n', in->left);
                size_t len = nl ? (size_t) (nl - line) + 1 : in->left; /* with its newline */

                in->p += len;
                in->left -= len;
                if (line[0] != '#')
                        send_data(s, line, len, chunk);
                else if (!control(s, line, nl ? len - 1 : len))
                        return;
        }
}

/* Connections of an earlier input that reconnected meanwhile. */
static void drain_backlog(void) {
        int fd;

        while ((fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
                close(fd);
}

static void connect_qemu(Session *s) {
        for (int i = 0; i < 1000 && s->qemu_fd < 0; i++) {
                fuzz_check(sd_event_run(s->event, 1000) >= 0);
                s->qemu_fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        }
        fuzz_check(s->qemu_fd >= 0);
}

static void session_start(Session *s, bool with_ram) {
        vmsig_qmp_spec spec = { .name = "fuzz", .qmp_socket = socket_path, .ram_path = with_ram ? ram_path : NULL };
        vmsig_endpoint_spec ep_spec;

        if (ftruncate(ram_fd, 0) < 0 || ftruncate(ram_fd, RAM_SIZE) < 0)
                abort();
        fuzz_check(sd_event_new(&s->event) >= 0);
        fuzz_check(vmsig_core_new(s->event, &s->core) == 0);
        fuzz_check(vmsig_qmp_new(&spec, &ep_spec, NULL) == 0);
        fuzz_check(vmsig_core_attach_endpoint(s->core, &ep_spec, &s->ep) == 0);
        connect_qemu(s);
        settle(s);
}

static void session_end(Session *s) {
        detach(s);
        fuzz_check(s->completed == s->issued);
        s->qemu_fd = safe_close(s->qemu_fd);
        vmsig_core_free(s->core);
        sd_event_unref(s->event);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Session s;
        FuzzInput in = { .p = data, .left = size };
        uint8_t flags = fuzz_u8(&in);

        int fds;

        setup_once();
        drain_backlog();
        fds = fuzz_count_fds();
        s = (Session) { .qemu_fd = -1 };
        session_start(&s, flags & 1);
        play(&s, &in, chunk_sizes[(flags >> 1) & 7]);
        session_end(&s);
        fuzz_check(fuzz_count_fds() == fds);
        return 0;
}

void fuzz_teardown(void) {
        listen_fd = safe_close(listen_fd);
        ram_fd = safe_close(ram_fd);
        fuzz_scratch_done();
}
