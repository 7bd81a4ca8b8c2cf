/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fake QEMUs for bench-load: per VM a QMP server on a unix socket, served
 * from the one loop, and a RAM file; and the trigger files that make
 * vmsigd attach and detach them. 64 real QEMUs would not fit on 2 cores;
 * what vmsigd sees of one is its QMP socket and its RAM file, and these
 * behave like QEMU 7.2's: the greeting, capabilities negotiation, one
 * client at a time (the next one waits, ungreeted), stop/cont/system_reset
 * with their events, query-status, and what vmsigd asks on connecting
 * (qom-list and qom-get of its memory backend, info mtree -f, info
 * registers of a vCPU in its firmware). While the load runs each VM also
 * detaches and comes back, crashes, quits, sends garbage, and stops and
 * resumes on its own. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench-lib.h"
#include "load.h"

#define VM_RAM_SIZE (4ULL << 20)
#define WAIT_USEC (15ULL * 1000000ULL) /* for vmsigd to attach or detach a VM */

typedef enum vm_state {
        VM_DETACHED,
        VM_ATTACHING,
        VM_ATTACHED,
        VM_DETACHING,
        VM_REWRITING, /* a changed file: detached, then attached again */
        VM_STUCK,     /* vmsigd never answered; already reported */
} vm_state;

typedef struct fake_conn fake_conn;
struct fake_conn {
        fake_vm *vm;
        int fd;
        sd_event_source *src;
        char in[65536];
        size_t in_len;
        char *out;
        size_t out_len, out_size;
        bool greeted, negotiated, queried;
        fake_conn *next;
};

struct fake_vm {
        load_ctx *ctx;
        unsigned index;
        char name[32];
        char *sock, *ram, *trigger;
        load_target *target; /* NULL: the decoy */
        int listen_fd;
        sd_event_source *listen_src, *timer, *restart;
        fake_conn *conns; /* the first one is served */
        bool running, down;
        vm_state state;
        bool want_attached;
        uint64_t deadline;
        unsigned uuid_gen;
        unsigned garbage;
};

const char *load_vm_ram_path(const fake_vm *vm) {
        return vm->ram;
}

/* --- one QMP connection --------------------------------------------------------------- */

static void conn_flush(fake_conn *c) {
        size_t done = 0;

        while (done < c->out_len) {
                ssize_t n = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n <= 0)
                        break;
                done += (size_t) n;
        }
        memmove(c->out, c->out + done, c->out_len - done);
        c->out_len -= done;
        (void) sd_event_source_set_io_events(c->src, EPOLLIN | (c->out_len > 0 ? EPOLLOUT : 0));
}

static void conn_send(fake_conn *c, const char *text, size_t len) {
        if (c->out_len + len > c->out_size) {
                size_t size = (c->out_len + len) * 2;
                char *grown = realloc(c->out, size);
                if (!grown)
                        return;
                c->out = grown;
                c->out_size = size;
        }
        memcpy(c->out + c->out_len, text, len);
        c->out_len += len;
        conn_flush(c);
}

static void conn_printf(fake_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_printf(fake_conn *c, const char *fmt, ...) {
        char buf[1024];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        if (n > 0)
                conn_send(c, buf, (size_t) n < sizeof buf ? (size_t) n : sizeof buf - 1);
}

static void conn_event(fake_conn *c, const char *name, const char *data) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        conn_printf(c, "{\"timestamp\": {\"seconds\": %ld, \"microseconds\": %ld}, \"event\": \"%s\"%s%s}\r\n",
                    (long) ts.tv_sec, ts.tv_nsec / 1000, name, data ? ", \"data\": " : "", data ?: "");
}

static void conn_greet(fake_conn *c) {
        c->greeted = true;
        conn_printf(c, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
                       "\"package\": \"vmsig-load\"}, \"capabilities\": [\"oob\"]}}\r\n");
}

static void conn_free(fake_conn *c) {
        sd_event_source_disable_unref(c->src);
        close(c->fd);
        free(c->out);
        free(c);
}

/* The one being served left: the next one waiting is greeted now. */
static void conn_close(fake_conn *c) {
        fake_vm *vm = c->vm;
        bool head = vm->conns == c;

        for (fake_conn **p = &vm->conns; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        conn_free(c);
        if (head && vm->conns)
                conn_greet(vm->conns);
}

/* The raw JSON token after "key": (a number or a string), or "". */
static void token_after(const char *line, const char *key, char *out, size_t size) {
        const char *p = strstr(line, key);
        size_t n = 0;

        out[0] = '\0';
        if (!p)
                return;
        p += strlen(key);
        while (*p == ' ' || *p == ':')
                p++;
        if (*p == '"') {
                const char *end = strchr(p + 1, '"');
                n = end ? (size_t) (end - p) + 1 : 0;
        } else
                n = strspn(p, "0123456789-");
        if (n >= size)
                n = size - 1;
        memcpy(out, p, n);
        out[n] = '\0';
}

/* The guest as QEMU 7.2 describes it in HMP text (JSON-escaped): one RAM
 * backend, flat, and a vCPU halted in the firmware. */
static void hmp(fake_conn *c, const char *line, const char *id) {
        if (strstr(line, "info mtree -f"))
                conn_printf(c, "{\"return\": \"FlatView #0\\r\\n AS \\\"memory\\\", root: system\\r\\n"
                               " Root memory region: system\\r\\n  0000000000000000-%016" PRIx64 " (prio 0, ram): "
                               "ram0\\r\\n\\r\\n\", \"id\": %s}\r\n", (uint64_t) VM_RAM_SIZE - 1, id);
        else if (strstr(line, "info registers"))
                conn_printf(c, "{\"return\": \"CPU#0\\r\\nEIP=0000b7b9 EFL=00000246\\r\\n"
                               "CR0=00000010 CR2=00000000 CR3=00000000 CR4=00000000\\r\\n"
                               "EFER=0000000000000000\\r\\n\", \"id\": %s}\r\n", id);
        else
                conn_printf(c, "{\"id\": %s, \"error\": {\"class\": \"GenericError\", \"desc\": \"unknown command\"}}\r\n",
                            id);
}

static void command(fake_conn *c, const char *line, const char *execute, const char *id) {
        fake_vm *vm = c->vm;

        if (strcmp(execute, "\"qom-list\"") == 0) {
                conn_printf(c, "{\"return\": [{\"name\": \"ram0\", \"type\": \"child<memory-backend-file>\"}], "
                               "\"id\": %s}\r\n", id);
                return;
        }
        if (strcmp(execute, "\"qom-get\"") == 0) {
                conn_printf(c, "{\"return\": \"%s\", \"id\": %s}\r\n", vm->ram, id);
                return;
        }
        if (strcmp(execute, "\"human-monitor-command\"") == 0)
                return hmp(c, line, id);
        if (strcmp(execute, "\"query-status\"") == 0) {
                c->queried = true;
                conn_printf(c, "{\"return\": {\"status\": \"%s\", \"singlestep\": false, \"running\": %s}, \"id\": %s}\r\n",
                            vm->running ? "running" : "paused", vm->running ? "true" : "false", id);
                return;
        }
        if (strcmp(execute, "\"stop\"") == 0 && vm->running) {
                vm->running = false;
                conn_event(c, "STOP", NULL);
        } else if (strcmp(execute, "\"cont\"") == 0 && !vm->running) {
                vm->running = true;
                conn_event(c, "RESUME", NULL);
        } else if (strcmp(execute, "\"system_reset\"") != 0 && strcmp(execute, "\"stop\"") != 0 &&
                   strcmp(execute, "\"cont\"") != 0 && strcmp(execute, "\"input-send-event\"") != 0 &&
                   strcmp(execute, "\"system_powerdown\"") != 0) {
                /* execute is a JSON string, quotes and all. */
                conn_printf(c, "{\"id\": %s, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command "
                               "%.*s has not been found\"}}\r\n", id, (int) strlen(execute) - 2, execute + 1);
                return;
        }
        conn_printf(c, "{\"return\": {}, \"id\": %s}\r\n", id);
        /* QEMU resets from its main loop, after the reply. */
        if (strcmp(execute, "\"system_reset\"") == 0)
                conn_event(c, "RESET", "{\"guest\": false, \"reason\": \"host-qmp-system-reset\"}");
        else if (strcmp(execute, "\"system_powerdown\"") == 0)
                conn_event(c, "POWERDOWN", NULL);
}

static void handle_line(fake_conn *c, const char *line) {
        char execute[64], id[32];

        token_after(line, "\"execute\"", execute, sizeof execute);
        token_after(line, "\"id\"", id, sizeof id);
        if (!id[0])
                snprintf(id, sizeof id, "null");
        if (!c->negotiated) {
                if (strcmp(execute, "\"qmp_capabilities\"") == 0) {
                        c->negotiated = true;
                        conn_printf(c, "{\"return\": {}, \"id\": %s}\r\n", id);
                } else
                        conn_printf(c, "{\"id\": %s, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting "
                                       "capabilities negotiation with 'qmp_capabilities'\"}}\r\n", id);
                return;
        }
        command(c, line, execute, id);
}

static int on_conn(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        fake_conn *c = userdata;

        if (revents & EPOLLOUT)
                conn_flush(c);
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;
        ssize_t n = recv(fd, c->in + c->in_len, sizeof c->in - c->in_len - 1, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                conn_close(c);
                return 0;
        }
        c->in_len += (size_t) n;
        c->in[c->in_len] = '\0';
        /* Not greeted yet: QEMU would not read it either. */
        for (char *nl; c->greeted && (nl = strchr(c->in, '\n'));) {
                *nl = '\0';
                handle_line(c, c->in);
                c->in_len -= (size_t) (nl + 1 - c->in);
                memmove(c->in, nl + 1, c->in_len + 1);
        }
        if (c->in_len == sizeof c->in - 1)
                c->in_len = 0; /* a line that long is nothing vmsigd sends */
        return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        fake_vm *vm = userdata;
        int cfd;

        while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                fake_conn *c = calloc(1, sizeof *c), **tail = &vm->conns;
                if (!c || sd_event_add_io(vm->ctx->event, &c->src, cfd, EPOLLIN, on_conn, c) < 0) {
                        free(c);
                        close(cfd);
                        continue;
                }
                c->vm = vm;
                c->fd = cfd;
                while (*tail)
                        tail = &(*tail)->next;
                *tail = c;
                if (vm->conns == c)
                        conn_greet(c);
                if (!vm->target)
                        load_fail(vm->ctx, "vmsigd connected to the decoy QEMU: a bad trigger file was accepted");
        }
        return 0;
}

/* --- a VM's process: listening, crashing, quitting, restarting -------------------------- */

static int vm_listen(fake_vm *vm) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        (void) unlink(vm->sock);
        vm->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (vm->listen_fd < 0)
                return -errno;
        strncpy(sa.sun_path, vm->sock, sizeof sa.sun_path - 1);
        if (bind(vm->listen_fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(vm->listen_fd, 16) < 0)
                return -errno;
        r = sd_event_add_io(vm->ctx->event, &vm->listen_src, vm->listen_fd, EPOLLIN, on_accept, vm);
        if (r < 0)
                return r;
        /* A new QEMU process: its guest runs. */
        vm->down = false;
        vm->running = true;
        return 0;
}

static void vm_close_all(fake_vm *vm) {
        while (vm->conns) {
                fake_conn *c = vm->conns;
                vm->conns = c->next;
                conn_free(c);
        }
        vm->listen_src = sd_event_source_disable_unref(vm->listen_src);
        if (vm->listen_fd >= 0)
                close(vm->listen_fd);
        vm->listen_fd = -1;
}

static int on_restart(sd_event_source *s, uint64_t usec, void *userdata) {
        fake_vm *vm = userdata;

        if (vm->down && vm_listen(vm) < 0)
                load_fail(vm->ctx, "fake QEMU %s cannot listen again: %s", vm->name, strerror(errno));
        return 0;
}

/* QEMU died (crash: its socket goes too) or quit (the socket file stays,
 * nobody listens), and comes back later. */
static void vm_down(fake_vm *vm, bool quit, uint64_t back_usec) {
        if (quit && vm->conns && vm->conns->negotiated)
                conn_event(vm->conns, "SHUTDOWN", "{\"guest\": false, \"reason\": \"host-signal\"}");
        vm_close_all(vm);
        if (!quit)
                (void) unlink(vm->sock);
        vm->down = true;
        (void) load_timer(vm->ctx, &vm->restart, back_usec, 1000, on_restart, vm);
}

/* --- trigger files -------------------------------------------------------------------------- */

static int write_trigger(fake_vm *vm) {
        char text[1024];
        int n = snprintf(text, sizeof text,
                         "<vm name=\"%s\" uuid=\"%08x-0000-4000-8000-%012x\">\n"
                         "  <qmp socket=\"%s\"/>\n"
                         "  <ram path=\"%s\"/>\n"
                         "</vm>\n",
                         vm->name, vm->index, vm->uuid_gen, vm->sock, vm->ram);

        return load_write_file(vm->trigger, text, (size_t) n, 0600);
}

static void vm_expect(fake_vm *vm, vm_state state) {
        vm->state = state;
        vm->deadline = bench_now_nsec() / 1000 + WAIT_USEC;
}

static void vm_attach(fake_vm *vm) {
        if (write_trigger(vm) < 0)
                load_fail(vm->ctx, "cannot write the trigger file of %s", vm->name);
        vm_expect(vm, VM_ATTACHING);
}

static void vm_detach(fake_vm *vm) {
        if (unlink(vm->trigger) < 0)
                load_fail(vm->ctx, "cannot remove the trigger file of %s", vm->name);
        vm_expect(vm, VM_DETACHING);
}

/* Malformed QMP, one kind after the other. Most make vmsigd drop the
 * connection (and come back); some it just logs. */
static void send_garbage(fake_vm *vm) {
        static const char *const kinds[] = {
                "}{ this is not JSON\r\n",
                "42\r\n",
                "{\"QMP\": {}}\r\n",
                "{\"event\": 17}\r\n",
                "{\"return\": {}, \"id\": 999999999}\r\n",
                "{\"return\": {}, \"id\": \"a string\"}\r\n",
                "{\"error\": {\"class\": \"GenericError\"}}\r\n",
                "{\"event\": \"VMSIG_LOAD_NOISE\", \"data\": [1, 2, {\"\\u0000\": null}]}\r\n",
                "{\"return\": {\"status\": \"\xff\xfe\"}, \"id\": 1}\r\n",
        };
        fake_conn *c = vm->conns;
        char deep[256];

        if (!c || !c->negotiated)
                return;
        vm->ctx->n.qemu_garbage++;
        vm->ctx->n.bad_qmp++;
        if (vm->garbage % (BENCH_ELEMENTS(kinds) + 1) == BENCH_ELEMENTS(kinds)) {
                /* Nested deeper than json-c's tokener allows. */
                memset(deep, '[', sizeof deep - 3);
                memcpy(deep + sizeof deep - 3, "\r\n", 3);
                conn_send(c, deep, sizeof deep - 1);
        } else
                conn_send(c, kinds[vm->garbage % (BENCH_ELEMENTS(kinds) + 1)],
                          strlen(kinds[vm->garbage % (BENCH_ELEMENTS(kinds) + 1)]));
        vm->garbage++;
}

static void spontaneous(fake_vm *vm) {
        fake_conn *c = vm->conns;

        if (!c || !c->negotiated)
                return;
        /* Another QMP client, or the guest, stopped or resumed it. */
        vm->running = !vm->running;
        conn_event(c, vm->running ? "RESUME" : "STOP", NULL);
        vm->ctx->n.qemu_events++;
}

static void chaos(fake_vm *vm) {
        load_ctx *ctx = vm->ctx;
        unsigned r = load_rand_below(&ctx->rng, 100);

        if (r < 28)
                vm_detach(vm);
        else if (r < 42)
                spontaneous(vm);
        else if (r < 47 && !vm->down) {
                ctx->n.qemu_crashes++;
                vm_down(vm, false, 100000 + load_rand_below(&ctx->rng, 500000));
        } else if (r < 51 && !vm->down) {
                ctx->n.qemu_quits++;
                vm_down(vm, true, 200000 + load_rand_below(&ctx->rng, 600000));
        } else if (r < 57)
                send_garbage(vm);
        else if (r < 63) {
                /* Another UUID: a changed description, detached and attached again. */
                vm->uuid_gen++;
                ctx->n.trigger_rewrites++;
                if (write_trigger(vm) < 0)
                        load_fail(ctx, "cannot rewrite the trigger file of %s", vm->name);
                vm_expect(vm, VM_REWRITING);
        } else if (r < 68 && write_trigger(vm) < 0)
                /* The same content again: nothing may change. */
                load_fail(ctx, "cannot rewrite the trigger file of %s", vm->name);
}

static bool vm_waiting(const fake_vm *vm) {
        return vm->state == VM_ATTACHING || vm->state == VM_DETACHING || vm->state == VM_REWRITING;
}

static void vm_schedule(fake_vm *vm, uint64_t usec);

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        fake_vm *vm = userdata;
        load_ctx *ctx = vm->ctx;

        if (vm_waiting(vm) && bench_now_nsec() / 1000 > vm->deadline) {
                load_fail(ctx, "vmsigd did not %s %s within %llu s", vm->state == VM_DETACHING ? "detach" : "attach",
                          vm->name, WAIT_USEC / 1000000);
                vm->state = VM_STUCK;
        } else if (vm->state == VM_DETACHED && (!ctx->stopping || vm->want_attached))
                vm_attach(vm);
        else if (vm->state == VM_ATTACHED && ctx->stopping && !vm->want_attached)
                vm_detach(vm);
        else if (vm->state == VM_ATTACHED && !ctx->stopping)
                chaos(vm);
        if (ctx->stopping)
                vm_schedule(vm, 50000);
        else
                vm_schedule(vm, (vm->state == VM_DETACHED ? 50000 : 150000) + load_rand_below(&ctx->rng, 750000));
        return 0;
}

static void vm_schedule(fake_vm *vm, uint64_t usec) {
        (void) load_timer(vm->ctx, &vm->timer, usec, 1000, on_tick, vm);
}

static fake_vm *vm_find(load_ctx *ctx, const char *name) {
        for (size_t i = 0; i < ctx->n_vms; i++)
                if (strcmp(ctx->vms[i]->name, name) == 0)
                        return ctx->vms[i];
        return NULL;
}

void load_vms_endpoint(load_ctx *ctx, const char *name, bool added) {
        fake_vm *vm = vm_find(ctx, name);

        if (!vm || vm->state == VM_STUCK)
                return;
        if (added && vm->state == VM_ATTACHING) {
                vm->state = VM_ATTACHED;
                ctx->n.trigger_attaches++;
        } else if (added)
                load_fail(ctx, "%s was attached while its trigger file was %s", name,
                          vm->state == VM_REWRITING ? "rewritten (and not yet detached)" : "not there");
        else if (vm->state == VM_REWRITING) {
                ctx->n.trigger_detaches++;
                vm_expect(vm, VM_ATTACHING);
        } else if (vm->state == VM_DETACHING) {
                ctx->n.trigger_detaches++;
                vm->state = VM_DETACHED;
        } else
                load_fail(ctx, "%s was detached while its trigger file was still there", name);
}

/* --- setting up --------------------------------------------------------------------------- */

static int make_ram(const char *path) {
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), r = 0;

        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t) VM_RAM_SIZE) < 0)
                r = -errno;
        close(fd);
        return r;
}

static fake_vm *vm_new(load_ctx *ctx, const char *name, unsigned index) {
        fake_vm *vm = calloc(1, sizeof *vm);

        if (!vm)
                return NULL;
        *vm = (fake_vm) { .ctx = ctx, .index = index, .listen_fd = -1 };
        snprintf(vm->name, sizeof vm->name, "%s", name);
        if (asprintf(&vm->sock, "%s/qmp/%s.sock", ctx->dir, name) < 0 ||
            asprintf(&vm->ram, "%s/ram/%s.ram", ctx->dir, name) < 0 ||
            asprintf(&vm->trigger, "%s/vms.d/%s.xml", ctx->dir, name) < 0 || make_ram(vm->ram) < 0 ||
            vm_listen(vm) < 0) {
                fprintf(stderr, "bench-load: cannot set up fake QEMU %s: %s\n", name, strerror(errno));
                return NULL;
        }
        return vm;
}

static int add_vm_target(load_ctx *ctx, fake_vm *vm) {
        load_target *t = &ctx->targets[ctx->n_targets];

        *t = (load_target) { .kind = TARGET_TRIGGER, .ram_size = VM_RAM_SIZE, .vm = vm };
        t->name = strdup(vm->name);
        if (!t->name || sd_bus_path_encode(VMSIG_BUS_ENDPOINT_PREFIX, vm->name, &t->path) < 0)
                return -ENOMEM;
        vm->target = t;
        ctx->n_targets++;
        return 0;
}

int load_vms_start(load_ctx *ctx) {
        char path[4096], name[32];

        snprintf(path, sizeof path, "%s/qmp", ctx->dir);
        (void) mkdir(path, 0700);
        snprintf(path, sizeof path, "%s/ram", ctx->dir);
        (void) mkdir(path, 0700);
        ctx->vms = calloc(ctx->opt.trigger_vms, sizeof *ctx->vms);
        ctx->decoy = vm_new(ctx, "decoy", 9999);
        if (!ctx->vms || !ctx->decoy)
                return -ENOMEM;
        for (unsigned i = 0; i < ctx->opt.trigger_vms; i++) {
                snprintf(name, sizeof name, "vm%02u", i);
                ctx->vms[i] = vm_new(ctx, name, i);
                if (!ctx->vms[i] || add_vm_target(ctx, ctx->vms[i]) < 0)
                        return -ENOMEM;
                ctx->n_vms++;
                ctx->vms[i]->want_attached = i % 2 == 0;
                vm_schedule(ctx->vms[i], load_rand_below(&ctx->rng, 500000));
        }
        return 0;
}

void load_vms_resume(load_ctx *ctx) {
        for (size_t i = 0; i < ctx->n_vms; i++)
                ctx->vms[i]->want_attached = i % 2 == 0;
}

/* --- settling and the end ---------------------------------------------------------------------- */

static bool vms_placed(load_ctx *ctx, void *userdata) {
        for (size_t i = 0; i < ctx->n_vms; i++) {
                fake_vm *vm = ctx->vms[i];
                if (vm->state == VM_STUCK)
                        continue;
                if (vm_waiting(vm) || (vm->state == VM_ATTACHED) != vm->want_attached)
                        return false;
        }
        return true;
}

/* An attached VM is settled when its QEMU is up, vmsigd is connected and
 * has asked for the status, and the State it shows is QEMU's. */
static bool vm_settled(load_ctx *ctx, fake_vm *vm) {
        const char *want = vm->running ? "running" : "paused";
        char *state = NULL;
        bool ok;

        if (vm->state != VM_ATTACHED)
                return true;
        if (vm->down || !vm->conns || !vm->conns->negotiated || !vm->conns->queried)
                return false;
        if (sd_bus_get_property_string(ctx->ctl, VMSIG_BUS_NAME, vm->target->path, VMSIG_BUS_ENDPOINT_INTERFACE,
                                       "State", NULL, &state) < 0)
                return false;
        ok = strcmp(state, want) == 0;
        free(state);
        return ok;
}

static bool vms_settled(load_ctx *ctx, void *userdata) {
        static uint64_t last;
        uint64_t now = bench_now_nsec();

        /* A round of property reads every 100 ms, not every iteration. */
        if (now - last < 100000000)
                return false;
        last = now;
        for (size_t i = 0; i < ctx->n_vms; i++)
                if (!vm_settled(ctx, ctx->vms[i]))
                        return false;
        return true;
}

static void report_unsettled(load_ctx *ctx) {
        for (size_t i = 0; i < ctx->n_vms; i++) {
                fake_vm *vm = ctx->vms[i];
                char *state = NULL;

                if (vm_settled(ctx, vm))
                        continue;
                (void) sd_bus_get_property_string(ctx->ctl, VMSIG_BUS_NAME, vm->target->path,
                                                  VMSIG_BUS_ENDPOINT_INTERFACE, "State", NULL, &state);
                load_fail(ctx, "%s did not settle: QEMU %s and %s; vmsigd %s%s%s, says State '%s'", vm->name,
                          vm->down ? "down" : "up", vm->running ? "running" : "paused",
                          !vm->conns ? "not connected" : vm->conns->negotiated ? "connected" : "not negotiated",
                          vm->conns && vm->conns->next ? ", another connection waiting" : "",
                          vm->conns && !vm->conns->queried ? ", status never asked" : "", state ?: "?");
                free(state);
        }
}

int load_vms_settle(load_ctx *ctx) {
        int r;

        /* Every QEMU that is down comes back now. */
        for (size_t i = 0; i < ctx->n_vms; i++)
                if (ctx->vms[i]->down) {
                        (void) sd_event_source_set_enabled(ctx->vms[i]->restart, SD_EVENT_OFF);
                        if (vm_listen(ctx->vms[i]) < 0)
                                load_fail(ctx, "fake QEMU %s cannot listen again", ctx->vms[i]->name);
                }
        r = load_run_until(ctx, vms_placed, NULL, 30000000);
        if (r < 0)
                load_fail(ctx, "the trigger VMs did not reach their final places in 30 s");
        /* vmsigd reconnects with a backoff of up to 5 s. */
        if (r >= 0 && load_run_until(ctx, vms_settled, NULL, 30000000) < 0) {
                report_unsettled(ctx);
                r = -ETIMEDOUT;
        }
        return r;
}

int load_vms_detach_all(load_ctx *ctx) {
        int r;

        for (size_t i = 0; i < ctx->n_vms; i++)
                ctx->vms[i]->want_attached = false;
        r = load_run_until(ctx, vms_placed, NULL, 30000000);
        if (r < 0)
                load_fail(ctx, "the trigger VMs were not all detached within 30 s");
        return r;
}

static void vm_free(fake_vm *vm) {
        if (!vm)
                return;
        vm_close_all(vm);
        sd_event_source_disable_unref(vm->timer);
        sd_event_source_disable_unref(vm->restart);
        free(vm->sock);
        free(vm->ram);
        free(vm->trigger);
        free(vm);
}

void load_vms_free(load_ctx *ctx) {
        for (size_t i = 0; i < ctx->n_vms; i++)
                vm_free(ctx->vms[i]);
        free(ctx->vms);
        ctx->vms = NULL;
        ctx->n_vms = 0;
        vm_free(ctx->decoy);
        ctx->decoy = NULL;
}
