/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* A malloc()ed copy of the n elements of size bytes at p; NULL for none,
 * and without memory (the caller tells the two apart by n). */
static inline void *memdup_array(const void *p, size_t n, size_t size) {
        void *q;

        if (n == 0 || size > SIZE_MAX / n)
                return NULL;
        q = malloc(n * size);
        return q ? memcpy(q, p, n * size) : NULL;
}

static inline void freep(void *p) {
        free(*(void **) p);
}

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

static inline int safe_close(int fd) {
        if (fd >= 0)
                close(fd);
        return -1;
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* For a type freed by func(type): funcp() to use as _cleanup_(funcp) on
 * a pointer that may be NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)      \
        static inline void func##p(type *p) {        \
                if (*p)                              \
                        (void) func(*p);             \
        }

/* name_ref() and name_unref() for a type counted in an unsigned n_ref:
 * the last unref frees it with free_func. unref returns NULL, so that
 * p = name_unref(p) drops the pointer with the reference. name_unref_data()
 * is unref for a callback that is given the object as a void * (an
 * adapter's free). */
#define DEFINE_PRIVATE_TRIVIAL_REF_UNREF_FUNC(type, name, free_func) \
        _unused_ static type *name##_ref(type *p) {                  \
                p->n_ref++;                                          \
                return p;                                            \
        }                                                            \
        _unused_ static type *name##_unref(type *p) {                \
                if (p && --p->n_ref == 0)                            \
                        free_func(p);                                \
                return NULL;                                         \
        }                                                            \
        _unused_ static void name##_unref_data(void *data) {         \
                (void) name##_unref(data);                           \
        }

/* Hand ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                                  \
        ({                                           \
                __typeof__(p) _tp = (p);             \
                (p) = NULL;                          \
                _tp;                                 \
        })
#define TAKE_FD(fd)                                  \
        ({                                           \
                int _tf = (fd);                      \
                (fd) = -1;                           \
                _tf;                                 \
        })
