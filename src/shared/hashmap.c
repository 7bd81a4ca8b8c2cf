/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"

typedef enum bucket_state { BUCKET_EMPTY, BUCKET_USED, BUCKET_TOMBSTONE } bucket_state;

/* The key as the map sees it: one of the two, by the map's kind. */
typedef struct map_key {
        const char *string;
        uint64_t number;
} map_key;

typedef struct Bucket {
        map_key key;
        void *value;
        bucket_state state;
} Bucket;

struct Hashmap {
        Bucket *buckets;
        size_t n_buckets; /* power of two */
        size_t n_items;
        size_t n_used;    /* items plus tombstones */
        bool uint64_keys;
};

static size_t hash_key(const Hashmap *h, map_key k) {
        uint64_t x;

        if (h->uint64_keys) {
                /* splitmix64's finalizer: ids and uids are dense and small,
                 * their low bits alone would cluster. */
                x = k.number;
                x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
                x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
                return (size_t) (x ^ (x >> 31));
        }
        /* FNV-1a: short keys, no adversary that could pick colliding names
         * faster than the bus rate limits them. */
        x = 0xcbf29ce484222325ULL;
        for (const char *s = k.string; *s; s++)
                x = (x ^ (unsigned char) *s) * 0x100000001b3ULL;
        return (size_t) x;
}

static bool key_equal(const Hashmap *h, map_key a, map_key b) {
        return h->uint64_keys ? a.number == b.number : strcmp(a.string, b.string) == 0;
}

static Hashmap *map_new(bool uint64_keys) {
        Hashmap *h = calloc(1, sizeof(Hashmap));

        if (h)
                h->uint64_keys = uint64_keys;
        return h;
}

Hashmap *hashmap_new(void) {
        return map_new(false);
}

Hashmap *hashmap_new_uint64(void) {
        return map_new(true);
}

Hashmap *hashmap_free(Hashmap *h) {
        if (h) {
                free(h->buckets);
                free(h);
        }
        return NULL;
}

static Bucket *find_bucket(const Hashmap *h, map_key key) {
        if (h->n_buckets == 0)
                return NULL;
        size_t mask = h->n_buckets - 1;
        for (size_t i = hash_key(h, key) & mask;; i = (i + 1) & mask) {
                Bucket *b = &h->buckets[i];
                if (b->state == BUCKET_EMPTY)
                        return NULL;
                if (b->state == BUCKET_USED && key_equal(h, b->key, key))
                        return b;
        }
}

static void insert_unchecked(Hashmap *h, map_key key, void *value) {
        size_t mask = h->n_buckets - 1;
        size_t i = hash_key(h, key) & mask;
        while (h->buckets[i].state == BUCKET_USED)
                i = (i + 1) & mask;
        if (h->buckets[i].state == BUCKET_EMPTY)
                h->n_used++;
        h->buckets[i] = (Bucket) { key, value, BUCKET_USED };
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
                if (old[i].state == BUCKET_USED)
                        insert_unchecked(h, old[i].key, old[i].value);
        free(old);
        return 0;
}

static int put(Hashmap *h, map_key key, void *value) {
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

static void *get(const Hashmap *h, map_key key) {
        Bucket *b = find_bucket(h, key);
        return b ? b->value : NULL;
}

/* A tombstone, never a move: iterations going on stay valid. */
static void *remove_bucket(Hashmap *h, Bucket *b) {
        void *v = b->value;

        *b = (Bucket) { .state = BUCKET_TOMBSTONE };
        h->n_items--;
        return v;
}

static void *remove_key(Hashmap *h, map_key key) {
        Bucket *b = find_bucket(h, key);
        return b ? remove_bucket(h, b) : NULL;
}

int hashmap_put(Hashmap *h, const char *key, void *value) {
        assert(!h->uint64_keys);
        return put(h, (map_key) { .string = key }, value);
}

void *hashmap_get(const Hashmap *h, const char *key) {
        assert(!h->uint64_keys);
        return get(h, (map_key) { .string = key });
}

void *hashmap_remove(Hashmap *h, const char *key) {
        assert(!h->uint64_keys);
        return remove_key(h, (map_key) { .string = key });
}

int hashmap_put_uint64(Hashmap *h, uint64_t key, void *value) {
        assert(h->uint64_keys);
        return put(h, (map_key) { .number = key }, value);
}

void *hashmap_get_uint64(const Hashmap *h, uint64_t key) {
        assert(h->uint64_keys);
        return get(h, (map_key) { .number = key });
}

void *hashmap_remove_uint64(Hashmap *h, uint64_t key) {
        assert(h->uint64_keys);
        return remove_key(h, (map_key) { .number = key });
}

size_t hashmap_size(const Hashmap *h) {
        return h ? h->n_items : 0;
}

void *hashmap_steal_first(Hashmap *h) {
        if (!h || h->n_items == 0)
                return NULL;
        for (size_t i = 0; i < h->n_buckets; i++)
                if (h->buckets[i].state == BUCKET_USED)
                        return remove_bucket(h, &h->buckets[i]);
        return NULL;
}

bool hashmap_iterate(const Hashmap *h, size_t *state, void **value, const char **key) {
        if (!h)
                return false;
        for (; *state < h->n_buckets; (*state)++) {
                Bucket *b = &h->buckets[*state];
                if (b->state == BUCKET_USED) {
                        if (value)
                                *value = b->value;
                        if (key)
                                *key = b->key.string;
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
