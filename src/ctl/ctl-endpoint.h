/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The properties of an org.vmsig.Endpoint object, as GetAll,
 * GetManagedObjects and InterfacesAdded deliver them. */

#include <stdint.h>
#include <systemd/sd-bus.h>

#include "ctl-json.h"

typedef enum ctl_lease_class {
        CTL_LEASE_INPUT,
        CTL_LEASE_POWER,
        CTL_LEASE_MEMWRITE,
        _CTL_LEASE_CLASS_MAX,
} ctl_lease_class;

/* "input", "power", "memory-write". */
const char *ctl_lease_class_to_string(ctl_lease_class c);

typedef struct ctl_endpoint_info {
        char *path;
        char *name;
        char *uuid;
        char *backend;
        char *state;
        char *bootstrap_state;
        char *bootstrap_method; /* the witnesses, "" unless ready */
        char *guest_os;
        char *guest_os_release;
        char **capabilities;
        char *holders[_CTL_LEASE_CLASS_MAX]; /* "" while free */
        /* Who the holder is, as loginctl shows a leader: "uid 0 (root), pid
         * 4711, vmsigctl"; NULL unless ctl_endpoint_info_get_holders() found
         * it. */
        char *holder_details[_CTL_LEASE_CLASS_MAX];
        uint32_t vmid;
        uint32_t generation;
        uint32_t bootstrap_attempts;
        uint64_t memctx_epoch;
        uint64_t ram_size;
} ctl_endpoint_info;

/* Reads an a{sv} of endpoint properties into info; unknown properties are
 * skipped, so a newer vmsigd works with an older vmsigctl. */
int ctl_endpoint_info_read(sd_bus_message *m, ctl_endpoint_info *info);
void ctl_endpoint_info_done(ctl_endpoint_info *info);
/* Fills holder_details of infos from the lease objects (one
 * GetManagedObjects call). */
int ctl_endpoint_info_get_holders(sd_bus *bus, ctl_endpoint_info *infos, size_t n);
/* GetAll on the endpoint object at path. */
int ctl_endpoint_info_get(sd_bus *bus, const char *path, ctl_endpoint_info *info);
/* Every endpoint, in vmid order, with one GetManagedObjects call. */
int ctl_endpoint_info_get_all(sd_bus *bus, ctl_endpoint_info **ret, size_t *ret_n);
void ctl_endpoint_info_free_array(ctl_endpoint_info *infos, size_t n);

void ctl_endpoint_info_json(json_writer *w, const ctl_endpoint_info *info);
