/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading an XML file an admin wrote (vmsigd.conf, a trigger file):
 * every problem is reported as "FILE:LINE: problem", so that the admin can
 * go straight to it, and the first one wins (later ones are usually its
 * consequences). */
#pragma once

#include <stdarg.h>

#include <libxml/relaxng.h>
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
_printf_(4, 0) int xml_problem_failv(xml_problem *p, int r, unsigned line, const char *fmt, va_list ap);
/* A structured error handler for libxml2 (xmlSetStructuredErrorFunc,
 * xmlRelaxNGSetValidStructuredErrors) that records into an xml_problem. */
void xml_problem_on_xml_error(void *userdata, xmlErrorPtr e);
/* value must be one of the NULL-terminated allowed: returns its index, or
 * records "NAME=\"VALUE\" is not one of A, B or C (did you mean B?)." and
 * returns its code (the suggestion when VALUE is a near miss of one). */
int xml_problem_choice(xml_problem *p, unsigned line, const char *name, const char *value,
                       const char *const *allowed);
/* The allowed value nearest to value, if it is a near miss (a typo, a
 * case slip or a prefix), else NULL. */
const char *xml_problem_did_you_mean(const char *value, const char *const *allowed);
/* Parses p->path, or fd when it is >= 0 (opened and checked by the
 * caller), without network access or entity substitution: a file an admin
 * wrote never makes us reach out nor pulls in another file. */
int xml_problem_read(xml_problem *p, int fd, xmlDocPtr *ret);
/* Validates doc against schema, recording its complaints into p. */
int xml_problem_validate(xml_problem *p, xmlRelaxNGPtr schema, xmlDocPtr doc);
/* The line of a node, 0 if unknown. */
unsigned xml_node_line(xmlNodePtr n);

static inline void xml_freep(char **p) {
        xmlFree(*p);
}
#define _cleanup_xmlfree_ _cleanup_(xml_freep)
