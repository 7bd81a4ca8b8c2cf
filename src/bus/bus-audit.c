/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/uio.h>
#include <systemd/sd-event.h>
#include <systemd/sd-journal.h>

#include "bus-audit.h"
#include "hashmap.h"
#include "macro.h"

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

/* held_back > 0: a count record, for refusals of r's kind that were not
 * written. */
typedef struct audit_counts {
        uint64_t held_back;
        uint64_t total;
} audit_counts;

#define JOURNAL_FIELDS_MAX 16
#define JOURNAL_FIELD_SIZE 512

typedef struct journal_fields {
        struct iovec iov[JOURNAL_FIELDS_MAX];
        char text[JOURNAL_FIELDS_MAX][JOURNAL_FIELD_SIZE];
        size_t n;
} journal_fields;

static _printf_(2, 3) void field_add(journal_fields *j, const char *fmt, ...) {
        va_list ap;

        assert(j->n < JOURNAL_FIELDS_MAX);
        va_start(ap, fmt);
        (void) vsnprintf(j->text[j->n], JOURNAL_FIELD_SIZE, fmt, ap);
        va_end(ap);
        j->iov[j->n] = (struct iovec) { j->text[j->n], strlen(j->text[j->n]) };
        j->n++;
}

static void log_journal(const bus_audit_record *r, const audit_counts *c) {
        journal_fields j = {};
        char range[96] = "", counted[96] = "";

        if (r->has_range)
                snprintf(range, sizeof range, " at 0x%" PRIx64 "+%" PRIu64 "%s", r->address, r->length,
                         r->count > 0 ? " in a batch" : "");
        if (c)
                snprintf(counted, sizeof counted, ", %" PRIu64 " more like it (%" PRIu64 " in all)", c->held_back,
                         c->total);
        field_add(&j, "MESSAGE=%s %s%s for uid %u on %s: %s (%s)%s", r->action, or_dash(r->endpoint), range,
                  (unsigned) r->uid, or_dash(r->sender), r->result, or_dash(r->reason), counted);
        field_add(&j, "MESSAGE_ID=" VMSIG_AUDIT_MESSAGE_ID);
        field_add(&j, "PRIORITY=%i", LOG_NOTICE);
        field_add(&j, "SYSLOG_IDENTIFIER=vmsigd");
        field_add(&j, "VMSIG_UID=%u", (unsigned) r->uid);
        field_add(&j, "VMSIG_PID=%d", (int) r->pid);
        field_add(&j, "VMSIG_SENDER=%s", or_dash(r->sender));
        field_add(&j, "VMSIG_ACTION=%s", r->action);
        field_add(&j, "VMSIG_ENDPOINT=%s", or_dash(r->endpoint));
        field_add(&j, "VMSIG_RESULT=%s", r->result);
        field_add(&j, "VMSIG_REASON=%s", or_dash(r->reason));
        if (r->has_range) {
                field_add(&j, "VMSIG_ADDRESS=0x%" PRIx64, r->address);
                field_add(&j, "VMSIG_LENGTH=%" PRIu64, r->length);
        }
        if (r->count > 0)
                field_add(&j, "VMSIG_COUNT=%" PRIu64, r->count);
        if (c) {
                field_add(&j, "VMSIG_SUPPRESSED=%" PRIu64, c->held_back);
                field_add(&j, "VMSIG_TOTAL=%" PRIu64, c->total);
        }
        (void) sd_journal_sendv(j.iov, (int) j.n);
}

/* One line, one write, so records from one process never interleave. */
static void log_stderr(const bus_audit_record *r, const audit_counts *c) {
        char line[1024], range[96] = "", counted[64] = "";
        int n;

        if (r->has_range)
                snprintf(range, sizeof range, " address=0x%" PRIx64 " length=%" PRIu64, r->address, r->length);
        if (r->has_range && r->count > 0)
                snprintf(range + strlen(range), sizeof range - strlen(range), " count=%" PRIu64, r->count);
        if (c)
                snprintf(counted, sizeof counted, " suppressed=%" PRIu64 " total=%" PRIu64, c->held_back, c->total);
        n = snprintf(line, sizeof line,
                     "vmsig-audit: uid=%u pid=%d sender=%s action=%s endpoint=%s result=%s reason=%s%s%s\n",
                     (unsigned) r->uid, (int) r->pid, or_dash(r->sender), r->action, or_dash(r->endpoint), r->result,
                     or_dash(r->reason), range, counted);
        /* A record cut short still ends its line. */
        if (n < 0)
                return;
        if ((size_t) n >= sizeof line) {
                n = sizeof line - 1;
                line[n - 1] = '\n';
        }
        (void) !write(STDERR_FILENO, line, (size_t) n);
}

static void write_record(const bus_audit_record *r, const audit_counts *c) {
        if (use_journal())
                log_journal(r, c);
        else
                log_stderr(r, c);
}

/* Rate limiting of refusals, see bus-audit.h. */

#define AUDIT_TICK_USEC UINT64_C(1000000)
#define AUDIT_TICK_ACCURACY_USEC UINT64_C(50000)
/* Kinds followed at a time: peers on one uid are bounded by the bus
 * (dbus-daemon's connections per user), so this is far more than honest
 * use needs. Past it, other kinds' refusals are counted together. */
#define AUDIT_BURSTS_MAX 1024
#define AUDIT_KEY_MAX 512

typedef struct audit_burst audit_burst;
struct audit_burst {
        char key[AUDIT_KEY_MAX]; /* uid, pid and the record's strings, '\n'-separated: the map key */
        char strings[AUDIT_KEY_MAX]; /* the same, NUL-separated: the record's strings */
        bus_audit_record record;
        unsigned written;  /* in full, in this burst */
        uint64_t held_back; /* since the last count record */
        uint64_t total;     /* in this burst */
        bool refused_since_tick;
        audit_burst *next;
};

static Hashmap *bursts;        /* key -> audit_burst */
static audit_burst *burst_list; /* the same, for the tick */
/* Floating on the default loop, which owns and frees it; NULL without
 * one. */
static sd_event_source *tick;

static bool is_refusal(const bus_audit_record *r) {
        return strcmp(r->result, "granted") != 0 && strcmp(r->result, "ok") != 0;
}

/* key and the record: its strings point into strings. */
static void burst_fill(audit_burst *b, const bus_audit_record *r, const char *key) {
        const char **fields[] = { &b->record.sender, &b->record.action, &b->record.endpoint, &b->record.result,
                                  &b->record.reason };
        char *p;

        snprintf(b->key, sizeof b->key, "%s", key);
        memcpy(b->strings, b->key, sizeof b->strings);
        b->record = (bus_audit_record) { .uid = r->uid, .pid = r->pid };
        /* A key cut short leaves the last ones empty. */
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                *fields[i] = "";
        /* Past uid and pid. */
        p = strchr(strchr(b->strings, '\n') + 1, '\n') + 1;
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                char *end = strchr(p, '\n');

                *fields[i] = p;
                if (!end)
                        break;
                *end = '\0';
                p = end + 1;
        }
}

static void bursts_free(void) {
        while (burst_list) {
                audit_burst *b = burst_list;

                burst_list = b->next;
                free(b);
        }
        bursts = hashmap_free(bursts);
}

/* Writes a count record for every kind that held refusals back since the
 * last tick, and forgets the kinds that were quiet since then: their
 * burst is over. At the end, forgets them all. */
static void bursts_tick(bool end) {
        for (audit_burst **p = &burst_list; *p;) {
                audit_burst *b = *p;

                if (b->held_back > 0) {
                        write_record(&b->record, &(audit_counts) { b->held_back, b->total });
                        b->held_back = 0;
                } else if (!b->refused_since_tick && !end) {
                        *p = b->next;
                        hashmap_remove(bursts, b->key);
                        free(b);
                        continue;
                }
                b->refused_since_tick = false;
                p = &b->next;
        }
        if (end)
                bursts_free();
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        bursts_tick(false);
        if (!burst_list)
                return 0;
        if (sd_event_source_set_time_relative(s, AUDIT_TICK_USEC) < 0 ||
            sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) < 0) {
                /* Nothing would write the count records later: now. */
                bursts_tick(true);
        }
        return 0;
}

/* The loop goes (vmsigd exits): what was held back is counted now. */
static void on_tick_destroyed(void *userdata) {
        tick = NULL;
        bursts_tick(true);
}

/* A tick is due while any burst is followed. Only on a loop that runs
 * anyway: one made here would never write the count records. */
static bool tick_arm(void) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;

        if (tick)
                return sd_event_source_get_enabled(tick, NULL) > 0 ||
                       (sd_event_source_set_time_relative(tick, AUDIT_TICK_USEC) >= 0 &&
                        sd_event_source_set_enabled(tick, SD_EVENT_ONESHOT) >= 0);
        if (sd_event_default(NULL) <= 0 || sd_event_default(&e) < 0)
                return false;
        if (sd_event_add_time_relative(e, &tick, CLOCK_MONOTONIC, AUDIT_TICK_USEC, AUDIT_TICK_ACCURACY_USEC, on_tick,
                                       NULL) < 0)
                return false;
        if (sd_event_source_set_floating(tick, true) < 0) {
                tick = sd_event_source_disable_unref(tick);
                return false;
        }
        (void) sd_event_source_set_destroy_callback(tick, on_tick_destroyed);
        (void) sd_event_source_set_description(tick, "audit-tick");
        /* The loop's reference keeps it; ours is not needed. */
        sd_event_source_unref(tick);
        return true;
}

/* The burst r belongs to, made if need be; NULL when refusals cannot be
 * held back (no loop, no memory): then r is written in full. */
static audit_burst *burst_get(const bus_audit_record *r) {
        static const bus_audit_record others = {
                .uid = (uid_t) -1, .sender = "*", .action = "*", .endpoint = "*", .result = "refused", .reason = "*",
        };
        char key[AUDIT_KEY_MAX];
        audit_burst *b;

        if (hashmap_size(bursts) >= AUDIT_BURSTS_MAX)
                r = &others;
        /* A key cut short only merges kinds, never loses a refusal. */
        snprintf(key, sizeof key, "%u\n%d\n%s\n%s\n%s\n%s\n%s", (unsigned) r->uid, (int) r->pid, r->sender ?: "",
                 r->action, r->endpoint ?: "", r->result, r->reason ?: "");
        b = bursts ? hashmap_get(bursts, key) : NULL;
        if (b)
                return b;
        if (!tick_arm())
                return NULL;
        if (!bursts)
                bursts = hashmap_new();
        b = bursts ? calloc(1, sizeof *b) : NULL;
        if (!b)
                return NULL;
        burst_fill(b, r, key);
        if (hashmap_put(bursts, b->key, b) < 0) {
                return mfree(b);
        }
        b->next = burst_list;
        burst_list = b;
        return b;
}

void bus_audit_log(const bus_audit_record *r) {
        audit_burst *b;

        assert(r);
        assert(r->action);
        assert(r->result);

        b = is_refusal(r) ? burst_get(r) : NULL;
        if (b) {
                b->total++;
                b->refused_since_tick = true;
                if (b->written >= BUS_AUDIT_BURST) {
                        b->held_back++;
                        return;
                }
                b->written++;
        }
        write_record(r, NULL);
}
