/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

typedef struct memory_trim memory_trim;

/* Gives memory back to the kernel once the loop has been quiet for a while
 * after a burst of work. */
int memory_trim_new(sd_event *event, memory_trim **ret);
memory_trim *memory_trim_free(memory_trim *t);
