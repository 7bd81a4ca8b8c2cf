/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-peers.h"
#include "event-util.h"
#include "hashmap.h"
#include "log.h"
#include "macro.h"

/* A peer whose credentials are on their way; the calls that needed them
 * wait here and are dispatched again when the answer comes.
 *
 * A peer that left the bus is kept, gone, until the loop is next idle:
 * calls of its may still be queued to be dispatched again (by a polkit
 * answer, or by its credentials) behind its NameOwnerChanged, and they
 * must find it gone rather than start a new record that no
 * NameOwnerChanged would ever end. */
typedef struct peer_entry {
        bus_peer peer;
        bus_peers *owner;
        sd_bus_slot *slot;
        bool ready;
        bool gone;
        int error;
        sd_bus_message **waiting;
        size_t n_waiting;
        struct peer_entry *next_gone;
} peer_entry;

typedef struct gone_hook {
        bus_peer_gone_fn fn;
        void *userdata;
} gone_hook;

struct bus_peers {
        sd_bus *bus;
        gone_hook *hooks;
        size_t n_hooks;
        Hashmap *by_name;
        sd_bus_slot *name_owner_changed;
        sd_event_source *reaper; /* frees the gone, at idle priority */
        peer_entry *gone;        /* also in by_name */
        bus_peer p2p; /* for messages that arrive on a private connection */
};

/* Calls still waiting belong to a peer that left: nobody to answer. */
static void drop_waiting(peer_entry *e) {
        for (size_t i = 0; i < e->n_waiting; i++)
                sd_bus_message_unref(e->waiting[i]);
        e->waiting = mfree(e->waiting);
        e->n_waiting = 0;
}

static peer_entry *peer_entry_free(peer_entry *e) {
        if (!e)
                return NULL;
        sd_bus_slot_unref(e->slot);
        drop_waiting(e);
        free(e->peer.gids);
        free(e->peer.name);
        return mfree(e);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(peer_entry *, peer_entry_free);

/* The debug log says how many peers are tracked, so that tests can see
 * that none is left behind. */
static void log_tracked(bus_peers *p, const char *what, const char *name) {
        log_debug("%s peer %s (%zu peers tracked).", what, name, hashmap_size(p->by_name));
}

static int on_reap(sd_event_source *s, void *userdata) {
        bus_peers *p = userdata;

        while (p->gone) {
                peer_entry *e = p->gone;

                p->gone = e->next_gone;
                (void) hashmap_remove(p->by_name, e->peer.name);
                log_tracked(p, "Forgot", e->peer.name);
                peer_entry_free(e);
        }
        return 0;
}

static void peer_gone(peer_entry *e) {
        bus_peers *p = e->owner;
        int r;

        if (e->gone)
                return;
        e->gone = true;
        e->slot = sd_bus_slot_unref(e->slot);
        drop_waiting(e);
        e->next_gone = p->gone;
        p->gone = e;
        /* The bus is processed at a higher priority: once this runs, no
         * call of the peer is queued any more. */
        r = sd_event_source_set_enabled(p->reaper, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Cannot arm the reaper of peers that left the bus: %m");
}

/* One match for the whole bus, not one per peer: the system bus limits the
 * match rules a connection may hold. */
static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        bus_peers *p = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (name[0] != ':' || new_owner[0] != '\0')
                return 0;
        peer_entry *e = hashmap_get(p->by_name, name);
        if (e)
                peer_gone(e);
        /* Backwards: a hook may remove itself. */
        for (size_t i = p->n_hooks; i > 0; i--)
                if (i <= p->n_hooks)
                        p->hooks[i - 1].fn(name, p->hooks[i - 1].userdata);
        return 0;
}

int bus_peers_new(sd_event *event, sd_bus *bus, bus_peers **ret) {
        _cleanup_(bus_peers_freep) bus_peers *p = NULL;
        int r;

        assert(event);
        assert(bus);
        assert(ret);

        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->bus = sd_bus_ref(bus);
        p->by_name = hashmap_new();
        if (!p->by_name)
                return -ENOMEM;
        r = event_add_defer_off(event, &p->reaper, on_reap, p);
        if (r >= 0)
                r = sd_event_source_set_priority(p->reaper, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_bus_match_signal_async(bus, &p->name_owner_changed, "org.freedesktop.DBus",
                                              "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameOwnerChanged",
                                              on_name_owner_changed, NULL, p);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

bus_peers *bus_peers_free(bus_peers *p) {
        if (!p)
                return NULL;
        p->name_owner_changed = sd_bus_slot_unref(p->name_owner_changed);
        p->reaper = sd_event_source_disable_unref(p->reaper);
        hashmap_free_with_destructor(p->by_name, peer_entry_free);
        free(p->p2p.gids);
        free(p->hooks);
        sd_bus_unref(p->bus);
        return mfree(p);
}

static int read_gids(sd_bus_message *reply, peer_entry *e) {
        const void *data;
        size_t size;
        int r;

        r = sd_bus_message_enter_container(reply, 'v', "au");
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(reply, 'u', &data, &size);
        if (r < 0)
                return r;
        free(e->peer.gids);
        e->peer.gids = malloc(size ? size : 1);
        if (!e->peer.gids)
                return -ENOMEM;
        memcpy(e->peer.gids, data, size);
        e->peer.n_gids = size / sizeof(uint32_t);
        return sd_bus_message_exit_container(reply);
}

static int read_u32_variant(sd_bus_message *reply, uint32_t *ret) {
        return sd_bus_message_read(reply, "v", "u", ret);
}

static int read_credentials(sd_bus_message *reply, peer_entry *e) {
        bool have_uid = false;
        const char *key;
        uint32_t u;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0 && strcmp(key, "UnixUserID") == 0 && (r = read_u32_variant(reply, &u)) >= 0) {
                        e->peer.uid = u;
                        have_uid = true;
                } else if (r >= 0 && strcmp(key, "ProcessID") == 0 && (r = read_u32_variant(reply, &u)) >= 0)
                        e->peer.pid = (pid_t) u;
                else if (r >= 0 && strcmp(key, "UnixGroupIDs") == 0)
                        r = read_gids(reply, e);
                else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                return r;
        return have_uid ? 0 : -ENODATA;
}

static void wake_waiting(peer_entry *e) {
        for (size_t i = 0; i < e->n_waiting; i++) {
                int r = sd_bus_enqueue_for_read(e->owner->bus, e->waiting[i]);
                if (r < 0)
                        log_error_errno(r, "Cannot resume a call from %s: %m", e->peer.name);
                sd_bus_message_unref(e->waiting[i]);
        }
        e->n_waiting = 0;
}

static int on_credentials(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        peer_entry *e = userdata;
        const sd_bus_error *err = sd_bus_message_get_error(reply);

        e->slot = sd_bus_slot_unref(e->slot);
        /* The peer left before the bus driver was asked, and its
         * NameOwnerChanged came before this answer: nothing will end the
         * record but this. */
        if (sd_bus_error_has_name(err, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                log_debug("%s left the bus before its credentials were asked for: dropping its calls.",
                          e->peer.name);
                peer_gone(e);
                return 0;
        }
        e->error = err ? -abs(sd_bus_error_get_errno(err)) : read_credentials(reply, e);
        e->ready = true;
        /* A peer that cannot be identified stays unidentified until it
         * leaves the bus; its calls fail instead of asking again forever. */
        if (e->error < 0)
                log_debug_errno(e->error, "Cannot get the credentials of %s: %m", e->peer.name);
        wake_waiting(e);
        return 0;
}

static int entry_wait(peer_entry *e, sd_bus_message *m) {
        sd_bus_message **w = reallocarray(e->waiting, e->n_waiting + 1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        e->waiting = w;
        e->waiting[e->n_waiting++] = sd_bus_message_ref(m);
        return 0;
}

static int entry_new(bus_peers *p, const char *sender, peer_entry **ret) {
        _cleanup_(peer_entry_freep) peer_entry *e = calloc(1, sizeof *e);
        int r;

        if (!e || !(e->peer.name = strdup(sender)))
                return -ENOMEM;
        e->owner = p;
        e->peer.uid = (uid_t) -1;
        r = sd_bus_call_method_async(p->bus, &e->slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus", "GetConnectionCredentials", on_credentials, e, "s",
                                     sender);
        if (r >= 0)
                r = hashmap_put(p->by_name, e->peer.name, e);
        if (r < 0)
                return r;
        log_tracked(p, "Tracking", sender);
        *ret = TAKE_PTR(e);
        return 0;
}

static int p2p_peer(bus_peers *p, sd_bus_message *m, bus_peer **ret, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *c = NULL;
        int r;

        /* SO_PEERCRED of the private connection; no round trip. */
        r = sd_bus_get_owner_creds(sd_bus_message_get_bus(m), SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID, &c);
        if (r >= 0)
                r = sd_bus_creds_get_euid(c, &p->p2p.uid);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot identify the peer: %s", strerror(-r));
        if (sd_bus_creds_get_pid(c, &p->p2p.pid) < 0)
                p->p2p.pid = 0;
        /* Only root gets in on the private socket, so what root was granted
         * once (and audited) holds for every private peer. */
        p->p2p.name = (char *) "p2p";
        *ret = &p->p2p;
        return 1;
}

int bus_peers_get(bus_peers *p, sd_bus_message *m, bus_peer **ret, sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(m);
        peer_entry *e;
        int r;

        if (!sender)
                return p2p_peer(p, m, ret, error);
        e = hashmap_get(p->by_name, sender);
        /* Its call came round again after it left: nobody to answer, and
         * nothing to start for it. */
        if (e && e->gone)
                return 0;
        if (e && e->ready && e->error < 0)
                return sd_bus_error_set_errnof(error, e->error, "Cannot identify the caller %s: %s", sender,
                                               strerror(-e->error));
        if (e && e->ready) {
                *ret = &e->peer;
                return 1;
        }
        if (!e) {
                r = entry_new(p, sender, &e);
                if (r < 0)
                        return sd_bus_error_set_errnof(error, r, "Cannot identify the caller: %s", strerror(-r));
        }
        r = entry_wait(e, m);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot identify the caller: %s", strerror(-r));
        return 0;
}

int bus_peers_add_gone_hook(bus_peers *p, bus_peer_gone_fn fn, void *userdata) {
        gone_hook *h = reallocarray(p->hooks, p->n_hooks + 1, sizeof *h);

        if (!h)
                return -ENOMEM;
        p->hooks = h;
        p->hooks[p->n_hooks++] = (gone_hook) { fn, userdata };
        return 0;
}

void bus_peers_remove_gone_hook(bus_peers *p, bus_peer_gone_fn fn, void *userdata) {
        for (size_t i = 0; i < p->n_hooks; i++)
                if (p->hooks[i].fn == fn && p->hooks[i].userdata == userdata) {
                        memmove(p->hooks + i, p->hooks + i + 1, (p->n_hooks - i - 1) * sizeof *p->hooks);
                        p->n_hooks--;
                        return;
                }
}

const char *bus_peer_command(pid_t pid, char buf[static VMSIG_COMMAND_MAX]) {
        char path[64];
        FILE *f;
        bool ok;

        if (pid <= 0)
                return NULL;
        /* Racy by nature, as ps is: the pid is the bus's word for the
         * sender at the time of the call, and only shown to humans. */
        snprintf(path, sizeof path, "/proc/%d/comm", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return NULL;
        ok = fgets(buf, VMSIG_COMMAND_MAX, f) != NULL;
        fclose(f);
        if (!ok)
                return NULL;
        buf[strcspn(buf, "\n")] = '\0';
        return buf;
}
