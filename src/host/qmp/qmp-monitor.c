/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>

#include "qmp-monitor.h"

void qmp_reply_from_message(json_object *msg, char *buf, size_t size, qmp_reply *ret) {
        json_object *v = NULL, *cls = NULL, *desc = NULL;

        if (json_object_object_get_ex(msg, "return", &v)) {
                *ret = (qmp_reply) { .result = v };
                return;
        }
        if (json_object_object_get_ex(msg, "error", &v)) {
                (void) json_object_object_get_ex(v, "class", &cls);
                (void) json_object_object_get_ex(v, "desc", &desc);
        }
        snprintf(buf, size, "QEMU: %s: %s", cls ? json_object_get_string(cls) : "UnknownError",
                 desc ? json_object_get_string(desc) : "(no description)");
        *ret = (qmp_reply) { .error = -EIO, .message = buf };
}
