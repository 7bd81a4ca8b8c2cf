/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading an XML file an admin wrote (vmsigd.conf, a trigger file):
 * every problem is reported as "FILE:LINE: problem", so that the admin can
 * go straight to it, and the first one wins (later ones are usually its
 * consequences). */
#pragma once

#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "macro.h"

typedef struct xml_problem {
        const char *path;
        char *error; /* the first problem, or NULL */
        int r;       /* its errno-style code */
} xml_problem;

/* Records the problem unless one is recorded already; returns the code of
 * the recorded one. line 0: the file as a whole. */
_printf_(4, 5) int xml_problem_fail(xml_problem *p, int r, unsigned line, const char *fmt, ...);
/* A structured error handler for libxml2 (xmlSetStructuredErrorFunc,
 * xmlRelaxNGSetValidStructuredErrors) that records into an xml_problem. */
void xml_problem_on_xml_error(void *userdata, xmlErrorPtr e);
/* The line of a node, 0 if unknown. */
unsigned xml_node_line(xmlNodePtr n);

static inline void xml_freep(char **p) {
        xmlFree(*p);
}
#define _cleanup_xmlfree_ _cleanup_(xml_freep)
