/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-endpoint.h"
#include "ctl-util.h"

static const char *const lease_classes[_CTL_LEASE_CLASS_MAX] = {
        [CTL_LEASE_INPUT] = "input",
        [CTL_LEASE_POWER] = "power",
        [CTL_LEASE_MEMWRITE] = "memory-write",
};

const char *ctl_lease_class_to_string(ctl_lease_class c) {
        return c >= 0 && c < _CTL_LEASE_CLASS_MAX ? lease_classes[c] : NULL;
}

/* Property name, D-Bus type and where it goes. */
typedef struct property_map {
        const char *name;
        char type; /* 's', 'u', 't', or 'a' for "as" */
        size_t offset;
} property_map;

static const property_map endpoint_properties[] = {
        { "Name", 's', offsetof(ctl_endpoint_info, name) },
        { "Uuid", 's', offsetof(ctl_endpoint_info, uuid) },
        { "Vmid", 'u', offsetof(ctl_endpoint_info, vmid) },
        { "Generation", 'u', offsetof(ctl_endpoint_info, generation) },
        { "Backend", 's', offsetof(ctl_endpoint_info, backend) },
        { "State", 's', offsetof(ctl_endpoint_info, state) },
        { "MemctxEpoch", 't', offsetof(ctl_endpoint_info, memctx_epoch) },
        { "RamSize", 't', offsetof(ctl_endpoint_info, ram_size) },
        { "Capabilities", 'a', offsetof(ctl_endpoint_info, capabilities) },
        { "BootstrapState", 's', offsetof(ctl_endpoint_info, bootstrap_state) },
        { "BootstrapAttempts", 'u', offsetof(ctl_endpoint_info, bootstrap_attempts) },
        { "BootstrapMethod", 's', offsetof(ctl_endpoint_info, bootstrap_method) },
        { "GuestOs", 's', offsetof(ctl_endpoint_info, guest_os) },
        { "GuestOsRelease", 's', offsetof(ctl_endpoint_info, guest_os_release) },
        { "InputLeaseHolder", 's', offsetof(ctl_endpoint_info, holders[CTL_LEASE_INPUT]) },
        { "PowerLeaseHolder", 's', offsetof(ctl_endpoint_info, holders[CTL_LEASE_POWER]) },
        { "MemoryWriteLeaseHolder", 's', offsetof(ctl_endpoint_info, holders[CTL_LEASE_MEMWRITE]) },
};

static const property_map *find_property(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(endpoint_properties); i++)
                if (strcmp(endpoint_properties[i].name, name) == 0)
                        return &endpoint_properties[i];
        return NULL;
}

static int read_string(sd_bus_message *m, char **field) {
        const char *s;
        int r = sd_bus_message_read(m, "v", "s", &s);
        char *copy;

        if (r < 0)
                return r;
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int read_strv(sd_bus_message *m, char ***field) {
        char **v = NULL;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "as");
        if (r >= 0)
                r = sd_bus_message_read_strv(m, &v);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0) {
                strv_freep(&v);
                return r;
        }
        strv_freep(field);
        *field = v;
        return 0;
}

static int read_value(sd_bus_message *m, const property_map *p, ctl_endpoint_info *info) {
        void *field = (uint8_t *) info + p->offset;
        char type[2] = { p->type, 0 };
        const char *contents;
        char t;
        int r;

        /* A property of another type than we know is skipped, not an
         * error: it would be a newer vmsigd's business. */
        r = sd_bus_message_peek_type(m, &t, &contents);
        if (r < 0)
                return r;
        if (strcmp(contents, p->type == 'a' ? "as" : type) != 0)
                return sd_bus_message_skip(m, "v");
        switch (p->type) {
        case 's':
                return read_string(m, field);
        case 'a':
                return read_strv(m, field);
        default:
                return sd_bus_message_read(m, "v", type, field);
        }
}

static int on_property(sd_bus_message *m, const char *name, void *userdata) {
        const property_map *p = find_property(name);

        return p ? read_value(m, p, userdata) : sd_bus_message_skip(m, "v");
}

int ctl_endpoint_info_read(sd_bus_message *m, ctl_endpoint_info *info) {
        return ctl_read_dict(m, "sv", on_property, info);
}

void ctl_endpoint_info_done(ctl_endpoint_info *info) {
        /* What the property map filled, then what came beside it. */
        for (size_t i = 0; i < ELEMENTSOF(endpoint_properties); i++) {
                void *field = (uint8_t *) info + endpoint_properties[i].offset;

                if (endpoint_properties[i].type == 's')
                        free(*(char **) field);
                else if (endpoint_properties[i].type == 'a')
                        strv_freep(field);
        }
        free(info->path);
        for (size_t i = 0; i < _CTL_LEASE_CLASS_MAX; i++)
                free(info->holder_details[i]);
        *info = (ctl_endpoint_info) {};
}

int ctl_endpoint_info_get(sd_bus *bus, const char *path, ctl_endpoint_info *info) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, VMSIG_BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", &error, &reply,
                               "s", VMSIG_BUS_ENDPOINT_INTERFACE);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to get the properties of %s", path);
        info->path = strdup(path);
        if (!info->path)
                return ctl_error(-ENOMEM, "Out of memory.");
        r = ctl_endpoint_info_read(reply, info);
        if (r < 0)
                return ctl_error(r, "Failed to parse the properties of %s: %m", path);
        return 0;
}

void ctl_endpoint_info_free_array(ctl_endpoint_info *infos, size_t n) {
        for (size_t i = 0; i < n; i++)
                ctl_endpoint_info_done(&infos[i]);
        free(infos);
}

typedef struct object_ctx {
        ctl_endpoint_info info;
        bool found; /* the object has the endpoint interface */
        ctl_endpoint_info *infos;
        size_t n;
} object_ctx;

/* One interface of an object: we want the endpoint's. */
static int on_interface(sd_bus_message *m, const char *interface, void *userdata) {
        object_ctx *c = userdata;

        if (strcmp(interface, VMSIG_BUS_ENDPOINT_INTERFACE) != 0)
                return sd_bus_message_skip(m, "a{sv}");
        c->found = true;
        return ctl_endpoint_info_read(m, &c->info);
}

/* One object of GetManagedObjects: kept if it is an endpoint. */
static int on_object(sd_bus_message *m, const char *path, void *userdata) {
        object_ctx *c = userdata;
        ctl_endpoint_info *grown;
        int r;

        c->info = (ctl_endpoint_info) {};
        c->found = false;
        r = ctl_read_dict(m, "sa{sv}", on_interface, c);
        if (r >= 0 && c->found) {
                grown = reallocarray(c->infos, c->n + 1, sizeof *c->infos);
                c->info.path = strdup(path);
                r = grown && c->info.path ? 0 : -ENOMEM;
                if (grown)
                        c->infos = grown;
                if (r >= 0) {
                        c->infos[c->n++] = c->info;
                        return 0;
                }
        }
        ctl_endpoint_info_done(&c->info);
        return r;
}

static int read_objects(sd_bus_message *m, ctl_endpoint_info **infos, size_t *n) {
        object_ctx c = { .infos = *infos, .n = *n };
        int r = ctl_read_dict(m, "oa{sa{sv}}", on_object, &c);

        *infos = c.infos;
        *n = c.n;
        return r;
}

static int compare_vmid(const void *a, const void *b) {
        const ctl_endpoint_info *x = a, *y = b;
        return x->vmid < y->vmid ? -1 : x->vmid > y->vmid;
}

int ctl_endpoint_info_get_all(sd_bus *bus, ctl_endpoint_info **ret, size_t *ret_n) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        ctl_endpoint_info *infos = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(bus, VMSIG_BUS_NAME, VMSIG_BUS_PATH, "org.freedesktop.DBus.ObjectManager",
                               "GetManagedObjects", &error, &reply, NULL);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to list endpoints");
        r = read_objects(reply, &infos, &n);
        if (r < 0) {
                ctl_endpoint_info_free_array(infos, n);
                return ctl_error(r, "Failed to parse the list of endpoints: %m");
        }
        /* The object manager answers in no particular order; ListEndpoints
         * and machinectl list by slot. */
        if (n > 0)
                qsort(infos, n, sizeof *infos, compare_vmid);
        *ret = infos;
        *ret_n = n;
        return 0;
}

void ctl_endpoint_info_json(json_writer *w, const ctl_endpoint_info *info) {
        json_object_begin(w);
        json_field_string(w, "endpoint", info->name);
        json_field_string(w, "path", info->path);
        json_field_string(w, "uuid", info->uuid);
        json_field_uint(w, "vmid", info->vmid);
        json_field_uint(w, "generation", info->generation);
        json_field_string(w, "backend", info->backend);
        json_field_string(w, "state", info->state);
        json_field_string(w, "bootstrap_state", info->bootstrap_state);
        json_field_uint(w, "bootstrap_attempts", info->bootstrap_attempts);
        json_field_string(w, "bootstrap_method", info->bootstrap_method);
        json_field_string(w, "guest_os", info->guest_os);
        json_field_string(w, "guest_os_release", info->guest_os_release);
        json_field_uint(w, "memctx_epoch", info->memctx_epoch);
        json_field_uint(w, "ram_size", info->ram_size);
        json_key(w, "capabilities");
        json_array_begin(w);
        for (char **c = info->capabilities; c && *c; c++)
                json_string(w, *c);
        json_array_end(w);
        /* A free class is null, so scripts can test it plainly. */
        json_key(w, "leases");
        json_object_begin(w);
        for (size_t i = 0; i < _CTL_LEASE_CLASS_MAX; i++) {
                char key[JSON_KEY_MAX];

                json_field_string(w, json_key_style(key, lease_classes[i]),
                                  info->holders[i] && *info->holders[i] ? info->holders[i] : NULL);
        }
        json_object_end(w);
        json_object_end(w);
}

/* The properties of one org.vmsig.Lease object. */
typedef struct lease_props {
        const char *class, *endpoint, *command;
        uint32_t uid, pid;
} lease_props;

static int on_lease_property(sd_bus_message *m, const char *key, void *userdata) {
        lease_props *p = userdata;

        if (strcmp(key, "Class") == 0)
                return sd_bus_message_read(m, "v", "s", &p->class);
        if (strcmp(key, "Endpoint") == 0)
                return sd_bus_message_read(m, "v", "o", &p->endpoint);
        if (strcmp(key, "HolderCommand") == 0)
                return sd_bus_message_read(m, "v", "s", &p->command);
        if (strcmp(key, "HolderUID") == 0)
                return sd_bus_message_read(m, "v", "u", &p->uid);
        if (strcmp(key, "HolderPID") == 0)
                return sd_bus_message_read(m, "v", "u", &p->pid);
        return sd_bus_message_skip(m, "v");
}

typedef struct holders_ctx {
        ctl_endpoint_info *infos;
        size_t n;
} holders_ctx;

static void set_holder_details(holders_ctx *c, const lease_props *p) {
        for (size_t i = 0; i < c->n; i++) {
                ctl_endpoint_info *info = &c->infos[i];

                for (size_t k = 0; k < _CTL_LEASE_CLASS_MAX; k++) {
                        const struct passwd *pw;

                        if (!info->path || strcmp(info->path, p->endpoint) != 0 ||
                            strcmp(ctl_lease_class_to_string(k), p->class) != 0)
                                continue;
                        pw = getpwuid(p->uid);
                        free(info->holder_details[k]);
                        if (asprintf(&info->holder_details[k], "uid %" PRIu32 "%s%s%s, pid %" PRIu32 ", %s", p->uid,
                                     pw ? " (" : "", pw ? pw->pw_name : "", pw ? ")" : "", p->pid,
                                     p->command && *p->command ? p->command : "?") < 0)
                                info->holder_details[k] = NULL;
                }
        }
}

static int on_lease_interface(sd_bus_message *m, const char *interface, void *userdata) {
        lease_props p = {};
        int r;

        if (strcmp(interface, VMSIG_BUS_LEASE_INTERFACE) != 0)
                return sd_bus_message_skip(m, "a{sv}");
        r = ctl_read_dict(m, "sv", on_lease_property, &p);
        if (r >= 0 && p.class && p.endpoint)
                set_holder_details(userdata, &p);
        return r;
}

static int on_lease_object(sd_bus_message *m, const char *path, void *userdata) {
        return ctl_read_dict(m, "sa{sv}", on_lease_interface, userdata);
}

int ctl_endpoint_info_get_holders(sd_bus *bus, ctl_endpoint_info *infos, size_t n) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        holders_ctx c = { .infos = infos, .n = n };
        int r;

        r = sd_bus_call_method(bus, VMSIG_BUS_NAME, VMSIG_BUS_PATH, "org.freedesktop.DBus.ObjectManager",
                               "GetManagedObjects", &error, &reply, NULL);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to list the leases");
        r = ctl_read_dict(reply, "oa{sa{sv}}", on_lease_object, &c);
        return r < 0 ? ctl_error(r, "Failed to parse the leases: %m") : 0;
}
