/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "host-common.h"
#include "inode-watch.h"
#include "log.h"
#include "macro.h"
#include "memwrite.h"
#include "host-ram.h"

void host_ram_init(host_ram *ram, const char *name) {
        *ram = (host_ram) {
                .name = name,
                .rw_fd = -1,
                .memctx.ram_fd = -1,
        };
}

void host_ram_done(host_ram *ram) {
        free(ram->ranges);
        free(ram->path);
}

void host_ram_set_ranges(host_ram *ram, vmsig_gpa_range *ranges, size_t n) {
        free(ram->ranges);
        ram->ranges = ranges;
        ram->n_ranges = n;
}

/* What messages call the RAM: its path, if it came by one. */
static const char *label(const host_ram *ram) {
        return ram->path ?: "(a descriptor of QEMU's)";
}

static void bootstrap_stop(host_ram *ram) {
        if (!ram->bootstrap)
                return;
        ram->bootstrap = vmsig_bootstrap_free(ram->bootstrap);
        (void) vmsig_bootstrap_publish_fixed(ram->endpoint, VMSIG_BOOTSTRAP_IDLE, 0);
}

static int bootstrap_restart(host_ram *ram) {
        return vmsig_bootstrap_restart(ram->endpoint, &ram->memctx, &ram->bootstrap_config, &ram->bootstrap);
}

static int check_ranges(host_ram *ram, uint64_t size) {
        for (size_t i = 0; i < ram->n_ranges; i++)
                if (ram->ranges[i].offset > size || ram->ranges[i].size > size - ram->ranges[i].offset)
                        return log_error_errno(ERANGE,
                                               "GPA range %zu of '%s' lies beyond the end of its RAM file %s.", i,
                                               ram->name, label(ram));
        return 0;
}

/* Opens the RAM file twice: read-only for the memctx data, writable for
 * write_ram. Both must be the same file, not one replaced in between. */
static int ram_open(host_ram *ram, int *ret_ro, int *ret_rw, struct stat *ret_st) {
        _cleanup_close_ int ro = -1, rw = -1;
        struct stat st, st_rw;
        int r;

        ro = open(ram->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (ro < 0)
                return -errno;
        if (fstat(ro, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size <= 0)
                return log_error_errno(EBADF, "RAM file %s of '%s' is not a regular, non-empty file.",
                                       ram->path, ram->name);
        r = check_ranges(ram, (uint64_t) st.st_size);
        if (r < 0)
                return r;
        /* QEMU creates it 0644 under the default umask: then anyone on the
         * host can read the guest's memory. It is QEMU's file, not ours to
         * change, so say so and go on. */
        if (st.st_mode & 0004)
                log_warning("RAM file %s of '%s' is readable by everyone (mode %04o): anyone on the host can read "
                            "the guest's memory. Start QEMU with umask 077.",
                            ram->path, ram->name, (unsigned) (st.st_mode & 07777));
        rw = open(ram->path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (rw < 0)
                log_warning_errno(errno, "Cannot open RAM file %s of '%s' for writing, guest memory writes will "
                                  "fail: %m", ram->path, ram->name);
        else if (fstat(rw, &st_rw) < 0 || st_rw.st_dev != st.st_dev || st_rw.st_ino != st.st_ino)
                return -ESTALE;
        *ret_ro = TAKE_FD(ro);
        *ret_rw = TAKE_FD(rw);
        *ret_st = st;
        return 0;
}

static void ram_check(host_ram *ram);

static void on_ram_modified(void *userdata) {
        ram_check(userdata);
}

/* Truncation is a modification, and inotify tells of it at once; the
 * guest's own writes go through QEMU's mapping and cost nothing here. The
 * watch is on the inode we opened, not on whatever the path names later.
 * The new watch is added before the old one goes: the same inode keeps
 * its inotify watch across a reopen. */
static void ram_watch_start(host_ram *ram) {
        inode_watch *old = TAKE_PTR(ram->watch);
        int r;

        r = inode_watch_add(vmsig_endpoint_get_core(ram->endpoint), ram->memctx.ram_fd, IN_MODIFY, on_ram_modified,
                            ram, &ram->watch);
        inode_watch_free(old);
        if (r < 0)
                log_warning_errno(r, "Cannot watch RAM file %s of '%s'; a truncation is noticed only when the guest's "
                                  "memory is used next: %m", label(ram), ram->name);
}

static int ram_install(host_ram *ram, int ro, int rw, const struct stat *st) {
        uint64_t epoch = ram->memctx.epoch;
        bool invalidated = ram->memctx.invalidated;
        int r;

        vmsig_memctx_source_done(&ram->memctx);
        safe_close(ram->rw_fd);
        ram->rw_fd = rw;
        ram->dev = st->st_dev;
        ram->ino = st->st_ino;
        ram->is_short = false;
        r = vmsig_memctx_source_init(&ram->memctx, ro, (uint64_t) st->st_size, ram->ranges, ram->n_ranges);
        /* Epochs go on across QEMU processes: a datum is never reused. */
        ram->memctx.epoch = epoch;
        ram->memctx.invalidated = invalidated;
        if (r < 0)
                return r;
        ram_watch_start(ram);
        return epoch == 0 ? vmsig_memctx_source_publish(&ram->memctx, ram->endpoint)
                          : vmsig_memctx_source_new_epoch(&ram->memctx, ram->endpoint);
}

/* Someone truncated the RAM file under QEMU (QEMU itself faults when the
 * guest touches what is gone). vmsigd only ever reads it with pread(2)
 * and writes it with pwrite(2), so it takes no SIGBUS; but what it reads
 * is not the guest's any more, and a write past the end would grow the
 * file back and hide the damage. The epoch ends, the bootstrap stops in
 * "error", and memory calls fail with RamUnavailable until the file is
 * back to its size: then a new epoch starts and the root is looked for
 * again, since the contents may be anything. */
static void ram_check(host_ram *ram) {
        struct stat st;
        bool now_short;

        if (ram->memctx.ram_fd < 0 || fstat(ram->memctx.ram_fd, &st) < 0)
                return;
        now_short = (uint64_t) st.st_size < ram->memctx.ram_size;
        if (now_short == ram->is_short)
                return;
        ram->is_short = now_short;
        if (now_short) {
                log_error("RAM file %s of '%s' shrank to %" PRIu64 " of the guest's %" PRIu64 " bytes: its memory "
                          "is unavailable until the file is back to its size.",
                          label(ram), ram->name, (uint64_t) st.st_size, ram->memctx.ram_size);
                ram->bootstrap = vmsig_bootstrap_free(ram->bootstrap);
                (void) vmsig_memctx_source_invalidate(&ram->memctx, ram->endpoint);
                (void) vmsig_bootstrap_publish_fixed(ram->endpoint, VMSIG_BOOTSTRAP_ERROR, 0);
                return;
        }
        log_info("RAM file %s of '%s' is back to its size: a new memory context.", label(ram), ram->name);
        (void) vmsig_memctx_source_new_epoch(&ram->memctx, ram->endpoint);
        if (ram->pid >= 0 && bootstrap_restart(ram) < 0)
                bootstrap_stop(ram);
        else if (ram->pid < 0)
                (void) vmsig_bootstrap_publish_fixed(ram->endpoint, VMSIG_BOOTSTRAP_IDLE, 0);
}

/* A new RAM for the guest of pid: its epoch, and the bootstrap anew. */
static int ram_start(host_ram *ram, pid_t pid, int ro, int rw, const struct stat *st) {
        int r = ram_install(ram, ro, rw, st);

        if (r >= 0)
                r = bootstrap_restart(ram);
        if (r < 0) {
                log_warning_errno(r, "Cannot publish the memory context of '%s': %m", ram->name);
                bootstrap_stop(ram);
        }
        ram->pid = pid;
        return r;
}

int host_ram_sync_fds(host_ram *ram, pid_t pid, int ro, int rw) {
        _cleanup_close_ int ro_fd = ro, rw_fd = rw;
        struct stat st;
        int r;

        assert(!ram->path && ro >= 0 && pid > 0);
        if (!ram->attached)
                return -ENODEV;
        if (fstat(ro, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size <= 0)
                return log_error_errno(EBADF, "The RAM of '%s' is not a regular, non-empty file.", ram->name);
        /* The same QEMU's same RAM: what is open stays. */
        if (ram->memctx.ram_fd >= 0 && ram->pid == pid && st.st_dev == ram->dev && st.st_ino == ram->ino) {
                ram_check(ram);
                return 0;
        }
        r = check_ranges(ram, (uint64_t) st.st_size);
        if (r < 0)
                return r;
        if (rw < 0)
                log_warning("The RAM of '%s' came without a writable descriptor: guest memory writes will fail.",
                            ram->name);
        /* ram_install() owns them from here, whatever it says. */
        ro_fd = rw_fd = -1;
        return ram_start(ram, pid, ro, rw, &st);
}

void host_ram_sync(host_ram *ram, pid_t pid, bool connected) {
        int ro = -1, rw = -1, r;
        struct stat st = {};

        if (!ram->attached)
                return;
        assert(ram->path);
        /* The same QEMU again: its RAM has its size, unless the file was
         * truncated under it. */
        if (ram->memctx.ram_fd >= 0 && pid > 0 && ram->pid == pid && stat(ram->path, &st) == 0 &&
            st.st_dev == ram->dev && st.st_ino == ram->ino) {
                ram_check(ram);
                return;
        }
        if (ram->memctx.ram_fd >= 0 && (ram->pid == pid || ram->pid == 0) && stat(ram->path, &st) == 0 &&
            st.st_dev == ram->dev && st.st_ino == ram->ino && (uint64_t) st.st_size == ram->memctx.ram_size) {
                /* The guest we already know (0: the one whose file was
                 * there at attach). */
                ram->pid = pid;
                return;
        }
        r = ram_open(ram, &ro, &rw, &st);
        if (r < 0) {
                if (connected || r != -ENOENT)
                        log_warning_errno(r, "Cannot open RAM file %s of '%s': %m", ram->path, ram->name);
                return;
        }
        (void) ram_start(ram, pid, ro, rw, &st);
}

/* The guest is gone: its epoch ends (a root found in it means nothing
 * now), and there is nothing to look for any more. The file stays open
 * and readable, as the last thing the guest left. */
void host_ram_orphan(host_ram *ram) {
        if (ram->memctx.ram_fd < 0 || ram->pid < 0)
                return;
        ram->pid = -1;
        if (ram->is_short) /* stays in error, with nothing valid to offer */
                return;
        (void) vmsig_memctx_source_new_epoch(&ram->memctx, ram->endpoint);
        bootstrap_stop(ram);
}

static int on_lifecycle(vmsig_subscriber *sub, const vmsig_delivery *d, void *userdata) {
        host_ram *ram = userdata;

        if (!host_is_guest_reset(d) || !ram->attached || ram->memctx.ram_fd < 0 || ram->is_short)
                return VMSIG_DELIVER_OK;
        (void) vmsig_bootstrap_guest_reset(ram->endpoint, &ram->memctx, &ram->bootstrap_config, &ram->bootstrap);
        return VMSIG_DELIVER_OK;
}

void host_ram_detach(host_ram *ram) {
        ram->lifecycle_sub = vmsig_subscriber_free(ram->lifecycle_sub);
        ram->bootstrap = vmsig_bootstrap_free(ram->bootstrap);
        ram->watch = inode_watch_free(ram->watch);
        vmsig_memctx_source_done(&ram->memctx);
        ram->rw_fd = safe_close(ram->rw_fd);
        ram->attached = false;
        ram->endpoint = NULL;
}

int host_ram_attach(host_ram *ram, vmsig_endpoint *ep) {
        int r;

        ram->endpoint = ep;
        ram->attached = true;
        r = host_subscribe_resets(ep, on_lifecycle, ram, &ram->lifecycle_sub);
        if (r < 0) {
                host_ram_detach(ram); /* the endpoint only detaches adapters that attached */
                return r;
        }
        /* QEMU may not have started yet: then the RAM comes with the first
         * connection. Whose guest it holds is known once QEMU answers, and
         * where its RAM sits in guest-physical space too, unless the
         * configuration says. */
        if (ram->ranges_configured && ram->path)
                host_ram_sync(ram, 0, false);
        if (!ram->bootstrap)
                (void) vmsig_bootstrap_publish_fixed(ep, VMSIG_BOOTSTRAP_IDLE, 0);
        return 0;
}

int host_ram_write(host_ram *ram, uint64_t offset, const void *buf, size_t len) {
        if (ram->memctx.ram_fd < 0)
                return -ENODEV;
        if (ram->rw_fd < 0)
                return -EROFS;
        if (offset > ram->memctx.ram_size || len > ram->memctx.ram_size - offset)
                return -ERANGE;
        /* A pwrite past the end of a truncated file would grow it back. */
        ram_check(ram);
        if (ram->is_short)
                return -ENOMEDIUM;
        return vmsig_memwrite_pwrite(VMSIG_FD_TO_PTR(ram->rw_fd), offset, buf, len);
}

int host_ram_verify_root(host_ram *ram) {
        return ram->bootstrap ? vmsig_bootstrap_verify(ram->bootstrap) : 0;
}
