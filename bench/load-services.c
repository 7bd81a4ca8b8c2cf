/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-load's own private system bus and vmsigd: their configuration and
 * the processes. */
#include <stdarg.h>
#include <stdlib.h>

#include "bench-lib.h"
#include "load.h"

#define N_LIFECYCLE_STUBS 8
#define N_MEMWRITE_STUBS 8
#define STUB_RAM_SIZE (4ULL << 20)
#define MEMWRITE_RAM_SIZE (16ULL << 20)

static void append(char **text, size_t *len, size_t *size, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void append(char **text, size_t *len, size_t *size, const char *fmt, ...) {
        va_list ap;
        int n;

        if (!*text)
                return;
        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(*text + *len, *size - *len, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        free(*text);
                        *text = NULL;
                        return;
                }
                if ((size_t) n < *size - *len)
                        break;
                char *grown = realloc(*text, *size * 2 + (size_t) n);
                if (!grown) {
                        free(*text);
                        *text = NULL;
                        return;
                }
                *text = grown;
                *size = *size * 2 + (size_t) n;
        }
        *len += (size_t) n;
}

static int add_target(load_ctx *ctx, const char *name, target_kind kind, uint64_t ram_size) {
        load_target *t = &ctx->targets[ctx->n_targets];

        *t = (load_target) { .kind = kind, .ram_size = ram_size };
        t->name = strdup(name);
        if (!t->name || sd_bus_path_encode(VMSIG_BUS_ENDPOINT_PREFIX, name, &t->path) < 0)
                return -ENOMEM;
        ctx->n_targets++;
        return 0;
}

/* The stubs: lifecycle ones of 4 MiB, MemWrite ones of 16 MiB, the spare.
 * Quotas are off: 200 connections of one uid (root) would otherwise hit
 * the per-uid limits, which are not what this measures. */
static char *daemon_config(load_ctx *ctx) {
        size_t len = 0, size = 4096;
        char *text = malloc(size), name[32];

        ctx->targets = calloc(N_LIFECYCLE_STUBS + N_MEMWRITE_STUBS + 1 + ctx->opt.trigger_vms, sizeof *ctx->targets);
        if (!text || !ctx->targets) {
                free(text);
                return NULL;
        }
        append(&text, &len, &size, "<vmsigd>\n  <log level=\"warning\"/>\n  <audit target=\"stderr\"/>\n");
        append(&text, &len, &size,
               "  <admission max-pending-calls=\"0\" max-subscriptions=\"0\" max-leases=\"0\"/>\n");
        if (ctx->armed)
                append(&text, &len, &size, "  <discovery trigger-dir=\"%s/vms.d\"/>\n", ctx->dir);
        for (unsigned i = 0; i < N_LIFECYCLE_STUBS; i++) {
                snprintf(name, sizeof name, "lc%02u", i);
                append(&text, &len, &size, "  <stub-vm name=\"%s\" ram-size=\"4M\"/>\n", name);
                if (add_target(ctx, name, TARGET_LIFECYCLE, STUB_RAM_SIZE) < 0)
                        goto fail;
        }
        for (unsigned i = 0; i < N_MEMWRITE_STUBS; i++) {
                snprintf(name, sizeof name, "mw%02u", i);
                append(&text, &len, &size, "  <stub-vm name=\"%s\" ram-size=\"16M\"/>\n", name);
                if (add_target(ctx, name, TARGET_MEMWRITE, MEMWRITE_RAM_SIZE) < 0)
                        goto fail;
        }
        append(&text, &len, &size, "  <stub-vm name=\"spare\" ram-size=\"4M\"/>\n</vmsigd>\n");
        if (add_target(ctx, "spare", TARGET_SPARE, STUB_RAM_SIZE) < 0)
                goto fail;
        return text;
fail:
        free(text);
        return NULL;
}

int load_services_start(load_ctx *ctx) {
        char path[256], *daemon;
        int r;

        if (!ctx->opt.vmsigd)
                ctx->opt.vmsigd = "./vmsigd";
        if (!ctx->opt.srcdir)
                ctx->opt.srcdir = getenv("VMSIG_SRCDIR");
        if (!ctx->opt.dbus_daemon)
                ctx->opt.dbus_daemon = getenv("DBUS_DAEMON") && *getenv("DBUS_DAEMON") ? getenv("DBUS_DAEMON")
                                                                                      : "dbus-daemon";
        if (!ctx->opt.srcdir) {
                fprintf(stderr, "bench-load: give --srcdir (or VMSIG_SRCDIR): data/org.vmsig.conf is needed\n");
                return -EINVAL;
        }
        /* vmsigd watches the trigger directory from its start. */
        r = bench_services_prepare(&ctx->svc, "", NULL, ctx->armed);
        if (r < 0)
                return r;
        ctx->dir = ctx->svc.dir;
        daemon = daemon_config(ctx);
        snprintf(path, sizeof path, "%s/vmsigd.conf", ctx->dir);
        r = daemon ? bench_write_file(path, daemon) : -ENOMEM;
        free(daemon);
        if (r >= 0)
                r = bench_services_start(&ctx->svc, ctx->opt.srcdir, ctx->opt.dbus_daemon, ctx->opt.vmsigd);
        /* The clients find the bus as any would; the service's own
         * connection is not one of the load. */
        ctx->svc.bus = sd_bus_flush_close_unref(ctx->svc.bus);
        if (r >= 0 && setenv("DBUS_SYSTEM_BUS_ADDRESS", ctx->svc.address, 1) < 0)
                r = -errno;
        return r;
}

bool load_vmsigd_alive(load_ctx *ctx) {
        return bench_services_alive(&ctx->svc);
}

int load_services_stop(load_ctx *ctx) {
        return bench_services_stop(&ctx->svc, ctx->opt.keep);
}

/* The last lines vmsigd logged, other than audit records. */
void load_print_vmsigd_log(load_ctx *ctx, unsigned lines) {
        if (ctx->svc.dir[0])
                bench_services_print_log(&ctx->svc, lines);
}
