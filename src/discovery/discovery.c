/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM discovery: one entry per known *.xml file, moving between these states
 * as files and host files come and go:
 *
 *   INVALID  the file never parsed; nothing claimed
 *   CLASH    valid, but its name or uuid belongs to another file
 *   PROBING  waiting for the QMP socket and the RAM file
 *   GAVE_UP  they did not appear within the probe timeout
 *   REFUSED  the attach callback failed
 *   ATTACHED
 *
 * Every state from PROBING on holds a claim on the name (and uuid), so that
 * a second file for the same VM is rejected whatever the first one's
 * progress. Probes share one timerfd, armed for the earliest due probe and
 * disarmed when none is due: an idle host costs no wakeups. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

#include "dirwatch.h"
#include "discovery.h"
#include "hashmap.h"
#include "log.h"
#include "time-util.h"
#include "vm-desc.h"

typedef enum vm_state {
        VM_INVALID,
        VM_CLASH,
        VM_PROBING,
        VM_GAVE_UP,
        VM_REFUSED,
        VM_ATTACHED,
} vm_state;

typedef struct vm_source vm_source;

typedef struct vm_entry {
        vm_source *source;
        char *filename; /* key of source->entries */
        char *path;
        vm_state state;
        vm_desc *desc;             /* NULL until the file parsed once */
        char uuid_key[SD_ID128_UUID_STRING_MAX]; /* key of by_uuid, "" when none */
        uint64_t probe_start, probe_due, probe_delay; /* CLOCK_MONOTONIC usec */
        bool warned_access;                           /* this probe said it may not use a file */
        unsigned seen;                                /* rescan generation */
} vm_entry;

struct vm_source {
        vmsig_discovery *discovery;
        vmsig_vm_origin origin;
        dirwatch *watch;
        Hashmap *entries; /* filename -> vm_entry */
        unsigned generation;
};

struct vmsig_discovery {
        vmsig_core *core;
        vmsig_discovery_ops ops;
        void *userdata;
        xmlRelaxNGPtr schema;
        vm_source sources[_VMSIG_VM_ORIGIN_MAX];
        Hashmap *by_name; /* claimed names -> vm_entry */
        Hashmap *by_uuid; /* claimed uuids -> vm_entry */
        int timer_fd;
        vmsig_cookie timer_cookie;
        uint64_t timer_due; /* 0: disarmed */
        uint64_t probe_timeout;
};

#define FOREACH_SOURCE(s, d) for (vm_source *s = (d)->sources; s < (d)->sources + _VMSIG_VM_ORIGIN_MAX; s++)

/* --- the probe timer ------------------------------------------------------- */

static void timer_update(vmsig_discovery *d) {
        uint64_t due = 0;
        vm_entry *e;
        int r;

        FOREACH_SOURCE(s, d) {
                if (!s->entries)
                        continue;
                HASHMAP_FOREACH(e, s->entries, st)
                        if (e->state == VM_PROBING && (due == 0 || e->probe_due < due))
                                due = e->probe_due;
        }
        if (due == d->timer_due)
                return;
        /* An absolute time in the past fires at once. */
        r = due == 0 ? timerfd_disarm(d->timer_fd) : timerfd_arm_usec(d->timer_fd, due, TFD_TIMER_ABSTIME);
        if (r < 0) {
                log_warning_errno(r, "Cannot arm the VM probe timer: %m");
                return;
        }
        d->timer_due = due;
}

/* --- claims on names and uuids ---------------------------------------------- */

static vm_entry *claim_holder(vmsig_discovery *d, const vm_entry *e) {
        vm_entry *other = hashmap_get(d->by_name, e->desc->name);

        return other || !e->uuid_key[0] ? other : hashmap_get(d->by_uuid, e->uuid_key);
}

static int claim(vmsig_discovery *d, vm_entry *e) {
        vm_entry *other = claim_holder(d, e);
        int r;

        if (other) {
                bool by_name = strcmp(other->desc->name, e->desc->name) == 0;
                log_warning("%s:%u: VM %s \"%s\" is already used by %s:%u; ignoring this file until that one is gone.",
                            e->path, e->desc->line, by_name ? "name" : "uuid", by_name ? e->desc->name : e->uuid_key,
                            other->path, other->desc->line);
                return -EEXIST;
        }
        r = hashmap_put(d->by_name, e->desc->name, e);
        if (r >= 0 && e->uuid_key[0])
                r = hashmap_put(d->by_uuid, e->uuid_key, e);
        if (r < 0) {
                hashmap_remove(d->by_name, e->desc->name);
                return log_warning_errno(r, "%s: Cannot register VM \"%s\": %m", e->path, e->desc->name);
        }
        return 0;
}

static bool holds_claim(const vm_entry *e) {
        return e->state >= VM_PROBING;
}

static void unclaim(vmsig_discovery *d, vm_entry *e) {
        if (!holds_claim(e))
                return;
        hashmap_remove(d->by_name, e->desc->name);
        if (e->uuid_key[0])
                hashmap_remove(d->by_uuid, e->uuid_key);
}

/* --- probing and attaching --------------------------------------------------- */

static void view(const vm_entry *e, vmsig_vm_description *ret) {
        *ret = (vmsig_vm_description) {
                .file = e->path,
                .origin = e->source->origin,
                .name = e->desc->name,
                .uuid = e->desc->uuid,
                .qmp_socket = e->desc->qmp_socket,
                .ram_path = e->desc->ram_path,
                .ranges = e->desc->ranges,
                .n_ranges = e->desc->n_ranges,
                .guest_os = e->desc->guest_os,
        };
}

static void attach(vmsig_discovery *d, vm_entry *e) {
        vmsig_vm_description v;
        int r;

        view(e, &v);
        r = d->ops.attach(&v, d->userdata);
        if (r < 0) {
                e->state = VM_REFUSED;
                log_warning_errno(r, "%s: Cannot attach VM \"%s\": %m", e->path, e->desc->name);
                return;
        }
        /* The attach callback says so, with what it made of it (a vmid). */
        e->state = VM_ATTACHED;
}

static void give_up(vmsig_discovery *d, vm_entry *e, const char *reason) {
        e->state = VM_GAVE_UP;
        log_warning("%s: Giving up on VM \"%s\" after %.1f s: %s. Rewrite or touch the file to try again.", e->path,
                    e->desc->name, (double) d->probe_timeout / 1e6, reason);
}

/* One attempt; schedules the next one, capped at the deadline so that the
 * last attempt is made right at it. Does not rearm the timer. */
static void probe_step(vmsig_discovery *d, vm_entry *e, uint64_t now) {
        uint64_t deadline = e->probe_start + d->probe_timeout;
        char reason[PATH_MAX + 128];
        int r;

        r = vm_desc_probe_host(e->desc, reason, sizeof reason);
        if (r >= 0) {
                attach(d, e);
                return;
        }
        if (now >= deadline) {
                give_up(d, e, reason);
                return;
        }
        /* A file that is there but closed to vmsigd is not QEMU starting
         * up: its owner's mode or umask must change, which the admin wants
         * to hear now rather than when the probe gives up. Once per probe;
         * the wait goes on, as QEMU (or libvirt) may still chmod it. */
        if ((r == -EACCES || r == -EPERM) && !e->warned_access) {
                e->warned_access = true;
                log_warning("%s: VM \"%s\": %s; vmsigd needs read access to the RAM file and read and write "
                            "access to the QMP socket. Waiting.", e->path, e->desc->name, reason);
        } else if (e->probe_delay == VMSIG_DISCOVERY_PROBE_DELAY_MIN_USEC)
                log_debug("%s: waiting for %s.", e->path, reason);
        e->probe_due = MIN(now + e->probe_delay, deadline);
        e->probe_delay = MIN(e->probe_delay * 2, VMSIG_DISCOVERY_PROBE_DELAY_MAX_USEC);
}

static void probe_start(vmsig_discovery *d, vm_entry *e) {
        e->state = VM_PROBING;
        e->probe_start = now_usec();
        e->probe_delay = VMSIG_DISCOVERY_PROBE_DELAY_MIN_USEC;
        e->warned_access = false;
        probe_step(d, e, e->probe_start);
}

static void on_timer(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        vmsig_discovery *d = userdata;
        uint64_t expirations, now = now_usec();
        vm_entry *e;

        (void) !read(fd, &expirations, sizeof expirations); /* only to rearm: the count does not matter */
        d->timer_due = 0; /* fired: the kernel disarmed it */
        FOREACH_SOURCE(s, d) {
                if (!s->entries)
                        continue;
                HASHMAP_FOREACH(e, s->entries, st)
                        if (e->state == VM_PROBING && e->probe_due <= now)
                                probe_step(d, e, now);
        }
        timer_update(d);
}

/* --- entry life cycle ----------------------------------------------------------- */

/* Claims the name, then probes: attaches at once when QEMU is already up. */
static void entry_start(vmsig_discovery *d, vm_entry *e) {
        if (claim(d, e) < 0) {
                e->state = VM_CLASH;
                return;
        }
        probe_start(d, e);
}

/* Undoes entry_start(); returns whether a claim was released. */
static bool entry_stop(vmsig_discovery *d, vm_entry *e) {
        bool released = holds_claim(e);

        if (e->state == VM_ATTACHED) {
                d->ops.detach(e->desc->name, d->userdata);
                log_info("Detached VM \"%s\" (%s).", e->desc->name, e->path);
        }
        unclaim(d, e);
        e->state = VM_INVALID; /* holds nothing; the caller decides what comes next */
        return released;
}

/* A released name may be what a rejected file was waiting for. */
static void retry_clashes(vmsig_discovery *d) {
        vm_entry *e;

        FOREACH_SOURCE(s, d) {
                if (!s->entries)
                        continue;
                HASHMAP_FOREACH(e, s->entries, st)
                        if (e->state == VM_CLASH && !claim_holder(d, e)) {
                                log_info("%s: VM \"%s\" is no longer claimed by another file.", e->path, e->desc->name);
                                entry_start(d, e);
                        }
        }
}

static vm_entry *entry_free(vm_entry *e) {
        if (!e)
                return NULL;
        vm_desc_free(e->desc);
        free(e->filename);
        free(e->path);
        return mfree(e);
}

static int entry_new(vm_source *s, const char *filename, vm_entry **ret) {
        vm_entry *e = calloc(1, sizeof(*e));
        const char *dir = dirwatch_path(s->watch);
        int r;

        if (!e)
                return -ENOMEM;
        e->source = s;
        e->filename = strdup(filename);
        if (!e->filename || asprintf(&e->path, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, filename) < 0) {
                e->path = NULL;
                entry_free(e);
                return -ENOMEM;
        }
        r = hashmap_put(s->entries, e->filename, e);
        if (r < 0) {
                entry_free(e);
                return r;
        }
        *ret = e;
        return 0;
}

static void entry_remove(vm_source *s, vm_entry *e) {
        bool released = entry_stop(s->discovery, e);

        hashmap_remove(s->entries, e->filename);
        entry_free(e);
        if (released)
                retry_clashes(s->discovery);
}

/* --- reading files ------------------------------------------------------------ */

typedef enum read_result {
        READ_KEEP, /* unreadable or invalid (logged): keep what we had */
        READ_OK,
} read_result;

static read_result read_desc(vm_source *s, vm_entry *e, vm_desc **ret) {
        _cleanup_free_ char *error = NULL;
        int r;

        r = vm_desc_read_trigger(e->path, s->discovery->schema, ret, &error);
        if (r == -ENOENT)
                return READ_KEEP; /* removed before we got to it: its event follows */
        if (r < 0) {
                log_warning("%s%s", error ?: e->path, e->desc ? " Keeping the previous description." : "");
                return READ_KEEP;
        }
        return READ_OK;
}

/* The same description again: only a VM that is stuck gets a new chance. */
static void entry_kick(vmsig_discovery *d, vm_entry *e) {
        if (e->state != VM_GAVE_UP && e->state != VM_REFUSED)
                return;
        log_info("%s: trying VM \"%s\" again.", e->path, e->desc->name);
        probe_start(d, e);
}

static void entry_replace(vmsig_discovery *d, vm_entry *e, vm_desc *v) {
        bool released;

        if (e->state == VM_ATTACHED)
                log_info("%s: VM \"%s\" changed, attaching it again.", e->path, e->desc->name);
        released = entry_stop(d, e);
        vm_desc_free(e->desc);
        e->desc = v;
        e->uuid_key[0] = '\0';
        if (!sd_id128_is_null(v->uuid))
                sd_id128_to_uuid_string(v->uuid, e->uuid_key);
        entry_start(d, e);
        if (released)
                retry_clashes(d);
}

/* The caller rearms the timer: a rescan reads many files. */
static void source_file_changed(vm_source *s, const char *filename) {
        vmsig_discovery *d = s->discovery;
        vm_entry *e = hashmap_get(s->entries, filename);
        vm_desc *v = NULL;
        int r;

        if (!e && (r = entry_new(s, filename, &e)) < 0) {
                log_warning_errno(r, "%s/%s: Cannot track file: %m", dirwatch_path(s->watch), filename);
                return;
        }
        e->seen = s->generation;
        switch (read_desc(s, e, &v)) {
        case READ_KEEP:
                break;
        case READ_OK:
                if (e->desc && vm_desc_equal(e->desc, v)) {
                        vm_desc_free(v);
                        entry_kick(d, e);
                } else
                        entry_replace(d, e, v);
                break;
        }
}

static void on_changed(dirwatch *w, const char *name, void *userdata) {
        vm_source *s = userdata;

        source_file_changed(s, name);
        timer_update(s->discovery);
}

static void on_removed(dirwatch *w, const char *name, void *userdata) {
        vm_source *s = userdata;
        vm_entry *e = hashmap_get(s->entries, name);

        if (!e)
                return;
        entry_remove(s, e);
        timer_update(s->discovery);
}

/* Reconcile with what is in the directory now: read every file again and
 * forget those that are gone. */
static void on_rescan(dirwatch *w, void *userdata) {
        vm_source *s = userdata;
        char **names = NULL;
        size_t n = 0, n_gone = 0;
        vm_entry **gone, *e;
        int r;

        r = dirwatch_list(w, &names, &n);
        if (r < 0) {
                log_warning_errno(r, "Cannot read %s: %m", dirwatch_path(w));
                return;
        }
        s->generation++;
        for (size_t i = 0; i < n; i++)
                source_file_changed(s, names[i]);
        dirwatch_list_free(names, n);

        /* Collected first: removing while iterating would upset the map. */
        gone = calloc(hashmap_size(s->entries) + 1, sizeof(vm_entry *));
        if (!gone) {
                log_oom();
                return;
        }
        HASHMAP_FOREACH(e, s->entries, st)
                if (e->seen != s->generation)
                        gone[n_gone++] = e;
        for (size_t i = 0; i < n_gone; i++)
                entry_remove(s, gone[i]);
        free(gone);
        timer_update(s->discovery);
}

static const dirwatch_ops watch_ops = {
        .changed = on_changed,
        .removed = on_removed,
        .rescan = on_rescan,
};

/* --- public API ------------------------------------------------------------------ */

static int source_init(vmsig_discovery *d, vmsig_vm_origin origin, const char *path) {
        vm_source *s = &d->sources[origin];

        s->discovery = d;
        s->origin = origin;
        if (!path)
                return 0;
        s->entries = hashmap_new();
        if (!s->entries)
                return -ENOMEM;
        return dirwatch_new(d->core, path, &watch_ops, s, &s->watch);
}

static int timer_init(vmsig_discovery *d) {
        d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (d->timer_fd < 0)
                return -errno;
        return vmsig_core_add_fd(d->core, d->timer_fd, EPOLLIN, on_timer, d, &d->timer_cookie);
}

static int discovery_alloc(vmsig_core *core, const vmsig_discovery_ops *ops, void *userdata, vmsig_discovery **ret) {
        vmsig_discovery *d = calloc(1, sizeof(*d));
        int r;

        if (!d)
                return -ENOMEM;
        *d = (vmsig_discovery) {
                .core = core,
                .ops = *ops,
                .userdata = userdata,
                .timer_fd = -1,
                .probe_timeout = VMSIG_DISCOVERY_PROBE_TIMEOUT_USEC_DEFAULT,
        };
        *ret = d;
        d->by_name = hashmap_new();
        d->by_uuid = hashmap_new();
        if (!d->by_name || !d->by_uuid)
                return -ENOMEM;
        r = vm_schema_load(&d->schema);
        if (r >= 0)
                r = timer_init(d);
        return r;
}

int vmsig_discovery_new(vmsig_core *core, const char *trigger_dir, const vmsig_discovery_ops *ops, void *userdata, vmsig_discovery **ret) {
        vmsig_discovery *d = NULL;
        int r;

        if (!core || !ops || !ops->attach || !ops->detach || !ret)
                return -EINVAL;
        r = discovery_alloc(core, ops, userdata, &d);
        if (r >= 0)
                r = source_init(d, VMSIG_VM_ORIGIN_TRIGGER, trigger_dir ?: VMSIG_DISCOVERY_TRIGGER_DIR_DEFAULT);
        if (r >= 0)
                r = dirwatch_start(d->sources[VMSIG_VM_ORIGIN_TRIGGER].watch);
        if (r < 0) {
                vmsig_discovery_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

static void source_done(vm_source *s) {
        s->watch = dirwatch_free(s->watch);
        s->entries = hashmap_free_with_destructor(s->entries, entry_free);
}

vmsig_discovery *vmsig_discovery_free(vmsig_discovery *d) {
        if (!d)
                return NULL;
        FOREACH_SOURCE(s, d)
                source_done(s);
        hashmap_free(d->by_name);
        hashmap_free(d->by_uuid);
        if (d->timer_cookie)
                (void) vmsig_core_remove_fd(d->core, d->timer_cookie);
        safe_close(d->timer_fd);
        if (d->schema)
                xmlRelaxNGFree(d->schema);
        return mfree(d);
}

void vmsig_discovery_set_probe_timeout(vmsig_discovery *d, uint64_t usec) {
        vm_entry *e;

        d->probe_timeout = usec ?: VMSIG_DISCOVERY_PROBE_TIMEOUT_USEC_DEFAULT;
        /* A shorter timeout may move the deadline of a running probe closer. */
        FOREACH_SOURCE(s, d) {
                if (!s->entries)
                        continue;
                HASHMAP_FOREACH(e, s->entries, st)
                        if (e->state == VM_PROBING)
                                e->probe_due = MIN(e->probe_due, e->probe_start + d->probe_timeout);
        }
        timer_update(d);
}

void vmsig_discovery_rescan(vmsig_discovery *d) {
        FOREACH_SOURCE(s, d)
                if (s->watch)
                        on_rescan(s->watch, s);
}

void vmsig_discovery_get_stats(vmsig_discovery *d, vmsig_discovery_stats *ret) {
        vm_entry *e;

        *ret = (vmsig_discovery_stats) {};
        FOREACH_SOURCE(s, d) {
                if (!s->entries)
                        continue;
                HASHMAP_FOREACH(e, s->entries, st) {
                        ret->files++;
                        if (e->state == VM_ATTACHED)
                                ret->attached++;
                        else if (e->state == VM_PROBING)
                                ret->probing++;
                        else
                                ret->rejected++;
                }
        }
}
