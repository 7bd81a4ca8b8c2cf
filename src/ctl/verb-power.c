/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pause, resume, reset, poweroff, kill (each inside the power lease) and lease. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl-endpoint.h"
#include "ctl-lease.h"
#include "ctl-util.h"

static const struct {
        const char *verb;
        const char *method;
        const char *action; /* for "Failed to ACTION 'NAME'" */
} lifecycle_ops[] = {
        { "pause", "Pause", "pause" },
        { "resume", "Resume", "resume" },
        { "reset", "Reset", "reset" },
        { "poweroff", "PowerOff", "power off" },
        { "kill", "Kill", "kill" },
};

static int call_lifecycle(sd_bus *bus, const char *path, const char *name, size_t op) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, lifecycle_ops[op].method, &error,
                               NULL, NULL);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to %s '%s'", lifecycle_ops[op].action, name);
        return 0;
}

int verb_lifecycle(int argc, char **argv) {
        _cleanup_(ctl_lease_releasep) ctl_lease *lease = NULL;
        _cleanup_free_ char *path = NULL;
        const char *name = argv[1];
        sd_bus *bus;
        size_t op;
        int r;

        for (op = 0; op < ELEMENTSOF(lifecycle_ops); op++)
                if (strcmp(lifecycle_ops[op].verb, argv[0]) == 0)
                        break;
        if (op == ELEMENTSOF(lifecycle_ops))
                return ctl_usage_error("Unknown command '%s'.", argv[0]);

        r = ctl_open_endpoint(name, false, &bus, &path);
        if (r < 0)
                return r;
        r = ctl_lease_acquire(bus, name, path, "power", &lease);
        if (r < 0)
                return r;
        r = call_lifecycle(bus, path, name, op);
        if (r < 0 || !arg.keep_lease)
                return r;
        if (strcmp(argv[0], "reset") == 0) {
                ctl_info("A reset revokes every lease of '%s', the power lease too: there is none to keep.", name);
                return 0;
        }
        return ctl_lease_hold(lease, false);
}

int verb_lease(int argc, char **argv) {
        _cleanup_(ctl_lease_releasep) ctl_lease *lease = NULL;
        _cleanup_free_ char *path = NULL;
        const char *name = argv[1], *class = argv[2];
        bool known = false;
        sd_bus *bus;
        int r;

        for (size_t c = 0; c < _CTL_LEASE_CLASS_MAX; c++)
                known = known || strcmp(class, ctl_lease_class_to_string(c)) == 0;
        if (!known)
                return ctl_usage_error("Unknown lease class '%s': input, power or memory-write.", class);

        r = ctl_open_endpoint(name, false, &bus, &path);
        if (r < 0)
                return r;
        r = ctl_lease_acquire(bus, name, path, class, &lease);
        if (r < 0)
                return r;
        return ctl_lease_hold(lease, true);
}
