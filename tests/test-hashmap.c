/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The shared hashmap: string and uint64 keys, removal while iterating,
 * emptying one entry at a time. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <glib.h>

#include "hashmap.h"
#include "vt-util.h"

#define N 1000

static bool is_value(const void *value, const void *arg) {
        return value == arg;
}

static void test_string_keys(void) {
        Hashmap *h = hashmap_new();
        char keys[N][16];

        g_assert_nonnull(h);
        for (int i = 0; i < N; i++) {
                snprintf(keys[i], sizeof keys[i], "k%d", i);
                g_assert_cmpint(hashmap_put(h, keys[i], GINT_TO_POINTER(i + 1)), ==, 0);
        }
        g_assert_cmpint(hashmap_put(h, "k7", GINT_TO_POINTER(1)), ==, -EEXIST);
        g_assert_cmpuint(hashmap_size(h), ==, N);
        g_assert_cmpint(GPOINTER_TO_INT(hashmap_get(h, "k42")), ==, 43);
        g_assert_true(hashmap_find(h, is_value, GINT_TO_POINTER(43)) == GINT_TO_POINTER(43));
        g_assert_null(hashmap_find(h, is_value, GINT_TO_POINTER(N + 1)));
        g_assert_cmpint(GPOINTER_TO_INT(hashmap_remove(h, "k42")), ==, 43);
        g_assert_null(hashmap_get(h, "k42"));
        g_assert_null(hashmap_remove(h, "k42"));
        g_assert_cmpuint(hashmap_size(h), ==, N - 1);
        hashmap_free(h);
}

static void test_uint64_keys(void) {
        Hashmap *h = hashmap_new_uint64();

        g_assert_nonnull(h);
        /* Dense small ids, and ones that differ only in their high bits. */
        for (uint64_t i = 0; i < N; i++) {
                g_assert_cmpint(hashmap_put_uint64(h, i, GINT_TO_POINTER((int) i + 1)), ==, 0);
                g_assert_cmpint(hashmap_put_uint64(h, i << 40, GINT_TO_POINTER((int) i + 1)), ==, i == 0 ? -EEXIST : 0);
        }
        g_assert_cmpuint(hashmap_size(h), ==, 2 * N - 1);
        g_assert_cmpint(GPOINTER_TO_INT(hashmap_get_uint64(h, 999)), ==, 1000);
        g_assert_cmpint(GPOINTER_TO_INT(hashmap_get_uint64(h, UINT64_C(5) << 40)), ==, 6);
        g_assert_null(hashmap_get_uint64(h, UINT64_MAX));
        g_assert_cmpint(GPOINTER_TO_INT(hashmap_remove_uint64(h, 0)), ==, 1);
        g_assert_null(hashmap_get_uint64(h, 0));
        hashmap_free(h);
}

static void test_remove_while_iterating(void) {
        Hashmap *h = hashmap_new_uint64();
        unsigned seen = 0;
        void *v;

        for (uint64_t i = 1; i <= N; i++)
                g_assert_cmpint(hashmap_put_uint64(h, i, GINT_TO_POINTER((int) i)), ==, 0);
        /* Every odd entry goes as it is visited: each entry is still
         * visited exactly once. */
        HASHMAP_FOREACH(v, h, st) {
                seen++;
                if (GPOINTER_TO_INT(v) % 2)
                        g_assert_true(hashmap_remove_uint64(h, (uint64_t) GPOINTER_TO_INT(v)) == v);
        }
        g_assert_cmpuint(seen, ==, N);
        g_assert_cmpuint(hashmap_size(h), ==, N / 2);
        HASHMAP_FOREACH(v, h, st)
                g_assert_cmpint(GPOINTER_TO_INT(v) % 2, ==, 0);
        hashmap_free(h);
}

static void test_steal_first(void) {
        Hashmap *h = hashmap_new_uint64();
        unsigned n = 0;

        g_assert_null(hashmap_steal_first(h));
        for (uint64_t i = 1; i <= N; i++)
                g_assert_cmpint(hashmap_put_uint64(h, i, GINT_TO_POINTER((int) i)), ==, 0);
        while (hashmap_steal_first(h))
                n++;
        g_assert_cmpuint(n, ==, N);
        g_assert_cmpuint(hashmap_size(h), ==, 0);
        /* Tombstones do not hide new entries. */
        g_assert_cmpint(hashmap_put_uint64(h, 7, GINT_TO_POINTER(7)), ==, 0);
        g_assert_cmpint(GPOINTER_TO_INT(hashmap_get_uint64(h, 7)), ==, 7);
        hashmap_free(h);
        g_assert_cmpuint(hashmap_size(NULL), ==, 0);
        g_assert_null(hashmap_steal_first(NULL));
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/hashmap/", test_string_keys, test_uint64_keys, test_remove_while_iterating, test_steal_first);
        return g_test_run();
}
