/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint-internal.h"
#include "hashmap.h"
#include "macro.h"
#include "string-table.h"
#include "vmsig-endpoint.h"

typedef struct endpoint_registry endpoint_registry;

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
        endpoint_registry *registry;
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
        vmsig_core *core;
        sd_event_source *reap_source;
        Hashmap *by_name;
        Hashmap *names_seen; /* name -> name_record */
        size_t n_attached;
        size_t n_endpoints; /* attached, or detached and not freed yet */
        vmsig_endpoint *zombies;
};

static const char *const vmsig_state_table[_VMSIG_STATE_MAX] = {
        [VMSIG_STATE_UNKNOWN] = "unknown",
        [VMSIG_STATE_RUNNING] = "running",
        [VMSIG_STATE_PAUSED] = "paused",
        [VMSIG_STATE_SHUT_OFF] = "shut-off",
};

static const char *const vmsig_lifecycle_op_table[_VMSIG_OP_MAX] = {
        [VMSIG_OP_PAUSE] = "pause",
        [VMSIG_OP_RESUME] = "resume",
        [VMSIG_OP_RESET] = "reset",
        [VMSIG_OP_POWER_OFF] = "power-off",
        [VMSIG_OP_KILL] = "kill",
};

DEFINE_STRING_TABLE_LOOKUP(vmsig_state, vmsig_state);
DEFINE_STRING_TABLE_LOOKUP_TO_STRING(vmsig_lifecycle_op, vmsig_lifecycle_op);

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

static void registry_free(vmsig_core *c, void *data);
static void registry_stats(vmsig_core *c, void *data, vmsig_core_stats *st);

/* The registry is a layer on the core: the core frees it first thing in
 * vmsig_core_free() and asks it for the endpoint counts of its stats. */
static const vmsig_core_layer_ops registry_ops = {
        .free = registry_free,
        .stats = registry_stats,
};

static int on_reap(sd_event_source *s, void *userdata);

static endpoint_registry *registry_new(vmsig_core *c) {
        endpoint_registry *reg = calloc(1, sizeof *reg);

        if (!reg)
                return NULL;
        reg->core = c;
        reg->by_name = hashmap_new();
        reg->names_seen = hashmap_new();
        if (!reg->by_name || !reg->names_seen)
                goto fail;
        /* The reap runs after everything else, so that a detached endpoint
         * is freed only once no dispatch can touch it. */
        if (sd_event_add_defer(vmsig_core_get_event(c), &reg->reap_source, on_reap, reg) < 0)
                goto fail;
        (void) sd_event_source_set_priority(reg->reap_source, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_enabled(reg->reap_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(reg->reap_source, "vmsig-reap");
        if (vmsig_core_set_layer(c, &registry_ops, reg) < 0)
                goto fail;
        return reg;
fail:
        sd_event_source_disable_unref(reg->reap_source);
        hashmap_free(reg->by_name);
        hashmap_free(reg->names_seen);
        return mfree(reg);
}

static endpoint_registry *registry_find(vmsig_core *c) {
        return vmsig_core_get_layer(c, &registry_ops);
}

static endpoint_registry *registry_get(vmsig_core *c) {
        return registry_find(c) ?: registry_new(c);
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
        vmsig_core_release_id(ep->core, ep->id);
        ep->registry->n_endpoints--;
        free(ep->name);
        free(ep);
}

vmsig_endpoint *vmsig_endpoint_ref(vmsig_endpoint *ep) {
        if (ep)
                ep->n_ref++;
        return ep;
}

/* Appended: the reap releases ids in this order, and the core reuses them
 * first in, first out. */
static void zombie_append(vmsig_endpoint *ep) {
        vmsig_endpoint **p = &ep->registry->zombies;

        while (*p)
                p = &(*p)->zombie_next;
        ep->zombie = true;
        ep->zombie_next = NULL;
        *p = ep;
}

vmsig_endpoint *vmsig_endpoint_unref(vmsig_endpoint *ep) {
        if (!ep)
                return NULL;
        assert(ep->n_ref > 0);
        if (--ep->n_ref > 0 || ep->zombie)
                return NULL;
        /* Never free here: the caller may be deep inside a callback of this
         * very endpoint. The reap source runs once the stack has unwound. */
        zombie_append(ep);
        (void) sd_event_source_set_enabled(ep->registry->reap_source, SD_EVENT_ONESHOT);
        return NULL;
}

static void registry_reap(endpoint_registry *reg) {
        vmsig_endpoint **p = &reg->zombies;

        while (*p) {
                vmsig_endpoint *ep = *p;
                *p = ep->zombie_next;
                if (ep->n_ref > 0)
                        /* Resurrected by a late reference; its last unref
                         * puts it back on the list. */
                        ep->zombie = false;
                else
                        endpoint_free(ep);
        }
}

static int on_reap(sd_event_source *s, void *userdata) {
        registry_reap(userdata);
        return 0;
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

static void spec_free_adapters(const vmsig_endpoint_spec *spec) {
        for (int i = _VMSIG_ADAPTER_MAX - 1; i >= 0; i--)
                if (spec->adapters[i].ops && spec->adapters[i].ops->free)
                        spec->adapters[i].ops->free(spec->adapters[i].data);
}

/* A new endpoint for spec, registered under its name with an id of the
 * core, its adapters not attached yet. */
static int endpoint_new(endpoint_registry *reg, const vmsig_endpoint_spec *spec, vmsig_endpoint **ret) {
        vmsig_endpoint *ep;
        int r;

        if (!vmsig_endpoint_name_is_valid(spec->name) || (unsigned) spec->initial_state >= _VMSIG_STATE_MAX)
                return -EINVAL;
        if (hashmap_get(reg->by_name, spec->name))
                return -EEXIST;
        ep = calloc(1, sizeof *ep);
        if (!ep)
                return -ENOMEM;
        *ep = (vmsig_endpoint) {
                .n_ref = 1, /* the registry's */
                .core = reg->core,
                .registry = reg,
                .name = strdup(spec->name),
                .uuid = spec->uuid,
                .state = spec->initial_state,
                .attached = true,
        };
        r = ep->name ? name_count(reg, ep->name, &ep->incarnation) : -ENOMEM;
        if (r >= 0)
                r = vmsig_core_acquire_id(reg->core, ep, &ep->id);
        if (r >= 0) {
                r = hashmap_put(reg->by_name, ep->name, ep);
                if (r < 0)
                        vmsig_core_release_id(reg->core, ep->id);
        }
        if (r < 0) {
                free(ep->name);
                free(ep);
                return r;
        }
        memcpy(ep->adapters, spec->adapters, sizeof ep->adapters);
        reg->n_attached++;
        reg->n_endpoints++;
        *ret = ep;
        return 0;
}

int vmsig_core_attach_endpoint(vmsig_core *c, const vmsig_endpoint_spec *spec, vmsig_endpoint **ret) {
        endpoint_registry *reg = registry_get(c);
        vmsig_endpoint *ep;
        int r;

        r = reg ? endpoint_new(reg, spec, &ep) : -ENOMEM;
        if (r < 0) {
                spec_free_adapters(spec);
                return r;
        }
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
}

int vmsig_core_detach_endpoint(vmsig_core *c, vmsig_endpoint *ep) {
        if (!ep || ep->core != c)
                return -EINVAL;
        if (!ep->attached)
                return -ENODEV;

        /* Unpublish first, so that nothing new can find the endpoint while
         * its adapters cancel what is in flight. */
        ep->attached = false;
        hashmap_remove(ep->registry->by_name, ep->name);
        ep->registry->n_attached--;

        adapters_detach(ep);
        while (ep->sources)
                (void) vmsig_endpoint_remove_fd(ep, ep->sources->cookie);
        vmsig_endpoint_lease_revoke_all(ep, "detached");
        publish_roster(ep, VMSIG_ROSTER_REMOVED);
        vmsig_endpoint_unref(ep);
        return 0;
}

/* The endpoint holding id, attached or not, or NULL. The registry is the
 * one holder of the core's ids. */
static vmsig_endpoint *endpoint_of(vmsig_core *c, vmsig_id id) {
        return id != 0 ? vmsig_core_get_id_data(c, id) : NULL;
}

/* Every endpoint, attached or not, in vmid order. */
#define FOREACH_ENDPOINT(ep, id, c)                                                  \
        for (vmsig_id id = vmsig_core_next_id(c, 0); id != 0;                        \
             id = vmsig_core_next_id(c, VMSIG_ID_SLOT(id)))                          \
                if (((ep) = endpoint_of(c, id)))

static void registry_free(vmsig_core *c, void *data) {
        endpoint_registry *reg = data;
        vmsig_endpoint *ep;

        FOREACH_ENDPOINT(ep, id, c)
                if (ep->attached)
                        (void) vmsig_core_detach_endpoint(c, ep);
        /* A reference still held now is a leak elsewhere; the core is going
         * away regardless, so reap everything. */
        FOREACH_ENDPOINT(ep, id, c) {
                ep->n_ref = 0;
                if (!ep->zombie) {
                        ep->zombie = true;
                        ep->zombie_next = reg->zombies;
                        reg->zombies = ep;
                }
        }
        registry_reap(reg);
        sd_event_source_disable_unref(reg->reap_source);
        hashmap_free(reg->by_name);
        hashmap_free_with_destructor(reg->names_seen, free);
        free(reg);
}

static void registry_stats(vmsig_core *c, void *data, vmsig_core_stats *st) {
        endpoint_registry *reg = data;

        st->endpoints = reg->n_attached;
        st->zombies = reg->n_endpoints - reg->n_attached; /* detached, not freed yet */
}

vmsig_endpoint *vmsig_core_find_endpoint(vmsig_core *c, vmsig_id id) {
        vmsig_endpoint *ep = endpoint_of(c, id);
        return ep && ep->attached ? ep : NULL;
}

vmsig_endpoint *vmsig_core_find_endpoint_by_name(vmsig_core *c, const char *name) {
        endpoint_registry *reg = registry_find(c);
        return reg && name ? hashmap_get(reg->by_name, name) : NULL;
}

vmsig_endpoint *vmsig_core_find_endpoint_by_vmid(vmsig_core *c, uint32_t vmid) {
        return vmsig_core_find_endpoint(c, vmsig_core_slot_id(c, vmid));
}

vmsig_endpoint *vmsig_core_next_endpoint(vmsig_core *c, vmsig_endpoint *prev) {
        for (vmsig_id id = vmsig_core_next_id(c, prev ? VMSIG_ID_SLOT(prev->id) : 0); id != 0;
             id = vmsig_core_next_id(c, VMSIG_ID_SLOT(id))) {
                vmsig_endpoint *ep = vmsig_core_find_endpoint(c, id);
                if (ep)
                        return ep;
        }
        return NULL;
}

size_t vmsig_core_endpoint_count(vmsig_core *c) {
        endpoint_registry *reg = registry_find(c);
        return reg ? reg->n_attached : 0;
}

uint32_t vmsig_endpoint_get_incarnation(vmsig_endpoint *ep) {
        return ep->incarnation;
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

const char *vmsig_endpoint_get_memctx_absence(vmsig_endpoint *ep) {
        const vmsig_host_ops *h = (const vmsig_host_ops *) ep->adapters[VMSIG_ADAPTER_HOST].ops;

        if (vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_MEMCTX) || !h || !h->memctx_absence)
                return NULL;
        return h->memctx_absence(ep->adapters[VMSIG_ADAPTER_HOST].data);
}

const char *vmsig_endpoint_get_memctx_failure(vmsig_endpoint *ep) {
        const vmsig_host_ops *h = (const vmsig_host_ops *) ep->adapters[VMSIG_ADAPTER_HOST].ops;

        return h && h->memctx_failure ? h->memctx_failure(ep->adapters[VMSIG_ADAPTER_HOST].data) : NULL;
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
        const vmsig_memctx_ops *m = (const vmsig_memctx_ops *) ep->adapters[VMSIG_ADAPTER_MEMCTX].ops;

        if (!ep->attached)
                return -ENODEV;
        if (!m || !m->verify_root)
                return 1;
        return m->verify_root(ep->adapters[VMSIG_ADAPTER_MEMCTX].data);
}

int vmsig_endpoint_write_ram(vmsig_endpoint *ep, uint64_t offset, const void *buf, size_t len) {
        const vmsig_memctx_ops *m = (const vmsig_memctx_ops *) ep->adapters[VMSIG_ADAPTER_MEMCTX].ops;

        if (!ep->attached)
                return -ENODEV;
        if (!m || !m->write_ram)
                return -EOPNOTSUPP;
        return m->write_ram(ep->adapters[VMSIG_ADAPTER_MEMCTX].data, offset, buf, len);
}

vmsig_lease_info *endpoint_leases(vmsig_endpoint *ep) {
        return ep->leases;
}
