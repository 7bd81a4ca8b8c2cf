/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-front-internal.h"
#include "log.h"
#include "memctx.h"

/* A lifecycle call waiting for the host seam. It pins the endpoint so the
 * completion can still name it after a detach. */
typedef struct pending_call {
        sd_bus_message *message;
        vmsig_endpoint *endpoint;
        vmsig_lifecycle_op op;
        bus_auth *auth;
        bus_peer caller; /* a copy: the peer may leave before the host answers */
} pending_call;

static int property_get_name(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        return sd_bus_message_append(reply, "s", vmsig_endpoint_get_name(be->endpoint));
}

static int property_get_uuid(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        return sd_bus_message_append(reply, "s", SD_ID128_TO_UUID_STRING(vmsig_endpoint_get_uuid(be->endpoint)));
}

static int property_get_vmid(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        return sd_bus_message_append(reply, "u", vmsig_endpoint_get_vmid(be->endpoint));
}

static int property_get_generation(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        return sd_bus_message_append(reply, "u", vmsig_endpoint_get_generation(be->endpoint));
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        return sd_bus_message_append(reply, "s", vmsig_state_to_string(vmsig_endpoint_get_state(be->endpoint)));
}

static int property_get_backend(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_endpoint *be = userdata;
        return sd_bus_message_append(reply, "s", vmsig_endpoint_get_backend(be->endpoint));
}

static const vmsig_memctx *endpoint_memctx(bus_endpoint *be) {
        return vmsig_memctx_get(be->front->core, vmsig_endpoint_get_id(be->endpoint));
}

static int property_get_memctx_epoch(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const vmsig_memctx *m = endpoint_memctx(userdata);
        return sd_bus_message_append(reply, "t", m ? m->epoch : UINT64_C(0));
}

static int property_get_ram_size(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const vmsig_memctx *m = endpoint_memctx(userdata);
        return sd_bus_message_append(reply, "t", m ? m->ram_size : UINT64_C(0));
}

static int property_get_capabilities(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        static const char *const names[_VMSIG_ADAPTER_MAX] = {
                [VMSIG_ADAPTER_MEMCTX] = "memctx",
                [VMSIG_ADAPTER_INPUT] = "input",
                [VMSIG_ADAPTER_HOST] = "lifecycle",
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

/* No lease can be held before the lease manager exists, so every holder
 * property reads as free. */
static int property_get_lease_holder(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", "");
}

static pending_call *pending_call_free(pending_call *p) {
        bus_auth_quota_release(p->auth, p->caller.uid, BUS_QUOTA_PENDING_CALLS);
        free(p->caller.name);
        sd_bus_message_unref(p->message);
        vmsig_endpoint_unref(p->endpoint);
        free(p);
        return NULL;
}

static void on_lifecycle_done(const vmsig_result *res, void *userdata) {
        pending_call *p = userdata;
        const char *name = vmsig_endpoint_get_name(p->endpoint);
        int r;

        /* Let the state change reach subscribers (PropertiesChanged) before
         * the caller sees its reply. */
        vmsig_core_flush(vmsig_endpoint_get_core(p->endpoint));

        bus_auth_audit_operation(&p->caller, vmsig_lifecycle_op_to_string(p->op), p->endpoint, res->error, NULL);
        if (res->error < 0) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                (void) vmsig_bus_error_setf(&error, res->error, "%s",
                                            res->message ? res->message : "Host operation failed.");
                r = sd_bus_reply_method_error(p->message, &error);
        } else
                r = sd_bus_reply_method_return(p->message, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot reply to %s of '%s': %m", vmsig_lifecycle_op_to_string(p->op), name);
        pending_call_free(p);
}

static int pending_call_new(sd_bus_message *m, bus_endpoint *be, vmsig_lifecycle_op op, sd_bus_error *error,
                            pending_call **ret) {
        bus_auth *auth = be->front->auth;
        bus_peer *caller = bus_auth_caller(auth, m);
        pending_call *p;
        int r;

        if (!caller)
                return -ESRCH;
        r = bus_auth_quota_take(auth, caller, BUS_QUOTA_PENDING_CALLS, error);
        if (r < 0) {
                bus_auth_audit_operation(caller, vmsig_lifecycle_op_to_string(op), be->endpoint, r, NULL);
                return r;
        }
        p = calloc(1, sizeof *p);
        if (p)
                p->caller.name = strdup(caller->name);
        if (!p || !p->caller.name) {
                free(p);
                bus_auth_quota_release(auth, caller->uid, BUS_QUOTA_PENDING_CALLS);
                return -ENOMEM;
        }
        p->caller.uid = caller->uid;
        p->caller.pid = caller->pid;
        p->message = sd_bus_message_ref(m);
        p->endpoint = vmsig_endpoint_ref(be->endpoint);
        p->op = op;
        p->auth = auth;
        *ret = p;
        return 0;
}

static int method_lifecycle(sd_bus_message *m, bus_endpoint *be, vmsig_lifecycle_op op, sd_bus_error *error) {
        const char *name = vmsig_endpoint_get_name(be->endpoint);
        pending_call *p;
        int r;

        if (!vmsig_endpoint_is_attached(be->endpoint))
                return vmsig_bus_error_setf(error, -ENODEV, "Endpoint '%s' was detached.", name);

        /* The power-lease holder check belongs here, ahead of the host seam,
         * once leases exist; until then every call is authorized on its own. */
        r = bus_auth_check(be->front->auth, m, VMSIG_CAP_LIFECYCLE, be->endpoint, false, error);
        if (r <= 0)
                return bus_auth_handler_return(r);

        r = pending_call_new(m, be, op, error, &p);
        if (r < 0)
                return r;
        r = vmsig_endpoint_lifecycle(be->endpoint, op, on_lifecycle_done, p);
        if (r < 0) {
                bus_auth_audit_operation(&p->caller, vmsig_lifecycle_op_to_string(op), be->endpoint, r, NULL);
                pending_call_free(p);
                return vmsig_bus_error_setf(error, r, "Cannot %s endpoint '%s': %s.", vmsig_lifecycle_op_to_string(op),
                                            name, strerror(-r));
        }
        return 1; /* the reply comes from on_lifecycle_done() */
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

int bus_endpoint_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                      sd_bus_error *error) {
        _cleanup_free_ char *name = NULL;
        vmsig_bus_front *f = userdata;
        bus_endpoint *be;
        int r;

        r = sd_bus_path_decode(path, VMSIG_BUS_ENDPOINT_PREFIX, &name);
        if (r <= 0)
                return r;
        be = bus_front_lookup(f, name);
        if (!be)
                return 0;
        *found = be;
        return 1;
}

int bus_endpoint_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        vmsig_bus_front *f = userdata;
        size_t n = 0;
        bus_endpoint *be;
        char **l;

        l = calloc(hashmap_size(f->endpoints) + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        HASHMAP_FOREACH(be, f->endpoints, st) {
                l[n] = strdup(be->path);
                if (!l[n]) {
                        while (n > 0)
                                free(l[--n]);
                        free(l);
                        return -ENOMEM;
                }
                n++;
        }
        *nodes = l;
        return 0;
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
        SD_BUS_PROPERTY("InputLeaseHolder", "s", property_get_lease_holder, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PowerLeaseHolder", "s", property_get_lease_holder, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemoryWriteLeaseHolder", "s", property_get_lease_holder, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("Pause", NULL, NULL, method_pause, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Resume", NULL, NULL, method_resume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reset", NULL, NULL, method_reset, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("PowerOff", NULL, NULL, method_power_off, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
