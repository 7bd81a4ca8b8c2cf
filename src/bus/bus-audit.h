/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Audit records: one per authorization decision and one per destructive
 * operation. They go to the journal as structured VMSIG_* fields, or to
 * stderr as one "vmsig-audit: key=value ..." line whose keys and order are
 * stable, for log scrapers and tests. */

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
        uint64_t address;
        uint64_t length;
} bus_audit_record;

bus_audit_target bus_audit_target_from_string(const char *s);
void bus_audit_set_target(bus_audit_target t);
void bus_audit_log(const bus_audit_record *r);
