/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"

#include "vmsig-endpoint.h"

/* Translates neutral input events into the arguments of one
 * input-send-event command. -EINVAL (nothing built) if any event is not
 * representable; *ret is NULL when the events translate to nothing (a
 * wheel delta of 0, say). */
int qmp_input_build(const vmsig_input_event *events, size_t n, json_object **ret);

/* What input-send-event left held down in the guest: the keys and buttons
 * that events which reached QEMU pressed and did not release (QEMU's input
 * layer keeps no such state; the guest's devices do, and a key or button
 * down stays down until an event says otherwise). A backend that tracks
 * it can give the guest a clean state when the input lease ends, so that
 * no press outlives the lease it was made under. */
typedef struct qmp_input_held {
        uint64_t keys[KEY_CODE_LIMIT / 64];
        uint32_t buttons;
} qmp_input_held;

/* After events (valid for qmp_input_build()) reached QEMU. */
void qmp_input_held_update(qmp_input_held *h, const vmsig_input_event *events, size_t n);
/* The arguments of the input-send-event that releases everything h holds
 * (*ret NULL when nothing is held), and h empty. */
int qmp_input_release_held(qmp_input_held *h, json_object **ret);
