/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The endpoints bench-load knows, and the MemWrite ledger: every write
 * attempt gets bytes of guest RAM that no other attempt touches, with a
 * pattern of its own, so that the RAM at the end tells exactly which
 * attempts were applied, and that refused ones left no trace. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load.h"

load_target *load_target_find(load_ctx *ctx, const char *name) {
        for (size_t i = 0; i < ctx->n_targets; i++)
                if (strcmp(ctx->targets[i].name, name) == 0)
                        return &ctx->targets[i];
        return NULL;
}

/* The name in an endpoint path: the escaped label, and "_rN" after it for
 * a VM added again (escaped labels never contain "_r": their '_' is always
 * followed by two hex digits). */
char *load_path_to_name(const char *path) {
        size_t prefix = strlen(VMSIG_BUS_ENDPOINT_PREFIX "/");
        char *copy, *suffix, *name = NULL;

        if (strncmp(path, VMSIG_BUS_ENDPOINT_PREFIX "/", prefix) != 0 || !(copy = strdup(path)))
                return NULL;
        suffix = strstr(copy + prefix, "_r");
        if (suffix && suffix[2] && strspn(suffix + 2, "0123456789") == strlen(suffix + 2))
                *suffix = '\0';
        if (sd_bus_path_decode(copy, VMSIG_BUS_ENDPOINT_PREFIX, &name) <= 0)
                name = NULL;
        free(copy);
        return name;
}

load_target *load_target_by_path(load_ctx *ctx, const char *path) {
        char *name = path ? load_path_to_name(path) : NULL;
        load_target *t = name ? load_target_find(ctx, name) : NULL;

        free(name);
        return t;
}

/* A random attached target of one of the kinds (bits of target_kind). */
load_target *load_target_pick(load_ctx *ctx, uint64_t *rng, unsigned kinds) {
        size_t n = 0, pick;

        for (size_t i = 0; i < ctx->n_targets; i++)
                if (ctx->targets[i].attached && (kinds & (1u << ctx->targets[i].kind)))
                        n++;
        if (n == 0)
                return NULL;
        pick = load_rand_below(rng, (unsigned) n);
        for (size_t i = 0; i < ctx->n_targets; i++)
                if (ctx->targets[i].attached && (kinds & (1u << ctx->targets[i].kind)) && pick-- == 0)
                        return &ctx->targets[i];
        return NULL;
}

long load_write_new(load_target *t, uint64_t *rng, uint32_t len) {
        /* A gap before each write: a write that spills over by one byte
         * lands on bytes that must stay zero. */
        uint64_t offset = t->cursor + 1 + load_rand_below(rng, 64);

        if (offset + len > t->ram_size - LOAD_GUARD)
                return -1;
        if (t->n_writes == t->writes_size) {
                size_t size = t->writes_size ? t->writes_size * 2 : 256;
                load_write *grown = realloc(t->writes, size * sizeof *grown);
                if (!grown)
                        return -1;
                t->writes = grown;
                t->writes_size = size;
        }
        t->cursor = offset + len;
        t->writes[t->n_writes] = (load_write) { .offset = offset, .len = len, .seed = (uint32_t) load_rand(rng) };
        return (long) t->n_writes++;
}

/* Never a zero byte: applied bytes must differ from untouched RAM. */
void load_write_pattern(const load_write *w, uint8_t *buf) {
        uint64_t x = 0;

        for (uint32_t j = 0; j < w->len; j++) {
                if (j % 8 == 0) {
                        uint64_t state = (uint64_t) w->seed * 0x100000001b3ULL + j;
                        x = load_rand(&state);
                }
                buf[j] = (uint8_t) (x >> ((j % 8) * 8)) ?: 0xa5;
        }
}

void load_target_log(load_target *t, char op) {
        load_text_append(&t->log, op);
        if (op == 'P')
                t->paused = true;
        else if (op == 'R')
                t->paused = false;
}

static int pread_all(int fd, uint8_t *buf, uint64_t size) {
        for (uint64_t done = 0; done < size;) {
                ssize_t n = pread(fd, buf + done, size - done, (off_t) done);
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                done += (uint64_t) n;
        }
        return 0;
}

/* The RAM of a stub, through the read-only fd SubscribeMemctx hands out. */
static int read_stub_ram(load_ctx *ctx, load_target *t, uint8_t *buf) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint64_t dtb, epoch, size;
        int fd, r;

        r = sd_bus_call_method(ctx->ctl, VMSIG_BUS_NAME, t->path, VMSIG_BUS_ENDPOINT_INTERFACE, "SubscribeMemctx",
                               &error, &reply, "");
        if (r >= 0)
                r = sd_bus_message_read(reply, "httt", &fd, &dtb, &epoch, &size);
        if (r >= 0 && size != t->ram_size)
                r = -EBADMSG;
        if (r >= 0)
                r = pread_all(fd, buf, t->ram_size);
        if (r < 0)
                load_fail(ctx, "cannot read the RAM of '%s' through its memctx fd: %s", t->name,
                          error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        /* The controller does not stay subscribed: the daemon must end the
         * run as it started. */
        (void) sd_bus_call_method(ctx->ctl, VMSIG_BUS_NAME, t->path, VMSIG_BUS_ENDPOINT_INTERFACE, "UnsubscribeMemctx",
                                  NULL, NULL, "");
        return r;
}

/* A fake QEMU's RAM is our own file. */
static int read_file_ram(load_ctx *ctx, load_target *t, uint8_t *buf) {
        const char *path = load_vm_ram_path(t->vm);
        int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

        r = fd < 0 ? -errno : pread_all(fd, buf, t->ram_size);
        if (fd >= 0)
                close(fd);
        if (r < 0)
                load_fail(ctx, "cannot read the RAM file %s: %s", path, strerror(-r));
        return r;
}

static void expected_ram(load_target *t, uint8_t *buf, uint64_t *applied, uint64_t *refused) {
        memset(buf, 0, t->ram_size);
        for (size_t i = 0; i < t->n_writes; i++) {
                const load_write *w = &t->writes[i];
                if (w->applied) {
                        load_write_pattern(w, buf + w->offset);
                        (*applied)++;
                } else
                        (*refused)++;
        }
}

/* The attempt whose bytes (or whose gap before them) hold offset. */
static const load_write *write_at(const load_target *t, uint64_t offset) {
        for (size_t i = 0; i < t->n_writes; i++)
                if (offset < t->writes[i].offset + t->writes[i].len)
                        return &t->writes[i];
        return NULL;
}

static uint64_t compare_ram(load_ctx *ctx, load_target *t, const uint8_t *got, const uint8_t *want) {
        uint64_t bad = 0;

        for (uint64_t i = 0; i < t->ram_size; i++) {
                if (got[i] == want[i])
                        continue;
                if (bad++ == 0) {
                        const load_write *w = write_at(t, i);
                        load_fail(ctx,
                                  "guest RAM of '%s' differs at 0x%" PRIx64 ": 0x%02x, expected 0x%02x (%s write at "
                                  "0x%" PRIx64 ", %u bytes, kind %u, %s)",
                                  t->name, i, got[i], want[i], !w ? "no" : w->applied ? "an applied" : "a refused",
                                  w ? w->offset : 0, w ? w->len : 0, w ? w->kind : 0,
                                  w && !w->applied ? load_err_name((load_err) w->err) : "-");
                }
        }
        if (bad > 1)
                load_fail(ctx, "guest RAM of '%s': %" PRIu64 " bytes differ in all", t->name, bad);
        return bad;
}

typedef struct verify_totals {
        uint64_t applied, refused, bytes_checked, bytes_wrong;
} verify_totals;

static int verify_target(load_ctx *ctx, load_target *t, uint8_t *got, uint8_t *want, verify_totals *v) {
        uint64_t applied = 0, refused = 0;
        int r;

        for (size_t i = 0; i < t->n_writes; i++)
                if (!t->writes[i].decided) {
                        load_fail(ctx, "a MemWrite on '%s' never got a reply", t->name);
                        return -EIO;
                }
        r = t->kind == TARGET_TRIGGER ? read_file_ram(ctx, t, got) : read_stub_ram(ctx, t, got);
        if (r < 0)
                return r;
        expected_ram(t, want, &applied, &refused);
        v->bytes_wrong += compare_ram(ctx, t, got, want);
        v->bytes_checked += t->ram_size;
        v->applied += applied;
        v->refused += refused;
        return 0;
}

/* Every attempt so far, of this round and the ones before: the RAM keeps
 * them all. */
int load_memwrite_verify(load_ctx *ctx) {
        verify_totals v = {};
        uint64_t max = 0;
        uint8_t *got, *want;
        int r = 0;

        for (size_t i = 0; i < ctx->n_targets; i++)
                if (ctx->targets[i].n_writes > 0 && ctx->targets[i].ram_size > max)
                        max = ctx->targets[i].ram_size;
        got = malloc(max ?: 1);
        want = malloc(max ?: 1);
        if (!got || !want)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < ctx->n_targets; i++)
                if (ctx->targets[i].n_writes > 0)
                        r = verify_target(ctx, &ctx->targets[i], got, want, &v);
        free(got);
        free(want);
        printf("  MemWrite: %" PRIu64 " attempts applied, %" PRIu64 " refused; %" PRIu64 " MiB of guest RAM compared,"
               " %" PRIu64 " bytes wrong\n",
               v.applied, v.refused, v.bytes_checked >> 20, v.bytes_wrong);
        printf("@ load-memwrite applied=%" PRIu64 " refused=%" PRIu64 " checked_mib=%" PRIu64 " wrong_bytes=%" PRIu64
               "\n",
               v.applied, v.refused, v.bytes_checked >> 20, v.bytes_wrong);
        return r;
}
