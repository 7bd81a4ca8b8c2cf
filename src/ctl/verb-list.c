/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* list and status: what vmsigd knows about its endpoints. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-endpoint.h"
#include "ctl-json.h"
#include "ctl-pager.h"
#include "ctl-table.h"
#include "ctl-util.h"

/* "power=:1.7,input=:1.9", or "-" when every class is free. */
static char *format_holders(const ctl_endpoint_info *info) {
        char *s = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&s, &n);
        bool any = false;

        if (!f)
                return NULL;
        for (size_t i = 0; i < _CTL_LEASE_CLASS_MAX; i++)
                if (info->holders[i] && *info->holders[i]) {
                        fprintf(f, "%s%s=%s", any ? "," : "", ctl_lease_class_to_string(i), info->holders[i]);
                        any = true;
                }
        if (!any)
                fputc('-', f);
        if (fclose(f) != 0) {
                return mfree(s);
        }
        return s;
}

static int add_row(ctl_table *t, const ctl_endpoint_info *info) {
        _cleanup_free_ char *holders = format_holders(info);
        int r;

        if (!holders)
                return -ENOMEM;
        r = ctl_table_add(t, info->name);
        if (r >= 0)
                r = ctl_table_addf(t, "%" PRIu32, info->vmid);
        if (r >= 0)
                r = ctl_table_add(t, info->backend && *info->backend ? info->backend : "-");
        if (r >= 0)
                r = ctl_table_add(t, info->state);
        if (r >= 0)
                r = ctl_table_add(t, info->bootstrap_state);
        if (r >= 0)
                r = ctl_table_addf(t, "%" PRIu64, info->memctx_epoch);
        if (r >= 0)
                r = ctl_table_add(t, holders);
        return r;
}

static int print_table(const ctl_endpoint_info *infos, size_t n) {
        static const char *const headers[] = { "ENDPOINT", "VMID", "BACKEND", "STATE", "BOOTSTRAP", "EPOCH", "LEASES" };
        _cleanup_(ctl_table_freep) ctl_table *t = ctl_table_new(ELEMENTSOF(headers), headers);
        int r;

        if (!t)
                return ctl_error(-ENOMEM, "Out of memory.");
        for (size_t i = 0; i < n; i++) {
                r = add_row(t, &infos[i]);
                if (r < 0)
                        return ctl_error(r, "Out of memory.");
        }
        ctl_pager_open();
        if (n == 0) {
                if (arg.legend)
                        printf("No endpoints.\n");
                return 0;
        }
        ctl_table_print(t, stdout, arg.legend);
        if (arg.legend)
                printf("\n%zu endpoint%s listed.\n", n, n == 1 ? "" : "s");
        return 0;
}

/* list and status: one document, an array of the same endpoint objects. */
static void print_json_list(const ctl_endpoint_info *infos, size_t n) {
        json_writer w;

        ctl_pager_open();
        json_init(&w, stdout, arg.json == CTL_JSON_PRETTY);
        json_array_begin(&w);
        for (size_t i = 0; i < n; i++)
                ctl_endpoint_info_json(&w, &infos[i]);
        json_array_end(&w);
        fputc('\n', stdout);
}

typedef int (*print_text_fn)(const ctl_endpoint_info *infos, size_t n);

/* What list and status print, and then the infos go. */
static int show_infos(ctl_endpoint_info *infos, size_t n, print_text_fn print_text) {
        int r = 0;

        if (arg.json)
                print_json_list(infos, n);
        else
                r = print_text(infos, n);
        ctl_endpoint_info_free_array(infos, n);
        return r;
}

int verb_list(int argc, char **argv) {
        ctl_endpoint_info *infos = NULL;
        size_t n = 0;
        sd_bus *bus;
        int r = ctl_acquire_bus(false, &bus);

        if (r >= 0)
                r = ctl_endpoint_info_get_all(bus, &infos, &n);
        return r < 0 ? r : show_infos(infos, n, print_table);
}

/* hostnamectl's layout: labels right-aligned on the colon. */
#define LABEL_WIDTH 18

static void print_field(const char *label, const char *value) {
        printf("%*s: %s\n", LABEL_WIDTH, label, value && *value ? value : "-");
}

static void print_capabilities(const ctl_endpoint_info *info) {
        printf("%*s:", LABEL_WIDTH, "Capabilities");
        if (!info->capabilities || !*info->capabilities)
                fputs(" -", stdout);
        for (char **c = info->capabilities; c && *c; c++)
                printf(" %s", *c);
        fputc('\n', stdout);
}

static void print_status(const ctl_endpoint_info *info) {
        static const char *const lease_labels[_CTL_LEASE_CLASS_MAX] = {
                [CTL_LEASE_INPUT] = "Input lease",
                [CTL_LEASE_POWER] = "Power lease",
                [CTL_LEASE_MEMWRITE] = "Memory-write lease",
        };
        char bytes[CTL_BYTES_MAX];

        print_field("Endpoint", info->name);
        print_field("Object", info->path);
        print_field("UUID", info->uuid);
        printf("%*s: %" PRIu32 " (generation %" PRIu32 ")\n", LABEL_WIDTH, "VMID", info->vmid, info->generation);
        print_field("Backend", info->backend);
        print_field("State", info->state);
        printf("%*s: %s (%" PRIu32 " attempt%s%s%s)\n", LABEL_WIDTH, "Bootstrap", info->bootstrap_state,
               info->bootstrap_attempts, info->bootstrap_attempts == 1 ? "" : "s",
               info->bootstrap_method && *info->bootstrap_method ? ", " : "", info->bootstrap_method ?: "");
        printf("%*s: %s%s%s\n", LABEL_WIDTH, "Guest OS", info->guest_os ?: "unknown",
               info->guest_os_release && *info->guest_os_release ? " " : "", info->guest_os_release ?: "");
        printf("%*s: %" PRIu64 "\n", LABEL_WIDTH, "Memctx epoch", info->memctx_epoch);
        printf("%*s: %s (%" PRIu64 " bytes)\n", LABEL_WIDTH, "RAM", ctl_format_bytes(bytes, info->ram_size),
               info->ram_size);
        print_capabilities(info);
        for (size_t i = 0; i < _CTL_LEASE_CLASS_MAX; i++) {
                if (!info->holder_details[i]) {
                        print_field(lease_labels[i], info->holders[i]);
                        continue;
                }
                printf("%*s: %s (%s)\n", LABEL_WIDTH, lease_labels[i], info->holders[i], info->holder_details[i]);
        }
}

static int print_status_all(const ctl_endpoint_info *infos, size_t n) {
        ctl_pager_open();
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        fputc('\n', stdout);
                print_status(&infos[i]);
        }
        return 0;
}

/* Appends name's properties to infos. */
static int get_one(sd_bus *bus, const char *name, ctl_endpoint_info **infos, size_t *n) {
        _cleanup_free_ char *path = NULL;
        ctl_endpoint_info info = {}, *grown;
        int r;

        r = ctl_get_endpoint(bus, name, &path);
        if (r >= 0)
                r = ctl_endpoint_info_get(bus, path, &info);
        if (r < 0) {
                ctl_endpoint_info_done(&info);
                return r;
        }
        grown = reallocarray(*infos, *n + 1, sizeof *grown);
        if (!grown) {
                ctl_endpoint_info_done(&info);
                return ctl_error(-ENOMEM, "Out of memory.");
        }
        *infos = grown;
        (*infos)[(*n)++] = info;
        return 0;
}

int verb_status(int argc, char **argv) {
        ctl_endpoint_info *infos = NULL;
        size_t n = 0;
        sd_bus *bus;
        int ret = ctl_acquire_bus(false, &bus);

        if (ret < 0)
                return ret;
        /* Go on past a bad name, as machinectl status does; fail at the
         * end. What was found is shown after the errors, as one document. */
        for (int i = 1; i < argc; i++) {
                int r = get_one(bus, argv[i], &infos, &n);
                if (r < 0 && ret == 0)
                        ret = r;
        }
        /* Who the holders are (best effort: the endpoints are shown all the
         * same). */
        if (n > 0)
                (void) ctl_endpoint_info_get_holders(bus, infos, n);
        (void) show_infos(infos, n, print_status_all);
        return ret;
}
