/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Endpoints: one per VM. An endpoint holds an id of the core (a slot, its
 * vmid, with a generation), its roster entry, and its four adapters: the
 * memctx adapter, the input actuator, the host-management seam and the
 * display.
 * Backends provide the adapters; nothing here knows which backend they come
 * from. The registry is a layer on the core's public API (vmsig-core.h:
 * vmsig_core_set_layer(), vmsig_core_acquire_id()).
 *
 * Life cycle: vmsig_core_attach_endpoint() publishes ROSTER(added) and
 * attaches the adapters. vmsig_core_detach_endpoint() detaches the adapters
 * (which complete their pending operations with -ENODEV), publishes
 * ROSTER(removed) and drops the registry's reference. The endpoint is freed,
 * and its slot becomes reusable, by a deferred reap once no dispatch, no
 * pending operation and no caller holds a reference.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-id128.h>

#include "vmsig-core.h"

#define VMSIG_NAME_MAX 64
#define VMSIG_HOLDER_MAX 64
#define VMSIG_REASON_MAX 96 /* "forced by NAME (uid U, pid P, COMMAND)" */
#define VMSIG_COMMAND_MAX 16 /* TASK_COMM_LEN */

typedef enum vmsig_state {
        VMSIG_STATE_UNKNOWN,
        VMSIG_STATE_RUNNING,
        VMSIG_STATE_PAUSED,
        VMSIG_STATE_SHUT_OFF,
        _VMSIG_STATE_MAX,
} vmsig_state;

typedef enum vmsig_lifecycle_op {
        VMSIG_OP_PAUSE,
        VMSIG_OP_RESUME,
        VMSIG_OP_RESET,
        VMSIG_OP_POWER_OFF,
        VMSIG_OP_KILL, /* ends the VM at once, without asking the guest */
        _VMSIG_OP_MAX,
} vmsig_lifecycle_op;

typedef enum vmsig_roster_change {
        VMSIG_ROSTER_ADDED,
        VMSIG_ROSTER_CHANGED,
        VMSIG_ROSTER_REMOVED,
} vmsig_roster_change;

/* ROSTER payload: a full snapshot of the entry, so that replaying the
 * newest one is enough for a late subscriber. */
typedef struct vmsig_roster_payload {
        vmsig_roster_change change;
        vmsig_state state;
        uint32_t vmid;
        uint32_t generation;
        sd_id128_t uuid;
        char name[VMSIG_NAME_MAX + 1];
} vmsig_roster_payload;

/* LIFECYCLE payload: what happened to the guest. A reset keeps the state
 * but is still a lifecycle event (it invalidates memctx). */
typedef struct vmsig_lifecycle_payload {
        vmsig_lifecycle_op op;
        vmsig_state old_state;
        vmsig_state new_state;
} vmsig_lifecycle_payload;

/* Neutral input events (evdev-like); the input actuator maps them. */
typedef enum vmsig_input_type {
        VMSIG_INPUT_KEY,    /* code: qcode number, value: 1 down, 0 up */
        VMSIG_INPUT_BUTTON, /* code: button, value: 1 down, 0 up */
        VMSIG_INPUT_REL,    /* code: axis (0 x, 1 y, 2 wheel), value: delta */
        VMSIG_INPUT_ABS,    /* code: axis, value: position 0..32767 */
        _VMSIG_INPUT_TYPE_MAX,
} vmsig_input_type;

typedef struct vmsig_input_event {
        uint32_t type;
        uint32_t code;
        int32_t value;
} vmsig_input_event;

/* The completion of an asynchronous adapter operation. */
typedef struct vmsig_result {
        int error;           /* 0 or -errno */
        const char *message; /* human-readable detail for errors, may be NULL */
} vmsig_result;
typedef void (*vmsig_done_fn)(const vmsig_result *result, void *userdata);

/* Every adapter role starts with these. attach runs with the loop live and
 * may register fd sources; detach must remove them and complete pending
 * operations with -ENODEV; free releases what the backend allocated. */
typedef struct vmsig_adapter_ops {
        int (*attach)(void *data, vmsig_endpoint *ep);
        void (*detach)(void *data, vmsig_endpoint *ep);
        void (*free)(void *data);
} vmsig_adapter_ops;

/* The control registers of a vCPU, as the hypervisor sees them: the
 * witness that tells a guest in its firmware (paging off) from a running
 * kernel, and whose root that kernel runs on. */
typedef struct vmsig_vcpu_state {
        uint64_t cr0, cr3, cr4, efer;
} vmsig_vcpu_state;

#define VMSIG_CR0_PG (UINT64_C(1) << 31)
#define VMSIG_CR4_PAE (UINT64_C(1) << 5)
#define VMSIG_CR4_LA57 (UINT64_C(1) << 12)
#define VMSIG_EFER_LMA (UINT64_C(1) << 10)
/* The page-table root in a CR3: bits 12..51 (the PCID and flag bits in
 * 0..11 are not part of it). */
#define VMSIG_CR3_ROOT_MASK UINT64_C(0x000FFFFFFFFFF000)

/* 4 or 5 for a vCPU in 64-bit mode with paging on (long mode, 4-level or
 * 5-level with CR4.LA57), 0 otherwise: paging off (firmware, early boot
 * loader) or a 32-bit guest, neither of which runs a 64-bit kernel. */
static inline unsigned vmsig_vcpu_paging_levels(const vmsig_vcpu_state *v) {
        if (!(v->cr0 & VMSIG_CR0_PG) || !(v->efer & VMSIG_EFER_LMA) || !(v->cr4 & VMSIG_CR4_PAE))
                return 0;
        return v->cr4 & VMSIG_CR4_LA57 ? 5 : 4;
}

/* vcpu is NULL unless result->error is 0. */
typedef void (*vmsig_vcpu_done_fn)(const vmsig_result *result, const vmsig_vcpu_state *vcpu, void *userdata);

typedef struct vmsig_host_ops {
        vmsig_adapter_ops base;
        const char *backend;
        /* Start op; done is called from the loop later, never from inside
         * this call. Returns <0 if the request could not be queued at all. */
        int (*lifecycle)(void *data, vmsig_lifecycle_op op, vmsig_done_fn done, void *userdata);
        /* Reads the control registers of the first vCPU while the guest
         * runs; done is called from the loop later, never from inside this
         * call. NULL when the hypervisor cannot tell. */
        int (*read_vcpu)(void *data, vmsig_vcpu_done_fn done, void *userdata);
        /* For an endpoint without a memctx adapter: why, in words a caller
         * of its memory methods can act on (the VM's configuration it
         * lacks), or NULL. NULL when every endpoint of the backend has one. */
        const char *(*memctx_absence)(void *data);
        /* Why the memctx will not come although the VM has what it needs:
         * vmsigd cannot read the VM's RAM (a privilege it lacks) or refuses
         * where it lies (a layout it cannot tell), in words that name the
         * cause and the remedy; NULL while it may still come (or is there).
         * NULL when the backend never knows. */
        const char *(*memctx_failure)(void *data);
} vmsig_host_ops;

typedef struct vmsig_input_ops {
        vmsig_adapter_ops base;
        int (*inject)(void *data, const vmsig_input_event *events, size_t n, vmsig_done_fn done, void *userdata);
        /* Drops every inject call whose events have not reached the VM
         * yet: each completes, from the loop, with -ECANCELED and message.
         * Called when the input lease ends, so that no event outlives the
         * lease it was sent under. */
        void (*cancel)(void *data, const char *message);
} vmsig_input_ops;

typedef struct vmsig_memctx_ops {
        vmsig_adapter_ops base;
        /* Writes len bytes at offset of the RAM file, all or nothing; only
         * after the caller validated the whole write. The RAM fd handed to
         * subscribers stays read-only, so this is the only way in. NULL when
         * the backend cannot write guest memory. */
        int (*write_ram)(void *data, uint64_t offset, const void *buf, size_t len);
        /* Checks the published address-space root against guest RAM now,
         * before it is used to write: 1 if it holds, 0 if it failed and was
         * withdrawn (a new epoch without a root) or there is none. NULL
         * when the backend has no bootstrap. */
        int (*verify_root)(void *data);
} vmsig_memctx_ops;

/* An image of the guest display, as a display adapter captured it. */
typedef enum vmsig_image_encoding {
        VMSIG_IMAGE_RAW, /* width x height XRGB8888 pixels, stride bytes a row */
        VMSIG_IMAGE_PPM, /* binary PPM (P6, maxval 255) */
        VMSIG_IMAGE_PNG,
        _VMSIG_IMAGE_ENCODING_MAX,
} vmsig_image_encoding;

typedef struct vmsig_display_image {
        int fd;      /* the image from offset 0; owned by the adapter, valid during the callback */
        size_t size; /* bytes of image in fd */
        vmsig_image_encoding encoding;
        uint32_t width, height, stride; /* VMSIG_IMAGE_RAW only */
} vmsig_display_image;

/* image is NULL unless result->error is 0. */
typedef void (*vmsig_display_done_fn)(const vmsig_result *result, const vmsig_display_image *image, void *userdata);

typedef struct vmsig_display_ops {
        vmsig_adapter_ops base;
        /* Capture the display once; done is called from the loop later,
         * never from inside this call. Returns <0 if the capture could not
         * be started at all. */
        int (*capture)(void *data, vmsig_display_done_fn done, void *userdata);
} vmsig_display_ops;

typedef enum vmsig_adapter_role {
        VMSIG_ADAPTER_MEMCTX,
        VMSIG_ADAPTER_INPUT,
        VMSIG_ADAPTER_HOST,
        VMSIG_ADAPTER_DISPLAY,
        _VMSIG_ADAPTER_MAX,
} vmsig_adapter_role;

typedef struct vmsig_adapter {
        const vmsig_adapter_ops *ops; /* really a vmsig_{memctx,input,host,display}_ops */
        void *data;
} vmsig_adapter;

typedef struct vmsig_endpoint_spec {
        const char *name;
        sd_id128_t uuid;
        vmsig_state initial_state;
        vmsig_adapter adapters[_VMSIG_ADAPTER_MAX]; /* ownership passes to the endpoint */
} vmsig_endpoint_spec;

const char *vmsig_state_to_string(vmsig_state s);
vmsig_state vmsig_state_from_string(const char *s);
const char *vmsig_lifecycle_op_to_string(vmsig_lifecycle_op op);
bool vmsig_endpoint_name_is_valid(const char *name);

/* Registry. On failure the spec's adapters are freed. */
int vmsig_core_attach_endpoint(vmsig_core *c, const vmsig_endpoint_spec *spec, vmsig_endpoint **ret);
int vmsig_core_detach_endpoint(vmsig_core *c, vmsig_endpoint *ep);
vmsig_endpoint *vmsig_core_find_endpoint(vmsig_core *c, vmsig_id id);
vmsig_endpoint *vmsig_core_find_endpoint_by_name(vmsig_core *c, const char *name);
vmsig_endpoint *vmsig_core_find_endpoint_by_vmid(vmsig_core *c, uint32_t vmid);
/* Iterate attached endpoints in vmid order; start with NULL. */
vmsig_endpoint *vmsig_core_next_endpoint(vmsig_core *c, vmsig_endpoint *prev);
size_t vmsig_core_endpoint_count(vmsig_core *c);

vmsig_endpoint *vmsig_endpoint_ref(vmsig_endpoint *ep);
vmsig_endpoint *vmsig_endpoint_unref(vmsig_endpoint *ep);

vmsig_core *vmsig_endpoint_get_core(vmsig_endpoint *ep);
vmsig_id vmsig_endpoint_get_id(vmsig_endpoint *ep);
uint32_t vmsig_endpoint_get_vmid(vmsig_endpoint *ep);
uint32_t vmsig_endpoint_get_generation(vmsig_endpoint *ep);
const char *vmsig_endpoint_get_name(vmsig_endpoint *ep);
/* 1 for the first endpoint of its name since the core started, 2 for the
 * one added after that one was detached, and so on. */
uint32_t vmsig_endpoint_get_incarnation(vmsig_endpoint *ep);
sd_id128_t vmsig_endpoint_get_uuid(vmsig_endpoint *ep);
vmsig_state vmsig_endpoint_get_state(vmsig_endpoint *ep);
bool vmsig_endpoint_is_attached(vmsig_endpoint *ep);
const char *vmsig_endpoint_get_backend(vmsig_endpoint *ep);
bool vmsig_endpoint_has_adapter(vmsig_endpoint *ep, vmsig_adapter_role role);
/* Why the endpoint has no memctx adapter, as its host adapter says; NULL
 * when it has one, or nobody says. */
const char *vmsig_endpoint_get_memctx_absence(vmsig_endpoint *ep);
/* The host adapter's memctx_failure(), with or without a memctx adapter;
 * NULL if none. */
const char *vmsig_endpoint_get_memctx_failure(vmsig_endpoint *ep);

/* Adapter side: report what the VM did. Publishes LIFECYCLE and, when the
 * state changed, ROSTER. */
void vmsig_endpoint_report_lifecycle(vmsig_endpoint *ep, vmsig_lifecycle_op op, vmsig_state new_state);

/* Register an fd source on behalf of the endpoint: the endpoint is kept
 * alive for the duration of each callback, and any source still registered
 * at detach is removed. */
int vmsig_endpoint_add_fd(vmsig_endpoint *ep, int fd, uint32_t events, vmsig_fd_fn fn, void *userdata,
                          vmsig_cookie *ret);
int vmsig_endpoint_remove_fd(vmsig_endpoint *ep, vmsig_cookie cookie);

/* Control side: requests go through the adapters. -EOPNOTSUPP when the
 * endpoint has no such adapter, -ENODEV when it is detached. */
int vmsig_endpoint_lifecycle(vmsig_endpoint *ep, vmsig_lifecycle_op op, vmsig_done_fn done, void *userdata);
/* Through the host adapter's read_vcpu; -EOPNOTSUPP without one. */
int vmsig_endpoint_read_vcpu(vmsig_endpoint *ep, vmsig_vcpu_done_fn done, void *userdata);
/* Whether the host adapter can read vCPU registers at all. */
bool vmsig_endpoint_can_read_vcpu(vmsig_endpoint *ep);
/* Through the memctx adapter's verify_root: 1 where it has none. */
int vmsig_endpoint_verify_root(vmsig_endpoint *ep);
/* Through the memctx adapter's write_ram; -EOPNOTSUPP without one. */
int vmsig_endpoint_write_ram(vmsig_endpoint *ep, uint64_t offset, const void *buf, size_t len);
int vmsig_endpoint_inject_input(vmsig_endpoint *ep, const vmsig_input_event *events, size_t n, vmsig_done_fn done,
                                void *userdata);
/* Through the input adapter's cancel; nothing without one. */
void vmsig_endpoint_cancel_input(vmsig_endpoint *ep, const char *message);
/* Through the display adapter's capture; -EOPNOTSUPP without one. */
int vmsig_endpoint_capture_display(vmsig_endpoint *ep, vmsig_display_done_fn done, void *userdata);

/*
 * Leases: exclusive ownership of a destructive resource class of one
 * endpoint. The endpoint keeps who holds what; every change is a LEASE
 * event (key: the class, retained), so in-process controls and the D-Bus
 * front see the same order. A detach or a guest reset revokes every lease.
 */
typedef enum vmsig_lease_class {
        VMSIG_LEASE_INPUT,
        VMSIG_LEASE_POWER,
        VMSIG_LEASE_MEMWRITE,
        _VMSIG_LEASE_CLASS_MAX,
} vmsig_lease_class;

typedef enum vmsig_lease_change {
        VMSIG_LEASE_ACQUIRED,
        VMSIG_LEASE_RELEASED, /* by its holder */
        VMSIG_LEASE_REVOKED,  /* taken away: forced, detach, reset */
} vmsig_lease_change;

/* Who holds a lease, as loginctl and machinectl show a session's leader:
 * taken from the bus (or the private socket) when the lease is acquired. */
typedef struct vmsig_lease_holder {
        const char *name;    /* unique bus name, or the private peer's label */
        uint32_t uid;
        uint32_t pid;        /* 0: unknown */
        const char *command; /* its comm, NULL: unknown */
} vmsig_lease_holder;

typedef struct vmsig_lease_info {
        uint64_t id; /* unique for the core's lifetime; 0: free */
        char holder[VMSIG_HOLDER_MAX];
        uint32_t uid;
        uint32_t pid;                       /* 0: unknown */
        char command[VMSIG_COMMAND_MAX];    /* "" : unknown */
        uint64_t acquired_at; /* CLOCK_REALTIME usec */
} vmsig_lease_info;

/* The LEASE payload. */
typedef struct vmsig_lease_payload {
        vmsig_lease_class class;
        vmsig_lease_change change;
        vmsig_lease_info lease; /* the lease acquired or ended */
        char reason[VMSIG_REASON_MAX];
} vmsig_lease_payload;

const char *vmsig_lease_class_to_string(vmsig_lease_class c);
vmsig_lease_class vmsig_lease_class_from_string(const char *s); /* _VMSIG_LEASE_CLASS_MAX if unknown */

/* -EBUSY when held (*ret_holder then describes the holder), -ENODEV when
 * detached. */
int vmsig_endpoint_lease_acquire(vmsig_endpoint *ep, vmsig_lease_class c, const vmsig_lease_holder *holder,
                                 vmsig_lease_info *ret, vmsig_lease_info *ret_holder);
/* Ends lease id: released by its holder, or revoked with a reason.
 * -ESRCH when id is not the current lease of that class. */
int vmsig_endpoint_lease_end(vmsig_endpoint *ep, vmsig_lease_class c, uint64_t id, vmsig_lease_change how,
                             const char *reason);
/* Revokes every lease of the endpoint. */
void vmsig_endpoint_lease_revoke_all(vmsig_endpoint *ep, const char *reason);
/* The current lease, or NULL when the class is free. */
const vmsig_lease_info *vmsig_endpoint_lease_get(vmsig_endpoint *ep, vmsig_lease_class c);
