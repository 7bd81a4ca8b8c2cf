/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core-internal.h"

/* Free slots are reused first-in first-out, so a vmid goes back into use as
 * late as possible, and every reuse carries a new generation: an id held by
 * a client from before the reuse never matches the new occupant. */

static int grow(vmsig_core *c) {
        size_t n = c->n_slots * 2;
        if (n > c->max_endpoints + 1)
                n = c->max_endpoints + 1;
        if (n <= c->n_slots)
                return -ENOSPC;

        slot *s = realloc(c->slots, n * sizeof(slot));
        if (!s)
                return -ENOMEM;
        memset(s + c->n_slots, 0, (n - c->n_slots) * sizeof(slot));
        c->slots = s;
        for (size_t i = c->n_slots; i < n; i++) {
                uint32_t idx = (uint32_t) i;
                if (c->free_tail)
                        c->slots[c->free_tail].free_next = idx;
                else
                        c->free_head = idx;
                c->free_tail = idx;
        }
        c->n_slots = n;
        return 0;
}

int vmsig_core_acquire_id(vmsig_core *c, void *data, vmsig_id *ret) {
        assert(c);
        assert(ret);
        if (!c->free_head) {
                int r = grow(c);
                if (r < 0)
                        return r;
        }

        uint32_t i = c->free_head;
        slot *s = &c->slots[i];
        c->free_head = s->free_next;
        if (!c->free_head)
                c->free_tail = 0;

        s->free_next = 0;
        s->used = true;
        s->generation++;
        s->last_seq = 0;
        s->data = data;
        *ret = VMSIG_ID_MAKE(i, s->generation);
        return 0;
}

void slots_drop_retained(slot *s) {
        for (size_t i = 0; i < s->n_retained; i++)
                event_unref(s->retained[i]);
        free(s->retained);
        s->retained = NULL;
        s->n_retained = 0;
}

void vmsig_core_release_id(vmsig_core *c, vmsig_id id) {
        slot *s = core_slot_lookup(c, id);
        uint32_t i = VMSIG_ID_SLOT(id);

        if (!s || i == 0)
                return;
        slots_drop_retained(s);
        s->used = false;
        s->data = NULL;
        if (c->free_tail)
                c->slots[c->free_tail].free_next = i;
        else
                c->free_head = i;
        c->free_tail = i;
}

void *vmsig_core_get_id_data(vmsig_core *c, vmsig_id id) {
        slot *s = core_slot_lookup(c, id);

        return s ? s->data : NULL;
}

vmsig_id vmsig_core_slot_id(vmsig_core *c, uint32_t i) {
        if (i == 0 || i >= c->n_slots || !c->slots[i].used)
                return 0;
        return VMSIG_ID_MAKE(i, c->slots[i].generation);
}

vmsig_id vmsig_core_next_id(vmsig_core *c, uint32_t after) {
        for (size_t i = (size_t) after + 1; i < c->n_slots; i++) {
                vmsig_id id = vmsig_core_slot_id(c, (uint32_t) i);
                if (id != 0)
                        return id;
        }
        return 0;
}

void slots_retain(slot *s, event_impl *e) {
        for (size_t i = 0; i < s->n_retained; i++)
                if (s->retained[i]->pub.kind == e->pub.kind && s->retained[i]->pub.key == e->pub.key) {
                        event_unref(s->retained[i]);
                        s->retained[i] = event_ref(e);
                        return;
                }

        event_impl **n = realloc(s->retained, (s->n_retained + 1) * sizeof(event_impl *));
        if (!n)
                return; /* keep the old retained set; the live event still goes out */
        s->retained = n;
        s->retained[s->n_retained++] = event_ref(e);
}

void slots_free_all(vmsig_core *c) {
        for (size_t i = 0; i < c->n_slots; i++)
                slots_drop_retained(&c->slots[i]);
        free(c->slots);
        c->slots = NULL;
        c->n_slots = 0;
}
