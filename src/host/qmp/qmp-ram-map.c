/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "macro.h"
#include "qmp-hmp.h"
#include "qmp-ram-map.h"

typedef struct query {
        qmp_conn *conn;
        char *ram_path;
        struct stat ram; /* the file, as we see it */
        json_object *backends; /* the qom-list answer; the one being asked is at index next - 1 */
        size_t next;
        char *id; /* the backend whose file it is */
        qmp_ram_map_fn fn;
        void *userdata;
} query;

static void query_free(query *q) {
        json_object_put(q->backends);
        free(q->id);
        free(q->ram_path);
        free(q);
}

static void finish(query *q, int error, const char *message, vmsig_gpa_range *ranges, size_t n) {
        q->fn(error, message, ranges, n, q->userdata);
        query_free(q);
}

static void finish_reply(query *q, const qmp_reply *reply) {
        finish(q, reply->error < 0 ? reply->error : -EIO, reply->message ?: "QEMU gave no answer", NULL, 0);
}

#define PAM_START UINT64_C(0xc0000)
#define PAM_END UINT64_C(0x100000)

size_t qmp_ram_map_close_pam_hole(vmsig_gpa_range *r, size_t n) {
        assert(r || n == 0);
        for (size_t i = 0; i + 1 < n; i++) {
                uint64_t end = r[i].gpa + r[i].size, offset_end = r[i].offset + r[i].size;

                if (end < PAM_START || r[i + 1].gpa > PAM_END || r[i + 1].gpa <= end ||
                    r[i + 1].offset < offset_end || r[i + 1].gpa - end != r[i + 1].offset - offset_end)
                        continue;
                r[i].size = r[i + 1].gpa + r[i + 1].size - r[i].gpa;
                memmove(&r[i + 1], &r[i + 2], (n - i - 2) * sizeof *r);
                return n - 1;
        }
        return n;
}

static void on_mtree(qmp_conn *c, const qmp_reply *reply, void *userdata) {
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
        r = qmp_hmp_parse_mtree(text, q->id, (uint64_t) q->ram.st_size, &ranges, &n);
        if (r < 0) {
                snprintf(msg, sizeof msg, "Cannot read the ranges of memory backend '%s' from QEMU's info mtree: %s",
                         q->id, strerror(-r));
                return finish(q, r, msg, NULL, 0);
        }
        finish(q, 0, NULL, ranges, qmp_ram_map_close_pam_hole(ranges, n));
}

static void ask_next(query *q);

static void on_mem_path(qmp_conn *c, const qmp_reply *reply, void *userdata) {
        query *q = userdata;
        json_object *name = NULL, *entry;
        struct stat st;
        int r;

        if (reply->error < 0)
                return finish_reply(q, reply);
        entry = json_object_array_get_idx(q->backends, q->next - 1);
        (void) json_object_object_get_ex(entry, "name", &name);
        /* The same inode, whatever the path says: a symlink, a relative
         * path on QEMU's command line. */
        if (json_object_is_type(reply->result, json_type_string) &&
            stat(json_object_get_string(reply->result), &st) == 0 && st.st_dev == q->ram.st_dev &&
            st.st_ino == q->ram.st_ino) {
                q->id = strdup(json_object_get_string(name));
                if (!q->id)
                        return finish(q, -ENOMEM, "Out of memory", NULL, 0);
                r = qmp_conn_execute(q->conn, "human-monitor-command", qmp_hmp_command("info mtree -f"), on_mtree, q);
                if (r < 0)
                        finish(q, r, "Cannot ask QEMU for its memory tree", NULL, 0);
                return;
        }
        ask_next(q);
}

/* The next backend that keeps its memory in a file, if any. */
static void ask_next(query *q) {
        size_t n = json_object_array_length(q->backends);
        char msg[160];
        int r;

        for (; q->next < n; q->next++) {
                json_object *entry = json_object_array_get_idx(q->backends, q->next), *name = NULL, *type = NULL;
                json_object *args;

                (void) json_object_object_get_ex(entry, "name", &name);
                (void) json_object_object_get_ex(entry, "type", &type);
                if (!json_object_is_type(name, json_type_string) || !json_object_is_type(type, json_type_string) ||
                    strcmp(json_object_get_string(type), "child<memory-backend-file>") != 0)
                        continue;
                char path[256];
                int k = snprintf(path, sizeof path, "/objects/%s", json_object_get_string(name));
                if (k < 0 || (size_t) k >= sizeof path)
                        continue; /* no id of ours is that long */
                args = json_object_new_object();
                if (!args || json_object_object_add(args, "path", json_object_new_string(path)) < 0 ||
                    json_object_object_add(args, "property", json_object_new_string("mem-path")) < 0) {
                        json_object_put(args);
                        return finish(q, -ENOMEM, "Out of memory", NULL, 0);
                }
                q->next++;
                r = qmp_conn_execute(q->conn, "qom-get", args, on_mem_path, q);
                if (r < 0)
                        finish(q, r, "Cannot ask QEMU for the file of a memory backend", NULL, 0);
                return;
        }
        snprintf(msg, sizeof msg, "No memory backend of QEMU's keeps its memory in %s", q->ram_path);
        finish(q, -ENOENT, msg, NULL, 0);
}

static void on_objects(qmp_conn *c, const qmp_reply *reply, void *userdata) {
        query *q = userdata;

        if (reply->error < 0)
                return finish_reply(q, reply);
        if (!json_object_is_type(reply->result, json_type_array))
                return finish(q, -EBADMSG, "QEMU's qom-list answer is not a list", NULL, 0);
        q->backends = json_object_get(reply->result);
        ask_next(q);
}

int qmp_ram_map_query(qmp_conn *c, const char *ram_path, qmp_ram_map_fn fn, void *userdata) {
        json_object *args;
        query *q;
        int r;

        assert(c && ram_path && fn);
        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        *q = (query) { .conn = c, .fn = fn, .userdata = userdata };
        q->ram_path = strdup(ram_path);
        if (!q->ram_path) {
                query_free(q);
                return -ENOMEM;
        }
        if (stat(ram_path, &q->ram) < 0) {
                r = -errno;
                query_free(q);
                return r;
        }
        args = json_object_new_object();
        if (!args || json_object_object_add(args, "path", json_object_new_string("/objects")) < 0) {
                json_object_put(args);
                query_free(q);
                return -ENOMEM;
        }
        r = qmp_conn_execute(c, "qom-list", args, on_objects, q);
        if (r < 0)
                query_free(q);
        return r;
}
