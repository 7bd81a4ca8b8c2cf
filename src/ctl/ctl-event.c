/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-event.h"
#include "ctl-json.h"
#include "ctl-util.h"

void ctl_event_done(ctl_event *e) {
        for (size_t i = 0; i < e->n_fields; i++)
                strv_freep(&e->fields[i].strv);
        free(e->endpoint);
        ctl_endpoint_info_done(&e->info);
}

static ctl_event_field *add_field(ctl_event *e, const char *key, char type) {
        ctl_event_field *f;

        /* More than we ever send; a future vmsigd's extras are cut. */
        if (e->n_fields == CTL_EVENT_FIELDS_MAX)
                return NULL;
        f = &e->fields[e->n_fields++];
        *f = (ctl_event_field) { .key = key, .type = type };
        return f;
}

void ctl_event_add_string(ctl_event *e, const char *key, const char *s) {
        ctl_event_field *f = add_field(e, key, 's');
        if (f)
                f->s = s;
}

void ctl_event_add_uint(ctl_event *e, const char *key, uint64_t u) {
        ctl_event_field *f = add_field(e, key, 'u');
        if (f)
                f->u = u;
}

static void add_strv(ctl_event *e, const char *key, char **strv) {
        ctl_event_field *f = add_field(e, key, 'a');
        if (f)
                f->strv = strv;
        else
                strv_freep(&strv);
}

/* Output. */

static bool needs_quotes(const char *s) {
        return !*s || strpbrk(s, " \t\n\"\\=");
}

static void print_text_value(const char *s) {
        if (!needs_quotes(s)) {
                fputs(s, stdout);
                return;
        }
        putchar('"');
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        putchar('\\');
                putchar(*s == '\n' ? ' ' : *s);
        }
        putchar('"');
}

static void print_text_field(const ctl_event_field *f) {
        char key[JSON_KEY_MAX];

        printf(" %s=", json_key_style(key, f->key));
        switch (f->type) {
        case 's':
                print_text_value(f->s);
                break;
        case 'u':
                printf("%" PRIu64, f->u);
                break;
        case 'b':
                fputs(f->u ? "yes" : "no", stdout);
                break;
        case 'a':
                for (char **s = f->strv; s && *s; s++) {
                        if (s != f->strv)
                                putchar(',');
                        print_text_value(*s);
                }
                break;
        }
}

static void print_text(const ctl_event *e, uint64_t now) {
        char ts[CTL_TIMESTAMP_MAX];
        const char *subject = e->endpoint ? e->endpoint : e->path;

        printf("%s %-9s %s", ctl_format_timestamp(ts, now), e->category, subject);
        /* Property changes say what changed; other signals say their name. */
        if (strcmp(e->signal, "PropertiesChanged") != 0)
                printf(" %s", e->signal);
        for (size_t i = 0; i < e->n_fields; i++)
                print_text_field(&e->fields[i]);
        putchar('\n');
}

static void json_field_value(json_writer *w, const ctl_event_field *f) {
        char key[JSON_KEY_MAX];

        json_key(w, json_key_style(key, f->key));
        switch (f->type) {
        case 's':
                json_string(w, f->s);
                break;
        case 'u':
                json_uint(w, f->u);
                break;
        case 'b':
                json_bool(w, f->u);
                break;
        case 'a':
                json_array_begin(w);
                for (char **s = f->strv; s && *s; s++)
                        json_string(w, *s);
                json_array_end(w);
                break;
        }
}

static void print_json(const ctl_event *e, uint64_t now) {
        char ts[CTL_TIMESTAMP_MAX];
        json_writer w;

        json_init(&w, stdout, arg.json == CTL_JSON_PRETTY);
        json_object_begin(&w);
        json_field_uint(&w, "timestamp", now);
        json_field_string(&w, "time", ctl_format_timestamp(ts, now));
        json_field_string(&w, "category", e->category);
        json_field_string(&w, "signal", e->signal);
        json_field_string(&w, "path", e->path);
        json_field_string(&w, "endpoint", e->endpoint);
        if (e->interface)
                json_field_string(&w, "interface", e->interface);
        if (e->sequence > 0)
                json_field_uint(&w, "sequence", e->sequence);
        json_key(&w, "data");
        json_object_begin(&w);
        for (size_t i = 0; i < e->n_fields; i++)
                json_field_value(&w, &e->fields[i]);
        json_object_end(&w);
        json_object_end(&w);
        putchar('\n');
}

void ctl_event_print(const ctl_event *e) {
        uint64_t now = ctl_now_realtime();

        if (arg.json)
                print_json(e, now);
        else
                print_text(e, now);
        /* A monitor is read live, often through a pipe. */
        fflush(stdout);
}

/* Parsing, per signal. */

/* A property value in its variant: the basic types and string arrays are
 * shown as they are; anything else by its signature. */
static int read_property(sd_bus_message *m, ctl_event *e, const char *key) {
        const char *contents;
        ctl_event_field *f;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        f = add_field(e, key, 's');
        if (!f)
                return sd_bus_message_skip(m, "v");
        if (strcmp(contents, "s") == 0 || strcmp(contents, "o") == 0)
                return sd_bus_message_read(m, "v", contents, &f->s);
        if (strcmp(contents, "as") == 0) {
                f->type = 'a';
                r = sd_bus_message_enter_container(m, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_read_strv(m, &f->strv);
                return r < 0 ? r : sd_bus_message_exit_container(m);
        }
        if (strcmp(contents, "b") == 0 || strcmp(contents, "u") == 0) {
                /* Both are 32 bits on the wire; sd-bus reads a "b" into an int. */
                union {
                        int b;
                        uint32_t u;
                } v = {};
                f->type = contents[0];
                r = sd_bus_message_read(m, "v", contents, &v);
                f->u = contents[0] == 'b' ? (uint64_t) v.b : v.u;
                return r;
        }
        if (strcmp(contents, "t") == 0) {
                f->type = 'u';
                return sd_bus_message_read(m, "v", "t", &f->u);
        }
        f->s = contents; /* its D-Bus signature */
        return sd_bus_message_skip(m, "v");
}

static const char *property_category(const char *property) {
        if (strcmp(property, "State") == 0)
                return "lifecycle";
        if (strcmp(property, "MemctxEpoch") == 0 || strcmp(property, "RamSize") == 0)
                return "memctx";
        if (strncmp(property, "Bootstrap", 9) == 0)
                return "bootstrap";
        if (strstr(property, "LeaseHolder"))
                return "lease";
        if (strcmp(property, "EndpointCount") == 0)
                return "roster";
        return "other";
}

static int on_changed_property(sd_bus_message *m, const char *key, void *userdata) {
        ctl_event *e = userdata;

        /* A client's check for lost or reordered changes, not a change to
         * show. */
        if (strcmp(key, "Sequence") == 0)
                return sd_bus_message_read(m, "v", "t", &e->sequence);
        if (e->n_fields == 0)
                e->category = property_category(key);
        return read_property(m, e, key);
}

static int parse_properties_changed(sd_bus_message *m, ctl_event *e) {
        char **invalidated = NULL;
        int r;

        r = sd_bus_message_read(m, "s", &e->interface);
        if (r >= 0)
                r = ctl_read_dict(m, "sv", on_changed_property, e);
        if (r >= 0)
                r = sd_bus_message_read_strv(m, &invalidated);
        if (r < 0)
                return r;
        if (invalidated && *invalidated)
                add_strv(e, "invalidated", invalidated);
        else
                strv_freep(&invalidated);
        return 0;
}

/* Peer, Introspectable and Properties come with every object: they say
 * nothing about what came or went. */
static bool interface_is_standard(const char *interface) {
        return strncmp(interface, "org.freedesktop.DBus.", 21) == 0;
}

static void drop_standard_interfaces(char **interfaces) {
        char **out = interfaces;

        for (char **i = interfaces; i && *i; i++)
                if (interface_is_standard(*i))
                        free(*i);
                else
                        *out++ = *i;
        if (out)
                *out = NULL;
}

static int strv_push(char ***l, size_t *n, const char *s) {
        char **grown = reallocarray(*l, *n + 2, sizeof *grown);

        if (!grown)
                return -ENOMEM;
        *l = grown;
        grown[*n] = strdup(s);
        grown[*n + 1] = NULL;
        return grown[(*n)++] ? 0 : -ENOMEM;
}

typedef struct added_ctx {
        ctl_endpoint_info *info;
        char **interfaces;
        size_t n;
} added_ctx;

static int on_added_interface(sd_bus_message *m, const char *interface, void *userdata) {
        added_ctx *c = userdata;
        int r = strv_push(&c->interfaces, &c->n, interface);

        if (r < 0)
                return r;
        return strcmp(interface, VMSIG_BUS_ENDPOINT_INTERFACE) == 0 ? ctl_endpoint_info_read(m, c->info)
                                                                  : sd_bus_message_skip(m, "a{sv}");
}

/* InterfacesAdded: for an endpoint, its slot and state say what came. */
static int parse_interfaces_added(sd_bus_message *m, ctl_event *e) {
        added_ctx c = { .info = &e->info };
        int r;

        r = sd_bus_message_read(m, "o", &e->path);
        if (r >= 0)
                r = ctl_read_dict(m, "sa{sv}", on_added_interface, &c);
        drop_standard_interfaces(c.interfaces);
        add_strv(e, "interfaces", c.interfaces);
        if (r >= 0 && e->info.state) {
                ctl_event_add_uint(e, "vmid", e->info.vmid);
                ctl_event_add_string(e, "state", e->info.state);
        }
        return r;
}

static int parse_interfaces_removed(sd_bus_message *m, ctl_event *e) {
        char **interfaces = NULL;
        int r;

        r = sd_bus_message_read(m, "o", &e->path);
        if (r >= 0)
                r = sd_bus_message_read_strv(m, &interfaces);
        drop_standard_interfaces(interfaces);
        if (r >= 0)
                add_strv(e, "interfaces", interfaces);
        return r;
}

/* The signals of org.vmsig.Endpoint and org.vmsig.Lease, by their
 * arguments: names for each, with their D-Bus types. */
static const struct {
        const char *member;
        const char *category;
        const char *signature;
        const char *names[3];
} endpoint_signals[] = {
        { "LeaseAcquired", "lease", "ss", { "class", "holder" } },
        { "LeaseReleased", "lease", "sss", { "class", "holder", "reason" } },
        { "LeaseRevoked", "lease", "s", { "reason" } },
        { "MemctxChanged", "memctx", "tt", { "epoch", "dtb" } },
        { "MemctxInvalidated", "memctx", "t", { "epoch" } },
};

static int parse_arguments(sd_bus_message *m, ctl_event *e, size_t k) {
        const char *sig = endpoint_signals[k].signature;
        int r = 0;

        e->category = endpoint_signals[k].category;
        for (size_t i = 0; r >= 0 && sig[i]; i++) {
                char type[2] = { sig[i], 0 };
                const char *s;
                uint64_t t;

                if (sig[i] == 's') {
                        r = sd_bus_message_read(m, type, &s);
                        if (r >= 0)
                                ctl_event_add_string(e, endpoint_signals[k].names[i], s);
                } else {
                        r = sd_bus_message_read(m, type, &t);
                        if (r >= 0)
                                ctl_event_add_uint(e, endpoint_signals[k].names[i], t);
                }
        }
        return r;
}

int ctl_event_parse(sd_bus_message *m, ctl_event *e) {
        const char *interface = sd_bus_message_get_interface(m);

        e->signal = sd_bus_message_get_member(m);
        e->path = sd_bus_message_get_path(m);
        if (!e->signal || !e->path || !interface)
                return -EBADMSG;

        e->category = "other";
        if (strcmp(interface, "org.freedesktop.DBus.Properties") == 0 && strcmp(e->signal, "PropertiesChanged") == 0)
                return parse_properties_changed(m, e);
        if (strcmp(interface, "org.freedesktop.DBus.ObjectManager") == 0) {
                e->category = "roster";
                if (strcmp(e->signal, "InterfacesAdded") == 0)
                        return parse_interfaces_added(m, e);
                if (strcmp(e->signal, "InterfacesRemoved") == 0)
                        return parse_interfaces_removed(m, e);
                return 0;
        }
        if (strcmp(interface, VMSIG_BUS_MANAGER_INTERFACE) == 0) {
                /* EndpointAdded, EndpointRemoved: about the endpoint named. */
                e->category = "roster";
                if (strcmp(sd_bus_message_get_signature(m, true), "o") == 0)
                        return sd_bus_message_read(m, "o", &e->path);
                return 0;
        }
        for (size_t k = 0; k < ELEMENTSOF(endpoint_signals); k++)
                if (strcmp(e->signal, endpoint_signals[k].member) == 0 &&
                    strcmp(sd_bus_message_get_signature(m, true), endpoint_signals[k].signature) == 0)
                        return parse_arguments(m, e, k);
        return 0;
}

