/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * bench-load: the load tool of issue 8. One process, one sd-event loop:
 * a private system bus and vmsigd it starts itself, N sd-bus client
 * connections doing mixed calls, fake QEMUs (a QMP server per VM on a unix
 * socket, and a RAM file) attached and detached through the trigger
 * directory, and the checks at the end. See bench-load.c for the whole.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bench-lib.h"

#define LOAD_CALL_TIMEOUT_USEC (30ULL * 1000000ULL)
#define LOAD_MAX_WRITE 4096 /* vmsigd's default max-write, which the config keeps */
#define LOAD_GUARD 4096     /* the last page of every RAM: never written, must stay zero */

/* --- call types and their statistics -------------------------------------- */

typedef enum load_op {
        OP_GET,         /* Properties.Get */
        OP_GET_ALL,     /* Properties.GetAll */
        OP_MANAGED,     /* ObjectManager.GetManagedObjects */
        OP_LIST,        /* ListEndpoints, GetEndpoint, GetEndpointByVmid */
        OP_SUBSCRIBE,   /* SubscribeMemctx */
        OP_UNSUBSCRIBE, /* UnsubscribeMemctx */
        OP_MATCH,       /* AddMatch of a signal subscription */
        OP_ACQUIRE,     /* AcquireLease */
        OP_RELEASE,     /* Lease.Release */
        OP_MEMWRITE,    /* MemWrite */
        OP_BATCH,       /* MemWriteBatch */
        OP_LIFECYCLE,   /* Pause, Resume, Reset */
        OP_INPUT,       /* InjectInput */
        OP_BAD,         /* a call made to be refused */
        _OP_MAX,
} load_op;

/* Error names a call may legitimately get; anything else is a failure. */
typedef enum load_err {
        E_LEASE_BUSY,
        E_NOT_HOLDER,
        E_DETACHED,
        E_NO_SUCH_ENDPOINT,
        E_INVALID_ARG,
        E_INVALID_STATE,
        E_HOST,
        E_NOT_SUPPORTED,
        E_NOT_SUBSCRIBED,
        E_OUT_OF_RANGE,
        E_TOO_LONG,
        E_EMPTY,
        E_STALE,
        E_NO_ADDRESS_SPACE,
        E_LEASE_REVOKED,
        E_UNKNOWN_OBJECT,
        E_UNKNOWN_METHOD,
        E_UNKNOWN_PROPERTY,
        E_UNKNOWN_INTERFACE,
        E_INVALID_ARGS,
        E_READ_ONLY,
        _E_MAX,
        E_OTHER = _E_MAX,
} load_err;

#define ERR(e) (1u << (e))
/* What any call on an endpoint may meet while endpoints come and go. */
#define ERR_GONE (ERR(E_DETACHED) | ERR(E_UNKNOWN_OBJECT) | ERR(E_NO_SUCH_ENDPOINT))

typedef enum load_outcome {
        OUTCOME_OK,
        OUTCOME_REJECTED,   /* an error the call allows */
        OUTCOME_UNEXPECTED, /* anything else: the run fails */
} load_outcome;

typedef struct load_op_stats {
        uint64_t ok, rejected, unexpected;
        bench_samples latency; /* nsec, every completed call */
} load_op_stats;

/* --- what the run found ---------------------------------------------------- */

typedef struct load_counters {
        /* load held */
        uint64_t calls_done, trigger_attaches, trigger_detaches, trigger_rewrites;
        /* faults survived */
        uint64_t qemu_crashes, qemu_quits, qemu_garbage, qemu_events, client_drops, lease_forced, lease_fd_closed,
                spare_detaches, reloads;
        /* bad inputs tried */
        uint64_t bad_calls, bad_writes, bad_trigger_files, bad_qmp;
        /* lost or wrong data: must all stay 0 */
        uint64_t violations;
} load_counters;

/* A string that grows by one letter at a time: the steps of a lifecycle. */
typedef struct load_text {
        char *s;
        size_t len, size;
} load_text;

/* --- what a subscriber knows of one endpoint, from signals ------------------ */

typedef struct load_track {
        bool present;   /* InterfacesAdded came, InterfacesRemoved not yet */
        bool announced; /* EndpointAdded came, EndpointRemoved not yet */
        uint32_t vmid, generation;
        char state[16];
        uint64_t epoch;
        bool epoch_known;
        char holder[3][64]; /* input, power, memory-write; "" while free */
        bool holder_known[3];
        bool record;   /* keep seq: the lifecycle stubs' changes, 'P', 'R', 'X' */
        load_text seq;
        uint64_t sequence;     /* the Sequence property as the signals left it */
        bool sequence_known;   /* from a snapshot or a first signal */
        uint64_t sequenced;    /* PropertiesChanged whose Sequence was checked */
        uint64_t repeats;      /* PropertiesChanged that repeated the last value */
        uint64_t repeats_state; /* of them, State */
        uint64_t signals;
} load_track;

/* --- the endpoints the tool knows ------------------------------------------ */

typedef enum target_kind {
        TARGET_LIFECYCLE, /* stub, driven through Pause/Resume/Reset in a known order */
        TARGET_MEMWRITE,  /* stub, written by many writers */
        TARGET_SPARE,     /* stub, detached and brought back by Reload */
        TARGET_TRIGGER,   /* fake QEMU from the trigger directory */
        _TARGET_KIND_MAX,
} target_kind;

typedef struct load_write {
        uint64_t offset;
        uint32_t len;
        uint32_t seed;
        bool applied;
        bool decided;     /* the reply came */
        uint8_t kind;     /* how it was asked (load-clients.c's write_kind) */
        uint8_t err;      /* load_err of the refusal */
} load_write;

typedef struct load_target {
        char *name;
        char *path; /* the current incarnation's, as the roster last said */
        target_kind kind;
        uint64_t ram_size;
        bool attached; /* as the controller last heard */
        /* MemWrite ledger: every attempt has its own bytes, never reused. */
        uint64_t cursor;
        load_write *writes;
        size_t n_writes, writes_size;
        /* Lifecycle log (TARGET_LIFECYCLE): 'P'ause, 'R'esume, 'X' reset, in
         * the order the replies came. */
        load_text log;
        bool paused;        /* by that log */
        unsigned power_ops; /* lifecycle calls in flight (at most 1: the lease serializes them) */
        struct fake_vm *vm; /* TARGET_TRIGGER */
} load_target;

typedef struct load_client load_client;
typedef struct load_watcher load_watcher;
typedef struct fake_vm fake_vm;

typedef struct load_options {
        unsigned clients, calls, warmup, trigger_vms, settle_seconds, seed;
        bool quick, no_trigger, keep, verbose;
        const char *vmsigd, *srcdir, *dbus_daemon;
} load_options;

typedef struct load_ctx {
        load_options opt;
        sd_event *event;
        bench_services svc;
        const char *dir; /* the private directory of the run: svc's */
        bool armed; /* the trigger scenarios run */
        const char *armed_why;

        sd_bus *ctl; /* the controller's own connection */
        load_target *targets;
        size_t n_targets;
        load_client **clients;
        load_watcher **watchers;
        size_t n_watchers;
        fake_vm **vms;
        size_t n_vms;
        fake_vm *decoy;

        uint64_t rng;
        unsigned round_calls;   /* the calls of this round */
        uint64_t calls_started; /* stops at round_calls */
        unsigned in_flight;
        bool stopping; /* the load is over: no new calls, no new faults */
        uint64_t start_nsec, end_nsec;

        load_op_stats ops[_OP_MAX];
        load_counters n;
        unsigned failures_printed;
} load_ctx;

/* --- helpers (bench-load.c) ------------------------------------------------- */

uint64_t load_rand(uint64_t *state);
unsigned load_rand_below(uint64_t *state, unsigned n);
void load_fail(load_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
load_err load_err_from_name(const char *name);
const char *load_err_name(load_err e);
const char *load_op_name(load_op op);
/* Runs the loop until done(userdata) or timeout; 0 or -ETIMEDOUT. */
int load_run_until(load_ctx *ctx, bool (*done)(load_ctx *ctx, void *userdata), void *userdata, uint64_t timeout_usec);
int load_write_file(const char *path, const char *text, size_t len, unsigned mode);
void load_text_append(load_text *t, char c);
/* Arms *s to fire once after usec (accuracy as sd-event takes it: 0 is
 * its default of 250 ms), adding it the first time. */
int load_timer(load_ctx *ctx, sd_event_source **s, uint64_t usec, uint64_t accuracy, sd_event_time_handler_t handler,
               void *userdata);
/* A call to vmsigd with its arguments (types NULL: none); NULL when it
 * cannot be built. */
sd_bus_message *load_method(sd_bus *bus, const char *path, const char *iface, const char *member, const char *types,
                            ...);

/* --- the services (load-services.c) ---------------------------------------- */

int load_services_start(load_ctx *ctx);
/* Stops both; -EIO when vmsigd did not exit cleanly on SIGTERM. */
int load_services_stop(load_ctx *ctx);
bool load_vmsigd_alive(load_ctx *ctx);
void load_print_vmsigd_log(load_ctx *ctx, unsigned lines);

/* --- targets and the MemWrite ledger (load-memwrite.c) ---------------------- */

load_target *load_target_find(load_ctx *ctx, const char *name);
/* By the name in an endpoint path (any incarnation of it). */
load_target *load_target_by_path(load_ctx *ctx, const char *path);
char *load_path_to_name(const char *path);
load_target *load_target_pick(load_ctx *ctx, uint64_t *rng, unsigned kinds);
/* A fresh range of len bytes: the index of its entry in t->writes, or -1
 * when the RAM is used up. */
long load_write_new(load_target *t, uint64_t *rng, uint32_t len);
void load_write_pattern(const load_write *w, uint8_t *buf);
void load_target_log(load_target *t, char op);
int load_memwrite_verify(load_ctx *ctx);

/* --- clients (load-clients.c) ----------------------------------------------- */

/* Connects every client; the watchers take their first snapshot. */
int load_clients_start(load_ctx *ctx);
/* Every client makes its first call. */
void load_clients_kick(load_ctx *ctx);
/* Drops every connection (the load is over). */
void load_clients_stop(load_ctx *ctx);
/* Issues a method call for client c (NULL: the controller) and calls done
 * with the reply when it comes. allowed: ERR() bits of acceptable errors.
 * A client call counts towards --calls and is timed. */
typedef void (*load_done_fn)(load_ctx *ctx, load_client *c, sd_bus_message *reply, load_outcome outcome,
                             void *userdata);
int load_call(load_ctx *ctx, load_client *c, sd_bus *bus, sd_bus_message *m, load_op op, unsigned allowed,
              load_done_fn done, void *userdata);
int load_memctx_check_final(load_ctx *ctx);
void load_clients_print(load_ctx *ctx);

/* --- subscribers (load-watch.c) --------------------------------------------- */

void load_track_reset(load_track *tr);
/* One signal on t's path: PropertiesChanged, LeaseAcquired, LeaseReleased.
 * strict: the subscriber knows the roster (else only order is checked). */
void load_track_signal(load_ctx *ctx, load_track *tr, load_target *t, sd_bus_message *m, const char *who,
                       bool strict);
/* Matches on bus, then a first snapshot of every endpoint. */
int load_watcher_new(load_ctx *ctx, sd_bus *bus, load_watcher **ret);
int load_watchers_check_final(load_ctx *ctx);
void load_watchers_free(load_ctx *ctx);
int load_managed_objects(sd_bus *bus, sd_bus_message **ret);
/* After every client left: no lease and no lease object may remain. */
int load_check_no_leases(load_ctx *ctx);

/* --- fake QEMUs and the trigger directory (load-qmp.c, load-badfiles.c) ---- */

int load_vms_start(load_ctx *ctx);
/* The next round: the VMs come and go again. */
void load_vms_resume(load_ctx *ctx);
/* vmsigd attached (added) or detached the trigger VM name. */
void load_vms_endpoint(load_ctx *ctx, const char *name, bool added);
/* Stops the faults and brings every VM to its final state. */
int load_vms_settle(load_ctx *ctx);
/* Removes every trigger file and waits for the endpoints to go. */
int load_vms_detach_all(load_ctx *ctx);
void load_vms_free(load_ctx *ctx);
const char *load_vm_ram_path(const fake_vm *vm);
/* Bad trigger files, one after the other, while the load runs. */
void load_vms_bad_files_start(load_ctx *ctx);
void load_vms_bad_files_stop(load_ctx *ctx);
