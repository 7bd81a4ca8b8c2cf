/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "memctx.h"

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
                .dtb = invalidated ? 0 : s->dtb,
                .kernel_hint = invalidated ? 0 : s->kernel_hint,
                .method = invalidated ? 0 : s->method,
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

int vmsig_memctx_source_new_epoch(vmsig_memctx_source *s, vmsig_endpoint *ep) {
        int r = 0;

        if (s->epoch > 0 && !s->invalidated)
                r = publish(s, ep, true);
        s->epoch++;
        s->dtb = 0;
        s->kernel_hint = 0;
        s->method = 0;
        int k = publish(s, ep, false);
        return r < 0 ? r : k;
}

int vmsig_memctx_source_set_root(vmsig_memctx_source *s, vmsig_endpoint *ep, uint64_t dtb, uint64_t kernel_hint,
                                 uint32_t method) {
        int r = 0;

        if (s->epoch > 0 && !s->invalidated)
                r = publish(s, ep, true);
        s->epoch++;
        s->dtb = dtb;
        s->kernel_hint = kernel_hint;
        s->method = method;
        int k = publish(s, ep, false);
        return r < 0 ? r : k;
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
