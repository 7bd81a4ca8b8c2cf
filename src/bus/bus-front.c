/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-front-internal.h"
#include "log.h"
#include "memctx.h"

bus_endpoint *bus_front_lookup(vmsig_bus_front *f, const char *name) {
        return hashmap_get(f->endpoints, name);
}

const char *bus_front_peer_label(vmsig_bus_front *f, sd_bus_message *m) {
        return f->peer_label ? f->peer_label : sd_bus_message_get_sender(m);
}

vmsig_cap bus_lease_class_cap(vmsig_lease_class c) {
        switch (c) {
        case VMSIG_LEASE_INPUT:
                return VMSIG_CAP_LEASE_INPUT;
        case VMSIG_LEASE_POWER:
                return VMSIG_CAP_LEASE_POWER;
        default:
                return VMSIG_CAP_LEASE_MEMWRITE;
        }
}

int bus_front_require_lease(vmsig_bus_front *f, sd_bus_message *m, vmsig_endpoint *ep, vmsig_lease_class c,
                            sd_bus_error *error) {
        const vmsig_lease_info *l = vmsig_endpoint_lease_get(ep, c);
        const char *caller = bus_front_peer_label(f, m);
        int r;

        assert(f);
        assert(m);
        assert(ep);

        if (l && caller && strcmp(caller, l->holder) == 0)
                return 1;
        /* A refusal, audited as any other. */
        r = bus_auth_audit_refusal(f->auth, m, bus_lease_class_cap(c), ep, "not-lease-holder", error);
        if (r <= 0)
                return r;
        if (!l)
                return sd_bus_error_setf(error, VMSIG_ERROR_NOT_LEASE_HOLDER,
                                         "This needs the %s lease of '%s', and nobody holds it.",
                                         vmsig_lease_class_to_string(c), vmsig_endpoint_get_name(ep));
        return sd_bus_error_setf(error, VMSIG_ERROR_NOT_LEASE_HOLDER,
                                 "The %s lease of '%s' is held by %s (uid %u), not by you.",
                                 vmsig_lease_class_to_string(c), vmsig_endpoint_get_name(ep), l->holder,
                                 (unsigned) l->uid);
}

int bus_endpoint_require_attached(vmsig_endpoint *ep, sd_bus_error *error) {
        assert(ep);

        if (vmsig_endpoint_is_attached(ep))
                return 0;
        return sd_bus_error_setf(error, VMSIG_ERROR_ENDPOINT_DETACHED, "Endpoint '%s' was detached.",
                                 vmsig_endpoint_get_name(ep));
}

int vmsig_bus_front_set_peer_label(vmsig_bus_front *f, const char *label) {
        char *copy = strdup(label);

        if (!copy)
                return -ENOMEM;
        free(f->peer_label);
        f->peer_label = copy;
        return 0;
}

bus_endpoint *bus_front_lookup_vmid(vmsig_bus_front *f, uint32_t vmid) {
        vmsig_endpoint *ep = vmsig_core_find_endpoint_by_vmid(f->core, vmid);
        return ep ? bus_front_lookup(f, vmsig_endpoint_get_name(ep)) : NULL;
}

static bus_endpoint *bus_endpoint_free(bus_endpoint *be) {
        if (!be)
                return NULL;
        bus_memwrite_endpoint_gone(be);
        vmsig_endpoint_unref(be->endpoint);
        free(be->path);
        return mfree(be);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(bus_endpoint *, bus_endpoint_free);

static void emit_count_changed(vmsig_bus_front *f) {
        (void) sd_bus_emit_properties_changed(f->bus, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "EndpointCount",
                                              NULL);
}

/* The name, escaped; a VM added again under a name seen before gets
 * "_rN" on top (N: the how-manieth), so that a path a client still holds
 * never names a different VM. Escaped labels never contain "_r": their
 * '_' is always followed by two hex digits. */
static int endpoint_path(vmsig_endpoint *ep, char **ret) {
        _cleanup_free_ char *path = NULL;
        uint32_t n = vmsig_endpoint_get_incarnation(ep);
        int r;

        r = sd_bus_path_encode(VMSIG_BUS_ENDPOINT_PREFIX, vmsig_endpoint_get_name(ep), &path);
        if (r < 0)
                return r;
        if (n <= 1) {
                *ret = TAKE_PTR(path);
                return 0;
        }
        return asprintf(ret, "%s_r%" PRIu32, path, n) < 0 ? -ENOMEM : 0;
}

/* PropertiesChanged with the value an event carries, not the getter's:
 * events are dispatched in batches, and the getter reads the state after
 * the last of them. A pause and a resume in one batch would both announce
 * "running"; the revoke of a forced lease would announce the new holder
 * before its LeaseAcquired. The next Sequence comes with it. */
static void emit_string_changed(vmsig_bus_front *f, bus_endpoint *be, const char *property, const char *value) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        uint64_t seq = ++be->sequence;
        int r;

        r = sd_bus_message_new_signal(f->bus, &m, be->path, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", VMSIG_BUS_ENDPOINT_INTERFACE);
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}as", 2, property, "s", value, "Sequence", "t", seq, 0);
        if (r >= 0)
                r = sd_bus_send(f->bus, m, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot announce %s of %s: %m", property, be->path);
}

/* The object of ep, published in the maps; NULL (logged) when it cannot
 * be. */
static bus_endpoint *bus_endpoint_new(vmsig_bus_front *f, vmsig_endpoint *ep) {
        _cleanup_(bus_endpoint_freep) bus_endpoint *be = calloc(1, sizeof *be);
        const char *name = vmsig_endpoint_get_name(ep);
        int r;

        if (!be) {
                log_oom();
                return NULL;
        }
        be->front = f;
        be->endpoint = vmsig_endpoint_ref(ep);
        r = endpoint_path(ep, &be->path);
        if (r >= 0)
                r = hashmap_put(f->endpoints, name, be);
        if (r >= 0) {
                r = hashmap_put(f->endpoint_paths, be->path, be);
                if (r < 0)
                        hashmap_remove(f->endpoints, name);
        }
        if (r < 0) {
                log_error_errno(r, "Cannot publish endpoint '%s': %m", name);
                return NULL;
        }
        return TAKE_PTR(be);
}

static void endpoint_added(vmsig_bus_front *f, const vmsig_event *e, bool announce) {
        vmsig_endpoint *ep = vmsig_core_find_endpoint(f->core, e->endpoint);
        bus_endpoint *be;

        /* Already gone again: its REMOVED event is next in line, and the
         * bus never needs to hear of it. */
        if (!ep)
                return;
        be = bus_endpoint_new(f, ep);
        if (!be || !announce)
                return;
        (void) sd_bus_emit_object_added(f->bus, be->path);
        (void) sd_bus_emit_signal(f->bus, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "EndpointAdded", "o",
                                  be->path);
        emit_count_changed(f);
}

static void endpoint_removed(vmsig_bus_front *f, const vmsig_roster_payload *p) {
        bus_endpoint *be = bus_front_lookup(f, p->name);

        if (!be || vmsig_endpoint_get_id(be->endpoint) != VMSIG_ID_MAKE(p->vmid, p->generation))
                return;
        bus_memctx_endpoint_gone(f, be->endpoint);
        bus_frames_endpoint_gone(f, be->endpoint);
        /* InterfacesRemoved is built from the object as it still exists. */
        (void) sd_bus_emit_object_removed(f->bus, be->path);
        hashmap_remove(f->endpoints, p->name);
        hashmap_remove(f->endpoint_paths, be->path);
        (void) sd_bus_emit_signal(f->bus, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "EndpointRemoved", "o",
                                  be->path);
        bus_endpoint_free(be);
        emit_count_changed(f);
}

static bus_endpoint *lookup_event_endpoint(vmsig_bus_front *f, const vmsig_event *e) {
        vmsig_endpoint *ep = vmsig_core_find_endpoint(f->core, e->endpoint);
        return ep ? bus_front_lookup(f, vmsig_endpoint_get_name(ep)) : NULL;
}

static void on_roster(vmsig_bus_front *f, const vmsig_event *e, bool replay) {
        const vmsig_roster_payload *p = e->payload;
        bus_endpoint *be;

        switch (p->change) {
        case VMSIG_ROSTER_ADDED:
        case VMSIG_ROSTER_CHANGED:
                be = lookup_event_endpoint(f, e);
                /* A replay is the roster as it stood when this front
                 * subscribed (a new private connection), and the retained
                 * event of an endpoint is its latest: ADDED or CHANGED.
                 * Its peer asks GetManagedObjects; it saw nothing appear. */
                if (!be)
                        endpoint_added(f, e, !replay && p->change == VMSIG_ROSTER_ADDED);
                else if (p->change == VMSIG_ROSTER_CHANGED && !replay)
                        emit_string_changed(f, be, "State", vmsig_state_to_string(p->state));
                break;
        case VMSIG_ROSTER_REMOVED:
                endpoint_removed(f, p);
                break;
        }
}

static void on_memctx(vmsig_bus_front *f, const vmsig_event *e, bool replay) {
        const vmsig_memctx *m = e->payload;
        bus_endpoint *be = lookup_event_endpoint(f, e);

        if (!be)
                return;
        if (!replay)
                bus_memctx_on_event(f, be->endpoint, be->path, m);
        if (m->invalidated || m->epoch == be->memctx_epoch)
                return;
        be->memctx_epoch = m->epoch;
        if (replay)
                return;
        /* RamSize comes with the memory context: an endpoint announced
         * before its memctx adapter published reads 0 until now. */
        be->sequence++;
        (void) sd_bus_emit_properties_changed(f->bus, be->path, VMSIG_BUS_ENDPOINT_INTERFACE, "MemctxEpoch", "RamSize",
                                              "Sequence", NULL);
}

static const char *const holder_properties[_VMSIG_LEASE_CLASS_MAX] = {
        [VMSIG_LEASE_INPUT] = "InputLeaseHolder",
        [VMSIG_LEASE_POWER] = "PowerLeaseHolder",
        [VMSIG_LEASE_MEMWRITE] = "MemoryWriteLeaseHolder",
};

static void on_lease(vmsig_bus_front *f, const vmsig_event *e, bool replay) {
        const vmsig_lease_payload *p = e->payload;
        bus_endpoint *be = lookup_event_endpoint(f, e);
        const char *class = vmsig_lease_class_to_string(p->class);

        bus_lease_on_event(f, p);
        if (!be || replay || !class)
                return;
        if (p->change == VMSIG_LEASE_ACQUIRED)
                (void) sd_bus_emit_signal(f->bus, be->path, VMSIG_BUS_ENDPOINT_INTERFACE, "LeaseAcquired", "ss", class,
                                          p->lease.holder);
        else
                (void) sd_bus_emit_signal(f->bus, be->path, VMSIG_BUS_ENDPOINT_INTERFACE, "LeaseReleased", "sss",
                                          class, p->lease.holder, p->reason);
        emit_string_changed(f, be, holder_properties[p->class],
                            p->change == VMSIG_LEASE_ACQUIRED ? p->lease.holder : "");
}

static void on_bootstrap(vmsig_bus_front *f, const vmsig_event *e, bool replay) {
        bus_endpoint *be = lookup_event_endpoint(f, e);

        if (!be || replay)
                return;
        be->sequence++;
        (void) sd_bus_emit_properties_changed(f->bus, be->path, VMSIG_BUS_ENDPOINT_INTERFACE, "BootstrapState",
                                              "BootstrapAttempts", "BootstrapMethod", "GuestOs", "GuestOsRelease",
                                              "Sequence", NULL);
}

/* What each kind the front subscribes to changes on the bus. */
static void (*const event_handlers[_VMSIG_KIND_BUILTIN_MAX])(vmsig_bus_front *f, const vmsig_event *e, bool replay) = {
        [VMSIG_KIND_ROSTER] = on_roster,
        [VMSIG_KIND_MEMCTX] = on_memctx,
        [VMSIG_KIND_LEASE] = on_lease,
        [VMSIG_KIND_BOOTSTRAP] = on_bootstrap,
};

static int on_event(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        vmsig_bus_front *f = userdata;
        uint32_t kind = d->event->kind;

        if (d->dropped > 0)
                log_warning("D-Bus front missed %" PRIu64 " events.", d->dropped);
        if (kind < ELEMENTSOF(event_handlers) && event_handlers[kind])
                event_handlers[kind](f, d->event, d->replay);
        return VMSIG_DELIVER_OK;
}

static void on_peer_gone(const char *name, void *userdata) {
        vmsig_bus_front *f = userdata;

        bus_lease_holder_gone(f, name);
        bus_memctx_subscriber_gone(f, name);
        bus_frames_subscriber_gone(f, name);
}

/* The manager, and the endpoints and leases as they come and go. */
static int add_objects(vmsig_bus_front *f) {
        int r;

        r = sd_bus_add_object_manager(f->bus, &f->slots[0], VMSIG_BUS_PATH);
        if (r >= 0)
                r = sd_bus_add_object_vtable(f->bus, &f->slots[1], VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE,
                                             bus_manager_vtable, f);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(f->bus, &f->slots[2], VMSIG_BUS_ENDPOINT_PREFIX,
                                               VMSIG_BUS_ENDPOINT_INTERFACE, bus_endpoint_vtable, bus_endpoint_find, f);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(f->bus, &f->slots[3], VMSIG_BUS_ENDPOINT_PREFIX, bus_endpoint_enumerate,
                                               f);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(f->bus, &f->slots[4], VMSIG_BUS_LEASE_PREFIX, VMSIG_BUS_LEASE_INTERFACE,
                                               bus_lease_vtable, bus_lease_find, f);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(f->bus, &f->slots[5], VMSIG_BUS_LEASE_PREFIX, bus_lease_enumerate, f);
        return r;
}

int vmsig_bus_front_new(vmsig_core *core, sd_bus *bus, const vmsig_bus_context *ctx, vmsig_bus_front **ret) {
        _cleanup_(vmsig_bus_front_freep) vmsig_bus_front *f = NULL;
        vmsig_filter filter = {
                .kinds = VMSIG_KIND_MASK(VMSIG_KIND_ROSTER) | VMSIG_KIND_MASK(VMSIG_KIND_MEMCTX) |
                         VMSIG_KIND_MASK(VMSIG_KIND_LEASE) | VMSIG_KIND_MASK(VMSIG_KIND_BOOTSTRAP),
                /* Its clients' subscriptions say what is wanted. */
                .passive = true,
        };
        int r;

        assert(core);
        assert(bus);
        assert(ctx);
        assert(ret);

        r = vmsig_bus_errors_register();
        if (r < 0)
                return r;
        f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->core = core;
        f->bus = sd_bus_ref(bus);
        f->ctx = ctx;
        f->auth = ctx->auth;
        f->endpoints = hashmap_new();
        f->endpoint_paths = hashmap_new();
        f->leases = hashmap_new_uint64();
        f->memctx_subs = hashmap_new();
        f->frame_subs = hashmap_new();
        if (!f->endpoints || !f->endpoint_paths || !f->leases || !f->memctx_subs || !f->frame_subs)
                return -ENOMEM;
        r = add_objects(f);
        if (r < 0)
                return r;
        /* Holders and subscribers leaving the system bus end their leases
         * and subscriptions; private peers end with their connection. */
        r = bus_peers_add_gone_hook(bus_auth_peers(f->auth), on_peer_gone, f);
        if (r < 0)
                return r;
        f->gone_hook = true;
        /* The front is an in-process subscriber that never falls behind: it
         * consumes every event as it is delivered. */
        r = vmsig_core_subscribe(core, &filter, 0, on_event, f, &f->subscriber);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(f);
        return 0;
}

vmsig_bus_front *vmsig_bus_front_free(vmsig_bus_front *f) {
        if (!f)
                return NULL;
        if (f->gone_hook)
                bus_peers_remove_gone_hook(bus_auth_peers(f->auth), on_peer_gone, f);
        if (f->leases)
                bus_lease_free_all(f);
        if (f->memctx_subs)
                bus_memctx_endpoint_gone(f, NULL);
        if (f->frame_subs)
                bus_frames_endpoint_gone(f, NULL);
        f->subscriber = vmsig_subscriber_free(f->subscriber);
        for (size_t i = 0; i < ELEMENTSOF(f->slots); i++)
                f->slots[i] = sd_bus_slot_unref(f->slots[i]);
        hashmap_free_with_destructor(f->endpoints, bus_endpoint_free);
        hashmap_free(f->endpoint_paths);
        hashmap_free(f->leases);
        hashmap_free(f->memctx_subs);
        hashmap_free(f->frame_subs);
        free(f->peer_label);
        sd_bus_unref(f->bus);
        return mfree(f);
}
