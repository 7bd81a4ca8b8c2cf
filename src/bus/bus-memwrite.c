/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MemWrite, MemWriteVirtual and MemWriteBatch on org.vmsig.Endpoint: the
 * daemon writes into guest memory for the holder of the memory-write lease.
 * Every byte is validated before the first one is written; nothing is ever
 * mapped writable for the caller. Writes to one endpoint are serialized:
 * one that pauses the guest holds the others back until it resumed.
 *
 * A write that waits (for its pause, or behind another write) is one of
 * its caller's pending calls, and belongs to the lease it was asked under:
 * when that lease ends, it fails at once and never touches the guest. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-front-internal.h"
#include "bus-memctx.h"
#include "bus-memwrite.h"
#include "bus-util.h"
#include "list.h"
#include "log.h"
#include "memwrite.h"

#define BATCH_ENTRIES_MAX 4096

typedef enum write_kind { WRITE_GPA, WRITE_VA, WRITE_BATCH } write_kind;

typedef struct write_entry {
        uint64_t address;
        const void *data; /* into the message, which the request holds */
        size_t len;
} write_entry;

struct bus_memwrite_request {
        bus_endpoint *be;   /* NULL once orphaned: its front or object went */
        vmsig_endpoint *ep; /* a reference, for the host calls */
        sd_bus_message *message; /* NULL once answered */
        bus_peer caller; /* a copy; name owned */
        bool quota_held; /* one of the caller's pending calls, until answered */
        write_kind kind;
        write_entry *entries;
        size_t n_entries, n_allocated;
        bool pause;
        bool written;   /* paused and written: only resuming is left */
        bool cancelled; /* its lease ended while its pause was at the host: only resuming is left */
        bool has_expected_epoch;
        uint64_t expected_epoch;
        uint64_t lease_id; /* the caller's memory-write lease when it asked */
        vmsig_subscriber *lease_watch; /* while it waits: the end of that lease */
        bus_memwrite_request *next;
};

/* Reading the request. */

static int read_option(sd_bus_message *m, const char *key, void *userdata, sd_bus_error *error) {
        bus_memwrite_request *q = userdata;
        int b;

        if (strcmp(key, "pause") == 0) {
                if (sd_bus_message_read(m, "v", "b", &b) < 0)
                        return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT,
                                                 "Option 'pause' must be a boolean.");
                q->pause = b;
                return 0;
        }
        if (strcmp(key, "expected_epoch") == 0) {
                if (sd_bus_message_read(m, "v", "t", &q->expected_epoch) < 0)
                        return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT,
                                                 "Option 'expected_epoch' must be a uint64.");
                q->has_expected_epoch = true;
                return 0;
        }
        return -ENOKEY;
}

static int append_entry(bus_memwrite_request *q, uint64_t address, const void *data, size_t len) {
        if (q->n_entries == q->n_allocated) {
                /* Doubling: a full batch is a dozen reallocations, not 4096. */
                size_t n = q->n_allocated > 0 ? 2 * q->n_allocated : 1;
                write_entry *grown = reallocarray(q->entries, n, sizeof *grown);

                if (!grown)
                        return -ENOMEM;
                q->entries = grown;
                q->n_allocated = n;
        }
        q->entries[q->n_entries++] = (write_entry) { address, data, len };
        return 0;
}

static int read_single(sd_bus_message *m, bus_memwrite_request *q) {
        const void *data;
        uint64_t address;
        size_t len;
        int r;

        r = sd_bus_message_read(m, "t", &address);
        if (r >= 0)
                r = sd_bus_message_read_array(m, 'y', &data, &len);
        return r < 0 ? r : append_entry(q, address, data, len);
}

static int read_batch(sd_bus_message *m, bus_memwrite_request *q, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(tay)");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'r', "tay")) > 0) {
                if (q->n_entries >= BATCH_ENTRIES_MAX)
                        return sd_bus_error_setf(error, VMSIG_ERROR_WRITE_TOO_LONG, "A batch holds at most %d writes.",
                                                 BATCH_ENTRIES_MAX);
                r = read_single(m, q);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r >= 0 && q->n_entries == 0)
                return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT, "The batch is empty.");
        return r;
}

static int request_read(bus_memwrite_request *q, sd_bus_message *m, sd_bus_error *error) {
        int r = q->kind == WRITE_BATCH ? read_batch(m, q, error) : read_single(m, q);

        return r < 0 ? r : bus_read_options(m, read_option, q, error);
}

/* The caller's pending call goes back once it is answered. */
static void quota_release(bus_memwrite_request *q) {
        if (!q->quota_held)
                return;
        assert(q->be);
        bus_auth_quota_release(q->be->front->auth, q->caller.uid, BUS_QUOTA_PENDING_CALLS);
        q->quota_held = false;
}

static void request_free(bus_memwrite_request *q) {
        if (!q)
                return;
        quota_release(q);
        vmsig_subscriber_free(q->lease_watch);
        sd_bus_message_unref(q->message);
        vmsig_endpoint_unref(q->ep);
        free(q->caller.name);
        free(q->entries);
        free(q);
}

static void request_freep(bus_memwrite_request **q) {
        request_free(*q);
}

/* Answers q, once: error, or success when it is not set. */
static void request_reply(bus_memwrite_request *q, const sd_bus_error *error) {
        if (q->message)
                (void) (sd_bus_error_is_set(error) ? sd_bus_reply_method_error(q->message, error)
                                                   : sd_bus_reply_method_return(q->message, NULL));
        q->message = sd_bus_message_unref(q->message);
        quota_release(q);
}

/* The audit: one record per call, where it writes (the first address, the
 * length of all its writes and, for a batch, how many), never the data. */

static void audit_request(const bus_memwrite_request *q, const char *result, const char *reason) {
        uint64_t length = 0;

        for (size_t i = 0; i < q->n_entries; i++)
                length += q->entries[i].len;
        bus_audit_log(&(bus_audit_record) {
                .uid = q->caller.uid,
                .pid = q->caller.pid,
                .sender = q->caller.name,
                .action = q->kind == WRITE_VA ? "memwrite-virtual" : "memwrite",
                .endpoint = vmsig_endpoint_get_name(q->ep),
                .result = result,
                .reason = reason,
                .has_range = q->n_entries > 0,
                .address = q->n_entries > 0 ? q->entries[0].address : 0,
                .length = length,
                .count = q->kind == WRITE_BATCH ? q->n_entries : 0,
        });
}

/* A write refused for what it asks is recorded with the error's name
 * ("OutOfRange"); one that failed otherwise (its lease ended, the host
 * failed, the quota) with the errno's, as other operations are. */
static void audit_failure(const bus_memwrite_request *q, int r, const sd_bus_error *error) {
        static const char *const refusals[] = {
                VMSIG_ERROR_INVALID_ARGUMENT, VMSIG_ERROR_EMPTY_WRITE,      VMSIG_ERROR_WRITE_TOO_LONG,
                VMSIG_ERROR_OUT_OF_RANGE,     VMSIG_ERROR_UNMAPPED_ADDRESS, VMSIG_ERROR_NO_ADDRESS_SPACE,
                VMSIG_ERROR_STALE_EPOCH,
        };

        if (sd_bus_error_is_set(error)) {
                for (size_t i = 0; i < ELEMENTSOF(refusals); i++)
                        if (sd_bus_error_has_name(error, refusals[i]))
                                return audit_request(q, "failed", strrchr(refusals[i], '.') + 1);
                r = -sd_bus_error_get_errno(error);
        }
        audit_request(q, "failed", r < 0 ? strerrorname_np(-r) : NULL);
}

/* Validation, then the write. */

static int ram_writer(void *userdata, uint64_t offset, const void *data, size_t len) {
        return vmsig_endpoint_write_ram(userdata, offset, data, len);
}

static int set_failure(sd_bus_error *error, const bus_memwrite_request *q, size_t index,
                       const vmsig_memwrite_failure *f, size_t max_write) {
        char where[48] = "";

        if (q->kind == WRITE_BATCH)
                snprintf(where, sizeof where, "Batch entry %zu: ", index);
        switch (f->error) {
        case VMSIG_MEMWRITE_EMPTY:
                return sd_bus_error_setf(error, VMSIG_ERROR_EMPTY_WRITE, "%sNothing to write at 0x%" PRIx64 ".",
                                         where, f->address);
        case VMSIG_MEMWRITE_TOO_LONG:
                return sd_bus_error_setf(error, VMSIG_ERROR_WRITE_TOO_LONG,
                                         "%sThe write at 0x%" PRIx64 " is longer than %zu bytes.", where, f->address,
                                         max_write);
        case VMSIG_MEMWRITE_OUT_OF_RANGE:
                return sd_bus_error_setf(error, VMSIG_ERROR_OUT_OF_RANGE,
                                         "%sAddress 0x%" PRIx64 " (guest-physical 0x%" PRIx64 ") is not guest RAM.",
                                         where, f->address, f->gpa);
        case VMSIG_MEMWRITE_UNMAPPED:
                return sd_bus_error_setf(error, VMSIG_ERROR_UNMAPPED_ADDRESS,
                                         "%sVirtual address 0x%" PRIx64 " is not mapped (level %u entry at 0x%" PRIx64
                                         ").", where, f->address, f->level, f->gpa);
        case VMSIG_MEMWRITE_NON_CANONICAL:
                return sd_bus_error_setf(error, VMSIG_ERROR_UNMAPPED_ADDRESS,
                                         "%sVirtual address 0x%" PRIx64 " is not canonical.", where, f->address);
        case VMSIG_MEMWRITE_NO_DTB:
                return sd_bus_error_setf(error, VMSIG_ERROR_NO_ADDRESS_SPACE,
                                         "%sThe guest's address-space root is not known yet.", where);
        default:
                if (f->errnum == ENOMEDIUM)
                        return sd_bus_error_setf(error, VMSIG_ERROR_RAM_UNAVAILABLE,
                                                 "%sThe guest RAM file shrank: guest memory is unavailable.", where);
                return sd_bus_error_setf(error, VMSIG_ERROR_HOST, "%sWriting guest memory failed: %s", where,
                                         strerror(f->errnum));
        }
}

static int plan_request(const bus_memwrite_request *q, const vmsig_guest_mem *mem, uint64_t dtb, unsigned levels,
                        size_t max_write, vmsig_memwrite_plan *plan, sd_bus_error *error) {
        vmsig_memwrite_failure f = {};

        for (size_t i = 0; i < q->n_entries; i++) {
                const write_entry *e = &q->entries[i];
                int r = q->kind == WRITE_VA
                                ? vmsig_memwrite_plan_add_va(plan, mem, dtb, levels, e->address, e->data, e->len, max_write,
                                                             &f)
                                : vmsig_memwrite_plan_add_gpa(plan, mem, e->address, e->data, e->len, max_write, &f);
                if (r < 0) {
                        (void) set_failure(error, q, i, &f, max_write);
                        return r;
                }
        }
        return 0;
}

static bool lease_still_held(const bus_memwrite_request *q) {
        const vmsig_lease_info *l = vmsig_endpoint_lease_get(q->ep, VMSIG_LEASE_MEMWRITE);
        return l && l->id == q->lease_id;
}

/* Validates the whole request against the current datum and, if apply,
 * writes it. Nothing is written unless everything validated. */
static int check_and_write(bus_memwrite_request *q, bool apply, sd_bus_error *error) {
        vmsig_endpoint *ep = q->be->endpoint;
        const vmsig_memctx *datum;
        size_t max_write = q->be->front->ctx->max_write ?: VMSIG_MEMWRITE_MAX_DEFAULT;
        vmsig_memwrite_plan plan = {};
        vmsig_memwrite_failure f = {};
        int r;

        r = bus_endpoint_require_attached(ep, error);
        if (r < 0 || (r = bus_memctx_require_adapter(ep, error)) < 0)
                return r;
        /* A write that waited (for a pause, or behind one) is done only
         * under the lease it was asked under: its holder may have left,
         * or been forced out. */
        if (apply && !lease_still_held(q))
                return sd_bus_error_setf(error, VMSIG_ERROR_LEASE_REVOKED,
                                         "The memory-write lease of '%s' ended before the write was done: "
                                         "nothing was written.", vmsig_endpoint_get_name(ep));
        datum = vmsig_memctx_get(q->be->front->core, vmsig_endpoint_get_id(ep));
        /* Never through a root that no longer holds: a reset guest keeps
         * the old kernel's tables in RAM until the new one overwrites them.
         * One that fails here is withdrawn; its datum is still the retained
         * one until the next epoch is dispatched, so the answer is now. */
        if (q->kind == WRITE_VA && datum && !datum->invalidated && datum->dtb != 0 &&
            vmsig_endpoint_verify_root(ep) == 0) {
                if (q->has_expected_epoch)
                        return sd_bus_error_setf(error, VMSIG_ERROR_STALE_EPOCH,
                                                 "The address-space root of '%s' at epoch %" PRIu64 " failed its "
                                                 "check and was withdrawn: nothing was written.",
                                                 vmsig_endpoint_get_name(ep), datum->epoch);
                return sd_bus_error_setf(error, VMSIG_ERROR_NO_ADDRESS_SPACE,
                                         "The address-space root of '%s' failed its check and was withdrawn: "
                                         "nothing was written.", vmsig_endpoint_get_name(ep));
        }
        /* Before the epoch: a datum invalidated because its RAM file shrank
         * says why. Reading the file short would fail, writing past its end
         * would grow it back. */
        if (datum && !vmsig_memctx_ram_intact(datum->ram_fd, datum->ram_size))
                return sd_bus_error_setf(error, VMSIG_ERROR_RAM_UNAVAILABLE,
                                         "The guest RAM file of '%s' is shorter than the guest's %" PRIu64
                                         " bytes: guest memory is unavailable.",
                                         vmsig_endpoint_get_name(ep), datum->ram_size);
        if (!datum || datum->invalidated)
                return sd_bus_error_setf(error, VMSIG_ERROR_NO_ADDRESS_SPACE,
                                         "Endpoint '%s' has no memory context.", vmsig_endpoint_get_name(ep));
        if (q->has_expected_epoch && q->expected_epoch != datum->epoch)
                return sd_bus_error_setf(error, VMSIG_ERROR_STALE_EPOCH,
                                         "The memory context of '%s' is at epoch %" PRIu64 ", not %" PRIu64 ".",
                                         vmsig_endpoint_get_name(ep), datum->epoch, q->expected_epoch);
        vmsig_guest_mem mem = vmsig_guest_mem_from_memctx(datum, ram_writer, ep);
        r = plan_request(q, &mem, datum->dtb, datum->levels ?: 4, max_write, &plan, error);
        if (r >= 0 && apply) {
                r = vmsig_memwrite_plan_apply(&plan, &mem, &f);
                if (r < 0)
                        (void) set_failure(error, q, 0, &f, max_write);
        }
        vmsig_memwrite_plan_done(&plan);
        return r;
}

/* check_and_write(), audited: a refusal always, the write when done. */
static int validate_and_apply(bus_memwrite_request *q, bool apply, sd_bus_error *error) {
        int r = check_and_write(q, apply, error);

        if (r < 0)
                audit_failure(q, r, error);
        else if (apply)
                audit_request(q, "ok", NULL);
        return r < 0 ? -EINVAL : 0;
}

/* The queue and the pause around a write. */

static void queue_remove(bus_endpoint *be, bus_memwrite_request *q) {
        bus_memwrite_request **p = &be->memwrite_head, *prev = NULL;

        while (*p && *p != q) {
                prev = *p;
                p = &(*p)->next;
        }
        assert(*p == q);
        *p = q->next;
        if (be->memwrite_tail == q)
                be->memwrite_tail = prev;
        q->next = NULL;
}

static void reply_and_next(bus_memwrite_request *q, const sd_bus_error *error);

/* The lease q was asked under ended. One still queued fails now and never
 * pauses the guest; the head's pause is at the host already, so it is
 * answered now and only resumes the guest once paused. A write that is in
 * was done under its lease: it still succeeds. */
static void lease_ended(bus_memwrite_request *q, const vmsig_lease_payload *p) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        bus_endpoint *be = q->be;

        assert(be);
        q->lease_watch = vmsig_subscriber_free(q->lease_watch);
        if (!q->message || q->written)
                return;
        (void) sd_bus_error_setf(&error, VMSIG_ERROR_LEASE_REVOKED,
                                 "The memory-write lease of '%s' was %s (%s) before the write was done: "
                                 "nothing was written.",
                                 vmsig_endpoint_get_name(q->ep),
                                 p->change == VMSIG_LEASE_RELEASED ? "released" : "revoked",
                                 p->reason[0] ? p->reason : "no reason given");
        audit_failure(q, -ECANCELED, &error);
        if (q == be->memwrite_head) {
                q->cancelled = true;
                request_reply(q, &error);
                return;
        }
        queue_remove(be, q);
        request_reply(q, &error);
        request_free(q);
}

static int on_lease_event(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        const vmsig_lease_payload *p = d->event->payload;
        bus_memwrite_request *q = userdata;

        assert(d->event->payload_size == sizeof *p);
        /* Replays are the lease state at subscription, while q's lease
         * was held. */
        if (!d->replay && p->class == VMSIG_LEASE_MEMWRITE && p->change != VMSIG_LEASE_ACQUIRED &&
            p->lease.id == q->lease_id)
                lease_ended(q, p);
        return VMSIG_DELIVER_OK;
}

/* Only for a write that waits: one done at once needs no subscriber. */
static int lease_watch(bus_memwrite_request *q) {
        vmsig_filter filter = {
                .kinds = VMSIG_KIND_MASK(VMSIG_KIND_LEASE),
                .endpoint = vmsig_endpoint_get_id(q->ep),
                /* Leases are published whether anyone listens or not. */
                .passive = true,
        };

        assert(q->be);
        if (q->lease_watch)
                return 0;
        return vmsig_core_subscribe(q->be->front->core, &filter, 0, on_lease_event, q, &q->lease_watch);
}

/* The write is in; a guest that cannot be resumed is the host's problem
 * and is reported, but never with an error that says guest RAM is
 * unchanged (EndpointDetached, InvalidState): Host. A guest that went
 * away needs no resuming, and the write simply succeeded. */
static void set_resume_failure(sd_bus_error *error, int r, const char *why) {
        if (r != -ENODEV)
                (void) sd_bus_error_setf(error, VMSIG_ERROR_HOST, "The write was done but resuming failed: %s", why);
}

static void on_resumed(const vmsig_result *res, void *userdata) {
        bus_memwrite_request *q = userdata;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        if (!q->be)
                return request_free(q);
        if (res->error < 0)
                set_resume_failure(&error, res->error, res->message ?: strerror(-res->error));
        reply_and_next(q, &error);
}

static void on_paused(const vmsig_result *res, void *userdata) {
        bus_memwrite_request *q = userdata;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        /* Orphaned, or answered already because its lease ended: nothing
         * to write for; give the guest back its vCPUs. */
        if (!q->be || q->cancelled) {
                if (res->error >= 0 && vmsig_endpoint_lifecycle(q->ep, VMSIG_OP_RESUME, on_resumed, q) >= 0)
                        return;
                if (!q->be)
                        return request_free(q);
                return reply_and_next(q, &error);
        }
        if (res->error < 0) {
                (void) vmsig_bus_error_set_errnof(&error, res->error, "Cannot pause '%s' for the write: %s",
                                                  vmsig_endpoint_get_name(q->be->endpoint),
                                                  res->message ?: strerror(-res->error));
                audit_failure(q, res->error, &error);
                return reply_and_next(q, &error);
        }
        /* The tables may have changed while the guest ran: check again. */
        q->written = validate_and_apply(q, true, &error) >= 0;
        r = vmsig_endpoint_lifecycle(q->ep, VMSIG_OP_RESUME, on_resumed, q);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        set_resume_failure(&error, r, strerror(-r));
                return reply_and_next(q, &error);
        }
        /* Resume first, then fail: nothing was written, the caller need
         * not wait for the guest. */
        if (sd_bus_error_is_set(&error))
                request_reply(q, &error);
}

/* Runs the head of the queue until one has to wait for the host. */
static void run_queue(bus_endpoint *be) {
        while (be->memwrite_head) {
                bus_memwrite_request *q = be->memwrite_head;
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                bool running = vmsig_endpoint_get_state(be->endpoint) == VMSIG_STATE_RUNNING;

                /* Never pause the guest for a write whose lease is gone:
                 * check_and_write() refuses it without. */
                if (q->pause && running && lease_still_held(q)) {
                        int r = vmsig_endpoint_lifecycle(q->ep, VMSIG_OP_PAUSE, on_paused, q);
                        if (r >= 0) {
                                /* Without it, on_paused() still finds the lease gone. */
                                if (lease_watch(q) < 0)
                                        log_debug("Cannot follow the memory-write lease of '%s' for a paused write.",
                                                  vmsig_endpoint_get_name(q->ep));
                                return; /* on_paused() goes on */
                        }
                        (void) vmsig_bus_error_set_errnof(&error, r, "Cannot pause '%s' for the write: %s",
                                                          vmsig_endpoint_get_name(q->ep), strerror(-r));
                        audit_failure(q, r, &error);
                } else
                        (void) validate_and_apply(q, true, &error);
                queue_remove(be, q);
                request_reply(q, &error);
                request_free(q);
        }
}

static void reply_and_next(bus_memwrite_request *q, const sd_bus_error *error) {
        bus_endpoint *be = q->be;

        assert(q == be->memwrite_head);
        queue_remove(be, q);
        request_reply(q, error);
        request_free(q);
        run_queue(be);
}

void bus_memwrite_endpoint_gone(bus_endpoint *be) {
        bus_memwrite_request *head = be->memwrite_head;

        /* The head waits for the host (a pause or resume); it is orphaned
         * and cleans up after itself. The rest never started. */
        for (bus_memwrite_request *q = head; q;) {
                bus_memwrite_request *next = q->next;
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                q->lease_watch = vmsig_subscriber_free(q->lease_watch);
                /* A write that is in, waiting only to resume a guest that
                 * is gone now, succeeded: an error would say nothing was
                 * written. */
                if (q->message && !q->written) {
                        (void) sd_bus_error_setf(&error, VMSIG_ERROR_ENDPOINT_DETACHED, "Endpoint '%s' was detached.",
                                                 vmsig_endpoint_get_name(be->endpoint));
                        audit_failure(q, -ENODEV, &error);
                }
                request_reply(q, &error);
                q->be = NULL;
                q->next = NULL;
                if (q != head)
                        request_free(q);
                q = next;
        }
        be->memwrite_head = be->memwrite_tail = NULL;
}

/* The method handlers. */

static int request_new(bus_endpoint *be, write_kind kind, const bus_peer *caller, bus_memwrite_request **ret) {
        bus_memwrite_request *q = calloc(1, sizeof *q);

        if (!q)
                return -ENOMEM;
        q->caller = (bus_peer) { .uid = caller->uid, .pid = caller->pid, .name = strdup(caller->name) };
        if (!q->caller.name) {
                free(q);
                return -ENOMEM;
        }
        q->be = be;
        q->ep = vmsig_endpoint_ref(be->endpoint);
        q->kind = kind;
        q->lease_id = vmsig_endpoint_lease_get(be->endpoint, VMSIG_LEASE_MEMWRITE)->id;
        *ret = q;
        return 0;
}

static int method_write(sd_bus_message *m, bus_endpoint *be, write_kind kind, sd_bus_error *error) {
        _cleanup_(request_freep) bus_memwrite_request *q = NULL;
        bus_auth *auth = be->front->auth;
        bus_peer *caller;
        int r;

        assert(m);
        assert(be);

        /* The lease first, before a byte of the request is read: refusing
         * a caller without it costs the same whatever it sent. */
        r = bus_front_require_lease(be->front, m, be->endpoint, VMSIG_LEASE_MEMWRITE, error);
        if (r <= 0)
                return bus_auth_handler_return(r);
        r = bus_auth_check(auth, m, VMSIG_CAP_LEASE_MEMWRITE, be->endpoint, true, error);
        if (r <= 0)
                return bus_auth_handler_return(r);
        caller = bus_auth_caller(auth, m);
        if (!caller)
                return -ESRCH;
        r = request_new(be, kind, caller, &q);
        if (r < 0)
                return r;
        /* Counted before the request is read: over the quota, it is not. */
        r = bus_auth_quota_take(auth, caller, BUS_QUOTA_PENDING_CALLS, error);
        if (r < 0) {
                audit_failure(q, r, error);
                return r;
        }
        q->quota_held = true;
        r = request_read(q, m, error);
        if (r < 0) {
                audit_failure(q, r, error);
                return r;
        }
        /* Rejected requests must change nothing: validate before queueing,
         * and before pausing anything. */
        r = validate_and_apply(q, false, error);
        if (r < 0)
                return r;
        /* Behind another write it waits, and must learn at once if its
         * lease ends meanwhile. */
        if (be->memwrite_head) {
                r = lease_watch(q);
                if (r < 0) {
                        audit_failure(q, r, NULL);
                        return r;
                }
        }
        q->message = sd_bus_message_ref(m);
        QUEUE_PUSH(be->memwrite_head, be->memwrite_tail, TAKE_PTR(q));
        if (be->memwrite_head == be->memwrite_tail)
                run_queue(be);
        return 1;
}

int bus_memwrite_method_write(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_write(m, userdata, WRITE_GPA, error);
}

int bus_memwrite_method_write_virtual(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_write(m, userdata, WRITE_VA, error);
}

int bus_memwrite_method_write_batch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_write(m, userdata, WRITE_BATCH, error);
}
