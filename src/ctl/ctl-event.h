/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The events vmsigctl monitor shows: one signal of org.vmsig each, parsed
 * into named values, printed as a line of text or of JSON. */

#include <stdint.h>
#include <systemd/sd-bus.h>

#include "ctl-endpoint.h"

#define CTL_EVENT_FIELDS_MAX 16

/* One value: strings point into the message being handled. */
typedef struct ctl_event_field {
        const char *key;
        char type; /* 's' string, 'u' unsigned, 'b' boolean, 'a' strv (owned) */
        const char *s;
        uint64_t u;
        char **strv;
} ctl_event_field;

typedef struct ctl_event {
        const char *category;  /* service, roster, lifecycle, memctx, bootstrap, lease, other */
        const char *signal;
        const char *path;      /* the object it is about */
        char *endpoint;        /* that object's endpoint name, if it is one */
        const char *interface; /* PropertiesChanged: whose properties */
        ctl_endpoint_info info; /* InterfacesAdded: the endpoint that came */
        uint64_t sequence;     /* an endpoint's PropertiesChanged: its Sequence, else 0 */
        ctl_event_field fields[CTL_EVENT_FIELDS_MAX];
        size_t n_fields;
} ctl_event;

/* Fills e from a signal of org.vmsig; e->path becomes the object the signal
 * is about (for the roster signals of /org/vmsig, the endpoint named). */
int ctl_event_parse(sd_bus_message *m, ctl_event *e);
void ctl_event_add_string(ctl_event *e, const char *key, const char *s);
void ctl_event_add_uint(ctl_event *e, const char *key, uint64_t u);
/* One line on stdout, text or JSON (--json), flushed. */
void ctl_event_print(const ctl_event *e);
void ctl_event_done(ctl_event *e);
