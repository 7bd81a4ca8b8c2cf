/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who is calling: the credentials of each bus peer, fetched once with an
 * asynchronous GetConnectionCredentials and kept until the peer leaves the
 * bus, together with what it was already granted for its lifetime. Asking
 * the bus driver synchronously on every call would block the loop and
 * double the cost of a call. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "vmsig-endpoint.h"

typedef struct bus_peer {
        char *name;   /* unique bus name; "p2p" on the private socket */
        uid_t uid;
        pid_t pid;    /* 0 when the bus did not say */
        gid_t *gids;  /* primary and supplementary, when known */
        size_t n_gids;
        /* Grants kept for one endpoint (a vmsig_id, 0 when unused), oldest
         * first: polkit rules may tell endpoints apart, so a grant on one
         * is none on another. */
        struct {
                uint64_t endpoint;
                uint64_t caps;
        } granted_on[8];
} bus_peer;

typedef struct bus_peers bus_peers;

/* The command (comm) of process pid, in buf, as ps shows it; NULL when
 * unknown (pid 0, or the process is gone already). */
const char *bus_peer_command(pid_t pid, char buf[static VMSIG_COMMAND_MAX]);

/* Records of peers that left are freed from event, once it is idle. */
int bus_peers_new(sd_event *event, sd_bus *bus, bus_peers **ret);
bus_peers *bus_peers_free(bus_peers *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(bus_peers *, bus_peers_free);

/* 1 and *ret when the sender's credentials are known. 0 when they are being
 * fetched: return 1 from the handler, the message is dispatched again once
 * they arrive. 0 too when the sender has left the bus: the handler returns
 * 1 and that is the end of the call, which nobody is waiting for. <0 with
 * error set when they cannot be had. On a peer-to-peer connection the
 * credentials come from the socket. */
int bus_peers_get(bus_peers *p, sd_bus_message *m, bus_peer **ret, sd_bus_error *error);

/* Called with the unique name of every peer that leaves the bus. One match
 * serves everyone: sd_bus_track would add a match rule and a synchronous
 * GetNameOwner call per tracked name. */
typedef void (*bus_peer_gone_fn)(const char *name, void *userdata);
int bus_peers_add_gone_hook(bus_peers *p, bus_peer_gone_fn fn, void *userdata);
void bus_peers_remove_gone_hook(bus_peers *p, bus_peer_gone_fn fn, void *userdata);
