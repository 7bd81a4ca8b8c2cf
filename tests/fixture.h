/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The fixture of the tests that run vmsigd on a private bus: the bus,
 * polkitd if asked for, vmsigd with the test's configuration, root's
 * connection and, if asked for, a log of vmsigd's signals. */

#include "client.h"
#include "harness.h"
#include "polkit-harness.h"

typedef enum VtFixtureFlags {
        /* A real polkitd; without one (not installed) the test is marked
         * skipped and goes on with f->polkit NULL. */
        VT_FIXTURE_POLKIT = 1 << 0,
        /* The same, but without polkitd vmsigd is not started either. */
        VT_FIXTURE_POLKIT_REQUIRED = 1 << 1,
        /* f->log records the signals root's connection receives. */
        VT_FIXTURE_SIGNAL_LOG = 1 << 2,
} VtFixtureFlags;

#define VT_FIXTURE_MEMBERS                                                                   \
        VtBus *bus;                                                                          \
        VtPolkit *polkit; /* NULL unless asked for */                                        \
        VtDaemon *daemon; /* NULL if polkitd was required and is missing */                 \
        GDBusConnection *conn; /* root */                                                    \
        VtSignalLog *log; /* NULL unless asked for */                                     \
        char *trigger_dir /* where vmsigd finds VMs, if it looks for them */

typedef struct VtFixture {
        VT_FIXTURE_MEMBERS;
} VtFixture;

/* For a test's own fixture with more members: its first member, which
 * names the shared ones directly (f->bus) and as one (&f->vt). */
#define VT_FIXTURE                                                                           \
        union {                                                                              \
                VtFixture vt;                                                                \
                struct {                                                                     \
                        VT_FIXTURE_MEMBERS;                                                  \
                };                                                                           \
        }

void vt_fixture_setup(VtFixture *f, const char *config, VtFixtureFlags flags);
/* For a program whose tests all run on a plain VtFixture: its Fixture, and
 * the fixture_setup() and fixture_teardown() g_test_add() takes; config
 * and flags may depend on the test's data. */
#define VT_FIXTURE_DEFINE(config, flags)                                                     \
        typedef VtFixture Fixture;                                                           \
        static void fixture_setup(Fixture *f, gconstpointer data) {                          \
                vt_fixture_setup(f, (config), (flags));                                      \
        }                                                                                    \
        static void fixture_teardown(Fixture *f, gconstpointer data) {                       \
                vt_fixture_teardown(f);                                                      \
        }
/* The same with vmsigd finding VMs through trigger files in
 * f->trigger_dir (see vt_daemon_start_discovering()). */
void vt_fixture_setup_discovering(VtFixture *f, const char *head, VtFixtureFlags flags);
/* Writes a trigger file for a QEMU VM and waits until its endpoint was
 * announced; needs VT_FIXTURE_SIGNAL_LOG. */
void vt_fixture_attach(VtFixture *f, const char *name, const char *ram_path, const char *qmp_path);
/* Stops all that vt_fixture_setup() started (nothing, on a fixture of
 * zeros); vmsigd must exit with 0. */
void vt_fixture_teardown(VtFixture *f);
