/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Private to src/discovery: an inotify watch on one directory of *.xml
 * files, registered with the core as an fd source. A directory that does not
 * exist (yet, or any more) is waited for by watching its nearest existing
 * ancestor, so that nothing polls. */

#include <stdbool.h>
#include <stddef.h>

#include "vmsig-core.h"

typedef struct dirwatch dirwatch;

typedef struct dirwatch_ops {
        /* name was closed after writing, renamed in, or touched. */
        void (*changed)(dirwatch *w, const char *name, void *userdata);
        /* name was removed or renamed away. */
        void (*removed)(dirwatch *w, const char *name, void *userdata);
        /* The directory appeared or went away, or events were lost: compare
         * what is known with dirwatch_list(). */
        void (*rescan)(dirwatch *w, void *userdata);
} dirwatch_ops;

int dirwatch_new(vmsig_core *core, const char *path, const dirwatch_ops *ops, void *userdata, dirwatch **ret);
/* Starts watching, then calls rescan once. Fails if the path cannot be
 * watched for another reason than not existing yet. */
int dirwatch_start(dirwatch *w);
dirwatch *dirwatch_free(dirwatch *w);
const char *dirwatch_path(const dirwatch *w);
/* The names of the candidate files in the directory now, sorted; none when
 * the directory does not exist. Free with dirwatch_list_free(). */
int dirwatch_list(dirwatch *w, char ***ret, size_t *ret_n);
void dirwatch_list_free(char **names, size_t n);
/* *.xml, not a dotfile: editors' and writers' temporary names are not. */
bool dirwatch_is_candidate(const char *name);
