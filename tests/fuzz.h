/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the libFuzzer harnesses in tests/ share: consuming the input, the
 * check that turns a broken promise into a crash libFuzzer reports, and a
 * scratch directory for code that reads its input by path.
 *
 * Each harness defines LLVMFuzzerTestOneInput() and fuzz_teardown(). With
 * libFuzzer (scripts/fuzz.sh) that is all; for `make check` tests/fuzz-main.c
 * adds a main() that replays the seed corpus, then calls fuzz_teardown() so
 * that leak checkers see nothing kept between inputs. */

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_teardown(void);

#define fuzz_check(x)                                                                      \
        do {                                                                               \
                if (!(x)) {                                                                \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
                        abort();                                                           \
                }                                                                          \
        } while (0)

/* The input, consumed from the front; past its end every value is 0, so
 * any input means something. */
typedef struct FuzzInput {
        const uint8_t *p;
        size_t left;
} FuzzInput;

static inline bool fuzz_take(FuzzInput *in, void *buf, size_t n) {
        if (in->left < n) {
                memset(buf, 0, n);
                return false;
        }
        memcpy(buf, in->p, n);
        in->p += n;
        in->left -= n;
        return true;
}

static inline uint8_t fuzz_u8(FuzzInput *in) {
        uint8_t v;

        (void) fuzz_take(in, &v, sizeof v);
        return v;
}

static inline uint16_t fuzz_u16(FuzzInput *in) {
        uint16_t v;

        (void) fuzz_take(in, &v, sizeof v);
        return le16toh(v);
}

static inline uint32_t fuzz_u32(FuzzInput *in) {
        uint32_t v;

        (void) fuzz_take(in, &v, sizeof v);
        return le32toh(v);
}

static inline uint64_t fuzz_u64(FuzzInput *in) {
        uint64_t v;

        (void) fuzz_take(in, &v, sizeof v);
        return le64toh(v);
}

/* A directory of our own under $TMPDIR, made on first use and removed, with
 * what fuzz_scratch_write() put there, by fuzz_scratch_done(). NULL if it
 * cannot be made. */
const char *fuzz_scratch_dir(void);
/* Replaces the file NAME in the scratch directory by data (mode 0600) and
 * puts its path into path; a negative errno on failure. */
int fuzz_scratch_write(const char *name, const void *data, size_t size, char *path, size_t path_size);
void fuzz_scratch_done(void);

/* How many fds the process has open: the same after an input as before,
 * or the code under test leaked one. */
int fuzz_count_fds(void);
