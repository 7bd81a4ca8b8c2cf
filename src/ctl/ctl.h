/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vmsigctl, the command line client of vmsigd, in the manner of machinectl:
 * what the verbs (verb-*.c) share: the parsed options and their entry
 * points. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "bus-names.h"

/* A guest-physical range, from --range=GPA:SIZE. */
typedef struct ctl_range {
        uint64_t gpa;
        uint64_t size;
} ctl_range;

/* --json=: off, or one line per document, or indented over many. */
typedef enum ctl_json_mode {
        CTL_JSON_OFF,
        CTL_JSON_SHORT,
        CTL_JSON_PRETTY,
} ctl_json_mode;

typedef struct ctl_args {
        const char *host;    /* -H: over ssh */
        const char *address; /* --address: a bus of our choosing */
        bool ask_password;
        ctl_json_mode json;
        bool legend;
        bool pager; /* --no-pager turns it off */
        bool quiet; /* -q: no informational messages, errors still */
        bool keep_lease;
        bool force;
        const char *file;
        bool virtual_address;
        bool pause;
        bool memctx;
        const char *save;
        ctl_range *ranges;
        size_t n_ranges;
} ctl_args;

extern ctl_args arg;

/* The bus connection, made on first use, so that a bad command line is
 * told as such even without a bus. interactive: the verb may need
 * authorization, so a polkit agent is started where one can ask. The
 * connection stays vmsigctl.c's, closed at exit. */
int ctl_acquire_bus(bool interactive, sd_bus **ret);

/* Each verb gets its own arguments, argv[0] being the verb. It returns 0,
 * CTL_USAGE (see ctl-util.h) for a bad command line, or another negative
 * errno once it said what failed. */
typedef int (*ctl_verb_fn)(int argc, char **argv);

int verb_list(int argc, char **argv);
int verb_status(int argc, char **argv);
int verb_lifecycle(int argc, char **argv);
int verb_lease(int argc, char **argv);
int verb_memwrite(int argc, char **argv);
int verb_input(int argc, char **argv);
int verb_monitor(int argc, char **argv);
int verb_dump_memctx(int argc, char **argv);
int verb_reload(int argc, char **argv);
int verb_detach(int argc, char **argv);
/* Built with libpng only (--enable-vgpu). */
int verb_screenshot(int argc, char **argv);
