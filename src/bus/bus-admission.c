/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus-admission.h"
#include "hashmap.h"
#include "macro.h"
#include "string-table.h"

/* What one uid holds. Entries go away when everything is released, so the
 * table only grows with concurrently active uids. */
typedef struct uid_usage {
        uid_t uid;
        unsigned held[_BUS_QUOTA_MAX];
} uid_usage;

struct bus_admission {
        unsigned limits[_BUS_QUOTA_MAX];
        uid_t *allow_uids;
        size_t n_allow_uids;
        gid_t *allow_gids;
        size_t n_allow_gids;
        Hashmap *usage; /* uid -> uid_usage */
};

static const char *const bus_quota_kind_table[_BUS_QUOTA_MAX] = {
        [BUS_QUOTA_PENDING_CALLS] = "pending-calls",
        [BUS_QUOTA_SUBSCRIPTIONS] = "subscriptions",
        [BUS_QUOTA_LEASES] = "leases",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(bus_quota_kind, bus_quota_kind);

int bus_admission_new(bus_admission **ret) {
        _cleanup_(bus_admission_freep) bus_admission *a = calloc(1, sizeof *a);

        assert(ret);

        if (!a)
                return -ENOMEM;
        a->usage = hashmap_new_uint64();
        if (!a->usage)
                return -ENOMEM;
        *ret = TAKE_PTR(a);
        return 0;
}

bus_admission *bus_admission_free(bus_admission *a) {
        if (!a)
                return NULL;
        hashmap_free_with_destructor(a->usage, free);
        free(a->allow_uids);
        free(a->allow_gids);
        return mfree(a);
}

int bus_admission_configure(bus_admission *a, const bus_admission_config *c) {
        uid_t *uids = memdup_array(c->allow_uids, c->n_allow_uids, sizeof(uid_t));
        gid_t *gids = memdup_array(c->allow_gids, c->n_allow_gids, sizeof(gid_t));

        if ((c->n_allow_uids > 0 && !uids) || (c->n_allow_gids > 0 && !gids)) {
                free(uids);
                free(gids);
                return -ENOMEM;
        }
        free(a->allow_uids);
        free(a->allow_gids);
        a->allow_uids = uids;
        a->n_allow_uids = c->n_allow_uids;
        a->allow_gids = gids;
        a->n_allow_gids = c->n_allow_gids;
        memcpy(a->limits, c->limits, sizeof a->limits);
        return 0;
}

bool bus_admission_has_allow_list(const bus_admission *a) {
        return a->n_allow_uids > 0 || a->n_allow_gids > 0;
}

static bool gid_listed(const bus_admission *a, gid_t gid) {
        for (size_t i = 0; i < a->n_allow_gids; i++)
                if (a->allow_gids[i] == gid)
                        return true;
        return false;
}

bool bus_admission_allowed(const bus_admission *a, uid_t uid, const gid_t *gids, size_t n_gids) {
        if (uid == 0 || !bus_admission_has_allow_list(a))
                return true;
        for (size_t i = 0; i < a->n_allow_uids; i++)
                if (a->allow_uids[i] == uid)
                        return true;
        for (size_t i = 0; i < n_gids; i++)
                if (gid_listed(a, gids[i]))
                        return true;
        return false;
}

static uid_usage *usage_get(const bus_admission *a, uid_t uid) {
        return hashmap_get_uint64(a->usage, uid);
}

static bool usage_is_empty(const uid_usage *u) {
        for (int k = 0; k < _BUS_QUOTA_MAX; k++)
                if (u->held[k] > 0)
                        return false;
        return true;
}

int bus_admission_take(bus_admission *a, uid_t uid, bus_quota_kind k) {
        uid_usage *u = usage_get(a, uid);
        int r;

        if (u && a->limits[k] > 0 && u->held[k] >= a->limits[k])
                return -EDQUOT;
        if (!u) {
                u = calloc(1, sizeof *u);
                if (!u)
                        return -ENOMEM;
                u->uid = uid;
                r = hashmap_put_uint64(a->usage, uid, u);
                if (r < 0) {
                        free(u);
                        return r;
                }
        }
        u->held[k]++;
        return 0;
}

void bus_admission_release(bus_admission *a, uid_t uid, bus_quota_kind k) {
        uid_usage *u = usage_get(a, uid);

        if (!u || u->held[k] == 0)
                return;
        u->held[k]--;
        if (usage_is_empty(u)) {
                hashmap_remove_uint64(a->usage, u->uid);
                free(u);
        }
}

unsigned bus_admission_held(const bus_admission *a, uid_t uid, bus_quota_kind k) {
        const uid_usage *u = usage_get(a, uid);
        return u ? u->held[k] : 0;
}

unsigned bus_admission_limit(const bus_admission *a, bus_quota_kind k) {
        return a->limits[k];
}
