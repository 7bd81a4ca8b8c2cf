/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsigctl's JSON writer, byte for byte: the escapes of a string (four
 * with a letter, every other control character as \u00XX, UTF-8 as it
 * is), the commas and line breaks of both layouts, and the one key
 * style. */
#include <stdio.h>
#include <stdlib.h>
#include <glib.h>

#include "ctl-json.h"
#include "vt-util.h"

typedef void (*write_fn)(json_writer *w);

/* What write gives, in the layout pretty says. */
static char *written(write_fn write, bool pretty) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        json_writer w;

        g_assert_nonnull(f);
        json_init(&w, f, pretty);
        write(&w);
        g_assert_cmpint(fclose(f), ==, 0);
        return buf;
}

static void write_escapes(json_writer *w) {
        json_object_begin(w);
        json_field_string(w, "k\"\\\n", "q\"b\\n\nt\tc\001\037r\rd\177u\303\251.");
        json_object_end(w);
}

static void test_escapes(void) {
        g_autofree char *s = written(write_escapes, false);

        g_assert_cmpstr(s, ==, "{\"k\\\"\\\\\\n\":\"q\\\"b\\\\n\\nt\\tc\\u0001\\u001fr\\u000dd\\u007fu\303\251.\"}");
}

static void write_document(json_writer *w) {
        json_array_begin(w);
        json_object_begin(w);
        json_field_string(w, "name", "alpha");
        json_field_uint(w, "ram_size", UINT64_MAX);
        json_field_bool(w, "paused", false);
        json_field_string(w, "release", NULL);
        json_key(w, "empty");
        json_array_begin(w);
        json_array_end(w);
        json_object_end(w);
        json_object_begin(w);
        json_object_end(w);
        json_array_end(w);
}

static void test_layouts(void) {
        g_autofree char *short_ = written(write_document, false);
        g_autofree char *pretty = written(write_document, true);

        g_assert_cmpstr(short_, ==,
                        "[{\"name\":\"alpha\",\"ram_size\":18446744073709551615,\"paused\":false,"
                        "\"release\":null,\"empty\":[]},{}]");
        g_assert_cmpstr(pretty, ==,
                        "[\n"
                        "  {\n"
                        "    \"name\": \"alpha\",\n"
                        "    \"ram_size\": 18446744073709551615,\n"
                        "    \"paused\": false,\n"
                        "    \"release\": null,\n"
                        "    \"empty\": []\n"
                        "  },\n"
                        "  {}\n"
                        "]");
}

/* One key style: D-Bus names and lease classes in snake_case. */
static void test_key_style(void) {
        static const char *const cases[][2] = {
                { "MemctxEpoch", "memctx_epoch" },
                { "memory-write", "memory_write" },
                { "old_owner", "old_owner" },
                { "power", "power" },
                { "", "" },
        };
        char key[JSON_KEY_MAX];

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
                g_assert_cmpstr(json_key_style(key, cases[i][0]), ==, cases[i][1]);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/ctl-json/", test_escapes, test_layouts, test_key_style);
        return g_test_run();
}
