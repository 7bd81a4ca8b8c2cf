/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"

#define TOMBSTONE ((const char *) (uintptr_t) 1)

typedef struct Bucket {
        const char *key;
        void *value;
} Bucket;

struct Hashmap {
        Bucket *buckets;
        size_t n_buckets; /* power of two */
        size_t n_items;
        size_t n_used;    /* items plus tombstones */
};

static size_t hash_string(const char *s) {
        /* FNV-1a: short keys, no adversary that could pick colliding names
         * faster than the bus rate limits them. */
        uint64_t h = 0xcbf29ce484222325ULL;
        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 0x100000001b3ULL;
        return (size_t) h;
}

Hashmap *hashmap_new(void) {
        return calloc(1, sizeof(Hashmap));
}

Hashmap *hashmap_free(Hashmap *h) {
        if (h) {
                free(h->buckets);
                free(h);
        }
        return NULL;
}

static Bucket *find_bucket(const Hashmap *h, const char *key) {
        if (h->n_buckets == 0)
                return NULL;
        size_t mask = h->n_buckets - 1;
        for (size_t i = hash_string(key) & mask;; i = (i + 1) & mask) {
                Bucket *b = &h->buckets[i];
                if (!b->key)
                        return NULL;
                if (b->key != TOMBSTONE && strcmp(b->key, key) == 0)
                        return b;
        }
}

static void insert_unchecked(Hashmap *h, const char *key, void *value) {
        size_t mask = h->n_buckets - 1;
        size_t i = hash_string(key) & mask;
        while (h->buckets[i].key && h->buckets[i].key != TOMBSTONE)
                i = (i + 1) & mask;
        if (!h->buckets[i].key)
                h->n_used++;
        h->buckets[i] = (Bucket) { key, value };
        h->n_items++;
}

static int resize(Hashmap *h, size_t n) {
        Bucket *old = h->buckets;
        size_t n_old = h->n_buckets;

        h->buckets = calloc(n, sizeof(Bucket));
        if (!h->buckets) {
                h->buckets = old;
                return -ENOMEM;
        }
        h->n_buckets = n;
        h->n_items = h->n_used = 0;
        for (size_t i = 0; i < n_old; i++)
                if (old[i].key && old[i].key != TOMBSTONE)
                        insert_unchecked(h, old[i].key, old[i].value);
        free(old);
        return 0;
}

int hashmap_put(Hashmap *h, const char *key, void *value) {
        if (find_bucket(h, key))
                return -EEXIST;
        /* Keep the load (tombstones included) under 3/4 so probes stay short
         * and always terminate. */
        if ((h->n_used + 1) * 4 >= h->n_buckets * 3) {
                size_t n = h->n_buckets ? h->n_buckets : 8;
                while ((h->n_items + 1) * 2 >= n)
                        n *= 2;
                int r = resize(h, n);
                if (r < 0)
                        return r;
        }
        insert_unchecked(h, key, value);
        return 0;
}

void *hashmap_get(const Hashmap *h, const char *key) {
        Bucket *b = find_bucket(h, key);
        return b ? b->value : NULL;
}

void *hashmap_remove(Hashmap *h, const char *key) {
        Bucket *b = find_bucket(h, key);
        if (!b)
                return NULL;
        void *v = b->value;
        b->key = TOMBSTONE;
        b->value = NULL;
        h->n_items--;
        return v;
}

size_t hashmap_size(const Hashmap *h) {
        return h ? h->n_items : 0;
}

bool hashmap_iterate(const Hashmap *h, size_t *state, void **value, const char **key) {
        if (!h)
                return false;
        for (; *state < h->n_buckets; (*state)++) {
                Bucket *b = &h->buckets[*state];
                if (b->key && b->key != TOMBSTONE) {
                        if (value)
                                *value = b->value;
                        if (key)
                                *key = b->key;
                        (*state)++;
                        return true;
                }
        }
        return false;
}

void *hashmap_find(const Hashmap *h, bool (*match)(const void *value, const void *arg), const void *arg) {
        void *v;

        HASHMAP_FOREACH(v, h, st)
                if (match(v, arg))
                        return v;
        return NULL;
}
