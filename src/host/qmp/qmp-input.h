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

/* A backend's way to QEMU for an input-send-event: sends (or queues) the
 * command with arguments (taken, whatever the outcome) behind everything
 * sent before it; 0, or -errno and why in msg. */
typedef int (*qmp_input_send_fn)(json_object *arguments, void *userdata, char *msg, size_t size);

/* The input lease ended: the one rule of every backend that sends
 * input-send-event (the QMP backend over its socket, the libvirt backend
 * through the monitor passthrough). What h holds is released through
 * send, behind everything sent before, so that no press outlives the
 * lease it was made under (the next holder would find a key or a button
 * stuck); h is empty then. Called where everything sent before is ahead:
 * the QMP backend's loop, whose queue sends one at a time; the libvirt
 * backend's worker, behind the calls before. Nobody waits for the
 * release: a failure to hand it to send is logged, for whose (a VM's
 * name). */
void qmp_input_lease_end(qmp_input_held *h, const char *whose, qmp_input_send_fn send, void *userdata);
