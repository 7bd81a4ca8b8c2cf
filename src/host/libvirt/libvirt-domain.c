/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fd-util.h"
#include "keys.h"
#include "libvirt-internal.h"
#include "log.h"
#include "macro.h"
#include "qmp-hmp.h"
#include "qmp-input.h"

/* How long virDomainSendKey holds the keys of one call, ms. */
#define KEY_HOLD_MSEC 10
/* A screenshot larger than this is refused (a 4K PPM is 24 MiB). */
#define SCREENSHOT_MAX (64U << 20)

static void domain_free(lv_domain *d) {
        /* No job holds d any more: the worker is done with d->dom. */
        if (d->dom)
                virDomainFree(d->dom);
        libvirt_ram_done(&d->found);
        host_ram_done(&d->ram);
        free(d->name);
        free(d);
}

lv_domain *lv_domain_ref(lv_domain *d) {
        d->n_ref++;
        return d;
}

lv_domain *lv_domain_unref(lv_domain *d) {
        if (d && --d->n_ref == 0)
                domain_free(d);
        return NULL;
}

static void adapter_free(void *data) {
        lv_domain_unref(data);
}

lv_domain *lv_domain_find(vmsig_libvirt *lv, const unsigned char uuid[VIR_UUID_BUFLEN]) {
        for (lv_domain *d = lv->domains; d; d = d->next)
                if (memcmp(d->uuid.bytes, uuid, VIR_UUID_BUFLEN) == 0)
                        return d;
        return NULL;
}

static void domain_unlink(lv_domain *d) {
        if (!d->owner)
                return;
        for (lv_domain **p = &d->owner->domains; *p; p = &(*p)->next)
                if (*p == d) {
                        *p = d->next;
                        break;
                }
        d->next = NULL;
        d->owner = NULL;
}

void lv_domain_observe(lv_domain *d, vmsig_state state) {
        host_observe_state(d->endpoint, state);
}

void lv_domain_reset(lv_domain *d) {
        /* Always news, even when the state stays: memctx starts a new
         * epoch, leases end. */
        if (d->endpoint)
                vmsig_endpoint_report_lifecycle(d->endpoint, VMSIG_OP_RESET, vmsig_endpoint_get_state(d->endpoint));
}

void lv_domain_stopped(lv_domain *d, bool killed) {
        if (!d->endpoint)
                return;
        if (killed && vmsig_endpoint_get_state(d->endpoint) != VMSIG_STATE_SHUT_OFF)
                vmsig_endpoint_report_lifecycle(d->endpoint, VMSIG_OP_KILL, VMSIG_STATE_SHUT_OFF);
        else
                host_observe_state(d->endpoint, VMSIG_STATE_SHUT_OFF);
}

void lv_domain_detach(lv_domain *d, const char *why) {
        vmsig_core *core = d->owner->core;
        vmsig_endpoint *ep = d->endpoint;

        log_info("Detaching libvirt domain '%s': %s.", d->name, why);
        domain_unlink(d);
        if (ep)
                (void) vmsig_core_detach_endpoint(core, ep);
}

/* A request, as a job: the libvirt calls on the worker, the answer on the
 * loop. */
typedef struct lv_call {
        lv_job base;
        host_request rq;
        lv_domain *domain; /* a reference */
        vmsig_libvirt *lv;
        int (*call)(struct lv_call *c, virDomainPtr dom); /* NULL: answered as it is */
        vmsig_lifecycle_op op;
        bool is_lifecycle; /* its outcome stands even if the domain went meanwhile */
        /* input: groups of Linux keycodes, pressed together */
        unsigned *keys;
        size_t *group_sizes, n_groups;
        /* or events for input-send-event, and its command */
        vmsig_input_event *events;
        size_t n_events;
        char *command;
        unsigned input_generation;
        bool input_cancelled;
        /* display */
        int image_fd;
        size_t image_size;
        vmsig_image_encoding encoding;
} lv_call;

int lv_not_connected(vmsig_libvirt *lv, char *buf, size_t size) {
        snprintf(buf, size, "libvirt at %s is not connected: reconnecting.", lv->uri);
        return -EIO;
}

static void set_not_connected(lv_call *c) {
        c->rq.error = lv_not_connected(c->lv, c->rq.message, sizeof c->rq.message);
}

virDomainPtr lv_domain_lookup(lv_domain *d, vmsig_libvirt *lv) {
        if (d->dom && d->dom_serial == lv->conn_serial)
                return d->dom;
        if (d->dom)
                virDomainFree(d->dom);
        d->dom = virDomainLookupByUUID(lv->conn, d->uuid.bytes);
        d->dom_serial = lv->conn_serial;
        return d->dom;
}

static void call_run(lv_job *j) {
        lv_call *c = (lv_call *) j;
        virDomainPtr dom;

        if (!c->call)
                return;
        if (!c->lv->conn)
                return set_not_connected(c);
        dom = lv_domain_lookup(c->domain, c->lv);
        if ((!dom || c->call(c, dom) < 0) && c->rq.error == 0)
                c->rq.error = lv_error(c->rq.message, sizeof c->rq.message);
}

static void call_answer(lv_call *c) {
        lv_domain *d = c->domain;
        int error = c->rq.error;
        const char *message = c->rq.message;
        char msg[HOST_MESSAGE_MAX];

        /* A Kill or PowerOff that worked may well detach the domain before
         * it is answered: that is its success, not a failure. */
        if (c->base.cancelled || (!d->owner && !c->is_lifecycle)) {
                host_detached_message(msg, sizeof msg, d->name);
                error = -ENODEV;
                message = msg;
        } else if (c->input_cancelled)
                message = d->cancel_message;
        if (error == 0 && c->rq.display_done) {
                vmsig_display_image image = { .fd = c->image_fd, .size = c->image_size, .encoding = c->encoding };

                c->rq.display_done(&(vmsig_result) {}, &image, c->rq.userdata);
                return;
        }
        host_request_answer(&c->rq, error, error < 0 ? message : NULL);
}

static void call_free(lv_call *c) {
        (void) safe_close(c->image_fd);
        lv_domain_unref(c->domain);
        free(c->keys);
        free(c->group_sizes);
        free(c->events);
        free(c->command);
        free(c);
}

static void call_done(lv_job *j) {
        lv_call *c = (lv_call *) j;

        call_answer(c);
        if (c->rq.display_done)
                c->domain->capturing = false;
        call_free(c);
}

static lv_call *call_new(lv_domain *d, int (*call)(lv_call *c, virDomainPtr dom)) {
        lv_call *c = calloc(1, sizeof *c);

        if (c)
                *c = (lv_call) { .base = { .run = call_run, .done = call_done }, .call = call, .image_fd = -1 };
        return c;
}

/* Takes c. On the worker if libvirt answers now; else answered from the
 * loop as it is (c->call NULL) or with why not. */
static int call_submit(lv_domain *d, lv_call *c) {
        if (!d->owner) {
                call_free(c);
                return -ENODEV;
        }
        c->lv = d->owner;
        c->domain = lv_domain_ref(d);
        if (c->call && !c->lv->connected) {
                c->call = NULL;
                set_not_connected(c);
        }
        if (c->call)
                lv_worker_submit(c->lv->worker, &c->base);
        else
                lv_worker_post(c->lv->worker, &c->base);
        return 0;
}

/* Answered from the loop with error and message, without libvirt. */
static int answer_later(lv_domain *d, vmsig_done_fn done, void *userdata, int error, const char *message) {
        lv_call *c = call_new(d, NULL);

        if (!c)
                return -ENOMEM;
        c->rq.done = done;
        c->rq.userdata = userdata;
        host_request_set_error(&c->rq, error, message);
        return call_submit(d, c);
}

/* The host-management seam. */

static int call_lifecycle(lv_call *c, virDomainPtr dom) {
        switch (c->op) {
        case VMSIG_OP_PAUSE:
                return virDomainSuspend(dom);
        case VMSIG_OP_RESUME:
                return virDomainResume(dom);
        case VMSIG_OP_RESET:
                return virDomainReset(dom, 0);
        case VMSIG_OP_POWER_OFF:
                return virDomainShutdown(dom);
        case VMSIG_OP_KILL:
                return virDomainDestroy(dom);
        default:
                return -1;
        }
}

static int host_lifecycle(void *data, vmsig_lifecycle_op op, vmsig_done_fn done, void *userdata) {
        lv_domain *d = data;
        lv_call *c;

        if ((unsigned) op >= _VMSIG_OP_MAX)
                return -EINVAL;
        c = call_new(d, call_lifecycle);
        if (!c)
                return -ENOMEM;
        c->op = op;
        c->is_lifecycle = true;
        c->rq.done = done;
        c->rq.userdata = userdata;
        return call_submit(d, c);
}

static int host_attach(void *data, vmsig_endpoint *ep) {
        lv_domain *d = data;

        d->endpoint = ep;
        return 0;
}

static void host_detach(void *data, vmsig_endpoint *ep) {
        lv_domain *d = data;

        /* Calls under way answer -ENODEV when they come back. */
        domain_unlink(d);
        d->endpoint = NULL;
}

/* vCPU registers: "info registers" through the monitor passthrough
 * (qmp-hmp.h), as the QMP backend asks its own connection. */
static int host_read_vcpu(void *data, vmsig_vcpu_done_fn done, void *userdata) {
        return qmp_hmp_read_vcpu(&(qmp_monitor) { lv_monitor_execute, data }, done, userdata);
}

static const char *host_memctx_absence(void *data) {
        lv_domain *d = data;

        return d->memctx_absence[0] ? d->memctx_absence : NULL;
}

static const char *host_memctx_failure(void *data) {
        lv_domain *d = data;

        return d->memctx_failure[0] ? d->memctx_failure : NULL;
}

static const vmsig_host_ops lv_host_ops = {
        .base = { .attach = host_attach, .detach = host_detach, .free = adapter_free },
        .backend = "libvirt",
        .lifecycle = host_lifecycle,
        .memctx_absence = host_memctx_absence,
        .memctx_failure = host_memctx_failure,
};

/* With the monitor passthrough on. Without it the bootstrap goes by
 * memory witnesses alone, as for a VM without vCPU registers. */
static const vmsig_host_ops lv_host_ops_monitor = {
        .base = { .attach = host_attach, .detach = host_detach, .free = adapter_free },
        .backend = "libvirt",
        .lifecycle = host_lifecycle,
        .read_vcpu = host_read_vcpu,
        .memctx_absence = host_memctx_absence,
        .memctx_failure = host_memctx_failure,
};

/* The input actuator: KEY events through virDomainSendKey, pointer events
 * (and keys sent with them) through input-send-event. */

/* On the worker, before each thing sent: whether the lease the call came
 * under ended since. Then what has not reached the guest does not. */
static bool input_lease_ended(lv_call *c) {
        if (atomic_load(&c->domain->input_generation) == c->input_generation)
                return false;
        c->input_cancelled = true;
        c->rq.error = -ECANCELED;
        return true;
}

static int call_keys(lv_call *c, virDomainPtr dom) {
        size_t at = 0;

        for (size_t i = 0; i < c->n_groups; at += c->group_sizes[i++]) {
                if (input_lease_ended(c))
                        return 0;
                if (virDomainSendKey(dom, VIR_KEYCODE_SET_LINUX, KEY_HOLD_MSEC, c->keys + at,
                                     (int) c->group_sizes[i], 0) < 0)
                        return -1;
        }
        return 0;
}

static void keys_flush(lv_call *c, size_t *held) {
        if (*held > 0)
                c->group_sizes[c->n_groups++] = *held;
        *held = 0;
}

/* Keys pressed together form one group, sent when one of them is
 * released (or at the end); a release of a key not held sends nothing. */
static int keys_build(lv_call *c, const vmsig_input_event *events, size_t n) {
        size_t held = 0, used = 0;

        c->keys = calloc(n ?: 1, sizeof *c->keys);
        c->group_sizes = calloc(n ?: 1, sizeof *c->group_sizes);
        if (!c->keys || !c->group_sizes)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                unsigned code = (unsigned) key_linux_code(events[i].code);
                bool is_held = false;

                for (size_t k = used - held; k < used; k++)
                        is_held = is_held || c->keys[k] == code;
                if (events[i].value == 0) {
                        if (is_held)
                                keys_flush(c, &held);
                } else if (!is_held) {
                        if (held == VIR_DOMAIN_SEND_KEY_MAX_KEYS)
                                return -E2BIG;
                        c->keys[used++] = code;
                        held++;
                }
        }
        keys_flush(c, &held);
        return 0;
}

/* Every event is checked before anything is sent. 1: pointer events
 * among them, which only the monitor passthrough sends. */
static int input_check(lv_domain *d, const vmsig_input_event *events, size_t n, char *msg, size_t size) {
        bool pointer = false;

        for (size_t i = 0; i < n; i++) {
                if ((unsigned) events[i].type >= _VMSIG_INPUT_TYPE_MAX)
                        return -EINVAL;
                if (events[i].type != VMSIG_INPUT_KEY)
                        pointer = true;
                else if ((events[i].value != 0 && events[i].value != 1) || key_linux_code(events[i].code) < 0)
                        return -EINVAL;
        }
        if (pointer && !d->owner->monitor)
                return lv_monitor_refusal(d->owner, "Pointer events", msg, size);
        return pointer;
}

static int call_pointer(lv_call *c, virDomainPtr dom) {
        if (input_lease_ended(c))
                return 0;
        c->rq.error = lv_monitor_run(dom, c->command, c->rq.message, sizeof c->rq.message);
        /* Taken or refused as a whole: QEMU checks every event first. */
        if (c->rq.error == 0)
                qmp_input_held_update(&c->domain->held, c->events, c->n_events);
        return 0;
}

/* Keys and pointer events together: one input-send-event through the
 * monitor passthrough, built as the QMP backend builds it, on the worker
 * in turn with the keys (so that the lease's end withdraws it alike). */
static int input_send_event(lv_domain *d, const vmsig_input_event *events, size_t n, vmsig_done_fn done,
                            void *userdata) {
        json_object *arguments = NULL;
        lv_call *c;
        int r;

        r = qmp_input_build(events, n, &arguments);
        if (r < 0)
                return r;
        if (!arguments)
                return answer_later(d, done, userdata, 0, NULL);
        c = call_new(d, call_pointer);
        if (!c) {
                json_object_put(arguments);
                return -ENOMEM;
        }
        c->rq.done = done;
        c->rq.userdata = userdata;
        c->input_generation = atomic_load(&d->input_generation);
        c->command = lv_monitor_command("input-send-event", arguments);
        c->events = memdup_array(events, n, sizeof *events);
        if (!c->command || !c->events) {
                call_free(c);
                return -ENOMEM;
        }
        c->n_events = n;
        return call_submit(d, c);
}

static int input_inject(void *data, const vmsig_input_event *events, size_t n, vmsig_done_fn done, void *userdata) {
        lv_domain *d = data;
        char msg[HOST_MESSAGE_MAX];
        lv_call *c;
        int r;

        if (!d->owner)
                return -ENODEV;
        r = input_check(d, events, n, msg, sizeof msg);
        if (r == -EOPNOTSUPP)
                return answer_later(d, done, userdata, r, msg);
        if (r < 0)
                return r;
        if (r > 0)
                return input_send_event(d, events, n, done, userdata);
        c = call_new(d, call_keys);
        if (!c)
                return -ENOMEM;
        c->rq.done = done;
        c->rq.userdata = userdata;
        c->input_generation = atomic_load(&d->input_generation);
        r = keys_build(c, events, n);
        if (r >= 0 && c->n_groups == 0)
                c->call = NULL; /* nothing to send: done */
        if (r < 0) {
                call_free(c);
                return r == -E2BIG ? -EINVAL : r;
        }
        return call_submit(d, c);
}

/* qmp_input_lease_end()'s way to QEMU: the monitor passthrough, at once
 * (on the worker, behind every input call before). */
static int run_release(json_object *arguments, void *userdata, char *msg, size_t size) {
        _cleanup_free_ char *command = lv_monitor_command("input-send-event", arguments);

        if (!command) {
                snprintf(msg, size, "out of memory");
                return -ENOMEM;
        }
        return lv_monitor_run(userdata, command, msg, size);
}

/* On the worker, after every input call before it: what those left held
 * down goes up (qmp-input.h). */
static int call_release_held(lv_call *c, virDomainPtr dom) {
        qmp_input_lease_end(&c->domain->held, c->domain->name, run_release, dom);
        return 0;
}

static void input_cancel(void *data, const char *message) {
        lv_domain *d = data;
        lv_call *c;

        snprintf(d->cancel_message, sizeof d->cancel_message, "%s", message ?: "Input cancelled.");
        atomic_fetch_add(&d->input_generation, 1);
        /* Only input-send-event holds anything down: virDomainSendKey
         * releases its keys itself. Nobody waits for this. */
        if (!d->owner || !d->owner->monitor)
                return;
        c = call_new(d, call_release_held);
        if (!c)
                return (void) log_oom();
        (void) call_submit(d, c);
}

static const vmsig_input_ops lv_input_ops = {
        .base = { .free = adapter_free },
        .inject = input_inject,
        .cancel = input_cancel,
};

/* The display: virDomainScreenshot, read on the worker into a memfd that
 * is sealed before anyone sees it. */

static int screenshot_encoding(lv_call *c, const char *mime) {
        if (strcmp(mime, "image/png") == 0)
                c->encoding = VMSIG_IMAGE_PNG;
        else if (strcmp(mime, "image/x-portable-pixmap") == 0)
                c->encoding = VMSIG_IMAGE_PPM;
        else {
                snprintf(c->rq.message, sizeof c->rq.message, "libvirt gave a screenshot of type %s.", mime);
                c->rq.error = -EBADMSG;
                return -1;
        }
        return 0;
}

static int screenshot_read(lv_call *c, virStreamPtr st) {
        char buf[64 * 1024];

        for (;;) {
                int n = virStreamRecv(st, buf, sizeof buf);

                if (n < 0)
                        return -1;
                if (n == 0)
                        return virStreamFinish(st);
                if (c->image_size + (size_t) n > SCREENSHOT_MAX) {
                        snprintf(c->rq.message, sizeof c->rq.message, "The screenshot is over %u MiB.",
                                 SCREENSHOT_MAX >> 20);
                        c->rq.error = -EFBIG;
                        return -1;
                }
                if (loop_write(c->image_fd, buf, (size_t) n) < 0) {
                        snprintf(c->rq.message, sizeof c->rq.message, "Cannot keep the screenshot: %s.",
                                 strerror(errno));
                        c->rq.error = -errno;
                        return -1;
                }
                c->image_size += (size_t) n;
        }
}

static int call_screenshot(lv_call *c, virDomainPtr dom) {
        virStreamPtr st = virStreamNew(c->lv->conn, 0);
        char *mime = NULL;
        int r = -1;

        c->image_fd = memfd_create("vmsig-screenshot", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (c->image_fd < 0) {
                c->rq.error = -errno;
                snprintf(c->rq.message, sizeof c->rq.message, "Cannot make a memfd: %s.", strerror(errno));
        } else if (st && (mime = virDomainScreenshot(dom, st, 0, 0))) {
                r = screenshot_read(c, st);
                if (r < 0)
                        (void) virStreamAbort(st);
                else
                        r = screenshot_encoding(c, mime);
        }
        /* Nobody it is passed on to may change it. */
        if (r >= 0 && fcntl(c->image_fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
                c->rq.error = -errno;
                snprintf(c->rq.message, sizeof c->rq.message, "Cannot seal the screenshot: %s.", strerror(errno));
                r = -1;
        }
        free(mime);
        if (st)
                virStreamFree(st);
        return r;
}

static int display_capture(void *data, vmsig_display_done_fn done, void *userdata) {
        lv_domain *d = data;
        lv_call *c;
        int r;

        if (!d->owner)
                return -ENODEV;
        if (d->capturing)
                return -EBUSY;
        c = call_new(d, call_screenshot);
        if (!c)
                return -ENOMEM;
        c->rq.display_done = done;
        c->rq.userdata = userdata;
        r = call_submit(d, c);
        if (r >= 0)
                d->capturing = true;
        return r;
}

static const vmsig_display_ops lv_display_ops = {
        .base = { .free = adapter_free },
        .capture = display_capture,
};

/* The endpoint of a domain: its spec, built here alone. */
int lv_domain_attach(vmsig_libvirt *lv, lv_found *f, lv_domain **ret) {
        vmsig_endpoint_spec spec;
        vmsig_endpoint *ep;
        lv_domain *d;
        int r;

        if (f->name_too_long || !vmsig_endpoint_name_is_valid(f->name)) {
                log_warning("libvirt domain '%s%s' cannot be an endpoint: its name is not a valid endpoint name.",
                            f->name, f->name_too_long ? "..." : "");
                return -EINVAL;
        }
        d = calloc(1, sizeof *d);
        if (!d || !(d->name = strdup(f->name))) {
                free(d);
                return log_oom();
        }
        d->n_ref = 3 + 1; /* host, input, display, and ours until attached */
        d->uuid = f->uuid;
        /* The worker looked for the RAM as before then: any claimant, but
         * only one. */
        if (f->uid_problem[0])
                log_warning("libvirt domain '%s': cannot tell the user its QEMU runs as (%s); its process is looked "
                            "for under any uid.", f->name, f->uid_problem);
        d->owner = lv;
        host_ram_init(&d->ram, d->name);
        d->found = LIBVIRT_RAM_NONE;
        host_endpoint_spec_init(&spec, d->name, f->uuid, f->state);
        spec.adapters[VMSIG_ADAPTER_HOST] =
                (vmsig_adapter) { lv->monitor ? &lv_host_ops_monitor.base : &lv_host_ops.base, d };
        spec.adapters[VMSIG_ADAPTER_INPUT] = (vmsig_adapter) { &lv_input_ops.base, d };
        spec.adapters[VMSIG_ADAPTER_DISPLAY] = (vmsig_adapter) { &lv_display_ops.base, d };
        /* A domain without shared RAM is an endpoint all the same, without
         * memctx in its Capabilities. */
        if (lv_memctx_probe(d, f)) {
                spec.adapters[VMSIG_ADAPTER_MEMCTX] = (vmsig_adapter) { &lv_memctx_ops.base, d };
                d->n_ref++;
        }
        r = vmsig_core_attach_endpoint(lv->core, &spec, &ep);
        if (r < 0 || !d->owner) {
                lv_domain_unref(d);
                return log_warning_errno(r < 0 ? r : -ENODEV, "Cannot attach libvirt domain '%s': %m", f->name);
        }
        d->next = lv->domains;
        lv->domains = d;
        lv_domain_unref(d);
        log_info("Attached libvirt domain '%s' as vmid %u.", f->name, vmsig_endpoint_get_vmid(ep));
        *ret = d;
        return 0;
}
