/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#include "vmsig-endpoint.h"

/* Translates neutral input events into the arguments of one
 * input-send-event command. -EINVAL (nothing built) if any event is not
 * representable; *ret is NULL when the events translate to nothing (a
 * wheel delta of 0, say). */
int qmp_input_build(const vmsig_input_event *events, size_t n, json_object **ret);
