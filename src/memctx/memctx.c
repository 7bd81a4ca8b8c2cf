/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "string-table.h"
#include "memctx.h"
#include "vmsig-endpoint.h"

static const char *const vmsig_guest_os_table[_VMSIG_GUEST_OS_MAX] = {
        [VMSIG_GUEST_OS_UNKNOWN] = "unknown",
        [VMSIG_GUEST_OS_WINDOWS] = "windows",
        [VMSIG_GUEST_OS_LINUX] = "linux",
};

DEFINE_STRING_TABLE_LOOKUP(vmsig_guest_os, vmsig_guest_os);

const char *vmsig_witnesses_to_string(uint32_t witnesses, char *buf, size_t size) {
        static const char *const names[] = { "config", "eprocess", "self-ref", "cr3", "banner", "live" };
        size_t n = 0;

        assert(buf && size > 0);
        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                if (!(witnesses & (1u << i)))
                        continue;
                int k = snprintf(buf + n, size - n, "%s%s", n > 0 ? "+" : "", names[i]);
                if (k < 0 || (size_t) k >= size - n)
                        break;
                n += (size_t) k;
        }
        return buf;
}

int vmsig_memctx_source_init(vmsig_memctx_source *s, int ram_fd, uint64_t ram_size, const vmsig_gpa_range *ranges,
                             size_t n_ranges) {
        *s = (vmsig_memctx_source) { .ram_fd = ram_fd, .ram_size = ram_size };
        if (n_ranges == 0) {
                /* A flat image: file offset == guest-physical address. */
                s->ranges = malloc(sizeof(vmsig_gpa_range));
                if (!s->ranges)
                        goto oom;
                s->ranges[0] = (vmsig_gpa_range) { 0, ram_size, 0 };
                s->n_ranges = 1;
        } else {
                s->ranges = malloc(n_ranges * sizeof(vmsig_gpa_range));
                if (!s->ranges)
                        goto oom;
                memcpy(s->ranges, ranges, n_ranges * sizeof(vmsig_gpa_range));
                s->n_ranges = n_ranges;
        }
        return 0;
oom:
        s->ram_fd = safe_close(s->ram_fd);
        return -ENOMEM;
}

void vmsig_memctx_source_done(vmsig_memctx_source *s) {
        s->ram_fd = safe_close(s->ram_fd);
        free(s->ranges);
        s->ranges = NULL;
        s->n_ranges = 0;
}

static void memctx_free(void *p) {
        vmsig_memctx *m = p;
        safe_close(m->ram_fd);
        free(m);
}

static int publish(vmsig_memctx_source *s, vmsig_endpoint *ep, bool invalidated) {
        size_t size = sizeof(vmsig_memctx) + s->n_ranges * sizeof(vmsig_gpa_range);
        vmsig_memctx *m = malloc(size);
        if (!m)
                return -ENOMEM;

        /* Each datum holds its own descriptor, so a datum still queued for a
         * slow subscriber stays usable after the source moved on. */
        *m = (vmsig_memctx) {
                .epoch = s->epoch,
                .invalidated = invalidated,
                .dtb = invalidated ? 0 : s->root.dtb,
                .kernel_hint = invalidated ? 0 : s->root.kernel_hint,
                .levels = invalidated || !s->root.dtb ? 0 : s->root.levels ?: 4,
                .os = invalidated ? VMSIG_GUEST_OS_UNKNOWN : s->root.os,
                .witnesses = invalidated ? 0 : s->root.witnesses,
                .ram_fd = fcntl(s->ram_fd, F_DUPFD_CLOEXEC, 3),
                .ram_size = s->ram_size,
                .n_ranges = s->n_ranges,
        };
        if (m->ram_fd < 0) {
                int r = -errno;
                free(m);
                return r;
        }
        memcpy(m->ranges, s->ranges, s->n_ranges * sizeof(vmsig_gpa_range));

        vmsig_core *c = vmsig_endpoint_get_core(ep);
        s->invalidated = invalidated;
        return vmsig_core_publish_object(c, VMSIG_KIND_MEMCTX, vmsig_endpoint_get_id(ep), 0, m, size, memctx_free);
}

int vmsig_memctx_source_publish(vmsig_memctx_source *s, vmsig_endpoint *ep) {
        if (s->epoch == 0)
                s->epoch = 1;
        return publish(s, ep, false);
}

int vmsig_memctx_source_invalidate(vmsig_memctx_source *s, vmsig_endpoint *ep) {
        if (s->epoch == 0 || s->invalidated)
                return 0;
        return publish(s, ep, true);
}

/* Ends the current epoch and starts the next with root: an epoch that had
 * no root ends without a word, since nobody could use it for virtual
 * addresses and its RAM fd stays the same. */
static int next_epoch(vmsig_memctx_source *s, vmsig_endpoint *ep, const vmsig_memctx_root *root) {
        int r = 0;

        if (s->epoch > 0 && !s->invalidated && s->root.dtb != 0)
                r = publish(s, ep, true);
        s->epoch++;
        s->root = root ? *root : (vmsig_memctx_root) {};
        int k = publish(s, ep, false);
        return r < 0 ? r : k;
}

int vmsig_memctx_source_new_epoch(vmsig_memctx_source *s, vmsig_endpoint *ep) {
        return next_epoch(s, ep, NULL);
}

int vmsig_memctx_source_set_root(vmsig_memctx_source *s, vmsig_endpoint *ep, const vmsig_memctx_root *root) {
        assert(root && root->dtb != 0);
        return next_epoch(s, ep, root);
}

bool vmsig_memctx_ram_intact(int fd, uint64_t ram_size) {
        struct stat st;

        /* What cannot be looked at is not known to be short. */
        return fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size >= ram_size;
}

const vmsig_memctx *vmsig_memctx_get(vmsig_core *c, vmsig_id endpoint) {
        const vmsig_event *e = vmsig_core_get_retained(c, endpoint, VMSIG_KIND_MEMCTX, 0);
        return e ? e->payload : NULL;
}
