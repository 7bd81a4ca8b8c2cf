/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A QEMU monitor as the queries that every backend speaking to QEMU shares
 * (the GPA map, qmp-ram-map.h) see it: one QMP command sent as JSON, its
 * reply later. The QMP backend's connection is one (qmp_conn_monitor());
 * the libvirt backend's virDomainQemuMonitorCommand() another, behind the
 * same two members.
 *
 * The contract of execute, which a query relies on:
 *   - arguments (a JSON object, or NULL) are taken, also on failure;
 *   - on success fn is called exactly once, from the loop, never from
 *     inside execute; also when the monitor goes away with the command
 *     unanswered (error -ENODEV then: the query must not send again);
 *   - on failure (a negative errno) fn is never called.
 */

#include <json-c/json.h>

typedef struct qmp_reply {
        int error;           /* 0; -EIO for a QMP error or a lost connection; the code given to free */
        const char *message; /* for errors: "QEMU: <class>: <desc>" or why the command went unanswered */
        json_object *result; /* the "return" value, borrowed; NULL on error */
} qmp_reply;

/* The reply of QMP's answer msg (an object with "return" or "error"):
 * the result borrowed from msg, or -EIO and "QEMU: <class>: <desc>" in
 * buf. */
void qmp_reply_from_message(json_object *msg, char *buf, size_t size, qmp_reply *ret);

typedef void (*qmp_monitor_reply_fn)(const qmp_reply *reply, void *userdata);

typedef struct qmp_monitor {
        int (*execute)(void *data, const char *command, json_object *arguments, qmp_monitor_reply_fn fn,
                       void *userdata);
        void *data;
} qmp_monitor;

static inline int qmp_monitor_execute(const qmp_monitor *m, const char *command, json_object *arguments,
                                      qmp_monitor_reply_fn fn, void *userdata) {
        return m->execute(m->data, command, arguments, fn, userdata);
}
