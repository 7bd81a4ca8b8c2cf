/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

#include "bus-audit.h"

/* Catalog id of vmsig audit records, for journalctl MESSAGE_ID= filters. */
#define VMSIG_AUDIT_MESSAGE_ID "8d6b1c0f4a2e4b7c9e35a1d2f0c4b6e8"

static bus_audit_target audit_target = BUS_AUDIT_AUTO;
/* Looked up once per target setting: journald does not come and go under
 * a running service. */
static int journal_present = -1;

bus_audit_target bus_audit_target_from_string(const char *s) {
        static const char *const names[_BUS_AUDIT_TARGET_MAX] = {
                [BUS_AUDIT_AUTO] = "auto",
                [BUS_AUDIT_JOURNAL] = "journal",
                [BUS_AUDIT_STDERR] = "stderr",
        };

        for (int i = 0; i < _BUS_AUDIT_TARGET_MAX; i++)
                if (s && strcmp(s, names[i]) == 0)
                        return (bus_audit_target) i;
        return _BUS_AUDIT_TARGET_MAX;
}

void bus_audit_set_target(bus_audit_target t) {
        audit_target = t;
        journal_present = -1;
}

static bool use_journal(void) {
        if (audit_target != BUS_AUDIT_AUTO)
                return audit_target == BUS_AUDIT_JOURNAL;
        if (journal_present < 0)
                journal_present = access("/run/systemd/journal/socket", F_OK) == 0;
        return journal_present;
}

static const char *or_dash(const char *s) {
        return s && *s ? s : "-";
}

static void log_journal(const bus_audit_record *r) {
        char range[64] = "";

        if (r->has_range)
                snprintf(range, sizeof range, " at 0x%" PRIx64 "+%" PRIu64, r->address, r->length);
        (void) sd_journal_send("MESSAGE=%s %s%s for uid %u on %s: %s (%s)", r->action, or_dash(r->endpoint), range,
                               (unsigned) r->uid, or_dash(r->sender), r->result, or_dash(r->reason),
                               "MESSAGE_ID=" VMSIG_AUDIT_MESSAGE_ID, "PRIORITY=%i", LOG_NOTICE,
                               "SYSLOG_IDENTIFIER=vmsigd", "VMSIG_UID=%u", (unsigned) r->uid,
                               "VMSIG_PID=%d", (int) r->pid, "VMSIG_SENDER=%s", or_dash(r->sender),
                               "VMSIG_ACTION=%s", r->action, "VMSIG_ENDPOINT=%s", or_dash(r->endpoint),
                               "VMSIG_RESULT=%s", r->result, "VMSIG_REASON=%s", or_dash(r->reason),
                               r->has_range ? "VMSIG_ADDRESS=0x%" PRIx64 : NULL, r->address,
                               "VMSIG_LENGTH=%" PRIu64, r->length, NULL);
}

/* One line, one write, so records from one process never interleave. */
static void log_stderr(const bus_audit_record *r) {
        char line[512], range[64] = "";

        if (r->has_range)
                snprintf(range, sizeof range, " address=0x%" PRIx64 " length=%" PRIu64, r->address, r->length);
        snprintf(line, sizeof line, "vmsig-audit: uid=%u pid=%d sender=%s action=%s endpoint=%s result=%s reason=%s%s\n",
                 (unsigned) r->uid, (int) r->pid, or_dash(r->sender), r->action, or_dash(r->endpoint), r->result,
                 or_dash(r->reason), range);
        (void) !write(STDERR_FILENO, line, strlen(line));
}

void bus_audit_log(const bus_audit_record *r) {
        if (use_journal())
                log_journal(r);
        else
                log_stderr(r);
}
