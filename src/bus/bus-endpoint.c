/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-client.h"
#include "bus-errors.h"
#include "bus-front-internal.h"
#include "bus-util.h"
#include "log.h"
#include "bootstrap.h"
#include "memctx.h"

/* A lifecycle call waiting for the host seam. It pins the endpoint so the
 * completion can still name it after a detach. */
typedef struct pending_call {
        sd_bus_message *message;
        vmsig_endpoint *endpoint;
        const char *operation; /* for audit and logs: "pause", "inject-input", ... */
        bus_auth *auth;
        bus_peer caller; /* a copy: the peer may leave before the host answers */
} pending_call;

static const vmsig_memctx *endpoint_memctx(const bus_endpoint *be) {
        return vmsig_memctx_get(be->front->core, vmsig_endpoint_get_id(be->endpoint));
}

/* The bootstrap's latest, or one that says nothing was found yet. */
static const vmsig_bootstrap_payload *endpoint_bootstrap(const bus_endpoint *be) {
        static const vmsig_bootstrap_payload idle = { .state = VMSIG_BOOTSTRAP_IDLE, .os = VMSIG_GUEST_OS_UNKNOWN };
        const vmsig_bootstrap_payload *p = vmsig_bootstrap_get(be->front->core, vmsig_endpoint_get_id(be->endpoint));
        return p ?: &idle;
}

/* What a bootstrap found counts once it is ready. */
static const vmsig_bootstrap_payload *endpoint_bootstrap_ready(const bus_endpoint *be) {
        const vmsig_bootstrap_payload *p = vmsig_bootstrap_get(be->front->core, vmsig_endpoint_get_id(be->endpoint));
        return p && p->state == VMSIG_BOOTSTRAP_READY ? p : NULL;
}

BUS_DEFINE_PROPERTY_GETTER(property_get_name, bus_endpoint, "s", vmsig_endpoint_get_name(u->endpoint));
BUS_DEFINE_PROPERTY_GETTER(property_get_uuid, bus_endpoint, "s",
                           SD_ID128_TO_UUID_STRING(vmsig_endpoint_get_uuid(u->endpoint)));
BUS_DEFINE_PROPERTY_GETTER(property_get_vmid, bus_endpoint, "u", vmsig_endpoint_get_vmid(u->endpoint));
BUS_DEFINE_PROPERTY_GETTER(property_get_generation, bus_endpoint, "u", vmsig_endpoint_get_generation(u->endpoint));
BUS_DEFINE_PROPERTY_GETTER(property_get_state, bus_endpoint, "s",
                           vmsig_state_to_string(vmsig_endpoint_get_state(u->endpoint)));
BUS_DEFINE_PROPERTY_GETTER(property_get_backend, bus_endpoint, "s", vmsig_endpoint_get_backend(u->endpoint));
BUS_DEFINE_PROPERTY_GETTER(property_get_memctx_epoch, bus_endpoint, "t",
                           endpoint_memctx(u) ? endpoint_memctx(u)->epoch : UINT64_C(0));
BUS_DEFINE_PROPERTY_GETTER(property_get_ram_size, bus_endpoint, "t",
                           endpoint_memctx(u) ? endpoint_memctx(u)->ram_size : UINT64_C(0));
BUS_DEFINE_PROPERTY_GETTER(property_get_bootstrap_state, bus_endpoint, "s",
                           vmsig_bootstrap_state_to_string(endpoint_bootstrap(u)->state));
BUS_DEFINE_PROPERTY_GETTER(property_get_bootstrap_attempts, bus_endpoint, "u", endpoint_bootstrap(u)->attempts);
BUS_DEFINE_PROPERTY_GETTER(property_get_guest_os, bus_endpoint, "s",
                           vmsig_guest_os_to_string(endpoint_bootstrap(u)->os));
BUS_DEFINE_PROPERTY_GETTER(property_get_guest_os_release, bus_endpoint, "s",
                           endpoint_bootstrap_ready(u) ? endpoint_bootstrap_ready(u)->release : "");

/* The witnesses of a ready bootstrap, else none. */
static int property_get_bootstrap_method(sd_bus *bus, const char *path, const char *interface, const char *property,
                                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const vmsig_bootstrap_payload *p = endpoint_bootstrap_ready(userdata);
        char witnesses[VMSIG_WITNESSES_STRING_MAX];

        return sd_bus_message_append(reply, "s",
                                     vmsig_witnesses_to_string(p ? p->witnesses : 0, witnesses, sizeof witnesses));
}

static int property_get_capabilities(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        static const char *const names[_VMSIG_ADAPTER_MAX] = {
                [VMSIG_ADAPTER_MEMCTX] = "memctx",
                [VMSIG_ADAPTER_INPUT] = "input",
                [VMSIG_ADAPTER_HOST] = "lifecycle",
                [VMSIG_ADAPTER_DISPLAY] = "display",
        };
        bus_endpoint *be = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (int i = 0; i < _VMSIG_ADAPTER_MAX; i++)
                if (vmsig_endpoint_has_adapter(be->endpoint, (vmsig_adapter_role) i)) {
                        r = sd_bus_message_append(reply, "s", names[i]);
                        if (r < 0)
                                return r;
                }
        return sd_bus_message_close_container(reply);
}

static int property_get_lease_holder(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        vmsig_lease_class c = strcmp(property, "InputLeaseHolder") == 0 ? VMSIG_LEASE_INPUT
                              : strcmp(property, "PowerLeaseHolder") == 0 ? VMSIG_LEASE_POWER
                                                                          : VMSIG_LEASE_MEMWRITE;
        const vmsig_lease_info *l = vmsig_endpoint_lease_get(be->endpoint, c);

        return sd_bus_message_append(reply, "s", l ? l->holder : "");
}

static pending_call *pending_call_free(pending_call *p) {
        if (!p)
                return NULL;
        bus_auth_quota_release(p->auth, p->caller.uid, BUS_QUOTA_PENDING_CALLS);
        free(p->caller.name);
        sd_bus_message_unref(p->message);
        vmsig_endpoint_unref(p->endpoint);
        return mfree(p);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(pending_call *, pending_call_free);

static void on_host_done(const vmsig_result *res, void *userdata) {
        _cleanup_(pending_call_freep) pending_call *p = userdata;
        int r;

        /* Let the state change reach subscribers (PropertiesChanged) before
         * the caller sees its reply. */
        vmsig_core_flush(vmsig_endpoint_get_core(p->endpoint));

        bus_auth_audit_operation(&p->caller, p->operation, p->endpoint, res->error, NULL);
        if (res->error < 0) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                (void) vmsig_bus_error_set_errnof(&error, res->error, "%s",
                                                  res->message ? res->message : "Host operation failed.");
                r = sd_bus_reply_method_error(p->message, &error);
        } else
                r = sd_bus_reply_method_return(p->message, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot reply to %s of '%s': %m", p->operation,
                                vmsig_endpoint_get_name(p->endpoint));
}

/* One of the caller's pending calls, audited as operation when the caller
 * holds its limit of them already. */
static int pending_call_new(sd_bus_message *m, bus_endpoint *be, const char *operation, sd_bus_error *error,
                            pending_call **ret) {
        _cleanup_(pending_call_freep) pending_call *p = NULL;
        bus_auth *auth = be->front->auth;
        bus_peer *caller = bus_auth_caller(auth, m);
        int r;

        if (!caller)
                return -ESRCH;
        r = bus_auth_quota_take(auth, caller, BUS_QUOTA_PENDING_CALLS, error);
        if (r < 0) {
                bus_auth_audit_operation(caller, operation, be->endpoint, r, NULL);
                return r;
        }
        p = calloc(1, sizeof *p);
        if (!p) {
                bus_auth_quota_release(auth, caller->uid, BUS_QUOTA_PENDING_CALLS);
                return -ENOMEM;
        }
        *p = (pending_call) {
                .message = sd_bus_message_ref(m),
                .endpoint = vmsig_endpoint_ref(be->endpoint),
                .operation = operation,
                .auth = auth,
                .caller = { .name = strdup(caller->name), .uid = caller->uid, .pid = caller->pid },
        };
        if (!p->caller.name)
                return -ENOMEM;
        *ret = TAKE_PTR(p);
        return 0;
}

/* The checks of a call the host carries out, in the convention of checks:
 * the endpoint is attached, the caller holds the lease of class c and may
 * do cap. Then *ret is one of its pending calls, for operation. The lease
 * was authorized when it was taken; the grant of cap is kept for the
 * connection, so a call inside a lease costs no polkit round trip. */
static int host_call_begin(sd_bus_message *m, bus_endpoint *be, vmsig_lease_class c, vmsig_cap cap,
                           const char *operation, sd_bus_error *error, pending_call **ret) {
        int r;

        r = bus_endpoint_require_attached(be->endpoint, error);
        if (r < 0)
                return r;
        r = bus_front_require_lease(be->front, m, be->endpoint, c, error);
        if (r <= 0)
                return r;
        r = bus_auth_check(be->front->auth, m, cap, be->endpoint, true, error);
        if (r <= 0)
                return r;
        r = pending_call_new(m, be, operation, error, ret);
        return r < 0 ? r : 1;
}

/* The host was asked (r >= 0): the handler returns 1, the reply comes from
 * on_host_done(). Else the call fails now with r, for what. */
static int host_call_started(pending_call *p, int r, const char *what, sd_bus_error *error) {
        if (r >= 0)
                return 1;
        bus_auth_audit_operation(&p->caller, p->operation, p->endpoint, r, NULL);
        r = vmsig_bus_error_set_errnof(error, r, "Cannot %s '%s': %s.", what, vmsig_endpoint_get_name(p->endpoint),
                                       strerror(-r));
        pending_call_free(p);
        return r;
}

static int method_lifecycle(sd_bus_message *m, bus_endpoint *be, vmsig_lifecycle_op op, sd_bus_error *error) {
        const char *operation = vmsig_lifecycle_op_to_string(op);
        char what[64];
        pending_call *p;
        int r;

        assert(m);
        assert(be);

        r = host_call_begin(m, be, VMSIG_LEASE_POWER, VMSIG_CAP_LIFECYCLE, operation, error, &p);
        if (r <= 0)
                return bus_auth_handler_return(r);
        snprintf(what, sizeof what, "%s endpoint", operation);
        return host_call_started(p, vmsig_endpoint_lifecycle(be->endpoint, op, on_host_done, p), what, error);
}

static int method_pause(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_lifecycle(m, userdata, VMSIG_OP_PAUSE, error);
}

static int method_resume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_lifecycle(m, userdata, VMSIG_OP_RESUME, error);
}

static int method_reset(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_lifecycle(m, userdata, VMSIG_OP_RESET, error);
}

static int method_power_off(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_lifecycle(m, userdata, VMSIG_OP_POWER_OFF, error);
}

static int method_kill(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_lifecycle(m, userdata, VMSIG_OP_KILL, error);
}

#define INPUT_EVENTS_MAX 1024

static int read_input_events(sd_bus_message *m, vmsig_input_event **ret, size_t *ret_n, sd_bus_error *error) {
        _cleanup_free_ vmsig_input_event *events = NULL;
        size_t n = 0;
        uint32_t type, code;
        int32_t value;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(uui)");
        while (r >= 0 && (r = sd_bus_message_read(m, "(uui)", &type, &code, &value)) > 0) {
                if (n >= INPUT_EVENTS_MAX)
                        return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT,
                                                 "Too many input events: at most %d per call.",
                                                 INPUT_EVENTS_MAX);
                if (type >= _VMSIG_INPUT_TYPE_MAX)
                        return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT,
                                                 "Input event %zu: unknown type %u.", n, type);
                if (type == VMSIG_INPUT_ABS && (value < 0 || value > 32767))
                        return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT,
                                                 "Input event %zu: absolute position %d is outside 0..32767.", n,
                                                 (int) value);
                if ((type == VMSIG_INPUT_KEY || type == VMSIG_INPUT_BUTTON) && value != 0 && value != 1)
                        return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT,
                                                 "Input event %zu: value %d is neither 0 (up) nor 1 (down).",
                                                 n, (int) value);
                vmsig_input_event *grown = reallocarray(events, n + 1, sizeof *events);
                if (!grown)
                        return -ENOMEM;
                events = grown;
                events[n++] = (vmsig_input_event) { .type = type, .code = code, .value = value };
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        if (n == 0)
                return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT, "No input events given.");
        *ret = TAKE_PTR(events);
        *ret_n = n;
        return 0;
}

static int method_inject_input(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_free_ vmsig_input_event *events = NULL;
        bus_endpoint *be = userdata;
        pending_call *p;
        size_t n = 0;
        int r;

        assert(m);
        assert(be);

        r = read_input_events(m, &events, &n, error);
        if (r < 0)
                return r;
        r = host_call_begin(m, be, VMSIG_LEASE_INPUT, VMSIG_CAP_LEASE_INPUT, "inject-input", error, &p);
        if (r <= 0)
                return bus_auth_handler_return(r);
        return host_call_started(p, vmsig_endpoint_inject_input(be->endpoint, events, n, on_host_done, p),
                                 "inject input into", error);
}

static const vmsig_cap lease_caps[_VMSIG_LEASE_CLASS_MAX] = {
        [VMSIG_LEASE_INPUT] = VMSIG_CAP_LEASE_INPUT,
        [VMSIG_LEASE_POWER] = VMSIG_CAP_LEASE_POWER,
        [VMSIG_LEASE_MEMWRITE] = VMSIG_CAP_LEASE_MEMWRITE,
};

/* Options: "force" (b), which needs org.vmsig.admin and revokes the
 * current holder. */
static int read_lease_option(sd_bus_message *m, const char *key, void *userdata, sd_bus_error *error) {
        bool *force = userdata;
        int b;

        if (strcmp(key, "force") != 0)
                return -ENOKEY;
        if (sd_bus_message_read(m, "v", "b", &b) < 0)
                return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT,
                                         "Lease option 'force' must be a boolean.");
        *force = b;
        return 0;
}

/* With "force": the current holder of c loses its lease to the caller. */
static int revoke_for_force(bus_endpoint *be, vmsig_lease_class c, const bus_peer *caller, sd_bus_error *error) {
        const vmsig_lease_info *l = vmsig_endpoint_lease_get(be->endpoint, c);
        char reason[VMSIG_REASON_MAX], command[VMSIG_COMMAND_MAX];
        int r;

        if (!l)
                return 0;
        snprintf(reason, sizeof reason, "forced by %s (uid %u, pid %u, %s)", caller->name, (unsigned) caller->uid,
                 (unsigned) caller->pid, bus_peer_command(caller->pid, command) ?: "?");
        bus_auth_audit_operation(caller, "revoke-lease", be->endpoint, 0, NULL);
        r = vmsig_endpoint_lease_end(be->endpoint, c, l->id, VMSIG_LEASE_REVOKED, reason);
        if (r < 0)
                return sd_bus_error_setf(error, VMSIG_ERROR_HOST, "Cannot revoke the %s lease of '%s': %s",
                                         vmsig_lease_class_to_string(c), vmsig_endpoint_get_name(be->endpoint),
                                         strerror(-r));
        return 0;
}

static int reply_lease(sd_bus_message *m, const char *path, int fd) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "oh", path, fd);
        safe_close(fd); /* the message holds its own copy */
        return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

/* The lease class and options of an AcquireLease call. */
static int read_lease_request(sd_bus_message *m, vmsig_lease_class *ret_class, bool *ret_force,
                              sd_bus_error *error) {
        const char *class_name;
        int r;

        r = sd_bus_message_read(m, "s", &class_name);
        if (r < 0)
                return r;
        *ret_class = vmsig_lease_class_from_string(class_name);
        if (*ret_class == _VMSIG_LEASE_CLASS_MAX)
                return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT,
                                         "Unknown lease class '%s' (input, power, memory-write).", class_name);
        *ret_force = false;
        return bus_read_options(m, read_lease_option, ret_force, error);
}

/* Takes the lease of class c on the endpoint for holder, and publishes
 * it; the caller replies with *ret_path and *ret_fd. */
static int grant_lease(bus_endpoint *be, bus_client **holder, vmsig_lease_class c, const char **ret_path,
                       int *ret_fd, sd_bus_error *error) {
        const char *class_name = vmsig_lease_class_to_string(c);
        vmsig_lease_info info, current;
        char command[VMSIG_COMMAND_MAX];
        int r;

        r = vmsig_endpoint_lease_acquire(be->endpoint, c,
                                         &(vmsig_lease_holder) {
                                                 .name = (*holder)->label,
                                                 .uid = (*holder)->peer.uid,
                                                 .pid = (uint32_t) (*holder)->peer.pid,
                                                 .command = bus_peer_command((*holder)->peer.pid, command),
                                         },
                                         &info, &current);
        if (r == -EBUSY)
                return sd_bus_error_setf(error, VMSIG_ERROR_LEASE_BUSY,
                                         "The %s lease of '%s' is held by %s (uid %u, pid %u, %s).", class_name,
                                         vmsig_endpoint_get_name(be->endpoint), current.holder, (unsigned) current.uid,
                                         (unsigned) current.pid, current.command[0] ? current.command : "?");
        if (r >= 0) {
                r = bus_lease_create(holder, c, &info, ret_path, ret_fd);
                if (r < 0)
                        (void) vmsig_endpoint_lease_end(be->endpoint, c, info.id, VMSIG_LEASE_RELEASED, "failed");
        }
        if (r < 0)
                return vmsig_bus_error_set_errnof(error, r, "Cannot grant the %s lease: %s", class_name,
                                                  strerror(-r));
        return 0;
}

static int method_acquire_lease(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(bus_client_freep) bus_client *holder = NULL;
        bus_endpoint *be = userdata;
        vmsig_bus_front *f = be->front;
        const char *path;
        vmsig_lease_class c;
        bus_peer *caller;
        bool force;
        int r, fd;

        assert(m);
        assert(be);

        r = read_lease_request(m, &c, &force, error);
        if (r < 0)
                return r;
        r = bus_endpoint_require_attached(be->endpoint, error);
        if (r < 0)
                return r;
        /* One check per call: a handler re-run for a second pending polkit
         * answer would ask the first question again. Forcing is an admin's
         * act, and admin covers the lease class. */
        r = bus_auth_check(f->auth, m, force ? VMSIG_CAP_ADMIN : lease_caps[c], be->endpoint, false, error);
        if (r <= 0)
                return bus_auth_handler_return(r);
        /* Everything that may refuse the call comes before the revocation:
         * a refused call must not have taken the lease from its holder. */
        r = bus_client_new(f, m, be->endpoint, BUS_QUOTA_LEASES, error, &holder);
        if (r < 0)
                return r;
        if (force) {
                r = revoke_for_force(be, c, &holder->peer, error);
                if (r < 0)
                        return r;
        }
        r = grant_lease(be, &holder, c, &path, &fd, error);
        if (r < 0)
                return r;
        caller = bus_auth_caller(f->auth, m);
        if (caller)
                bus_auth_audit_operation(caller, "acquire-lease", be->endpoint, 0, NULL);
        /* LeaseAcquired and the holder property go out before the reply. */
        vmsig_core_flush(f->core);
        return reply_lease(m, path, fd);
}

int bus_endpoint_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                      sd_bus_error *error) {
        vmsig_bus_front *f = userdata;

        return bus_object_found(hashmap_get(f->endpoint_paths, path), found);
}

int bus_endpoint_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        vmsig_bus_front *f = userdata;
        return bus_hashmap_paths(f->endpoints, offsetof(bus_endpoint, path), nodes);
}

const sd_bus_vtable bus_endpoint_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Uuid", "s", property_get_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Vmid", "u", property_get_vmid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Generation", "u", property_get_generation, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Backend", "s", property_get_backend, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemctxEpoch", "t", property_get_memctx_epoch, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RamSize", "t", property_get_ram_size, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Capabilities", "as", property_get_capabilities, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("BootstrapState", "s", property_get_bootstrap_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BootstrapAttempts", "u", property_get_bootstrap_attempts, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BootstrapMethod", "s", property_get_bootstrap_method, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("GuestOs", "s", property_get_guest_os, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("GuestOsRelease", "s", property_get_guest_os_release, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("InputLeaseHolder", "s", property_get_lease_holder, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PowerLeaseHolder", "s", property_get_lease_holder, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemoryWriteLeaseHolder", "s", property_get_lease_holder, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Sequence", "t", NULL, offsetof(bus_endpoint, sequence), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("AcquireLease", SD_BUS_ARGS("s", class, "a{sv}", options),
                                SD_BUS_RESULT("o", lease, "h", lease_fd), method_acquire_lease,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("InjectInput", SD_BUS_ARGS("a(uui)", events), SD_BUS_NO_RESULT, method_inject_input,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SubscribeMemctx", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("h", ram_fd, "t", dtb, "t", epoch, "t", size, "a(ttt)", ranges),
                                bus_memctx_method_subscribe, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("UnsubscribeMemctx", NULL, NULL, bus_memctx_method_unsubscribe, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SubscribeFrames", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("h", frame_fd, "u", width, "u", height, "u", stride, "s", format, "t",
                                              seq),
                                bus_frames_method_subscribe, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetFrame", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("h", frame_fd, "u", width, "u", height, "u", stride, "s", format, "t",
                                              seq),
                                bus_frames_method_get, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("UnsubscribeFrames", NULL, NULL, bus_frames_method_unsubscribe, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MemWrite", SD_BUS_ARGS("t", gpa, "ay", data, "a{sv}", options), SD_BUS_NO_RESULT,
                                bus_memwrite_method_write, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MemWriteVirtual", SD_BUS_ARGS("t", va, "ay", data, "a{sv}", options),
                                SD_BUS_NO_RESULT, bus_memwrite_method_write_virtual, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MemWriteBatch", SD_BUS_ARGS("a(tay)", writes, "a{sv}", options), SD_BUS_NO_RESULT,
                                bus_memwrite_method_write_batch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Pause", NULL, NULL, method_pause, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Resume", NULL, NULL, method_resume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reset", NULL, NULL, method_reset, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("PowerOff", NULL, NULL, method_power_off, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Kill", NULL, NULL, method_kill, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("MemctxChanged", SD_BUS_ARGS("t", epoch, "t", dtb), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MemctxInvalidated", SD_BUS_ARGS("t", epoch), 0),
        SD_BUS_SIGNAL_WITH_ARGS("LeaseAcquired", SD_BUS_ARGS("s", class, "s", holder), 0),
        SD_BUS_SIGNAL_WITH_ARGS("LeaseReleased", SD_BUS_ARGS("s", class, "s", holder, "s", reason), 0),
        SD_BUS_SIGNAL_WITH_ARGS("FrameChanged", SD_BUS_ARGS("t", seq), 0),
        SD_BUS_VTABLE_END,
};
