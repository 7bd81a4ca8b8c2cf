/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A map with open addressing, keyed by strings or by uint64_t, which one is
 * chosen when it is made. String keys are borrowed: the caller keeps them
 * alive while they are in the map (they usually point into the value).
 * Integer keys are stored by value. Using the other kind's functions on a
 * map is a programming error (asserted). */
typedef struct Hashmap Hashmap;

Hashmap *hashmap_new(void);        /* string keys */
Hashmap *hashmap_new_uint64(void); /* uint64_t keys */
Hashmap *hashmap_free(Hashmap *h);
size_t hashmap_size(const Hashmap *h);

int hashmap_put(Hashmap *h, const char *key, void *value); /* -EEXIST if present */
void *hashmap_get(const Hashmap *h, const char *key);
void *hashmap_remove(Hashmap *h, const char *key);

int hashmap_put_uint64(Hashmap *h, uint64_t key, void *value); /* -EEXIST if present */
void *hashmap_get_uint64(const Hashmap *h, uint64_t key);
void *hashmap_remove_uint64(Hashmap *h, uint64_t key);

/* Removes some entry and returns its value; NULL when the map is empty.
 * For emptying a map whose values go away one by one. */
void *hashmap_steal_first(Hashmap *h);

/* Iteration: start with *state = 0; returns false at the end; *key is
 * the string key (NULL in a uint64 map). Removing entries while iterating
 * is fine, the current one included (a removal never moves another
 * entry); adding is not (it may rehash). */
bool hashmap_iterate(const Hashmap *h, size_t *state, void **value, const char **key);

/* The first value for which match(value, arg) is true, or NULL. (To
 * remove every match, HASHMAP_FOREACH and remove as they come.) */
void *hashmap_find(const Hashmap *h, bool (*match)(const void *value, const void *arg), const void *arg);

/* Frees every value with f (the destructor of the values' type, such as
 * free()), then h (which may be NULL); NULL. For a map that owns its
 * values, as systemd's hashmap_free_with_destructor(). */
#define hashmap_free_with_destructor(h, f)                      \
        ({                                                      \
                Hashmap *_h = (h);                              \
                for (void *_v; (_v = hashmap_steal_first(_h));) \
                        f(_v);                                  \
                hashmap_free(_h);                               \
        })

#define HASHMAP_FOREACH(v, h, st) for (size_t st = 0; hashmap_iterate((h), &st, (void **) &(v), NULL);)
