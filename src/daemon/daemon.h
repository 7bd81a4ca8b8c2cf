/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

typedef struct vmsig_daemon vmsig_daemon;

typedef struct vmsig_daemon_options {
        const char *config_path;
        bool config_explicit; /* named on the command line: must exist */
        int log_level;        /* < 0: take it from the config */
        const char *private_socket; /* overrides the config; "" disables */
} vmsig_daemon_options;

int vmsig_daemon_new(const vmsig_daemon_options *opts, vmsig_daemon **ret);
/* Runs until SIGTERM/SIGINT (returns 0) or until the bus goes away
 * (returns < 0, so that systemd restarts us). */
int vmsig_daemon_run(vmsig_daemon *d);
vmsig_daemon *vmsig_daemon_free(vmsig_daemon *d);
