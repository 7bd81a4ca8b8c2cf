/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "core-internal.h"

/* The rest of the event life cycle is inline in core-internal.h: it runs
 * for every publish and dispatch. */

void event_pool_free(vmsig_core *c) {
        while (c->event_pool) {
                event_impl *e = c->event_pool;
                c->event_pool = e->pending_next;
                free(e);
        }
        c->n_event_pool = 0;
}
