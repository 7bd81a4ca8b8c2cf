/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QEMU's monitor where libvirt has no API (vCPU registers, pointer
 * events, the GPA map): QMP commands through virDomainQemuMonitorCommand()
 * of libvirt-qemu. libvirt passes them to the domain's QEMU as they are
 * and marks the domain tainted ("custom-monitor", in its log), which is
 * why <libvirt monitor="no"> turns this off. The call blocks until QEMU
 * answers, so it runs on the worker; its reply is handed over on the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libvirt/libvirt-qemu.h>

#include "libvirt-internal.h"
#include "macro.h"

typedef struct monitor_job {
        lv_job base;
        lv_domain *domain; /* a reference */
        vmsig_libvirt *lv;
        char *command; /* the QMP command, as JSON */
        char *out;     /* libvirt's answer, QMP's JSON reply */
        int error;
        char message[HOST_MESSAGE_MAX];
        qmp_monitor_reply_fn fn;
        void *userdata;
} monitor_job;

static void monitor_run(lv_job *j) {
        monitor_job *m = (monitor_job *) j;
        virDomainPtr dom;

        if (!m->lv->conn) {
                m->error = lv_not_connected(m->lv, m->message, sizeof m->message);
                return;
        }
        dom = lv_domain_lookup(m->domain, m->lv);
        if (!dom || virDomainQemuMonitorCommand(dom, m->command, &m->out, 0) < 0)
                m->error = lv_error(m->message, sizeof m->message);
}

/* The QMP reply in libvirt's answer out, into *reply (its result borrowed
 * from the object returned, which the caller puts). */
static json_object *reply_parse(const char *out, char *buf, size_t size, qmp_reply *reply) {
        json_object *answer = json_tokener_parse(out);

        if (json_object_is_type(answer, json_type_object))
                qmp_reply_from_message(answer, buf, size, reply);
        else
                *reply = (qmp_reply) { .error = -EBADMSG,
                                       .message = "libvirt's monitor passthrough gave no QMP reply." };
        return answer;
}

static void monitor_done(lv_job *j) {
        monitor_job *m = (monitor_job *) j;
        json_object *answer = NULL;
        char buf[HOST_MESSAGE_MAX];
        qmp_reply reply = { .error = m->error, .message = m->message };

        /* Gone with the command unanswered: -ENODEV, as the contract says. */
        if (m->base.cancelled || !m->domain->owner) {
                host_detached_message(buf, sizeof buf, m->domain->name);
                reply = (qmp_reply) { .error = -ENODEV, .message = buf };
        } else if (m->error == 0)
                answer = reply_parse(m->out, buf, sizeof buf, &reply);
        m->fn(&reply, m->userdata);
        json_object_put(answer);
        lv_domain_unref(m->domain);
        free(m->command);
        free(m->out);
        free(m);
}

int lv_monitor_run(virDomainPtr dom, const char *command, char *buf, size_t size) {
        json_object *answer;
        qmp_reply reply;
        char *out = NULL;

        if (virDomainQemuMonitorCommand(dom, command, &out, 0) < 0)
                return lv_error(buf, size);
        answer = reply_parse(out, buf, size, &reply);
        if (reply.error < 0 && reply.message != buf)
                snprintf(buf, size, "%s", reply.message);
        json_object_put(answer);
        free(out);
        return reply.error;
}

char *lv_monitor_command(const char *command, json_object *arguments) {
        json_object *cmd = json_object_new_object();
        char *text = NULL;

        if (!cmd) {
                json_object_put(arguments);
                return NULL;
        }
        /* json-c fails these only without memory: the text then lacks
         * them, and QEMU refuses it. */
        (void) json_object_object_add(cmd, "execute", json_object_new_string(command));
        if (arguments)
                (void) json_object_object_add(cmd, "arguments", arguments);
        text = strdup(json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN));
        json_object_put(cmd);
        return text;
}

int lv_monitor_execute(void *data, const char *command, json_object *arguments, qmp_monitor_reply_fn fn,
                       void *userdata) {
        lv_domain *d = data;
        monitor_job *m;

        if (!d->owner || !d->owner->monitor) {
                json_object_put(arguments);
                return d->owner ? -EOPNOTSUPP : -ENODEV;
        }
        m = calloc(1, sizeof *m);
        if (!m) {
                json_object_put(arguments);
                return -ENOMEM;
        }
        *m = (monitor_job) { .base = { .run = monitor_run, .done = monitor_done }, .lv = d->owner,
                             .fn = fn, .userdata = userdata };
        m->command = lv_monitor_command(command, arguments);
        if (!m->command) {
                free(m);
                return -ENOMEM;
        }
        m->domain = lv_domain_ref(d);
        if (d->owner->connected)
                lv_worker_submit(d->owner->worker, &m->base);
        else {
                m->error = lv_not_connected(d->owner, m->message, sizeof m->message);
                lv_worker_post(d->owner->worker, &m->base);
        }
        return 0;
}
