/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* A string-keyed map with open addressing. Keys are borrowed: the caller
 * keeps them alive while they are in the map (they usually point into the
 * value). */
typedef struct Hashmap Hashmap;

Hashmap *hashmap_new(void);
Hashmap *hashmap_free(Hashmap *h);
int hashmap_put(Hashmap *h, const char *key, void *value); /* -EEXIST if present */
void *hashmap_get(const Hashmap *h, const char *key);
void *hashmap_remove(Hashmap *h, const char *key);
size_t hashmap_size(const Hashmap *h);

/* Iteration: start with *state = 0; returns false at the end. The map must
 * not be modified while iterating. */
bool hashmap_iterate(const Hashmap *h, size_t *state, void **value, const char **key);

/* The first value for which match(value, arg) is true, or NULL. To remove
 * every match, call it again after each removal: a removal ends an
 * iteration. */
void *hashmap_find(const Hashmap *h, bool (*match)(const void *value, const void *arg), const void *arg);

#define HASHMAP_FOREACH(v, h, st) for (size_t st = 0; hashmap_iterate((h), &st, (void **) &(v), NULL);)
