/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "xml-problem.h"

int xml_problem_fail(xml_problem *p, int r, unsigned line, const char *fmt, ...) {
        _cleanup_free_ char *what = NULL;
        va_list ap;

        if (p->error)
                return p->r;
        va_start(ap, fmt);
        if (vasprintf(&what, fmt, ap) < 0)
                what = NULL;
        va_end(ap);
        if (line > 0) {
                if (asprintf(&p->error, "%s:%u: %s", p->path, line, what ?: "error") < 0)
                        p->error = NULL;
        } else if (asprintf(&p->error, "%s: %s", p->path, what ?: "error") < 0)
                p->error = NULL;
        p->r = r;
        return r;
}

void xml_problem_on_xml_error(void *userdata, xmlErrorPtr e) {
        xml_problem *p = userdata;
        size_t n = e->message ? strlen(e->message) : 0;

        /* libxml2 messages end in a newline we do not want in one-line logs. */
        while (n > 0 && (e->message[n - 1] == '\n' || e->message[n - 1] == ' '))
                n--;
        (void) xml_problem_fail(p, -EINVAL, e->line > 0 ? (unsigned) e->line : 0, "%.*s", (int) n,
                                e->message ?: "invalid XML");
}

unsigned xml_node_line(xmlNodePtr n) {
        long l = xmlGetLineNo(n);

        return l > 0 ? (unsigned) l : 0;
}
