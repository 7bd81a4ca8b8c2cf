/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-front-internal.h"
#include "bus-util.h"

BUS_DEFINE_PROPERTY_GETTER(property_get_version, vmsig_bus_front, "s", PACKAGE_VERSION);
BUS_DEFINE_PROPERTY_GETTER(property_get_endpoint_count, vmsig_bus_front, "u", (uint32_t) hashmap_size(u->endpoints));

/* What the roster methods answer (ListEndpoints, GetEndpoint,
 * GetEndpointByVmid) is public, as hostnamed's properties are: any caller
 * reads the same through GetManagedObjects and the endpoints' properties.
 * So, like GetManagedObjects, they consult neither the allow-list nor
 * polkit, keep no state of the caller, leave no audit record, and are
 * answered at once from memory: a caller holds nothing that a quota could
 * count, and each costs less than a GetManagedObjects, which anyone could
 * flood already (dbus-daemon's per-connection limits bound both). */
static int method_list_endpoints(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        vmsig_bus_front *f = userdata;
        int r;

        assert(m);
        assert(f);

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(suso)");
        if (r < 0)
                return r;
        /* Walk the core in vmid order, listing what the bus has been told
         * about, so the answer agrees with the signals already sent. */
        for (vmsig_endpoint *ep = vmsig_core_next_endpoint(f->core, NULL); ep;
             ep = vmsig_core_next_endpoint(f->core, ep)) {
                bus_endpoint *be = bus_front_lookup(f, vmsig_endpoint_get_name(ep));
                if (!be)
                        continue;
                r = sd_bus_message_append(reply, "(suso)", vmsig_endpoint_get_name(ep), vmsig_endpoint_get_vmid(ep),
                                          vmsig_state_to_string(vmsig_endpoint_get_state(ep)), be->path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int read_endpoint_name(sd_bus_message *m, const char **ret, sd_bus_error *error) {
        int r = sd_bus_message_read(m, "s", ret);

        if (r < 0)
                return r;
        if (!vmsig_endpoint_name_is_valid(*ret))
                return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT, "Invalid endpoint name '%s'.", *ret);
        return 0;
}

/* The endpoint object named name; <0 with org.vmsig.Error.NoSuchEndpoint
 * when there is none. */
static int lookup_endpoint(vmsig_bus_front *f, const char *name, sd_bus_error *error, bus_endpoint **ret) {
        *ret = bus_front_lookup(f, name);
        if (!*ret)
                return sd_bus_error_setf(error, VMSIG_ERROR_NO_SUCH_ENDPOINT, "No endpoint named '%s'.", name);
        return 0;
}

/* The endpoint the message names, for a method any caller may name it in
 * (the capability is checked against the endpoint it names). */
static int read_endpoint(vmsig_bus_front *f, sd_bus_message *m, const char **ret_name, bus_endpoint **ret,
                         sd_bus_error *error) {
        int r = read_endpoint_name(m, ret_name, error);

        if (r < 0)
                return r;
        r = lookup_endpoint(f, *ret_name, error, ret);
        assert(r < 0 || *ret);
        return r;
}

static int method_get_endpoint(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        vmsig_bus_front *f = userdata;
        const char *name;
        bus_endpoint *be;
        int r;

        assert(m);
        assert(f);

        r = read_endpoint_name(m, &name, error);
        if (r < 0)
                return r;
        r = lookup_endpoint(f, name, error, &be);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "o", be->path);
}

static int method_get_endpoint_by_vmid(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        vmsig_bus_front *f = userdata;
        bus_endpoint *be;
        uint32_t vmid;
        int r;

        assert(m);
        assert(f);

        r = sd_bus_message_read(m, "u", &vmid);
        if (r < 0)
                return r;
        if (vmid == 0)
                return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT, "Invalid vmid 0: vmids start at 1.");
        be = bus_front_lookup_vmid(f, vmid);
        if (!be)
                return sd_bus_error_setf(error, VMSIG_ERROR_NO_SUCH_ENDPOINT,
                                         "No endpoint with vmid %" PRIu32 ".", vmid);
        return sd_bus_reply_method_return(m, "o", be->path);
}

static int method_reload(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        vmsig_bus_front *f = userdata;
        _cleanup_free_ char *problem = NULL;
        bus_peer *caller;
        int r;

        assert(m);
        assert(f);

        r = bus_auth_check(f->auth, m, VMSIG_CAP_ADMIN, NULL, false, error);
        if (r <= 0)
                return bus_auth_handler_return(r);
        caller = bus_auth_caller(f->auth, m);
        r = f->ctx->reload(f->ctx->userdata, &problem);
        if (caller)
                bus_auth_audit_operation(caller, "reload", NULL, r, NULL);
        if (r < 0)
                return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_CONFIGURATION,
                                         "The configuration was not reloaded: %s",
                                         problem ? problem : strerror(-r));
        return sd_bus_reply_method_return(m, NULL);
}

static int method_detach_endpoint(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        vmsig_bus_front *f = userdata;
        const char *name;
        bus_endpoint *be;
        bus_peer *caller;
        int r;

        assert(m);
        assert(f);

        r = read_endpoint(f, m, &name, &be, error);
        if (r < 0)
                return r;
        r = bus_auth_check(f->auth, m, VMSIG_CAP_ADMIN, be->endpoint, false, error);
        if (r <= 0)
                return bus_auth_handler_return(r);
        caller = bus_auth_caller(f->auth, m);
        vmsig_endpoint *ep = vmsig_endpoint_ref(be->endpoint);
        r = vmsig_core_detach_endpoint(f->core, ep);
        if (caller)
                bus_auth_audit_operation(caller, "detach", ep, r, NULL);
        vmsig_endpoint_unref(ep);
        if (r < 0)
                return vmsig_bus_error_set_errnof(error, r, "Cannot detach '%s': %s", name, strerror(-r));
        /* EndpointRemoved and InterfacesRemoved go out before the reply. */
        vmsig_core_flush(f->core);
        return sd_bus_reply_method_return(m, NULL);
}

const sd_bus_vtable bus_manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("EndpointCount", "u", property_get_endpoint_count, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ListEndpoints", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(suso)", endpoints),
                                method_list_endpoints, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetEndpoint", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", endpoint),
                                method_get_endpoint, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetEndpointByVmid", SD_BUS_ARGS("u", vmid), SD_BUS_RESULT("o", endpoint),
                                method_get_endpoint_by_vmid, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reload", NULL, NULL, method_reload, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DetachEndpoint", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_detach_endpoint,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("EndpointAdded", SD_BUS_ARGS("o", endpoint), 0),
        SD_BUS_SIGNAL_WITH_ARGS("EndpointRemoved", SD_BUS_ARGS("o", endpoint), 0),
        SD_BUS_VTABLE_END,
};
