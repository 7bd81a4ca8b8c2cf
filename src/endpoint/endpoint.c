/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core-internal.h"
#include "macro.h"
#include "endpoint-internal.h"
#include "vmsig-endpoint.h"

/* An fd source registered for an endpoint. Allocated on its own so the
 * pointer handed to the core as userdata stays valid while the endpoint's
 * list grows. */
typedef struct endpoint_source {
        vmsig_endpoint *endpoint;
        vmsig_cookie cookie;
        vmsig_fd_fn fn;
        void *userdata;
        struct endpoint_source *next;
} endpoint_source;

struct vmsig_endpoint {
        unsigned n_ref;
        vmsig_core *core;
        vmsig_id id;
        char *name;
        uint32_t incarnation;
        sd_id128_t uuid;
        vmsig_state state;
        bool attached;
        bool zombie; /* on the reap list */
        vmsig_adapter adapters[_VMSIG_ADAPTER_MAX];
        bool adapter_live[_VMSIG_ADAPTER_MAX];
        endpoint_source *sources;
        vmsig_endpoint *zombie_next;
        vmsig_lease_info leases[_VMSIG_LEASE_CLASS_MAX];
};

/* How many endpoints a name has had: names outlive endpoints, so that a
 * VM added again is told apart from its predecessor. */
typedef struct name_record {
        uint32_t count;
        char name[];
} name_record;

struct endpoint_registry {
        Hashmap *by_name;
        Hashmap *names_seen; /* name -> name_record */
        size_t n_attached;
        vmsig_endpoint *zombies;
};

static const char *const state_names[_VMSIG_STATE_MAX] = {
        [VMSIG_STATE_UNKNOWN] = "unknown",
        [VMSIG_STATE_RUNNING] = "running",
        [VMSIG_STATE_PAUSED] = "paused",
        [VMSIG_STATE_SHUT_OFF] = "shut-off",
};

static const char *const op_names[_VMSIG_OP_MAX] = {
        [VMSIG_OP_PAUSE] = "pause",
        [VMSIG_OP_RESUME] = "resume",
        [VMSIG_OP_RESET] = "reset",
        [VMSIG_OP_POWER_OFF] = "power-off",
        [VMSIG_OP_KILL] = "kill",
};

const char *vmsig_state_to_string(vmsig_state s) {
        return (unsigned) s < _VMSIG_STATE_MAX ? state_names[s] : NULL;
}

vmsig_state vmsig_state_from_string(const char *s) {
        for (unsigned i = 0; i < _VMSIG_STATE_MAX; i++)
                if (s && strcmp(s, state_names[i]) == 0)
                        return (vmsig_state) i;
        return _VMSIG_STATE_MAX;
}

const char *vmsig_lifecycle_op_to_string(vmsig_lifecycle_op op) {
        return (unsigned) op < _VMSIG_OP_MAX ? op_names[op] : NULL;
}

/* Names become object path labels, unit-like identifiers in logs and polkit
 * details, so keep them to a conservative, printable set. */
bool vmsig_endpoint_name_is_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > VMSIG_NAME_MAX || name[0] == '.' || name[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = name[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                      ch == '_' || ch == '.'))
                        return false;
        }
        return true;
}

static endpoint_registry *registry_get(vmsig_core *c) {
        if (!c->registry) {
                c->registry = calloc(1, sizeof(endpoint_registry));
                if (!c->registry)
                        return NULL;
                c->registry->by_name = hashmap_new();
                c->registry->names_seen = hashmap_new();
                if (!c->registry->by_name || !c->registry->names_seen) {
                        hashmap_free(c->registry->by_name);
                        hashmap_free(c->registry->names_seen);
                        free(c->registry);
                        c->registry = NULL;
                }
        }
        return c->registry;
}

/* Counts one more endpoint of this name; returns which one it is. */
static int name_count(endpoint_registry *reg, const char *name, uint32_t *ret) {
        name_record *rec = hashmap_get(reg->names_seen, name);
        int r;

        if (!rec) {
                rec = calloc(1, sizeof *rec + strlen(name) + 1);
                if (!rec)
                        return -ENOMEM;
                strcpy(rec->name, name);
                r = hashmap_put(reg->names_seen, rec->name, rec);
                if (r < 0) {
                        free(rec);
                        return r;
                }
        }
        *ret = ++rec->count;
        return 0;
}

static void names_seen_free(endpoint_registry *reg) {
        name_record *rec;

        HASHMAP_FOREACH(rec, reg->names_seen, st)
                free(rec);
        hashmap_free(reg->names_seen);
}

static void publish_roster(vmsig_endpoint *ep, vmsig_roster_change change) {
        vmsig_roster_payload p = {
                .change = change,
                .state = ep->state,
                .vmid = VMSIG_ID_SLOT(ep->id),
                .generation = VMSIG_ID_GENERATION(ep->id),
                .uuid = ep->uuid,
        };
        strncpy(p.name, ep->name, VMSIG_NAME_MAX);
        (void) vmsig_core_publish(ep->core, VMSIG_KIND_ROSTER, ep->id, 0, &p, sizeof p);
}

static void adapters_free(vmsig_endpoint *ep) {
        for (int i = _VMSIG_ADAPTER_MAX - 1; i >= 0; i--)
                if (ep->adapters[i].ops && ep->adapters[i].ops->free)
                        ep->adapters[i].ops->free(ep->adapters[i].data);
        memset(ep->adapters, 0, sizeof ep->adapters);
}

static void endpoint_free(vmsig_endpoint *ep) {
        adapters_free(ep);
        slots_release(ep->core, ep->id);
        free(ep->name);
        free(ep);
}

vmsig_endpoint *vmsig_endpoint_ref(vmsig_endpoint *ep) {
        if (ep)
                ep->n_ref++;
        return ep;
}

vmsig_endpoint *vmsig_endpoint_unref(vmsig_endpoint *ep) {
        if (!ep)
                return NULL;
        assert(ep->n_ref > 0);
        if (--ep->n_ref > 0 || ep->zombie)
                return NULL;
        /* Never free here: the caller may be deep inside a callback of this
         * very endpoint. The reap source runs once the stack has unwound. */
        ep->zombie = true;
        /* Append: the reap releases slots in this order, and slots are
         * reused first in, first out. */
        vmsig_endpoint **p = &ep->core->registry->zombies;
        while (*p)
                p = &(*p)->zombie_next;
        ep->zombie_next = NULL;
        *p = ep;
        core_schedule_reap(ep->core);
        return NULL;
}

void endpoint_registry_reap(vmsig_core *c) {
        endpoint_registry *reg = c->registry;
        vmsig_endpoint **p;

        if (!reg)
                return;
        p = &reg->zombies;
        while (*p) {
                vmsig_endpoint *ep = *p;
                if (ep->n_ref > 0) {
                        /* Resurrected by a late reference; its last unref
                         * puts it back on the list. */
                        ep->zombie = false;
                        *p = ep->zombie_next;
                        continue;
                }
                *p = ep->zombie_next;
                endpoint_free(ep);
        }
}

static void adapters_detach(vmsig_endpoint *ep) {
        for (int i = _VMSIG_ADAPTER_MAX - 1; i >= 0; i--) {
                if (!ep->adapter_live[i])
                        continue;
                ep->adapter_live[i] = false;
                if (ep->adapters[i].ops->detach)
                        ep->adapters[i].ops->detach(ep->adapters[i].data, ep);
        }
}

static int adapters_attach(vmsig_endpoint *ep) {
        for (int i = 0; i < _VMSIG_ADAPTER_MAX; i++) {
                if (!ep->adapters[i].ops)
                        continue;
                if (ep->adapters[i].ops->attach) {
                        int r = ep->adapters[i].ops->attach(ep->adapters[i].data, ep);
                        if (r < 0)
                                return r;
                }
                ep->adapter_live[i] = true;
        }
        return 0;
}

int vmsig_core_attach_endpoint(vmsig_core *c, const vmsig_endpoint_spec *spec, vmsig_endpoint **ret) {
        endpoint_registry *reg = registry_get(c);
        vmsig_endpoint *ep = NULL;
        int r;

        if (!reg) {
                r = -ENOMEM;
                goto fail;
        }
        if (!vmsig_endpoint_name_is_valid(spec->name) || (unsigned) spec->initial_state >= _VMSIG_STATE_MAX) {
                r = -EINVAL;
                goto fail;
        }
        if (hashmap_get(reg->by_name, spec->name)) {
                r = -EEXIST;
                goto fail;
        }

        ep = calloc(1, sizeof *ep);
        if (!ep || !(ep->name = strdup(spec->name))) {
                r = -ENOMEM;
                goto fail;
        }
        r = name_count(reg, ep->name, &ep->incarnation);
        if (r < 0)
                goto fail;
        r = slots_acquire(c, &ep->id);
        if (r < 0)
                goto fail;
        r = hashmap_put(reg->by_name, ep->name, ep);
        if (r < 0) {
                slots_release(c, ep->id);
                goto fail;
        }

        ep->n_ref = 1; /* the registry's */
        ep->core = c;
        ep->uuid = spec->uuid;
        ep->state = spec->initial_state;
        ep->attached = true;
        memcpy(ep->adapters, spec->adapters, sizeof ep->adapters);
        c->slots[VMSIG_ID_SLOT(ep->id)].endpoint = ep;
        reg->n_attached++;

        /* ADDED goes out before anything an adapter publishes while it
         * attaches, so subscribers meet the endpoint before its data. */
        publish_roster(ep, VMSIG_ROSTER_ADDED);
        r = adapters_attach(ep);
        if (r < 0) {
                (void) vmsig_core_detach_endpoint(c, ep);
                return r;
        }
        if (ret)
                *ret = ep;
        return 0;

fail:
        if (ep) {
                free(ep->name);
                free(ep);
        }
        for (int i = _VMSIG_ADAPTER_MAX - 1; i >= 0; i--)
                if (spec->adapters[i].ops && spec->adapters[i].ops->free)
                        spec->adapters[i].ops->free(spec->adapters[i].data);
        return r;
}

int vmsig_core_detach_endpoint(vmsig_core *c, vmsig_endpoint *ep) {
        if (!ep || ep->core != c)
                return -EINVAL;
        if (!ep->attached)
                return -ENODEV;

        /* Unpublish first, so that nothing new can find the endpoint while
         * its adapters cancel what is in flight. */
        ep->attached = false;
        hashmap_remove(c->registry->by_name, ep->name);
        c->registry->n_attached--;

        adapters_detach(ep);
        while (ep->sources)
                (void) vmsig_endpoint_remove_fd(ep, ep->sources->cookie);
        vmsig_endpoint_lease_revoke_all(ep, "detached");
        publish_roster(ep, VMSIG_ROSTER_REMOVED);
        vmsig_endpoint_unref(ep);
        return 0;
}

void endpoint_registry_free(vmsig_core *c) {
        endpoint_registry *reg = c->registry;
        if (!reg)
                return;
        for (size_t i = 1; i < c->n_slots; i++) {
                vmsig_endpoint *ep = c->slots[i].endpoint;
                if (ep && ep->attached)
                        (void) vmsig_core_detach_endpoint(c, ep);
        }
        /* A reference still held now is a leak elsewhere; the core is going
         * away regardless, so reap everything. */
        for (size_t i = 1; i < c->n_slots; i++) {
                vmsig_endpoint *ep = c->slots[i].used ? c->slots[i].endpoint : NULL;
                if (!ep)
                        continue;
                ep->n_ref = 0;
                if (!ep->zombie) {
                        ep->zombie = true;
                        ep->zombie_next = reg->zombies;
                        reg->zombies = ep;
                }
        }
        endpoint_registry_reap(c);
        hashmap_free(reg->by_name);
        names_seen_free(reg);
        free(reg);
        c->registry = NULL;
}

void endpoint_registry_stats(vmsig_core *c, vmsig_core_stats *st) {
        st->endpoints = vmsig_core_endpoint_count(c);
        st->zombies = 0;
        if (c->registry)
                for (vmsig_endpoint *ep = c->registry->zombies; ep; ep = ep->zombie_next)
                        st->zombies++;
        for (size_t i = 1; i < c->n_slots; i++) {
                vmsig_endpoint *ep = c->slots[i].used ? c->slots[i].endpoint : NULL;
                if (ep && !ep->attached && !ep->zombie)
                        st->zombies++; /* detached, still referenced */
        }
}

vmsig_endpoint *vmsig_core_find_endpoint(vmsig_core *c, vmsig_id id) {
        slot *s = core_slot_lookup(c, id);
        return s && s->endpoint && s->endpoint->attached ? s->endpoint : NULL;
}

uint32_t vmsig_endpoint_get_incarnation(vmsig_endpoint *ep) {
        return ep->incarnation;
}

vmsig_endpoint *vmsig_core_find_endpoint_by_name(vmsig_core *c, const char *name) {
        return c->registry && name ? hashmap_get(c->registry->by_name, name) : NULL;
}

vmsig_endpoint *vmsig_core_find_endpoint_by_vmid(vmsig_core *c, uint32_t vmid) {
        if (vmid == 0 || vmid >= c->n_slots || !c->slots[vmid].used)
                return NULL;
        vmsig_endpoint *ep = c->slots[vmid].endpoint;
        return ep && ep->attached ? ep : NULL;
}

vmsig_endpoint *vmsig_core_next_endpoint(vmsig_core *c, vmsig_endpoint *prev) {
        for (size_t i = prev ? VMSIG_ID_SLOT(prev->id) + 1 : 1; i < c->n_slots; i++) {
                vmsig_endpoint *ep = c->slots[i].used ? c->slots[i].endpoint : NULL;
                if (ep && ep->attached)
                        return ep;
        }
        return NULL;
}

size_t vmsig_core_endpoint_count(vmsig_core *c) {
        return c->registry ? c->registry->n_attached : 0;
}

vmsig_core *vmsig_endpoint_get_core(vmsig_endpoint *ep) {
        return ep->core;
}

vmsig_id vmsig_endpoint_get_id(vmsig_endpoint *ep) {
        return ep->id;
}

uint32_t vmsig_endpoint_get_vmid(vmsig_endpoint *ep) {
        return VMSIG_ID_SLOT(ep->id);
}

uint32_t vmsig_endpoint_get_generation(vmsig_endpoint *ep) {
        return VMSIG_ID_GENERATION(ep->id);
}

const char *vmsig_endpoint_get_name(vmsig_endpoint *ep) {
        return ep->name;
}

sd_id128_t vmsig_endpoint_get_uuid(vmsig_endpoint *ep) {
        return ep->uuid;
}

vmsig_state vmsig_endpoint_get_state(vmsig_endpoint *ep) {
        return ep->state;
}

bool vmsig_endpoint_is_attached(vmsig_endpoint *ep) {
        return ep->attached;
}

bool vmsig_endpoint_has_adapter(vmsig_endpoint *ep, vmsig_adapter_role role) {
        return (unsigned) role < _VMSIG_ADAPTER_MAX && ep->adapters[role].ops;
}

const char *vmsig_endpoint_get_backend(vmsig_endpoint *ep) {
        const vmsig_host_ops *h = (const vmsig_host_ops *) ep->adapters[VMSIG_ADAPTER_HOST].ops;
        return h && h->backend ? h->backend : "none";
}

void vmsig_endpoint_report_lifecycle(vmsig_endpoint *ep, vmsig_lifecycle_op op, vmsig_state new_state) {
        vmsig_lifecycle_payload p = { .op = op, .old_state = ep->state, .new_state = new_state };

        if (!ep->attached)
                return;
        ep->state = new_state;
        (void) vmsig_core_publish(ep->core, VMSIG_KIND_LIFECYCLE, ep->id, 0, &p, sizeof p);
        /* A reset guest is a new guest: nobody keeps control over it. */
        if (op == VMSIG_OP_RESET)
                vmsig_endpoint_lease_revoke_all(ep, "reset");
        if (p.old_state != new_state)
                publish_roster(ep, VMSIG_ROSTER_CHANGED);
}

static void source_trampoline(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        endpoint_source *s = userdata;
        vmsig_endpoint *ep = vmsig_endpoint_ref(s->endpoint);

        /* The callback may detach the endpoint and remove (free) s. */
        s->fn(c, cookie, fd, revents, s->userdata);
        vmsig_endpoint_unref(ep);
}

int vmsig_endpoint_add_fd(vmsig_endpoint *ep, int fd, uint32_t events, vmsig_fd_fn fn, void *userdata,
                          vmsig_cookie *ret) {
        endpoint_source *s;
        int r;

        if (!ep->attached)
                return -ENODEV;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        *s = (endpoint_source) { .endpoint = ep, .fn = fn, .userdata = userdata, .next = ep->sources };
        r = vmsig_core_add_fd(ep->core, fd, events, source_trampoline, s, &s->cookie);
        if (r < 0) {
                free(s);
                return r;
        }
        ep->sources = s;
        if (ret)
                *ret = s->cookie;
        return 0;
}

int vmsig_endpoint_remove_fd(vmsig_endpoint *ep, vmsig_cookie cookie) {
        for (endpoint_source **p = &ep->sources; *p; p = &(*p)->next) {
                endpoint_source *s = *p;
                if (s->cookie != cookie)
                        continue;
                *p = s->next;
                (void) vmsig_core_remove_fd(ep->core, cookie);
                free(s);
                return 0;
        }
        return -ESTALE;
}

int vmsig_endpoint_lifecycle(vmsig_endpoint *ep, vmsig_lifecycle_op op, vmsig_done_fn done, void *userdata) {
        const vmsig_host_ops *h = (const vmsig_host_ops *) ep->adapters[VMSIG_ADAPTER_HOST].ops;

        if (!ep->attached)
                return -ENODEV;
        if ((unsigned) op >= _VMSIG_OP_MAX)
                return -EINVAL;
        if (!h || !h->lifecycle)
                return -EOPNOTSUPP;
        return h->lifecycle(ep->adapters[VMSIG_ADAPTER_HOST].data, op, done, userdata);
}

bool vmsig_endpoint_can_read_vcpu(vmsig_endpoint *ep) {
        const vmsig_host_ops *h = (const vmsig_host_ops *) ep->adapters[VMSIG_ADAPTER_HOST].ops;

        return ep->attached && h && h->read_vcpu;
}

int vmsig_endpoint_read_vcpu(vmsig_endpoint *ep, vmsig_vcpu_done_fn done, void *userdata) {
        const vmsig_host_ops *h = (const vmsig_host_ops *) ep->adapters[VMSIG_ADAPTER_HOST].ops;

        assert(done);
        if (!ep->attached)
                return -ENODEV;
        if (!h || !h->read_vcpu)
                return -EOPNOTSUPP;
        return h->read_vcpu(ep->adapters[VMSIG_ADAPTER_HOST].data, done, userdata);
}

int vmsig_endpoint_inject_input(vmsig_endpoint *ep, const vmsig_input_event *events, size_t n, vmsig_done_fn done,
                                void *userdata) {
        const vmsig_input_ops *in = (const vmsig_input_ops *) ep->adapters[VMSIG_ADAPTER_INPUT].ops;

        if (!ep->attached)
                return -ENODEV;
        if (!in || !in->inject)
                return -EOPNOTSUPP;
        return in->inject(ep->adapters[VMSIG_ADAPTER_INPUT].data, events, n, done, userdata);
}

int vmsig_endpoint_capture_display(vmsig_endpoint *ep, vmsig_display_done_fn done, void *userdata) {
        const vmsig_display_ops *d = (const vmsig_display_ops *) ep->adapters[VMSIG_ADAPTER_DISPLAY].ops;

        if (!ep->attached)
                return -ENODEV;
        if (!d || !d->capture)
                return -EOPNOTSUPP;
        return d->capture(ep->adapters[VMSIG_ADAPTER_DISPLAY].data, done, userdata);
}

void vmsig_endpoint_cancel_input(vmsig_endpoint *ep, const char *message) {
        const vmsig_input_ops *in = (const vmsig_input_ops *) ep->adapters[VMSIG_ADAPTER_INPUT].ops;

        if (ep->attached && in && in->cancel)
                in->cancel(ep->adapters[VMSIG_ADAPTER_INPUT].data, message);
}

int vmsig_endpoint_verify_root(vmsig_endpoint *ep) {
        const vmsig_sensor_ops *m = (const vmsig_sensor_ops *) ep->adapters[VMSIG_ADAPTER_MEMCTX].ops;

        if (!ep->attached)
                return -ENODEV;
        if (!m || !m->verify_root)
                return 1;
        return m->verify_root(ep->adapters[VMSIG_ADAPTER_MEMCTX].data);
}

int vmsig_endpoint_write_ram(vmsig_endpoint *ep, uint64_t offset, const void *buf, size_t len) {
        const vmsig_sensor_ops *m = (const vmsig_sensor_ops *) ep->adapters[VMSIG_ADAPTER_MEMCTX].ops;

        if (!ep->attached)
                return -ENODEV;
        if (!m || !m->write_ram)
                return -EOPNOTSUPP;
        return m->write_ram(ep->adapters[VMSIG_ADAPTER_MEMCTX].data, offset, buf, len);
}

vmsig_lease_info *endpoint_leases(vmsig_endpoint *ep) {
        return ep->leases;
}
