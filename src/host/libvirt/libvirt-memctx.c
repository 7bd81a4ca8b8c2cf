/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The memctx adapter of a libvirt domain: its guest RAM found from the
 * QEMU process (libvirt-ram.h), its lifecycle, epochs and bootstrap those
 * of every backend (host-ram.h), and where the RAM sits in guest-physical
 * space asked of QEMU through the monitor passthrough (qmp-ram-map.h).
 *
 * A domain that stops is detached, so each start of its QEMU is a new
 * endpoint; a reboot is a new epoch of the same RAM (host-ram.c follows
 * the endpoint's resets); after a reconnection to libvirt the QEMU is
 * looked for again, and another pid is another guest.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fd-util.h"
#include "libvirt-internal.h"
#include "log.h"
#include "macro.h"
#include "qmp-ram-map.h"

/* Below this much RAM, pc and q35 machines alike put all of it at the
 * guest-physical address of its offset (q35 splits from 2.75 GiB, pc
 * from 3.5 GiB): a flat map is right without asking QEMU. */
#define FLAT_RAM_MAX UINT64_C(0xb0000000)

/* The domain's QEMU, a process of the user libvirt runs it as (when
 * known), and its shared RAM, opened; the message says why not. */
static int ram_find(lv_domain *d, libvirt_ram *ret, char *msg, size_t size) {
        char uuid[SD_ID128_UUID_STRING_MAX];
        _cleanup_close_ int pidfd = -1;
        pid_t pid;
        int r;

        r = libvirt_ram_find_qemu(sd_id128_to_uuid_string(d->uuid, uuid), d->qemu_uid, &pid, &pidfd, msg, size);
        if (r < 0)
                return r;
        return libvirt_ram_open(pidfd, pid, ret, msg, size);
}

bool lv_memctx_probe(lv_domain *d) {
        char msg[LIBVIRT_RAM_MESSAGE_MAX];
        int r;

        d->found = (libvirt_ram) { .ro_fd = -1, .rw_fd = -1 };
        r = ram_find(d, &d->found, msg, sizeof msg);
        if (r >= 0)
                return true;
        log_warning("libvirt domain '%s' has no memory context: %s", d->name, msg);
        /* What the caller of a memory method can do about it: only the
         * domain's XML can (the other failures say what vmsigd lacks, in
         * its log). */
        if (r == -ENOENT)
                snprintf(d->memctx_absence, sizeof d->memctx_absence, "%s", msg);
        return false;
}

typedef struct map_query {
        lv_domain *domain; /* a reference */
        unsigned serial;
        libvirt_ram ram;
} map_query;

/* Takes r's fds, whatever the outcome. */
static void ram_install(lv_domain *d, libvirt_ram *r, vmsig_gpa_range *ranges, size_t n) {
        host_ram_set_ranges(&d->ram, ranges, n);
        (void) host_ram_sync_fds(&d->ram, r->pid, TAKE_FD(r->ro_fd), TAKE_FD(r->rw_fd));
}

/* Without QEMU's word on the map: flat if that is right for any machine,
 * else no memctx (a wrong map would show the guest wrong memory). */
static void ram_without_map(lv_domain *d, libvirt_ram *r, const char *why) {
        if (r->size < FLAT_RAM_MAX)
                return ram_install(d, r, NULL, 0);
        log_warning("libvirt domain '%s' has no memory context: %s, and its %" PRIu64 " MiB of RAM are not flat in "
                    "guest-physical space below the low-memory split; the map needs QEMU's monitor.",
                    d->name, why, r->size >> 20);
        libvirt_ram_done(r);
}

static void on_map(int error, const char *message, vmsig_gpa_range *ranges, size_t n, void *userdata) {
        map_query *q = userdata;
        lv_domain *d = q->domain;

        if (error == -ENODEV || q->serial != d->ram_serial || !d->ram.attached)
                free(ranges); /* detached, or a newer QEMU was found since */
        else if (error < 0)
                ram_without_map(d, &q->ram, message ?: "QEMU did not tell its map");
        else
                ram_install(d, &q->ram, ranges, n);
        libvirt_ram_done(&q->ram);
        lv_domain_unref(d);
        free(q);
}

/* Takes r. */
static void ram_map(lv_domain *d, libvirt_ram *r) {
        qmp_monitor monitor = { lv_monitor_execute, d };
        qmp_ram_target target = { .name = r->name, .dev = r->dev, .ino = r->ino, .size = r->size, .memfd = r->memfd };
        map_query *q;
        int k;

        d->ram_serial++;
        if (!d->owner->monitor)
                return ram_without_map(d, r, "the monitor passthrough is off (<libvirt monitor=\"no\">)");
        q = calloc(1, sizeof *q);
        if (!q) {
                libvirt_ram_done(r);
                return (void) log_oom();
        }
        *q = (map_query) { .domain = lv_domain_ref(d), .serial = d->ram_serial, .ram = *r };
        *r = (libvirt_ram) { .ro_fd = -1, .rw_fd = -1 };
        k = qmp_ram_map_query(&monitor, &target, on_map, q);
        if (k < 0)
                on_map(k, strerror(-k), NULL, 0, q);
}

void lv_memctx_sync(lv_domain *d) {
        char msg[LIBVIRT_RAM_MESSAGE_MAX];
        libvirt_ram r = { .ro_fd = -1, .rw_fd = -1 };
        int k;

        if (!d->ram.attached || !d->owner)
                return;
        k = ram_find(d, &r, msg, sizeof msg);
        if (k < 0) {
                log_warning("Cannot find the guest RAM of libvirt domain '%s' again: %s", d->name, msg);
                return k == -ESRCH ? host_ram_orphan(&d->ram) : (void) 0;
        }
        /* The same QEMU keeps its RAM, its epoch and its bootstrap. */
        if (r.pid == d->ram.pid && d->ram.memctx.ram_fd >= 0)
                return libvirt_ram_done(&r);
        ram_map(d, &r);
}

/* The adapter. */

static int memctx_attach(void *data, vmsig_endpoint *ep) {
        lv_domain *d = data;
        int r;

        r = host_ram_attach(&d->ram, ep);
        if (r < 0)
                return r;
        /* What lv_memctx_probe() found, just before. */
        if (d->found.ro_fd >= 0) {
                libvirt_ram found = d->found;

                d->found = (libvirt_ram) { .ro_fd = -1, .rw_fd = -1 };
                ram_map(d, &found);
        } else
                lv_memctx_sync(d);
        return 0;
}

static void memctx_detach(void *data, vmsig_endpoint *ep) {
        lv_domain *d = data;

        host_ram_detach(&d->ram);
}

static int memctx_write_ram(void *data, uint64_t offset, const void *buf, size_t len) {
        lv_domain *d = data;

        return host_ram_write(&d->ram, offset, buf, len);
}

static int memctx_verify_root(void *data) {
        lv_domain *d = data;

        return host_ram_verify_root(&d->ram);
}

static void memctx_free(void *data) {
        lv_domain_unref(data);
}

const vmsig_memctx_ops lv_memctx_ops = {
        .base = { .attach = memctx_attach, .detach = memctx_detach, .free = memctx_free },
        .write_ram = memctx_write_ram,
        .verify_root = memctx_verify_root,
};
