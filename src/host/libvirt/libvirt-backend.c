/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>

#include "libvirt-event.h"
#include "libvirt-internal.h"
#include "log.h"
#include "macro.h"
#include "string-table.h"

static const char *const vmsig_libvirt_domains_table[_VMSIG_LIBVIRT_DOMAINS_MAX] = {
        [VMSIG_LIBVIRT_DOMAINS_ALL] = "all",
        [VMSIG_LIBVIRT_DOMAINS_TAGGED] = "tagged",
};

DEFINE_STRING_TABLE_LOOKUP(vmsig_libvirt_domains, vmsig_libvirt_domains);

int lv_error(char *buf, size_t size) {
        virErrorPtr e = virGetLastError();
        int code = e ? e->code : VIR_ERR_INTERNAL_ERROR;

        snprintf(buf, size, "libvirt: %s", e && e->message ? e->message : "unknown error");
        switch (code) {
        case VIR_ERR_NO_DOMAIN:
                return -EBADFD;
        case VIR_ERR_NO_SUPPORT:
        case VIR_ERR_ARGUMENT_UNSUPPORTED:
        case VIR_ERR_OPERATION_UNSUPPORTED:
                return -EOPNOTSUPP;
        default:
                return -EIO;
        }
}

/* libvirt prints every error to stderr unless told otherwise; ours are
 * read where they happen (lv_error()) and said once, in our words. */
static void on_libvirt_error(void *userdata, virErrorPtr error) {
}

static vmsig_state state_from_libvirt(int state) {
        switch (state) {
        case VIR_DOMAIN_RUNNING:
                return VMSIG_STATE_RUNNING;
        case VIR_DOMAIN_BLOCKED: /* its vCPUs wait for something, but run */
                return VMSIG_STATE_RUNNING;
        case VIR_DOMAIN_PAUSED:
        case VIR_DOMAIN_PMSUSPENDED:
                return VMSIG_STATE_PAUSED;
        case VIR_DOMAIN_SHUTOFF:
        case VIR_DOMAIN_CRASHED:
                return VMSIG_STATE_SHUT_OFF;
        default: /* NOSTATE, SHUTDOWN (on its way down, still running) */
                return VMSIG_STATE_RUNNING;
        }
}

/* On the worker: the user dom's QEMU runs as, from its live XML (and the
 * connection's capabilities for the default); xml NULL: libvirt gave
 * none, and no_xml says why. */
static void found_uid(vmsig_libvirt *lv, const char *xml, const char *no_xml, lv_found *f) {
        int r;

        f->qemu_uid = (uid_t) -1;
        if (!xml) {
                snprintf(f->uid_problem, sizeof f->uid_problem, "%s", no_xml);
                return;
        }
        r = libvirt_seclabel_qemu_uid(xml, lv->caps, &f->qemu_uid, f->uid_problem, sizeof f->uid_problem);
        if (r >= 0)
                f->uid_problem[0] = '\0';
        else
                f->qemu_uid = (uid_t) -1;
}

/* On the worker: what the connection needs to know of dom. Its live XML
 * (flags 0: it names the machine type QEMU runs and the DAC label it runs
 * under) is fetched once, for both. */
static int found_fill(vmsig_libvirt *lv, virDomainPtr dom, lv_found *f) {
        unsigned char uuid[VIR_UUID_BUFLEN];
        const char *name = virDomainGetName(dom);
        _cleanup_free_ char *xml = NULL;
        char no_xml[LV_MESSAGE_MAX] = "";
        int state, reason;
        char *tag;

        *f = (lv_found) { .ram = LIBVIRT_RAM_NONE };
        if (!name || virDomainGetUUID(dom, uuid) < 0 || virDomainGetState(dom, &state, &reason, 0) < 0)
                return -1;
        f->name_too_long = strlen(name) > VMSIG_NAME_MAX;
        snprintf(f->name, sizeof f->name, "%s", name);
        memcpy(f->uuid.bytes, uuid, sizeof uuid);
        f->state = state_from_libvirt(state);
        f->starting = state == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_STARTING_UP;
        if (lv->which == VMSIG_LIBVIRT_DOMAINS_TAGGED) {
                tag = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, VMSIG_LIBVIRT_NS, VIR_DOMAIN_AFFECT_LIVE);
                f->tagged = tag != NULL;
                free(tag);
        }
        xml = virDomainGetXMLDesc(dom, 0);
        if (!xml)
                (void) lv_error(no_xml, sizeof no_xml);
        found_uid(lv, xml, no_xml, f);
        if (!f->starting && f->state != VMSIG_STATE_SHUT_OFF &&
            (lv->which != VMSIG_LIBVIRT_DOMAINS_TAGGED || f->tagged))
                lv_memctx_find(f, xml, no_xml);
        return 0;
}

/* Whether f becomes an endpoint. */
static bool wanted(vmsig_libvirt *lv, const lv_found *f) {
        if (f->state == VMSIG_STATE_SHUT_OFF)
                return false;
        /* Listed between its QEMU's start and libvirt's STARTED: that QEMU
         * may not have mapped its RAM yet, which would make an endpoint
         * without memctx for good. STARTED attaches it. */
        if (f->starting) {
                log_debug("libvirt domain '%s' is starting: attached when libvirt says it started.", f->name);
                return false;
        }
        if (lv->which == VMSIG_LIBVIRT_DOMAINS_TAGGED && !f->tagged) {
                log_debug("libvirt domain '%s' carries no <vmsig:vm/> metadata: not attached.", f->name);
                return false;
        }
        return true;
}

/* The caller closes what f still holds. */
static void attach_found(vmsig_libvirt *lv, lv_found *f) {
        lv_domain *d = lv_domain_find(lv, f->uuid.bytes);

        if (d) {
                d->seen = true;
                lv_domain_observe(d, f->state);
                /* After a reconnection: is it still the same QEMU? */
                return lv_memctx_sync(d, f);
        }
        if (!wanted(lv, f))
                return;
        if (lv_domain_attach(lv, f, &d) >= 0)
                d->seen = true;
}

int lv_monitor_refusal(vmsig_libvirt *lv, const char *what, char *buf, size_t size) {
        /* lv->monitor is off: libvirt's API alone cannot. */
        snprintf(buf, size, "%s need QEMU's monitor, which <libvirt monitor=\"no\"> in vmsigd.conf turns off.",
                 what);
        return -EOPNOTSUPP;
}

/* Events: on the loop's thread, driven by libvirt-event.c. */

typedef struct probe_job {
        lv_job base;
        vmsig_libvirt *lv;
        virDomainPtr dom;
        lv_found found;
        int error;
} probe_job;

static void probe_run(lv_job *j) {
        probe_job *p = (probe_job *) j;

        p->error = found_fill(p->lv, p->dom, &p->found);
        virDomainFree(p->dom);
}

static void probe_done(lv_job *j) {
        probe_job *p = (probe_job *) j;

        if (!p->base.cancelled && p->error >= 0)
                attach_found(p->lv, &p->found);
        else if (!p->base.cancelled)
                log_debug("A libvirt domain started but is gone again.");
        lv_found_done(&p->found);
        free(p);
}

/* A started domain: its state and tag are calls (to the worker). */
static void probe(vmsig_libvirt *lv, virDomainPtr dom) {
        probe_job *p = calloc(1, sizeof *p);

        if (!p)
                return (void) log_oom();
        *p = (probe_job) { .base = { .run = probe_run, .done = probe_done }, .lv = lv, .dom = dom,
                           .found.ram = LIBVIRT_RAM_NONE };
        virDomainRef(dom);
        lv_worker_submit(lv->worker, &p->base);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        vmsig_libvirt *lv = opaque;
        unsigned char uuid[VIR_UUID_BUFLEN];
        lv_domain *d;

        if (virDomainGetUUID(dom, uuid) < 0)
                return 0;
        d = lv_domain_find(lv, uuid);
        switch (event) {
        case VIR_DOMAIN_EVENT_STARTED:
                if (!d)
                        probe(lv, dom);
                break;
        case VIR_DOMAIN_EVENT_SUSPENDED:
        case VIR_DOMAIN_EVENT_PMSUSPENDED:
                if (d)
                        lv_domain_observe(d, VMSIG_STATE_PAUSED);
                break;
        case VIR_DOMAIN_EVENT_RESUMED:
                if (d)
                        lv_domain_observe(d, VMSIG_STATE_RUNNING);
                break;
        case VIR_DOMAIN_EVENT_STOPPED:
                if (d) {
                        log_debug("libvirt domain %s stopped (detail %d).", virDomainGetName(dom), detail);
                        lv_domain_stopped(d, detail == VIR_DOMAIN_EVENT_STOPPED_DESTROYED);
                        lv_domain_detach(d, "it stopped");
                }
                break;
        default: /* defined, undefined, shutting down, crashed (stopped follows) */
                break;
        }
        return 0;
}

static void on_reboot(virConnectPtr conn, virDomainPtr dom, void *opaque) {
        vmsig_libvirt *lv = opaque;
        unsigned char uuid[VIR_UUID_BUFLEN];
        lv_domain *d;

        if (virDomainGetUUID(dom, uuid) >= 0 && (d = lv_domain_find(lv, uuid)))
                lv_domain_reset(d);
}

/* The connection: opened, listed and closed on the worker; its news
 * (listing, loss) handled on the loop. */

typedef struct connect_job {
        lv_job base;
        vmsig_libvirt *lv;
        lv_found *found;
        size_t n_found;
        int error;
        char message[LV_MESSAGE_MAX];
} connect_job;

static void schedule_connect(vmsig_libvirt *lv);

static void on_close(virConnectPtr conn, int reason, void *opaque);

/* On the worker: the events, then the list (an event that comes between
 * the two is of a domain listed already, or of one not yet listed: both
 * end the same). */
static int subscribe(vmsig_libvirt *lv) {
        lv->callback_ids[0] = virConnectDomainEventRegisterAny(lv->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                               VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), lv, NULL);
        if (lv->callback_ids[0] < 0)
                return -1;
        lv->callback_ids[1] = virConnectDomainEventRegisterAny(lv->conn, NULL, VIR_DOMAIN_EVENT_ID_REBOOT,
                                                               VIR_DOMAIN_EVENT_CALLBACK(on_reboot), lv, NULL);
        if (lv->callback_ids[1] < 0)
                return -1;
        /* A libvirtd that hangs rather than dies is noticed too: after 3
         * unanswered keepalives 5 s apart, the connection closes. */
        if (virConnectSetKeepAlive(lv->conn, 5, 3) < 0)
                log_debug("libvirt at %s takes no keepalives.", lv->uri);
        return virConnectRegisterCloseCallback(lv->conn, on_close, lv, NULL);
}

/* On the worker, or on the loop once the worker is gone. */
static void disconnect(vmsig_libvirt *lv) {
        if (!lv->conn)
                return;
        (void) virConnectUnregisterCloseCallback(lv->conn, on_close);
        for (size_t i = 0; i < ELEMENTSOF(lv->callback_ids); i++)
                if (lv->callback_ids[i] >= 0)
                        (void) virConnectDomainEventDeregisterAny(lv->conn, lv->callback_ids[i]);
        lv->callback_ids[0] = lv->callback_ids[1] = -1;
        (void) virConnectClose(lv->conn);
        lv->conn = NULL;
        lv->caps = mfree(lv->caps);
}

static int list_domains(connect_job *c) {
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(c->lv->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);

        if (n < 0)
                return -1;
        c->found = calloc(n ?: 1, sizeof *c->found);
        for (int i = 0; i < n; i++) {
                /* One that went meanwhile is no error: it is not listed. */
                if (c->found && found_fill(c->lv, doms[i], &c->found[c->n_found]) >= 0)
                        c->n_found++;
                virDomainFree(doms[i]);
        }
        free(doms);
        if (!c->found) {
                snprintf(c->message, sizeof c->message, "out of memory");
                c->error = -ENOMEM;
        }
        return 0;
}

static void connect_run(lv_job *j) {
        connect_job *c = (connect_job *) j;
        vmsig_libvirt *lv = c->lv;

        disconnect(lv); /* what is left of a lost one */
        lv->conn = virConnectOpen(lv->uri);
        lv->conn_serial++;
        /* Without them, a domain without a DAC label of its own has no
         * known QEMU user: said when it attaches. */
        lv->caps = lv->conn ? virConnectGetCapabilities(lv->conn) : NULL;
        if (!lv->conn || subscribe(lv) < 0 || list_domains(c) < 0) {
                c->error = lv_error(c->message, sizeof c->message);
                disconnect(lv);
        }
}

static void found_done(lv_found *found, size_t n) {
        for (size_t i = 0; i < n; i++)
                lv_found_done(&found[i]);
}

/* The listing: what it lacks is gone, what is new attaches. */
static void resync(vmsig_libvirt *lv, lv_found *found, size_t n) {
        for (lv_domain *d = lv->domains; d; d = d->next)
                d->seen = false;
        for (size_t i = 0; i < n; i++)
                attach_found(lv, &found[i]);
        for (lv_domain *d = lv->domains, *next; d; d = next) {
                next = d->next;
                if (!d->seen) {
                        lv_domain_stopped(d, false);
                        lv_domain_detach(d, "it no longer runs");
                }
        }
}

static void connect_done(lv_job *j) {
        _cleanup_free_ connect_job *c = (connect_job *) j;
        _cleanup_free_ lv_found *found = c->found;
        vmsig_libvirt *lv = c->lv;

        if (c->base.cancelled)
                return found_done(found, c->n_found);
        if (c->error < 0) {
                /* Once, until it worked: libvirtd may come much later. */
                if (!lv->warned)
                        log_warning("Cannot connect to libvirt at %s (%s): retrying; its domains attach when it "
                                    "answers.", lv->uri, c->message);
                else
                        log_debug("Cannot connect to libvirt at %s (%s).", lv->uri, c->message);
                lv->warned = true;
                lv->backoff_usec = MIN(MAX(lv->backoff_usec * 2, VMSIG_LIBVIRT_BACKOFF_MIN_USEC),
                                       VMSIG_LIBVIRT_BACKOFF_MAX_USEC);
                found_done(found, c->n_found);
                return schedule_connect(lv);
        }
        lv->warned = false;
        lv->backoff_usec = 0;
        lv->connected = true;
        log_info("Connected to libvirt at %s: %zu running domain(s).", lv->uri, c->n_found);
        resync(lv, found, c->n_found);
        found_done(found, c->n_found);
}

static void connect_now(vmsig_libvirt *lv) {
        connect_job *c = calloc(1, sizeof *c);

        if (!c) {
                log_oom();
                return schedule_connect(lv);
        }
        *c = (connect_job) { .base = { .run = connect_run, .done = connect_done }, .lv = lv };
        lv_worker_submit(lv->worker, &c->base);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        connect_now(userdata);
        return 0;
}

static void schedule_connect(vmsig_libvirt *lv) {
        int r;

        r = sd_event_source_set_time_relative(lv->retry, MAX(lv->backoff_usec, VMSIG_LIBVIRT_BACKOFF_MIN_USEC));
        if (r >= 0)
                r = sd_event_source_set_enabled(lv->retry, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "Cannot schedule a reconnection to libvirt at %s: %m", lv->uri);
}

typedef struct closed_job {
        lv_job base;
        vmsig_libvirt *lv;
        int reason;
} closed_job;

static void closed_done(lv_job *j) {
        _cleanup_free_ closed_job *c = (closed_job *) j;
        vmsig_libvirt *lv = c->lv;

        if (c->base.cancelled || !lv->connected)
                return;
        lv->connected = false;
        /* The domains' QEMUs run on without libvirtd: their endpoints stay
         * (paths, uuids, leases), and the next listing settles them. */
        log_warning("Lost the connection to libvirt at %s (reason %d); reconnecting. Its domains stay attached.",
                    lv->uri, c->reason);
        schedule_connect(lv);
}

/* From whichever thread libvirt noticed the loss on: news for the loop. */
static void on_close(virConnectPtr conn, int reason, void *opaque) {
        vmsig_libvirt *lv = opaque;
        closed_job *c = calloc(1, sizeof *c);

        if (!c)
                return (void) log_oom();
        *c = (closed_job) { .base = { .done = closed_done }, .lv = lv, .reason = reason };
        lv_worker_post(lv->worker, &c->base);
}

int vmsig_libvirt_new(vmsig_core *core, const vmsig_libvirt_config *config, vmsig_libvirt **ret) {
        sd_event *e = vmsig_core_get_event(core);
        vmsig_libvirt *lv;
        int r;

        if ((unsigned) config->domains >= _VMSIG_LIBVIRT_DOMAINS_MAX)
                return -EINVAL;
        /* Before any thread calls libvirt, and before any connection. */
        if (virInitialize() < 0)
                return -EIO;
        virSetErrorFunc(NULL, on_libvirt_error);
        /* On this thread, before the worker parses domains' XML. */
        xmlInitParser();
        r = vmsig_libvirt_event_register(e);
        if (r < 0)
                return r;
        lv = calloc(1, sizeof *lv);
        if (!lv)
                return -ENOMEM;
        *lv = (vmsig_libvirt) { .core = core, .which = config->domains, .monitor = config->monitor,
                                .callback_ids = { -1, -1 } };
        lv->uri = strdup(config->uri ?: VMSIG_LIBVIRT_URI_DEFAULT);
        if (!lv->uri)
                r = -ENOMEM;
        if (r >= 0)
                r = sd_event_add_time_relative(e, &lv->retry, CLOCK_MONOTONIC, 0, 0, on_retry, lv);
        if (r >= 0) {
                (void) sd_event_source_set_enabled(lv->retry, SD_EVENT_OFF);
                r = lv_worker_new(e, &lv->worker);
        }
        if (r < 0) {
                vmsig_libvirt_free(lv);
                return r;
        }
        connect_now(lv);
        *ret = lv;
        return 0;
}

vmsig_libvirt *vmsig_libvirt_free(vmsig_libvirt *lv) {
        if (!lv)
                return NULL;
        while (lv->domains)
                lv_domain_detach(lv->domains, "its libvirt connection is closed");
        /* Jobs still queued complete cancelled; the one under way ends
         * first. */
        lv->worker = lv_worker_free(lv->worker);
        disconnect(lv);
        lv->retry = sd_event_source_disable_unref(lv->retry);
        free(lv->uri);
        return mfree(lv);
}

bool vmsig_libvirt_is_connected(vmsig_libvirt *lv) {
        return lv->connected;
}

const char *vmsig_libvirt_get_uri(vmsig_libvirt *lv) {
        return lv->uri;
}
