/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An enum's names in a table indexed by the enum, and the functions that
 * look them up, after systemd's string-table.h: the table of NAME is
 * NAME_table, its functions NAME_to_string() and NAME_from_string().
 * Header-only. */
#pragma once

#include <string.h>

#include "macro.h"

/* The name of i, or NULL out of range. */
static inline const char *name_table_to_string(const char *const *table, unsigned n, unsigned i) {
        return i < n ? table[i] : NULL;
}

/* The value named s, or n when none is. */
static inline unsigned name_table_from_string(const char *const *table, unsigned n, const char *s) {
        for (unsigned i = 0; s && i < n; i++)
                if (table[i] && strcmp(s, table[i]) == 0)
                        return i;
        return n;
}

#define DEFINE_STRING_TABLE_LOOKUP_TO_STRING(name, type)                                   \
        const char *name##_to_string(type i) {                                             \
                return name_table_to_string(name##_table, ELEMENTSOF(name##_table), i);   \
        }

#define DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(name, type)                                 \
        type name##_from_string(const char *s) {                                           \
                return (type) name_table_from_string(name##_table, ELEMENTSOF(name##_table), s); \
        }

#define DEFINE_STRING_TABLE_LOOKUP(name, type)                                             \
        DEFINE_STRING_TABLE_LOOKUP_TO_STRING(name, type)                                   \
        DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(name, type)
