/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Per-uid admission: an optional allow-list consulted before polkit, and
 * quotas on what one uid may hold at a time, so that one client cannot
 * exhaust the daemon for everyone else. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "macro.h"

typedef enum bus_quota_kind {
        BUS_QUOTA_PENDING_CALLS, /* calls waiting for polkit or the host */
        BUS_QUOTA_SUBSCRIPTIONS,
        BUS_QUOTA_LEASES,
        _BUS_QUOTA_MAX,
} bus_quota_kind;

typedef struct bus_admission_config {
        unsigned limits[_BUS_QUOTA_MAX]; /* per uid; 0 means unlimited */
        const uid_t *allow_uids;
        size_t n_allow_uids;
        const gid_t *allow_gids;
        size_t n_allow_gids;
} bus_admission_config;

typedef struct bus_admission bus_admission;

int bus_admission_new(bus_admission **ret);
bus_admission *bus_admission_free(bus_admission *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(bus_admission *, bus_admission_free);
/* Replaces limits and allow-list; what is already held stays held. */
int bus_admission_configure(bus_admission *a, const bus_admission_config *c);

const char *bus_quota_kind_to_string(bus_quota_kind k);

/* True when no allow-list is set, for root, or when uid or one of the
 * groups is on it. */
bool bus_admission_allowed(const bus_admission *a, uid_t uid, const gid_t *gids, size_t n_gids);
bool bus_admission_has_allow_list(const bus_admission *a);

/* -EDQUOT when uid already holds its limit of k. */
int bus_admission_take(bus_admission *a, uid_t uid, bus_quota_kind k);
void bus_admission_release(bus_admission *a, uid_t uid, bus_quota_kind k);
unsigned bus_admission_held(const bus_admission *a, uid_t uid, bus_quota_kind k);
unsigned bus_admission_limit(const bus_admission *a, bus_quota_kind k);
