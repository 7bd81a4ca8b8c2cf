/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A one-shot GDBus caller for tests that need another identity (run it
 * under setpriv) or the private socket, which busctl and gdbus cannot
 * reach because they always send Hello.
 *
 *   vmsig-test-client [--p2p=SOCKET] [--interactive] [--repeat=N] [--lease=CLASS]
 *                     PATH INTERFACE METHOD [GVARIANT-TUPLE]
 *
 * With --hold, it then prints "holding" and waits until killed, keeping
 * the connection and the lease.
 * With --lease, first takes the CLASS lease of the endpoint at PATH on the
 * same connection and prints "lease ok" or "lease-error NAME MESSAGE".
 * Prints "ok REPLY" or "error NAME MESSAGE" per call and exits 0 when every
 * call succeeded, 1 when one failed, 2 on a usage or connection problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <gio/gio.h>
#include <gio/gunixfdlist.h>

static GDBusConnection *connect_to(const char *p2p, GError **error) {
        g_autofree char *address = NULL;

        if (!p2p)
                return g_bus_get_sync(G_BUS_TYPE_SYSTEM, NULL, error);
        address = g_strdup_printf("unix:path=%s", p2p);
        return g_dbus_connection_new_for_address_sync(address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT, NULL,
                                                      NULL, error);
}

static int call_once(GDBusConnection *c, gboolean p2p, const char *const *what, GVariant *args, gboolean interactive) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = NULL;

        reply = g_dbus_connection_call_sync(c, p2p ? NULL : "org.vmsig", what[0], what[1], what[2],
                                            args ? g_variant_ref(args) : NULL, NULL,
                                            interactive ? G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION
                                                        : G_DBUS_CALL_FLAGS_NONE,
                                            10000, NULL, &error);
        if (!reply) {
                g_autofree char *name = g_dbus_error_get_remote_error(error);
                g_dbus_error_strip_remote_error(error);
                printf("error %s %s\n", name ? name : "(local)", error->message);
                return 1;
        }
        g_autofree char *text = g_variant_print(reply, TRUE);
        printf("ok %s\n", text);
        return 0;
}

/* The lease stays ours while fds (our copy of the lease fd) lives. */
static int take_lease(GDBusConnection *c, gboolean p2p, const char *path, const char *class, gboolean interactive,
                      GUnixFDList **fds) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = g_dbus_connection_call_with_unix_fd_list_sync(
                c, p2p ? NULL : "org.vmsig", path, "org.vmsig.Endpoint", "AcquireLease",
                g_variant_new("(sa{sv})", class, NULL), NULL,
                interactive ? G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION : G_DBUS_CALL_FLAGS_NONE, 10000,
                NULL, fds, NULL, &error);

        if (!reply) {
                g_autofree char *name = g_dbus_error_get_remote_error(error);
                g_dbus_error_strip_remote_error(error);
                printf("lease-error %s %s\n", name ? name : "(local)", error->message);
                return 1;
        }
        printf("lease ok\n");
        return 0;
}

int main(int argc, char *argv[]) {
        g_autofree char *p2p = NULL, *lease = NULL;
        g_autoptr(GUnixFDList) lease_fds = NULL;
        gboolean interactive = FALSE, hold = FALSE;
        int repeat = 1;
        GOptionEntry entries[] = {
                { "p2p", 0, 0, G_OPTION_ARG_FILENAME, &p2p, "Use the private socket", "SOCKET" },
                { "interactive", 0, 0, G_OPTION_ARG_NONE, &interactive, "Allow interactive authorization", NULL },
                { "repeat", 0, 0, G_OPTION_ARG_INT, &repeat, "Call N times on one connection", "N" },
                { "lease", 0, 0, G_OPTION_ARG_STRING, &lease, "Take this lease of PATH first", "CLASS" },
                { "hold", 0, 0, G_OPTION_ARG_NONE, &hold, "Stay connected until killed", NULL },
                {},
        };
        g_autoptr(GOptionContext) ctx = g_option_context_new("PATH INTERFACE METHOD [ARGS]");
        g_autoptr(GError) error = NULL;
        g_autoptr(GDBusConnection) c = NULL;
        g_autoptr(GVariant) args = NULL;
        int failed = 0;

        g_option_context_add_main_entries(ctx, entries, NULL);
        if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc < 4 || argc > 5 || repeat < 1) {
                fprintf(stderr, "usage: %s\n", error ? error->message : "PATH INTERFACE METHOD [ARGS]");
                return 2;
        }
        if (argc == 5) {
                args = g_variant_parse(NULL, argv[4], NULL, NULL, &error);
                if (!args || !g_variant_is_of_type(args, G_VARIANT_TYPE_TUPLE)) {
                        fprintf(stderr, "bad arguments '%s': not a tuple\n", argv[4]);
                        return 2;
                }
                g_variant_ref_sink(args);
        }
        c = connect_to(p2p, &error);
        if (!c) {
                printf("error (connect) %s\n", error->message);
                return 2;
        }
        if (lease)
                failed |= take_lease(c, p2p != NULL, argv[1], lease, interactive, &lease_fds);
        for (int i = 0; i < repeat; i++)
                failed |= call_once(c, p2p != NULL, (const char *const *) argv + 1, args, interactive);
        if (hold) {
                printf("holding\n");
                fflush(stdout);
                for (;;)
                        pause();
        }
        return failed ? 1 : 0;
}
