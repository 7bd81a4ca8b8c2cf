/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "bus-client.h"
#include "vmsig-endpoint.h"

typedef struct vmsig_bus_front vmsig_bus_front;
typedef struct bus_lease bus_lease;

extern const sd_bus_vtable bus_lease_vtable[];

int bus_lease_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                   sd_bus_error *error);
int bus_lease_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error);

/* Publishes the object of a lease the endpoint just granted to *holder on
 * its front, which takes *holder over (also when it fails); *ret_fd is the
 * holder's end of the hang-up pipe, its read end, which carries nothing
 * either way (the caller sends and closes it). */
int bus_lease_create(bus_client **holder, vmsig_lease_class c, const vmsig_lease_info *info, const char **ret_path,
                     int *ret_fd);
/* A LEASE event: removes this front's object of a lease that ended. */
void bus_lease_on_event(vmsig_bus_front *f, const vmsig_lease_payload *p);
/* name left the bus: the leases it held through this front end. */
void bus_lease_holder_gone(vmsig_bus_front *f, const char *name);
/* The front goes away: every lease held through it ends. */
void bus_lease_free_all(vmsig_bus_front *f);
