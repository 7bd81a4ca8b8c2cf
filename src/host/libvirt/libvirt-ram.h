/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The guest RAM of a libvirt domain, found from its QEMU process rather
 * than from libvirt's private files, and made safe to hand out.
 *
 * 1. The process (libvirt_ram_find_qemu()). libvirt starts QEMU with
 *    "-uuid UUID": every /proc/PID/cmdline is read (at most
 *    LIBVIRT_RAM_CMDLINE_MAX bytes each) for that argument pair. Anyone
 *    can put those words on a command line, so a uid may be asked for (the
 *    QEMU user of libvirt's DAC label), and more than one claimant is
 *    refused, never guessed. The process is then held by a pidfd, and its
 *    command line read again: a pid reused between the scan and
 *    pidfd_open() does not pass.
 *
 * 2. The mapping (libvirt_ram_open()). /proc/PID/maps, read line by line
 *    (each line at most LIBVIRT_RAM_LINE_MAX bytes, at most
 *    LIBVIRT_RAM_MAPS_MAX of them): the guest RAM is a shared, writable
 *    mapping of a regular file from its offset 0, as libvirt's shared
 *    memory backings give it:
 *      <source type='file'/>   /var/lib/libvirt/qemu/ram/<id>-<name>/pc.ram
 *                              (memory_backing_dir of qemu.conf), owned by
 *                              the QEMU user, mode 0644;
 *      <source type='memfd'/>  "/memfd:memory-backend-memfd (deleted)"
 *                              (QEMU names every memfd backend so), mode
 *                              0777.
 *    VMAs of one inode that continue each other (the kernel splits a
 *    mapping whose parts got different flags) count as one. The main
 *    backend is the one named "pc.ram" or the memfd; QEMU maps all of it
 *    at once, so the mapping's length is the guest's RAM size, 3 GiB of a
 *    q35 guest as well (its split around the PCI hole is guest-physical,
 *    not in the process). RAM spread over several backends (NUMA cells:
 *    "ram-node0", "ram-node1", or several memfds; memory hotplug) is
 *    refused (-ENOTUNIQ), since one fd could not hold it; no shared
 *    mapping at all is -ENOENT, whose message names the XML to add.
 *
 * 3. The fds. QEMU's own descriptor of the file, found among
 *    /proc/PID/fd by its device and inode, is opened through that link
 *    (a memfd has no other path), in QEMU's access mode: QEMU opened it
 *    read-write, so that is vmsigd's writable fd. pidfd_getfd(2) would
 *    take ptrace attach access and a system call of systemd's @debug set;
 *    the link takes read access only. The read-only fd for subscribers is
 *    a reopen of it through /proc/self/fd, O_RDONLY: a new open file
 *    description, which shares nothing with QEMU's (offset, flags).
 *
 * No writable route. A receiver of a read-only fd can open
 * /proc/self/fd/N anew, with O_RDWR, whenever the inode's mode lets it
 * write: a memfd is 0777, so anyone could. Seals cannot help: QEMU seals
 * its memfds with F_SEAL_SEAL, and F_SEAL_FUTURE_WRITE would stop vmsigd's
 * writes too. So, before the read-only fd exists, write (and execute) for
 * group and others is taken off the inode's mode (mode & ~0033: a memfd
 * becomes 0744; libvirt's pc.ram, 0644, needs no change). QEMU never
 * needs those bits: it holds its fd and its mapping, and a vhost-user
 * backend gets the fd passed, not a path. What is left may reopen it for
 * writing: root, and the QEMU user (the file's owner), which is QEMU
 * itself. The mode is checked again afterwards; if it cannot be narrowed,
 * nothing is handed out (-EPERM). QEMU, the owner, could widen it again:
 * it could as well pass its fd to anyone, so a compromised QEMU is not
 * what this guards against, a subscriber is.
 *
 * Privileges, step by step, as measured under vmsigd.service with a
 * libvirt QEMU (tests/test-deb-systemd, /deb-systemd/libvirt; vmsigd runs
 * as root, QEMU as libvirt-qemu):
 *   /proc/PID/cmdline             none (unless /proc is mounted hidepid:
 *                                 then CAP_SYS_PTRACE)
 *   pidfd_open(2), signal 0       none (EPERM without CAP_KILL still
 *                                 says the process is there)
 *   /proc/PID/maps                ptrace read access to QEMU: another
 *                                 uid's process needs CAP_SYS_PTRACE
 *   listing /proc/PID/fd, stat    CAP_DAC_READ_SEARCH or CAP_DAC_OVERRIDE
 *   of its links                  (the directory is QEMU's, 0500) and
 *                                 ptrace read access
 *   opening /proc/PID/fd/N        ptrace read access, and write permission
 *                                 on the file: none for a memfd (0777),
 *                                 CAP_DAC_OVERRIDE for pc.ram (0644)
 *   fchmod(2) of the memfd        CAP_FOWNER (the QEMU user owns it)
 *   the read-only reopen          read permission on the inode: none for
 *                                 0644 or 0744, else CAP_DAC_READ_SEARCH
 *
 * All of it is a few bounded reads of /proc, done from the loop.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LIBVIRT_RAM_CMDLINE_MAX (256 * 1024)
#define LIBVIRT_RAM_LINE_MAX 8192
#define LIBVIRT_RAM_MAPS_MAX 262144 /* VMAs; the kernel's max_map_count is 65530 by default */
#define LIBVIRT_RAM_MESSAGE_MAX 320
/* What grants vmsigd.service the privileges the RAM takes (data/). */
#define LIBVIRT_RAM_DROP_IN "vmsigd-libvirt-memctx.conf of vmsigd(8)"
/* The XML that gives a domain RAM vmsigd can read. */
#define LIBVIRT_RAM_SHARED_XML "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"

/* One VMA of /proc/PID/maps. */
typedef struct libvirt_ram_vma {
        uint64_t start, end, offset;
        dev_t dev;
        uint64_t ino;
        bool shared, writable;
        char name[LIBVIRT_RAM_LINE_MAX]; /* as maps shows it, " (deleted)" and all; may be empty */
} libvirt_ram_vma;

/* 0, or -EBADMSG if line (len bytes, without its newline) is not a maps
 * line: fields in order, hex numbers of 1 to 16 digits, end > start, no
 * NUL. Nothing is written to *ret on failure. */
int libvirt_ram_parse_maps_line(const char *line, size_t len, libvirt_ram_vma *ret);

/* The RAM mappings of a process, fed one maps line at a time. */
typedef struct libvirt_ram_scan {
        libvirt_ram_vma main;   /* the first main-backend mapping, merged */
        libvirt_ram_vma other;  /* the first other shared file mapping, merged */
        unsigned n_main, n_other; /* distinct mappings of each kind */
        size_t n_lines;
        /* The last shared file VMA seen, which the next may continue. */
        dev_t last_dev;
        uint64_t last_ino, last_end, last_offset_end;
        libvirt_ram_vma *last; /* &main or &other if it was stored, else NULL */
} libvirt_ram_scan;

void libvirt_ram_scan_init(libvirt_ram_scan *s);
/* 0, -EBADMSG (a malformed line), or -E2BIG past LIBVIRT_RAM_MAPS_MAX
 * lines. */
int libvirt_ram_scan_feed(libvirt_ram_scan *s, const char *line, size_t len);
/* The guest RAM mapping: 0 and *ret; -ENOENT (no shared file mapping),
 * -ENOTUNIQ (more than one backend, or no main one among several). */
int libvirt_ram_scan_result(const libvirt_ram_scan *s, const libvirt_ram_vma **ret);

/* Whether a command line (NUL-separated arguments, len bytes) holds the
 * argument "-uuid" followed by the argument uuid (case-insensitive). */
bool libvirt_ram_cmdline_has_uuid(const char *cmdline, size_t len, const char *uuid);

/* The QEMU process of the domain uuid ("xxxxxxxx-xxxx-..."), with a
 * pidfd of it (O_CLOEXEC). uid: only processes of that effective uid
 * count, (uid_t) -1 for any. -ESRCH: none; -ENOTUNIQ: more than one;
 * -EINVAL: not a uuid. msg gets the words of an error. */
int libvirt_ram_find_qemu(const char *uuid, uid_t uid, pid_t *ret_pid, int *ret_pidfd, char *msg, size_t size);

typedef struct libvirt_ram {
        pid_t pid;
        int ro_fd; /* for subscribers: O_RDONLY, not reopenable for writing but by root and QEMU's user */
        int rw_fd; /* vmsigd's own: QEMU's open file description */
        uint64_t size; /* of the mapping: the guest's RAM */
        bool memfd;
        dev_t dev;
        uint64_t ino;
        mode_t mode; /* after narrowing */
        char name[LIBVIRT_RAM_LINE_MAX]; /* as maps shows it */
} libvirt_ram;

/* Nothing open. */
#define LIBVIRT_RAM_NONE ((libvirt_ram) { .ro_fd = -1, .rw_fd = -1 })

/* Moves *r out, fds and all, and leaves it holding nothing (as TAKE_FD). */
static inline libvirt_ram libvirt_ram_take(libvirt_ram *r) {
        libvirt_ram t = *r;

        *r = LIBVIRT_RAM_NONE;
        return t;
}

/* Finds the guest RAM of the process of pidfd (pid) and opens it (see
 * above). -ESRCH: the process exited (before or while it was read);
 * -ENOENT: no shared RAM (the message names LIBVIRT_RAM_SHARED_XML);
 * -ENOTUNIQ: RAM over several backends; -EPERM/-EACCES: a privilege is
 * missing (the message says which); -EBADF: no fd of QEMU's holds the
 * mapping. *ret is only filled on success. */
int libvirt_ram_open(int pidfd, pid_t pid, libvirt_ram *ret, char *msg, size_t size);
/* Closes the fds. */
void libvirt_ram_done(libvirt_ram *r);
