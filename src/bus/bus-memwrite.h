/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

typedef struct bus_endpoint bus_endpoint;
typedef struct bus_memwrite_request bus_memwrite_request;

int bus_memwrite_method_write(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_memwrite_method_write_virtual(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_memwrite_method_write_batch(sd_bus_message *m, void *userdata, sd_bus_error *error);

/* The endpoint object goes: queued writes fail, one waiting for the host
 * is left to finish on its own (and to resume the guest). */
void bus_memwrite_endpoint_gone(bus_endpoint *be);
