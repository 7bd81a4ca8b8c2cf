/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the connection (libvirt.c) and the domains' adapters
 * (libvirt-domain.c) share. */

#include <stdatomic.h>
#include <stdbool.h>
#include <systemd/sd-event.h>
#include <libvirt/libvirt.h>

#include "host-common.h"
#include "host-ram.h"
#include "libvirt-ram.h"
#include "libvirt-seclabel.h"
#include "qemu-ram-layout.h"
#include "qmp-input.h"
#include "qmp-monitor.h"
#include "libvirt-worker.h"
#include "libvirt-backend.h"
#include "vmsig-endpoint.h"

/* The words of a libvirt error we pass on, at most. */
#define LV_MESSAGE_MAX HOST_MESSAGE_MAX

typedef struct lv_domain lv_domain;

/* Where a domain's RAM sits in guest-physical space by its live XML and
 * the size of the RAM found (libvirt-xml.h): the map without QEMU's
 * monitor, or why it cannot be told (error < 0). Computed on the worker
 * from the XML the listing fetched anyway (found_fill()). */
typedef struct lv_layout {
        int error;
        vmsig_gpa_range ranges[QEMU_RAM_LAYOUT_MAX_RANGES];
        size_t n;
        char message[LIBVIRT_RAM_MESSAGE_MAX];
} lv_layout;

struct vmsig_libvirt {
        vmsig_core *core;
        char *uri;
        vmsig_libvirt_domains which;
        bool monitor;
        lv_worker *worker;

        /* The worker's (and vmsig_libvirt_free()'s, once the worker is
         * gone): */
        virConnectPtr conn;
        unsigned conn_serial; /* bumped by every connection opened */
        char *caps; /* the connection's capabilities XML: the default DAC label; NULL if libvirt gave none */
        int callback_ids[2]; /* lifecycle, reboot; -1: none */

        /* The loop's: */
        bool connected;  /* the last listing came back, no close since */
        bool warned;     /* "cannot connect" was said once */
        uint64_t backoff_usec;
        sd_event_source *retry;
        lv_domain *domains; /* those attached as endpoints */
};

/* A domain as libvirt lists it. */
typedef struct lv_found {
        char name[VMSIG_NAME_MAX + 1];
        bool name_too_long;
        sd_id128_t uuid;
        vmsig_state state;
        bool tagged; /* carries an element of vmsig's namespace */
        uid_t qemu_uid; /* its QEMU's user (libvirt-seclabel.h); (uid_t) -1 if unknown, and why: */
        char uid_problem[LIBVIRT_SECLABEL_MESSAGE_MAX];
        bool starting; /* listed while libvirt starts it: its STARTED event follows */
        /* Its QEMU's shared RAM, looked for on the worker for a domain that
         * is to be an endpoint (ram_looked), since the look reads the
         * command line of every process in /proc, which must not hold up
         * the loop: open (ram's fds) when ram_error is 0, else why not. */
        bool ram_looked;
        int ram_error;
        libvirt_ram ram;
        char ram_message[LIBVIRT_RAM_MESSAGE_MAX];
        lv_layout layout; /* of that RAM, when it is open */
} lv_found;

struct lv_domain {
        unsigned n_ref;          /* one per adapter role, one per job */
        vmsig_libvirt *owner;    /* NULL once detached */
        vmsig_endpoint *endpoint; /* while attached; not a reference */
        char *name;
        sd_id128_t uuid;
        bool capturing;
        bool seen; /* in the listing being applied */
        atomic_uint input_generation; /* bumped when the input lease ends */
        /* The worker's: what the input-send-events that reached QEMU left
         * held down, released when the input lease ends. */
        qmp_input_held held;
        /* The worker's: the domain on connection dom_serial, looked up once
         * (a lookup is a round trip to libvirtd). */
        virDomainPtr dom;
        unsigned dom_serial;
        char cancel_message[HOST_MESSAGE_MAX];
        /* memctx (libvirt-memctx.c), the loop's: */
        host_ram ram;
        libvirt_ram found; /* found on attach, for the memctx adapter's attach to take */
        lv_layout found_layout; /* and its map by the XML */
        char memctx_absence[LIBVIRT_RAM_MESSAGE_MAX]; /* without shared RAM: why, from libvirt-ram */
        /* With shared RAM that vmsigd may not read, or whose map it
         * refuses: why (vmsig_host_ops.memctx_failure); empty otherwise. */
        char memctx_failure[2 * LIBVIRT_RAM_MESSAGE_MAX];
        unsigned ram_serial; /* bumped by every RAM found: older map answers are stale */
        lv_domain *next;
};

lv_domain *lv_domain_ref(lv_domain *d);
lv_domain *lv_domain_unref(lv_domain *d);
/* On the worker: the domain on lv's current connection (a lookup once per
 * connection), or NULL with libvirt's error set. */
virDomainPtr lv_domain_lookup(lv_domain *d, vmsig_libvirt *lv);
/* "libvirt at URI is not connected: reconnecting.": -EIO. */
int lv_not_connected(vmsig_libvirt *lv, char *buf, size_t size);

/* "libvirt: MESSAGE" of the calling thread's last libvirt error, and its
 * errno: -EBADFD when the domain is gone, -EOPNOTSUPP when libvirt or
 * the hypervisor cannot, -EIO otherwise. */
int lv_error(char *buf, size_t size);

/* Attaches an endpoint for f (libvirt-domain.c); the domain joins
 * lv->domains. */
int lv_domain_attach(vmsig_libvirt *lv, lv_found *f, lv_domain **ret);
lv_domain *lv_domain_find(vmsig_libvirt *lv, const unsigned char uuid[VIR_UUID_BUFLEN]);
/* What libvirt told of the domain. */
void lv_domain_observe(lv_domain *d, vmsig_state state);
void lv_domain_reset(lv_domain *d);
/* The domain stopped: shut off (killed: destroyed, without the guest's
 * say). */
void lv_domain_stopped(lv_domain *d, bool killed);
/* Its endpoint is detached (and d leaves lv->domains), saying why. */
void lv_domain_detach(lv_domain *d, const char *why);

/* The one place that decides what needs QEMU's monitor (pointer events,
 * vCPU registers) and that libvirt's API cannot do: -EOPNOTSUPP and why,
 * in buf. */
int lv_monitor_refusal(vmsig_libvirt *lv, const char *what, char *buf, size_t size);

/* QEMU's monitor of d through virDomainQemuMonitorCommand (libvirt-qemu),
 * run on the worker and answered on the loop, as qmp-monitor.h's contract
 * says. -EOPNOTSUPP when <libvirt monitor="no">. */
int lv_monitor_execute(void *data, const char *command, json_object *arguments, qmp_monitor_reply_fn fn,
                       void *userdata);

/* The text of a QMP command for the passthrough; takes arguments. NULL
 * without memory. */
char *lv_monitor_command(const char *command, json_object *arguments);
/* On the worker, for a caller that needs only whether QEMU took command
 * (lv_monitor_command()'s text): 0, or -errno and why in buf. */
int lv_monitor_run(virDomainPtr dom, const char *command, char *buf, size_t size);

/* The memctx of a domain (libvirt-memctx.c). */
extern const vmsig_memctx_ops lv_memctx_ops;
/* On the worker: looks for the shared RAM of f's QEMU (f->ram_looked,
 * f->ram_error, f->ram, f->ram_message) and, once open, where it sits by
 * the domain's live XML (f->layout); xml NULL: libvirt gave none, and
 * no_xml says why. */
void lv_memctx_find(lv_found *f, const char *xml, const char *no_xml);
/* Closes what f holds. */
void lv_found_done(lv_found *f);
/* On attach: whether the domain's QEMU has shared RAM (then d->found takes
 * f's, for the adapter); no: memctx stays absent, and why is logged. */
bool lv_memctx_probe(lv_domain *d, lv_found *f);
/* After a reconnection, with what the worker found again: a new QEMU
 * process of the domain is a new guest. */
void lv_memctx_sync(lv_domain *d, lv_found *f);
