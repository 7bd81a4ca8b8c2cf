/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Subscribers that keep their own view of every endpoint from signals
 * alone, and the checks of what each signal may say after the ones before
 * it on the same endpoint: the Sequence that every PropertiesChanged of an
 * endpoint carries going up by one (nothing lost or reordered);
 * roster signals (InterfacesAdded, EndpointAdded, InterfacesRemoved,
 * EndpointRemoved) in that order per path; Generation rising per vmid;
 * MemctxEpoch never going back; LeaseAcquired and LeaseReleased
 * alternating per class with the same holder, and the holder properties
 * agreeing with them; the State and epoch changes of the lifecycle stubs in
 * exactly the order the drivers' calls returned. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

#define OM_IFACE "org.freedesktop.DBus.ObjectManager"
#define PROPS_IFACE "org.freedesktop.DBus.Properties"

static const char *const holder_properties[3] = { "InputLeaseHolder", "PowerLeaseHolder", "MemoryWriteLeaseHolder" };
static const char *const class_names[3] = { "input", "power", "memory-write" };

/* --- one endpoint's signals --------------------------------------------------------- */

void load_track_reset(load_track *tr) {
        load_text seq = tr->seq;

        *tr = (load_track) { .seq = seq };
}

static int class_index(const char *name) {
        for (int i = 0; i < 3; i++)
                if (strcmp(name, class_names[i]) == 0 || strcmp(name, holder_properties[i]) == 0)
                        return i;
        return -1;
}

/* vmsigd announces State only when it changed: the same value twice means
 * a state in between was never announced. */
static void on_state(load_ctx *ctx, load_track *tr, load_target *t, const char *state, const char *who) {
        if (strcmp(tr->state, state) == 0) {
                tr->repeats++;
                tr->repeats_state++;
                if (tr->record)
                        load_fail(ctx, "%s got State '%s' of %s twice in a row", who, state, t ? t->name : "?");
        }
        snprintf(tr->state, sizeof tr->state, "%s", state);
        if (tr->record && t && t->kind == TARGET_LIFECYCLE)
                load_text_append(&tr->seq, strcmp(state, "paused") == 0    ? 'P'
                                           : strcmp(state, "running") == 0 ? 'R'
                                                                           : '?');
}

static void on_epoch(load_ctx *ctx, load_track *tr, load_target *t, uint64_t epoch, const char *who) {
        if (tr->epoch_known && epoch < tr->epoch)
                load_fail(ctx, "%s saw MemctxEpoch of %s go back from %" PRIu64 " to %" PRIu64, who,
                          t ? t->name : "?", tr->epoch, epoch);
        else if (tr->epoch_known && epoch == tr->epoch)
                tr->repeats++;
        else if (tr->epoch_known && tr->record && t && t->kind == TARGET_LIFECYCLE)
                for (uint64_t e = tr->epoch; e < epoch; e++)
                        load_text_append(&tr->seq, 'X');
        tr->epoch = epoch;
        tr->epoch_known = true;
}

static void on_holder(load_ctx *ctx, load_track *tr, load_target *t, int ci, const char *holder, bool change,
                      const char *who) {
        /* A change announces the holder the lease signal before it named. */
        if (change && tr->holder_known[ci] && strcmp(tr->holder[ci], holder) != 0)
                load_fail(ctx, "%s: %s of %s is '%s', but the lease signals said '%s'", who, holder_properties[ci],
                          t ? t->name : "?", holder, tr->holder[ci]);
        snprintf(tr->holder[ci], sizeof tr->holder[ci], "%s", holder);
        tr->holder_known[ci] = true;
}

static int read_prop(load_ctx *ctx, load_track *tr, load_target *t, sd_bus_message *m, bool change, const char *who) {
        const char *key, *s;
        uint32_t u;
        uint64_t x;
        int r, ci;

        r = sd_bus_message_read(m, "s", &key);
        if (r < 0)
                return r;
        if (strcmp(key, "State") == 0 && (r = sd_bus_message_read(m, "v", "s", &s)) >= 0) {
                if (change)
                        on_state(ctx, tr, t, s, who);
                else
                        snprintf(tr->state, sizeof tr->state, "%s", s);
        } else if (strcmp(key, "MemctxEpoch") == 0 && (r = sd_bus_message_read(m, "v", "t", &x)) >= 0) {
                if (change)
                        on_epoch(ctx, tr, t, x, who);
                else {
                        tr->epoch = x;
                        tr->epoch_known = true;
                }
        } else if (strcmp(key, "Sequence") == 0 && (r = sd_bus_message_read(m, "v", "t", &x)) >= 0) {
                if (change && tr->sequence_known && x != tr->sequence + 1)
                        load_fail(ctx, "%s: Sequence of %s went from %" PRIu64 " to %" PRIu64 " (lost or reordered)",
                                  who, t ? t->name : "?", tr->sequence, x);
                tr->sequence = x;
                tr->sequence_known = true;
                tr->sequenced += change;
        } else if (strcmp(key, "Vmid") == 0 && (r = sd_bus_message_read(m, "v", "u", &u)) >= 0)
                tr->vmid = u;
        else if (strcmp(key, "Generation") == 0 && (r = sd_bus_message_read(m, "v", "u", &u)) >= 0)
                tr->generation = u;
        else if ((ci = class_index(key)) >= 0 && (r = sd_bus_message_read(m, "v", "s", &s)) >= 0)
                on_holder(ctx, tr, t, ci, s, change, who);
        else if (r >= 0)
                r = sd_bus_message_skip(m, "v");
        return r;
}

/* a{sv}: a whole object (change = false) or what PropertiesChanged says. */
static int read_props(load_ctx *ctx, load_track *tr, load_target *t, sd_bus_message *m, bool change, const char *who) {
        uint64_t sequenced = tr->sequenced;
        int r = sd_bus_message_enter_container(m, 'a', "{sv}");

        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = read_prop(ctx, tr, t, m, change, who);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r >= 0 && change && tr->sequenced == sequenced)
                load_fail(ctx, "%s: a PropertiesChanged of %s without Sequence", who, t ? t->name : "?");
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

static void on_lease_signal(load_ctx *ctx, load_track *tr, load_target *t, sd_bus_message *m, bool acquired,
                            const char *who) {
        const char *class, *holder, *reason = "";
        int ci;

        if (sd_bus_message_read(m, acquired ? "ss" : "sss", &class, &holder, &reason) < 0 ||
            (ci = class_index(class)) < 0) {
                load_fail(ctx, "%s: a lease signal of the wrong shape", who);
                return;
        }
        if (acquired && tr->holder_known[ci] && tr->holder[ci][0])
                load_fail(ctx, "%s: LeaseAcquired(%s, %s) on %s while %s holds it", who, class, holder,
                          t ? t->name : "?", tr->holder[ci]);
        if (!acquired && tr->holder_known[ci] && strcmp(tr->holder[ci], holder) != 0)
                load_fail(ctx, "%s: LeaseReleased(%s, %s, %s) on %s, but the holder was '%s'", who, class, holder,
                          reason, t ? t->name : "?", tr->holder[ci]);
        snprintf(tr->holder[ci], sizeof tr->holder[ci], "%s", acquired ? holder : "");
        tr->holder_known[ci] = true;
}

void load_track_signal(load_ctx *ctx, load_track *tr, load_target *t, sd_bus_message *m, const char *who,
                       bool strict) {
        const char *iface;

        if (strict && !tr->present) {
                load_fail(ctx, "%s got %s.%s for %s, which is not on the roster", who, sd_bus_message_get_interface(m),
                          sd_bus_message_get_member(m), sd_bus_message_get_path(m));
                return;
        }
        tr->signals++;
        if (sd_bus_message_is_signal(m, PROPS_IFACE, "PropertiesChanged")) {
                if (sd_bus_message_read(m, "s", &iface) >= 0 && strcmp(iface, VMSIG_BUS_ENDPOINT_INTERFACE) == 0 &&
                    read_props(ctx, tr, t, m, true, who) < 0)
                        load_fail(ctx, "%s: PropertiesChanged of the wrong shape", who);
        } else if (sd_bus_message_is_signal(m, VMSIG_BUS_ENDPOINT_INTERFACE, "LeaseAcquired"))
                on_lease_signal(ctx, tr, t, m, true, who);
        else if (sd_bus_message_is_signal(m, VMSIG_BUS_ENDPOINT_INTERFACE, "LeaseReleased"))
                on_lease_signal(ctx, tr, t, m, false, who);
}

/* --- watchers ----------------------------------------------------------------------- */

typedef struct wview {
        char *path;
        load_target *t;
        load_track tr;
} wview;

struct load_watcher {
        load_ctx *ctx;
        sd_bus *bus;
        bool seeding; /* signals older than the snapshot are being dropped */
        wview *views;
        size_t n_views, size;
        uint32_t *generations; /* by vmid */
        uint64_t signals;      /* of views dropped */
        uint64_t sequenced;    /* of views dropped */
        size_t n_generations;
        sd_bus_slot *slots[2];
        unsigned lease_objects; /* in the last snapshot */
};

static wview *view_get(load_watcher *w, const char *path) {
        for (size_t i = 0; i < w->n_views; i++)
                if (strcmp(w->views[i].path, path) == 0)
                        return &w->views[i];
        if (w->n_views == w->size) {
                size_t size = w->size ? w->size * 2 : 128;
                wview *grown = realloc(w->views, size * sizeof *grown);
                if (!grown)
                        return NULL;
                w->views = grown;
                w->size = size;
        }
        wview *v = &w->views[w->n_views];
        *v = (wview) { .path = strdup(path), .t = load_target_by_path(w->ctx, path) };
        if (!v->path)
                return NULL;
        v->tr.record = true;
        w->n_views++;
        return v;
}

/* A removed endpoint's path is never used again (a VM added again gets a
 * path of its own), so its view can go: the list stays as long as the
 * roster, not as the history. */
static void view_drop(load_watcher *w, wview *v) {
        w->signals += v->tr.signals;
        w->sequenced += v->tr.sequenced;
        free(v->path);
        free(v->tr.seq.s);
        *v = w->views[--w->n_views];
}

/* Generation rises every time a vmid's slot is used again. */
static void check_generation(load_watcher *w, wview *v) {
        uint32_t vmid = v->tr.vmid;

        if (vmid >= w->n_generations) {
                size_t n = vmid + 64;
                uint32_t *grown = realloc(w->generations, n * sizeof *grown);
                if (!grown)
                        return;
                memset(grown + w->n_generations, 0, (n - w->n_generations) * sizeof *grown);
                w->generations = grown;
                w->n_generations = n;
        }
        if (w->generations[vmid] && v->tr.generation <= w->generations[vmid])
                load_fail(w->ctx, "a watcher saw vmid %u come back with generation %u after %u", vmid,
                          v->tr.generation, w->generations[vmid]);
        w->generations[vmid] = v->tr.generation;
}

static int view_added(load_watcher *w, const char *path, sd_bus_message *m) {
        const char *iface;
        int r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}");

        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
                r = sd_bus_message_read(m, "s", &iface);
                if (r >= 0 && strcmp(iface, VMSIG_BUS_ENDPOINT_INTERFACE) == 0) {
                        wview *v = view_get(w, path);
                        if (!v)
                                return -ENOMEM;
                        if (v->tr.present)
                                load_fail(w->ctx, "a watcher got InterfacesAdded for %s, which was there already", path);
                        load_track_reset(&v->tr);
                        v->tr.record = true;
                        v->tr.present = true;
                        r = read_props(w->ctx, &v->tr, v->t, m, false, "a watcher");
                        for (int i = 0; i < 3; i++)
                                v->tr.holder_known[i] = true;
                        check_generation(w, v);
                } else if (r >= 0)
                        r = sd_bus_message_skip(m, "a{sv}");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

static void on_roster_signal(load_watcher *w, sd_bus_message *m, const char *member) {
        const char *path = NULL;
        wview *v;

        /* The ObjectManager announces lease objects too; only endpoints
         * are on the roster. */
        if (sd_bus_message_read(m, "o", &path) < 0 ||
            strncmp(path, VMSIG_BUS_ENDPOINT_PREFIX "/", strlen(VMSIG_BUS_ENDPOINT_PREFIX) + 1) != 0 ||
            !(v = view_get(w, path)))
                return;
        if (strcmp(member, "InterfacesAdded") == 0) {
                if (view_added(w, path, m) < 0)
                        load_fail(w->ctx, "a watcher got InterfacesAdded of the wrong shape");
        } else if (strcmp(member, "InterfacesRemoved") == 0) {
                if (!v->tr.present)
                        load_fail(w->ctx, "a watcher got InterfacesRemoved for %s, which was not there", path);
                v->tr.present = false;
        } else if (strcmp(member, "EndpointAdded") == 0) {
                if (!v->tr.present || v->tr.announced)
                        load_fail(w->ctx, "a watcher got EndpointAdded for %s %s", path,
                                  v->tr.present ? "twice" : "before InterfacesAdded");
                v->tr.announced = true;
        } else if (strcmp(member, "EndpointRemoved") == 0) {
                if (v->tr.present || !v->tr.announced)
                        load_fail(w->ctx, "a watcher got EndpointRemoved for %s %s", path,
                                  v->tr.present ? "before InterfacesRemoved" : "that was never added");
                v->tr.announced = false;
                view_drop(w, v);
        }
}

static int on_watch_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        load_watcher *w = userdata;
        const char *path = sd_bus_message_get_path(m), *member = sd_bus_message_get_member(m);
        wview *v;

        if (w->seeding || !path || !member)
                return 0;
        if (strcmp(path, VMSIG_BUS_PATH) == 0) {
                if (strcmp(sd_bus_message_get_interface(m), PROPS_IFACE) != 0)
                        on_roster_signal(w, m, member);
                return 0;
        }
        v = view_get(w, path);
        if (v)
                load_track_signal(w->ctx, &v->tr, v->t, m, "a watcher", true);
        return 0;
}

int load_managed_objects(sd_bus *bus, sd_bus_message **ret) {
        return sd_bus_call_method(bus, VMSIG_BUS_NAME, VMSIG_BUS_PATH, OM_IFACE, "GetManagedObjects", NULL, ret, "");
}

/* Reads a GetManagedObjects reply into fresh views (the endpoints only). */
static int read_snapshot(load_watcher *w, sd_bus_message *reply) {
        const char *path;
        int r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");

        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                r = sd_bus_message_read(reply, "o", &path);
                if (r >= 0 &&
                    strncmp(path, VMSIG_BUS_ENDPOINT_PREFIX "/", strlen(VMSIG_BUS_ENDPOINT_PREFIX) + 1) == 0) {
                        r = view_added(w, path, reply);
                        wview *v = view_get(w, path);
                        if (v)
                                v->tr.announced = true;
                } else if (r >= 0) {
                        w->lease_objects += strncmp(path, "/org/vmsig/lease/", 17) == 0;
                        r = sd_bus_message_skip(reply, "a{sa{sv}}");
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        return r < 0 ? r : sd_bus_message_exit_container(reply);
}

/* Signals older than the snapshot are in the read queue when the reply
 * returns (sd-bus reads no further than the reply); they are dropped. */
static int seed(load_watcher *w) {
        sd_bus_message *reply = NULL;
        int r = load_managed_objects(w->bus, &reply);

        w->seeding = true;
        if (r >= 0)
                r = bench_drain(w->bus);
        w->seeding = false;
        if (r >= 0)
                r = read_snapshot(w, reply);
        sd_bus_message_unref(reply);
        return r;
}

int load_watcher_new(load_ctx *ctx, sd_bus *bus, load_watcher **ret) {
        load_watcher *w = calloc(1, sizeof *w);
        load_watcher **grown = realloc(ctx->watchers, (ctx->n_watchers + 1) * sizeof *grown);
        int r;

        if (grown)
                ctx->watchers = grown;
        if (!w || !grown) {
                free(w);
                return -ENOMEM;
        }
        *w = (load_watcher) { .ctx = ctx, .bus = bus };
        r = sd_bus_add_match(bus, &w->slots[0], "type='signal',sender='" VMSIG_BUS_NAME "',path='" VMSIG_BUS_PATH "'",
                             on_watch_signal, w);
        if (r >= 0)
                r = sd_bus_add_match(bus, &w->slots[1],
                                     "type='signal',sender='" VMSIG_BUS_NAME
                                     "',path_namespace='" VMSIG_BUS_ENDPOINT_PREFIX "'",
                                     on_watch_signal, w);
        if (r >= 0)
                r = seed(w);
        ctx->watchers[ctx->n_watchers++] = w;
        *ret = w;
        return r;
}

/* --- the end: every watcher's view against a fresh snapshot ----------------------------- */

/* What a view must agree on with a fresh snapshot, as text: two views
 * agree when their descriptions are equal. Of an endpoint that is gone,
 * only whether its removal was announced. */
static void describe(const load_track *tr, char *buf, size_t size) {
        if (!tr->present)
                snprintf(buf, size, "absent%s", tr->announced ? ", removal not announced" : "");
        else
                snprintf(buf, size,
                         "present%s vmid %u gen %u state %s epoch %" PRIu64 " sequence %" PRIu64 " holders [%s|%s|%s]",
                         tr->announced ? "" : " (not announced)", tr->vmid, tr->generation, tr->state, tr->epoch,
                         tr->sequence, tr->holder[0], tr->holder[1], tr->holder[2]);
}

static unsigned compare_views(load_watcher *w, load_watcher *fresh) {
        unsigned bad = 0;
        char a[512], b[512];

        for (size_t i = 0; i < w->n_views; i++) {
                wview *v = &w->views[i], *f = view_get(fresh, v->path);
                if (!f)
                        continue;
                describe(&v->tr, a, sizeof a);
                describe(&f->tr, b, sizeof b);
                if (strcmp(a, b) == 0)
                        continue;
                load_fail(w->ctx, "a watcher's view of %s: %s; GetManagedObjects: %s", v->path, a, b);
                bad++;
        }
        for (size_t i = 0; i < fresh->n_views; i++)
                if (fresh->views[i].tr.present && !view_get(w, fresh->views[i].path)->tr.present) {
                        load_fail(w->ctx, "a watcher missed endpoint %s", fresh->views[i].path);
                        bad++;
                }
        return bad;
}

/* The lifecycle stubs: the watcher saw the drivers' calls in their order. */
static unsigned compare_logs(load_watcher *w) {
        unsigned bad = 0;

        for (size_t i = 0; i < w->n_views; i++) {
                wview *v = &w->views[i];
                const char *want = v->t && v->t->log.s ? v->t->log.s : "", *got = v->tr.seq.s ? v->tr.seq.s : "";
                if (!v->t || v->t->kind != TARGET_LIFECYCLE || strcmp(want, got) == 0)
                        continue;
                size_t at = 0;
                while (want[at] && want[at] == got[at])
                        at++;
                load_fail(w->ctx, "a watcher saw the changes of '%s' as %.12s... from step %zu, the calls returned %.12s...",
                          v->t->name, got + at, at, want + at);
                bad++;
        }
        return bad;
}

/* What a watcher, or a snapshot read into one, owns besides its slots. */
static void views_free(load_watcher *w) {
        for (size_t i = 0; i < w->n_views; i++) {
                free(w->views[i].path);
                free(w->views[i].tr.seq.s);
        }
        free(w->views);
        free(w->generations);
}

static void watcher_free(load_watcher *w) {
        views_free(w);
        for (size_t i = 0; i < 2; i++)
                sd_bus_slot_unref(w->slots[i]);
        free(w);
}

static int check_one(load_ctx *ctx, load_watcher *w, uint64_t *ops, uint64_t *sequenced) {
        load_watcher fresh = { .ctx = ctx };
        sd_bus_message *reply = NULL;
        int r = load_managed_objects(w->bus, &reply);

        /* What came before the reply is part of the view being compared. */
        if (r >= 0)
                r = bench_drain(w->bus);
        if (r >= 0)
                r = read_snapshot(&fresh, reply);
        sd_bus_message_unref(reply);
        if (r < 0)
                return r;
        r = (int) (compare_views(w, &fresh) + compare_logs(w));
        *ops += w->signals;
        *sequenced += w->sequenced;
        for (size_t i = 0; i < w->n_views; i++) {
                *ops += w->views[i].tr.signals;
                *sequenced += w->views[i].tr.sequenced;
        }
        views_free(&fresh);
        return r;
}

int load_watchers_check_final(load_ctx *ctx) {
        unsigned agree = 0, log_steps = 0, endpoints = 0;
        uint64_t signals = 0, sequenced = 0, repeats = 0, repeats_state = 0;

        for (size_t i = 0; i < ctx->n_watchers; i++) {
                int r = check_one(ctx, ctx->watchers[i], &signals, &sequenced);
                if (r < 0)
                        load_fail(ctx, "watcher %zu cannot read GetManagedObjects: %s", i, strerror(-r));
                else if (r == 0)
                        agree++;
        }
        for (size_t i = 0; i < ctx->n_targets; i++)
                log_steps += (unsigned) ctx->targets[i].log.len;
        if (ctx->n_watchers > 0)
                for (size_t i = 0; i < ctx->watchers[0]->n_views; i++) {
                        endpoints += ctx->watchers[0]->views[i].tr.present;
                        repeats += ctx->watchers[0]->views[i].tr.repeats;
                        repeats_state += ctx->watchers[0]->views[i].tr.repeats_state;
                }
        printf("  subscribers: %u of %zu watchers end with the roster (%u endpoints), epochs, states, sequences and"
               " lease holders of GetManagedObjects,\n  after %" PRIu64 " signals (%" PRIu64 " sequence numbers checked,"
               " none missing or out of order); lifecycle stubs: %u calls seen in their order;\n  %" PRIu64
               " PropertiesChanged repeated a value (watcher 0; %" PRIu64 " of State)\n",
               agree, ctx->n_watchers, endpoints, signals, sequenced, log_steps, repeats, repeats_state);
        printf("@ load-subscribers watchers=%zu agree=%u signals=%" PRIu64 " sequenced=%" PRIu64
               " lifecycle_steps=%u repeats=%" PRIu64 "\n",
               ctx->n_watchers, agree, signals, sequenced, log_steps, repeats);
        return 0;
}

void load_watchers_free(load_ctx *ctx) {
        for (size_t i = 0; i < ctx->n_watchers; i++)
                watcher_free(ctx->watchers[i]);
        free(ctx->watchers);
        ctx->watchers = NULL;
        ctx->n_watchers = 0;
}

/* After every client left: no lease may be left over on any endpoint. */
int load_check_no_leases(load_ctx *ctx) {
        load_watcher snap = { .ctx = ctx };
        sd_bus_message *reply = NULL;
        unsigned leases = 0;
        int r = load_managed_objects(ctx->ctl, &reply);

        if (r >= 0)
                r = read_snapshot(&snap, reply);
        for (size_t i = 0; r >= 0 && i < snap.n_views; i++)
                for (int c = 0; c < 3; c++)
                        if (snap.views[i].tr.holder[c][0]) {
                                load_fail(ctx, "%s of %s is still '%s' after every client left",
                                          holder_properties[c], snap.views[i].path, snap.views[i].tr.holder[c]);
                                leases++;
                        }
        if (r < 0)
                load_fail(ctx, "cannot read GetManagedObjects at the end: %s", strerror(-r));
        else if (snap.lease_objects > 0)
                load_fail(ctx, "%u lease objects remain after every client left", snap.lease_objects);
        leases += snap.lease_objects;
        views_free(&snap);
        sd_bus_message_unref(reply);
        return leases > 0 ? -EBUSY : r;
}
