/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Audit records: one per authorization decision and one per destructive
 * operation. They go to the journal as structured VMSIG_* fields, or to
 * stderr as one "vmsig-audit: key=value ..." line whose keys and order are
 * stable, for log scrapers and tests.
 *
 * Refusals (every result but "granted" and "ok") cannot be used to flood
 * the journal: of one kind (the same uid, pid, sender, action, endpoint,
 * result and reason) the first BUS_AUDIT_BURST are written in full, the
 * rest are counted, and while any are held back a count record follows
 * every second ("suppressed=N total=M": N since the last one, M since the
 * burst began). So the last count record of a burst names all of it. A
 * kind refused nowhere for a second starts afresh. The count records are
 * written by a timer on the thread's default sd-event loop (vmsigd's);
 * without one, every record is written in full. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum bus_audit_target {
        BUS_AUDIT_AUTO,    /* the journal if its socket exists, else stderr */
        BUS_AUDIT_JOURNAL,
        BUS_AUDIT_STDERR,
        _BUS_AUDIT_TARGET_MAX,
} bus_audit_target;

typedef struct bus_audit_record {
        uid_t uid;
        pid_t pid;          /* 0 when unknown */
        const char *sender; /* unique bus name; "p2p" on the private socket */
        const char *action; /* polkit action id, or the operation */
        const char *endpoint; /* NULL for daemon-wide actions */
        const char *result; /* "granted", "denied", "ok", "failed", ... */
        const char *reason; /* a token: "root", "polkit", "allow-list", ... */
        bool has_range;     /* MEMWRITE: where and how much, never the data */
        uint64_t address;   /* the first write's */
        uint64_t length;    /* of all writes */
        uint64_t count;     /* how many writes of a batch; 0 for anything else */
} bus_audit_record;

#define BUS_AUDIT_BURST 10

bus_audit_target bus_audit_target_from_string(const char *s);
void bus_audit_set_target(bus_audit_target t);
void bus_audit_log(const bus_audit_record *r);
