/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>

#include "xml-problem.h"

int xml_problem_fail(xml_problem *p, int r, unsigned line, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        r = xml_problem_failv(p, r, line, fmt, ap);
        va_end(ap);
        return r;
}

int xml_problem_failv(xml_problem *p, int r, unsigned line, const char *fmt, va_list ap) {
        _cleanup_free_ char *what = NULL;

        if (p->error)
                return p->r;
        if (vasprintf(&what, fmt, ap) < 0)
                what = NULL;
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

/* Levenshtein distance, case-insensitive, capped: the values are short
 * words, so two rows of a small matrix are enough. */
#define WORD_MAX 64
static size_t distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b), row[2][WORD_MAX + 1];

        if (la > WORD_MAX || lb > WORD_MAX)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                row[0][j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t *cur = row[i % 2], *prev = row[(i - 1) % 2];

                cur[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t sub = prev[j - 1] + (tolower((unsigned char) a[i - 1]) != tolower((unsigned char) b[j - 1]));
                        size_t del = prev[j] + 1, ins = cur[j - 1] + 1;

                        cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
                }
        }
        return row[la % 2][lb];
}

const char *xml_problem_did_you_mean(const char *value, const char *const *allowed) {
        const char *best = NULL;
        size_t best_d = SIZE_MAX, len = strlen(value);

        for (const char *const *a = allowed; *a; a++) {
                size_t d = distance(value, *a);

                /* "paus" for "paused": a prefix of three or more letters. */
                if (len >= 3 && strncasecmp(value, *a, len) == 0)
                        d = 1;
                if (d < best_d) {
                        best = *a;
                        best_d = d;
                }
        }
        /* A third of the word wrong at most, and never more than 2 edits. */
        return best && best_d <= 2 && best_d * 3 <= strlen(best) ? best : NULL;
}

int xml_problem_choice(xml_problem *p, unsigned line, const char *name, const char *value,
                       const char *const *allowed) {
        char list[256] = "";
        const char *near;
        size_t n = 0, at = 0;

        for (const char *const *a = allowed; *a; a++, n++)
                if (strcmp(value, *a) == 0)
                        return (int) n;
        for (size_t i = 0; i < n && at < sizeof list; i++)
                at += (size_t) snprintf(list + at, sizeof list - at, "%s%s", allowed[i],
                                        i + 2 < n ? ", " : i + 2 == n ? " or " : "");
        near = xml_problem_did_you_mean(value, allowed);
        if (near)
                return xml_problem_fail(p, -EINVAL, line, "%s=\"%s\" is not one of %s (did you mean \"%s\"?).", name,
                                        value, list, near);
        return xml_problem_fail(p, -EINVAL, line, "%s=\"%s\" is not one of %s.", name, value, list);
}

int xml_problem_read(xml_problem *p, int fd, xmlDocPtr *ret) {
        const int options = XML_PARSE_NONET | XML_PARSE_NOWARNING;
        xmlParserCtxtPtr ctx;
        xmlDocPtr doc;

        ctx = xmlNewParserCtxt();
        if (!ctx)
                return xml_problem_fail(p, -ENOMEM, 0, "out of memory.");
        /* libxml2 2.9 has no per-context structured handler; the global one
         * is thread-local and we are single-threaded. */
        xmlSetStructuredErrorFunc(p, xml_problem_on_xml_error);
        doc = fd >= 0 ? xmlCtxtReadFd(ctx, fd, p->path, NULL, options) : xmlCtxtReadFile(ctx, p->path, NULL, options);
        xmlSetStructuredErrorFunc(NULL, NULL);
        xmlFreeParserCtxt(ctx);
        if (!doc)
                return xml_problem_fail(p, -EINVAL, 0, "not well-formed XML.");
        /* libxml2 still builds a tree past errors it recovers from (bad
         * namespace declarations): the error it reported stands. */
        if (p->r < 0) {
                xmlFreeDoc(doc);
                return p->r;
        }
        *ret = doc;
        return 0;
}

int xml_problem_validate(xml_problem *p, xmlRelaxNGPtr schema, xmlDocPtr doc) {
        xmlRelaxNGValidCtxtPtr vctx = xmlRelaxNGNewValidCtxt(schema);
        int r;

        if (!vctx)
                return xml_problem_fail(p, -ENOMEM, 0, "out of memory.");
        xmlRelaxNGSetValidStructuredErrors(vctx, xml_problem_on_xml_error, p);
        r = xmlRelaxNGValidateDoc(vctx, doc) == 0 ? 0 : xml_problem_fail(p, -EINVAL, 0, "does not match the schema.");
        xmlRelaxNGFreeValidCtxt(vctx);
        return r;
}
