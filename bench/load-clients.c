/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-load's clients: one sd-bus connection each, one call in flight at a
 * time, and a role that decides the next call when the last one returns.
 * Calls and their replies are counted and timed here (load_call). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench-lib.h"
#include "load.h"

typedef enum role {
        ROLE_WATCHER,   /* keeps its view of every endpoint from signals (load-watch.c) */
        ROLE_LIFECYCLE, /* power lease, Pause/Resume/Reset on one lifecycle stub */
        ROLE_WRITER,    /* memory-write lease and writes */
        ROLE_WRITER2,
        ROLE_MEMCTX,  /* SubscribeMemctx/UnsubscribeMemctx, epochs from MemctxChanged */
        ROLE_SIGNALS, /* signal subscriptions on one endpoint, added and removed */
        ROLE_READER,  /* properties, the roster, and refused calls */
        ROLE_LEASER,  /* leases of every class, force, input, vanishing */
        _ROLE_MAX,
} role;

#define K_LC (1u << TARGET_LIFECYCLE)
#define K_MW (1u << TARGET_MEMWRITE)
#define K_SPARE (1u << TARGET_SPARE)
#define K_TRIGGER (1u << TARGET_TRIGGER)
#define K_STUBS (K_LC | K_MW | K_SPARE)
#define K_ALL (K_STUBS | K_TRIGGER)
#define MAX_SUBS 4
#define EP VMSIG_BUS_ENDPOINT_INTERFACE
#define MGR VMSIG_BUS_MANAGER_INTERFACE
#define PROPS "org.freedesktop.DBus.Properties"
#define MAX_SIGSUBS 3

static const char *const lease_classes[] = { "input", "power", "memory-write" };

typedef struct memsub {
        load_target *t;
        uint64_t epoch;
        bool invalidated; /* the last signal was MemctxInvalidated(epoch) */
} memsub;

typedef struct sigsub {
        load_client *client;
        load_target *t;
        sd_bus_slot *slot;
        uint64_t start;
        load_track track;
} sigsub;

struct load_client {
        load_ctx *ctx;
        unsigned index;
        role role;
        sd_bus *bus;
        sd_event_source *io; /* the bus, driven by us (see client_pump) */
        uint64_t rng;
        bool busy;
        sd_event_source *timer;
        /* the one lease it holds at a time */
        load_target *lease_target;
        char *lease_path;
        int lease_fd;
        unsigned lease_class;
        unsigned ops_left;
        /* ROLE_MEMCTX */
        memsub subs[MAX_SUBS];
        size_t n_subs;
        sd_bus_slot *memctx_slots[2];
        /* ROLE_SIGNALS */
        sigsub *sig[MAX_SIGSUBS];
        size_t n_sig;
        load_watcher *watcher;
};

static uint64_t memctx_checked, sigsub_signals, sub_changes;

/* --- driving 200 buses from one loop ----------------------------------------------- */

/* sd_bus_attach_event() gives every bus a prepare callback, and sd-event
 * runs all of them on every iteration and dispatches one source per
 * iteration: with 200 buses that is 200 callbacks per message, and the
 * tool, not vmsigd, becomes what is measured. Instead each bus has a plain
 * io source that drains everything readable at once, and a timer pumps all
 * of them now and then for what sd-bus does without I/O (reply timeouts,
 * messages a synchronous call left queued). */
static void client_update_events(load_client *c) {
        int events = c->bus ? sd_bus_get_events(c->bus) : 0;

        if (c->io && events >= 0)
                (void) sd_event_source_set_io_events(c->io, (uint32_t) events);
}

static void client_pump(load_client *c) {
        sd_bus *bus = sd_bus_ref(c->bus);

        /* A callback may replace c->bus (a client that vanishes). */
        while (bus && c->bus == bus && sd_bus_process(bus, NULL) > 0)
                ;
        sd_bus_unref(bus);
        client_update_events(c);
}

static int on_bus_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        client_pump(userdata);
        return 0;
}

static int client_attach(load_client *c) {
        int r = sd_event_add_io(c->ctx->event, &c->io, sd_bus_get_fd(c->bus), EPOLLIN, on_bus_io, c);

        if (r >= 0)
                client_update_events(c);
        return r;
}

static sd_event_source *pump_timer;

static int on_pump(sd_event_source *s, uint64_t usec, void *userdata) {
        load_ctx *ctx = userdata;

        for (unsigned i = 0; ctx->clients && i < ctx->opt.clients; i++)
                if (ctx->clients[i] && ctx->clients[i]->bus)
                        client_pump(ctx->clients[i]);
        (void) load_timer(ctx, &pump_timer, 250000, 10000, on_pump, ctx);
        return 0;
}

/* --- calls ------------------------------------------------------------------------ */

typedef struct pending_call {
        load_ctx *ctx;
        load_client *client;
        load_op op;
        unsigned allowed;
        uint64_t start;
        load_done_fn done;
        void *userdata;
} pending_call;

/* A call of c (NULL: the controller, whose calls are not counted) went
 * out, or came back. */
static void call_begun(load_ctx *ctx, load_client *c) {
        ctx->in_flight++;
        if (c) {
                c->busy = true;
                ctx->calls_started++;
                client_update_events(c);
        }
}

static void call_ended(load_ctx *ctx, load_client *c, load_op op, load_outcome o, uint64_t start) {
        load_op_stats *s = &ctx->ops[op];

        ctx->in_flight--;
        if (!c)
                return;
        c->busy = false;
        if (o == OUTCOME_OK)
                s->ok++;
        else if (o == OUTCOME_REJECTED)
                s->rejected++;
        else
                s->unexpected++;
        (void) bench_samples_add(&s->latency, bench_now_nsec() - start);
        ctx->n.calls_done++;
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        pending_call *p = userdata;
        load_ctx *ctx = p->ctx;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        load_err err = e ? load_err_from_name(e->name) : E_OTHER;
        load_outcome o = !e ? OUTCOME_OK : err != E_OTHER && (p->allowed & ERR(err)) ? OUTCOME_REJECTED
                                                                                   : OUTCOME_UNEXPECTED;

        call_ended(ctx, p->client, p->op, o, p->start);
        if (o == OUTCOME_UNEXPECTED)
                load_fail(ctx, "%s from %s: unexpected %s: %s", load_op_name(p->op),
                          p->client ? "a client" : "the controller", e->name, e->message ?: "");
        p->done(ctx, p->client, m, o, p->userdata);
        free(p);
        return 0;
}

int load_call(load_ctx *ctx, load_client *c, sd_bus *bus, sd_bus_message *m, load_op op, unsigned allowed,
              load_done_fn done, void *userdata) {
        pending_call *p = calloc(1, sizeof *p);
        int r;

        if (!p)
                return -ENOMEM;
        *p = (pending_call) { ctx, c, op, allowed, bench_now_nsec(), done, userdata };
        r = sd_bus_call_async(bus, NULL, m, on_reply, p, LOAD_CALL_TIMEOUT_USEC);
        if (r < 0) {
                free(p);
                return r;
        }
        call_begun(ctx, c);
        return 0;
}

static bool may_call(load_ctx *ctx) {
        return !ctx->stopping && ctx->calls_started < ctx->round_calls;
}

static void client_next(load_client *c);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        client_next(userdata);
        return 0;
}

/* Comes back to client_next after usec: a pause after LeaseBusy, or after
 * a call that could not be sent. Accuracy 1 ms: 0 would be sd-event's
 * default of 250 ms, far longer than the back-offs. */
static void client_later(load_client *c, uint64_t usec) {
        if (load_timer(c->ctx, &c->timer, usec, 1000, on_timer, c) < 0)
                load_fail(c->ctx, "cannot arm a client timer");
}

/* Sends m (taking it) for c. A call that cannot even be sent means a
 * broken connection (or no memory): the run fails, and the client tries
 * again later; userdata, whatever it is, stays unfreed. */
static void send_call(load_client *c, sd_bus_message *m, load_op op, unsigned allowed, load_done_fn done,
                      void *userdata) {
        int r = m ? load_call(c->ctx, c, c->bus, m, op, allowed, done, userdata) : -ENOMEM;

        sd_bus_message_unref(m);
        if (r < 0) {
                load_fail(c->ctx, "client %u cannot send %s: %s", c->index, load_op_name(op), strerror(-r));
                client_later(c, 10000);
        }
}

static void done_next(load_ctx *ctx, load_client *c, sd_bus_message *reply, load_outcome o, void *userdata) {
        client_next(c);
}

/* The reply's signature must be what the method promises. */
static void done_check_signature(load_ctx *ctx, load_client *c, sd_bus_message *reply, load_outcome o,
                                 void *userdata) {
        const char *want = userdata, *got = sd_bus_message_get_signature(reply, true);

        if (o == OUTCOME_OK && strcmp(got ?: "", want) != 0)
                load_fail(ctx, "a reply has signature '%s', not '%s'", got ?: "", want);
        client_next(c);
}

/* --- connections -------------------------------------------------------------------- */

static int on_memctx_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);

static int client_connect(load_client *c) {
        const char *unique;
        int r;

        r = sd_bus_open_system(&c->bus);
        /* Hello is done here, so that a burst of connections never has
         * more than one of ours half-authenticated at dbus-daemon. */
        if (r >= 0)
                r = sd_bus_get_unique_name(c->bus, &unique);
        if (r >= 0)
                r = client_attach(c);
        if (r >= 0 && c->role == ROLE_MEMCTX)
                r = sd_bus_match_signal(c->bus, &c->memctx_slots[0], VMSIG_BUS_NAME, NULL, VMSIG_BUS_ENDPOINT_INTERFACE,
                                        "MemctxChanged", on_memctx_signal, c);
        if (r >= 0 && c->role == ROLE_MEMCTX)
                r = sd_bus_match_signal(c->bus, &c->memctx_slots[1], VMSIG_BUS_NAME, NULL, VMSIG_BUS_ENDPOINT_INTERFACE,
                                        "MemctxInvalidated", on_memctx_signal, c);
        if (r < 0)
                fprintf(stderr, "bench-load: client %u cannot connect: %s\n", c->index, strerror(-r));
        return r;
}

static void lease_forget(load_client *c) {
        if (c->lease_fd >= 0)
                close(c->lease_fd);
        c->lease_fd = -1;
        free(c->lease_path);
        c->lease_path = NULL;
        c->lease_target = NULL;
        c->ops_left = 0;
}

static void sigsub_free(sigsub *s) {
        sd_bus_slot_unref(s->slot);
        free(s->track.seq.s);
        free(s);
}

/* Everything the connection held goes with it, as far as vmsigd knows. */
static void client_disconnect(load_client *c) {
        for (size_t i = 0; i < c->n_sig; i++)
                sigsub_free(c->sig[i]);
        c->n_sig = 0;
        c->n_subs = 0;
        for (size_t i = 0; i < 2; i++)
                c->memctx_slots[i] = sd_bus_slot_unref(c->memctx_slots[i]);
        c->io = sd_event_source_disable_unref(c->io);
        sd_bus_close(c->bus);
        c->bus = sd_bus_unref(c->bus);
}

/* A client that vanishes: the lease goes with its connection, or with its
 * fd, whichever vmsigd notices first. */
static void client_vanish(load_client *c) {
        bool fd_first = load_rand_below(&c->rng, 2);

        c->ctx->n.client_drops++;
        if (fd_first)
                lease_forget(c);
        client_disconnect(c);
        lease_forget(c);
        if (client_connect(c) < 0)
                load_fail(c->ctx, "client %u cannot reconnect", c->index);
}

/* --- readers and refused calls --------------------------------------------------------- */

static const char *const endpoint_properties[] = {
        "State", "MemctxEpoch", "Generation", "Vmid", "RamSize", "Capabilities", "BootstrapState",
        "PowerLeaseHolder", "MemoryWriteLeaseHolder", "InputLeaseHolder", "Name", "Uuid", "Backend",
};

/* A read whose reply must have the signature reply. */
static void send_read(load_client *c, sd_bus_message *m, load_op op, unsigned allowed, const char *reply) {
        send_call(c, m, op, allowed, done_check_signature, (void *) reply);
}

static void read_endpoint(load_client *c, load_target *t, unsigned r) {
        const char *p = endpoint_properties[load_rand_below(&c->rng, BENCH_ELEMENTS(endpoint_properties))];

        if (r < 30)
                send_read(c, load_method(c->bus, t->path, PROPS, "Get", "ss", EP, p), OP_GET, ERR_GONE, "v");
        else if (r < 45)
                send_read(c, load_method(c->bus, t->path, PROPS, "GetAll", "s", EP), OP_GET_ALL, ERR_GONE, "a{sv}");
        else
                send_read(c, load_method(c->bus, VMSIG_BUS_PATH, MGR, "GetEndpoint", "s", t->name), OP_LIST,
                          ERR(E_NO_SUCH_ENDPOINT), "o");
}

static void read_manager(load_client *c, unsigned r) {
        const char *path = VMSIG_BUS_PATH;

        if (r < 60)
                send_read(c, load_method(c->bus, path, PROPS, "Get", "ss", MGR, "EndpointCount"), OP_GET, 0, "v");
        else if (r < 85)
                send_read(c, load_method(c->bus, path, MGR, "ListEndpoints", NULL), OP_LIST, 0, "a(suso)");
        else if (r < 95)
                send_read(c,
                          load_method(c->bus, path, MGR, "GetEndpointByVmid", "u", 1 + load_rand_below(&c->rng, 120)),
                          OP_LIST, ERR(E_NO_SUCH_ENDPOINT), "o");
        else
                send_read(c, load_method(c->bus, path, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", NULL),
                          OP_MANAGED, 0, "a{oa{sa{sv}}}");
}

static void step_read(load_client *c) {
        unsigned r = load_rand_below(&c->rng, 100);
        load_target *t = load_target_pick(c->ctx, &c->rng, K_ALL);

        if (t && r < 65)
                read_endpoint(c, t, load_rand_below(&c->rng, 100));
        else
                read_manager(c, load_rand_below(&c->rng, 100));
}

/* A refused call: what it is, what it sends, what it may get. */
typedef struct bad_call {
        const char *what;
        const char *path; /* NULL: a random endpoint's */
        const char *iface, *member, *signature;
        const char *arg;
        unsigned allowed;
} bad_call;

static const bad_call bad_calls[] = {
        { "GetEndpoint of an invalid name", VMSIG_BUS_PATH, MGR, "GetEndpoint", "s", "bad name!", ERR(E_INVALID_ARG) },
        { "GetEndpoint of an empty name", VMSIG_BUS_PATH, MGR, "GetEndpoint", "s", "", ERR(E_INVALID_ARG) },
        { "GetEndpoint of an unknown name", VMSIG_BUS_PATH, MGR, "GetEndpoint", "s", "nosuch",
          ERR(E_NO_SUCH_ENDPOINT) },
        { "GetEndpoint of a name in UTF-8 and control characters", VMSIG_BUS_PATH, MGR, "GetEndpoint", "s",
          "\xc3\xa9\x01\t", ERR(E_INVALID_ARG) },
        { "GetEndpointByVmid(0)", VMSIG_BUS_PATH, MGR, "GetEndpointByVmid", "u", NULL, ERR(E_INVALID_ARG) },
        { "an unknown method", VMSIG_BUS_PATH, MGR, "NoSuchMethod", "", NULL, ERR(E_UNKNOWN_METHOD) },
        { "GetEndpoint with the wrong signature", VMSIG_BUS_PATH, MGR, "GetEndpoint", "u", NULL,
          ERR(E_INVALID_ARGS) | ERR(E_UNKNOWN_METHOD) },
        { "Reload with an argument", VMSIG_BUS_PATH, MGR, "Reload", "s", "now",
          ERR(E_INVALID_ARGS) | ERR(E_UNKNOWN_METHOD) },
        { "DetachEndpoint of an unknown name", VMSIG_BUS_PATH, MGR, "DetachEndpoint", "s", "nosuch",
          ERR(E_NO_SUCH_ENDPOINT) },
        { "DetachEndpoint of an invalid name", VMSIG_BUS_PATH, MGR, "DetachEndpoint", "s", "../lc00",
          ERR(E_INVALID_ARG) },
        { "Get of an unknown property", NULL, PROPS, "Get", "ss", "NoSuchProperty",
          ERR(E_UNKNOWN_PROPERTY) | ERR_GONE },
        { "Get on an unknown interface", NULL, PROPS, "Get", "ss", "State",
          ERR(E_UNKNOWN_INTERFACE) | ERR(E_UNKNOWN_PROPERTY) | ERR_GONE },
        { "Set of a read-only property", NULL, PROPS, "Set", "ssv", "State", ERR(E_READ_ONLY) | ERR_GONE },
        { "a call on an object that does not exist", VMSIG_BUS_ENDPOINT_PREFIX "/nosuch", EP, "UnsubscribeMemctx", "",
          NULL, ERR(E_UNKNOWN_OBJECT) },
        { "UnsubscribeMemctx without a subscription", NULL, EP, "UnsubscribeMemctx", "", NULL,
          ERR(E_NOT_SUBSCRIBED) | ERR_GONE },
        { "AcquireLease of an unknown class", NULL, EP, "AcquireLease", "sa{sv}", "bogus",
          ERR(E_INVALID_ARG) | ERR_GONE },
        { "AcquireLease with an unknown option", NULL, EP, "AcquireLease", "sa{sv}", "nope",
          ERR(E_INVALID_ARG) | ERR_GONE },
        { "AcquireLease with force of the wrong type", NULL, EP, "AcquireLease", "sa{sv}", "force",
          ERR(E_INVALID_ARG) | ERR_GONE },
        { "Pause without the power lease", NULL, EP, "Pause", "", NULL, ERR(E_NOT_HOLDER) | ERR_GONE },
        { "Reset without the power lease", NULL, EP, "Reset", "", NULL, ERR(E_NOT_HOLDER) | ERR_GONE },
        { "InjectInput of an unknown event type", NULL, EP, "InjectInput", "a(uui)", "type",
          ERR(E_INVALID_ARG) | ERR(E_NOT_HOLDER) | ERR_GONE },
        { "InjectInput of no events", NULL, EP, "InjectInput", "a(uui)", "none",
          ERR(E_INVALID_ARG) | ERR(E_NOT_HOLDER) | ERR_GONE },
        { "InjectInput of 1025 events", NULL, EP, "InjectInput", "a(uui)", "many",
          ERR(E_INVALID_ARG) | ERR(E_NOT_HOLDER) | ERR_GONE },
        { "MemWriteVirtual without the lease", NULL, EP, "MemWriteVirtual", "taya{sv}", NULL,
          ERR(E_NOT_HOLDER) | ERR_GONE },
        { "GetEndpoint of a 16 KiB name", VMSIG_BUS_PATH, MGR, "GetEndpoint", "s", "long", ERR(E_INVALID_ARG) },
        { "Release of a lease that is not the caller's", NULL, VMSIG_BUS_LEASE_INTERFACE, "Release", "", NULL,
          ERR(E_NOT_HOLDER) | ERR(E_UNKNOWN_OBJECT) },
};

static int append_input(sd_bus_message *m, const char *kind) {
        unsigned n = strcmp(kind, "many") == 0 ? 1025 : strcmp(kind, "none") == 0 ? 0 : 1;
        int r = sd_bus_message_open_container(m, 'a', "(uui)");

        for (unsigned i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(m, "(uui)", strcmp(kind, "type") == 0 ? 7u : 0u, 30u, (int32_t) (i % 2));
        return r < 0 ? r : sd_bus_message_close_container(m);
}

static int append_bad_args(sd_bus_message *m, const bad_call *b) {
        static char long_name[16384];

        if (strcmp(b->signature, "s") == 0 && b->arg && strcmp(b->arg, "long") == 0 && b->member[0] == 'G') {
                memset(long_name, 'a', sizeof long_name - 1);
                return sd_bus_message_append(m, "s", long_name);
        }
        if (strcmp(b->signature, "s") == 0)
                return sd_bus_message_append(m, "s", b->arg);
        if (strcmp(b->signature, "u") == 0)
                return sd_bus_message_append(m, "u", 0u);
        if (strcmp(b->signature, "ss") == 0)
                return sd_bus_message_append(
                        m, "ss", b->arg[0] == 'N' ? VMSIG_BUS_ENDPOINT_INTERFACE : "org.vmsig.Nope", b->arg);
        if (strcmp(b->signature, "ssv") == 0)
                return sd_bus_message_append(m, "ssv", VMSIG_BUS_ENDPOINT_INTERFACE, b->arg, "s", "paused");
        if (strcmp(b->signature, "sa{sv}") == 0 && strcmp(b->arg, "bogus") == 0)
                return sd_bus_message_append(m, "sa{sv}", "bogus", 0);
        if (strcmp(b->signature, "sa{sv}") == 0 && strcmp(b->arg, "nope") == 0)
                return sd_bus_message_append(m, "sa{sv}", "power", 1, "nope", "b", 1);
        if (strcmp(b->signature, "sa{sv}") == 0)
                return sd_bus_message_append(m, "sa{sv}", "power", 1, "force", "s", "yes");
        if (strcmp(b->signature, "a(uui)") == 0)
                return append_input(m, b->arg);
        if (strcmp(b->signature, "taya{sv}") == 0) {
                int r = sd_bus_message_append(m, "t", UINT64_C(0xffff800000001000));
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', "abc", 3);
                return r < 0 ? r : sd_bus_message_append(m, "a{sv}", 0);
        }
        return 0;
}

/* Someone else's lease, or a lease path that never existed. */
static const char *foreign_lease(load_client *c) {
        for (unsigned tries = 0; tries < 8; tries++) {
                load_client *o = c->ctx->clients[load_rand_below(&c->rng, c->ctx->opt.clients)];
                if (o != c && o->lease_path)
                        return o->lease_path;
        }
        return "/org/vmsig/lease/999999999";
}

static void step_bad(load_client *c) {
        const bad_call *b = &bad_calls[load_rand_below(&c->rng, BENCH_ELEMENTS(bad_calls))];
        load_target *t = load_target_pick(c->ctx, &c->rng, b->member[0] == 'P' || b->member[0] == 'R' ? K_MW : K_ALL);
        const char *path = b->path;
        sd_bus_message *m;

        if (!path && strcmp(b->iface, VMSIG_BUS_LEASE_INTERFACE) == 0)
                path = foreign_lease(c);
        else if (!path)
                path = t ? t->path : VMSIG_BUS_ENDPOINT_PREFIX "/lc00";
        m = load_method(c->bus, path, b->iface, b->member, NULL);
        if (m && append_bad_args(m, b) < 0)
                m = sd_bus_message_unref(m);
        c->ctx->n.bad_calls++;
        send_call(c, m, OP_BAD, b->allowed, done_next, NULL);
}

/* --- leases ------------------------------------------------------------------------------ */

/* The lease asked for is already in c (lease_target, lease_class,
 * ops_left): it is c's when the reply gives its path and fd. */
static void done_acquire(load_ctx *ctx, load_client *c, sd_bus_message *reply, load_outcome o, void *userdata) {
        const char *path;
        int fd;

        if (o == OUTCOME_OK && sd_bus_message_read(reply, "oh", &path, &fd) >= 0) {
                c->lease_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                c->lease_path = strdup(path);
                if (userdata)
                        ctx->n.lease_forced++;
                if (c->lease_fd < 0 || !c->lease_path)
                        load_fail(ctx, "cannot keep a lease: %s", strerror(errno));
        }
        if (!c->lease_path)
                lease_forget(c);
        /* LeaseBusy: the holder is at work; come back a little later. */
        if (o != OUTCOME_OK)
                client_later(c, 1000 + load_rand_below(&c->rng, 5000));
        else
                client_next(c);
}

static sd_bus_message *acquire_call_new(load_client *c, load_target *t, unsigned class, bool force) {
        const char *name = lease_classes[class];

        return force ? load_method(c->bus, t->path, EP, "AcquireLease", "sa{sv}", name, 1, "force", "b", 1)
                     : load_method(c->bus, t->path, EP, "AcquireLease", "sa{sv}", name, 0);
}

/* done_acquire's userdata says whether it was forced. */
static void acquire(load_client *c, load_target *t, unsigned class, bool force, unsigned ops) {
        c->lease_target = t;
        c->lease_class = class;
        c->ops_left = ops;
        send_call(c, acquire_call_new(c, t, class, force), OP_ACQUIRE, ERR(E_LEASE_BUSY) | ERR_GONE, done_acquire,
                  (void *) (intptr_t) force);
}

static void done_release(load_ctx *ctx, load_client *c, sd_bus_message *reply, load_outcome o, void *userdata) {
        lease_forget(c);
        client_next(c);
}

/* Release(), closing the fd, or vanishing altogether. */
static void end_lease(load_client *c) {
        unsigned r = load_rand_below(&c->rng, 100);

        if (r < 70) {
                /* Revoked meanwhile (force, reset, detach): the object is gone. */
                send_call(c, load_method(c->bus, c->lease_path, VMSIG_BUS_LEASE_INTERFACE, "Release", NULL), OP_RELEASE,
                          ERR(E_NOT_HOLDER) | ERR(E_UNKNOWN_OBJECT), done_release, NULL);
                return;
        }
        if (r < 92) {
                c->ctx->n.lease_fd_closed++;
                lease_forget(c);
        } else if (c->role != ROLE_WATCHER)
                client_vanish(c);
        else
                lease_forget(c);
        client_next(c);
}

/* --- lifecycle drivers: the order of their successful calls is the log ---------------------- */

/* The first 8 lifecycle clients drive one stub each; the others only
 * compete for its power lease. One driver per stub, because replies on
 * different connections may be read in another order than vmsigd sent
 * them, and the log must be vmsigd's order. */
static bool is_driver(load_client *c) {
        return c->index / _ROLE_MAX < 8;
}

static load_target *my_lifecycle_stub(load_client *c) {
        unsigned n = 0, pick = (c->index / _ROLE_MAX) % 8;

        for (size_t i = 0; i < c->ctx->n_targets; i++)
                if (c->ctx->targets[i].kind == TARGET_LIFECYCLE && n++ == pick)
                        return &c->ctx->targets[i];
        return NULL;
}

static void done_lifecycle(load_ctx *ctx, load_client *c, sd_bus_message *reply, load_outcome o, void *userdata) {
        char op = (char) (intptr_t) userdata;
        load_target *t = c->lease_target;

        if (o == OUTCOME_OK && t && (op == 'P' || op == 'R' || op == 'X'))
                load_target_log(t, op);
        else if (o == OUTCOME_OK)
                load_fail(ctx, "a lifecycle call that had to be refused succeeded on '%s'", t ? t->name : "?");
        /* A reset revokes every lease; NotLeaseHolder: forced away. */
        if (op == 'X' || (o != OUTCOME_OK && sd_bus_message_get_error(reply) &&
                          load_err_from_name(sd_bus_message_get_error(reply)->name) == E_NOT_HOLDER))
                lease_forget(c);
        client_next(c);
}

static void lifecycle_op(load_client *c) {
        load_target *t = c->lease_target;
        unsigned r = load_rand_below(&c->rng, 100);
        const char *member;
        char op;
        unsigned allowed = ERR(E_NOT_HOLDER);

        c->ops_left--;
        if (r < 60) {
                member = t->paused ? "Resume" : "Pause";
                op = t->paused ? 'R' : 'P';
        } else if (r < 90) {
                member = "Reset";
                op = 'X';
        } else {
                /* The transition that is not possible: refused, nothing changes. */
                member = t->paused ? "Pause" : "Resume";
                op = '-';
                allowed |= ERR(E_INVALID_STATE);
                c->ctx->n.bad_calls++;
        }
        send_call(c, load_method(c->bus, t->path, EP, member, NULL), op == '-' ? OP_BAD : OP_LIFECYCLE, allowed,
                  done_lifecycle, (void *) (intptr_t) op);
}

static void step_lifecycle(load_client *c) {
        load_target *t = my_lifecycle_stub(c);

        if (!t || (!c->lease_path && load_rand_below(&c->rng, 100) < 15))
                step_read(c);
        else if (!c->lease_path)
                acquire(c, t, 1, false, is_driver(c) ? 1 + load_rand_below(&c->rng, 4) : 0);
        else if (c->ops_left == 0)
                end_lease(c);
        else
                lifecycle_op(c);
}

/* --- writers ------------------------------------------------------------------------------- */

typedef enum write_kind {
        WRITE_PLAIN,
        WRITE_PAUSE,
        WRITE_BATCH,
        WRITE_EPOCH,
        WRITE_NO_LEASE,
        WRITE_TOO_LONG,
        WRITE_EMPTY,
        WRITE_OPTION,
        WRITE_RANGE,
        WRITE_STALE,
        WRITE_BAD_BATCH,
        WRITE_EMPTY_BATCH,
        WRITE_VIRTUAL,
        _WRITE_MAX,
} write_kind;

/* Each kind of write: its method, the one option it sets, and the error
 * it may get besides those of every write. A bad write (OP_BAD) must get
 * that error. */
typedef struct write_spec {
        const char *member;
        load_op op;
        const char *option;
        unsigned refusal;
} write_spec;

static const write_spec write_specs[_WRITE_MAX] = {
        [WRITE_PLAIN] = { "MemWrite", OP_MEMWRITE, NULL, 0 },
        [WRITE_PAUSE] = { "MemWrite", OP_MEMWRITE, "pause", 0 },
        [WRITE_BATCH] = { "MemWriteBatch", OP_BATCH, NULL, 0 },
        /* With the epoch just read: stale if the epoch moved meanwhile. */
        [WRITE_EPOCH] = { "MemWrite", OP_MEMWRITE, "expected_epoch", ERR(E_STALE) },
        /* The bad ones: not the holder; one byte over max-write; empty; an
         * unknown option; past the end of RAM; an epoch that never was; a
         * batch whose last entry is past the end; an empty batch; a
         * virtual address on a stub, which has no address space. */
        [WRITE_NO_LEASE] = { "MemWrite", OP_BAD, NULL, ERR(E_NOT_HOLDER) },
        [WRITE_TOO_LONG] = { "MemWrite", OP_BAD, NULL, ERR(E_TOO_LONG) },
        [WRITE_EMPTY] = { "MemWrite", OP_BAD, NULL, ERR(E_EMPTY) },
        [WRITE_OPTION] = { "MemWrite", OP_BAD, "frobnicate", ERR(E_INVALID_ARG) },
        [WRITE_RANGE] = { "MemWrite", OP_BAD, NULL, ERR(E_OUT_OF_RANGE) },
        [WRITE_STALE] = { "MemWrite", OP_BAD, "expected_epoch", ERR(E_STALE) },
        [WRITE_BAD_BATCH] = { "MemWriteBatch", OP_BAD, NULL, ERR(E_OUT_OF_RANGE) },
        [WRITE_EMPTY_BATCH] = { "MemWriteBatch", OP_BAD, NULL, ERR(E_INVALID_ARG) },
        [WRITE_VIRTUAL] = { "MemWriteVirtual", OP_BAD, NULL, ERR(E_NO_ADDRESS_SPACE) },
};

/* Any write may find the lease gone (forced, reset, detached) or the
 * endpoint gone; a pause may fail while QEMU is away, and a trigger VM's
 * memctx is invalidated meanwhile. */
#define WRITE_ALLOWED (ERR(E_NOT_HOLDER) | ERR_GONE | ERR(E_HOST) | ERR(E_LEASE_REVOKED) | ERR(E_NO_ADDRESS_SPACE))
#define BATCH_MAX 8

typedef struct write_call {
        load_target *t;
        write_kind kind;
        long idx[BATCH_MAX]; /* the ledger's entries; -1: bytes that must be refused */
        unsigned n;
        uint64_t epoch;
} write_call;

static void decide_writes(load_ctx *ctx, write_call *w, sd_bus_message *reply, load_outcome o) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        /* Pausing around the write succeeded, the write too, resuming not:
         * an error, and yet the bytes are in (bus-memwrite.c says so). */
        bool applied = o == OUTCOME_OK ||
                       (e && load_err_from_name(e->name) == E_HOST && e->message && strstr(e->message, "was done"));

        for (unsigned i = 0; i < w->n; i++)
                if (w->idx[i] >= 0) {
                        load_write *lw = &w->t->writes[w->idx[i]];
                        lw->decided = true;
                        lw->applied = applied;
                        lw->kind = (uint8_t) w->kind;
                        lw->err = (uint8_t) (e ? load_err_from_name(e->name) : E_OTHER);
                }
        if (o == OUTCOME_OK && write_specs[w->kind].op == OP_BAD)
                load_fail(ctx, "a MemWrite that had to be refused (kind %d) was applied on '%s'", w->kind, w->t->name);
}

static void done_write(load_ctx *ctx, load_client *c, sd_bus_message *reply, load_outcome o, void *userdata) {
        write_call *w = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        load_err err = e ? load_err_from_name(e->name) : E_OTHER;

        decide_writes(ctx, w, reply, o);
        /* Not the holder any more (forced, reset, detached, gone): the
         * lease is over. A refused bad write leaves the lease as it was. */
        if (c->lease_target == w->t && (err == E_NOT_HOLDER || err == E_DETACHED || err == E_UNKNOWN_OBJECT) &&
            w->kind != WRITE_NO_LEASE)
                lease_forget(c);
        free(w);
        client_next(c);
}

static uint32_t write_length(load_client *c, write_kind k) {
        if (k == WRITE_TOO_LONG)
                return LOAD_MAX_WRITE + 1;
        if (load_rand_below(&c->rng, 10) == 0)
                return 257 + load_rand_below(&c->rng, LOAD_MAX_WRITE - 256);
        return 1 + load_rand_below(&c->rng, 256);
}

/* The bytes of a write (entry: of a batch): a fresh range of the ledger,
 * or bytes that must be refused, none (WRITE_EMPTY) or past_end. */
static int append_bytes(load_client *c, sd_bus_message *m, write_call *w, bool entry, bool past_end) {
        static uint8_t buf[LOAD_MAX_WRITE + 1];
        const void *data = "0123456789abcdef";
        uint64_t gpa = past_end ? w->t->ram_size - 8 : w->t->cursor;
        size_t len = past_end ? 16 : 0;
        long idx = -1;
        int r;

        if (!past_end && w->kind != WRITE_EMPTY) {
                idx = load_write_new(w->t, &c->rng, write_length(c, entry ? WRITE_PLAIN : w->kind));
                if (idx < 0)
                        return -ENOSPC; /* this RAM is used up */
                load_write_pattern(&w->t->writes[idx], buf);
                data = buf;
                gpa = w->t->writes[idx].offset;
                len = w->t->writes[idx].len;
        }
        w->idx[w->n++] = idx;
        if (entry)
                return bench_append_entry(m, gpa, data, len);
        r = sd_bus_message_append(m, "t", gpa);
        return r < 0 ? r : sd_bus_message_append_array(m, 'y', data, len);
}

static int append_batch(load_client *c, sd_bus_message *m, write_call *w) {
        unsigned n = w->kind == WRITE_EMPTY_BATCH ? 0 : 2 + load_rand_below(&c->rng, BATCH_MAX - 1);
        int r = sd_bus_message_open_container(m, 'a', "(tay)");

        for (unsigned i = 0; r >= 0 && i < n; i++)
                r = append_bytes(c, m, w, true, w->kind == WRITE_BAD_BATCH && i == n - 1);
        if (r == -ENOSPC)
                r = 0; /* the RAM is used up: the batch is shorter */
        return r < 0 ? r : sd_bus_message_close_container(m);
}

static sd_bus_message *build_write(load_client *c, write_call *w) {
        const write_spec *spec = &write_specs[w->kind];
        sd_bus_message *m = load_method(c->bus, w->t->path, EP, spec->member, NULL);
        int r = m ? 0 : -ENOMEM;

        if (r >= 0 && w->kind == WRITE_VIRTUAL)
                r = sd_bus_message_append(m, "tay", UINT64_C(0xffff800000001000), 3, 'a', 'b', 'c');
        else if (r >= 0 && strcmp(spec->member, "MemWriteBatch") == 0)
                r = append_batch(c, m, w);
        else if (r >= 0)
                r = append_bytes(c, m, w, false, w->kind == WRITE_RANGE);
        if (r >= 0 && !spec->option)
                r = sd_bus_message_append(m, "a{sv}", 0);
        else if (r >= 0 && strcmp(spec->option, "expected_epoch") == 0)
                r = sd_bus_message_append(m, "a{sv}", 1, spec->option, "t", w->epoch);
        else if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 1, spec->option, "b", 1);
        return r < 0 ? sd_bus_message_unref(m) : m;
}

static void send_write(load_client *c, write_call *w) {
        const write_spec *spec = &write_specs[w->kind];
        sd_bus_message *m = build_write(c, w);

        if (spec->op == OP_BAD)
                c->ctx->n.bad_writes++;
        if (!m) {
                /* The RAM of this target is used up: write elsewhere. What
                 * was set aside for it was never sent, so never applied. */
                for (unsigned i = 0; i < w->n; i++)
                        if (w->idx[i] >= 0)
                                w->t->writes[w->idx[i]].decided = true;
                free(w);
                lease_forget(c);
                client_next(c);
                return;
        }
        send_call(c, m, spec->op, WRITE_ALLOWED | spec->refusal, done_write, w);
}

static void done_read_epoch(load_ctx *ctx, load_client *c, sd_bus_message *reply, load_outcome o, void *userdata) {
        write_call *w = userdata;

        if (o != OUTCOME_OK || sd_bus_message_read(reply, "v", "t", &w->epoch) < 0) {
                free(w);
                client_next(c);
                return;
        }
        if (!may_call(ctx)) {
                free(w);
                return;
        }
        send_write(c, w);
}

static write_kind pick_write(load_client *c) {
        static const write_kind bad[] = { WRITE_TOO_LONG, WRITE_EMPTY,     WRITE_OPTION,      WRITE_RANGE,
                                          WRITE_STALE,    WRITE_BAD_BATCH, WRITE_EMPTY_BATCH, WRITE_VIRTUAL };
        unsigned r = load_rand_below(&c->rng, 100);

        return r < 50   ? WRITE_PLAIN
               : r < 60 ? WRITE_PAUSE
               : r < 72 ? WRITE_BATCH
               : r < 80 ? WRITE_EPOCH
                        : bad[load_rand_below(&c->rng, BENCH_ELEMENTS(bad))];
}

static void write_op(load_client *c, load_target *t, write_kind k) {
        write_call *w = calloc(1, sizeof *w);

        if (!w) {
                client_later(c, 1000);
                return;
        }
        *w = (write_call) { .t = t, .kind = k, .epoch = k == WRITE_STALE ? UINT64_MAX - 7 : 0 };
        for (unsigned i = 0; i < BATCH_MAX; i++)
                w->idx[i] = -1;
        if (k == WRITE_EPOCH)
                /* The epoch first, then the write that expects it. */
                send_call(c, load_method(c->bus, t->path, PROPS, "Get", "ss", EP, "MemctxEpoch"), OP_GET, ERR_GONE,
                          done_read_epoch, w);
        else
                send_write(c, w);
}

static void step_write(load_client *c) {
        unsigned kinds = load_rand_below(&c->rng, 4) == 0 ? K_TRIGGER : K_MW;
        load_target *t;

        if (c->lease_path && c->ops_left == 0) {
                end_lease(c);
                return;
        }
        if (c->lease_path) {
                c->ops_left--;
                write_op(c, c->lease_target, pick_write(c));
                return;
        }
        t = load_target_pick(c->ctx, &c->rng, kinds) ?: load_target_pick(c->ctx, &c->rng, K_MW);
        if (!t)
                step_read(c);
        else if (load_rand_below(&c->rng, 100) < 8)
                write_op(c, t, WRITE_NO_LEASE);
        else
                acquire(c, t, 2, false, 1 + load_rand_below(&c->rng, 8));
}

/* --- memctx subscribers -------------------------------------------------------------------- */

static memsub *find_sub(load_client *c, load_target *t) {
        for (size_t i = 0; i < c->n_subs; i++)
                if (c->subs[i].t == t)
                        return &c->subs[i];
        return NULL;
}

static void drop_sub(load_client *c, load_target *t) {
        memsub *s = find_sub(c, t);

        if (s)
                *s = c->subs[--c->n_subs];
}

static int on_memctx_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        load_client *c = userdata;
        load_target *t = load_target_by_path(c->ctx, sd_bus_message_get_path(m));
        bool invalidated = sd_bus_message_is_signal(m, VMSIG_BUS_ENDPOINT_INTERFACE, "MemctxInvalidated");
        memsub *s = t ? find_sub(c, t) : NULL;
        uint64_t epoch = 0, dtb = 0;

        if (sd_bus_message_read(m, invalidated ? "t" : "tt", &epoch, &dtb) < 0)
                return 0;
        sub_changes++;
        if (!s) {
                load_fail(c->ctx, "%s for %s reached a client that is not subscribed to it",
                          sd_bus_message_get_member(m), sd_bus_message_get_path(m));
                return 0;
        }
        /* Invalidated names the epoch that ended; the next datum is newer. */
        if (invalidated ? epoch != s->epoch || s->invalidated
                        : epoch < s->epoch || (epoch == s->epoch && s->invalidated))
                load_fail(c->ctx, "%s(%" PRIu64 ") of '%s' after epoch %" PRIu64 "%s: out of order",
                          sd_bus_message_get_member(m), epoch, t->name, s->epoch,
                          s->invalidated ? " was invalidated" : "");
        s->epoch = epoch;
        s->invalidated = invalidated;
        return 0;
}

/* The datum of a new or repeated subscription: a read-only fd of the RAM's
 * size, an epoch no older than the last one this subscriber saw. */
static void check_datum(load_client *c, load_target *t, int fd, uint64_t epoch, uint64_t size) {
        memsub *s = find_sub(c, t);
        int flags = fcntl(fd, F_GETFL);
        uint8_t byte;

        if (flags < 0 || (flags & O_ACCMODE) != O_RDONLY)
                load_fail(c->ctx, "SubscribeMemctx of '%s' returned an fd that is not read-only", t->name);
        if (size != t->ram_size || pread(fd, &byte, 1, (off_t) (size - 1)) != 1)
                load_fail(c->ctx, "SubscribeMemctx of '%s': size %" PRIu64 ", expected %" PRIu64 ", or unreadable",
                          t->name, size, t->ram_size);
        /* A trigger VM may be a new incarnation with its own epochs. */
        if (s && t->kind != TARGET_TRIGGER && epoch < s->epoch)
                load_fail(c->ctx, "SubscribeMemctx of '%s' returned epoch %" PRIu64 " after %" PRIu64, t->name, epoch,
                          s->epoch);
        if (!s && c->n_subs < MAX_SUBS)
                s = &c->subs[c->n_subs++];
        if (s)
                *s = (memsub) { .t = t, .epoch = epoch };
        memctx_checked++;
}

static void done_subscribe(load_ctx *ctx, load_client *c, sd_bus_message *reply, load_outcome o, void *userdata) {
        load_target *t = userdata;
        uint64_t dtb, epoch, size;
        int fd;

        if (o == OUTCOME_OK && sd_bus_message_read(reply, "httt", &fd, &dtb, &epoch, &size) >= 0)
                check_datum(c, t, fd, epoch, size);
        else if (o == OUTCOME_OK)
                load_fail(ctx, "SubscribeMemctx of '%s': a reply of the wrong shape", t->name);
        else
                drop_sub(c, t);
        client_next(c);
}

static void done_unsubscribe(load_ctx *ctx, load_client *c, sd_bus_message *reply, load_outcome o, void *userdata) {
        load_target *t = userdata;

        /* NotSubscribed is only right when the endpoint went away. */
        if (o == OUTCOME_REJECTED && t->kind != TARGET_TRIGGER && t->kind != TARGET_SPARE)
                load_fail(ctx, "UnsubscribeMemctx of stub '%s' failed: %s", t->name,
                          sd_bus_message_get_error(reply)->name);
        drop_sub(c, t);
        client_next(c);
}

static void step_memctx(load_client *c) {
        unsigned r = load_rand_below(&c->rng, 100);
        /* A trigger VM whose QEMU is away has no memory context. */
        load_target *t = c->n_subs < MAX_SUBS && r < 45 ? load_target_pick(c->ctx, &c->rng, K_LC | K_MW | K_TRIGGER)
                                                         : NULL;
        bool subscribe = t || r >= 75;

        /* Or one of its own: unsubscribed, or subscribed again. */
        if (!t && c->n_subs > 0 && r < 90)
                t = c->subs[load_rand_below(&c->rng, (unsigned) c->n_subs)].t;
        if (!t)
                step_read(c);
        else if (subscribe)
                send_call(c, load_method(c->bus, t->path, EP, "SubscribeMemctx", NULL), OP_SUBSCRIBE,
                          ERR_GONE | ERR(E_NOT_SUPPORTED), done_subscribe, t);
        else
                send_call(c, load_method(c->bus, t->path, EP, "UnsubscribeMemctx", NULL), OP_UNSUBSCRIBE,
                          ERR(E_NOT_SUBSCRIBED) | ERR_GONE, done_unsubscribe, t);
}

/* --- signal subscriptions ------------------------------------------------------------------ */

static int on_sigsub_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        sigsub *s = userdata;

        sigsub_signals++;
        load_track_signal(s->client->ctx, &s->track, s->t, m, "a signal subscriber", false);
        return 0;
}

static int on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        sigsub *s = userdata;
        load_client *c = s->client;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        call_ended(c->ctx, c, OP_MATCH, e ? OUTCOME_UNEXPECTED : OUTCOME_OK, s->start);
        if (e)
                load_fail(c->ctx, "AddMatch failed: %s: %s", e->name, e->message ?: "");
        client_next(c);
        return 0;
}

static void add_sigsub(load_client *c, load_target *t) {
        sigsub *s = calloc(1, sizeof *s);
        char match[512];
        int r;

        if (!s) {
                client_later(c, 1000);
                return;
        }
        *s = (sigsub) { .client = c, .t = t, .start = bench_now_nsec() };
        load_track_reset(&s->track);
        snprintf(match, sizeof match, "type='signal',sender='%s',path='%s'", VMSIG_BUS_NAME, t->path);
        r = sd_bus_add_match_async(c->bus, &s->slot, match, on_sigsub_signal, on_match_installed, s);
        if (r < 0) {
                free(s);
                client_later(c, 10000);
                return;
        }
        c->sig[c->n_sig++] = s;
        call_begun(c->ctx, c);
}

static void step_signals(load_client *c) {
        unsigned r = load_rand_below(&c->rng, 100);
        load_target *t = load_target_pick(c->ctx, &c->rng, K_LC | K_MW);

        if (c->n_sig < MAX_SIGSUBS && r < 35 && t)
                add_sigsub(c, t);
        else if (c->n_sig > 0 && r < 60) {
                /* RemoveMatch goes out without a reply to wait for. */
                size_t i = load_rand_below(&c->rng, (unsigned) c->n_sig);
                sigsub_free(c->sig[i]);
                c->sig[i] = c->sig[--c->n_sig];
                step_read(c);
        } else
                step_read(c);
}

/* --- lease churners --------------------------------------------------------------------------- */

static sd_bus_message *input_call(load_client *c, load_target *t) {
        sd_bus_message *m = load_method(c->bus, t->path, EP, "InjectInput", NULL);
        unsigned n = 1 + load_rand_below(&c->rng, 8);
        int r = m ? sd_bus_message_open_container(m, 'a', "(uui)") : -ENOMEM;

        for (unsigned i = 0; r >= 0 && i < 2 * n; i++)
                r = sd_bus_message_append(m, "(uui)", 0u, 30u + i / 2, (int32_t) (i % 2 == 0));
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r < 0 ? sd_bus_message_unref(m) : m;
}

/* An AcquireLease sent, and the connection closed before the reply: the
 * lease vmsigd grants must end with the connection. */
static void acquire_and_vanish(load_client *c, load_target *t) {
        sd_bus_message *m = acquire_call_new(c, t, load_rand_below(&c->rng, 3), false);

        if (m)
                (void) sd_bus_send(c->bus, m, NULL);
        sd_bus_message_unref(m);
        (void) sd_bus_flush(c->bus);
        client_vanish(c);
        client_next(c);
}

static void lease_work(load_client *c) {
        load_target *t = c->lease_target;

        c->ops_left--;
        if (c->lease_class == 0)
                send_call(c, input_call(c, t), OP_INPUT,
                          ERR(E_NOT_HOLDER) | ERR_GONE | ERR(E_INVALID_STATE) | ERR(E_HOST) | ERR(E_LEASE_REVOKED),
                          done_next, NULL);
        else
                /* QEMU's lifecycle under load; a stub's is the drivers'. */
                send_call(c, load_method(c->bus, t->path, EP, load_rand_below(&c->rng, 2) ? "Pause" : "Resume", NULL),
                          OP_LIFECYCLE, ERR(E_NOT_HOLDER) | ERR_GONE | ERR(E_INVALID_STATE) | ERR(E_HOST), done_next,
                          NULL);
}

static void step_lease(load_client *c) {
        unsigned r = load_rand_below(&c->rng, 100);
        load_target *t = load_target_pick(c->ctx, &c->rng, K_ALL);

        if (c->lease_path) {
                bool work = c->ops_left > 0 &&
                            (c->lease_class == 0 || (c->lease_class == 1 && c->lease_target->kind == TARGET_TRIGGER));
                if (work)
                        lease_work(c);
                else
                        end_lease(c);
        } else if (!t)
                step_read(c);
        else if (r < 60) {
                unsigned class = load_rand_below(&c->rng, 3);
                acquire(c, t, class, load_rand_below(&c->rng, 100) < 8, 1 + load_rand_below(&c->rng, 3));
        } else if (r < 66)
                acquire_and_vanish(c, t);
        else
                step_bad(c);
}

/* --- the loop of a client ------------------------------------------------------------------ */

static void step_reader(load_client *c) {
        if (load_rand_below(&c->rng, 100) < 15)
                step_bad(c);
        else
                step_read(c);
}

/* What each role does next. A watcher reads: its signals are its work. */
static void (*const role_steps[_ROLE_MAX])(load_client *c) = {
        [ROLE_WATCHER] = step_read,  [ROLE_LIFECYCLE] = step_lifecycle, [ROLE_WRITER] = step_write,
        [ROLE_WRITER2] = step_write, [ROLE_MEMCTX] = step_memctx,       [ROLE_SIGNALS] = step_signals,
        [ROLE_READER] = step_reader, [ROLE_LEASER] = step_lease,
};

static void client_next(load_client *c) {
        if (!c->busy && c->bus && may_call(c->ctx))
                role_steps[c->role](c);
}

int load_clients_start(load_ctx *ctx) {
        int r = 0;

        memctx_checked = sigsub_signals = sub_changes = 0;
        ctx->clients = calloc(ctx->opt.clients, sizeof *ctx->clients);
        if (!ctx->clients)
                return -ENOMEM;
        for (unsigned i = 0; r >= 0 && i < ctx->opt.clients; i++) {
                load_client *c = calloc(1, sizeof *c);
                if (!c)
                        return -ENOMEM;
                *c = (load_client) { .ctx = ctx, .index = i, .role = (role) (i % _ROLE_MAX), .lease_fd = -1 };
                c->rng = ctx->opt.seed * 1000003ULL + i;
                ctx->clients[i] = c;
                r = client_connect(c);
                if (r >= 0 && c->role == ROLE_WATCHER)
                        r = load_watcher_new(ctx, c->bus, &c->watcher);
        }
        if (r >= 0)
                r = load_timer(ctx, &pump_timer, 250000, 10000, on_pump, ctx);
        return r;
}

void load_clients_kick(load_ctx *ctx) {
        for (unsigned i = 0; i < ctx->opt.clients; i++)
                client_next(ctx->clients[i]);
}

void load_clients_stop(load_ctx *ctx) {
        pump_timer = sd_event_source_disable_unref(pump_timer);
        for (unsigned i = 0; ctx->clients && i < ctx->opt.clients; i++) {
                load_client *c = ctx->clients[i];
                if (!c)
                        continue;
                c->timer = sd_event_source_disable_unref(c->timer);
                lease_forget(c);
                if (c->bus)
                        (void) sd_bus_flush(c->bus);
                client_disconnect(c);
                free(c);
        }
        free(ctx->clients);
        ctx->clients = NULL;
}

/* After the load: every live subscription of a stub (they never detach)
 * ends at the epoch the endpoint has now. The Get goes out after the
 * signals sent earlier, so its reply comes after them. */
static int check_subs(load_ctx *ctx, load_client *c) {
        for (size_t i = 0; i < c->n_subs; i++) {
                memsub *s = &c->subs[i];
                uint64_t epoch = 0;
                int r;

                if (s->t->kind == TARGET_TRIGGER)
                        continue;
                r = sd_bus_get_property_trivial(c->bus, VMSIG_BUS_NAME, s->t->path, EP, "MemctxEpoch", NULL, 't',
                                                &epoch);
                if (r >= 0)
                        r = bench_drain(c->bus);
                if (r < 0)
                        return r;
                if (s->epoch != epoch)
                        load_fail(ctx,
                                  "a memctx subscriber of '%s' ends at epoch %" PRIu64 ", the endpoint is at %" PRIu64,
                                  s->t->name, s->epoch, epoch);
        }
        return 0;
}

int load_memctx_check_final(load_ctx *ctx) {
        unsigned subscribers = 0, subs = 0;

        for (unsigned i = 0; i < ctx->opt.clients; i++) {
                load_client *c = ctx->clients[i];
                if (c->role != ROLE_MEMCTX)
                        continue;
                if (check_subs(ctx, c) < 0)
                        load_fail(ctx, "cannot read the epochs of memctx subscriber %u", i);
                subscribers++;
                subs += (unsigned) c->n_subs;
        }
        printf("  memctx: %u subscribers end with %u subscriptions; %" PRIu64 " data checked, %" PRIu64
               " MemctxChanged/Invalidated in order\n",
               subscribers, subs, memctx_checked, sub_changes);
        return 0;
}

void load_clients_print(load_ctx *ctx) {
        printf("  signal subscriptions: %" PRIu64 " signals checked by subscribers that came and went\n",
               sigsub_signals);
}
