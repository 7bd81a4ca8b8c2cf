/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* GDBus client helpers for the integration tests: vmsigd is always reached
 * through a real dbus-daemon, with GDBus as the independent client. */

#include <gio/gio.h>

#include "bus-names.h"

#define VT_NAME VMSIG_BUS_NAME
#define VT_MANAGER_PATH VMSIG_BUS_PATH
#define VT_MANAGER_IFACE VMSIG_BUS_MANAGER_INTERFACE
#define VT_ENDPOINT_IFACE VMSIG_BUS_ENDPOINT_INTERFACE
#define VT_LEASE_IFACE VMSIG_BUS_LEASE_INTERFACE
/* The object path of the endpoint of the VM called name (a literal). */
#define VT_ENDPOINT(name) VMSIG_BUS_ENDPOINT_PREFIX "/" name

/* Call and return the reply (g_assert on error). */
GVariant *vt_call(GDBusConnection *c, const char *path, const char *iface, const char *method, GVariant *args);
/* Call expecting failure; returns the D-Bus error name (free it) and the
 * message in *message if non-NULL. g_assert if the call succeeded. */
char *vt_call_error(GDBusConnection *c, const char *path, const char *iface, const char *method, GVariant *args,
                    char **message);
GVariant *vt_get_property(GDBusConnection *c, const char *path, const char *iface, const char *prop);
char *vt_get_string(GDBusConnection *c, const char *path, const char *iface, const char *prop);
guint64 vt_get_uint(GDBusConnection *c, const char *path, const char *iface, const char *prop);
/* A string property of org.vmsig.Endpoint, or NULL where it cannot be had
 * (the endpoint is not there yet, or gone): for polling. */
char *vt_endpoint_string_or_null(GDBusConnection *c, const char *path, const char *prop);
/* Whether that property is want now. */
gboolean vt_endpoint_property_is(GDBusConnection *c, const char *path, const char *prop, const char *want);
/* Waits (iterating the main context) until that property is want, or, if
 * not equal, is there and is not want; false on timeout. */
gboolean vt_endpoint_wait_property(GDBusConnection *c, const char *path, const char *prop, const char *want,
                                   gboolean equal, guint timeout_ms);

/* SubscribeMemctx: the datum with its read-only RAM fd (g_assert on
 * error); vt_memctx_clear() closes and frees. */
typedef struct VtMemctx {
        int fd;
        guint64 dtb, epoch, size;
        GVariant *ranges; /* a(ttt) */
} VtMemctx;
VtMemctx vt_subscribe_memctx(GDBusConnection *c, const char *path);
void vt_memctx_clear(VtMemctx *m);
/* The same, but only the RAM fd (close it). */
int vt_subscribe_memctx_fd(GDBusConnection *c, const char *path);
/* SubscribeMemctx that must fail: the D-Bus error name (free it). */
char *vt_subscribe_memctx_error(GDBusConnection *c, const char *path);

/* vmsig-test-client --probe-memctx on the endpoint at path, as nobody or
 * as root: what it could do with the RAM fd, one line each ("reopen-rw
 * EACCES", "mmap-write EACCES", "write EBADF", ...). */
typedef struct VtBus VtBus;
GStrv vt_probe_memctx(VtBus *bus, gboolean as_nobody, const char *path);

/* MemWriteVirtual of len bytes at va on the endpoint at path, with
 * expected_epoch, under a memory-write lease taken for it: NULL once
 * written, else the D-Bus error name (free it). */
char *vt_mem_write_virtual(GDBusConnection *c, const char *path, guint64 va, const void *bytes, gsize len,
                           guint64 expected_epoch);

/* The outcomes of asynchronous calls given vt_replies_collect() as their
 * callback and a VtReplies as its data, in the order the replies came: the
 * D-Bus error names, and "ok" for each success if with_ok. */
typedef struct VtReplies {
        guint done;
        GPtrArray *errors;
        gboolean with_ok;
} VtReplies;
void vt_replies_collect(GObject *source, GAsyncResult *res, gpointer replies);

/* How often process pid was switched out, voluntarily or not (from
 * /proc): its wakeups. */
guint64 vt_context_switches(GPid pid);
/* The resident set of process pid in KiB (VmRSS in /proc), -1 if unknown. */
long vt_rss_kb(GPid pid);
/* How many fds process pid has open (from /proc), those on /proc aside
 * (see client.c). */
guint vt_count_fds(GPid pid);
/* Calls fn for each fd of process pid, with its number (as text) and the
 * target of its link in /proc (NULL: closed meanwhile); returns how many
 * fn counted (returned TRUE for). */
typedef gboolean (*VtFdFn)(GPid pid, const char *name, const char *target, gpointer userdata);
guint vt_foreach_fd(GPid pid, VtFdFn fn, gpointer userdata);

/* AcquireLease(class, {}) on the endpoint at path; returns the lease fd
 * (close it to give the lease up) and the lease object in *lease_path if
 * non-NULL. g_assert on error. */
int vt_acquire_lease(GDBusConnection *c, const char *path, const char *class, char **lease_path);
/* The same, expecting failure: returns the error name (free it). */
char *vt_acquire_lease_error(GDBusConnection *c, const char *path, const char *class, gboolean force,
                             char **message);

/* Records signals from org.vmsig for later inspection. Every
 * PropertiesChanged of an endpoint must carry a Sequence one above the last
 * one of that endpoint (the test aborts otherwise: a change was lost or
 * reordered); it is checked and left out of the recorded text, which shows
 * what the event changed. */
typedef struct VtSignalLog {
        GDBusConnection *conn;
        guint sub;
        GPtrArray *entries; /* "member path body-as-text" strings */
        GHashTable *sequences; /* endpoint path -> the last Sequence it announced */
        guint n_sequenced; /* endpoint PropertiesChanged checked for order */
} VtSignalLog;
VtSignalLog *vt_signal_log_new(GDBusConnection *c);
void vt_signal_log_free(VtSignalLog *l);
/* Index of the first entry starting with prefix at or after from, or -1. */
int vt_signal_log_find(VtSignalLog *l, const char *prefix, int from);
/* Wait (iterating the main context) until an entry with prefix exists. */
gboolean vt_signal_log_wait(VtSignalLog *l, const char *prefix, guint timeout_ms);
