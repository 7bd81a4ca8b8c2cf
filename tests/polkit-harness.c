/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "polkit-harness.h"
#include "vt-util.h"

#define POLKITD "/usr/lib/polkit-1/polkitd"
#define ACTIONS_DIR "/usr/share/polkit-1/actions"
#define RULES_DIR "/etc/polkit-1/rules.d"
#define TIMEOUT_US (20 * G_USEC_PER_SEC)

struct VtPolkit {
        VtBus *bus;
        GPid pid;
        char *log_path;
        char *actions_dir; /* this polkitd's view of ACTIONS_DIR */
        char *rules_dir;   /* and of RULES_DIR */
        char *rules_path;
};

static char *read_log(VtPolkit *p) {
        char *text = NULL;

        if (!g_file_get_contents(p->log_path, &text, NULL, NULL))
                return g_strdup("");
        return text;
}

static guint count_occurrences(const char *haystack, const char *needle) {
        guint n = 0;

        for (const char *s = haystack; (s = strstr(s, needle)); s += strlen(needle))
                n++;
        return n;
}

static guint rules_loads(VtPolkit *p) {
        g_autofree char *log = read_log(p);
        return count_occurrences(log, "Finished loading, compiling and executing");
}

static void copy_file(const char *src, const char *dst) {
        g_autofree char *text = NULL;
        gsize len = 0;
        g_autoptr(GError) error = NULL;

        if (!g_file_get_contents(src, &text, &len, &error) || !g_file_set_contents(dst, text, (gssize) len, &error))
                g_error("Cannot copy %s to %s: %s", src, dst, error->message);
}

/* The system's actions and ours, in a directory of this test's own: no
 * other test (nor the installed package) shares it, so none can pull it
 * from under another. */
static void make_actions_dir(VtPolkit *p) {
        g_autofree char *ours = g_build_filename(g_getenv("VMSIG_SRCDIR"), "polkit", "org.vmsig.policy", NULL);
        g_autofree char *dst = g_build_filename(p->actions_dir, "org.vmsig.policy", NULL);
        g_autoptr(GDir) dir = g_dir_open(ACTIONS_DIR, 0, NULL);
        const char *name;

        g_assert_cmpint(g_mkdir_with_parents(p->actions_dir, 0755), ==, 0);
        g_assert_cmpint(g_mkdir_with_parents(p->rules_dir, 0755), ==, 0);
        while (dir && (name = g_dir_read_name(dir))) {
                g_autofree char *src = g_build_filename(ACTIONS_DIR, name, NULL);
                g_autofree char *copy = g_build_filename(p->actions_dir, name, NULL);
                if (g_file_test(src, G_FILE_TEST_IS_REGULAR))
                        copy_file(src, copy);
        }
        copy_file(ours, dst);
}

static gboolean actions_registered(GDBusConnection *c) {
        g_autoptr(GVariant) reply = NULL;
        g_autoptr(GVariantIter) it = NULL;
        const char *id;
        gboolean found = FALSE;

        reply = g_dbus_connection_call_sync(c, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
                                            "org.freedesktop.PolicyKit1.Authority", "EnumerateActions",
                                            g_variant_new("(s)", ""), NULL, G_DBUS_CALL_FLAGS_NONE, 2000, NULL, NULL);
        if (!reply)
                return FALSE;
        g_variant_get(reply, "(a(ssssssuuua{ss}))", &it);
        while (!found && g_variant_iter_next(it, "(&s&s&s&s&s&suuu@a{ss})", &id, NULL, NULL, NULL, NULL, NULL, NULL,
                                             NULL, NULL, NULL))
                found = g_str_equal(id, "org.vmsig.admin");
        return found;
}

static void wait_for_actions(VtPolkit *p) {
        GDBusConnection *c = vt_bus_connect(p->bus);
        gint64 deadline = g_get_monotonic_time() + TIMEOUT_US;

        while (!actions_registered(c)) {
                if (g_get_monotonic_time() > deadline) {
                        g_autofree char *log = read_log(p);
                        g_error("polkitd did not register org.vmsig actions; its log:\n%s", log);
                }
                g_usleep(20000);
        }
        g_object_unref(c);
}

/* polkitd reads fixed directories; in a mount namespace of its own they
 * are this test's (bind mounts), so tests running side by side each have
 * their own actions and rules. polkitd runs as the process spawned: unshare
 * and sh exec into it. */
static void spawn_polkitd(VtPolkit *p) {
        const char *argv[] = { "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                               "mount --bind \"$1\" " ACTIONS_DIR " && mount --bind \"$2\" " RULES_DIR
                               " && exec \"$3\"",
                               "sh", p->actions_dir, p->rules_dir, POLKITD, NULL };
        g_autoptr(GError) error = NULL;
        int fd = open(p->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        g_assert_cmpint(fd, >=, 0);
        if (!g_spawn_async_with_pipes_and_fds(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH,
                                              vt_child_setup, GINT_TO_POINTER(getpid()), -1, fd, fd, NULL, NULL, 0,
                                              &p->pid, NULL, NULL, NULL, &error))
                g_error("Cannot start %s: %s", POLKITD, error->message);
        close(fd);
}

VtPolkit *vt_polkit_start(VtBus *bus) {
        VtPolkit *p;

        if (!g_file_test(POLKITD, G_FILE_TEST_IS_EXECUTABLE)) {
                if (g_strcmp0(g_getenv("CI"), "true") == 0)
                        g_error(POLKITD " is missing; CI must not skip the polkit tests");
                g_test_skip(POLKITD " is not installed (apt-get install polkitd)");
                return NULL;
        }
        p = g_new0(VtPolkit, 1);
        p->bus = bus;
        p->log_path = g_build_filename(vt_bus_dir(bus), "polkitd.log", NULL);
        p->actions_dir = g_build_filename(vt_bus_dir(bus), "polkit", "actions", NULL);
        p->rules_dir = g_build_filename(vt_bus_dir(bus), "polkit", "rules.d", NULL);
        p->rules_path = g_build_filename(p->rules_dir, "10-vmsig-test.rules", NULL);
        make_actions_dir(p);
        spawn_polkitd(p);
        wait_for_actions(p);
        return p;
}

void vt_polkit_set_rules(VtPolkit *p, const char *js) {
        guint before = rules_loads(p);
        gint64 deadline = g_get_monotonic_time() + TIMEOUT_US;
        g_autoptr(GError) error = NULL;

        if (js) {
                if (!g_file_set_contents(p->rules_path, js, -1, &error))
                        g_error("Cannot write %s: %s", p->rules_path, error->message);
        } else if (g_unlink(p->rules_path) < 0 && errno != ENOENT)
                g_error("Cannot remove %s: %s", p->rules_path, g_strerror(errno));
        /* polkitd reloads on inotify, logging each pass. */
        while (rules_loads(p) <= before) {
                if (g_get_monotonic_time() > deadline) {
                        g_autofree char *log = read_log(p);
                        g_error("polkitd did not reload its rules; its log:\n%s", log);
                }
                g_usleep(20000);
        }
}

void vt_polkit_allow(VtPolkit *p, const char *condition) {
        g_autofree char *js = g_strdup_printf("polkit.addRule(function(action, subject) {\n"
                                              "  if (%s)\n"
                                              "    return polkit.Result.YES;\n"
                                              "});\n",
                                              condition);

        vt_polkit_set_rules(p, js);
}

void vt_polkit_stop(VtPolkit *p) {
        int status;

        if (!p)
                return;
        kill(p->pid, SIGTERM);
        (void) waitpid(p->pid, &status, 0);
        g_spawn_close_pid(p->pid);
        VT_FREE_MANY(p->log_path, p->actions_dir, p->rules_dir, p->rules_path, p);
}
