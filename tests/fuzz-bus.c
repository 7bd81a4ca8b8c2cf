/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the D-Bus method handlers: the input is a series
 * of calls to a vmsigd front. Each input gets a fresh core with three stub
 * VMs (running with page tables and a DTB, paused, shut off) and a front
 * served on one end of a socketpair, as vmsigd serves a private-socket
 * peer (p2p, anonymous to the bus, root by SO_PEERCRED, so authorization
 * goes the root way; run as another user, every call is denied early).
 * The other end is the client: it sends each call and runs the loop until
 * the reply is in.
 *
 * A call picks a method from the vtables (and a few that do not exist), an
 * object path (the manager, each endpoint, leases it was given, bogus
 * ones), with or without its interface, and a body built from the input
 * for the method's signature or another one: strings, integers, byte
 * arrays, option dictionaries with any keys and variants, fds. Leases a
 * call was granted are held (their fds kept) until a call lets them go,
 * so later calls run as the holder.
 *
 * Checks: nothing crashes or leaks; every call is answered, with a method
 * return or an error named org.vmsig.Error.* or org.freedesktop.DBus.Error.*;
 * the server connection stays up; and the loop goes idle after each call.
 *
 * Input: per call, u8 method (mod the table), u8 path, u8 flags (bit 0: no
 * interface; bit 1: the signature from the pool, by the next u8; bit 2:
 * close the lease fds after the call), then the values the signature asks
 * for, depth first (see append_one()). Up to CALLS_MAX calls.
 *
 * Seeds: tests/data/fuzz-bus (every method with a sensible body, lease
 * sequences, writes through the page tables, wrong signatures).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-audit.h"
#include "bus-names.h"
#include "bus-auth.h"
#include "bus-front.h"
#include "fuzz.h"
#include "log.h"
#include "macro.h"
#include "stub.h"
#include "vmsig-core.h"
#include "vmsig-endpoint.h"
#ifdef VMSIG_HAVE_VGPU
#include "vmsig-vgpu.h"
#endif

#define CALLS_MAX 16
#define LEASES_MAX 8
#define LOOP_MAX 20000
#define DEPTH_MAX 3
#define ARRAY_MAX 5
#define BYTES_MAX 1100 /* past max_write, so WriteTooLong is reachable */
#define MAX_WRITE 512
#define RAM_SIZE (256 * 1024)
#define DTB 0x1000

#define MANAGER VMSIG_BUS_MANAGER_INTERFACE
#define ENDPOINT VMSIG_BUS_ENDPOINT_INTERFACE
#define LEASE VMSIG_BUS_LEASE_INTERFACE
#define PROPERTIES "org.freedesktop.DBus.Properties"

enum {
        CALL_NO_INTERFACE = 1 << 0,
        CALL_OTHER_SIGNATURE = 1 << 1,
        CALL_DROP_LEASES = 1 << 2,
};

typedef struct Method {
        const char *interface, *member, *signature;
} Method;

static const Method methods[] = {
        { MANAGER, "ListEndpoints", "" },
        { MANAGER, "GetEndpoint", "s" },
        { MANAGER, "GetEndpointByVmid", "u" },
        { MANAGER, "Reload", "" },
        { MANAGER, "DetachEndpoint", "s" },
        { ENDPOINT, "AcquireLease", "sa{sv}" },
        { ENDPOINT, "InjectInput", "a(uui)" },
        { ENDPOINT, "SubscribeMemctx", "" },
        { ENDPOINT, "UnsubscribeMemctx", "" },
        { ENDPOINT, "SubscribeFrames", "" },
        { ENDPOINT, "GetFrame", "" },
        { ENDPOINT, "UnsubscribeFrames", "" },
        { ENDPOINT, "MemWrite", "taya{sv}" },
        { ENDPOINT, "MemWriteVirtual", "taya{sv}" },
        { ENDPOINT, "MemWriteBatch", "a(tay)a{sv}" },
        { ENDPOINT, "Pause", "" },
        { ENDPOINT, "Resume", "" },
        { ENDPOINT, "Reset", "" },
        { ENDPOINT, "PowerOff", "" },
        { ENDPOINT, "Kill", "" },
        { LEASE, "Release", "" },
        { PROPERTIES, "Get", "ss" },
        { PROPERTIES, "GetAll", "s" },
        { PROPERTIES, "Set", "ssv" },
        { "org.freedesktop.DBus.Introspectable", "Introspect", "" },
        { "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", "" },
        { "org.freedesktop.DBus.Peer", "Ping", "" },
        { MANAGER, "NoSuchMethod", "s" },
        { "org.vmsig.NoSuchInterface", "Pause", "" },
};

static const char *const signatures[] = {
        "",   "s",    "u",     "ss",  "sa{sv}", "a(uui)", "taya{sv}", "a(tay)a{sv}", "ssv", "t",  "ay",
        "h",  "a{sv}", "v",    "sas", "(uui)",  "o",      "g",        "b",           "x",   "d",  "nq",
        "aay", "a{ss}", "av",  "sa{sv}h", "tay", "a(tay)", "a(uu)", "y",
};

static const char *const strings[] = {
        "input", "power", "memory-write", "force", "pause", "expected_epoch", "vm-run", "vm-paused", "vm-off",
        "nope", "", ".hidden", "-dash", ENDPOINT, MANAGER, LEASE, "State", "Name", "Capabilities", "MemctxEpoch",
        "RamSize", "InputLeaseHolder", "PowerLeaseHolder", "MemoryWriteLeaseHolder", "Version", "EndpointCount",
        "Class", "Holder", "Endpoint", "AcquiredAt", "BootstrapState", "Vmid", "Sequence", "org.vmsig.NoSuchInterface",
        "a-name-of-sixty-five-characters-which-is-one-more-than-the-max-ok",
};

/* Types a variant may hold; the first VARIANT_BASIC ones contain nothing. */
static const char *const variant_types[] = {
        "b", "t", "s", "u", "i", "y", "ay", "as", "a{sv}", "v", "(tt)", "x", "d", "o", "g", "h", "n",
};
#define VARIANT_BASIC 6

typedef struct Session {
        sd_event *event;
        vmsig_core *core;
        sd_bus *server, *client;
        bus_auth *auth;
        vmsig_bus_context ctx;
        vmsig_bus_front *front;
#ifdef VMSIG_HAVE_VGPU
        vmsig_vgpu *vgpu; /* frames of the stubs' displays */
#endif
        vmsig_endpoint *vm_run;
        char endpoint_paths[3][64];
        char lease_paths[LEASES_MAX][64];
        size_t n_lease_paths;
        int lease_fds[LEASES_MAX];
        size_t n_lease_fds;
        unsigned reloads;
        bool replied;
} Session;

/* --- building a body from the input ------------------------------------- */

/* The length of the single complete type sig starts with; 0 if none. */
static size_t type_len(const char *sig) {
        char open = sig[0], close = open == '(' ? ')' : '}';
        size_t depth = 0, i = 0;

        if (open == 'a')
                return sig[1] ? 1 + type_len(sig + 1) : 0;
        if (open != '(' && open != '{')
                return open ? 1 : 0;
        do {
                if (sig[i] == open)
                        depth++;
                else if (sig[i] == close)
                        depth--;
                else if (!sig[i])
                        return 0;
                i++;
        } while (depth > 0);
        return i;
}

static const char *pick_path(Session *s, uint8_t b);

static void take_string(FuzzInput *in, char buf[static 128]) {
        uint8_t b = fuzz_u8(in);
        size_t n = b & 0x7f;

        if (!(b & 0x80)) {
                snprintf(buf, 128, "%s", strings[b % ELEMENTSOF(strings)]);
                return;
        }
        /* Printable ASCII: sd-bus refuses to send what is not UTF-8. */
        for (size_t i = 0; i < n; i++)
                buf[i] = (char) (0x20 + fuzz_u8(in) % 0x5f);
        buf[n] = '\0';
}

static int append_basic(Session *s, sd_bus_message *m, char type, FuzzInput *in) {
        char str[128];
        uint64_t v;
        int fd, r;

        switch (type) {
        case 's':
                take_string(in, str);
                return sd_bus_message_append_basic(m, 's', str);
        case 'o':
                return sd_bus_message_append_basic(m, 'o', pick_path(s, fuzz_u8(in)));
        case 'g':
                return sd_bus_message_append_basic(m, 'g', signatures[fuzz_u8(in) % ELEMENTSOF(signatures)]);
        case 'h':
                fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                r = sd_bus_message_append_basic(m, 'h', &fd); /* sd-bus keeps a copy */
                safe_close(fd);
                return r;
        case 'b':
                v = fuzz_u8(in) & 1;
                return sd_bus_message_append_basic(m, 'b', &(int) { (int) v });
        default:
                /* As wide as the type, into the low bytes of v. */
                v = 0;
                (void) fuzz_take(in, &v, type == 'y' ? 1 : strchr("nq", type) ? 2 : strchr("iu", type) ? 4 : 8);
                return sd_bus_message_append_basic(m, type, &v);
        }
}

static int append_one(Session *s, sd_bus_message *m, const char **sig, FuzzInput *in, unsigned depth);

static int append_bytes(sd_bus_message *m, FuzzInput *in) {
        static uint8_t buf[BYTES_MAX];
        size_t n = fuzz_u16(in) % BYTES_MAX, k = MIN(n, in->left);

        /* Zeros past the end of the input, not what an earlier one left. */
        (void) fuzz_take(in, buf, k);
        memset(buf + k, 0, n - k);
        return sd_bus_message_append_array(m, 'y', buf, n);
}

static int append_container(Session *s, sd_bus_message *m, char type, const char *contents, FuzzInput *in,
                            unsigned depth) {
        size_t n = type == 'a' ? fuzz_u8(in) % ARRAY_MAX : 1;
        int r;

        r = sd_bus_message_open_container(m, type, contents);
        for (size_t i = 0; r >= 0 && i < n; i++)
                for (const char *p = contents; r >= 0 && *p;)
                        r = append_one(s, m, &p, in, depth + 1);
        return r < 0 ? r : sd_bus_message_close_container(m);
}

static int append_one(Session *s, sd_bus_message *m, const char **sig, FuzzInput *in, unsigned depth) {
        size_t len = type_len(*sig);
        char contents[64];
        const char *type = *sig;

        if (len == 0 || len >= sizeof contents)
                return -EINVAL;
        *sig += len;
        switch (type[0]) {
        case 'a':
                if (type[1] == 'y')
                        return append_bytes(m, in);
                snprintf(contents, sizeof contents, "%.*s", (int) len - 1, type + 1);
                return append_container(s, m, 'a', contents, in, depth);
        case '(':
        case '{':
                snprintf(contents, sizeof contents, "%.*s", (int) len - 2, type + 1);
                return append_container(s, m, type[0] == '(' ? 'r' : 'e', contents, in, depth);
        case 'v':
                /* Deep down, only basic types: the nesting stays bounded. */
                snprintf(contents, sizeof contents, "%s",
                         variant_types[fuzz_u8(in) % (depth < DEPTH_MAX ? ELEMENTSOF(variant_types) : VARIANT_BASIC)]);
                return append_container(s, m, 'v', contents, in, depth);
        default:
                return append_basic(s, m, type[0], in);
        }
}

static int append_body(Session *s, sd_bus_message *m, const char *sig, FuzzInput *in) {
        int r = 0;

        while (r >= 0 && *sig)
                r = append_one(s, m, &sig, in, 0);
        return r;
}

/* --- the session ---------------------------------------------------------- */

static const char *pick_path(Session *s, uint8_t b) {
        switch (b % 12) {
        case 0:
                return VMSIG_BUS_PATH;
        case 1:
        case 2:
        case 3:
                return s->endpoint_paths[b % 12 - 1];
        case 4:
                return VMSIG_BUS_ENDPOINT_PREFIX "/nope";
        case 5:
                return s->n_lease_paths > 0 ? s->lease_paths[s->n_lease_paths - 1] : VMSIG_BUS_LEASE_PREFIX "/1";
        case 6:
                return s->n_lease_paths > 0 ? s->lease_paths[0] : VMSIG_BUS_LEASE_PREFIX "/2";
        case 7:
                return VMSIG_BUS_LEASE_PREFIX "/0";
        case 8:
                return "/";
        case 9:
                return VMSIG_BUS_ENDPOINT_PREFIX;
        case 10:
                return VMSIG_BUS_ENDPOINT_PREFIX "/_2e";
        default:
                return VMSIG_BUS_LEASE_PREFIX;
        }
}

/* Runs the loop until it has nothing left to do. */
static void settle(Session *s) {
        int r, i;

        for (i = 0; i < LOOP_MAX && (r = sd_event_run(s->event, 0)) > 0; i++)
                ;
        fuzz_check(i < LOOP_MAX);
        fuzz_check(r >= 0);
}

static int fake_reload(void *userdata, char **error) {
        Session *s = userdata;

        if (s->reloads++ % 2 == 0)
                return 0;
        *error = strdup("vmsigd.conf:3: the fuzzer broke the configuration.");
        return -EINVAL;
}

static void keep_lease(Session *s, sd_bus_message *reply) {
        const char *path;
        int fd;

        fuzz_check(sd_bus_message_read(reply, "oh", &path, &fd) > 0);
        if (s->n_lease_paths < LEASES_MAX)
                snprintf(s->lease_paths[s->n_lease_paths++], sizeof s->lease_paths[0], "%s", path);
        /* Holding the fd holds the lease; the message's copy goes with it. */
        if (s->n_lease_fds < LEASES_MAX)
                s->lease_fds[s->n_lease_fds++] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

static bool error_name_ok(const char *name) {
        return name && (strncmp(name, "org.vmsig.Error.", 16) == 0 || strncmp(name, "org.freedesktop.DBus.Error.", 27) == 0);
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Session *s = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (getenv("FUZZ_TRACE"))
                fprintf(stderr, "fuzz-bus: reply %s: %s\n", e ? e->name : "ok", e ? e->message : "");
        if (e && !error_name_ok(e->name)) {
                fprintf(stderr, "unexpected error %s: %s\n", e->name, e->message);
                fuzz_check(error_name_ok(e->name));
        }
        if (!e && sd_bus_message_has_signature(reply, "oh"))
                keep_lease(s, reply);
        s->replied = true;
        return 0;
}

static void drop_leases(Session *s) {
        for (size_t i = 0; i < s->n_lease_fds; i++)
                safe_close(s->lease_fds[i]);
        s->n_lease_fds = 0;
        settle(s);
}

static void call(Session *s, FuzzInput *in) {
        const Method *mt = &methods[fuzz_u8(in) % ELEMENTSOF(methods)];
        const char *path = pick_path(s, fuzz_u8(in));
        uint8_t flags = fuzz_u8(in);
        const char *sig = flags & CALL_OTHER_SIGNATURE ? signatures[fuzz_u8(in) % ELEMENTSOF(signatures)]
                                                       : mt->signature;
        sd_bus_message *m = NULL;

        fuzz_check(sd_bus_message_new_method_call(s->client, &m, NULL, path,
                                                  flags & CALL_NO_INTERFACE ? NULL : mt->interface, mt->member) >= 0);
        if (getenv("FUZZ_TRACE"))
                fprintf(stderr, "fuzz-bus: call %s %s.%s(%s)\n", path, mt->interface, mt->member, sig);
        if (append_body(s, m, sig, in) >= 0) {
                s->replied = false;
                fuzz_check(sd_bus_call_async(s->client, NULL, m, on_reply, s, 0) >= 0);
                settle(s);
                fuzz_check(s->replied);
                fuzz_check(sd_bus_is_open(s->server) > 0);
        }
        sd_bus_message_unref(m);
        if (flags & CALL_DROP_LEASES)
                drop_leases(s);
}

static void open_buses(Session *s) {
        int fds[2];
        sd_id128_t id;

        fuzz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == 0);
        fuzz_check(sd_id128_randomize(&id) >= 0);
        fuzz_check(sd_bus_new(&s->server) >= 0 && sd_bus_new(&s->client) >= 0);
        fuzz_check(sd_bus_set_fd(s->server, fds[0], fds[0]) >= 0 && sd_bus_set_fd(s->client, fds[1], fds[1]) >= 0);
        fuzz_check(sd_bus_set_server(s->server, 1, id) >= 0);
        fuzz_check(sd_bus_negotiate_fds(s->server, 1) >= 0 && sd_bus_negotiate_fds(s->client, 1) >= 0);
        fuzz_check(sd_bus_attach_event(s->server, s->event, 0) >= 0 && sd_bus_attach_event(s->client, s->event, 0) >= 0);
        fuzz_check(sd_bus_start(s->server) >= 0 && sd_bus_start(s->client) >= 0);
        for (int i = 0; i < LOOP_MAX && (sd_bus_is_ready(s->server) <= 0 || sd_bus_is_ready(s->client) <= 0); i++)
                fuzz_check(sd_event_run(s->event, 1000) >= 0);
        fuzz_check(sd_bus_is_ready(s->server) > 0 && sd_bus_is_ready(s->client) > 0);
}

static vmsig_endpoint *attach_stub(Session *s, size_t i, const char *name, vmsig_state state, uint64_t dtb) {
        vmsig_stub_spec spec = { .name = name, .ram_size = RAM_SIZE, .initial_state = state, .dtb = dtb };
        vmsig_endpoint_spec ep_spec;
        vmsig_endpoint *ep;
        char *path;

        fuzz_check(vmsig_stub_new(&spec, &ep_spec, NULL) == 0);
        fuzz_check(vmsig_core_attach_endpoint(s->core, &ep_spec, &ep) == 0);
        fuzz_check(sd_bus_path_encode(VMSIG_BUS_ENDPOINT_PREFIX, name, &path) >= 0);
        snprintf(s->endpoint_paths[i], sizeof s->endpoint_paths[i], "%s", path);
        free(path);
        return ep;
}

/* Tables at DTB: a self-map, a 1G page outside RAM, a 2M page over all of
 * RAM, 4K pages, a missing one, one outside RAM, and one onto the PML4. */
static void write_page_tables(vmsig_endpoint *ep) {
        static const uint64_t entries[][2] = {
                { 0x1000, 0x2003 },          { 0x1000 + 0x1ED * 8, 0x1003 }, { 0x2000, 0x3003 },
                { 0x2008, 0x40000083 },       { 0x3000, 0x4003 },             { 0x3008, 0x83 },
                { 0x4000 + 0x10 * 8, 0x10003 }, { 0x4000 + 0x11 * 8, 0x11003 }, { 0x4000 + 0x12 * 8, 0x12003 },
                { 0x4000 + 0x21 * 8, 0x100003 }, { 0x4000 + 0x22 * 8, 0x1003 },
        };

        for (size_t i = 0; i < ELEMENTSOF(entries); i++) {
                uint64_t v = htole64(entries[i][1]);
                fuzz_check(vmsig_endpoint_write_ram(ep, entries[i][0], &v, sizeof v) == 0);
        }
}

static void session_start(Session *s) {
        static const bus_admission_config limits = { .limits = { 4, 2, 3 } };

        log_set_max_level(LOG_DEBUG); /* every message formatted, under the sanitizers too */
        bus_audit_set_target(BUS_AUDIT_STDERR); /* never the journal */
        fuzz_check(sd_event_new(&s->event) >= 0);
        fuzz_check(vmsig_core_new(s->event, &s->core) == 0);
#ifdef VMSIG_HAVE_VGPU
        /* The fastest rate, so that captures happen within a session. */
        fuzz_check(vmsig_vgpu_new(s->core, &(vmsig_vgpu_config) { .rate = VMSIG_VGPU_RATE_MAX }, &s->vgpu) == 0);
#endif
        open_buses(s);
        fuzz_check(bus_auth_new(s->event, s->server, &s->auth) >= 0);
        fuzz_check(bus_auth_configure(s->auth, &limits) >= 0);
        s->ctx = (vmsig_bus_context) { .auth = s->auth, .reload = fake_reload, .userdata = s, .max_write = MAX_WRITE };
        fuzz_check(vmsig_bus_front_new(s->core, s->server, &s->ctx, &s->front) == 0);
        fuzz_check(vmsig_bus_front_set_peer_label(s->front, "p2p-1") == 0);
        s->vm_run = attach_stub(s, 0, "vm-run", VMSIG_STATE_RUNNING, DTB);
        (void) attach_stub(s, 1, "vm-paused", VMSIG_STATE_PAUSED, 0);
        (void) attach_stub(s, 2, "vm-off", VMSIG_STATE_SHUT_OFF, 0);
        write_page_tables(s->vm_run);
        settle(s);
}

/* In vmsigd's order: endpoints, front, authorization, connections. */
static void session_end(Session *s) {
        vmsig_endpoint *ep;

        drop_leases(s);
        while ((ep = vmsig_core_next_endpoint(s->core, NULL)))
                (void) vmsig_core_detach_endpoint(s->core, ep);
        vmsig_core_flush(s->core);
        settle(s);
        s->front = vmsig_bus_front_free(s->front);
        s->auth = bus_auth_free(s->auth);
        s->server = sd_bus_flush_close_unref(s->server);
        s->client = sd_bus_flush_close_unref(s->client);
#ifdef VMSIG_HAVE_VGPU
        s->vgpu = vmsig_vgpu_free(s->vgpu);
#endif
        s->core = vmsig_core_free(s->core);
        s->event = sd_event_unref(s->event);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Session s;
        FuzzInput in = { .p = data, .left = size };

        int fds = fuzz_count_fds();

        s = (Session) {};
        session_start(&s);
        for (unsigned i = 0; i < CALLS_MAX && in.left > 0; i++)
                call(&s, &in);
        session_end(&s);
        fuzz_check(fuzz_count_fds() == fds);
        return 0;
}

/* Nothing outlives an input. */
void fuzz_teardown(void) {
}
