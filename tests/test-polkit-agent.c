/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What an administrator meets: vmsigctl run by an unprivileged user on a
 * terminal, its own pkttyagent asking for an administrator's password, a
 * real polkitd deciding. The terminal is a pty the test reads and types
 * into; the administrator is a user the test creates, with a password it
 * sets, in copies of /etc/passwd, /etc/shadow and /etc/group bind-mounted
 * in a mount namespace of this test's own (polkitd and the agent's PAM
 * helper see them; the machine's files are never touched). This machine has
 * no logind, so every caller here is one without a login session. */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "client.h"
#include "harness.h"
#include "polkit-harness.h"
#include "pty-harness.h"

#define ALPHA "/org/vmsig/endpoint/alpha"
#define CONFIG                                               \
        "<vmsigd><audit target=\"stderr\"/>"                 \
        "<stub-vm name=\"alpha\" ram-size=\"1M\"/></vmsigd>"
#define ADMIN "vmsigadm"
#define ADMIN_UID 4242
#define PASSWORD "vmsig-test-password"
#define NOBODY 65534
/* A member of the group vmsig, which the example rules trust. */
#define OPERATOR "vmsigop"
#define OPERATOR_UID 4243
#define VMSIG_GID 4244
#define SYSTEM_BUS_DIR "/run/dbus"
#define SYSTEM_BUS_SOCKET SYSTEM_BUS_DIR "/system_bus_socket"
#define ADMIN_RULES                                                           \
        "polkit.addAdminRule(function(action, subject) {\n"                   \
        "        return [\"unix-user:" ADMIN "\"];\n"                           \
        "});\n"

typedef struct {
        VtBus *bus;
        VtPolkit *polkit;
        VtDaemon *daemon;
        GDBusConnection *conn;
} Fixture;

/* --- the administrator, in this test's own /etc --------------------------- */

static void bind_copy_with(const char *dir, const char *file, const char *extra) {
        g_autofree char *src = g_build_filename("/etc", file, NULL);
        g_autofree char *dst = g_build_filename(dir, file, NULL);
        g_autofree char *text = NULL;
        g_autoptr(GError) error = NULL;
        struct stat st;

        g_assert_cmpint(stat(src, &st), ==, 0);
        g_assert_true(g_file_get_contents(src, &text, NULL, &error));
        g_autofree char *all = g_strconcat(text, extra, NULL);
        g_assert_true(g_file_set_contents(dst, all, -1, &error));
        /* /etc/shadow stays root:shadow 0640, as unix_chkpwd expects. */
        g_assert_cmpint(chown(dst, st.st_uid, st.st_gid), ==, 0);
        g_assert_cmpint(chmod(dst, st.st_mode & 07777), ==, 0);
        g_assert_cmpint(mount(dst, src, "none", MS_BIND, NULL), ==, 0);
}

/* Before any thread exists: unshare(CLONE_NEWNS) refuses a process that
 * shares its filesystem information with other threads. */
static void add_admin_user(void) {
        g_autofree char *dir = g_dir_make_tmp("vmsig-etc-XXXXXX", NULL);
        const char *hash = crypt(PASSWORD, "$6$vmsigtestsalt$");

        g_assert_nonnull(dir);
        g_assert_nonnull(hash);
        if (unshare(CLONE_NEWNS) < 0)
                g_error("unshare(CLONE_NEWNS): %s", g_strerror(errno));
        g_assert_cmpint(mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL), ==, 0);
        g_autofree char *passwd = g_strdup_printf(ADMIN ":x:%d:%d:vmsig test administrator:/nonexistent:/bin/sh\n"
                                                  OPERATOR ":x:%d:%d:vmsig test operator:/nonexistent:/bin/sh\n",
                                                  ADMIN_UID, ADMIN_UID, OPERATOR_UID, OPERATOR_UID);
        g_autofree char *shadow = g_strdup_printf(ADMIN ":%s:19000:0:99999:7:::\n" OPERATOR ":!:19000:0:99999:7:::\n",
                                                  hash);
        /* The package's sysusers.d creates "vmsig" on a real host; a test
         * must not, so it is only in this namespace's copy. */
        g_autofree char *group = g_strdup_printf(ADMIN ":x:%d:\n" OPERATOR ":x:%d:\nvmsig:x:%d:" OPERATOR "\n",
                                                 ADMIN_UID, OPERATOR_UID, VMSIG_GID);
        bind_copy_with(dir, "passwd", passwd);
        bind_copy_with(dir, "shadow", shadow);
        bind_copy_with(dir, "group", group);
        /* The agent's helper is setuid root, and GLib ignores
         * $DBUS_SYSTEM_BUS_ADDRESS in a setuid program: it finds the test's
         * bus only at the system bus's usual place, which each test binds
         * its bus to (fixture_setup). */
        g_assert_cmpint(g_mkdir_with_parents(SYSTEM_BUS_DIR, 0755), ==, 0);
        g_assert_cmpint(mount("tmpfs", SYSTEM_BUS_DIR, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"), ==, 0);
        g_assert_true(g_file_set_contents(SYSTEM_BUS_SOCKET, "", 0, NULL));
}

static void bind_system_bus(VtBus *bus) {
        g_autofree char *socket = g_build_filename(vt_bus_dir(bus), "bus", NULL);

        (void) umount2(SYSTEM_BUS_SOCKET, MNT_DETACH);
        g_assert_cmpint(mount(socket, SYSTEM_BUS_SOCKET, "none", MS_BIND, NULL), ==, 0);
}

/* --- vmsigctl on a terminal ------------------------------------------------- */

/* vmsigctl as uid, on a new pty that becomes its controlling terminal (and
 * its agent's). extra_env: NULL or "NAME=VALUE". */
typedef struct {
        VtPty *pty;
        guint prompts;
} Terminal;

static Terminal *terminal_start_as(Fixture *f, uid_t uid, const char *extra_env, const char *const *args) {
        g_autofree char *ctl = vt_bus_reachable(f->bus, "vmsigctl");
        g_autofree char *address = g_strdup_printf("DBUS_SYSTEM_BUS_ADDRESS=%s", vt_bus_address(f->bus));
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        const char *envp[] = { address, "PATH=/usr/bin:/bin", "LANG=C", extra_env, NULL };
        Terminal *t = g_new0(Terminal, 1);

        g_ptr_array_add(argv, ctl);
        for (const char *const *a = args; *a; a++)
                g_ptr_array_add(argv, (char *) *a);
        g_ptr_array_add(argv, NULL);
        t->pty = vt_pty_spawn_as(uid, (const char *const *) argv->pdata, envp);
        return t;
}

static Terminal *terminal_start(Fixture *f, const char *extra_env, const char *const *args) {
        return terminal_start_as(f, NOBODY, extra_env, args);
}

/* The agent prints the prompt, then turns echo off, flushing what was typed
 * before (TCSAFLUSH): a password typed in between would be lost, and the
 * agent would wait for ever. So type only once echo is off, as a human
 * (slower than a pty) always does. */
static void wait_echo_off(VtPty *t) {
        gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        struct termios tio;

        while (g_get_monotonic_time() < deadline) {
                g_assert_cmpint(tcgetattr(t->master, &tio), ==, 0);
                if (!(tio.c_lflag & ECHO))
                        return;
                g_usleep(5000);
        }
        g_error("the agent never turned echo off:\n%s", t->out->str);
}

/* Types the password at each prompt, after answer_delay_ms, until vmsigctl
 * exits; counts the prompts. */
static int terminal_run(Terminal *t, const char *password, guint answer_delay_ms) {
        gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
        gsize answered_at = 0;
        int status;

        while (g_get_monotonic_time() < deadline) {
                gboolean got = vt_pty_read(t->pty, 100);
                const char *prompt = strstr(t->pty->out->str + answered_at, "Password: ");

                if (prompt) {
                        t->prompts++;
                        answered_at = (gsize) (prompt - t->pty->out->str) + strlen("Password: ");
                        wait_echo_off(t->pty);
                        g_usleep((gulong) answer_delay_ms * 1000);
                        g_assert_cmpint(write(t->pty->master, password, strlen(password)), ==, (gssize) strlen(password));
                        g_assert_cmpint(write(t->pty->master, "\n", 1), ==, 1);
                        continue;
                }
                if (!got && waitpid(t->pty->pid, &status, WNOHANG) == t->pty->pid) {
                        while (vt_pty_read(t->pty, 50))
                                ;
                        g_test_message("terminal:\n%s", t->pty->out->str);
                        t->pty->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                        return t->pty->status;
                }
        }
        g_test_message("terminal so far:\n%s", t->pty->out->str);
        g_error("vmsigctl did not finish within 60 s");
}

static void terminal_free(Terminal *t) {
        vt_pty_free(t->pty);
        g_free(t);
}

/* One command on a terminal, the password typed at each prompt after
 * delay_ms: its exit status and number of prompts as expected, and the
 * VM's state after it, if want_state. Returns what the terminal showed. */
static char *run_command(Fixture *f, uid_t uid, const char *env, const char *const *args, const char *password,
                         guint delay_ms, int want_exit, guint want_prompts, const char *want_state) {
        Terminal *t = terminal_start_as(f, uid, env, args);
        char *shown;

        g_assert_cmpint(terminal_run(t, password, delay_ms), ==, want_exit);
        g_assert_cmpuint(t->prompts, ==, want_prompts);
        if (want_state) {
                g_autofree char *s = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "State");
                g_assert_cmpstr(s, ==, want_state);
        }
        shown = g_strdup(t->pty->out->str);
        terminal_free(t);
        return shown;
}

/* --- fixture ------------------------------------------------------------------ */

static void fixture_setup(Fixture *f, gconstpointer data) {
        f->bus = vt_bus_start();
        bind_system_bus(f->bus);
        f->polkit = vt_polkit_start(f->bus);
        if (!f->polkit)
                return;
        vt_polkit_set_rules(f->polkit, ADMIN_RULES);
        f->daemon = vt_daemon_start(f->bus, CONFIG);
        f->conn = vt_bus_connect(f->bus);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        g_clear_object(&f->conn);
        if (f->daemon)
                g_assert_cmpint(vt_daemon_stop(f->daemon), ==, 0);
        vt_polkit_stop(f->polkit);
        vt_bus_stop(f->bus);
}

static char *state(Fixture *f) {
        return vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "State");
}

/* --- tests ---------------------------------------------------------------------- */

/* One command, one password: pause takes the power lease and then pauses,
 * two polkit actions, and polkit asks once (org.vmsig.lease-power implies
 * org.vmsig.lifecycle). The prompt names the VM. Without a login session
 * the agent is the caller's own, not a fallback nobody would ask. */
static void test_one_password_per_command(Fixture *f, gconstpointer data) {
        static const char *const pause[] = { "pause", "alpha", NULL };
        static const char *const resume[] = { "resume", "alpha", NULL };

        if (!f->polkit)
                return;
        g_autofree char *shown = run_command(f, NOBODY, NULL, pause, PASSWORD, 0, 0, 1, "paused");
        g_assert_nonnull(strstr(shown, "the power state of the virtual machine alpha."));
        g_assert_nonnull(strstr(shown, "AUTHENTICATION COMPLETE"));
        /* A new command is a new process: polkit keeps nothing for it. */
        g_free(run_command(f, NOBODY, NULL, resume, PASSWORD, 0, 0, 1, "running"));
}

/* A wrong password: polkit asks again (pkttyagent's own retries), and when
 * it gives up the command fails and changes nothing. */
static void test_wrong_password(Fixture *f, gconstpointer data) {
        static const char *const pause[] = { "pause", "alpha", NULL };

        if (!f->polkit)
                return;
        Terminal *t = terminal_start(f, NULL, pause);
        g_assert_cmpint(terminal_run(t, "not-the-password", 0), ==, 1);
        g_assert_cmpuint(t->prompts, >=, 1);
        terminal_free(t);
        g_autofree char *still = state(f);
        g_assert_cmpstr(still, ==, "running");
}

/* The human takes longer than the call's default time-out (sd-bus's, made
 * 2 s here through $SYSTEMD_BUS_TIMEOUT instead of 25 s, to keep the test
 * short): vmsigctl still waits, as vmsigd does. */
static void test_slow_typist(Fixture *f, gconstpointer data) {
        static const char *const pause[] = { "pause", "alpha", NULL };

        if (f->polkit)
                g_free(run_command(f, NOBODY, "SYSTEMD_BUS_TIMEOUT=2", pause, PASSWORD, 4000, 0, 1, "paused"));
}

/* A call that lets polkit ask, from a caller no agent speaks for (the test
 * client starts none): refused, and the error says that nobody could ask. */
static void test_no_agent_says_so(Fixture *f, gconstpointer data) {
        g_autofree char *address = g_strdup_printf("DBUS_SYSTEM_BUS_ADDRESS=%s", vt_bus_address(f->bus));
        g_autofree char *client = vt_bus_reachable(f->bus, "tests/vmsig-test-client");
        const char *argv[] = { client, "--interactive", ALPHA, VT_ENDPOINT_IFACE, "AcquireLease",
                               "('power', @a{sv} {})", NULL };
        const char *envp[] = { address, "PATH=/usr/bin:/bin", "LANG=C", NULL };

        if (!f->polkit)
                return;
        VtPty *t = vt_pty_spawn_as(NOBODY, argv, envp);
        g_assert_cmpint(vt_pty_wait(t, 30000), !=, 0);
        g_assert_nonnull(strstr(t->out->str, "org.vmsig.lease-power needs authentication, and no polkit agent was "
                                             "there to ask for it"));
        g_autofree char *holder = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "PowerLeaseHolder");
        g_assert_cmpstr(holder, ==, "");
        vt_pty_free(t);
}

/* A part of the command that is refused fails the command: monitor
 * --memctx without the memctx grant exits 1 rather than monitoring without
 * memctx events. */
static void test_denied_part_fails(Fixture *f, gconstpointer data) {
        static const char *const monitor[] = { "--no-ask-password", "monitor", "--memctx", NULL };

        if (!f->polkit)
                return;
        Terminal *t = terminal_start(f, NULL, monitor);
        g_assert_cmpint(terminal_run(t, PASSWORD, 0), ==, 1);
        g_assert_cmpuint(t->prompts, ==, 0);
        g_assert_nonnull(strstr(t->pty->out->str, "Failed to subscribe to the memory context of 'alpha': "));
        g_assert_null(strstr(t->pty->out->str, "Monitoring"));
        terminal_free(t);
}

/* The example rules (polkit/50-vmsig.rules, as shipped) let a member of
 * the group vmsig do every non-administrative thing without a password,
 * seeing the screen included; administration still asks. */
static void test_example_rules(Fixture *f, gconstpointer data) {
        static const char *const pause[] = { "pause", "alpha", NULL };
        static const char *const reload[] = { "reload", NULL };
        g_autofree char *rules_file = g_build_filename(g_getenv("VMSIG_SRCDIR"), "polkit", "50-vmsig.rules", NULL);
        g_autofree char *rules = NULL;
        g_autofree char *dir = g_dir_make_tmp("vmsig-shot-XXXXXX", NULL);
        g_autofree char *png = g_build_filename(dir, "alpha.png", NULL);

        if (!f->polkit)
                return;
        g_assert_true(g_file_get_contents(rules_file, &rules, NULL, NULL));
        g_autofree char *all = g_strconcat(rules, ADMIN_RULES, NULL);
        vt_polkit_set_rules(f->polkit, all);
        g_assert_cmpint(chmod(dir, 0777), ==, 0);

        g_free(run_command(f, OPERATOR_UID, NULL, pause, PASSWORD, 0, 0, 0, "paused"));
#ifdef VMSIG_HAVE_VGPU
        const char *const shot[] = { "screenshot", "alpha", png, NULL };
        g_free(run_command(f, OPERATOR_UID, NULL, shot, PASSWORD, 0, 0, 0, NULL));
        g_assert_true(g_file_test(png, G_FILE_TEST_IS_REGULAR));
        g_unlink(png);
#endif
        g_free(run_command(f, OPERATOR_UID, NULL, reload, PASSWORD, 0, 0, 1, NULL));
        g_rmdir(dir);
}

int main(int argc, char *argv[]) {
        if (geteuid() != 0) {
                g_printerr("test-polkit-agent needs root (a mount namespace, users of its own).\n");
                return g_strcmp0(g_getenv("CI"), "true") == 0 ? 1 : 77;
        }
        add_admin_user();
        g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add("/polkit-agent/" name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        ADD("one-password-per-command", test_one_password_per_command);
        ADD("wrong-password", test_wrong_password);
        ADD("slow-typist", test_slow_typist);
        ADD("example-rules", test_example_rules);
        ADD("denied-part-fails", test_denied_part_fails);
        ADD("no-agent-says-so", test_no_agent_says_so);
        return g_test_run();
}
