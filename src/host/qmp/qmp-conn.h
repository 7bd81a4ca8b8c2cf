/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One QMP client connection, run on the core's loop: a non-blocking unix
 * socket registered with the endpoint, the greeting and capabilities
 * negotiation, commands tagged with ids and matched with their replies,
 * asynchronous events, and reconnecting with backoff when the socket goes
 * away. Nothing here blocks, and no callback is ever made from inside a
 * call into this module: they all come from the loop.
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#include "qmp-monitor.h"
#include "vmsig-endpoint.h"

typedef struct qmp_conn qmp_conn;

typedef enum qmp_conn_event {
        QMP_CONN_READY,  /* negotiated: commands may be sent */
        QMP_CONN_LOST,   /* an established connection closed */
        QMP_CONN_ABSENT, /* nothing listens at the path (ENOENT, ECONNREFUSED) */
} qmp_conn_event;

typedef void (*qmp_reply_fn)(qmp_conn *c, const qmp_reply *reply, void *userdata);

typedef struct qmp_conn_callbacks {
        void (*state)(qmp_conn *c, qmp_conn_event event, void *userdata);
        /* data may be NULL */
        void (*event)(qmp_conn *c, const char *name, json_object *data, void *userdata);
} qmp_conn_callbacks;

#define QMP_RECONNECT_INITIAL_USEC (100 * UINT64_C(1000))
#define QMP_RECONNECT_MAX_USEC (5 * UINT64_C(1000000))

/* Starts connecting to path from the loop, at once. */
int qmp_conn_new(vmsig_endpoint *ep, const char *path, const qmp_conn_callbacks *callbacks, void *userdata,
                 qmp_conn **ret);
/* Closes the connection and completes every command still waiting for its
 * reply with error and message. Allowed from inside any callback. */
qmp_conn *qmp_conn_free(qmp_conn *c, int error, const char *message);

bool qmp_conn_is_ready(const qmp_conn *c);
/* The pid of the QEMU we are connected to, from SO_PEERCRED; 0 if unknown. */
pid_t qmp_conn_peer_pid(const qmp_conn *c);

/* Sends a command; fn gets its reply later. Takes ownership of arguments
 * (may be NULL). -ENOTCONN unless ready. */
int qmp_conn_execute(qmp_conn *c, const char *command, json_object *arguments, qmp_reply_fn fn, void *userdata);
/* The same, and a duplicate of fd goes to QEMU (SCM_RIGHTS) with the first
 * byte of the command, for a command that takes one (add-fd, getfd): QEMU
 * keeps the last descriptor received until such a command uses it. fd
 * stays the caller's. */
int qmp_conn_execute_with_fd(qmp_conn *c, const char *command, json_object *arguments, int fd, qmp_reply_fn fn,
                             void *userdata);

/* The connection as a monitor (qmp-monitor.h), for the queries every
 * QEMU-speaking backend shares; valid while c is. */
qmp_monitor qmp_conn_monitor(qmp_conn *c);
