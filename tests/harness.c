/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <glib-unix.h>

#include "bus-names.h"
#include "bus-config.h"
#include "harness.h"
#include "vt-util.h"

/* How long a child gets to come up or to go away. Under a wrapper such as
 * valgrind everything is an order of magnitude slower. */
#define TIMEOUT_MS 20000u
#define WRAPPED_TIMEOUT_MS 60000u
/* How long dbus-daemon gets to exit after SIGTERM before it is killed. */
#define BUS_STOP_TIMEOUT_MS 10000u

struct VtBus {
        char *dir;
        char *config_path;
        char *log_path;
        char *address;
        GPid pid;
        /* What DBUS_SYSTEM_BUS_ADDRESS was before, restored by vt_bus_stop. */
        char *saved_address;
        /* Daemons started on this bus and not yet stopped, so that they can
         * be told when the bus goes away before them. */
        GList *daemons;
        guint n_started;
};

struct VtDaemon {
        VtBus *bus; /* NULL once the bus was stopped */
        GPid pid;
        char *config_path;
        char *private_socket;
        /* Read side of the log, kept open so that the log stays readable
         * after vt_bus_stop removed the directory holding it. */
        int log_fd;
        guint timeout_ms;
        /* Whether the owner of org.vmsig must be pid itself: true unless a
         * wrapper that may fork (anything but valgrind) runs it. */
        gboolean owner_is_pid;
        gboolean exited;
        int status;
};

/* Fails the running test with a formatted message. The harness cannot go on
 * after such a failure, so it aborts even with non-fatal assertions.
 * Children die with us (see child_setup); the temporary directory is left
 * behind on purpose, for the post-mortem. */
#define vt_fail(...)                                                                       \
        G_STMT_START {                                                                     \
                char *_msg = g_strdup_printf(__VA_ARGS__);                                 \
                g_assertion_message(G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC, _msg);    \
                g_free(_msg);                                                              \
                g_abort();                                                                 \
        }                                                                                  \
        G_STMT_END

static const char *require_env(const char *name) {
        const char *v = g_getenv(name);

        if (!v || !*v)
                vt_fail("%s is not set; run the integration tests through `make check` or set it by hand", name);
        return v;
}

static guint wrapped_timeout(void) {
        const char *w = g_getenv("VMSIG_DAEMON_WRAPPER");

        return w && *w ? WRAPPED_TIMEOUT_MS : TIMEOUT_MS;
}

static int exit_status(int wstatus) {
        if (WIFEXITED(wstatus))
                return WEXITSTATUS(wstatus);
        if (WIFSIGNALED(wstatus))
                return 128 + WTERMSIG(wstatus);
        return 255;
}

/* Runs in the child between fork and exec: a test that aborts must not leave
 * a dbus-daemon (it runs with --nofork) or vmsigd behind. */
static void child_setup(gpointer data) {
        pid_t parent = (pid_t) GPOINTER_TO_INT(data);

        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        /* The parent may have died before prctl() took effect. */
        if (getppid() != parent)
                _exit(127);
}

void vt_child_setup(gpointer parent_pid) {
        child_setup(parent_pid);
}

const char *vt_bus_dir(VtBus *bus) {
        g_assert_nonnull(bus);
        return bus->dir;
}

/* Reaps pid if it has exited; *status gets its exit status. */
static gboolean try_reap(GPid pid, int *status) {
        int wstatus;
        pid_t r;

        do
                r = waitpid(pid, &wstatus, WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                vt_fail("waitpid(%d): %s", (int) pid, g_strerror(errno));
        if (r == 0)
                return FALSE;
        *status = exit_status(wstatus);
        return TRUE;
}

static int reap_blocking(GPid pid) {
        int wstatus;
        pid_t r;

        do
                r = waitpid(pid, &wstatus, 0);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                vt_fail("waitpid(%d): %s", (int) pid, g_strerror(errno));
        return exit_status(wstatus);
}

static gboolean tick(gpointer data) {
        return G_SOURCE_CONTINUE;
}

gboolean vt_wait_for(gboolean (*cond)(gpointer data), gpointer data, guint timeout_ms) {
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;
        GSource *wakeup = NULL;
        gboolean ok;

        for (;;) {
                if (cond(data)) {
                        ok = TRUE;
                        break;
                }
                if (g_get_monotonic_time() >= deadline) {
                        ok = FALSE;
                        break;
                }
                /* Conditions may depend on things that do not wake the main
                 * context (a child exiting, a synchronous call), so wake up
                 * regularly to look again. */
                if (!wakeup) {
                        wakeup = g_timeout_source_new(10);
                        g_source_set_callback(wakeup, tick, NULL, NULL);
                        g_source_attach(wakeup, NULL);
                }
                g_main_context_iteration(NULL, TRUE);
        }
        if (wakeup) {
                g_source_destroy(wakeup);
                g_source_unref(wakeup);
        }
        return ok;
}

typedef struct ValueWait {
        guint64 (*get)(gpointer data);
        gpointer data;
        guint64 want;
        gboolean at_least;
} ValueWait;

static gboolean value_reached(gpointer p) {
        ValueWait *w = p;
        guint64 v = w->get(w->data);

        return w->at_least ? v >= w->want : v == w->want;
}

gboolean vt_wait_for_value(guint64 (*get)(gpointer data), gpointer data, guint64 want, guint timeout_ms) {
        return vt_wait_for(value_reached, &(ValueWait) { get, data, want, FALSE }, timeout_ms);
}

gboolean vt_wait_for_at_least(guint64 (*get)(gpointer data), gpointer data, guint64 want, guint timeout_ms) {
        return vt_wait_for(value_reached, &(ValueWait) { get, data, want, TRUE }, timeout_ms);
}

static gboolean never(gpointer data) {
        return FALSE;
}

void vt_bus_iterate(VtBus *bus, guint ms) {
        (void) vt_wait_for(never, NULL, ms);
}

static void log_lines(const char *prefix, const char *text) {
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

        /* One message per line keeps the TAP comment prefix on each. */
        for (char **l = lines; *l; l++)
                if (**l)
                        g_test_message("%s%s", prefix, *l);
}

/* Indents every line of a log quoted in a failure message: a log line
 * starting with "ok" or "not ok" must not read as a TAP result. */
static char *indent(const char *text) {
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        GString *s = g_string_new(NULL);

        for (char **l = lines; *l; l++)
                if (**l)
                        g_string_append_printf(s, "    %s\n", *l);
        return g_string_free(s, FALSE);
}

/* Reads a whole file that may be growing. */
static char *read_fd_all(int fd) {
        GString *s = g_string_new(NULL);
        char buf[4096];
        off_t off = 0;

        for (;;) {
                ssize_t n = pread(fd, buf, sizeof(buf), off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                g_string_append_len(s, buf, n);
                off += n;
        }
        return g_string_free(s, FALSE);
}

static char *read_file_or_note(const char *path) {
        char *contents = NULL;

        if (!g_file_get_contents(path, &contents, NULL, NULL))
                return g_strdup_printf("(%s could not be read)", path);
        return contents;
}

/* Removes a directory tree; what is already gone is fine. */
static void rm_rf(const char *path) {
        struct stat st;

        if (lstat(path, &st) < 0) {
                if (errno != ENOENT)
                        vt_fail("lstat(%s): %s", path, g_strerror(errno));
                return;
        }
        if (S_ISDIR(st.st_mode)) {
                g_autoptr(GError) error = NULL;
                GDir *dir = g_dir_open(path, 0, &error);
                const char *name;

                if (!dir)
                        vt_fail("Cannot open %s: %s", path, error->message);
                while ((name = g_dir_read_name(dir))) {
                        g_autofree char *child = g_build_filename(path, name, NULL);
                        rm_rf(child);
                }
                g_dir_close(dir);
                if (g_rmdir(path) < 0 && errno != ENOENT)
                        vt_fail("rmdir(%s): %s", path, g_strerror(errno));
        } else if (g_unlink(path) < 0 && errno != ENOENT)
                vt_fail("unlink(%s): %s", path, g_strerror(errno));
}

/* Every policy file of the system, ours included last. */
#define BUS_CONFIG_TEMPLATE \
        BUS_CONFIG_HEAD "  <includedir>/usr/share/dbus-1/system.d</includedir>\n  <include>%s</include>\n" BUS_CONFIG_TAIL

/* Reads dbus-daemon's --print-address output up to the newline. */
static char *read_address(int fd, guint timeout_ms) {
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;
        g_autoptr(GString) s = g_string_new(NULL);

        while (!strchr(s->str, '\n')) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                gint64 left = (deadline - g_get_monotonic_time()) / G_TIME_SPAN_MILLISECOND;
                char buf[256];
                ssize_t n;
                int r;

                if (left <= 0)
                        return NULL;
                r = poll(&p, 1, (int) left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        vt_fail("poll: %s", g_strerror(errno));
                if (r == 0)
                        return NULL;
                n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) /* EOF: dbus-daemon gave up */
                        return NULL;
                g_string_append_len(s, buf, n);
        }
        *strchr(s->str, '\n') = '\0';
        return g_strdup(s->str);
}

/* The bus's directory (reachable by all: tests talk to the bus as
 * unprivileged users too, through setpriv) and its configuration. */
static void bus_files(VtBus *bus) {
        const char *srcdir = require_env("VMSIG_SRCDIR");
        g_autoptr(GError) error = NULL;
        g_autofree char *socket_path = NULL, *escaped = NULL, *policy = NULL, *config = NULL;

        bus->dir = g_dir_make_tmp("vmsig-bus-XXXXXX", &error);
        if (!bus->dir)
                vt_fail("Cannot create the bus directory: %s", error->message);
        if (chmod(bus->dir, 0755) < 0)
                vt_fail("chmod(%s): %s", bus->dir, g_strerror(errno));

        socket_path = g_build_filename(bus->dir, "bus", NULL);
        escaped = g_dbus_address_escape_value(socket_path);
        policy = g_build_filename(srcdir, "data", "org.vmsig.conf", NULL);
        if (!g_file_test(policy, G_FILE_TEST_IS_REGULAR))
                vt_fail("The bus policy %s does not exist", policy);
        {
                g_autofree char *a = g_markup_escape_text(escaped, -1), *s = g_markup_escape_text(srcdir, -1),
                                *p = g_markup_escape_text(policy, -1);
                config = g_strdup_printf(BUS_CONFIG_TEMPLATE, a, s, p);
        }
        bus->config_path = g_build_filename(bus->dir, "bus.conf", NULL);
        if (!g_file_set_contents(bus->config_path, config, -1, &error))
                vt_fail("Cannot write %s: %s", bus->config_path, error->message);
        bus->log_path = g_build_filename(bus->dir, "bus.log", NULL);
}

/* Fails with dbus-daemon's log, which did not come up. */
static void bus_fail(VtBus *bus) G_GNUC_NORETURN;
static void bus_fail(VtBus *bus) {
        int status;

        if (!try_reap(bus->pid, &status)) {
                kill(bus->pid, SIGKILL);
                status = reap_blocking(bus->pid);
        }
        g_autofree char *log = read_file_or_note(bus->log_path), *quoted = indent(log);
        vt_fail("dbus-daemon did not come up (exit status %d) with %s; its log:\n%s", status, bus->config_path,
                quoted);
}

VtBus *vt_bus_start(void) {
        const char *dbus_daemon = g_getenv("DBUS_DAEMON");
        g_autoptr(GError) error = NULL;
        g_autofree char *config_arg = NULL;
        VtBus *bus = g_new0(VtBus, 1);
        int pipe_fds[2], log_fd, addr_target = 3;

        if (!dbus_daemon || !*dbus_daemon)
                dbus_daemon = "dbus-daemon";
        bus_files(bus);
        log_fd = open(bus->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0)
                vt_fail("Cannot create %s: %s", bus->log_path, g_strerror(errno));
        if (!g_unix_open_pipe(pipe_fds, FD_CLOEXEC, &error))
                vt_fail("pipe: %s", error->message);

        config_arg = g_strdup_printf("--config-file=%s", bus->config_path);
        /* The address comes through a pipe of its own, so that stdout and
         * stderr can go to the log; --nofork keeps dbus-daemon our child. */
        const char *argv[] = { dbus_daemon, config_arg, "--nofork", "--nopidfile", "--print-address=3", NULL };
        if (!g_spawn_async_with_pipes_and_fds(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH,
                                              child_setup, GINT_TO_POINTER(getpid()), -1, log_fd, log_fd,
                                              &pipe_fds[1], &addr_target, 1, &bus->pid, NULL, NULL, NULL, &error))
                vt_fail("Cannot start %s: %s", dbus_daemon, error->message);
        close(pipe_fds[1]);
        close(log_fd);

        bus->address = read_address(pipe_fds[0], TIMEOUT_MS);
        close(pipe_fds[0]);
        if (!bus->address)
                bus_fail(bus);

        bus->saved_address = g_strdup(g_getenv("DBUS_SYSTEM_BUS_ADDRESS"));
        g_setenv("DBUS_SYSTEM_BUS_ADDRESS", bus->address, TRUE);
        g_test_message("Private system bus at %s (pid %d)", bus->address, (int) bus->pid);
        return bus;
}

const char *vt_bus_address(VtBus *bus) {
        g_assert_nonnull(bus);
        return bus->address;
}

GDBusConnection *vt_bus_connect(VtBus *bus) {
        g_autoptr(GError) error = NULL;
        GDBusConnection *c;

        g_assert_nonnull(bus);
        c = g_dbus_connection_new_for_address_sync(bus->address,
                                                   G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                           G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                   NULL, NULL, &error);
        if (!c)
                vt_fail("Cannot connect to %s: %s", bus->address, error->message);
        return c;
}

static char **child_environ(VtBus *bus) {
        char **env = g_get_environ();

        env = g_environ_setenv(env, "DBUS_SYSTEM_BUS_ADDRESS", bus->address, TRUE);
        /* Whatever runs the tests (a systemd unit, a CI job) must not get
         * sd_notify() messages or journal streams meant for it from our
         * children. */
        static const char *const drop[] = { "NOTIFY_SOCKET",  "JOURNAL_STREAM", "LISTEN_FDS",   "LISTEN_PID",
                                             "LISTEN_FDNAMES", "WATCHDOG_USEC",  "WATCHDOG_PID", NULL };
        for (const char *const *p = drop; *p; p++)
                env = g_environ_unsetenv(env, *p);
        return env;
}

int vt_bus_run_err(VtBus *bus, char **out, char **err, const char *const *argv) {
        g_auto(GStrv) env = NULL;
        g_autoptr(GError) error = NULL;
        g_autofree char *stdout_text = NULL, *stderr_text = NULL;
        int wstatus;

        g_assert_nonnull(bus);
        g_assert_true(argv && argv[0]);
        env = child_environ(bus);
        /* stdout is always captured: a child writing to ours would corrupt
         * the TAP stream. */
        if (!g_spawn_sync(NULL, (char **) argv, env, G_SPAWN_SEARCH_PATH, NULL, NULL, &stdout_text, &stderr_text,
                          &wstatus, &error))
                vt_fail("Cannot run %s: %s", argv[0], error->message);
        if (stderr_text && *stderr_text)
                g_test_message("%s: stderr: %s", argv[0], stderr_text);
        if (err)
                *err = g_steal_pointer(&stderr_text);
        if (out)
                *out = g_steal_pointer(&stdout_text);
        else if (*stdout_text)
                g_test_message("%s: stdout: %s", argv[0], stdout_text);
        return exit_status(wstatus);
}

int vt_bus_runv(VtBus *bus, char **out, const char *const *argv) {
        return vt_bus_run_err(bus, out, NULL, argv);
}

int vt_bus_run_as_nobody(VtBus *bus, char **out, char **err, const char *program, const char *const *args) {
        static const char *const setpriv[] = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups" };
        g_autofree char *copy = vt_bus_reachable(bus, program);
        g_autoptr(GPtrArray) argv = g_ptr_array_new();

        for (size_t i = 0; i < G_N_ELEMENTS(setpriv); i++)
                g_ptr_array_add(argv, (gpointer) setpriv[i]);
        g_ptr_array_add(argv, copy);
        for (const char *const *a = args; a && *a; a++)
                g_ptr_array_add(argv, (gpointer) *a);
        g_ptr_array_add(argv, NULL);
        return vt_bus_run_err(bus, out, err, (const char *const *) argv->pdata);
}

char *vt_bus_reachable(VtBus *bus, const char *program) {
        g_autofree char *built = g_build_filename(g_getenv("VMSIG_BUILDDIR"), program, NULL);
        g_autofree char *base = g_path_get_basename(program);
        char *copy = g_build_filename(bus->dir, base, NULL);
        g_autofree char *bytes = NULL;
        gsize len = 0;

        if (!g_file_test(copy, G_FILE_TEST_EXISTS)) {
                g_assert_true(g_file_get_contents(built, &bytes, &len, NULL));
                g_assert_true(g_file_set_contents(copy, bytes, (gssize) len, NULL));
                g_assert_cmpint(chmod(copy, 0755), ==, 0);
        }
        return copy;
}

int vt_bus_run(VtBus *bus, char **out, const char *program, ...) {
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        va_list ap;

        g_ptr_array_add(argv, (gpointer) program);
        va_start(ap, program);
        for (const char *a; (a = va_arg(ap, const char *));)
                g_ptr_array_add(argv, (gpointer) a);
        va_end(ap);
        g_ptr_array_add(argv, NULL);
        return vt_bus_runv(bus, out, (const char *const *) argv->pdata);
}

typedef struct {
        GPid pid;
        int status;
} ReapCtx;

static gboolean reaped(gpointer data) {
        ReapCtx *r = data;
        return try_reap(r->pid, &r->status);
}

void vt_bus_stop(VtBus *bus) {
        ReapCtx r = { 0 };

        g_assert_nonnull(bus);
        r.pid = bus->pid;
        /* Daemons still running see the bus go away and should exit by
         * themselves; vt_daemon_stop must then not need the bus. */
        for (GList *l = bus->daemons; l; l = l->next)
                ((VtDaemon *) l->data)->bus = NULL;
        g_clear_pointer(&bus->daemons, g_list_free);

        if (kill(bus->pid, SIGTERM) < 0)
                vt_fail("kill(dbus-daemon %d): %s", (int) bus->pid, g_strerror(errno));
        if (!vt_wait_for(reaped, &r, BUS_STOP_TIMEOUT_MS)) {
                kill(bus->pid, SIGKILL);
                (void) reap_blocking(bus->pid);
                vt_fail("dbus-daemon %d did not exit after SIGTERM", (int) bus->pid);
        }
        if (r.status != 0) {
                g_autofree char *log = read_file_or_note(bus->log_path);
                g_test_message("dbus-daemon exited with status %d; its log:", r.status);
                log_lines("  ", log);
        }

        rm_rf(bus->dir);

        if (g_strcmp0(g_getenv("DBUS_SYSTEM_BUS_ADDRESS"), bus->address) == 0) {
                if (bus->saved_address)
                        g_setenv("DBUS_SYSTEM_BUS_ADDRESS", bus->saved_address, TRUE);
                else
                        g_unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
        }

        VT_FREE_MANY(bus->saved_address, bus->address, bus->log_path, bus->config_path, bus->dir, bus);
}

static gboolean daemon_reaped(gpointer data) {
        VtDaemon *d = data;

        if (!d->exited)
                d->exited = try_reap(d->pid, &d->status);
        return d->exited;
}

/* Kills a daemon that outstayed its welcome, so that the failure leaves no
 * process behind, and fails with its log. */
static void daemon_fail(VtDaemon *d, const char *what) G_GNUC_NORETURN;
static void daemon_fail(VtDaemon *d, const char *what) {
        if (!d->exited) {
                kill(d->pid, SIGKILL);
                d->status = reap_blocking(d->pid);
                d->exited = TRUE;
        }
        g_autofree char *log = read_fd_all(d->log_fd), *quoted = indent(log);
        vt_fail("vmsigd (pid %d) %s (exit status %d); its log:\n%s", (int) d->pid, what, d->status, quoted);
}

/* The pid of the owner of name, 0 if it has none. */
guint32 vt_name_owner_pid(GDBusConnection *c, const char *name) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(c, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                            "org.freedesktop.DBus", "GetConnectionUnixProcessID",
                                                            g_variant_new("(s)", name), G_VARIANT_TYPE("(u)"),
                                                            G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
        guint32 pid;

        if (!r) {
                g_autofree char *remote = g_dbus_error_get_remote_error(error);
                if (g_strcmp0(remote, "org.freedesktop.DBus.Error.NameHasNoOwner") == 0)
                        return 0;
                vt_fail("GetConnectionUnixProcessID(%s): %s", name, error->message);
        }
        g_variant_get(r, "(u)", &pid);
        return pid;
}

typedef struct {
        VtDaemon *d;
        GDBusConnection *c;
} ReadyCtx;

static gboolean daemon_ready(gpointer data) {
        ReadyCtx *r = data;

        guint32 owner;

        if (daemon_reaped(r->d))
                daemon_fail(r->d, "exited before it owned org.vmsig");
        owner = vt_name_owner_pid(r->c, VMSIG_BUS_NAME);
        /* A leftover owner (another vmsigd on this bus) is not ours; ours
         * will fail to get the name and exit, which the check above sees. */
        if (r->d->owner_is_pid ? owner != (guint32) r->d->pid : owner == 0)
                return FALSE;
        /* vmsigd opens its private socket only once it owns the name (it
         * must not replace the socket of a vmsigd that already runs); it
         * appears listening. */
        return g_file_test(r->d->private_socket, G_FILE_TEST_EXISTS);
}

/* Writes the daemon's configuration and creates its log; returns the log's
 * write end, for the daemon's stdout and stderr. Numbered, so that a test
 * starting several daemons on one bus keeps every log. */
static int daemon_files(VtDaemon *d, const char *config_xml) {
        g_autoptr(GError) error = NULL;
        g_autofree char *log_path = NULL;
        int log_fd;

        d->bus->n_started++;
        d->config_path = g_strdup_printf("%s/vmsigd-%u.conf", d->bus->dir, d->bus->n_started);
        log_path = g_strdup_printf("%s/vmsigd-%u.log", d->bus->dir, d->bus->n_started);
        if (!g_file_set_contents(d->config_path, config_xml, -1, &error))
                vt_fail("Cannot write %s: %s", d->config_path, error->message);

        log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0)
                vt_fail("Cannot create %s: %s", log_path, g_strerror(errno));
        d->log_fd = open(log_path, O_RDONLY | O_CLOEXEC);
        if (d->log_fd < 0)
                vt_fail("Cannot open %s: %s", log_path, g_strerror(errno));
        return log_fd;
}

/* VMSIG_DAEMON_WRAPPER's words, then vmsigd and its arguments. */
static GPtrArray *daemon_argv(VtDaemon *d, const char *bin, const char *const *extra_args) {
        const char *wrapper = g_getenv("VMSIG_DAEMON_WRAPPER");
        GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);

        d->owner_is_pid = TRUE;
        if (wrapper && *wrapper) {
                g_autoptr(GError) error = NULL;
                g_auto(GStrv) wrapper_argv = NULL;

                if (!g_shell_parse_argv(wrapper, NULL, &wrapper_argv, &error))
                        vt_fail("Cannot parse VMSIG_DAEMON_WRAPPER: %s", error->message);
                for (char **p = wrapper_argv; *p; p++)
                        g_ptr_array_add(argv, g_strdup(*p));
                /* valgrind runs its guest in its own process. */
                g_autofree char *tool = g_path_get_basename(wrapper_argv[0]);
                d->owner_is_pid = g_str_equal(tool, "valgrind");
        }
        g_ptr_array_add(argv, g_strdup(bin));
        g_ptr_array_add(argv, g_strdup("--config"));
        g_ptr_array_add(argv, g_strdup(d->config_path));
        /* Before the extra arguments, which may override it. */
        g_ptr_array_add(argv, g_strdup("--log-level=debug"));
        /* Each daemon gets its own private socket, never /run/vmsig's. */
        d->private_socket = g_strdup_printf("%s/private-%u", d->bus->dir, d->bus->n_started);
        g_ptr_array_add(argv, g_strdup_printf("--private-socket=%s", d->private_socket));
        for (const char *const *p = extra_args; p && *p; p++)
                g_ptr_array_add(argv, g_strdup(*p));
        g_ptr_array_add(argv, NULL);
        return argv;
}

/* Owning the name is the last step of vmsigd's start-up, so once it is
 * owned the objects are there too. */
static void daemon_wait_ready(VtDaemon *d) {
        ReadyCtx ready = { .d = d, .c = vt_bus_connect(d->bus) };
        gboolean ok = vt_wait_for(daemon_ready, &ready, d->timeout_ms);

        g_dbus_connection_close_sync(ready.c, NULL, NULL);
        g_object_unref(ready.c);
        if (!ok)
                daemon_fail(d, "did not own org.vmsig in time");
}

VtDaemon *vt_daemon_start_full(VtBus *bus, const char *config_xml, const char *const *extra_args) {
        const char *builddir = require_env("VMSIG_BUILDDIR");
        g_autoptr(GError) error = NULL;
        g_autoptr(GPtrArray) argv = NULL;
        g_auto(GStrv) env = NULL;
        g_autofree char *bin = NULL;
        VtDaemon *d;
        int log_fd;

        g_assert_nonnull(bus);
        g_assert_nonnull(config_xml);

        d = g_new0(VtDaemon, 1);
        d->bus = bus;
        d->log_fd = -1;
        d->timeout_ms = wrapped_timeout();
        log_fd = daemon_files(d, config_xml);
        bin = g_build_filename(builddir, "vmsigd", NULL);
        if (!g_file_test(bin, G_FILE_TEST_IS_EXECUTABLE))
                vt_fail("%s does not exist; build it first", bin);
        argv = daemon_argv(d, bin, extra_args);

        env = child_environ(bus);
#if VMSIG_HAVE_VGPU
        /* Frames come from the library just built, not an installed one,
         * unless the test names another. */
        g_autofree char *vgpu = g_build_filename(builddir, ".libs", "libvmsig-vgpu.so.0", NULL);
        env = g_environ_setenv(env, "VMSIG_VGPU_LIBRARY", vgpu, FALSE);
#endif
        if (!g_spawn_async_with_pipes_and_fds(NULL, (const char *const *) argv->pdata, (const char *const *) env,
                                              G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH, child_setup,
                                              GINT_TO_POINTER(getpid()), -1, log_fd, log_fd, NULL, NULL, 0,
                                              &d->pid, NULL, NULL, NULL, &error))
                vt_fail("Cannot start %s: %s", bin, error->message);
        close(log_fd);
        bus->daemons = g_list_prepend(bus->daemons, d);
        daemon_wait_ready(d);
        return d;
}

VtDaemon *vt_daemon_start(VtBus *bus, const char *config_xml) {
        return vt_daemon_start_full(bus, config_xml, NULL);
}

GPid vt_daemon_pid(VtDaemon *d) {
        g_assert_nonnull(d);
        return d->pid;
}

const char *vt_daemon_config_path(VtDaemon *d) {
        g_assert_nonnull(d);
        return d->config_path;
}

const char *vt_daemon_private_socket(VtDaemon *d) {
        g_assert_nonnull(d);
        return d->private_socket;
}

void vt_daemon_rewrite_config(VtDaemon *d, const char *config_xml) {
        g_autoptr(GError) error = NULL;

        g_assert_nonnull(d);
        /* g_file_set_contents() writes a temporary file and renames it over
         * the old one: a reload never sees half a file. */
        if (!g_file_set_contents(d->config_path, config_xml, -1, &error))
                vt_fail("Cannot rewrite %s: %s", d->config_path, error->message);
}

void vt_daemon_signal(VtDaemon *d, int sig) {
        g_assert_nonnull(d);
        /* A reaped pid may already belong to someone else. */
        if (d->exited)
                vt_fail("Cannot send signal %d to vmsigd %d: it already exited with status %d", sig, (int) d->pid,
                        d->status);
        if (kill(d->pid, sig) < 0)
                vt_fail("kill(vmsigd %d, %d): %s", (int) d->pid, sig, g_strerror(errno));
}

char *vt_daemon_log(VtDaemon *d) {
        g_assert_nonnull(d);
        return read_fd_all(d->log_fd);
}

guint vt_daemon_log_count(VtDaemon *d, const char *needle) {
        g_autofree char *log = vt_daemon_log(d);
        guint n = 0;

        for (const char *s = log; (s = strstr(s, needle)); s += strlen(needle))
                n++;
        return n;
}

gboolean vt_daemon_log_has(gpointer args) {
        void **a = args;
        return vt_daemon_log_count(a[0], a[1]) > 0;
}

int vt_daemon_wait(VtDaemon *d, guint timeout_ms) {
        g_assert_nonnull(d);
        if (!vt_wait_for(daemon_reaped, d, timeout_ms))
                daemon_fail(d, "did not exit by itself in time");
        return d->status;
}

int vt_daemon_stop(VtDaemon *d) {
        int status;

        g_assert_nonnull(d);
        if (!daemon_reaped(d)) {
                /* Without a bus the daemon is expected to exit on its own
                 * (and to say so with its exit status); a signal would hide
                 * whether it does. */
                if (d->bus && kill(d->pid, SIGTERM) < 0)
                        vt_fail("kill(vmsigd %d): %s", (int) d->pid, g_strerror(errno));
                if (!vt_wait_for(daemon_reaped, d, d->timeout_ms))
                        daemon_fail(d, d->bus ? "did not exit after SIGTERM" : "did not exit after losing the bus");
        }
        status = d->status;
        if (status != 0) {
                g_autofree char *log = read_fd_all(d->log_fd);
                g_test_message("vmsigd (pid %d) exited with status %d; its log:", (int) d->pid, status);
                log_lines("  ", log);
        }

        if (d->bus)
                d->bus->daemons = g_list_remove(d->bus->daemons, d);
        if (d->log_fd >= 0)
                close(d->log_fd);
        g_free(d->config_path);
        g_free(d->private_socket);
        g_free(d);
        return status;
}

void vt_write_trigger(const char *dir, const char *name, const char *uuid, const char *ram_path,
                      const char *qmp_socket) {
        g_autofree char *uuid_attr = uuid ? g_strdup_printf(" uuid=\"%s\"", uuid) : g_strdup("");
        g_autofree char *xml = g_strdup_printf("<vm name=\"%s\"%s>\n"
                                               "  <ram path=\"%s\"/>\n"
                                               "  <qmp socket=\"%s\"/>\n"
                                               "</vm>\n",
                                               name, uuid_attr, ram_path, qmp_socket);
        g_autofree char *tmp = g_strdup_printf("%s/.%s.tmp", dir, name);
        g_autofree char *path = g_strdup_printf("%s/%s.xml", dir, name);
        g_autoptr(GError) error = NULL;

        g_assert_true(g_file_set_contents(tmp, xml, -1, &error));
        g_assert_cmpint(g_chmod(tmp, 0644), ==, 0);
        g_assert_cmpint(rename(tmp, path), ==, 0);
}

VtDaemon *vt_daemon_start_discovering(VtBus *bus, const char *head, char **ret_trigger_dir) {
        g_autofree char *dir = g_build_filename(vt_bus_dir(bus), "vms.d", NULL);
        g_autofree char *config = NULL;

        g_assert_cmpint(g_mkdir(dir, 0755), ==, 0);
        config = g_strdup_printf("<vmsigd>%s<discovery trigger-dir=\"%s\"/></vmsigd>", head, dir);
        *ret_trigger_dir = g_steal_pointer(&dir);
        return vt_daemon_start(bus, config);
}
