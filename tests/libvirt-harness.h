/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A private libvirtd for the tests: Debian 12's monolithic libvirtd, run
 * as root without systemd, in a mount namespace of the test program's own.
 *
 * The namespace: the test program's main() calls
 * libvirt_harness_enter_namespace() before anything else, which moves the
 * whole program into a new mount namespace (unshare(CLONE_NEWNS), then
 * "/" recursively private, so nothing mounted here leaks out and nothing
 * from outside arrives). The program, the libvirtd it starts and the QEMU
 * processes libvirtd starts then all see the same private
 * /run/libvirt: the test reaches the daemon at the ordinary
 * qemu:///system, virsh would too, and no path needs rewriting. That is
 * simpler than re-executing the test under unshare(1) (no second argv
 * parse, no wrapper in the TAP stream) and than running only libvirtd in
 * the namespace (its socket would be out of the test's sight). It must
 * come first: unshare(CLONE_NEWNS) is refused once the process has
 * threads, and GLib may start some.
 *
 * Each harness mounts fresh tmpfs over /run/libvirt, /var/lib/libvirt,
 * /var/log/libvirt and /var/cache/libvirt, and binds a copy of /etc/libvirt
 * over it whose qemu.conf adds stdio_handler = "file" (no virtlogd) and
 * dynamic_ownership = 0 (else libvirt chowns the kernel and initrd to the
 * QEMU user, outside the namespace too), and also cgroup_controllers = [ ]
 * (the cgroup tree is the host's: libvirt would make machine/ groups there,
 * named after the domains, which two tests' daemons could share) and
 * which autostarts no network (a bridge would be the host's: the network
 * namespace is shared).
 *
 * libvirtd's first answer waits for its probe of QEMU's capabilities
 * (seconds); the probe's result is kept in the build tree (libvirt-cache
 * beside linux-guest.h's initramfs: tests/ under VMSIG_BUILDDIR), copied
 * in before each start and saved after a new probe, which cuts a start to
 * a fraction of a second.
 *
 * Domains are type "qemu" (TCG, no KVM needed), q35, booting Debian's
 * cloud kernel with the busybox initramfs of linux-guest.h, copied into
 * the namespace's /var/lib/libvirt for QEMU's user (libvirt-qemu) to
 * read. Their first serial port goes to a file (libvirt_harness_serial()).
 *
 * Environment:
 *   VMSIG_BUILDDIR  the build tree, for the capabilities cache (as in
 *                   linux-guest.h)
 *   CI              "true": a missing libvirtd or guest part fails
 *                   instead of skipping
 */

#include <glib.h>
#include <stdbool.h>
#include <libvirt/libvirt.h>

typedef enum LibvirtRam {
        LIBVIRT_RAM_FILE,  /* <source type='file'/>, shared: a pc.ram file */
        LIBVIRT_RAM_MEMFD, /* <source type='memfd'/>, shared */
        LIBVIRT_RAM_NONE,  /* no <memoryBacking>: QEMU's private RAM */
} LibvirtRam;

typedef struct LibvirtHarness {
        char *dir;   /* temporary: the configuration copy, libvirtd's log */
        char *etc;   /* the copy bind-mounted over /etc/libvirt */
        char *cache; /* the capabilities cache in the build tree */
        char *log_path;
        char *api_log_path; /* libvirtd's debug log of the domain API (libvirt.domain) */
        char *kernel, *initrd; /* the copies QEMU boots */
        GPid pid;              /* libvirtd, 0 when not running */
        virConnectPtr conn;    /* qemu:///system while libvirtd runs */
        /* Of the last libvirt_harness_start(): */
        double start_seconds;  /* spawn to first answer */
        unsigned cache_loaded; /* capabilities files copied in */
        bool cache_kept;       /* libvirtd kept them all (no new probe) */
} LibvirtHarness;

/* First thing in main(): the private mount namespace. Aborts the program
 * if that fails under CI=true; otherwise libvirt_harness_available()
 * skips. */
void libvirt_harness_enter_namespace(void);
/* true if the namespace, libvirtd, QEMU and the Linux guest's parts are
 * there; otherwise the test is skipped (or, under CI=true, aborted). */
bool libvirt_harness_available(void);

/* The mounts and the configuration; libvirtd is not started. */
LibvirtHarness *libvirt_harness_new(void);
/* libvirt_harness_new() and libvirt_harness_start(), or NULL when
 * libvirt_harness_available() says the test is skipped. */
LibvirtHarness *libvirt_harness_new_started(void);
/* Starts libvirtd, waits (up to a minute) until qemu:///system answers,
 * and saves its capabilities to the cache. */
void libvirt_harness_start(LibvirtHarness *h);
/* SIGKILL to libvirtd, reaped; its domains' QEMUs keep running. */
void libvirt_harness_kill(LibvirtHarness *h);

/* The XML of a small domain (ram_mib of RAM, one vCPU) booting the test
 * kernel (g_free() it). The kernel needs 128 MiB: with 64 it resets at
 * once, again and again (a REBOOT event each time). */
char *libvirt_harness_domain_xml(LibvirtHarness *h, const char *name, LibvirtRam ram, unsigned ram_mib);
/* Defines and starts it; the domain is running when this returns
 * (virDomainFree() it). */
virDomainPtr libvirt_harness_start_domain(LibvirtHarness *h, const char *name, LibvirtRam ram,
                                          unsigned ram_mib);
/* The namespace of QEMU's elements in a domain's XML (<qemu:commandline>). */
#define LIBVIRT_HARNESS_QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"
/* That domain with memfd RAM, on machine type machine ("q35", "pc", ...),
 * with qemu_extra (XML with the prefix qemu:, or NULL) as its last
 * element, defined and started paused: its firmware has not run
 * (virDomainFree() it). */
virDomainPtr libvirt_harness_start_paused(LibvirtHarness *h, const char *name, const char *machine, unsigned ram_mib,
                                         const char *qemu_extra);
/* The same with a USB controller and a USB tablet: an absolute pointer
 * (the plain domain has the PS/2 mouse alone). */
virDomainPtr libvirt_harness_start_tablet_domain(LibvirtHarness *h, const char *name, LibvirtRam ram,
                                                 unsigned ram_mib);
/* An HMP command to the domain's QEMU through libvirt's passthrough, on
 * the harness's connection; its output (free() it). */
char *libvirt_harness_hmp(LibvirtHarness *h, const char *name, const char *command);
/* What the domain's QEMU wrote to stderr so far (g_free() it): its log
 * file under /var/log/libvirt/qemu, where the output of QEMU's trace
 * events goes (HMP "trace-event input_event_* on", say). */
char *libvirt_harness_qemu_log(LibvirtHarness *h, const char *name);
/* A process that is no QEMU but claims the domain uuid on its command
 * line ("-uuid UUID"), run as user (NULL: as the test), until
 * libvirt_harness_end_claim(), which ends it and its children; returned
 * once the claim shows in /proc. */
pid_t libvirt_harness_claim_uuid(const char *uuid, const char *user);
void libvirt_harness_end_claim(pid_t pid);
/* The QEMU process of a running domain, from libvirt's pid file. */
pid_t libvirt_harness_domain_pid(LibvirtHarness *h, const char *name);
/* The file its first serial port writes to (g_free() it). */
char *libvirt_harness_serial(LibvirtHarness *h, const char *name);
/* Waits until the guest's serial port showed LINUX_GUEST_MARKER; fails
 * the test after timeout_ms. */
void libvirt_harness_wait_guest(LibvirtHarness *h, const char *name, unsigned timeout_ms);

/* How many times libvirtd ran the public API call api ("virDomainGetXMLDesc")
 * on the domain called name, for any client, by its debug log. */
unsigned libvirt_harness_api_calls(LibvirtHarness *h, const char *api, const char *name);

/* Destroys and undefines every domain, stops libvirtd (and any QEMU left
 * behind), unmounts. */
void libvirt_harness_free(LibvirtHarness *h);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(LibvirtHarness, libvirt_harness_free)
