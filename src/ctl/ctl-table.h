/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A text table with a header row and columns as wide as their widest cell,
 * as machinectl prints them. */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "macro.h"

typedef struct ctl_table ctl_table;

/* headers: n_columns column titles. */
ctl_table *ctl_table_new(size_t n_columns, const char *const *headers);
ctl_table *ctl_table_free(ctl_table *t);
/* Cells fill the table row by row. */
int ctl_table_add(ctl_table *t, const char *cell);
int ctl_table_addf(ctl_table *t, const char *fmt, ...) _printf_(2, 3);
size_t ctl_table_rows(const ctl_table *t);
/* header: print the title row (--no-legend leaves it out). */
void ctl_table_print(const ctl_table *t, FILE *f, bool header);

static inline void ctl_table_freep(ctl_table **t) {
        ctl_table_free(*t);
}
