/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdlib.h>

#include "core-internal.h"

/* Events are shared by every queue and the retention slot that hold them,
 * so a dispatch to N subscribers costs N pointer copies, not N payloads. */

event_impl *event_ref(event_impl *e) {
        assert(e->n_ref > 0);
        e->n_ref++;
        return e;
}

void event_unref(event_impl *e) {
        if (!e)
                return;
        assert(e->n_ref > 0);
        if (--e->n_ref > 0)
                return;
        if (e->free_fn)
                e->free_fn(e->object);
        free(e);
}
