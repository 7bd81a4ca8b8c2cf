/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "macro.h"
#include "qmp-hmp.h"
#include "qmp-ram-map.h"

typedef struct query {
        qmp_monitor monitor;
        qmp_ram_target ram; /* its name our copy */
        json_object *backends; /* the qom-list answer; the one being asked is at index next - 1 */
        size_t next;
        char *id; /* the backend that holds the RAM */
        qmp_ram_map_fn fn;
        void *userdata;
} query;

static void query_free(query *q) {
        json_object_put(q->backends);
        free(q->id);
        free((char *) q->ram.name);
        free(q);
}

static void finish(query *q, int error, const char *message, vmsig_gpa_range *ranges, size_t n) {
        q->fn(error, message, ranges, n, q->userdata);
        query_free(q);
}

static void finish_reply(query *q, const qmp_reply *reply) {
        finish(q, reply->error < 0 ? reply->error : -EIO, reply->message ?: "QEMU gave no answer", NULL, 0);
}

/* The legacy area of a PC: the VGA window and the BIOS areas. */
#define LEGACY_START UINT64_C(0xa0000)
#define LEGACY_END UINT64_C(0x100000)

size_t qmp_ram_map_close_legacy_hole(vmsig_gpa_range *r, size_t n) {
        assert(r || n == 0);
        for (size_t i = 0; i + 1 < n; i++) {
                uint64_t end = r[i].gpa + r[i].size, offset_end = r[i].offset + r[i].size;

                if (end < LEGACY_START || r[i + 1].gpa > LEGACY_END || r[i + 1].gpa <= end ||
                    r[i + 1].offset < offset_end || r[i + 1].gpa - end != r[i + 1].offset - offset_end)
                        continue;
                r[i].size = r[i + 1].gpa + r[i + 1].size - r[i].gpa;
                memmove(&r[i + 1], &r[i + 2], (n - i - 2) * sizeof *r);
                return n - 1;
        }
        return n;
}

static void on_mtree(const qmp_reply *reply, void *userdata) {
        query *q = userdata;
        vmsig_gpa_range *ranges = NULL;
        const char *text;
        char msg[160];
        size_t n = 0;
        int r;

        if (reply->error < 0)
                return finish_reply(q, reply);
        text = json_object_get_string(reply->result);
        /* The parser stops at a NUL: a text with one would read short. */
        if (!text || (size_t) json_object_get_string_len(reply->result) != strlen(text))
                return finish(q, -EBADMSG, "QEMU's info mtree answer is not text", NULL, 0);
        r = qmp_hmp_parse_mtree(text, q->id, q->ram.size, &ranges, &n);
        if (r < 0) {
                snprintf(msg, sizeof msg, "Cannot read the ranges of memory backend '%s' from QEMU's info mtree: %s",
                         q->id, strerror(-r));
                return finish(q, r, msg, NULL, 0);
        }
        finish(q, 0, NULL, ranges, qmp_ram_map_close_legacy_hole(ranges, n));
}

static void ask_mtree(query *q) {
        int r = qmp_monitor_execute(&q->monitor, "human-monitor-command", qmp_hmp_command("info mtree -f"), on_mtree,
                                    q);
        if (r < 0)
                finish(q, r, "Cannot ask QEMU for its memory tree", NULL, 0);
}

static const char *entry_name(query *q, size_t i) {
        json_object *name = NULL;

        (void) json_object_object_get_ex(json_object_array_get_idx(q->backends, i), "name", &name);
        return json_object_get_string(name);
}

/* A file backend: the same inode, whatever the path says (a symlink, a
 * relative path on QEMU's command line). A memfd backend: the same size,
 * and no other one of it. */
static int matches(query *q, json_object *value) {
        struct stat st;

        if (!q->ram.memfd)
                return json_object_is_type(value, json_type_string) &&
                       stat(json_object_get_string(value), &st) == 0 && st.st_dev == q->ram.dev &&
                       st.st_ino == q->ram.ino;
        if (!json_object_is_type(value, json_type_int) || (uint64_t) json_object_get_uint64(value) != q->ram.size)
                return 0;
        return q->id ? -ENOTUNIQ : 1;
}

static void ask_next(query *q);

static void on_property(const qmp_reply *reply, void *userdata) {
        query *q = userdata;
        char msg[160];
        int r;

        if (reply->error < 0)
                return finish_reply(q, reply);
        r = matches(q, reply->result);
        if (r == -ENOTUNIQ) {
                snprintf(msg, sizeof msg, "QEMU has two memfd backends of %" PRIu64 " bytes, '%s' and '%s'", q->ram.size,
                         q->id, entry_name(q, q->next - 1));
                return finish(q, r, msg, NULL, 0);
        }
        if (r > 0) {
                q->id = strdup(entry_name(q, q->next - 1));
                if (!q->id)
                        return finish(q, -ENOMEM, "Out of memory", NULL, 0);
                /* A file's inode is the one: no need to look further. */
                if (!q->ram.memfd)
                        return ask_mtree(q);
        }
        ask_next(q);
}

/* Whether entry is a backend of the target's kind, with a usable name. */
static bool is_candidate(query *q, json_object *entry, char *path, size_t size) {
        json_object *name = NULL, *type = NULL;
        int k;

        (void) json_object_object_get_ex(entry, "name", &name);
        (void) json_object_object_get_ex(entry, "type", &type);
        if (!json_object_is_type(name, json_type_string) || !json_object_is_type(type, json_type_string) ||
            strcmp(json_object_get_string(type),
                   q->ram.memfd ? "child<memory-backend-memfd>" : "child<memory-backend-file>") != 0)
                return false;
        k = snprintf(path, size, "/objects/%s", json_object_get_string(name));
        return k >= 0 && (size_t) k < size; /* no id of ours is that long */
}

/* The next backend of the target's kind, if any; then the mtree of the
 * one found. */
static void ask_next(query *q) {
        size_t n = json_object_array_length(q->backends);
        char msg[160], path[256];
        json_object *args;
        int r;

        for (; q->next < n; q->next++) {
                if (!is_candidate(q, json_object_array_get_idx(q->backends, q->next), path, sizeof path))
                        continue;
                args = json_object_new_object();
                if (!args || json_object_object_add(args, "path", json_object_new_string(path)) < 0 ||
                    json_object_object_add(args, "property",
                                           json_object_new_string(q->ram.memfd ? "size" : "mem-path")) < 0) {
                        json_object_put(args);
                        return finish(q, -ENOMEM, "Out of memory", NULL, 0);
                }
                q->next++;
                r = qmp_monitor_execute(&q->monitor, "qom-get", args, on_property, q);
                if (r < 0)
                        finish(q, r, "Cannot ask QEMU about a memory backend", NULL, 0);
                return;
        }
        if (q->id)
                return ask_mtree(q);
        snprintf(msg, sizeof msg, "No memory backend of QEMU's keeps its memory in %s", q->ram.name);
        finish(q, -ENOENT, msg, NULL, 0);
}

static void on_objects(const qmp_reply *reply, void *userdata) {
        query *q = userdata;

        if (reply->error < 0)
                return finish_reply(q, reply);
        if (!json_object_is_type(reply->result, json_type_array))
                return finish(q, -EBADMSG, "QEMU's qom-list answer is not a list", NULL, 0);
        q->backends = json_object_get(reply->result);
        ask_next(q);
}

int qmp_ram_map_query(const qmp_monitor *m, const qmp_ram_target *ram, qmp_ram_map_fn fn, void *userdata) {
        json_object *args;
        query *q;
        int r;

        assert(m && ram && ram->name && fn);
        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        *q = (query) { .monitor = *m, .ram = *ram, .fn = fn, .userdata = userdata };
        q->ram.name = strdup(ram->name);
        args = json_object_new_object();
        if (!q->ram.name || !args || json_object_object_add(args, "path", json_object_new_string("/objects")) < 0) {
                json_object_put(args);
                query_free(q);
                return -ENOMEM;
        }
        r = qmp_monitor_execute(&q->monitor, "qom-list", args, on_objects, q);
        if (r < 0)
                query_free(q);
        return r;
}
