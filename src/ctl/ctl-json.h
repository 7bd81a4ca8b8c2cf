/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A streaming JSON writer: just enough for --json. It places the commas
 * (and, pretty, the line breaks and indentation), so callers only say what
 * comes next. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_DEPTH_MAX 16

typedef struct json_writer {
        FILE *f;
        unsigned depth;
        bool pretty; /* one item a line, indented by depth */
        bool after_key;
        bool has_items[JSON_DEPTH_MAX]; /* whether a comma is due at that depth */
} json_writer;

/* vmsigctl's one key style, snake_case, for --json and for the key=value
 * of monitor's text alike: a D-Bus property name (MemctxEpoch) is shown as
 * memctx_epoch, as status --json names the same value, and a lease class
 * (memory-write) as memory_write; a key in that style stays as it is. */
#define JSON_KEY_MAX 64
const char *json_key_style(char buf[static JSON_KEY_MAX], const char *name);

/* pretty: --json=pretty; else all on one line (--json=short). */
void json_init(json_writer *w, FILE *f, bool pretty);
void json_object_begin(json_writer *w);
void json_object_end(json_writer *w);
void json_array_begin(json_writer *w);
void json_array_end(json_writer *w);
void json_key(json_writer *w, const char *key);

/* A NULL string is written as null. */
void json_string(json_writer *w, const char *s);
void json_uint(json_writer *w, uint64_t v);
void json_bool(json_writer *w, bool b);
void json_null(json_writer *w);

void json_field_string(json_writer *w, const char *key, const char *s);
void json_field_uint(json_writer *w, const char *key, uint64_t v);
void json_field_bool(json_writer *w, const char *key, bool b);
