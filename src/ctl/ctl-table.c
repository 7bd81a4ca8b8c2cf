/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl-table.h"

struct ctl_table {
        size_t n_columns;
        char **cells; /* header row first */
        size_t n_cells, allocated;
};

ctl_table *ctl_table_new(size_t n_columns, const char *const *headers) {
        ctl_table *t = calloc(1, sizeof *t);

        if (!t)
                return NULL;
        t->n_columns = n_columns;
        for (size_t i = 0; i < n_columns; i++)
                if (ctl_table_add(t, headers[i]) < 0)
                        return ctl_table_free(t);
        return t;
}

ctl_table *ctl_table_free(ctl_table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        return mfree(t);
}

static int add_owned(ctl_table *t, char *cell) {
        if (!cell)
                return -ENOMEM;
        if (t->n_cells == t->allocated) {
                size_t n = t->allocated ? t->allocated * 2 : 32;
                char **grown = reallocarray(t->cells, n, sizeof *grown);
                if (!grown) {
                        free(cell);
                        return -ENOMEM;
                }
                t->cells = grown;
                t->allocated = n;
        }
        t->cells[t->n_cells++] = cell;
        return 0;
}

int ctl_table_add(ctl_table *t, const char *cell) {
        return add_owned(t, strdup(cell ? cell : ""));
}

int ctl_table_addf(ctl_table *t, const char *fmt, ...) {
        char *cell = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&cell, fmt, ap);
        va_end(ap);
        return add_owned(t, r < 0 ? NULL : cell);
}

size_t ctl_table_rows(const ctl_table *t) {
        return t->n_cells / t->n_columns - 1;
}

/* The header stands out on a terminal that can show it, as in systemd's
 * tables; pipes get plain text. */
static bool use_highlight(FILE *f) {
        const char *term = getenv("TERM");

        return isatty(fileno(f)) && !getenv("NO_COLOR") && term && strcmp(term, "dumb") != 0;
}

static void print_row(const ctl_table *t, FILE *f, size_t row, const size_t *widths) {
        for (size_t c = 0; c < t->n_columns; c++) {
                const char *cell = t->cells[row * t->n_columns + c];

                /* The last column is not padded: no trailing blanks. */
                if (c + 1 == t->n_columns)
                        fputs(cell, f);
                else
                        fprintf(f, "%-*s ", (int) widths[c], cell);
        }
}

void ctl_table_print(const ctl_table *t, FILE *f, bool header) {
        size_t n_rows = t->n_cells / t->n_columns;
        size_t widths[t->n_columns];
        bool highlight = header && use_highlight(f);

        for (size_t c = 0; c < t->n_columns; c++) {
                widths[c] = 0;
                for (size_t row = header ? 0 : 1; row < n_rows; row++)
                        widths[c] = MAX(widths[c], strlen(t->cells[row * t->n_columns + c]));
        }
        for (size_t row = header ? 0 : 1; row < n_rows; row++) {
                if (row == 0 && highlight)
                        fputs("\x1b[1m", f);
                print_row(t, f, row, widths);
                if (row == 0 && highlight)
                        fputs("\x1b[0m", f);
                fputc('\n', f);
        }
}
