/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Asynchronous polkit checks on the public sd-bus API, in the manner of
 * systemd's bus-polkit.c: the method message is kept, CheckAuthorization is
 * sent without blocking, and when polkit answers the message is queued to
 * be dispatched again; the handler then finds the stored answer. */

#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

typedef struct bus_polkit bus_polkit;

/* A query in flight counts against its requester's pending-call quota:
 * whoever calls bus_polkit_verify() for a message that has no query yet
 * (bus_polkit_has_query() is false) has taken one unit for it, and the
 * query owns that unit from then on. This is called once per query when it
 * ends, whichever way (answered, dropped, or unable to start), to give the
 * unit back. */
typedef void (*bus_polkit_query_end_t)(uid_t uid, void *userdata);

/* polkit is asked over system_bus, whatever bus a request came in on. */
int bus_polkit_new(sd_event *event, sd_bus *system_bus, bus_polkit **ret);
bus_polkit *bus_polkit_free(bus_polkit *p);
void bus_polkit_set_query_end(bus_polkit *p, bus_polkit_query_end_t end, void *userdata);

typedef enum bus_polkit_verdict {
        BUS_POLKIT_PENDING,    /* asked; return 1 from the handler and wait */
        BUS_POLKIT_GRANTED,
        BUS_POLKIT_DENIED,     /* error is set (AccessDenied or InteractiveAuthorizationRequired) */
        BUS_POLKIT_UNAVAILABLE, /* polkit is not there; error is set */
} bus_polkit_verdict;

bool bus_polkit_has_query(bus_polkit *p, sd_bus_message *m, const char *action);

/* details: NULL-terminated key, value, key, value, ... for polkit rules.
 * On the first call for a message this starts the query; when the handler
 * runs again for the same message and action, it returns the answer. */
bus_polkit_verdict bus_polkit_verify(bus_polkit *p, sd_bus_message *m, uid_t uid, const char *action,
                                     const char *const *details, sd_bus_error *error);

/* sender left the bus: its queries end now, without an answer to wait for
 * and without running its calls again. */
void bus_polkit_sender_gone(bus_polkit *p, const char *sender);
