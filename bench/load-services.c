/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-load's own private system bus and vmsigd: their configuration and
 * the processes. */
#include <stdlib.h>

#include "bench-lib.h"
#include "load.h"

#define N_LIFECYCLE_STUBS 8
#define N_MEMWRITE_STUBS 8
#define STUB_RAM_SIZE (4ULL << 20)
#define MEMWRITE_RAM_SIZE (16ULL << 20)

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
        static const struct {
                const char *prefix, *size;
                target_kind kind;
                uint64_t ram;
                unsigned n;
        } stubs[] = {
                { "lc", "4M", TARGET_LIFECYCLE, STUB_RAM_SIZE, N_LIFECYCLE_STUBS },
                { "mw", "16M", TARGET_MEMWRITE, MEMWRITE_RAM_SIZE, N_MEMWRITE_STUBS },
        };
        char *text = NULL, name[32];
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        int r = 0;

        ctx->targets = calloc(N_LIFECYCLE_STUBS + N_MEMWRITE_STUBS + 1 + ctx->opt.trigger_vms, sizeof *ctx->targets);
        if (!f || !ctx->targets)
                r = -ENOMEM;
        else {
                fprintf(f, "<vmsigd>\n  <log level=\"warning\"/>\n  <audit target=\"stderr\"/>\n");
                fprintf(f, "  <admission max-pending-calls=\"0\" max-subscriptions=\"0\" max-leases=\"0\"/>\n");
                if (ctx->armed)
                        fprintf(f, "  <discovery trigger-dir=\"%s/vms.d\"/>\n", ctx->dir);
        }
        for (size_t k = 0; r >= 0 && k < BENCH_ELEMENTS(stubs); k++)
                for (unsigned i = 0; r >= 0 && i < stubs[k].n; i++) {
                        snprintf(name, sizeof name, "%s%02u", stubs[k].prefix, i);
                        fprintf(f, "  <stub-vm name=\"%s\" ram-size=\"%s\"/>\n", name, stubs[k].size);
                        r = add_target(ctx, name, stubs[k].kind, stubs[k].ram);
                }
        if (r >= 0) {
                fprintf(f, "  <stub-vm name=\"spare\" ram-size=\"4M\"/>\n</vmsigd>\n");
                r = add_target(ctx, "spare", TARGET_SPARE, STUB_RAM_SIZE);
        }
        if (f && fclose(f) != 0)
                r = -ENOMEM;
        if (r < 0) {
                free(text);
                return NULL;
        }
        return text;
}

int load_services_start(load_ctx *ctx) {
        char path[256], *daemon;
        int r;

        if (!ctx->opt.vmsigd)
                ctx->opt.vmsigd = "./vmsigd";
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
