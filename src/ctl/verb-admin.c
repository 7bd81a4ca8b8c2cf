/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* reload and detach: the administrative calls of org.vmsig.Manager. */
#include "ctl-util.h"

/* Manager.METHOD(NAME) (NAME NULL: no argument); *ret_error says why not. */
static int call_manager(const char *method, const char *name, sd_bus_error *ret_error) {
        sd_bus *bus;
        int r;

        r = ctl_acquire_bus(true, &bus);
        if (r < 0)
                return r;
        return sd_bus_call_method(bus, VMSIG_BUS_NAME, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, method, ret_error,
                                  NULL, name ? "s" : NULL, name);
}

/* Reads the configuration again, as SIGHUP does, but of the vmsigd this
 * connection reaches and with an answer: a file that does not load is
 * reported as "FILE:LINE: problem" and changes nothing. */
int verb_reload(int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = call_manager("Reload", NULL, &error);

        /* vmsigd's message says it all: "The configuration was not
         * reloaded: FILE:LINE: problem". */
        if (r < 0 && sd_bus_error_has_name(&error, "org.vmsig.Error.InvalidConfiguration"))
                return ctl_error(r, "%s", error.message);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to reload the configuration of vmsigd");
        return 0;
}

int verb_detach(int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = call_manager("DetachEndpoint", argv[1], &error);

        return r < 0 ? ctl_bus_error(&error, r, "Failed to detach '%s'", argv[1]) : 0;
}
