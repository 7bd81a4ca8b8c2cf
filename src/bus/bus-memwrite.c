/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MemWrite, MemWriteVirtual and MemWriteBatch on org.vmsig.Endpoint: the
 * daemon writes into guest memory for the holder of the memory-write lease.
 * Every byte is validated before the first one is written; nothing is ever
 * mapped writable for the caller. Writes to one endpoint are serialized:
 * one that pauses the guest holds the others back until it resumed. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-front-internal.h"
#include "bus-memwrite.h"
#include "bus-util.h"
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
        sd_bus_message *message;
        bus_peer caller; /* a copy; name owned */
        write_kind kind;
        write_entry *entries;
        size_t n_entries;
        bool pause;
        bool written; /* paused and written: only resuming is left */
        bool has_expected_epoch;
        uint64_t expected_epoch;
        uint64_t lease_id; /* the caller's memory-write lease when it asked */
        bus_memwrite_request *next;
};

/* Reading the request. */

static int read_option(sd_bus_message *m, const char *key, void *userdata, sd_bus_error *error) {
        bus_memwrite_request *q = userdata;
        int b;

        if (strcmp(key, "pause") == 0) {
                if (sd_bus_message_read(m, "v", "b", &b) < 0)
                        return vmsig_bus_error_setf(error, -EINVAL, "Option 'pause' must be a boolean.");
                q->pause = b;
                return 0;
        }
        if (strcmp(key, "expected_epoch") == 0) {
                if (sd_bus_message_read(m, "v", "t", &q->expected_epoch) < 0)
                        return vmsig_bus_error_setf(error, -EINVAL, "Option 'expected_epoch' must be a uint64.");
                q->has_expected_epoch = true;
                return 0;
        }
        return -ENOKEY;
}

static int append_entry(bus_memwrite_request *q, uint64_t address, const void *data, size_t len) {
        write_entry *grown = reallocarray(q->entries, q->n_entries + 1, sizeof *grown);

        if (!grown)
                return -ENOMEM;
        q->entries = grown;
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
                        return vmsig_bus_error_setf(error, -EMSGSIZE, "A batch holds at most %d writes.",
                                                    BATCH_ENTRIES_MAX);
                r = read_single(m, q);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r >= 0 && q->n_entries == 0)
                return vmsig_bus_error_setf(error, -EINVAL, "The batch is empty.");
        return r;
}

static void request_free(bus_memwrite_request *q) {
        if (!q)
                return;
        sd_bus_message_unref(q->message);
        vmsig_endpoint_unref(q->ep);
        free(q->caller.name);
        free(q->entries);
        free(q);
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

static void audit_entries(const bus_memwrite_request *q, int result) {
        for (size_t i = 0; i < q->n_entries; i++)
                bus_auth_audit_operation(&q->caller, q->kind == WRITE_VA ? "memwrite-virtual" : "memwrite",
                                         q->be->endpoint, result, (const uint64_t[2]) { q->entries[i].address,
                                                                                         q->entries[i].len });
}

static bool lease_still_held(const bus_memwrite_request *q) {
        const vmsig_lease_info *l = vmsig_endpoint_lease_get(q->ep, VMSIG_LEASE_MEMWRITE);
        return l && l->id == q->lease_id;
}

/* Validates the whole request against the current datum and, if apply,
 * writes it. Nothing is written unless everything validated. */
static int validate_and_apply(bus_memwrite_request *q, bool apply, sd_bus_error *error) {
        vmsig_endpoint *ep = q->be->endpoint;
        const vmsig_memctx *datum;
        size_t max_write = q->be->front->ctx->max_write ?: VMSIG_MEMWRITE_MAX_DEFAULT;
        vmsig_memwrite_plan plan = {};
        vmsig_memwrite_failure f = {};
        int r;

        if (!vmsig_endpoint_is_attached(ep))
                return vmsig_bus_error_setf(error, -ENODEV, "Endpoint '%s' was detached.", vmsig_endpoint_get_name(ep));
        /* A write that waited (for a pause, or behind one) is done only
         * under the lease it was asked under: its holder may have left,
         * or been forced out. */
        if (apply && !lease_still_held(q)) {
                audit_entries(q, -ECANCELED);
                return vmsig_bus_error_setf(error, -ECANCELED,
                                            "The memory-write lease of '%s' ended before the write was done: "
                                            "nothing was written.", vmsig_endpoint_get_name(ep));
        }
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
                return vmsig_bus_error_setf(error, -ENOMEDIUM,
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
                audit_entries(q, r);
        }
        vmsig_memwrite_plan_done(&plan);
        return r < 0 ? -EINVAL : 0;
}

/* The queue and the pause around a write. */

static void reply_and_next(bus_memwrite_request *q, const sd_bus_error *error);

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

        /* Orphaned: nobody to write for; give the guest back its vCPUs. */
        if (!q->be) {
                if (res->error < 0 || vmsig_endpoint_lifecycle(q->ep, VMSIG_OP_RESUME, on_resumed, q) < 0)
                        request_free(q);
                return;
        }
        if (res->error < 0) {
                (void) vmsig_bus_error_setf(&error, res->error, "Cannot pause '%s' for the write: %s",
                                            vmsig_endpoint_get_name(q->be->endpoint),
                                            res->message ?: strerror(-res->error));
                return reply_and_next(q, &error);
        }
        /* The tables may have changed while the guest ran: check again. */
        q->written = validate_and_apply(q, true, &error) >= 0;
        r = vmsig_endpoint_lifecycle(q->ep, VMSIG_OP_RESUME, on_resumed, q);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        set_resume_failure(&error, r, strerror(-r));
                reply_and_next(q, &error);
        } else if (sd_bus_error_is_set(&error)) {
                /* Resume first, then fail: keep the error for the reply. */
                sd_bus_message *m = q->message;
                (void) sd_bus_reply_method_error(m, &error);
                q->message = sd_bus_message_unref(m);
        }
}

/* Runs the head of the queue until one has to wait for the host. */
static void run_queue(bus_endpoint *be) {
        while (be->memwrite_head) {
                bus_memwrite_request *q = be->memwrite_head;
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                bool running = vmsig_endpoint_get_state(be->endpoint) == VMSIG_STATE_RUNNING;

                if (q->pause && running) {
                        int r = vmsig_endpoint_lifecycle(q->ep, VMSIG_OP_PAUSE, on_paused, q);
                        if (r >= 0)
                                return; /* on_paused() goes on */
                        (void) vmsig_bus_error_setf(&error, r, "Cannot pause for the write: %s", strerror(-r));
                } else
                        (void) validate_and_apply(q, true, &error);
                be->memwrite_head = q->next;
                if (!be->memwrite_head)
                        be->memwrite_tail = NULL;
                if (q->message)
                        (void) (sd_bus_error_is_set(&error) ? sd_bus_reply_method_error(q->message, &error)
                                                            : sd_bus_reply_method_return(q->message, NULL));
                request_free(q);
        }
}

static void reply_and_next(bus_memwrite_request *q, const sd_bus_error *error) {
        bus_endpoint *be = q->be;

        if (q->message)
                (void) (sd_bus_error_is_set(error) ? sd_bus_reply_method_error(q->message, error)
                                                   : sd_bus_reply_method_return(q->message, NULL));
        be->memwrite_head = q->next;
        if (!be->memwrite_head)
                be->memwrite_tail = NULL;
        request_free(q);
        run_queue(be);
}

void bus_memwrite_endpoint_gone(bus_endpoint *be) {
        bus_memwrite_request *head = be->memwrite_head;

        /* The head waits for the host (a pause or resume); it is orphaned
         * and cleans up after itself. The rest never started. */
        for (bus_memwrite_request *q = head; q;) {
                bus_memwrite_request *next = q->next;
                /* A write that is in, waiting only to resume a guest that
                 * is gone now, succeeded: an error would say nothing was
                 * written. */
                if (q->message && q->written)
                        (void) sd_bus_reply_method_return(q->message, NULL);
                else if (q->message)
                        (void) sd_bus_reply_method_errorf(q->message, VMSIG_ERROR_ENDPOINT_DETACHED,
                                                          "Endpoint '%s' was detached.",
                                                          vmsig_endpoint_get_name(be->endpoint));
                q->message = sd_bus_message_unref(q->message);
                q->be = NULL;
                q->next = NULL;
                if (q != head)
                        request_free(q);
                q = next;
        }
        be->memwrite_head = be->memwrite_tail = NULL;
}

/* The method handlers. */

static int request_new(sd_bus_message *m, bus_endpoint *be, write_kind kind, sd_bus_error *error,
                       bus_memwrite_request **ret) {
        bus_memwrite_request *q = calloc(1, sizeof *q);
        int r;

        if (!q)
                return -ENOMEM;
        q->be = be;
        q->ep = vmsig_endpoint_ref(be->endpoint);
        q->kind = kind;
        r = kind == WRITE_BATCH ? read_batch(m, q, error) : read_single(m, q);
        if (r >= 0)
                r = bus_read_options(m, read_option, q, error);
        if (r < 0) {
                request_free(q);
                return r;
        }
        *ret = q;
        return 0;
}

static int method_write(sd_bus_message *m, bus_endpoint *be, write_kind kind, sd_bus_error *error) {
        bus_memwrite_request *q = NULL;
        bus_peer *caller;
        int r;

        r = request_new(m, be, kind, error, &q);
        if (r < 0)
                return r;
        r = bus_front_require_lease(be->front, m, be->endpoint, VMSIG_LEASE_MEMWRITE, error);
        if (r == 0) {
                q->lease_id = vmsig_endpoint_lease_get(be->endpoint, VMSIG_LEASE_MEMWRITE)->id;
                r = bus_auth_check(be->front->auth, m, VMSIG_CAP_LEASE_MEMWRITE, be->endpoint, true, error);
                if (r == 0)
                        r = 1; /* waiting for polkit; the handler runs again */
                else if (r > 0)
                        r = 0;
        }
        /* Rejected requests must change nothing: validate before queueing,
         * and before pausing anything. */
        if (r == 0)
                r = validate_and_apply(q, false, error);
        caller = r == 0 ? bus_auth_caller(be->front->auth, m) : NULL;
        if (r == 0 && caller) {
                q->caller = *caller;
                q->caller.gids = NULL;
                q->caller.name = strdup(caller->name);
                r = q->caller.name ? 0 : -ENOMEM;
        }
        if (r != 0) {
                request_free(q);
                return r;
        }
        q->message = sd_bus_message_ref(m);
        if (be->memwrite_tail)
                be->memwrite_tail->next = q;
        else
                be->memwrite_head = q;
        be->memwrite_tail = q;
        if (be->memwrite_head == q)
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
