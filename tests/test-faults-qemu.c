/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Faults (issue 8) with real QEMUs (TCG), found through trigger files:
 *
 *  - dbus-daemon goes away: vmsigd exits with 1 and says why; a new bus and
 *    a new vmsigd on the same trigger directory and configuration rebuild
 *    the same roster (names, UUIDs, states, a paused guest included);
 *  - QEMU SIGKILLed while a client loops on input, MemWrite and lifecycle
 *    calls: only documented errors, the endpoint shut off, vmsigd unharmed,
 *    and a new QEMU picked up again;
 *  - QEMU paused from outside under the same kind of load: the endpoint
 *    follows, the calls go on;
 *  - the RAM file truncated under QEMU, vmsigd and a subscriber that maps
 *    it: the subscriber takes the SIGBUS, vmsigd (which only preads and
 *    pwrites) does not; the memctx epoch ends, BootstrapState is "error",
 *    MemWrite and SubscribeMemctx fail with RamUnavailable and the file is
 *    not grown back; once it is back to its size, a new epoch starts;
 *  - the RAM watches of several guests, and of a QEMU that came back, share
 *    one inotify instance.
 *
 * Skipped without QEMU (failed under CI=true), like test-bus-qemu. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gio/gunixfdlist.h>
#include <glib/gstdio.h>

#include "fixture.h"
#include "qemu-harness.h"

#define GUEST VT_ENDPOINT("guest")
#define WAIT_MS 20000
#define HIGH_GPA 0x7000000u /* in the upper half of the 128 MiB */

static const char *self_path; /* argv[0]: the memctx reader runs as this program */

typedef struct {
        VT_FIXTURE;
        QemuVm *qemu[2];
        char *vms_dir; /* the trigger directory, outside the bus's */
        char *config;
} Fixture;

static void write_trigger(Fixture *f, const char *name, const char *uuid, QemuVm *vm) {
        vt_write_trigger(f->vms_dir, name, uuid, vm->ram_path, vm->qmp_path);
}

static void start_daemon(Fixture *f) {
        vt_fixture_setup(&f->vt, f->config, 0);
}

/* data: the number of QEMUs (1 or 2). The trigger directory lives outside
 * the bus's, so that it outlives a bus. */
static void fixture_setup(Fixture *f, gconstpointer data) {
        g_autoptr(GError) error = NULL;

        if (!qemu_harness_available())
                return;
        for (int i = 0; i < GPOINTER_TO_INT(data); i++) {
                f->qemu[i] = qemu_vm_new();
                qemu_vm_start(f->qemu[i]);
        }
        f->vms_dir = g_dir_make_tmp("vmsig-faults-vms-XXXXXX", &error);
        g_assert_no_error(error);
        g_assert_cmpint(g_chmod(f->vms_dir, 0755), ==, 0);
        f->config = g_strdup_printf("<vmsigd><audit target=\"stderr\"/>"
                                    "<limits bootstrap-backoff-max-ms=\"500\"/>"
                                    "<discovery trigger-dir=\"%s\"/></vmsigd>",
                                    f->vms_dir);
        start_daemon(f);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        if (!f->vms_dir)
                return;
        vt_fixture_teardown(&f->vt);
        for (int i = 0; i < 2; i++)
                qemu_vm_free(f->qemu[i]);
        g_autoptr(GDir) d = g_dir_open(f->vms_dir, 0, NULL);
        for (const char *name; d && (name = g_dir_read_name(d));) {
                g_autofree char *p = g_build_filename(f->vms_dir, name, NULL);
                (void) g_unlink(p);
        }
        (void) g_rmdir(f->vms_dir);
        g_free(f->vms_dir);
        g_free(f->config);
}

static void wait_prop(GDBusConnection *c, const char *path, const char *prop, const char *want) {
        if (!vt_endpoint_wait_property(c, path, prop, want, TRUE, WAIT_MS)) {
                g_autofree char *s = vt_endpoint_string_or_null(c, path, prop);
                g_error("%s %s stayed %s instead of becoming %s", path, prop, s, want);
        }
}

static void wait_prop_not(GDBusConnection *c, const char *path, const char *prop, const char *unwanted) {
        g_assert_true(vt_endpoint_wait_property(c, path, prop, unwanted, FALSE, WAIT_MS));
}

static void wait_state(Fixture *f, const char *path, const char *want) {
        wait_prop(f->conn, path, "State", want);
}

/* The memctx comes once QEMU told its RAM map, a few round trips after
 * "running"; SeaBIOS then has paging off. */
static void wait_memctx(Fixture *f, const char *path) {
        wait_prop(f->conn, path, "BootstrapState", "booting");
}

static void ping(GDBusConnection *c) {
        g_autoptr(GVariant) r = vt_call(c, VT_MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping", NULL);
}

/* --- dbus-daemon restart ---------------------------------------------------------- */

static int cmp_lines(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* "name uuid state" per endpoint, sorted by name. */
static char *roster(GDBusConnection *c) {
        g_autoptr(GVariant) r = vt_call(c, VT_MANAGER_PATH, VT_MANAGER_IFACE, "ListEndpoints", NULL);
        g_autoptr(GVariantIter) it = NULL;
        g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
        const char *name, *state, *path;

        g_variant_get(r, "(a(suso))", &it);
        while (g_variant_iter_next(it, "(&su&s&o)", &name, NULL, &state, &path)) {
                g_autofree char *uuid = vt_get_string(c, path, VT_ENDPOINT_IFACE, "Uuid");
                g_ptr_array_add(lines, g_strdup_printf("%s %s %s", name, uuid, state));
        }
        g_ptr_array_sort(lines, cmp_lines);
        g_ptr_array_add(lines, NULL);
        return g_strjoinv("\n", (char **) lines->pdata);
}

static void settle_roster(Fixture *f) {
        wait_state(f, VT_ENDPOINT("alpha"), "running");
        wait_state(f, VT_ENDPOINT("beta"), "paused");
}

/* The bus goes away under a running vmsigd with two discovered guests, one
 * paused and one holding a lease: vmsigd exits with 1 (the unit restarts
 * it) and says so. A new bus and vmsigd rebuild the same roster from the
 * trigger directory and from QEMU; the lease is gone with its holder. */
static void test_bus_restart(Fixture *f, gconstpointer data) {
        if (!f->vms_dir)
                return;
        write_trigger(f, "alpha", "6f1c9a52-8d3e-4b7a-9c21-0e5f4d3b2a19", f->qemu[0]);
        write_trigger(f, "beta", "0b5e3c1d-2f4a-4b6c-8d7e-9f0a1b2c3d4e", f->qemu[1]);
        wait_state(f, VT_ENDPOINT("alpha"), "running");
        wait_state(f, VT_ENDPOINT("beta"), "running");
        qmp_session_run(f->qemu[1]->session, "stop", NULL);
        settle_roster(f);
        int lease = vt_acquire_lease(f->conn, VT_ENDPOINT("alpha"), "power", NULL);
        g_autofree char *before = roster(f->conn);
        g_test_message("roster before:\n%s", before);

        /* The bus goes; vmsigd notices by itself. */
        VtDaemon *old = f->daemon;
        g_clear_object(&f->conn);
        vt_bus_stop(f->bus);
        f->bus = NULL;
        f->daemon = NULL;
        g_assert_cmpint(vt_daemon_wait(old, WAIT_MS), ==, 1);
        g_autofree char *log = vt_daemon_log(old);
        g_assert_nonnull(strstr(log, "Lost the connection to the system bus, exiting."));
        g_assert_cmpint(vt_daemon_stop(old), ==, 1);
        close(lease);
        /* QEMU did not notice. */
        g_autofree char *a = qmp_session_status(f->qemu[0]->session), *b = qmp_session_status(f->qemu[1]->session);
        g_assert_cmpstr(a, ==, "running");
        g_assert_cmpstr(b, ==, "paused");

        start_daemon(f);
        settle_roster(f);
        g_autofree char *after = roster(f->conn);
        g_test_message("roster after:\n%s", after);
        g_assert_cmpstr(after, ==, before);
        g_autofree char *holder = vt_get_string(f->conn, VT_ENDPOINT("alpha"), VT_ENDPOINT_IFACE,
                                                "PowerLeaseHolder");
        g_assert_cmpstr(holder, ==, "");
        qmp_session_run(f->qemu[1]->session, "cont", NULL);
}

/* --- QEMU killed or paused under load ------------------------------------------- */

typedef struct {
        VtBus *bus;
        gboolean lifecycle; /* Pause and Resume too */
        GThread *thread;
        gint stop;
        gint ok;
        gint failed;
        GMutex lock;
        GHashTable *errors;  /* "method name" -> count */
        GHashTable *samples; /* "method name" -> the first message */
} Load;

static GVariant *key_events(void) {
        GVariantBuilder b;

        g_variant_builder_init(&b, G_VARIANT_TYPE("a(uui)"));
        g_variant_builder_add(&b, "(uui)", 0, 36, 1); /* qcode 36: a */
        g_variant_builder_add(&b, "(uui)", 0, 36, 0);
        return g_variant_new("(a(uui))", &b);
}

static GVariant *write_args(guint64 gpa, guint64 value) {
        return g_variant_new("(t@aya{sv})", gpa,
                             g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, &value, sizeof value, 1), NULL);
}

static void load_call(Load *l, GDBusConnection *c, const char *method, GVariant *args) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(c, VT_NAME, GUEST, VT_ENDPOINT_IFACE, method, args, NULL,
                                                            G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &error);

        if (r) {
                g_atomic_int_inc(&l->ok);
                return;
        }
        g_autofree char *name = g_dbus_error_get_remote_error(error);
        g_autofree char *key = g_strdup_printf("%s %s", method, name ? name : error->message);
        g_dbus_error_strip_remote_error(error);
        g_mutex_lock(&l->lock);
        g_hash_table_insert(l->errors, g_strdup(key),
                            GUINT_TO_POINTER(GPOINTER_TO_UINT(g_hash_table_lookup(l->errors, key)) + 1));
        if (!g_hash_table_contains(l->samples, key))
                g_hash_table_insert(l->samples, g_strdup(key), g_strdup(error->message));
        g_mutex_unlock(&l->lock);
        g_atomic_int_inc(&l->failed);
}

static gpointer load_main(gpointer data) {
        Load *l = data;
        GMainContext *ctx = g_main_context_new();
        GDBusConnection *c;
        int leases[3];
        guint64 n = 0;

        g_main_context_push_thread_default(ctx);
        c = vt_bus_connect(l->bus);
        leases[0] = vt_acquire_lease(c, GUEST, "input", NULL);
        leases[1] = vt_acquire_lease(c, GUEST, "memory-write", NULL);
        leases[2] = l->lifecycle ? vt_acquire_lease(c, GUEST, "power", NULL) : -1;
        while (!g_atomic_int_get(&l->stop)) {
                load_call(l, c, "InjectInput", key_events());
                load_call(l, c, "MemWrite", write_args(HIGH_GPA, ++n));
                if (l->lifecycle) {
                        load_call(l, c, "Pause", NULL);
                        load_call(l, c, "Resume", NULL);
                }
        }
        for (int i = 0; i < 3; i++)
                if (leases[i] >= 0)
                        close(leases[i]);
        g_dbus_connection_close_sync(c, NULL, NULL);
        g_object_unref(c);
        g_main_context_pop_thread_default(ctx);
        g_main_context_unref(ctx);
        return NULL;
}

static void load_start(Load *l, VtBus *bus, gboolean lifecycle) {
        *l = (Load) { .bus = bus, .lifecycle = lifecycle };
        g_mutex_init(&l->lock);
        l->errors = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        l->samples = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        l->thread = g_thread_new("load", load_main, l);
}

/* Prints the errors; fails on one that org.vmsig(5) does not document for
 * these methods. */
static void load_stop(Load *l) {
        static const char *const documented[] = {
                "org.vmsig.Error.InvalidState",   /* the guest is shut off (or not in a state for it) */
                "org.vmsig.Error.Host",           /* QEMU went away while it had the call */
                "org.vmsig.Error.NotLeaseHolder", /* the leases end with the guest */
                "org.vmsig.Error.LeaseRevoked",   /* input dropped when they did */
                NULL,
        };
        GHashTableIter it;
        gpointer key, value;

        g_atomic_int_set(&l->stop, 1);
        g_thread_join(l->thread);
        g_test_message("load: %d calls answered, %d failed", g_atomic_int_get(&l->ok), g_atomic_int_get(&l->failed));
        g_hash_table_iter_init(&it, l->errors);
        while (g_hash_table_iter_next(&it, &key, &value)) {
                const char *name = strchr(key, ' ') + 1;
                g_test_message("  %5u x %s (%s)", GPOINTER_TO_UINT(value), (const char *) key,
                               (const char *) g_hash_table_lookup(l->samples, key));
                if (!g_strv_contains(documented, name))
                        g_error("undocumented error: %s", (const char *) key);
        }
        g_hash_table_unref(l->errors);
        g_hash_table_unref(l->samples);
        g_mutex_clear(&l->lock);
}

typedef struct {
        Load *l;
        gint ok, failed;
} LoadWait;

static gboolean load_reached(gpointer data) {
        LoadWait *w = data;
        return g_atomic_int_get(&w->l->ok) >= w->ok && g_atomic_int_get(&w->l->failed) >= w->failed;
}

static void wait_load(Load *l, gint ok, gint failed) {
        LoadWait w = { l, ok, failed };
        if (!vt_wait_for(load_reached, &w, WAIT_MS))
                g_error("the load did not reach %d answered and %d failed calls (%d, %d)", ok, failed,
                        g_atomic_int_get(&l->ok), g_atomic_int_get(&l->failed));
}

/* SIGKILL to QEMU while a client loops on input, MemWrite, Pause and
 * Resume: the calls in flight and after fail with documented errors, the
 * endpoint is shut off, vmsigd keeps its pid, and a new QEMU is used. */
static void test_qemu_killed_under_load(Fixture *f, gconstpointer data) {
        Load l;

        if (!f->vms_dir)
                return;
        write_trigger(f, "guest", "2d7e0c4a-91b3-4f5e-8a6d-3c2b1a0f9e8d", f->qemu[0]);
        wait_state(f, GUEST, "running");
        wait_memctx(f, GUEST);
        GPid daemon = vt_daemon_pid(f->daemon);
        ping(f->conn);
        guint fds = vt_count_fds(daemon);
        load_start(&l, f->bus, TRUE);
        wait_load(&l, 40, 0);
        qemu_vm_kill(f->qemu[0]);
        wait_state(f, GUEST, "shut-off");
        wait_load(&l, 0, 20);
        load_stop(&l);

        /* The same vmsigd serves on, and takes the next QEMU. */
        ping(f->conn);
        g_assert_cmpint(vt_daemon_pid(f->daemon), ==, daemon);
        qemu_vm_start(f->qemu[0]);
        wait_state(f, GUEST, "running");
        int power = vt_acquire_lease(f->conn, GUEST, "power", NULL);
        g_autoptr(GVariant) p = vt_call(f->conn, GUEST, VT_ENDPOINT_IFACE, "Pause", NULL);
        g_autofree char *paused = qmp_session_status(f->qemu[0]->session);
        g_assert_cmpstr(paused, ==, "paused");
        g_autoptr(GVariant) r = vt_call(f->conn, GUEST, VT_ENDPOINT_IFACE, "Resume", NULL);
        close(power);
        wait_memctx(f, GUEST);
        ping(f->conn);
        g_assert_cmpuint(vt_count_fds(daemon), ==, fds);
}

/* QEMU stopped and continued by someone else (its monitor) while a client
 * loops on input and MemWrite: the endpoint follows QEMU's state; writes
 * go on through the pause, input fails with Host while QEMU takes none
 * (QEMU's own "VM not running", as test-qmp pins down), and both work
 * again after. */
static void test_qemu_paused_under_load(Fixture *f, gconstpointer data) {
        Load l;

        if (!f->vms_dir)
                return;
        write_trigger(f, "guest", "2d7e0c4a-91b3-4f5e-8a6d-3c2b1a0f9e8d", f->qemu[0]);
        wait_state(f, GUEST, "running");
        load_start(&l, f->bus, FALSE);
        wait_load(&l, 20, 0);
        qmp_session_run(f->qemu[0]->session, "stop", NULL);
        wait_state(f, GUEST, "paused");
        wait_load(&l, g_atomic_int_get(&l.ok) + 10, g_atomic_int_get(&l.failed) + 10);
        qmp_session_run(f->qemu[0]->session, "cont", NULL);
        wait_state(f, GUEST, "running");
        gint failed = g_atomic_int_get(&l.failed);
        wait_load(&l, g_atomic_int_get(&l.ok) + 20, 0);
        g_assert_cmpint(g_atomic_int_get(&l.failed), <=, failed + 1); /* one may have been on its way */
        g_mutex_lock(&l.lock);
        guint refused = GPOINTER_TO_UINT(g_hash_table_lookup(l.errors, "InjectInput org.vmsig.Error.Host"));
        guint writes_failed = 0;
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, l.errors);
        while (g_hash_table_iter_next(&it, &key, NULL))
                writes_failed += g_str_has_prefix(key, "MemWrite ");
        g_mutex_unlock(&l.lock);
        g_assert_cmpuint(refused, >=, 10);
        g_assert_nonnull(strstr(g_hash_table_lookup(l.samples, "InjectInput org.vmsig.Error.Host"), "VM not running"));
        g_assert_cmpuint(writes_failed, ==, 0);
        load_stop(&l);
        /* The last write landed. */
        g_assert_cmphex(qmp_session_xp(f->qemu[0]->session, HIGH_GPA), !=, 0);
}

/* --- the RAM file truncated --------------------------------------------------------- */

/* The memctx reader, run as this program: subscribes to path's memctx,
 * maps the whole RAM and reads its first byte, says "mapped SIZE"; then,
 * on a line on stdin, reads the last byte and says "read ok". Where the
 * file was truncated that read faults with SIGBUS: the reader's problem. */
static int memctx_reader(const char *path) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GDBusConnection) c = g_bus_get_sync(G_BUS_TYPE_SYSTEM, NULL, &error);
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) reply = NULL;
        guint64 size;
        gint32 index;
        char line[16];

        if (!c)
                return 2;
        reply = g_dbus_connection_call_with_unix_fd_list_sync(c, VT_NAME, path, VT_ENDPOINT_IFACE, "SubscribeMemctx",
                                                             NULL, NULL, G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &fds,
                                                             NULL, &error);
        if (!reply) {
                printf("subscribe-error %s\n", error->message);
                return 2;
        }
        g_variant_get(reply, "(httt@a(ttt))", &index, NULL, NULL, &size, NULL);
        int fd = g_unix_fd_list_get(fds, index, &error);
        const volatile guint8 *ram = fd < 0 ? MAP_FAILED : mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (ram == MAP_FAILED)
                return 2;
        (void) ram[0];
        printf("mapped %" G_GUINT64_FORMAT "\n", size);
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
                return 2;
        (void) ram[size - 1];
        printf("read ok\n");
        return 0;
}

static guint64 epoch_of(Fixture *f) {
        return vt_get_uint(f->conn, GUEST, VT_ENDPOINT_IFACE, "MemctxEpoch");
}

static off_t file_size(const char *path) {
        struct stat st;

        g_assert_cmpint(stat(path, &st), ==, 0);
        return st.st_size;
}

static char *mem_write_error(Fixture *f, guint64 gpa) {
        g_autofree char *message = NULL;
        char *name = vt_call_error(f->conn, GUEST, VT_ENDPOINT_IFACE, "MemWrite", write_args(gpa, 0x1122334455667788),
                                   &message);
        g_test_message("MemWrite at 0x%" G_GINT64_MODIFIER "x: %s: %s", gpa, name, message);
        return name;
}

/* A subscriber in a process of its own that mapped all of the guest's RAM
 * and, told to, reads the upper half of it. */
typedef struct {
        GPid pid;
        int in;
        FILE *out;
} Reader;

static Reader reader_start(void) {
        const char *argv[] = { self_path, "--memctx-reader", GUEST, NULL };
        g_autoptr(GError) error = NULL;
        Reader r;
        int out;
        char said[64] = "";

        g_assert_true(g_spawn_async_with_pipes(NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, vt_child_setup,
                                               GINT_TO_POINTER(getpid()), &r.pid, &r.in, &out, NULL, &error));
        g_assert_no_error(error);
        r.out = fdopen(out, "r");
        g_assert_nonnull(fgets(said, sizeof said, r.out));
        g_assert_cmpstr(said, ==, "mapped 134217728\n");
        return r;
}

/* The reader, told to read the half cut off: SIGBUS (or, under ASan, its
 * report and exit 1). */
static void reader_dies(Reader *r) {
        char rest[64] = "";
        int status;

        g_assert_cmpint(write(r->in, "go\n", 3), ==, 3);
        g_assert_cmpint(waitpid(r->pid, &status, 0), ==, r->pid);
        g_spawn_close_pid(r->pid);
        (void) !fgets(rest, sizeof rest, r->out);
        fclose(r->out);
        close(r->in);
        g_test_message("the reader %s %d after touching the cut-off half", WIFSIGNALED(status) ? "died of signal" :
                                                                           "exited with",
                       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        g_assert_cmpstr(rest, !=, "read ok\n");
        g_assert_true(WIFSIGNALED(status) ? WTERMSIG(status) == SIGBUS : WEXITSTATUS(status) != 0);
}

/* With the RAM file cut in half: writes are refused, past the end and
 * before it, and the file is not grown back; no new subscription either;
 * vmsigd (still daemon) and QEMU live on. */
static void assert_ram_unavailable(Fixture *f, guint64 epoch, GPid daemon) {
        g_autofree char *e1 = mem_write_error(f, HIGH_GPA);
        g_autofree char *e2 = mem_write_error(f, 0x1000);
        g_assert_cmpstr(e1, ==, "org.vmsig.Error.RamUnavailable");
        g_assert_cmpstr(e2, ==, "org.vmsig.Error.RamUnavailable");
        g_assert_cmpint(file_size(f->qemu[0]->ram_path), ==, QEMU_RAM_SIZE / 2);
        g_autofree char *e3 = vt_subscribe_memctx_error(f->conn, GUEST);
        g_assert_cmpstr(e3, ==, "org.vmsig.Error.RamUnavailable");
        g_assert_cmpuint(epoch_of(f), ==, epoch);
        ping(f->conn);
        g_assert_cmpint(vt_daemon_pid(f->daemon), ==, daemon);
        g_autofree char *status_text = qmp_session_status(f->qemu[0]->session);
        g_assert_cmpstr(status_text, ==, "paused");
}

/* Half the RAM file cut off under QEMU (which keeps running: the firmware
 * idles in low memory), under vmsigd and under a subscriber that mapped it. */
static void test_ram_truncated(Fixture *f, gconstpointer data) {
        if (!f->vms_dir)
                return;
        const char *ram = f->qemu[0]->ram_path;
        GPid daemon = vt_daemon_pid(f->daemon);

        write_trigger(f, "guest", "2d7e0c4a-91b3-4f5e-8a6d-3c2b1a0f9e8d", f->qemu[0]);
        wait_state(f, GUEST, "running");
        wait_prop_not(f->conn, GUEST, "BootstrapState", "idle");
        VtSignalLog *log = vt_signal_log_new(f->conn);
        close(vt_subscribe_memctx_fd(f->conn, GUEST)); /* for MemctxInvalidated */
        int lease = vt_acquire_lease(f->conn, GUEST, "memory-write", NULL);
        g_autoptr(GVariant) w = vt_call(f->conn, GUEST, VT_ENDPOINT_IFACE, "MemWrite", write_args(HIGH_GPA, 42));
        guint64 epoch = epoch_of(f);

        Reader reader = reader_start();

        /* The guest stands still meanwhile: a vCPU touching the cut-off
         * half would kill QEMU with SIGBUS (SeaBIOS keeps its tables at the
         * top of RAM), which is QEMU's fault, not what this tests. */
        qmp_session_run(f->qemu[0]->session, "stop", NULL);
        wait_state(f, GUEST, "paused");
        g_assert_cmpint(truncate(ram, QEMU_RAM_SIZE / 2), ==, 0);

        /* vmsigd: the epoch ends, no new one, the bootstrap is in error. */
        wait_prop(f->conn, GUEST, "BootstrapState", "error");
        g_autofree char *invalidated = g_strdup_printf("MemctxInvalidated " GUEST " (uint64 %" G_GUINT64_FORMAT ",)",
                                                       epoch);
        g_assert_true(vt_signal_log_wait(log, invalidated, WAIT_MS));
        void *said_so[] = { f->daemon, (void *) "shrank to 67108864 of the guest's 134217728 bytes" };
        g_assert_true(vt_wait_for(vt_daemon_log_has, said_so, WAIT_MS));

        reader_dies(&reader);
        assert_ram_unavailable(f, epoch, daemon);

        /* Back to its size (the cut-off half now reads as zeros): a new
         * epoch, the root is looked for again, writes land. */
        g_assert_cmpint(truncate(ram, QEMU_RAM_SIZE), ==, 0);
        wait_prop_not(f->conn, GUEST, "BootstrapState", "error");
        g_autofree char *changed = g_strdup_printf("MemctxChanged " GUEST " (uint64 %" G_GUINT64_FORMAT ",",
                                                   epoch + 1);
        g_assert_true(vt_signal_log_wait(log, changed, WAIT_MS));
        g_autoptr(GVariant) w2 = vt_call(f->conn, GUEST, VT_ENDPOINT_IFACE, "MemWrite",
                                         write_args(HIGH_GPA, 0x1122334455667788));
        g_assert_cmphex(qmp_session_xp(f->qemu[0]->session, HIGH_GPA), ==, 0x1122334455667788);
        qmp_session_run(f->qemu[0]->session, "cont", NULL);
        wait_state(f, GUEST, "running");
        close(vt_subscribe_memctx_fd(f->conn, GUEST));
        close(lease);
        vt_signal_log_free(log);
}

/* --- one inotify instance for every RAM watch ---------------------------------------- */

static gboolean is_inotify(GPid pid, const char *fd, const char *target, gpointer userdata) {
        return target && g_str_equal(target, "anon_inode:inotify");
}

/* vmsigd watches each RAM file for truncation. Each watch had an inotify
 * instance of its own, and closing one waits for a kernel grace period
 * (about 12 ms here) on the loop: every QEMU that came or went stalled
 * everyone's calls under load (bench/RESULTS.md, the load flood). The
 * watches now share one instance, kept while vmsigd runs: a second guest
 * adds none, and a QEMU that goes and comes back, or the last one going,
 * leaves the count as it was. */
static void test_ram_watches_share(Fixture *f, gconstpointer data) {
        if (!f->vms_dir)
                return;
        GPid daemon = vt_daemon_pid(f->daemon);

        write_trigger(f, "alpha", "5b0b3f4e-2f59-4a55-9d0b-6a1f0c1e2d3a", f->qemu[0]);
        wait_memctx(f, VT_ENDPOINT("alpha"));
        guint one = vt_foreach_fd(daemon, is_inotify, NULL);
        g_assert_cmpuint(one, >=, 1);

        write_trigger(f, "beta", "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", f->qemu[1]);
        wait_memctx(f, VT_ENDPOINT("beta"));
        g_assert_cmpuint(vt_foreach_fd(daemon, is_inotify, NULL), ==, one);

        /* beta's QEMU dies and a new one comes on the same paths. */
        qemu_vm_kill(f->qemu[1]);
        wait_state(f, VT_ENDPOINT("beta"), "shut-off");
        qemu_vm_start(f->qemu[1]);
        wait_state(f, VT_ENDPOINT("beta"), "running");
        wait_memctx(f, VT_ENDPOINT("beta"));
        g_assert_cmpuint(vt_foreach_fd(daemon, is_inotify, NULL), ==, one);

        /* Both endpoints go with their trigger files, and no guest RAM is
         * left to watch: the instance stays, since closing it is what
         * waited. */
        VtSignalLog *log = vt_signal_log_new(f->conn);
        for (const char *const *n = (const char *const[]) { "alpha", "beta", NULL }; *n; n++) {
                g_autofree char *trigger = g_strdup_printf("%s/%s.xml", f->vms_dir, *n);
                g_autofree char *removed = g_strdup_printf("EndpointRemoved " VT_MANAGER_PATH
                                                           " (objectpath '" VT_ENDPOINT("%s") "',)", *n);
                g_assert_cmpint(unlink(trigger), ==, 0);
                g_assert_true(vt_signal_log_wait(log, removed, WAIT_MS));
        }
        ping(f->conn);
        g_assert_cmpuint(vt_foreach_fd(daemon, is_inotify, NULL), ==, one);
        vt_signal_log_free(log);
}

int main(int argc, char *argv[]) {
        if (argc == 3 && g_str_equal(argv[1], "--memctx-reader"))
                return memctx_reader(argv[2]);
        self_path = argv[0];
        g_test_init(&argc, &argv, NULL);
#define ADD(name, fn, n_qemu) \
        g_test_add("/faults/qemu/" name, Fixture, GINT_TO_POINTER(n_qemu), fixture_setup, fn, fixture_teardown)
        ADD("bus-restart", test_bus_restart, 2);
        ADD("killed-under-load", test_qemu_killed_under_load, 1);
        ADD("paused-under-load", test_qemu_paused_under_load, 1);
        ADD("ram-truncated", test_ram_truncated, 1);
        ADD("ram-watches-share", test_ram_watches_share, 2);
        return g_test_run();
}
