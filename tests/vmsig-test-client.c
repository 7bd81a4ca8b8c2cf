/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A one-shot GDBus caller for tests that need another identity (run it
 * under setpriv) or the private socket, which busctl and gdbus cannot
 * reach because they always send Hello.
 *
 *   vmsig-test-client [--p2p=SOCKET] [--interactive] [--repeat=N] [--lease=CLASS]
 *                     PATH INTERFACE METHOD [GVARIANT-TUPLE]
 *
 * With --probe-memctx it subscribes to the memory context of PATH and tries
 * to write through the fd it got, every way it can, printing one line per
 * attempt ("reopen-rw EACCES", "mmap-write EPERM", "write EBADF", ...) and
 * "read OK <first 8 bytes hex>".
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
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <gio/gio.h>
#include <gio/gunixfdlist.h>

#include "bus-names.h"

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

        reply = g_dbus_connection_call_sync(c, p2p ? NULL : VMSIG_BUS_NAME, what[0], what[1], what[2],
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

static const char *outcome(int r) {
        return r >= 0 ? "OK" : strerrorname_np(errno);
}

static void probe_fd(int fd, guint64 size) {
        char path[64], buf[8] = {};
        void *p;
        int rw;

        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        rw = open(path, O_RDWR | O_CLOEXEC);
        printf("reopen-rw %s\n", outcome(rw));
        if (rw >= 0) {
                /* Reopened (root may): writing through it must still fail. */
                printf("reopen-write %s\n", outcome((int) pwrite(rw, "x", 1, 0)));
                p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
                printf("reopen-mmap-write %s\n", outcome(p == MAP_FAILED ? -1 : 0));
                close(rw);
        }
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        printf("mmap-write %s\n", outcome(p == MAP_FAILED ? -1 : 0));
        printf("write %s\n", outcome((int) pwrite(fd, "x", 1, 0)));
        p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
                printf("read %s\n", strerrorname_np(errno));
                return;
        }
        memcpy(buf, p, sizeof buf);
        printf("read OK");
        for (size_t i = 0; i < sizeof buf; i++)
                printf(" %02x", (unsigned char) buf[i]);
        printf("\n");
        munmap(p, size);
}

static int probe_memctx(GDBusConnection *c, gboolean p2p, const char *path) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) reply = g_dbus_connection_call_with_unix_fd_list_sync(
                c, p2p ? NULL : VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, "SubscribeMemctx", NULL, NULL,
                G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &fds, NULL, &error);
        guint64 dtb, epoch, size;
        gint32 index;
        int fd;

        if (!reply) {
                g_autofree char *name = g_dbus_error_get_remote_error(error);
                printf("subscribe-error %s\n", name ? name : "(local)");
                return 1;
        }
        g_variant_get(reply, "(httta(ttt))", &index, &dtb, &epoch, &size, NULL);
        fd = g_unix_fd_list_get(fds, index, &error);
        if (fd < 0)
                return 1;
        printf("subscribed epoch %" G_GUINT64_FORMAT " size %" G_GUINT64_FORMAT "\n", epoch, size);
        probe_fd(fd, size);
        close(fd);
        return 0;
}

/* The lease stays ours while fds (our copy of the lease fd) lives. */
static int take_lease(GDBusConnection *c, gboolean p2p, const char *path, const char *class, gboolean interactive,
                      GUnixFDList **fds) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) reply = g_dbus_connection_call_with_unix_fd_list_sync(
                c, p2p ? NULL : VMSIG_BUS_NAME, path, VMSIG_BUS_ENDPOINT_INTERFACE, "AcquireLease",
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
        gboolean interactive = FALSE, hold = FALSE, probe = FALSE;
        int repeat = 1;
        GOptionEntry entries[] = {
                { "p2p", 0, 0, G_OPTION_ARG_FILENAME, &p2p, "Use the private socket", "SOCKET" },
                { "interactive", 0, 0, G_OPTION_ARG_NONE, &interactive, "Allow interactive authorization", NULL },
                { "repeat", 0, 0, G_OPTION_ARG_INT, &repeat, "Call N times on one connection", "N" },
                { "lease", 0, 0, G_OPTION_ARG_STRING, &lease, "Take this lease of PATH first", "CLASS" },
                { "hold", 0, 0, G_OPTION_ARG_NONE, &hold, "Stay connected until killed", NULL },
                { "probe-memctx", 0, 0, G_OPTION_ARG_NONE, &probe, "Subscribe to PATH's memctx and probe the fd",
                  NULL },
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
        if (probe)
                failed |= probe_memctx(c, p2p != NULL, argv[1]);
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
