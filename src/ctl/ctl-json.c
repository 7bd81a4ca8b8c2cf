/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>

#include "ctl-json.h"

#define JSON_INDENT 2

const char *json_key_style(char buf[static JSON_KEY_MAX], const char *name) {
        size_t n = 0;

        for (const char *p = name; *p && n + 2 < JSON_KEY_MAX; p++) {
                if (isupper((unsigned char) *p)) {
                        if (n > 0)
                                buf[n++] = '_';
                        buf[n++] = (char) tolower((unsigned char) *p);
                } else
                        buf[n++] = *p == '-' ? '_' : *p;
        }
        buf[n] = 0;
        return buf;
}

void json_init(json_writer *w, FILE *f, bool pretty) {
        *w = (json_writer) { .f = f, .pretty = pretty };
}

static void new_line(json_writer *w, unsigned depth) {
        fprintf(w->f, "\n%*s", (int) (depth * JSON_INDENT), "");
}

/* Every value and key goes through here: a comma unless it is the first
 * item of its container or the value of a key; pretty, each item inside a
 * container on a line of its own. */
static void separate(json_writer *w) {
        if (w->after_key) {
                w->after_key = false;
                return;
        }
        if (w->has_items[w->depth])
                fputc(',', w->f);
        w->has_items[w->depth] = true;
        if (w->pretty && w->depth > 0)
                new_line(w, w->depth);
}

static void open_container(json_writer *w, char c) {
        separate(w);
        fputc(c, w->f);
        assert(w->depth + 1 < JSON_DEPTH_MAX);
        w->has_items[++w->depth] = false;
}

static void close_container(json_writer *w, char c) {
        assert(w->depth > 0);
        /* An empty container stays "[]" or "{}". */
        if (w->pretty && w->has_items[w->depth])
                new_line(w, w->depth - 1);
        w->depth--;
        fputc(c, w->f);
}

void json_object_begin(json_writer *w) {
        open_container(w, '{');
}

void json_object_end(json_writer *w) {
        close_container(w, '}');
}

void json_array_begin(json_writer *w) {
        open_container(w, '[');
}

void json_array_end(json_writer *w) {
        close_container(w, ']');
}

/* The characters JSON escapes with a letter, and their letters. D-Bus
 * strings are UTF-8 already: of the rest, only control characters need
 * escaping, as \u00XX. */
static const char escape_letters[128] = {
        ['"'] = '"',
        ['\\'] = '\\',
        ['\n'] = 'n',
        ['\t'] = 't',
};

static void write_quoted(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < sizeof escape_letters && escape_letters[*p])
                        fprintf(f, "\\%c", escape_letters[*p]);
                else if (*p < 0x20 || *p == 0x7f)
                        fprintf(f, "\\u%04x", *p);
                else
                        fputc(*p, f);
        fputc('"', f);
}

void json_key(json_writer *w, const char *key) {
        separate(w);
        write_quoted(w->f, key);
        fputs(w->pretty ? ": " : ":", w->f);
        w->after_key = true;
}

void json_string(json_writer *w, const char *s) {
        if (!s) {
                json_null(w);
                return;
        }
        separate(w);
        write_quoted(w->f, s);
}

void json_uint(json_writer *w, uint64_t v) {
        separate(w);
        fprintf(w->f, "%" PRIu64, v);
}

void json_bool(json_writer *w, bool b) {
        separate(w);
        fputs(b ? "true" : "false", w->f);
}

void json_null(json_writer *w) {
        separate(w);
        fputs("null", w->f);
}

void json_field_string(json_writer *w, const char *key, const char *s) {
        json_key(w, key);
        json_string(w, s);
}

void json_field_uint(json_writer *w, const char *key, uint64_t v) {
        json_key(w, key);
        json_uint(w, v);
}

void json_field_bool(json_writer *w, const char *key, bool b) {
        json_key(w, key);
        json_bool(w, b);
}
