/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The memctx adapter of a libvirt domain: its guest RAM found from the
 * QEMU process (libvirt-ram.h), its lifecycle, epochs and bootstrap those
 * of every backend (host-ram.h), and where the RAM sits in guest-physical
 * space asked of QEMU through the monitor passthrough (qmp-ram-map.h), or
 * without it computed from the machine type in the domain's live XML
 * (libvirt-xml.h), the one the listing fetched (lv_memctx_find()).
 *
 * A domain that stops is detached, so each start of its QEMU is a new
 * endpoint; a reboot is a new epoch of the same RAM (host-ram.c follows
 * the endpoint's resets); after a reconnection to libvirt the QEMU is
 * looked for again, and another pid is another guest.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fd-util.h"
#include "libvirt-internal.h"
#include "libvirt-xml.h"
#include "log.h"
#include "macro.h"
#include "qmp-ram-map.h"

/* The domain's QEMU, a process of the user libvirt runs it as (when
 * known), and its shared RAM, opened; the message says why not. On the
 * worker: blocking reads of /proc. */
void lv_memctx_find(lv_found *f, const char *xml, const char *no_xml) {
        char uuid[SD_ID128_UUID_STRING_MAX];
        _cleanup_close_ int pidfd = -1;
        pid_t pid;
        int r;

        assert(f);
        f->ram_looked = true;
        r = libvirt_ram_find_qemu(sd_id128_to_uuid_string(f->uuid, uuid), f->qemu_uid, &pid, &pidfd,
                                  f->ram_message, sizeof f->ram_message);
        if (r >= 0)
                r = libvirt_ram_open(pidfd, pid, &f->ram, f->ram_message, sizeof f->ram_message);
        f->ram_error = MIN(r, 0);
        if (f->ram_error < 0)
                return;
        /* The map by the XML needs the size of the RAM found: here, where
         * both are, rather than by fetching the XML again later. */
        if (!xml) {
                f->layout.error = -EIO;
                snprintf(f->layout.message, sizeof f->layout.message, "%s", no_xml);
                return;
        }
        f->layout.error = libvirt_xml_ram_layout(xml, strlen(xml), f->ram.size, f->layout.ranges, &f->layout.n,
                                                 f->layout.message, sizeof f->layout.message);
}

void lv_found_done(lv_found *f) {
        libvirt_ram_done(&f->ram);
}

bool lv_memctx_probe(lv_domain *d, lv_found *f) {
        assert(d && f);
        d->found = LIBVIRT_RAM_NONE;
        if (f->ram_looked && f->ram_error >= 0) {
                d->found = libvirt_ram_take(&f->ram);
                d->found_layout = f->layout;
                return true;
        }
        if (!f->ram_looked) /* not to be an endpoint when the worker looked: it is now */
                snprintf(f->ram_message, sizeof f->ram_message, "its RAM was not looked for; a reconnection will");
        log_warning("libvirt domain '%s' has no memory context: %s", d->name, f->ram_message);
        /* What the caller of a memory method is told: the XML the domain
         * lacks; or that there is RAM but vmsigd may not read it (a
         * privilege, which the message names with the drop-in that grants
         * it) or cannot tell where it lies (over several backends).
         * Anything else may pass: a reconnection looks again. */
        if (f->ram_error == -ENOENT)
                snprintf(d->memctx_absence, sizeof d->memctx_absence, "%s", f->ram_message);
        else if (f->ram_error == -EPERM || f->ram_error == -EACCES || f->ram_error == -ENOTUNIQ)
                snprintf(d->memctx_failure, sizeof d->memctx_failure, "%s", f->ram_message);
        return false;
}

/* Where the RAM found sits in guest-physical space: asked of QEMU through
 * the monitor passthrough, or, without it (or without its answer), the
 * map by the domain's live XML that came with the RAM. */
typedef struct map_query {
        lv_domain *domain; /* a reference */
        unsigned serial;
        libvirt_ram ram;
        lv_layout layout;
        char why_not_monitor[LIBVIRT_RAM_MESSAGE_MAX]; /* empty: the monitor is off */
} map_query;

/* Takes ranges (malloc()ed) and q, whatever the outcome. */
static void map_finish(map_query *q, int error, const char *message, vmsig_gpa_range *ranges, size_t n) {
        lv_domain *d = q->domain;

        if (error == -ENODEV || q->serial != d->ram_serial || !d->ram.attached)
                free(ranges); /* detached, or a newer QEMU was found since */
        else if (error < 0) {
                /* A wrong map would show the guest wrong memory: none, and
                 * the memory methods say why. */
                snprintf(d->memctx_failure, sizeof d->memctx_failure, "%s%s%s", q->why_not_monitor,
                         q->why_not_monitor[0] ? "; and without it: " : "", message);
                log_warning("libvirt domain '%s' has no memory context: %s", d->name, d->memctx_failure);
        } else {
                d->memctx_failure[0] = '\0';
                host_ram_set_ranges(&d->ram, ranges, n);
                (void) host_ram_sync_fds(&d->ram, q->ram.pid, TAKE_FD(q->ram.ro_fd), TAKE_FD(q->ram.rw_fd));
        }
        libvirt_ram_done(&q->ram);
        lv_domain_unref(d);
        free(q);
}

/* The map by the XML. Takes q. */
static void map_from_layout(map_query *q) {
        const lv_layout *l = &q->layout;
        vmsig_gpa_range *ranges = NULL;
        int error = q->domain->owner ? l->error : -ENODEV;

        if (error >= 0 && vmsig_gpa_ranges_dup(l->ranges, l->n, &ranges) < 0)
                error = log_oom();
        map_finish(q, error, l->message, ranges, l->n);
}

static void on_map(int error, const char *message, vmsig_gpa_range *ranges, size_t n, void *userdata) {
        map_query *q = userdata;

        if (error >= 0 || error == -ENODEV)
                return map_finish(q, error, message, ranges, n);
        snprintf(q->why_not_monitor, sizeof q->why_not_monitor, "QEMU's monitor did not tell the map (%s)",
                 message ?: strerror(-error));
        map_from_layout(q);
}

/* Takes r. */
static void ram_map(lv_domain *d, libvirt_ram *r, const lv_layout *layout) {
        qmp_monitor monitor = { lv_monitor_execute, d };
        qmp_ram_target target = { .name = r->name, .dev = r->dev, .ino = r->ino, .size = r->size, .memfd = r->memfd };
        map_query *q;
        int k;

        d->ram_serial++;
        q = calloc(1, sizeof *q);
        if (!q) {
                libvirt_ram_done(r);
                return (void) log_oom();
        }
        *q = (map_query) { .domain = lv_domain_ref(d), .serial = d->ram_serial, .ram = libvirt_ram_take(r),
                           .layout = *layout };
        if (!d->owner->monitor)
                return map_from_layout(q);
        k = qmp_ram_map_query(&monitor, &target, on_map, q);
        if (k < 0)
                on_map(k, strerror(-k), NULL, 0, q);
}

void lv_memctx_sync(lv_domain *d, lv_found *f) {
        libvirt_ram r;

        if (!d->ram.attached || !d->owner || !f->ram_looked)
                return;
        if (f->ram_error < 0) {
                log_warning("Cannot find the guest RAM of libvirt domain '%s' again: %s", d->name, f->ram_message);
                return f->ram_error == -ESRCH ? host_ram_orphan(&d->ram) : (void) 0;
        }
        /* The same QEMU keeps its RAM, its epoch and its bootstrap (the
         * caller closes what f holds). */
        if (f->ram.pid == d->ram.pid && d->ram.memctx.ram_fd >= 0)
                return;
        r = libvirt_ram_take(&f->ram);
        ram_map(d, &r, &f->layout);
}

/* The adapter. */

static int memctx_attach(void *data, vmsig_endpoint *ep) {
        lv_domain *d = data;
        int r;

        r = host_ram_attach(&d->ram, ep);
        if (r < 0)
                return r;
        /* What lv_memctx_probe() found, just before (an adapter is
         * attached only with it). */
        if (d->found.ro_fd >= 0) {
                libvirt_ram found = libvirt_ram_take(&d->found);

                ram_map(d, &found, &d->found_layout);
        }
        return 0;
}

static void memctx_detach(void *data, vmsig_endpoint *ep) {
        lv_domain *d = data;

        host_ram_detach(&d->ram);
}

static void memctx_free(void *data) {
        lv_domain_unref(data);
}

DEFINE_HOST_RAM_MEMCTX_OPS(, lv_memctx_ops, lv_domain, ram, memctx_attach, memctx_detach, memctx_free);
