/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsigctl against a real vmsigd on a private bus: every verb, --json, and
 * the exit codes of its failures (1, with the D-Bus error's message) and of
 * bad command lines (2). Background runs (lease, --keep-lease, monitor) are
 * ended with signals, as Ctrl-C would. Under VMSIG_DAEMON_WRAPPER (or
 * VMSIG_CTL_WRAPPER) vmsigctl runs under that wrapper too, e.g. valgrind. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ftw.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gstdio.h>
#include <gio/gunixfdlist.h>
#ifdef VMSIG_HAVE_VGPU
#include <png.h>
#endif

#include "fixture.h"
#include "vt-util.h"
#include "pty-harness.h"

#define ALPHA VT_ENDPOINT("alpha")
#define BETA VT_ENDPOINT("beta")
#define RAM (4u << 20)
#define CONFIG                                                                      \
        "<vmsigd><audit target=\"stderr\"/>"                                        \
        "<stub-vm name=\"alpha\" ram-size=\"4M\" dtb=\"0x10000\"/>"                 \
        "<stub-vm name=\"beta\" ram-size=\"1M\"/></vmsigd>"

typedef struct {
        VT_FIXTURE;
        char *ctl;
        char *dir; /* a scratch directory of the test's, gone with it */
} Fixture;

static guint timeout_ms(void) {
        const char *w = g_getenv("VMSIG_DAEMON_WRAPPER");
        /* valgrind makes every start of vmsigctl an order of magnitude slower. */
        return w && *w ? 60000 : 20000;
}

static void fixture_setup(Fixture *f, gconstpointer data) {
        vt_fixture_setup(&f->vt, CONFIG, 0);
        f->ctl = g_build_filename(g_getenv("VMSIG_BUILDDIR"), "vmsigctl", NULL);
        g_assert_true(g_file_test(f->ctl, G_FILE_TEST_IS_EXECUTABLE));
        f->dir = g_dir_make_tmp("vmsigctl-XXXXXX", NULL);
        g_assert_nonnull(f->dir);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        return remove(path);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        g_assert_cmpint(nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), ==, 0);
        g_free(f->dir);
        g_free(f->ctl);
        vt_fixture_teardown(&f->vt);
}

/* Running vmsigctl. */

/* The command line: the wrapper's words, vmsigctl, then the arguments. */
static GPtrArray *ctl_argv(Fixture *f, const char *first, va_list ap) {
        const char *wrapper = g_getenv("VMSIG_CTL_WRAPPER");
        GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);

        if (!wrapper || !*wrapper)
                wrapper = g_getenv("VMSIG_DAEMON_WRAPPER");
        if (wrapper && *wrapper) {
                g_auto(GStrv) words = NULL;
                g_autoptr(GError) error = NULL;
                g_assert_true(g_shell_parse_argv(wrapper, NULL, &words, &error));
                for (char **w = words; *w; w++)
                        g_ptr_array_add(argv, g_strdup(*w));
        }
        g_ptr_array_add(argv, g_strdup(f->ctl));
        for (const char *a = first; a; a = va_arg(ap, const char *))
                g_ptr_array_add(argv, g_strdup(a));
        g_ptr_array_add(argv, NULL);
        return argv;
}

/* Through the harness: stdout in *out, stderr to the test log. */
G_GNUC_NULL_TERMINATED static int ctl(Fixture *f, char **out, const char *first, ...) {
        g_autoptr(GPtrArray) argv = NULL;
        va_list ap;

        va_start(ap, first);
        argv = ctl_argv(f, first, ap);
        va_end(ap);
        return vt_bus_runv(f->bus, out, (const char *const *) argv->pdata);
}

static int run_with_env(char **argv, char **env, char **out, char **err) {
        g_autoptr(GError) error = NULL;
        int wstatus;

        g_assert_true(g_spawn_sync(NULL, argv, env, G_SPAWN_SEARCH_PATH, NULL, NULL, out, err, &wstatus, &error));
        g_test_message("%s: stdout: %s", argv[0], *out);
        g_test_message("%s: stderr: %s", argv[0], *err);
        if (WIFSIGNALED(wstatus))
                return 128 + WTERMSIG(wstatus);
        return WEXITSTATUS(wstatus);
}

static int ctl_env_v(Fixture *f, const char *bus_address, char **out, char **err, const char *first, va_list ap) {
        g_autoptr(GPtrArray) argv = ctl_argv(f, first, ap);
        g_auto(GStrv) env = bus_address ? g_environ_setenv(g_get_environ(), "DBUS_SYSTEM_BUS_ADDRESS", bus_address, TRUE)
                                        : g_environ_unsetenv(g_get_environ(), "DBUS_SYSTEM_BUS_ADDRESS");
        g_autofree char *o = NULL, *e = NULL;
        int status;

        status = run_with_env((char **) argv->pdata, env, &o, &e);
        if (out)
                *out = g_steal_pointer(&o);
        if (err)
                *err = g_steal_pointer(&e);
        return status;
}

/* The harness leaves stderr to the test log; failures are checked by their
 * message, so this runs vmsigctl with both captured. */
G_GNUC_NULL_TERMINATED static int ctl_err(Fixture *f, char **out, char **err, const char *first, ...) {
        va_list ap;
        int status;

        va_start(ap, first);
        status = ctl_env_v(f, vt_bus_address(f->bus), out, err, first, ap);
        va_end(ap);
        return status;
}

/* The same with DBUS_SYSTEM_BUS_ADDRESS set to bus_address (unset if NULL). */
G_GNUC_NULL_TERMINATED static int ctl_env(Fixture *f, const char *bus_address, char **out, char **err,
                                          const char *first, ...) {
        va_list ap;
        int status;

        va_start(ap, first);
        status = ctl_env_v(f, bus_address, out, err, first, ap);
        va_end(ap);
        return status;
}

/* vmsigctl in the background, its output read as it comes. */
typedef struct {
        GPid pid;
        int out_fd, err_fd;
        GString *out, *err;
} Bg;

G_GNUC_NULL_TERMINATED static Bg *bg_start(Fixture *f, const char *first, ...) {
        g_autoptr(GPtrArray) argv = NULL;
        g_autoptr(GError) error = NULL;
        Bg *b = g_new0(Bg, 1);
        va_list ap;

        va_start(ap, first);
        argv = ctl_argv(f, first, ap);
        va_end(ap);
        g_assert_true(g_spawn_async_with_pipes(NULL, (char **) argv->pdata, NULL,
                                               G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH,
                                               vt_child_setup, GINT_TO_POINTER(getpid()), &b->pid, NULL, &b->out_fd,
                                               &b->err_fd, &error));
        g_assert_no_error(error);
        g_assert_true(g_unix_set_fd_nonblocking(b->out_fd, TRUE, NULL));
        g_assert_true(g_unix_set_fd_nonblocking(b->err_fd, TRUE, NULL));
        b->out = g_string_new(NULL);
        b->err = g_string_new(NULL);
        return b;
}

static void drain(int fd, GString *s) {
        char buf[4096];
        ssize_t n;

        while ((n = read(fd, buf, sizeof buf)) > 0)
                g_string_append_len(s, buf, n);
}

/* Reads what is there, waiting up to ms for more. */
static void bg_pump(Bg *b, int ms) {
        struct pollfd p[2] = { { .fd = b->out_fd, .events = POLLIN }, { .fd = b->err_fd, .events = POLLIN } };

        (void) poll(p, 2, ms);
        drain(b->out_fd, b->out);
        drain(b->err_fd, b->err);
}

static gboolean bg_wait(Bg *b, GString *which, const char *needle) {
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms() * G_TIME_SPAN_MILLISECOND;

        while (!strstr(which->str, needle)) {
                if (g_get_monotonic_time() > deadline) {
                        g_test_message("No '%s' in time; stdout: %s\nstderr: %s", needle, b->out->str, b->err->str);
                        return FALSE;
                }
                bg_pump(b, 20);
        }
        return TRUE;
}

/* Sends sig (0: none, it is to exit by itself) and returns the exit
 * status; b is freed, its output logged. */
static int bg_finish(Bg *b, int sig, char **out, char **err) {
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms() * G_TIME_SPAN_MILLISECOND;
        int wstatus, status;
        pid_t r;

        if (sig)
                g_assert_cmpint(kill(b->pid, sig), ==, 0);
        while ((r = waitpid(b->pid, &wstatus, WNOHANG)) == 0) {
                if (g_get_monotonic_time() > deadline) {
                        kill(b->pid, SIGKILL);
                        (void) waitpid(b->pid, &wstatus, 0);
                        g_test_fail_printf("vmsigctl (pid %d) did not exit; stderr: %s", (int) b->pid, b->err->str);
                        break;
                }
                bg_pump(b, 20);
        }
        bg_pump(b, 0);
        close(b->out_fd);
        close(b->err_fd);
        g_spawn_close_pid(b->pid);
        g_test_message("background vmsigctl: stdout: %s", b->out->str);
        g_test_message("background vmsigctl: stderr: %s", b->err->str);
        status = WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : WEXITSTATUS(wstatus);
        if (out)
                *out = g_strdup(b->out->str);
        if (err)
                *err = g_strdup(b->err->str);
        g_string_free(b->out, TRUE);
        g_string_free(b->err, TRUE);
        g_free(b);
        return status;
}

/* A strict JSON syntax check (RFC 8259), for --json output. */

static const char *json_value(const char *p, int depth);

static const char *json_ws(const char *p) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
                p++;
        return p;
}

static const char *json_string(const char *p) {
        if (*p++ != '"')
                return NULL;
        for (; *p != '"'; p++) {
                if ((unsigned char) *p < 0x20)
                        return NULL;
                if (*p != '\\')
                        continue;
                p++;
                if (*p == 'u') {
                        for (int i = 1; i <= 4; i++)
                                if (!g_ascii_isxdigit(p[i]))
                                        return NULL;
                        p += 4;
                } else if (!*p || !strchr("\"\\/bfnrt", *p))
                        return NULL;
        }
        return p + 1;
}

static const char *json_number(const char *p) {
        if (*p == '-')
                p++;
        if (*p == '0')
                p++;
        else if (g_ascii_isdigit(*p))
                while (g_ascii_isdigit(*p))
                        p++;
        else
                return NULL;
        if (*p == '.') {
                if (!g_ascii_isdigit(*++p))
                        return NULL;
                while (g_ascii_isdigit(*p))
                        p++;
        }
        if (*p == 'e' || *p == 'E') {
                p++;
                if (*p == '+' || *p == '-')
                        p++;
                if (!g_ascii_isdigit(*p))
                        return NULL;
                while (g_ascii_isdigit(*p))
                        p++;
        }
        return p;
}

/* '{' or '[' at p: members up to the closing bracket. */
static const char *json_container(const char *p, int depth) {
        gboolean object = *p == '{';
        char close = object ? '}' : ']';

        p = json_ws(p + 1);
        if (*p == close)
                return p + 1;
        for (;;) {
                if (object) {
                        p = json_string(p);
                        if (!p || *(p = json_ws(p)) != ':')
                                return NULL;
                        p = json_ws(p + 1);
                }
                p = json_value(p, depth + 1);
                if (!p)
                        return NULL;
                p = json_ws(p);
                if (*p == close)
                        return p + 1;
                if (*p != ',')
                        return NULL;
                p = json_ws(p + 1);
        }
}

static const char *json_value(const char *p, int depth) {
        if (depth > 64)
                return NULL;
        switch (*p) {
        case '{':
        case '[':
                return json_container(p, depth);
        case '"':
                return json_string(p);
        case 't':
                return g_str_has_prefix(p, "true") ? p + 4 : NULL;
        case 'f':
                return g_str_has_prefix(p, "false") ? p + 5 : NULL;
        case 'n':
                return g_str_has_prefix(p, "null") ? p + 4 : NULL;
        default:
                return json_number(p);
        }
}

static gboolean json_valid(const char *s) {
        const char *end = json_value(json_ws(s), 0);
        return end && *json_ws(end) == '\0';
}

/* Every line an object: JSON lines. */
static void assert_json_lines(const char *text) {
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        guint n = 0;

        for (char **l = lines; *l; l++) {
                if (!**l)
                        continue;
                g_test_message("JSON line: %s", *l);
                g_assert_true(g_str_has_prefix(*l, "{"));
                g_assert_true(json_valid(*l));
                n++;
        }
        g_assert_cmpuint(n, >, 0);
}

static void test_json_checker(void) {
        static const char *const good[] = { "{}", "[]", "{\"a\":[1,-2.5e3,true,false,null,\"x\\u00e9\\n\"]}",
                                            " [ {\"b\" : {} } ] " };
        static const char *const bad[] = { "", "{", "{\"a\"}", "[1,]", "{\"a\":1,}", "01", "\"\n\"", "[1] x",
                                           "{'a':1}", "tru" };

        for (gsize i = 0; i < G_N_ELEMENTS(good); i++)
                g_assert_true(json_valid(good[i]));
        for (gsize i = 0; i < G_N_ELEMENTS(bad); i++)
                g_assert_false(json_valid(bad[i]));
}

/* State of the world, through our own connection. */

static char *prop(Fixture *f, const char *path, const char *name) {
        return vt_get_string(f->conn, path, VT_ENDPOINT_IFACE, name);
}

static void wait_prop(Fixture *f, const char *path, const char *property, const char *want, gboolean equal) {
        g_assert_true(vt_endpoint_wait_property(f->conn, path, property, want, equal, timeout_ms()));
}

static guint count(const char *haystack, const char *needle) {
        guint n = 0;

        for (const char *p = haystack; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

/* A read-only view of alpha's RAM, from our own memctx subscription. */
static const guint8 *map_ram(Fixture *f, int *ret_fd) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) reply = g_dbus_connection_call_with_unix_fd_list_sync(
                f->conn, VT_NAME, ALPHA, VT_ENDPOINT_IFACE, "SubscribeMemctx", NULL, NULL, G_DBUS_CALL_FLAGS_NONE,
                10000, NULL, &fds, NULL, &error);
        g_assert_no_error(error);
        *ret_fd = g_unix_fd_list_get(fds, 0, &error);
        g_assert_no_error(error);
        void *p = mmap(NULL, RAM, PROT_READ, MAP_SHARED, *ret_fd, 0);
        g_assert_true(p != MAP_FAILED);
        return p;
}

static void unmap_ram(const guint8 *ram, int fd) {
        munmap((void *) ram, RAM);
        close(fd);
}

/* The tests. */

static void test_usage(Fixture *f, gconstpointer data) {
        g_autofree char *version = NULL, *help = NULL;
        static const char *const bad[][6] = {
                { "frobnicate" },
                { "pause" },
                { "pause", "alpha", "beta" },
                { "status" },
                { "lease", "alpha" },
                { "lease", "alpha", "keyboard" },
                { "memwrite", "alpha", "zz", "00" },
                { "memwrite", "alpha", "0x10" },
                { "memwrite", "alpha", "0x10", "abc" },
                { "memwrite", "alpha", "0x10", "00", "--file=/dev/null" },
                { "input", "alpha", "key", "nosuchkey" },
                { "input", "alpha", "move", "-5", "3" },
                { "input", "alpha", "abs", "1", "40000" },
                { "input", "alpha", "jump" },
                { "input", "alpha", "type", "\xc3\xa9" },
                { "dump-memctx", "alpha", "--range=0x1000:4K" },
                { "dump-memctx", "alpha", "--save=/dev/null", "--range=0x1000" },
                { "--bogus" },
                { "--json=bogus", "list" },
                { "list", "--json=" },
        };

        g_assert_cmpint(ctl(f, &version, "--version", NULL), ==, 0);
        g_assert_cmpstr(version, ==, "vmsigctl 0.3.5\n");
        g_assert_cmpint(ctl(f, &help, "--help", NULL), ==, 0);
        g_assert_nonnull(strstr(help, "dump-memctx NAME"));
        g_assert_nonnull(strstr(help, "--keep-lease"));

        for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autofree char *out = NULL, *err = NULL;
                int status = ctl_err(f, &out, &err, bad[i][0], bad[i][1], bad[i][2], bad[i][3], bad[i][4], bad[i][5],
                                     NULL);
                g_assert_cmpint(status, ==, 2);
                g_assert_cmpstr(out, ==, "");
                g_assert_nonnull(strstr(err, "--help"));
        }
        /* Nothing above touched a lease. */
        g_autofree char *h = prop(f, ALPHA, "PowerLeaseHolder");
        g_assert_cmpstr(h, ==, "");
}

static void test_list(Fixture *f, gconstpointer data) {
        g_autofree char *table = NULL, *bare = NULL, *json = NULL, *dflt = NULL;

        g_assert_cmpint(ctl(f, &table, "list", NULL), ==, 0);
        g_assert_true(g_str_has_prefix(table, "ENDPOINT "));
        g_assert_nonnull(strstr(table, "VMID BACKEND STATE   BOOTSTRAP EPOCH LEASES\n"));
        g_assert_nonnull(strstr(table, "\nalpha    1    stub    running "));
        g_assert_nonnull(strstr(table, "\nbeta     2    stub    running idle      1     -\n"));
        g_assert_true(g_str_has_suffix(table, "\n2 endpoints listed.\n"));

        /* The default verb, and the legend left out. */
        g_assert_cmpint(ctl(f, &dflt, "--no-ask-password", NULL), ==, 0);
        g_assert_cmpstr(dflt, ==, table);
        g_assert_cmpint(ctl(f, &bare, "--no-legend", "list", NULL), ==, 0);
        g_assert_true(g_str_has_prefix(bare, "alpha 1 stub running "));
        g_assert_null(strstr(bare, "ENDPOINT"));
        g_assert_cmpuint(count(bare, "\n"), ==, 2);

        g_assert_cmpint(ctl(f, &json, "list", "--json", NULL), ==, 0);
        g_assert_true(json_valid(json));
        g_assert_true(g_str_has_prefix(json, "[{\"endpoint\":\"alpha\",\"path\":\"" ALPHA "\","));
        g_assert_nonnull(strstr(json, "{\"endpoint\":\"beta\","));
        g_assert_nonnull(strstr(json, "\"backend\":\"stub\""));
        g_assert_nonnull(strstr(json, "\"ram_size\":4194304,"));
        g_assert_nonnull(strstr(json, "\"leases\":{\"input\":null,\"power\":null,\"memory_write\":null}"));
        g_assert_cmpuint(count(json, "\n"), ==, 1);

        /* A lease holder shows in its column. */
        int lease = vt_acquire_lease(f->conn, BETA, "input", NULL);
        g_autofree char *held = NULL;
        g_autofree char *want = g_strdup_printf("input=%s\n", g_dbus_connection_get_unique_name(f->conn));
        g_assert_cmpint(ctl(f, &held, "list", NULL), ==, 0);
        g_assert_nonnull(strstr(held, want));
        close(lease);
}

static void test_status(Fixture *f, gconstpointer data) {
        g_autofree char *text = NULL, *json = NULL, *out = NULL, *err = NULL;

        g_assert_cmpint(ctl(f, &text, "status", "alpha", NULL), ==, 0);
        g_assert_nonnull(strstr(text, "          Endpoint: alpha\n"));
        g_assert_nonnull(strstr(text, "            Object: " ALPHA "\n"));
        g_assert_nonnull(strstr(text, "             State: running\n"));
        g_assert_nonnull(strstr(text, "               RAM: 4M (4194304 bytes)\n"));
        g_assert_nonnull(strstr(text, "      Capabilities: memctx input lifecycle display\n"));
        g_assert_nonnull(strstr(text, "Memory-write lease: -\n"));
        g_assert_nonnull(strstr(text, "          Guest OS: unknown\n"));

        /* A holder is shown as loginctl shows a leader: uid, user, pid
         * and command (this test program holds the power lease). */
        g_autofree char *comm = NULL, *held = NULL;
        int power = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_assert_true(g_file_get_contents("/proc/self/comm", &comm, NULL, NULL));
        g_strchomp(comm);
        g_autofree char *want = g_strdup_printf("       Power lease: %s (uid 0 (root), pid %d, %s)\n",
                                                g_dbus_connection_get_unique_name(f->conn), (int) getpid(), comm);
        g_assert_cmpint(ctl(f, &held, "status", "alpha", NULL), ==, 0);
        g_assert_nonnull(strstr(held, want));
        close(power);
        /* A root given by the configuration says so. */
        g_assert_nonnull(strstr(text, "         Bootstrap: ready (0 attempts, config)\n"));

        /* One document, the array list --json prints. */
        g_assert_cmpint(ctl(f, &json, "--json", "status", "alpha", "beta", NULL), ==, 0);
        g_assert_true(json_valid(json));
        g_assert_cmpuint(count(json, "\n"), ==, 1);
        g_assert_true(g_str_has_prefix(json, "[{\"endpoint\":\"alpha\",\"path\":\"" ALPHA "\","));
        g_assert_nonnull(strstr(json, "},{\"endpoint\":\"beta\","));
        g_assert_true(g_str_has_suffix(json, "}]\n"));
        g_assert_nonnull(strstr(json, "\"uuid\":\""));
        g_assert_nonnull(strstr(json, "\"capabilities\":[\"memctx\",\"input\",\"lifecycle\",\"display\"]"));
        g_assert_nonnull(strstr(json, "\"guest_os\":\"unknown\",\"guest_os_release\":\"\""));

        /* An unknown endpoint: its error, after what could be shown. */
        g_assert_cmpint(ctl_err(f, &out, &err, "status", "nosuch", "beta", NULL), ==, 1);
        g_assert_nonnull(strstr(err, "Failed to look up endpoint 'nosuch': No endpoint named 'nosuch'."));
        g_assert_true(g_str_has_prefix(out, "          Endpoint: beta\n"));
}

static void test_lifecycle(Fixture *f, gconstpointer data) {
        g_autofree char *err1 = NULL, *err2 = NULL, *err3 = NULL, *err4 = NULL;

        g_assert_cmpint(ctl(f, NULL, "pause", "alpha", NULL), ==, 0);
        g_autofree char *paused = prop(f, ALPHA, "State");
        g_assert_cmpstr(paused, ==, "paused");
        /* The lease was given back before vmsigctl exited. */
        g_autofree char *holder = prop(f, ALPHA, "PowerLeaseHolder");
        g_assert_cmpstr(holder, ==, "");

        g_assert_cmpint(ctl(f, NULL, "resume", "alpha", NULL), ==, 0);
        g_autofree char *running = prop(f, ALPHA, "State");
        g_assert_cmpstr(running, ==, "running");
        g_assert_cmpint(ctl_err(f, NULL, &err1, "resume", "alpha", NULL), ==, 1);
        g_assert_true(g_str_has_prefix(err1, "Failed to resume 'alpha': "));
        g_assert_nonnull(strstr(err1, "running"));

        g_assert_cmpint(ctl(f, NULL, "reset", "alpha", NULL), ==, 0);
        g_assert_cmpuint(vt_get_uint(f->conn, ALPHA, VT_ENDPOINT_IFACE, "MemctxEpoch"), ==, 2);
        g_assert_cmpint(ctl(f, NULL, "poweroff", "alpha", NULL), ==, 0);
        g_autofree char *off = prop(f, ALPHA, "State");
        g_assert_cmpstr(off, ==, "shut-off");
        g_assert_cmpint(ctl_err(f, NULL, &err2, "pause", "alpha", NULL), ==, 1);
        g_assert_true(g_str_has_prefix(err2, "Failed to pause 'alpha': "));
        g_assert_cmpint(ctl_err(f, NULL, &err4, "kill", "alpha", NULL), ==, 1);
        g_assert_true(g_str_has_prefix(err4, "Failed to kill 'alpha': "));
        g_assert_cmpint(ctl(f, NULL, "kill", "beta", NULL), ==, 0);
        g_autofree char *killed = prop(f, BETA, "State");
        g_assert_cmpstr(killed, ==, "shut-off");

        g_assert_cmpint(ctl_err(f, NULL, &err3, "pause", "nosuch", NULL), ==, 1);
        g_assert_cmpstr(err3, ==, "Failed to look up endpoint 'nosuch': No endpoint named 'nosuch'.\n");
        g_autofree char *log = vt_daemon_log(f->daemon);
        g_assert_nonnull(strstr(log, "action=pause endpoint=alpha result=ok"));
        g_assert_nonnull(strstr(log, "action=power-off endpoint=alpha result=ok"));
        g_assert_nonnull(strstr(log, "action=kill endpoint=beta result=ok"));
}

static void test_keep_lease(Fixture *f, gconstpointer data) {
        Bg *b = bg_start(f, "pause", "beta", "--keep-lease", NULL);
        g_autofree char *err = NULL;

        g_assert_true(bg_wait(b, b->err, "Holding the power lease of 'beta'"));
        g_autofree char *state = prop(f, BETA, "State");
        g_assert_cmpstr(state, ==, "paused");
        g_autofree char *holder = prop(f, BETA, "PowerLeaseHolder");
        g_assert_cmpstr(holder, !=, "");
        /* Held: nobody else may resume. */
        g_autofree char *busy = vt_acquire_lease_error(f->conn, BETA, "power", FALSE, NULL);
        g_assert_cmpstr(busy, ==, "org.vmsig.Error.LeaseBusy");

        g_assert_cmpint(bg_finish(b, SIGTERM, NULL, &err), ==, 0);
        wait_prop(f, BETA, "PowerLeaseHolder", "", TRUE);
        int lease = vt_acquire_lease(f->conn, BETA, "power", NULL);
        close(lease);

        /* The same after input, with the input lease. */
        Bg *input = bg_start(f, "input", "--keep-lease", "beta", "key", "a", NULL);
        g_assert_true(bg_wait(input, input->err, "Holding the input lease of 'beta'"));
        g_autofree char *input_holder = prop(f, BETA, "InputLeaseHolder");
        g_assert_cmpstr(input_holder, !=, "");
        g_assert_cmpint(bg_finish(input, SIGINT, NULL, NULL), ==, 0);
        wait_prop(f, BETA, "InputLeaseHolder", "", TRUE);
}

static void test_lease_busy(Fixture *f, gconstpointer data) {
        Bg *b = bg_start(f, "lease", "alpha", "power", NULL);
        g_autofree char *out = NULL, *err = NULL;

        g_assert_true(bg_wait(b, b->out, "\n"));
        g_assert_true(g_str_has_prefix(b->out->str, VMSIG_BUS_LEASE_PREFIX "/"));
        g_autofree char *holder = prop(f, ALPHA, "PowerLeaseHolder");
        g_assert_cmpstr(holder, !=, "");
        g_autofree char *lease_path = g_strndup(b->out->str, strcspn(b->out->str, "\n"));
        g_autofree char *lease_holder = vt_get_string(f->conn, lease_path, VT_LEASE_IFACE, "Holder");
        g_assert_cmpstr(lease_holder, ==, holder);

        /* Another vmsigctl is told who holds it. */
        g_assert_cmpint(ctl_err(f, &out, &err, "pause", "alpha", NULL), ==, 1);
        g_assert_true(g_str_has_prefix(err, "Failed to acquire the power lease of 'alpha': "));
        g_assert_nonnull(strstr(err, holder));
        g_autofree char *state = prop(f, ALPHA, "State");
        g_assert_cmpstr(state, ==, "running");

        g_assert_cmpint(bg_finish(b, SIGINT, NULL, NULL), ==, 0);
        wait_prop(f, ALPHA, "PowerLeaseHolder", "", TRUE);
        g_assert_cmpint(ctl(f, NULL, "pause", "alpha", NULL), ==, 0);
}

/* A revoked lease ends vmsigctl lease with exit status 1, saying why. */
static void test_lease_revoked(Fixture *f, gconstpointer data) {
        Bg *input = bg_start(f, "lease", "alpha", "input", NULL);
        Bg *power = bg_start(f, "lease", "beta", "power", NULL);
        g_autofree char *err1 = NULL, *err2 = NULL;

        g_assert_true(bg_wait(input, input->out, "\n"));
        g_assert_true(bg_wait(power, power->out, "\n"));
        g_autofree char *old_holder = prop(f, BETA, "PowerLeaseHolder");

        /* A guest reset revokes every lease of the endpoint. */
        int p = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Reset", NULL);
        close(p);
        g_assert_cmpint(bg_finish(input, 0, NULL, &err1), ==, 1);
        g_assert_nonnull(strstr(err1, "The input lease of 'alpha' was revoked: reset."));

        /* --force takes it from another vmsigctl. */
        Bg *thief = bg_start(f, "--force", "lease", "beta", "power", NULL);
        g_assert_cmpint(bg_finish(power, 0, NULL, &err2), ==, 1);
        g_assert_nonnull(strstr(err2, "The power lease of 'beta' was revoked: forced by :"));
        g_assert_true(bg_wait(thief, thief->out, "\n"));
        g_autofree char *new_holder = prop(f, BETA, "PowerLeaseHolder");
        g_assert_cmpstr(new_holder, !=, old_holder);
        g_assert_cmpint(bg_finish(thief, SIGTERM, NULL, NULL), ==, 0);
        wait_prop(f, BETA, "PowerLeaseHolder", "", TRUE);
}

static void test_memwrite(Fixture *f, gconstpointer data) {
        int ram_fd;
        const guint8 *ram = map_ram(f, &ram_fd);
        g_autofree char *err = NULL;

        g_assert_cmpint(ctl(f, NULL, "memwrite", "alpha", "0x2000", "68656c6c6f", NULL), ==, 0);
        g_assert_cmpmem(ram + 0x2000, 5, "hello", 5);
        g_assert_cmpint(ctl(f, NULL, "memwrite", "alpha", "8192", "57:4f", NULL), ==, 0);
        g_assert_cmpmem(ram + 0x2000, 5, "WOllo", 5);
        g_autofree char *holder = prop(f, ALPHA, "MemoryWriteLeaseHolder");
        g_assert_cmpstr(holder, ==, "");

        /* Across the end of RAM: refused, naming the address, nothing written. */
        g_autofree guint8 *before = g_memdup2(ram, RAM);
        g_assert_cmpint(ctl_err(f, NULL, &err, "memwrite", "alpha", "0x3ffffe", "00112233", NULL), ==, 1);
        g_assert_true(g_str_has_prefix(err, "Failed to write 4 bytes to 'alpha' at 0x3ffffe: "));
        g_assert_nonnull(strstr(err, "0x400000"));
        g_assert_cmpmem(before, RAM, ram, RAM);

        /* More than one write takes: one batch of 4096-byte entries. */
        const char *dir = f->dir;
        g_autofree char *file = g_build_filename(dir, "data", NULL);
        g_autofree guint8 *big = g_malloc(10000);
        for (guint i = 0; i < 10000; i++)
                big[i] = (guint8) g_random_int();
        g_assert_true(g_file_set_contents(file, (const char *) big, 10000, NULL));
        g_autofree char *file_arg = g_strdup_printf("--file=%s", file);
        g_assert_cmpint(ctl(f, NULL, "memwrite", "alpha", "0x3000", file_arg, NULL), ==, 0);
        g_assert_cmpmem(ram + 0x3000, 10000, big, 10000);
        g_autofree char *log = vt_daemon_log(f->daemon);
        /* One audit record for the batch: its first address, all its bytes,
         * how many writes. */
        g_assert_nonnull(
                strstr(log, "action=memwrite endpoint=alpha result=ok reason=- address=0x3000 length=10000 count=3"));

        /* All or nothing: a batch that ends beyond RAM writes nothing. */
        g_autofree char *far = g_strdup_printf("%#x", RAM - 5000);
        g_autofree char *err2 = NULL;
        memcpy(before, ram, RAM);
        g_assert_cmpint(ctl_err(f, NULL, &err2, "memwrite", "alpha", far, file_arg, NULL), ==, 1);
        g_assert_nonnull(strstr(err2, "Failed to write 10000 bytes to 'alpha'"));
        g_assert_cmpmem(before, RAM, ram, RAM);
        g_unlink(file);
        unmap_ram(ram, ram_fd);
}

#define STATE_CHANGED(path, state) "PropertiesChanged " path " ('org.vmsig.Endpoint', {'State': <'" state "'>}"

static void put_u64(Fixture *f, guint64 gpa, guint64 value) {
        g_autoptr(GVariant) r = vt_call(
                f->conn, ALPHA, VT_ENDPOINT_IFACE, "MemWrite",
                g_variant_new("(t@ay@a{sv})", gpa, g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, &value, 8, 1),
                              g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0)));
}

/* --virtual through page tables at the DTB (0x10000): VA 0x400000 is GPA
 * 0x20000; --pause pauses the guest around a write. */
static void test_memwrite_virtual_pause(Fixture *f, gconstpointer data) {
        VtSignalLog *log = vt_signal_log_new(f->conn);
        int ram_fd, lease = vt_acquire_lease(f->conn, ALPHA, "memory-write", NULL);
        const guint8 *ram = map_ram(f, &ram_fd);
        g_autofree char *err = NULL;

        put_u64(f, 0x10000, 0x11000 | 3); /* PML4[0] -> PDPT */
        put_u64(f, 0x11000, 0x12000 | 3); /* PDPT[0] -> PD */
        put_u64(f, 0x12010, 0x13000 | 3); /* PD[2] -> PT (VA 0x400000) */
        put_u64(f, 0x13000, 0x20000 | 3); /* PT[0] -> 0x20000 */
        close(lease);
        wait_prop(f, ALPHA, "MemoryWriteLeaseHolder", "", TRUE);

        g_assert_cmpint(ctl(f, NULL, "memwrite", "--virtual", "alpha", "0x400010", "616263", NULL), ==, 0);
        g_assert_cmpmem(ram + 0x20010, 3, "abc", 3);
        g_assert_cmpint(ctl_err(f, NULL, &err, "memwrite", "--virtual", "alpha", "0x401000", "00", NULL), ==, 1);
        g_assert_true(g_str_has_prefix(err, "Failed to write 1 byte to 'alpha' at 0x401000: "));

        g_assert_cmpint(ctl(f, NULL, "memwrite", "--pause", "alpha", "0x30", "7a", NULL), ==, 0);
        g_assert_cmpint(ram[0x30], ==, 'z');
        g_assert_true(vt_signal_log_wait(log, STATE_CHANGED(ALPHA, "running"), 5000));
        g_assert_cmpint(vt_signal_log_find(log, STATE_CHANGED(ALPHA, "paused"), 0), >=, 0);
        unmap_ram(ram, ram_fd);
        vt_signal_log_free(log);
}

static void test_input(Fixture *f, gconstpointer data) {
        g_autofree char *err = NULL;
        g_autofree char *long_text = g_strnfill(300, 'A');
        static const char *const cmds[][4] = {
                { "key", "a", "ret", NULL },
                { "key", "ctrl+alt+delete", NULL },
                { "type", "Hello, World!", NULL },
                { "move", "--", "-5", "10" },
                { "abs", "100", "32767", NULL },
                { "click", "right", NULL },
                { "click", NULL },
                { "key", "30", NULL },
                /* The last QKeyCode the daemon knows: vmsigctl names keys
                 * from the same table (keys.h). */
                { "key", "lang2", NULL },
        };

        for (gsize i = 0; i < G_N_ELEMENTS(cmds); i++)
                g_assert_cmpint(ctl(f, NULL, "input", "alpha", cmds[i][0], cmds[i][1], cmds[i][2], cmds[i][3], NULL),
                                ==, 0);
        /* 300 capitals are 1200 events: two calls. */
        g_assert_cmpint(ctl(f, NULL, "input", "alpha", "type", long_text, NULL), ==, 0);
        g_autofree char *log = vt_daemon_log(f->daemon);
        g_assert_cmpuint(count(log, "action=inject-input endpoint=alpha result=ok"), ==, G_N_ELEMENTS(cmds) + 2);
        g_autofree char *holder = prop(f, ALPHA, "InputLeaseHolder");
        g_assert_cmpstr(holder, ==, "");

        /* vmsigd's refusal comes through with its message. */
        int power = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) off = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "PowerOff", NULL);
        close(power);
        g_assert_cmpint(ctl_err(f, NULL, &err, "input", "alpha", "key", "a", NULL), ==, 1);
        g_assert_true(g_str_has_prefix(err, "Failed to send input to 'alpha': "));
        g_assert_nonnull(strstr(err, "shut off"));
}

static void pause_endpoint(Fixture *f, const char *path) {
        int lease = vt_acquire_lease(f->conn, path, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, path, VT_ENDPOINT_IFACE, "Pause", NULL);
        close(lease);
}

static void test_monitor(Fixture *f, gconstpointer data) {
        Bg *b = bg_start(f, "monitor", NULL);
        g_autofree char *out = NULL;

        g_assert_true(bg_wait(b, b->err, "Monitoring org.vmsig"));
        pause_endpoint(f, ALPHA);
        g_assert_true(bg_wait(b, b->out, " lifecycle alpha state=paused\n"));
        g_assert_true(bg_wait(b, b->out, " lease     alpha LeaseAcquired class=power holder=:"));
        g_assert_true(bg_wait(b, b->out, " lease     alpha LeaseReleased class=power holder=:"));
        g_autoptr(GVariant) d = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "DetachEndpoint",
                                        g_variant_new("(s)", "beta"));
        g_assert_true(bg_wait(b, b->out, " roster    beta InterfacesRemoved interfaces=org.vmsig.Endpoint\n"));
        g_assert_true(bg_wait(b, b->out, " roster    beta EndpointRemoved\n"));
        g_assert_true(bg_wait(b, b->out, " roster    /org/vmsig endpoint_count=1\n"));
        /* A configured VM comes back on reload. */
        vt_daemon_signal(f->daemon, SIGHUP);
        g_assert_true(bg_wait(b, b->out, " roster    beta InterfacesAdded interfaces=org.vmsig.Endpoint vmid="));
        g_assert_true(bg_wait(b, b->out, " roster    beta EndpointAdded\n"));

        g_assert_cmpint(bg_finish(b, SIGINT, &out, NULL), ==, 0);
        /* "YYYY-MM-DD HH:MM:SS.uuuuuu CATEGORY ...", one event per line. */
        g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
        for (char **l = lines; *l && **l; l++)
                g_assert_true(g_regex_match_simple("^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{6} [a-z]+ +\\S+ ",
                                                   *l, 0, 0));
}

/* The "sequence" of one endpoint's lines (a single endpoint here) goes up
 * by one from line to line. */
static void assert_sequence_increases(const char *out) {
        g_autoptr(GRegex) re = g_regex_new("\"sequence\":(\\d+),", 0, 0, NULL);
        g_autoptr(GMatchInfo) mi = NULL;
        guint64 last = 0;
        guint n = 0;

        for (g_regex_match(re, out, 0, &mi); g_match_info_matches(mi); g_match_info_next(mi, NULL)) {
                g_autofree char *num = g_match_info_fetch(mi, 1);
                guint64 seq = g_ascii_strtoull(num, NULL, 10);
                if (last > 0)
                        g_assert_cmpuint(seq, ==, last + 1);
                last = seq;
                n++;
        }
        g_assert_cmpuint(n, >=, 2);
}

/* --json and a NAME: JSON lines about that endpoint only. */
static void test_monitor_json_filter(Fixture *f, gconstpointer data) {
        Bg *b = bg_start(f, "monitor", "--json", "beta", NULL);
        g_autofree char *out = NULL;

        g_assert_true(bg_wait(b, b->err, "Monitoring endpoint 'beta'"));
        pause_endpoint(f, ALPHA);
        pause_endpoint(f, BETA);
        g_assert_true(bg_wait(b, b->out, "\"category\":\"lifecycle\",\"signal\":\"PropertiesChanged\",\"path\":\"" BETA
                                         "\",\"endpoint\":\"beta\",\"interface\":\"org.vmsig.Endpoint\","
                                         "\"sequence\":"));
        g_assert_true(bg_wait(b, b->out, ",\"data\":{\"state\":\"paused\"}}\n"));
        g_assert_true(bg_wait(b, b->out, "\"signal\":\"LeaseReleased\",\"path\":\"" BETA "\",\"endpoint\":\"beta\","
                                         "\"data\":{\"class\":\"power\",\"holder\":\":"));
        g_assert_cmpint(bg_finish(b, SIGTERM, &out, NULL), ==, 0);
        assert_json_lines(out);
        assert_sequence_increases(out);
        g_assert_null(strstr(out, "alpha"));
}

/* --memctx: the subscriber-only signals, here around a reset. */
static void test_monitor_memctx(Fixture *f, gconstpointer data) {
        Bg *b = bg_start(f, "monitor", "--memctx", "alpha", NULL);

        g_assert_true(bg_wait(b, b->err, "Monitoring endpoint 'alpha'"));
        int lease = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Reset", NULL);
        close(lease);
        g_assert_true(bg_wait(b, b->out, " memctx    alpha MemctxInvalidated epoch=1\n"));
        g_assert_true(bg_wait(b, b->out, " memctx    alpha MemctxChanged epoch=2 dtb=0\n"));
        g_assert_true(bg_wait(b, b->out, " memctx    alpha memctx_epoch=2 ram_size=4194304\n"));
        g_assert_cmpint(bg_finish(b, SIGTERM, NULL, NULL), ==, 0);
}

static char *read_file(const char *path, gsize *len) {
        char *contents = NULL;
        g_assert_true(g_file_get_contents(path, &contents, len, NULL));
        return contents;
}

static void test_dump_memctx(Fixture *f, gconstpointer data) {
        g_autofree char *text = NULL, *json = NULL, *err = NULL, *err2 = NULL;
        const char *dir = f->dir;
        g_autofree char *whole = g_build_filename(dir, "ram", NULL), *part = g_build_filename(dir, "part", NULL);
        g_autofree char *save_whole = g_strdup_printf("--save=%s", whole);
        g_autofree char *save_part = g_strdup_printf("--save=%s", part);

        g_assert_cmpint(ctl(f, &text, "dump-memctx", "alpha", NULL), ==, 0);
        g_assert_cmpstr(text, ==,
                        "Endpoint: alpha\n"
                        "   Epoch: 1\n"
                        "     DTB: 0x10000\n"
                        "    Size: 4M (4194304 bytes)\n"
                        "  Ranges: 0x0-0x3fffff (4M) at fd offset 0x0\n");
        g_assert_cmpint(ctl(f, &json, "--json", "dump-memctx", "beta", NULL), ==, 0);
        assert_json_lines(json);
        g_assert_cmpstr(json, ==,
                        "{\"endpoint\":\"beta\",\"epoch\":1,\"dtb\":0,\"size\":1048576,"
                        "\"ranges\":[{\"gpa\":0,\"size\":1048576,\"offset\":0}]}\n");

        /* What memwrite wrote is what --save saves. */
        g_assert_cmpint(ctl(f, NULL, "memwrite", "alpha", "0x2000", "68656c6c6f", NULL), ==, 0);
        g_assert_cmpint(ctl(f, NULL, "memwrite", "alpha", "0x3ffffc", "656e6421", NULL), ==, 0);
        g_assert_cmpint(ctl(f, NULL, "dump-memctx", "alpha", save_whole, NULL), ==, 0);
        gsize len;
        g_autofree char *ram = read_file(whole, &len);
        g_assert_cmpuint(len, ==, RAM);
        g_assert_cmpmem(ram + 0x2000, 5, "hello", 5);
        g_assert_cmpmem(ram + RAM - 4, 4, "end!", 4);

        g_autofree char *saved_json = NULL;
        g_assert_cmpint(ctl(f, &saved_json, "dump-memctx", "--json", "alpha", save_part, "--range=0x2000:5",
                            "--range", "0x3ffffc:4", NULL),
                        ==, 0);
        assert_json_lines(saved_json);
        g_assert_nonnull(strstr(saved_json, "\"bytes\":9}}\n"));
        g_autofree char *bytes = read_file(part, &len);
        g_assert_cmpmem(bytes, len, "helloend!", 9);

        /* Beyond RAM, and an unknown endpoint. */
        g_assert_cmpint(ctl_err(f, NULL, &err, "dump-memctx", "alpha", save_part, "--range=0x3ffffc:8", NULL), ==, 1);
        g_assert_nonnull(strstr(err, "0x400000 is not guest RAM."));
        g_assert_cmpint(ctl_err(f, NULL, &err2, "dump-memctx", "nosuch", NULL), ==, 1);
        g_assert_nonnull(strstr(err2, "No endpoint named 'nosuch'."));
        /* The subscriptions ended with each vmsigctl. */
        g_autofree char *log = vt_daemon_log(f->daemon);
        g_assert_cmpuint(count(log, "action=subscribe-memctx endpoint=alpha result=ok"), >=, 3);
        g_unlink(whole);
        g_unlink(part);
}

/* --address connects to the bus named, whatever the environment says. */
static void test_address(Fixture *f, gconstpointer data) {
        g_autofree char *address = g_strdup_printf("--address=%s", vt_bus_address(f->bus));
        g_autofree char *bogus = g_build_filename(vt_bus_dir(f->bus), "no-such-socket", NULL);
        g_autofree char *bogus_address = g_strdup_printf("unix:path=%s", bogus);
        g_autofree char *out1 = NULL, *out2 = NULL, *err2 = NULL;

        g_assert_cmpint(ctl_env(f, bogus_address, &out1, NULL, address, "--no-legend", "list", NULL), ==, 0);
        g_assert_true(g_str_has_prefix(out1, "alpha "));
        g_assert_cmpint(ctl_env(f, bogus_address, &out2, &err2, "list", NULL), ==, 1);
        g_assert_true(g_str_has_prefix(err2, "Failed to connect to the system bus: "));
}

/* --address to vmsigd's private socket: peer-to-peer, no Hello; leases are
 * held by p2p-N, and a revocation still reaches the holder. */
static void test_private_socket(Fixture *f, gconstpointer data) {
        g_autofree char *address = g_strdup_printf("--address=unix:path=%s", vt_daemon_private_socket(f->daemon));
        g_autofree char *out = NULL, *err = NULL;

        g_assert_cmpint(ctl(f, &out, address, "--no-legend", "list", NULL), ==, 0);
        g_assert_true(g_str_has_prefix(out, "alpha 1 stub running "));
        g_assert_nonnull(strstr(out, "\nbeta  2 stub running "));

        Bg *monitor = bg_start(f, address, "monitor", "beta", NULL);
        Bg *lease = bg_start(f, address, "lease", "beta", "input", NULL);
        g_assert_true(bg_wait(monitor, monitor->err, "Monitoring endpoint 'beta'"));
        g_assert_true(bg_wait(lease, lease->out, "\n"));
        g_autofree char *holder = prop(f, BETA, "InputLeaseHolder");
        g_assert_true(g_str_has_prefix(holder, "p2p-"));
        int power = vt_acquire_lease(f->conn, BETA, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, BETA, VT_ENDPOINT_IFACE, "Reset", NULL);
        close(power);
        g_assert_cmpint(bg_finish(lease, 0, NULL, &err), ==, 1);
        g_assert_nonnull(strstr(err, "The input lease of 'beta' was revoked: reset."));
        g_assert_true(bg_wait(monitor, monitor->out, " lease     beta LeaseReleased class=input holder=p2p-"));
        g_assert_true(bg_wait(monitor, monitor->out, " memctx    beta memctx_epoch=2 ram_size=1048576\n"));
        g_assert_cmpint(bg_finish(monitor, SIGTERM, NULL, NULL), ==, 0);
}

/* Root, with no bus named, talks to vmsigd's private socket, as systemctl
 * to systemd's: the pause is audited as done by a p2p peer. A named bus
 * ($DBUS_SYSTEM_BUS_ADDRESS) wins over it; without the socket it is the
 * system bus. */
static void test_root_uses_private_socket(Fixture *f, gconstpointer data) {
        g_autofree char *missing = g_build_filename(vt_bus_dir(f->bus), "no-such-socket", NULL);
        g_autofree char *out = NULL, *out2 = NULL, *err2 = NULL, *out3 = NULL;

        g_setenv("VMSIG_PRIVATE_SOCKET", vt_daemon_private_socket(f->daemon), TRUE);
        g_assert_cmpint(ctl_env(f, NULL, &out, NULL, "pause", "alpha", NULL), ==, 0);
        g_autofree char *log = vt_daemon_log(f->daemon);
        g_assert_true(g_regex_match_simple("sender=p2p action=pause endpoint=alpha result=ok", log, 0, 0));
        g_autofree char *state = prop(f, ALPHA, "State");
        g_assert_cmpstr(state, ==, "paused");

        /* $DBUS_SYSTEM_BUS_ADDRESS named: the bus, not the socket. */
        g_assert_cmpint(ctl_env(f, vt_bus_address(f->bus), &out3, NULL, "resume", "alpha", NULL), ==, 0);
        g_autofree char *log2 = vt_daemon_log(f->daemon);
        g_assert_true(g_regex_match_simple("sender=:[0-9.]+ action=resume endpoint=alpha result=ok", log2, 0, 0));
        g_assert_false(g_regex_match_simple("sender=p2p action=resume", log2, 0, 0));

        /* No socket there: the system bus (none on a build machine). */
        g_setenv("VMSIG_PRIVATE_SOCKET", missing, TRUE);
        int status = ctl_env(f, NULL, &out2, &err2, "list", NULL);
        g_unsetenv("VMSIG_PRIVATE_SOCKET");
        if (!g_file_test("/run/dbus/system_bus_socket", G_FILE_TEST_EXISTS)) {
                g_assert_cmpint(status, ==, 1);
                g_assert_true(g_str_has_prefix(err2, "Failed to connect to the system bus: "));
        }
}

/* reload and detach: Manager.Reload and DetachEndpoint, with their
 * errors; a refused reload changes nothing. */
static void test_reload_detach(Fixture *f, gconstpointer data) {
        g_autofree char *out = NULL, *err = NULL, *out2 = NULL, *err2 = NULL, *out3 = NULL, *err3 = NULL;
        g_autofree char *out4 = NULL, *out5 = NULL, *err5 = NULL, *out6 = NULL;

        vt_daemon_rewrite_config(f->daemon, "<vmsigd><audit target=\"stderr\"/>"
                                            "<stub-vm name=\"alpha\" ram-size=\"4M\" dtb=\"0x10000\"/>"
                                            "<stub-vm name=\"beta\" ram-size=\"1M\"/>"
                                            "<stub-vm name=\"gamma\" ram-size=\"1M\"/></vmsigd>");
        g_assert_cmpint(ctl_err(f, &out, &err, "reload", NULL), ==, 0);
        g_assert_cmpstr(out, ==, "");
        g_assert_cmpint(ctl_err(f, &out4, NULL, "--no-legend", "list", NULL), ==, 0);
        g_assert_nonnull(strstr(out4, "\ngamma "));

        vt_daemon_rewrite_config(f->daemon, "<vmsigd>\n<stub-vm name=\"alpha\" state=\"paus\"/>\n</vmsigd>");
        g_assert_cmpint(ctl_err(f, &out2, &err2, "reload", NULL), ==, 1);
        g_autofree char *says = g_strdup_printf("The configuration was not reloaded: %s:2: state=\"paus\" "
                                                "is not one of running, paused or shut-off (did you mean \"paused\"?).\n",
                                                vt_daemon_config_path(f->daemon));
        g_assert_cmpstr(err2, ==, says);
        g_autofree char *state = prop(f, ALPHA, "State");
        g_assert_cmpstr(state, ==, "running");

        g_assert_cmpint(ctl_err(f, &out3, &err3, "detach", "gamma", NULL), ==, 0);
        g_assert_cmpint(ctl_err(f, &out6, NULL, "--no-legend", "list", NULL), ==, 0);
        g_assert_null(strstr(out6, "gamma"));
        g_assert_nonnull(strstr(out6, "alpha "));
        g_assert_cmpint(ctl_err(f, &out5, &err5, "detach", "gamma", NULL), ==, 1);
        g_assert_nonnull(strstr(err5, "Failed to detach 'gamma': "));
}

/* --json=pretty|short|off and -j. */

static const char pretty_memctx[] = "{\n"
                                    "  \"endpoint\": \"beta\",\n"
                                    "  \"epoch\": 1,\n"
                                    "  \"dtb\": 0,\n"
                                    "  \"size\": 1048576,\n"
                                    "  \"ranges\": [\n"
                                    "    {\n"
                                    "      \"gpa\": 0,\n"
                                    "      \"size\": 1048576,\n"
                                    "      \"offset\": 0\n"
                                    "    }\n"
                                    "  ]\n"
                                    "}\n";

static void test_json_modes(Fixture *f, gconstpointer data) {
        g_autofree char *list_short = NULL, *list_pretty = NULL, *status_short = NULL, *status_pretty = NULL;
        g_autofree char *table = NULL, *off = NULL, *j = NULL, *memctx = NULL, *out = NULL, *err = NULL;

        g_assert_cmpint(ctl(f, &list_short, "--json=short", "list", NULL), ==, 0);
        g_assert_true(json_valid(list_short));
        g_assert_cmpuint(count(list_short, "\n"), ==, 1);
        g_assert_cmpint(ctl(f, &list_pretty, "--json=pretty", "list", NULL), ==, 0);
        g_assert_true(json_valid(list_pretty));
        g_assert_true(g_str_has_prefix(list_pretty, "[\n  {\n    \"endpoint\": \"alpha\",\n    \"path\": \"" ALPHA
                                                    "\",\n"));
        g_assert_nonnull(strstr(list_pretty, "\n    \"capabilities\": [\n      \"memctx\",\n"));
        g_assert_nonnull(strstr(list_pretty, "\n    \"leases\": {\n      \"input\": null,\n"));
        g_assert_nonnull(strstr(list_pretty, "\n  },\n  {\n    \"endpoint\": \"beta\",\n"));
        g_assert_true(g_str_has_suffix(list_pretty, "\n    }\n  }\n]\n"));

        /* list and status: the same document, in either mode. */
        g_assert_cmpint(ctl(f, &status_short, "status", "--json=short", "alpha", "beta", NULL), ==, 0);
        g_assert_cmpstr(status_short, ==, list_short);
        g_assert_cmpint(ctl(f, &status_pretty, "status", "--json=pretty", "alpha", "beta", NULL), ==, 0);
        g_assert_cmpstr(status_pretty, ==, list_pretty);

        /* off is the table; -j on a pipe is short. */
        g_assert_cmpint(ctl(f, &table, "list", NULL), ==, 0);
        g_assert_cmpint(ctl(f, &off, "--json=pretty", "--json=off", "list", NULL), ==, 0);
        g_assert_cmpstr(off, ==, table);
        g_assert_cmpint(ctl(f, &j, "-j", "list", NULL), ==, 0);
        g_assert_cmpstr(j, ==, list_short);

        g_assert_cmpint(ctl(f, &memctx, "dump-memctx", "--json=pretty", "beta", NULL), ==, 0);
        g_assert_cmpstr(memctx, ==, pretty_memctx);

        /* A bad mode names the good ones. */
        g_assert_cmpint(ctl_err(f, &out, &err, "--json=yaml", "list", NULL), ==, 2);
        g_assert_cmpstr(out, ==, "");
        g_assert_nonnull(strstr(err, "Invalid --json= mode 'yaml': expected pretty, short or off."));
}

/* monitor --json=pretty: still one document per event, each indented. */
static void test_monitor_json_pretty(Fixture *f, gconstpointer data) {
        Bg *b = bg_start(f, "monitor", "--json=pretty", "beta", NULL);
        g_autofree char *out = NULL;

        g_assert_true(bg_wait(b, b->err, "Monitoring endpoint 'beta'"));
        pause_endpoint(f, BETA);
        g_assert_true(bg_wait(b, b->out, "  \"data\": {\n    \"state\": \"paused\"\n  }\n}\n"));
        g_assert_cmpint(bg_finish(b, SIGTERM, &out, NULL), ==, 0);
        g_assert_true(g_str_has_prefix(out, "{\n  \"timestamp\": "));
        g_assert_nonnull(strstr(out, "\n  \"endpoint\": \"beta\",\n"));
        /* The events one after the other: each a whole JSON document. */
        g_auto(GStrv) docs = g_strsplit(out, "}\n{", -1);
        g_assert_cmpuint(g_strv_length(docs), >=, 2);
        for (char **d = docs; *d; d++) {
                g_autofree char *doc = g_strconcat(d == docs ? "" : "{", *d, d[1] ? "}" : "", NULL);
                g_assert_true(json_valid(doc));
        }
}

/* -q: no informational messages; results, legends and errors stay. */
static void test_quiet(Fixture *f, gconstpointer data) {
        g_autofree char *table = NULL, *quiet_table = NULL, *lease_err = NULL, *mon_out = NULL, *mon_err = NULL;
        g_autofree char *out = NULL, *err = NULL;

        g_assert_cmpint(ctl(f, &table, "list", NULL), ==, 0);
        g_assert_cmpint(ctl(f, &quiet_table, "-q", "list", NULL), ==, 0);
        g_assert_cmpstr(quiet_table, ==, table);

        Bg *lease = bg_start(f, "--quiet", "lease", "alpha", "power", NULL);
        g_assert_true(bg_wait(lease, lease->out, "\n"));
        g_assert_true(g_str_has_prefix(lease->out->str, "/org/vmsig/lease/"));
        g_assert_cmpint(bg_finish(lease, SIGINT, NULL, &lease_err), ==, 0);
        g_assert_cmpstr(lease_err, ==, "");

        /* Without its "Monitoring ..." there is no telling when the monitor
         * listens: leases come and go until it shows one. */
        Bg *mon = bg_start(f, "-q", "monitor", "beta", NULL);
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms() * G_TIME_SPAN_MILLISECOND;
        while (!strstr(mon->out->str, "LeaseAcquired") && g_get_monotonic_time() < deadline) {
                close(vt_acquire_lease(f->conn, BETA, "input", NULL));
                bg_pump(mon, 100);
        }
        g_assert_nonnull(strstr(mon->out->str, " lease     beta LeaseAcquired class=input holder=:"));
        g_assert_cmpint(bg_finish(mon, SIGINT, &mon_out, &mon_err), ==, 0);
        g_assert_cmpstr(mon_err, ==, "");

        g_assert_cmpint(ctl_err(f, &out, &err, "-q", "status", "nosuch", NULL), ==, 1);
        g_assert_nonnull(strstr(err, "No endpoint named 'nosuch'."));
#ifdef VMSIG_HAVE_VGPU
        g_autofree char *png = NULL, *shot_err = NULL;
        g_assert_cmpint(ctl_err(f, &png, &shot_err, "-q", "screenshot", "alpha", "-", NULL), ==, 0);
        g_assert_cmpmem(png, 8, "\x89PNG\r\n\x1a\n", 8);
        g_assert_cmpstr(shot_err, ==, "");
#endif
}

/* The pager, on a terminal of vmsigctl's own. */

static gboolean strv_has_prefix(const char *const *strv, const char *prefix) {
        for (; *strv; strv++)
                if (g_str_has_prefix(*strv, prefix))
                        return TRUE;
        return FALSE;
}

/* vmsigctl on a new pty, with the bus's address and env (NAME=VALUE
 * strings, NULL-terminated); returns the exit status, what the terminal
 * showed in *shown. */
static int ctl_pty(Fixture *f, const char *const *env, char **shown, const char *const *args) {
        g_autofree char *address = g_strdup_printf("DBUS_SYSTEM_BUS_ADDRESS=%s", vt_bus_address(f->bus));
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_autoptr(GPtrArray) envp = g_ptr_array_new();
        VtPty *t;
        int status;

        g_ptr_array_add(argv, f->ctl);
        for (const char *const *a = args; *a; a++)
                g_ptr_array_add(argv, (char *) *a);
        g_ptr_array_add(argv, NULL);
        g_ptr_array_add(envp, address);
        g_ptr_array_add(envp, (char *) "LANG=C");
        for (const char *const *e = env; *e; e++)
                g_ptr_array_add(envp, (char *) *e);
        /* A PATH in env replaces the usual one. */
        if (!strv_has_prefix(env, "PATH="))
                g_ptr_array_add(envp, (char *) "PATH=/usr/bin:/bin");
        g_ptr_array_add(envp, NULL);
        t = vt_pty_spawn((const char *const *) argv->pdata, (const char *const *) envp->pdata);
        status = vt_pty_wait(t, timeout_ms());
        if (shown)
                *shown = g_strdup(t->out->str);
        vt_pty_free(t);
        return status;
}

/* What the pager recorded in file (removed), or NULL if it never ran. */
static char *paged(const char *file) {
        char *contents = NULL;

        if (!g_file_get_contents(file, &contents, NULL, NULL))
                return NULL;
        g_unlink(file);
        return contents;
}

#define ENV(...) ((const char *[]) { __VA_ARGS__, NULL })
#define ARGS(...) ((const char *[]) { __VA_ARGS__, NULL })

/* A pager that records what it was given in rec, set through each of the
 * three variables. */
typedef struct pager_env {
        char *rec, *vmsig, *systemd, *pager;
} pager_env;

static void pager_env_init(Fixture *f, pager_env *p) {
        g_autofree char *to_rec = NULL;

        p->rec = g_build_filename(f->dir, "paged", NULL);
        to_rec = g_strdup_printf("cat > %s", p->rec);
        p->vmsig = g_strconcat("VMSIG_PAGER=", to_rec, NULL);
        p->systemd = g_strconcat("SYSTEMD_PAGER=", to_rec, NULL);
        p->pager = g_strconcat("PAGER=", to_rec, NULL);
}

static void pager_env_clear(pager_env *p) {
        VT_FREE_MANY(p->rec, p->vmsig, p->systemd, p->pager);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(pager_env, pager_env_clear)

/* vmsigctl ARGS on a terminal with ENV succeeds, and its pager was given
 * text containing needle; returns that text. */
static char *assert_paged(Fixture *f, const pager_env *pe, const char *const *env, const char *const *args,
                          const char *needle) {
        char *text;

        g_assert_cmpint(ctl_pty(f, env, NULL, args), ==, 0);
        text = paged(pe->rec);
        g_assert_nonnull(text);
        g_assert_nonnull(strstr(text, needle));
        return text;
}

static void test_pager(Fixture *f, gconstpointer data) {
        g_auto(pager_env) pe = { NULL };

        pager_env_init(f, &pe);
        g_autofree char *less_env = g_strdup_printf("VMSIG_PAGER=echo \"$LESS\" > %s; cat > /dev/null", pe.rec);
        g_autofree char *shown = NULL;
        g_autofree char *list = NULL, *status = NULL, *memctx = NULL, *help = NULL, *json = NULL, *less = NULL;
        g_autofree char *less2 = NULL;

        /* list, status, dump-memctx, --help and JSON go through it; -j on
         * a terminal is pretty. */
        g_assert_cmpint(ctl_pty(f, ENV(pe.vmsig), &shown, ARGS("list")), ==, 0);
        list = paged(pe.rec);
        g_assert_nonnull(list);
        g_assert_true(g_str_has_prefix(list, "ENDPOINT "));
        g_assert_nonnull(strstr(list, "\n2 endpoints listed.\n"));
        g_assert_null(strstr(shown, "endpoints listed"));
        status = assert_paged(f, &pe, ENV(pe.vmsig), ARGS("status", "alpha"), "          Endpoint: alpha\n");
        memctx = assert_paged(f, &pe, ENV(pe.vmsig), ARGS("dump-memctx", "alpha"), "Endpoint: alpha\n");
        g_assert_true(g_str_has_prefix(memctx, "Endpoint: alpha\n"));
        help = assert_paged(f, &pe, ENV(pe.vmsig), ARGS("--help"), "Endpoint Commands:");
        g_assert_cmpint(ctl_pty(f, ENV(pe.vmsig), NULL, ARGS("-j", "dump-memctx", "beta")), ==, 0);
        json = paged(pe.rec);
        g_assert_cmpstr(json, ==, pretty_memctx);

        /* less's options, unless the human has their own. */
        g_assert_cmpint(ctl_pty(f, ENV(less_env), NULL, ARGS("list")), ==, 0);
        less = paged(pe.rec);
        g_assert_cmpstr(less, ==, "FRXMK\n");
        g_assert_cmpint(ctl_pty(f, ENV(less_env, "LESS=S"), NULL, ARGS("list")), ==, 0);
        less2 = paged(pe.rec);
        g_assert_cmpstr(less2, ==, "S\n");
}

/* Which pager, if any. */
static void test_pager_choice(Fixture *f, gconstpointer data) {
        g_auto(pager_env) pe = { NULL };

        pager_env_init(f, &pe);
        g_autofree char *shown2 = NULL, *shown3 = NULL, *by_systemd = NULL, *by_pager = NULL, *by_vmsig = NULL;

        /* $VMSIG_PAGER, then $SYSTEMD_PAGER, then $PAGER. */
        by_systemd = assert_paged(f, &pe, ENV(pe.systemd, "PAGER=false"), ARGS("list"), "2 endpoints listed.");
        by_pager = assert_paged(f, &pe, ENV(pe.pager), ARGS("list"), "2 endpoints listed.");
        by_vmsig = assert_paged(f, &pe, ENV(pe.vmsig, "SYSTEMD_PAGER=false", "PAGER=false"), ARGS("list"),
                                "2 endpoints listed.");

        /* No pager: an empty one or "cat" (not falling through to the
         * next variable), and --no-pager. */
        g_assert_cmpint(ctl_pty(f, ENV("VMSIG_PAGER=", pe.pager), &shown2, ARGS("list")), ==, 0);
        g_assert_null(paged(pe.rec));
        g_assert_nonnull(strstr(shown2, "2 endpoints listed."));
        g_assert_cmpint(ctl_pty(f, ENV("SYSTEMD_PAGER=cat", pe.pager), NULL, ARGS("list")), ==, 0);
        g_assert_null(paged(pe.rec));
        g_assert_cmpint(ctl_pty(f, ENV(pe.vmsig), &shown3, ARGS("--no-pager", "list")), ==, 0);
        g_assert_null(paged(pe.rec));
        g_assert_nonnull(strstr(shown3, "2 endpoints listed."));

        /* Not a terminal: no pager. */
        g_autofree char *piped = NULL;
        g_setenv("VMSIG_PAGER", pe.vmsig + strlen("VMSIG_PAGER="), TRUE);
        g_assert_cmpint(ctl(f, &piped, "list", NULL), ==, 0);
        g_unsetenv("VMSIG_PAGER");
        g_assert_null(paged(pe.rec));
        g_assert_nonnull(strstr(piped, "2 endpoints listed."));

        /* monitor follows live: never paged. */
        g_autofree char *address = g_strdup_printf("DBUS_SYSTEM_BUS_ADDRESS=%s", vt_bus_address(f->bus));
        VtPty *mon = vt_pty_spawn(ARGS(f->ctl, "monitor"), ENV(address, "PATH=/usr/bin:/bin", pe.vmsig));
        g_assert_true(vt_pty_wait_for(mon, "Monitoring org.vmsig", timeout_ms()));
        g_assert_cmpint(kill(mon->pid, SIGINT), ==, 0);
        g_assert_cmpint(vt_pty_wait(mon, timeout_ms()), ==, 0);
        vt_pty_free(mon);
        g_assert_null(paged(pe.rec));
}

/* A pager program in dir that records its name and $LESS in rec. */
static void fake_pager(const char *dir, const char *name, const char *rec) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_autofree char *script = g_strdup_printf("#!/bin/sh\necho %s \"$LESS\" > %s\nexec /bin/cat > /dev/null\n", name,
                                                  rec);

        g_assert_true(g_file_set_contents(path, script, -1, NULL));
        g_assert_cmpint(g_chmod(path, 0755), ==, 0);
}

/* Without a pager named: less, else more, else none; so too when the one
 * named cannot be run. */
static void test_pager_default(Fixture *f, gconstpointer data) {
        const char *dir = f->dir;
        g_autofree char *bin = g_build_filename(dir, "bin", NULL);
        g_autofree char *rec = g_build_filename(dir, "paged", NULL);
        g_autofree char *path = g_strconcat("PATH=", bin, NULL);
        g_autofree char *by_less = NULL, *by_more = NULL, *fallen = NULL, *shown = NULL, *shown2 = NULL;
        g_autofree char *less = g_build_filename(bin, "less", NULL), *more = g_build_filename(bin, "more", NULL);

        g_assert_cmpint(g_mkdir(bin, 0755), ==, 0);
        fake_pager(bin, "less", rec);
        fake_pager(bin, "more", rec);
        g_assert_cmpint(ctl_pty(f, ENV(path), NULL, ARGS("list")), ==, 0);
        by_less = paged(rec);
        g_assert_cmpstr(by_less, ==, "less FRXMK\n");
        g_assert_cmpint(ctl_pty(f, ENV(path, "VMSIG_PAGER=no-such-pager"), &shown, ARGS("list")), ==, 0);
        fallen = paged(rec);
        g_assert_cmpstr(fallen, ==, "less FRXMK\n");
        g_assert_nonnull(strstr(shown, "Failed to run the pager 'no-such-pager'"));
        g_unlink(less);
        g_assert_cmpint(ctl_pty(f, ENV(path), NULL, ARGS("list")), ==, 0);
        by_more = paged(rec);
        g_assert_cmpstr(by_more, ==, "more FRXMK\n");
        g_unlink(more);
        g_assert_cmpint(ctl_pty(f, ENV(path), &shown2, ARGS("list")), ==, 0);
        g_assert_null(paged(rec));
        g_assert_nonnull(strstr(shown2, "2 endpoints listed."));
}

/* vmsigctl waits for its pager to end; a pager quit before the end of the
 * output costs vmsigctl neither a SIGPIPE nor its exit status. */
static void test_pager_end(Fixture *f, gconstpointer data) {
        const char *dir = f->dir;
        g_autofree char *rec = g_build_filename(dir, "paged", NULL);
        g_autofree char *slow = g_strdup_printf("VMSIG_PAGER=cat > %s.tmp; sleep 0.5; mv %s.tmp %s", rec, rec, rec);
        g_autoptr(GPtrArray) args = g_ptr_array_new();
        g_autofree char *shown = NULL, *list = NULL;

        g_assert_cmpint(ctl_pty(f, ENV(slow), NULL, ARGS("list")), ==, 0);
        list = paged(rec);
        g_assert_nonnull(list);
        g_assert_nonnull(strstr(list, "2 endpoints listed."));

        /* Far more than a pipe holds, into a pager that reads nothing. */
        g_ptr_array_add(args, (char *) "status");
        for (int i = 0; i < 400; i++)
                g_ptr_array_add(args, (char *) (i % 2 ? "alpha" : "beta"));
        g_ptr_array_add(args, NULL);
        g_assert_cmpint(ctl_pty(f, ENV("VMSIG_PAGER=true"), &shown, (const char *const *) args->pdata), ==, 0);
        g_assert_null(strstr(shown, "Endpoint: alpha"));
}

#ifdef VMSIG_HAVE_VGPU
/* The PNG's pixels as XRGB8888, decoded with libpng. */
static guint32 *decode_png(const char *file, png_uint_32 *width, png_uint_32 *height) {
        png_image image = { .version = PNG_IMAGE_VERSION };
        guint32 *px;

        g_assert_true(png_image_begin_read_from_file(&image, file));
        image.format = PNG_FORMAT_BGRA;
        px = g_new0(guint32, (gsize) image.width * image.height);
        g_assert_true(png_image_finish_read(&image, NULL, px, 0, NULL));
        *width = image.width;
        *height = image.height;
        return px;
}

/* The frame of a paused (so unchanging) VM, saved by vmsigctl, is the
 * frame vmsigd hands out, pixel for pixel. */
static void test_screenshot(Fixture *f, gconstpointer data) {
        const char *dir = f->dir;
        g_autofree char *file = g_build_filename(dir, "alpha.png", NULL);
        g_autofree char *out = NULL, *json = NULL;
        g_autoptr(GError) error = NULL;
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) reply = NULL;
        g_autofree guint32 *png = NULL;
        g_autofree char *format = NULL;
        guint32 width, height, stride;
        png_uint_32 pw, ph;
        gint32 index;
        guint64 seq;
        struct stat st;

        pause_endpoint(f, ALPHA);
        /* Let the paused pattern be captured. */
        reply = g_dbus_connection_call_with_unix_fd_list_sync(f->conn, VT_NAME, ALPHA, VT_ENDPOINT_IFACE,
                                                              "SubscribeFrames", NULL, G_VARIANT_TYPE("(huuust)"),
                                                              G_DBUS_CALL_FLAGS_NONE, 20000, NULL, &fds, NULL, &error);
        g_assert_no_error(error);
        g_variant_get(reply, "(huuust)", &index, &width, &height, &stride, &format, &seq);

        g_assert_cmpint(ctl(f, &out, "screenshot", "alpha", file, NULL), ==, 0);
        g_autofree char *want = g_strdup_printf("Saved frame %" G_GUINT64_FORMAT " of 'alpha' (640x480) to %s\n", seq,
                                                file);
        g_assert_cmpstr(out, ==, want);
        g_assert_cmpint(stat(file, &st), ==, 0);
        g_assert_cmpint(st.st_mode & 0777, ==, 0600);

        png = decode_png(file, &pw, &ph);
        g_assert_cmpuint(pw, ==, width);
        g_assert_cmpuint(ph, ==, height);
        int fd = g_unix_fd_list_get(fds, index, &error);
        g_assert_no_error(error);
        const guint8 *frame = mmap(NULL, (size_t) stride * height, PROT_READ, MAP_SHARED, fd, 0);
        g_assert_true(frame != MAP_FAILED);
        for (guint32 y = 0; y < height; y++)
                for (guint32 x = 0; x < width; x++) {
                        guint32 v;
                        memcpy(&v, frame + (size_t) y * stride + (size_t) x * 4, 4);
                        /* PNG has no X byte; libpng reads it back opaque. */
                        g_assert_cmphex(png[(size_t) y * width + x], ==, (v & 0xffffffu) | 0xff000000u);
                }
        munmap((void *) frame, (size_t) stride * height);
        close(fd);

        g_assert_cmpint(ctl(f, &json, "--json", "screenshot", "alpha", file, NULL), ==, 0);
        assert_json_lines(json);
        g_assert_nonnull(strstr(json, "\"width\":640,\"height\":480}\n"));
        g_unlink(file);
}

/* What fails leaves no file behind; "-" is standard output. */
static void test_screenshot_files(Fixture *f, gconstpointer data) {
        const char *dir = f->dir;
        g_autofree char *file = g_build_filename(dir, "alpha.png", NULL);
        g_autofree char *bad = g_build_filename(dir, "no", "such", "dir.png", NULL);
        g_autofree char *err = NULL, *err2 = NULL, *err3 = NULL;

        /* A failure leaves an older file as it was, and no new one. */
        g_autofree char *fresh = g_build_filename(dir, "fresh.png", NULL);
        g_autofree char *err4 = NULL, *kept = NULL;
        g_assert_true(g_file_set_contents(file, "keep", -1, NULL));
        g_assert_cmpint(ctl_err(f, NULL, &err, "screenshot", "nosuch", file, NULL), ==, 1);
        g_assert_nonnull(strstr(err, "No endpoint named 'nosuch'."));
        g_assert_true(g_file_get_contents(file, &kept, NULL, NULL));
        g_assert_cmpstr(kept, ==, "keep");
        g_assert_cmpint(ctl_err(f, NULL, &err4, "screenshot", "nosuch", fresh, NULL), ==, 1);
        g_assert_false(g_file_test(fresh, G_FILE_TEST_EXISTS));

        /* A file that cannot be written fails before vmsigd is asked for
         * the screen (and so before any password). */
        g_autofree char *log_before = vt_daemon_log(f->daemon);
        g_assert_cmpint(ctl_err(f, NULL, &err2, "screenshot", "alpha", bad, NULL), ==, 1);
        g_assert_nonnull(strstr(err2, "Failed to create"));
        g_autofree char *log_after = vt_daemon_log(f->daemon);
        g_assert_cmpuint(count(log_after, "action=org.vmsig.frames"), ==, count(log_before, "action=org.vmsig.frames"));
        g_assert_cmpint(ctl_err(f, NULL, &err3, "screenshot", "alpha", NULL), !=, 0);

        /* "-": the PNG on standard output, what was saved on standard error. */
        g_autofree char *png_out = NULL, *err5 = NULL;
        g_assert_cmpint(ctl_err(f, &png_out, &err5, "screenshot", "alpha", "-", NULL), ==, 0);
        g_assert_cmpmem(png_out, 8, "\x89PNG\r\n\x1a\n", 8);
        g_assert_true(g_str_has_prefix(err5, "Saved frame "));
        g_assert_true(g_str_has_suffix(err5, " of 'alpha' (640x480) to standard output\n"));
        g_autofree char *log_end = vt_daemon_log(f->daemon);
        g_assert_cmpuint(count(log_end, "action=org.vmsig.frames"), >, count(log_after, "action=org.vmsig.frames"));
        g_unlink(file);
}
#endif

/* No polkitd on this bus, as when it is down. Reading is public: nobody's
 * list and status work. Each verb that acts is refused naming the action it
 * needs, never the look-up of the endpoint it starts with; nothing changes
 * and each refusal is one record, reading leaves none. */
static void test_nobody_without_polkit(Fixture *f, gconstpointer data) {
        static const struct {
                const char *args[6];
                const char *action;
        } verbs[] = {
                { { "pause", "alpha" }, "org.vmsig.lease-power" },
                { { "resume", "alpha" }, "org.vmsig.lease-power" },
                { { "reset", "alpha" }, "org.vmsig.lease-power" },
                { { "poweroff", "alpha" }, "org.vmsig.lease-power" },
                { { "kill", "alpha" }, "org.vmsig.lease-power" },
                { { "lease", "alpha", "input" }, "org.vmsig.lease-input" },
                { { "input", "alpha", "key", "a" }, "org.vmsig.lease-input" },
                { { "memwrite", "alpha", "0x1000", "ee" }, "org.vmsig.lease-memwrite" },
                { { "dump-memctx", "alpha" }, "org.vmsig.memctx" },
                { { "monitor", "--memctx", "alpha" }, "org.vmsig.memctx" },
#ifdef VMSIG_HAVE_VGPU
                { { "screenshot", "alpha", "-" }, "org.vmsig.frames" },
#endif
                { { "reload" }, "org.vmsig.admin" },
                { { "detach", "alpha" }, "org.vmsig.admin" },
        };
        static const char *const list[] = { "list", NULL }, *const status[] = { "status", "alpha", "beta", NULL };
        g_autofree char *listed = NULL, *shown = NULL;

        g_assert_cmpint(vt_bus_run_as_nobody(f->bus, &listed, NULL, "vmsigctl", list), ==, 0);
        g_assert_nonnull(strstr(listed, "alpha"));
        g_assert_cmpint(vt_bus_run_as_nobody(f->bus, &shown, NULL, "vmsigctl", status), ==, 0);
        g_assert_nonnull(strstr(shown, "          Endpoint: alpha\n"));
        g_assert_nonnull(strstr(shown, "          Endpoint: beta\n"));
        g_assert_cmpuint(vt_daemon_log_count(f->daemon, "uid=65534 "), ==, 0);

        for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++) {
                g_autofree char *out = NULL, *err = NULL;
                g_autofree char *want = g_strdup_printf("polkit is not available to authorize %s.", verbs[i].action);

                g_test_message("nobody: vmsigctl %s", verbs[i].args[0]);
                g_assert_cmpint(vt_bus_run_as_nobody(f->bus, &out, &err, "vmsigctl", verbs[i].args), ==, 1);
                g_assert_nonnull(strstr(err, want));
                g_assert_null(strstr(err, "org.vmsig.roster"));
        }
        g_autofree char *state = prop(f, ALPHA, "State");
        g_assert_cmpstr(state, ==, "running");
        g_assert_cmpuint(vt_get_uint(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "EndpointCount"), ==, 2);
        g_assert_cmpuint(vt_daemon_log_count(f->daemon, "uid=65534 "), ==, G_N_ELEMENTS(verbs));
        g_assert_cmpuint(vt_daemon_log_count(f->daemon, "result=denied reason=no-polkit"), ==, G_N_ELEMENTS(verbs));
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/vmsigctl/json-checker", test_json_checker);
#define ADD(name, fn) g_test_add("/vmsigctl/" name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        ADD("usage", test_usage);
        ADD("list", test_list);
        ADD("status", test_status);
        ADD("lifecycle", test_lifecycle);
        ADD("keep-lease", test_keep_lease);
        ADD("lease-busy", test_lease_busy);
        ADD("lease-revoked", test_lease_revoked);
        ADD("memwrite", test_memwrite);
        ADD("memwrite-virtual-pause", test_memwrite_virtual_pause);
        ADD("input", test_input);
        ADD("monitor", test_monitor);
        ADD("monitor-json-filter", test_monitor_json_filter);
        ADD("monitor-memctx", test_monitor_memctx);
        ADD("dump-memctx", test_dump_memctx);
        ADD("json-modes", test_json_modes);
        ADD("monitor-json-pretty", test_monitor_json_pretty);
        ADD("quiet", test_quiet);
        ADD("pager", test_pager);
        ADD("pager-choice", test_pager_choice);
        ADD("pager-default", test_pager_default);
        ADD("pager-end", test_pager_end);
#ifdef VMSIG_HAVE_VGPU
        ADD("screenshot", test_screenshot);
        ADD("screenshot-files", test_screenshot_files);
#endif
        ADD("address", test_address);
        ADD("root-uses-private-socket", test_root_uses_private_socket);
        ADD("reload-detach", test_reload_detach);
        ADD("private-socket", test_private_socket);
        ADD("nobody-without-polkit", test_nobody_without_polkit);
        return g_test_run();
}
