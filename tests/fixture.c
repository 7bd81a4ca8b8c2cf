/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fixture.h"

/* The bus and polkitd; false if polkitd is required and missing. */
static gboolean start_bus(VtFixture *f, VtFixtureFlags flags) {
        f->bus = vt_bus_start();
        if (flags & (VT_FIXTURE_POLKIT | VT_FIXTURE_POLKIT_REQUIRED)) {
                f->polkit = vt_polkit_start(f->bus);
                if (!f->polkit && (flags & VT_FIXTURE_POLKIT_REQUIRED))
                        return FALSE;
        }
        return TRUE;
}

static void connect_root(VtFixture *f, VtFixtureFlags flags) {
        f->conn = vt_bus_connect(f->bus);
        if (flags & VT_FIXTURE_SIGNAL_LOG)
                f->log = vt_signal_log_new(f->conn);
}

void vt_fixture_setup(VtFixture *f, const char *config, VtFixtureFlags flags) {
        g_assert_nonnull(config);

        if (!start_bus(f, flags))
                return;
        f->daemon = vt_daemon_start(f->bus, config);
        connect_root(f, flags);
}

void vt_fixture_setup_discovering(VtFixture *f, const char *head, VtFixtureFlags flags) {
        if (!start_bus(f, flags))
                return;
        f->daemon = vt_daemon_start_discovering(f->bus, head, &f->trigger_dir);
        connect_root(f, flags);
}

void vt_fixture_attach(VtFixture *f, const char *name, const char *ram_path, const char *qmp_path) {
        g_assert_nonnull(f->log);

        vt_write_trigger(f->trigger_dir, name, NULL, ram_path, qmp_path);
        g_assert_true(vt_signal_log_wait(f->log, "EndpointAdded " VMSIG_BUS_PATH " ", 5000));
}

void vt_fixture_teardown(VtFixture *f) {
        g_clear_pointer(&f->log, vt_signal_log_free);
        g_clear_object(&f->conn);
        if (f->daemon)
                g_assert_cmpint(vt_daemon_stop(g_steal_pointer(&f->daemon)), ==, 0);
        g_clear_pointer(&f->polkit, vt_polkit_stop);
        g_clear_pointer(&f->bus, vt_bus_stop);
        g_clear_pointer(&f->trigger_dir, g_free);
}
