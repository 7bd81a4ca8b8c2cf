/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Integration test harness: every test gets its own dbus-daemon of the
 * system type (with the distribution's default-deny policy and our policy
 * file), and vmsigd is started on it as a real process.
 *
 * Environment (set by Makefile.am for `make check`):
 *   VMSIG_SRCDIR          absolute source directory (for data/org.vmsig.conf)
 *   VMSIG_BUILDDIR        absolute build directory (for vmsigd)
 *   DBUS_DAEMON           the dbus-daemon to run ("dbus-daemon" from PATH if unset)
 *   VMSIG_DAEMON_WRAPPER  optional command prefixed to vmsigd, e.g. valgrind
 *
 * Every function asserts on failure with a message saying what went wrong;
 * a failing vmsigd or dbus-daemon has its log printed. */

#include <gio/gio.h>

typedef struct VtBus VtBus;
typedef struct VtDaemon VtDaemon;

/* Starts a private system-type bus in a fresh temporary directory and points
 * DBUS_SYSTEM_BUS_ADDRESS of this process (and so of G_BUS_TYPE_SYSTEM and
 * every child) at it. */
VtBus *vt_bus_start(void);
const char *vt_bus_address(VtBus *bus);
/* The bus's temporary directory, removed by vt_bus_stop(). */
const char *vt_bus_dir(VtBus *bus);
/* A GSpawnChildSetupFunc (data: GINT_TO_POINTER(getpid())) that makes the
 * child die with the test. */
void vt_child_setup(gpointer parent_pid);
/* A new private connection to the bus, as root (the test user); unref it. */
GDBusConnection *vt_bus_connect(VtBus *bus);
/* Runs a command (searched in PATH, argument list ending with NULL) with
 * DBUS_SYSTEM_BUS_ADDRESS pointing at the bus, waits for it and returns its
 * exit status (128 + signal number if killed). Its standard output is
 * returned in *out if out is non-NULL; its standard error goes to the test
 * log. */
int vt_bus_run(VtBus *bus, char **out, const char *program, ...) G_GNUC_NULL_TERMINATED;
int vt_bus_runv(VtBus *bus, char **out, const char *const *argv);
/* The same, with its standard error also returned in *err if err is
 * non-NULL (it goes to the test log as well). */
int vt_bus_run_err(VtBus *bus, char **out, char **err, const char *const *argv);
/* A copy of a program of the build (a path relative to $VMSIG_BUILDDIR),
 * where the tests' other users can run it: the bus's directory. The build
 * tree may be in a directory only root can enter (a mktemp -d clone).
 * Free it; the copy goes with the bus. */
char *vt_bus_reachable(VtBus *bus, const char *program);
/* Runs a program of the build (copied with vt_bus_reachable()) with args
 * (NULL-terminated, or NULL) as nobody, through setpriv, as
 * vt_bus_run_err() does. */
int vt_bus_run_as_nobody(VtBus *bus, char **out, char **err, const char *program, const char *const *args);
/* Iterates the default main context for ms milliseconds. */
void vt_bus_iterate(VtBus *bus, guint ms);
/* Terminates the bus and removes its directory. Daemons started on it may
 * still be running; they are expected to exit on their own (see
 * vt_daemon_stop). */
void vt_bus_stop(VtBus *bus);

/* Writes config_xml into the bus directory, starts vmsigd on it (with
 * --log-level=debug, output captured to a log) and waits until it owns
 * org.vmsig. */
VtDaemon *vt_daemon_start(VtBus *bus, const char *config_xml);
/* vmsigd finding VMs through trigger files: a directory for them in the
 * bus's (its path in *ret_trigger_dir, g_free() it), and a configuration of
 * head (more elements, may be "") and that <discovery>. */
VtDaemon *vt_daemon_start_discovering(VtBus *bus, const char *head, char **ret_trigger_dir);
/* A trigger file for a QEMU VM in dir, written aside and renamed in as a VM
 * manager would; uuid may be NULL. */
void vt_write_trigger(const char *dir, const char *name, const char *uuid, const char *ram_path,
                      const char *qmp_socket);
VtDaemon *vt_daemon_start_full(VtBus *bus, const char *config_xml, const char *const *extra_args);
GPid vt_daemon_pid(VtDaemon *d);
const char *vt_daemon_config_path(VtDaemon *d);
/* The private (peer-to-peer) socket the harness gave this daemon. */
const char *vt_daemon_private_socket(VtDaemon *d);
/* Replaces the configuration file atomically (the daemon never sees a
 * partial file); send SIGHUP to have it read. */
void vt_daemon_rewrite_config(VtDaemon *d, const char *config_xml);
void vt_daemon_signal(VtDaemon *d, int sig);
/* Everything the daemon wrote to stdout and stderr so far; free it. Works
 * after vt_bus_stop too. */
char *vt_daemon_log(VtDaemon *d);
/* Waits for the daemon to exit by itself (sends nothing) and returns its exit
 * status (128 + signal number if killed). Asserts if it did not exit within
 * timeout_ms. d stays valid; call vt_daemon_stop to free it. */
int vt_daemon_wait(VtDaemon *d, guint timeout_ms);
/* How often needle occurs in the daemon's log so far. */
guint vt_daemon_log_count(VtDaemon *d, const char *needle);
/* For vt_wait_for(): whether the log of args[0], a VtDaemon, holds the
 * string args[1] (args: a void *[2]). */
gboolean vt_daemon_log_has(gpointer args);
/* Ends the daemon and frees d; returns its exit status, printing its log
 * to the test log if that is not 0. A daemon still running gets SIGTERM,
 * unless its bus is already stopped: then it is given time to notice and
 * exit by itself. One that does not exit in time is killed and the test
 * fails. */
int vt_daemon_stop(VtDaemon *d);
/* The pid of the owner of name on c's bus, 0 if it has none. */
guint32 vt_name_owner_pid(GDBusConnection *c, const char *name);

/* Iterates the default main context until cond(data) is true (returns TRUE)
 * or timeout_ms have passed (returns FALSE). */
gboolean vt_wait_for(gboolean (*cond)(gpointer data), gpointer data, guint timeout_ms);
/* The same until get(data) is want, or at least want. */
gboolean vt_wait_for_value(guint64 (*get)(gpointer data), gpointer data, guint64 want, guint timeout_ms);
gboolean vt_wait_for_at_least(guint64 (*get)(gpointer data), gpointer data, guint64 want, guint timeout_ms);
