/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bus-polkit.h"
#include "list.h"
#include "log.h"
#include "macro.h"

#define POLKIT_NAME "org.freedesktop.PolicyKit1"
#define POLKIT_PATH "/org/freedesktop/PolicyKit1/Authority"
#define POLKIT_INTERFACE "org.freedesktop.PolicyKit1.Authority"
#define POLKIT_CHECK_ALLOW_USER_INTERACTION 1u
#define POLKIT_INTERACTIVE_TIMEOUT_USEC (5ULL * 60 * 1000000)

/* One outstanding or answered question "may the sender of request do
 * action?". It lives from the first handler run until the re-run consumed
 * the answer, or until an idle pass notices nobody did (the object went
 * away in between). */
typedef struct polkit_query {
        bus_polkit *owner;
        struct polkit_query *prev, *next;
        sd_bus_message *request;
        char *action;
        uid_t uid;
        sd_bus_slot *slot;         /* the CheckAuthorization call in flight */
        sd_event_source *reaper;   /* frees an unconsumed answer */
        bool answered;
        bus_polkit_verdict verdict;
        sd_bus_error error;
} polkit_query;

struct bus_polkit {
        sd_event *event;
        sd_bus *bus;
        polkit_query *queries;
        bus_polkit_query_end_t end;
        void *end_userdata;
};

int bus_polkit_new(sd_event *event, sd_bus *system_bus, bus_polkit **ret) {
        bus_polkit *p = calloc(1, sizeof *p);

        if (!p)
                return -ENOMEM;
        p->event = sd_event_ref(event);
        p->bus = sd_bus_ref(system_bus);
        *ret = p;
        return 0;
}

void bus_polkit_set_query_end(bus_polkit *p, bus_polkit_query_end_t end, void *userdata) {
        assert(p);

        p->end = end;
        p->end_userdata = userdata;
}

/* Gives back the quota unit a query of uid held. */
static void query_ended(bus_polkit *p, uid_t uid) {
        if (p->end)
                p->end(uid, p->end_userdata);
}

static void query_free(polkit_query *q) {
        bus_polkit *p = q->owner;

        LIST_REMOVE(p->queries, q);
        query_ended(p, q->uid);
        sd_bus_slot_unref(q->slot);
        sd_event_source_disable_unref(q->reaper);
        sd_bus_message_unref(q->request);
        sd_bus_error_free(&q->error);
        free(q->action);
        free(q);
}

bus_polkit *bus_polkit_free(bus_polkit *p) {
        if (!p)
                return NULL;
        while (p->queries)
                query_free(p->queries);
        sd_bus_unref(p->bus);
        sd_event_unref(p->event);
        return mfree(p);
}

static polkit_query *query_find(bus_polkit *p, sd_bus_message *m, const char *action) {
        for (polkit_query *q = p->queries; q; q = q->next)
                if (q->request == m && strcmp(q->action, action) == 0)
                        return q;
        return NULL;
}

bool bus_polkit_has_query(bus_polkit *p, sd_bus_message *m, const char *action) {
        return query_find(p, m, action) != NULL;
}

static bool polkit_is_absent(const sd_bus_error *e) {
        return sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                      SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_DISCONNECTED);
}

/* A verdict other than granted, with the error the caller gets. */
_printf_(4, 5) static void deny(polkit_query *q, bus_polkit_verdict verdict, const char *name, const char *fmt, ...) {
        va_list ap;

        q->verdict = verdict;
        va_start(ap, fmt);
        sd_bus_error_setfv(&q->error, name, fmt, ap);
        va_end(ap);
}

static void answer_from_error(polkit_query *q, const sd_bus_error *e) {
        if (polkit_is_absent(e))
                deny(q, BUS_POLKIT_UNAVAILABLE, SD_BUS_ERROR_ACCESS_DENIED,
                     "Access denied: polkit is not available to authorize %s.", q->action);
        else
                deny(q, BUS_POLKIT_DENIED, SD_BUS_ERROR_ACCESS_DENIED, "Access denied: polkit failed on %s: %s",
                     q->action, e->message ?: e->name);
}

static int answer_from_reply(polkit_query *q, sd_bus_message *reply) {
        int authorized, challenge, r;

        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r < 0)
                return r;
        if (authorized)
                q->verdict = BUS_POLKIT_GRANTED;
        else if (challenge && !sd_bus_message_get_allow_interactive_authorization(q->request))
                deny(q, BUS_POLKIT_DENIED, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                     "Interactive authentication is required for %s.", q->action);
        /* Still a challenge although the caller let polkit ask: polkit found
         * no authentication agent for it (none runs, or the caller has no
         * login session and no agent of its own), so nobody was asked. */
        else if (challenge)
                deny(q, BUS_POLKIT_DENIED, SD_BUS_ERROR_ACCESS_DENIED,
                     "Access denied: %s needs authentication, and no polkit agent was there to ask for it "
                     "(run the command on a terminal, where vmsigctl starts one, or start pkttyagent).",
                     q->action);
        else
                deny(q, BUS_POLKIT_DENIED, SD_BUS_ERROR_ACCESS_DENIED, "Access denied: %s is not authorized.",
                     q->action);
        return 0;
}

static int on_reaper(sd_event_source *s, void *userdata) {
        query_free(userdata);
        return 0;
}

static int on_check_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        polkit_query *q = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        q->slot = sd_bus_slot_unref(q->slot);
        q->answered = true;
        if (e)
                answer_from_error(q, e);
        else if (answer_from_reply(q, reply) < 0)
                answer_from_error(q, &SD_BUS_ERROR_MAKE_CONST(SD_BUS_ERROR_INVALID_ARGS, "malformed polkit reply"));

        /* Dispatch the request again; the handler picks up the answer. The
         * reaper runs at idle priority, after the bus has been processed. */
        r = sd_bus_enqueue_for_read(sd_bus_message_get_bus(q->request), q->request);
        if (r >= 0)
                r = sd_event_add_defer(q->owner->event, &q->reaper, on_reaper, q);
        if (r >= 0)
                r = sd_event_source_set_priority(q->reaper, SD_EVENT_PRIORITY_IDLE);
        if (r < 0) {
                log_error_errno(r, "Cannot resume the call waiting for polkit: %m");
                (void) sd_bus_reply_method_errorf(q->request, SD_BUS_ERROR_NO_MEMORY, "Cannot resume the call.");
                query_free(q);
        }
        return 0;
}

static int append_details(sd_bus_message *m, const char *const *details) {
        int r = sd_bus_message_open_container(m, 'a', "{ss}");

        for (size_t i = 0; r >= 0 && details && details[i] && details[i + 1]; i += 2)
                r = sd_bus_message_append(m, "{ss}", details[i], details[i + 1]);
        return r < 0 ? r : sd_bus_message_close_container(m);
}

static int send_check(bus_polkit *p, polkit_query *q, const char *const *details) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        const char *sender = sd_bus_message_get_sender(q->request);
        unsigned flags = sd_bus_message_get_allow_interactive_authorization(q->request) > 0
                                 ? POLKIT_CHECK_ALLOW_USER_INTERACTION
                                 : 0;
        int r;

        if (!sender)
                return -EPERM;
        r = sd_bus_message_new_method_call(p->bus, &call, POLKIT_NAME, POLKIT_PATH, POLKIT_INTERFACE,
                                           "CheckAuthorization");
        if (r >= 0)
                r = sd_bus_message_append(call, "(sa{sv})s", "system-bus-name", 1, "name", "s", sender, q->action);
        if (r >= 0)
                r = append_details(call, details);
        if (r >= 0)
                r = sd_bus_message_append(call, "us", flags, "");
        if (r >= 0)
                /* An interactive check waits for a human to type a password. */
                r = sd_bus_call_async(p->bus, &q->slot, call, on_check_reply, q,
                                      flags ? POLKIT_INTERACTIVE_TIMEOUT_USEC : 0);
        return r;
}

static bus_polkit_verdict consume(polkit_query *q, sd_bus_error *error) {
        bus_polkit_verdict v = q->verdict;

        if (v != BUS_POLKIT_GRANTED)
                sd_bus_error_copy(error, &q->error);
        query_free(q);
        return v;
}

bus_polkit_verdict bus_polkit_verify(bus_polkit *p, sd_bus_message *m, uid_t uid, const char *action,
                                     const char *const *details, sd_bus_error *error) {
        polkit_query *q = query_find(p, m, action);
        int r;

        if (q)
                return q->answered ? consume(q, error) : BUS_POLKIT_PENDING;

        q = calloc(1, sizeof *q);
        if (!q || !(q->action = strdup(action))) {
                free(q);
                /* The unit taken for it is ours to give back all the same. */
                query_ended(p, uid);
                sd_bus_error_set_errno(error, -ENOMEM);
                return BUS_POLKIT_DENIED;
        }
        q->owner = p;
        q->uid = uid;
        q->request = sd_bus_message_ref(m);
        LIST_PREPEND(p->queries, q);

        r = send_check(p, q, details);
        if (r < 0) {
                sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                  "Access denied: cannot ask polkit about %s: %s", action, strerror(-r));
                query_free(q);
                return BUS_POLKIT_UNAVAILABLE;
        }
        return BUS_POLKIT_PENDING;
}

void bus_polkit_sender_gone(bus_polkit *p, const char *sender) {
        assert(p);
        assert(sender);

        for (polkit_query *q = p->queries, *next; q; q = next) {
                const char *s = sd_bus_message_get_sender(q->request);

                next = q->next;
                if (!s || strcmp(s, sender) != 0)
                        continue;
                /* Its answer would run the call again for nobody, after the
                 * peer's records were ended: drop the check, the call and
                 * the quota unit now. An answer already in only has its
                 * message queued; that finds the peer gone. */
                if (q->answered)
                        log_debug("%s left the bus before its call ran with polkit's answer on %s: dropping it.",
                                  sender, q->action);
                else
                        log_debug("%s left the bus while polkit was asked about %s: dropping its call.", sender,
                                  q->action);
                query_free(q);
        }
}
