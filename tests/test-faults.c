/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Faults (issue 8) with stub VMs, a real dbus-daemon and a real polkitd:
 *
 *  - clients killed with SIGKILL in the middle of a call (a lifecycle call,
 *    a pausing MemWrite and input, each waiting for a slow VM; a polkit
 *    check waiting for a stopped polkitd) while they hold a lease and a
 *    memctx subscription: vmsigd drops the call, ends the lease and the
 *    subscription, gives back every quota, and its fds return to their
 *    baseline; a write whose lease ended before it could land is not done;
 *  - a subscriber that never reads its socket, on the bus and on the private
 *    socket, while vmsigd emits a stream of signals: the calls of another
 *    client are timed against the same load without it, and vmsigd still
 *    exits promptly on SIGTERM with such a peer connected;
 *  - polkitd killed (with a check in flight) and started again: denials
 *    while it is gone, grants again afterwards, the same vmsigd throughout;
 *  - a private socket that cannot be created (read-only or full file
 *    system, missing directory, a file in the way): vmsigd exits with 1 and
 *    a log line that says which.
 *
 * Clients are vmsig-test-client subprocesses; when they made their call is
 * learnt from a bus monitor (BecomeMonitor), never from a sleep. */
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <gio/gunixfdlist.h>
#include <glib/gstdio.h>
#include <systemd/sd-bus.h>

#include "fixture.h"
#include "vt-util.h"

#define SLOW VT_ENDPOINT("slow")
#define FAST VT_ENDPOINT("fast")
#define ALPHA VT_ENDPOINT("alpha")
#define BETA VT_ENDPOINT("beta")
#define POLKITD "/usr/lib/polkit-1/polkitd"
#define POLKIT_NAME "org.freedesktop.PolicyKit1"
#define WAIT_MS 20000

/* Every quota at its least, for root and nobody alike: a call, a lease or
 * a subscription the fault left behind makes the next one fail. Two
 * subscriptions: the test's own view of the RAM and the client's. */
#define CONFIG_KILL                                                               \
        "<vmsigd><audit target=\"stderr\"/>"                                      \
        "<admission max-pending-calls=\"1\" max-leases=\"1\" max-subscriptions=\"2\"/>" \
        "<stub-vm name=\"slow\" ram-size=\"1M\" latency-ms=\"1000\"/>"            \
        "<stub-vm name=\"fast\" ram-size=\"1M\"/></vmsigd>"

/* --- helpers ------------------------------------------------------------------ */

static char *client_path(void) {
        return g_build_filename(g_getenv("VMSIG_BUILDDIR"), "tests", "vmsig-test-client", NULL);
}

/* Lines of the daemon's log holding a (and b, if given). */
static guint log_count(VtDaemon *d, const char *a, const char *b) {
        g_autofree char *log = vt_daemon_log(d);
        g_auto(GStrv) lines = g_strsplit(log, "\n", -1);
        guint n = 0;

        for (char **l = lines; *l; l++)
                if (strstr(*l, a) && (!b || strstr(*l, b)))
                        n++;
        return n;
}

typedef struct {
        VtDaemon *daemon;
        const char *a, *b;
        guint n;
} LogWait;

static gboolean log_reached(gpointer data) {
        LogWait *w = data;
        return log_count(w->daemon, w->a, w->b) >= w->n;
}

/* Until n lines hold a (and b). */
static void wait_log_count_ms(VtDaemon *d, const char *a, const char *b, guint n, guint ms) {
        LogWait w = { d, a, b, n };
        if (!vt_wait_for(log_reached, &w, ms)) {
                g_autofree char *log = vt_daemon_log(d);
                g_test_message("vmsigd log:\n%s", log);
                g_error("vmsigd did not log \"%s\" (%s) %u times in time", a, b ? b : "-", n);
        }
}

static void wait_log_count(VtDaemon *d, const char *a, const char *b, guint n) {
        wait_log_count_ms(d, a, b, n, WAIT_MS);
}

static void wait_log(VtDaemon *d, const char *a, const char *b) {
        wait_log_count(d, a, b, 1);
}

/* A round trip through vmsigd: everything it was sent before is handled. */
static void ping(GDBusConnection *c) {
        g_autoptr(GVariant) r = vt_call(c, VT_MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping", NULL);
}

static int spawn_client(const char *const *argv, GPid *ret_pid) {
        g_autoptr(GError) error = NULL;
        int out = -1;

        if (!g_spawn_async_with_pipes(NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH,
                                      vt_child_setup, GINT_TO_POINTER(getpid()), ret_pid, NULL, &out, NULL, &error))
                g_error("Cannot run %s: %s", argv[0], error->message);
        return out;
}

static char *read_all(int fd) {
        GString *s = g_string_new(NULL);
        char buf[512];
        ssize_t n;

        while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
                if (n > 0)
                        g_string_append_len(s, buf, n);
        close(fd);
        return g_string_free(s, FALSE);
}

/* SIGKILL; the client must still have been waiting for its reply. */
static void kill_9(GPid pid, int out) {
        int status;

        g_assert_cmpint(kill(pid, SIGKILL), ==, 0);
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_spawn_close_pid(pid);
        g_autofree char *said = read_all(out);
        g_test_message("client said before it died: %s", said);
        if (!WIFSIGNALED(status))
                g_error("the client exited (status 0x%x) before it was killed: its call was not in flight", status);
}

/* A bus monitor recording method calls (BecomeMonitor, root only). The
 * filter runs in GDBus's worker thread and consumes everything: a monitor
 * must never answer. */
typedef struct {
        GDBusConnection *conn;
        GMutex lock;
        GPtrArray *calls; /* "member path sender" */
} Monitor;

static GDBusMessage *monitor_filter(GDBusConnection *c, GDBusMessage *msg, gboolean incoming, gpointer data) {
        Monitor *m = data;
        GDBusMessageType type = g_dbus_message_get_message_type(msg);
        char *entry = NULL;

        /* Our own call's reply (to BecomeMonitor) goes on to GDBus. */
        if (!incoming || g_strcmp0(g_dbus_message_get_destination(msg), g_dbus_connection_get_unique_name(c)) == 0)
                return msg;
        if (type == G_DBUS_MESSAGE_TYPE_METHOD_CALL)
                entry = g_strdup_printf("%s %s %s", g_dbus_message_get_member(msg), g_dbus_message_get_path(msg),
                                        g_dbus_message_get_sender(msg));
        else if (type == G_DBUS_MESSAGE_TYPE_METHOD_RETURN || type == G_DBUS_MESSAGE_TYPE_ERROR)
                entry = g_strdup_printf("reply %s", g_dbus_message_get_destination(msg));
        if (entry) {
                g_mutex_lock(&m->lock);
                g_ptr_array_add(m->calls, entry);
                g_mutex_unlock(&m->lock);
        }
        g_object_unref(msg);
        return NULL;
}

/* Method calls to vmsigd and to polkit, and polkit's answers. */
static Monitor *monitor_new(VtBus *bus) {
        const char *rules[] = { "type='method_call',destination='org.vmsig'",
                                "type='method_call',interface='org.freedesktop.PolicyKit1.Authority'",
                                "type='method_return',sender='org.freedesktop.PolicyKit1'",
                                "type='error',sender='org.freedesktop.PolicyKit1'", NULL };
        Monitor *m = g_new0(Monitor, 1);
        g_autoptr(GError) error = NULL;

        g_mutex_init(&m->lock);
        m->calls = g_ptr_array_new_with_free_func(g_free);
        m->conn = vt_bus_connect(bus);
        g_dbus_connection_add_filter(m->conn, monitor_filter, m, NULL);
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(
                m->conn, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.Monitoring",
                "BecomeMonitor", g_variant_new("(^asu)", rules, 0u), NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
        g_assert_no_error(error);
        return m;
}

static void monitor_free(Monitor *m) {
        g_dbus_connection_close_sync(m->conn, NULL, NULL);
        g_object_unref(m->conn);
        g_ptr_array_unref(m->calls);
        g_mutex_clear(&m->lock);
        g_free(m);
}

static guint monitor_count(Monitor *m, const char *prefix) {
        guint n = 0;

        g_mutex_lock(&m->lock);
        for (guint i = 0; i < m->calls->len; i++)
                n += g_str_has_prefix(g_ptr_array_index(m->calls, i), prefix);
        g_mutex_unlock(&m->lock);
        return n;
}

typedef struct {
        Monitor *m;
        const char *prefix;
        guint n;
} MonitorWait;

static gboolean monitor_saw(gpointer data) {
        MonitorWait *w = data;
        return monitor_count(w->m, w->prefix) >= w->n;
}

/* Until n method calls starting with prefix went over the bus. */
static void monitor_wait(Monitor *m, const char *prefix, guint n) {
        MonitorWait w = { m, prefix, n };
        if (!vt_wait_for(monitor_saw, &w, WAIT_MS))
                g_error("no method call \"%s...\" went over the bus", prefix);
}

static int subscribe_fd(GDBusConnection *c, const char *path) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) reply = g_dbus_connection_call_with_unix_fd_list_sync(
                c, VT_NAME, path, VT_ENDPOINT_IFACE, "SubscribeMemctx", NULL, NULL, G_DBUS_CALL_FLAGS_NONE, WAIT_MS,
                NULL, &fds, NULL, &error);
        g_assert_no_error(error);
        int fd = g_unix_fd_list_get(fds, 0, &error);
        g_assert_no_error(error);
        return fd;
}

/* --- kill -9 in the middle of a call ------------------------------------------- */

typedef struct {
        VT_FIXTURE;
        Monitor *monitor;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data) {
        vt_fixture_setup(&f->vt, data ?: CONFIG_KILL, data ? VT_FIXTURE_POLKIT : 0);
        f->monitor = monitor_new(f->bus);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        monitor_free(f->monitor);
        vt_fixture_teardown(&f->vt);
}

typedef struct {
        const char *lease;  /* the class the client takes */
        const char *method; /* what it calls on SLOW, answered after 600 ms */
        const char *args;
        const char *holder; /* the lease's property */
        const char *audit;  /* how vmsigd audits the end of that call */
} MidCall;

static const MidCall mid_calls[] = {
        { "power", "Pause", NULL, "PowerLeaseHolder", "action=pause endpoint=slow result=ok" },
        /* The write waits for the guest to pause; its lease ends first. */
        { "memory-write", "MemWrite", "(uint64 4096, [byte 0xde, 0xad, 0xbe, 0xef], {'pause': <true>})",
          "MemoryWriteLeaseHolder", "action=memwrite endpoint=slow result=failed reason=ECANCELED" },
        /* Input waits for the VM; the input lease ends first. */
        { "input", "InjectInput", "([(uint32 0, uint32 30, 1), (0, 30, 0)],)", "InputLeaseHolder",
          "action=inject-input endpoint=slow result=failed reason=ECANCELED" },
};

static void wait_state(GDBusConnection *c, const char *path, const char *want) {
        if (!vt_endpoint_wait_property(c, path, "State", want, TRUE, WAIT_MS)) {
                g_autofree char *s = vt_get_string(c, path, VT_ENDPOINT_IFACE, "State");
                g_error("%s stayed %s instead of becoming %s", path, s, want);
        }
}

/* After a client was killed mid-call, with SLOW in state: every quota is
 * 1 and free again (a lease, a second subscription, a slow call), and the
 * peer that used them is gone (gone + 2 peers of SLOW left the bus). */
static void quotas_free_again(Fixture *f, const char *state, guint gone) {
        GDBusConnection *c = vt_bus_connect(f->bus);
        int lease = vt_acquire_lease(c, SLOW, "power", NULL);
        int sub = subscribe_fd(c, SLOW);
        g_autoptr(GVariant) r = vt_call(c, SLOW, VT_ENDPOINT_IFACE, g_str_equal(state, "paused") ? "Resume" : "Reset",
                                        NULL);

        close(sub);
        close(lease);
        g_dbus_connection_close_sync(c, NULL, NULL);
        g_object_unref(c);
        wait_log_count(f->daemon, "of 'slow' left the bus.", NULL, gone + 2);
        wait_state(f->conn, SLOW, "running");
        ping(f->conn);
}

/* The client subscribes to SLOW's memctx, takes a lease and makes a call
 * that SLOW answers only after 600 ms; it is killed while it waits. */
static void test_kill_9_mid_call(Fixture *f, gconstpointer data) {
        int view_fd = subscribe_fd(f->conn, SLOW);
        const guint8 *ram = mmap(NULL, 1 << 20, PROT_READ, MAP_SHARED, view_fd, 0);
        g_autofree char *client = client_path();
        GPid daemon = vt_daemon_pid(f->daemon);

        g_assert_true(ram != MAP_FAILED);
        ping(f->conn);
        guint baseline = vt_count_fds(daemon);
        g_test_message("vmsigd fds at the start: %u", baseline);

        for (size_t i = 0; i < G_N_ELEMENTS(mid_calls); i++) {
                const MidCall *mc = &mid_calls[i];
                g_autofree char *lease_arg = g_strdup_printf("--lease=%s", mc->lease);
                g_autofree char *called = g_strdup_printf("%s " SLOW " ", mc->method);
                const char *argv[] = { client, "--probe-memctx", lease_arg, SLOW, VT_ENDPOINT_IFACE, mc->method,
                                       mc->args, NULL };
                g_autofree guint8 *before = g_memdup2(ram, 1 << 20);
                guint gone = log_count(f->daemon, "of 'slow' left the bus.", NULL);
                GPid pid;
                int out = spawn_client(argv, &pid);
                g_autofree char *who = g_strdup_printf(" pid=%d sender=", (int) pid);

                g_test_message("kill -9 during %s", mc->method);
                monitor_wait(f->monitor, called, 1);
                /* vmsigd has read the call and passed it on to the VM. */
                ping(f->conn);
                kill_9(pid, out);
                /* Others are served while the dead client's call is still
                 * at the VM (quotas are full: no lease, no slow call). */
                g_autoptr(GVariant) list = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "ListEndpoints", NULL);
                g_autofree char *fast = vt_get_string(f->conn, FAST, VT_ENDPOINT_IFACE, "State");
                g_assert_cmpstr(fast, ==, "running");

                /* The lease and the subscription end ... */
                g_assert_true(vt_endpoint_wait_property(f->conn, SLOW, mc->holder, "", TRUE, WAIT_MS));
                wait_log(f->daemon, who, "action=release-lease endpoint=slow result=ok");
                wait_log_count(f->daemon, "of 'slow' left the bus.", NULL, gone + 1);
                /* ... and the call ends when the VM answers: the pause
                 * happened (it was at the VM already), the write and the
                 * input did not, for their leases had ended. */
                wait_log(f->daemon, who, mc->audit);
                g_assert_cmpmem(before, 1 << 20, ram, 1 << 20);
                const char *state = g_str_equal(mc->method, "Pause") ? "paused" : "running";
                wait_state(f->conn, SLOW, state);

                quotas_free_again(f, state, gone);
                guint now = vt_count_fds(daemon);
                g_test_message("vmsigd fds after kill -9 during %s: %u", mc->method, now);
                g_assert_cmpuint(now, ==, baseline);
        }
        g_assert_cmpuint(log_count(f->daemon, "action=memwrite endpoint=slow result=ok", NULL), ==, 0);
        g_assert_cmpuint(log_count(f->daemon, "action=inject-input endpoint=slow result=ok", NULL), ==, 0);
        munmap((void *) ram, 1 << 20);
        close(view_fd);
}

/* A stub VM's RAM is a memfd sealed against shrinking: not even root,
 * reopening the subscriber's fd through /proc for writing, can truncate it
 * under vmsigd's own mapping of it (which would be vmsigd's SIGBUS). */
static void test_stub_ram_cannot_shrink(Fixture *f, gconstpointer data) {
        int fd = subscribe_fd(f->conn, FAST);
        g_autofree char *proc = g_strdup_printf("/proc/self/fd/%d", fd);
        int rw = open(proc, O_RDWR | O_CLOEXEC);
        struct stat st;

        g_assert_cmpint(rw, >=, 0); /* root may reopen it ... */
        g_assert_cmpint(ftruncate(rw, 4096), ==, -1); /* ... but not shrink it */
        g_assert_cmpint(errno, ==, EPERM);
        g_assert_cmpint(fallocate(rw, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), ==, -1);
        g_assert_cmpint(fstat(fd, &st), ==, 0);
        g_assert_cmpint(st.st_size, ==, 1 << 20);
        close(rw);
        close(fd);
        g_autofree char *state = vt_get_string(f->conn, FAST, VT_ENDPOINT_IFACE, "State");
        g_assert_cmpstr(state, ==, "running");
}

/* --- polkit checks in flight; polkitd killed and started again ----------------- */

#define CONFIG_POLKIT                                                \
        "<vmsigd><audit target=\"stderr\"/>"                         \
        "<admission max-pending-calls=\"1\"/>"                        \
        "<stub-vm name=\"alpha\" ram-size=\"1M\"/></vmsigd>"
#define CHECK_CALL "CheckAuthorization /org/freedesktop/PolicyKit1/Authority "

static const char *const nobody_prefix[] = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups" };

/* SubscribeMemctx of alpha as nobody: polkit is asked every time (the grant
 * is not kept), and says yes once nobody_may_read_memory() has set its rule.
 * The subscription ends with the client. */
#define NOBODY_PROBE(client)                                                                                 \
        { nobody_prefix[0], nobody_prefix[1], nobody_prefix[2], nobody_prefix[3], client, ALPHA,           \
          VT_ENDPOINT_IFACE, "SubscribeMemctx", NULL }

static void nobody_may_read_memory(Fixture *f) {
        vt_polkit_allow(f->polkit, "action.id == \"org.vmsig.memctx\" && subject.user == \"nobody\"");
}

static GPid spawn_nobody_probe(int *out) {
        g_autofree char *client = client_path();
        const char *argv[] = NOBODY_PROBE(client);
        GPid pid;

        *out = spawn_client(argv, &pid);
        return pid;
}

static char *nobody_probe(Fixture *f) {
        g_autofree char *client = client_path();
        const char *argv[] = NOBODY_PROBE(client);
        char *out = NULL;

        (void) vt_bus_runv(f->bus, &out, argv);
        g_test_message("nobody's SubscribeMemctx: %s", out);
        return out;
}

/* Reading is public: nobody's GetEndpoint is answered whatever polkit and
 * nobody's quota are up to. */
static void nobody_reads(Fixture *f) {
        g_autofree char *client = client_path();
        g_autofree char *read = NULL;
        const char *get[] = { nobody_prefix[0], nobody_prefix[1], nobody_prefix[2], nobody_prefix[3], client,
                              VT_MANAGER_PATH, VT_MANAGER_IFACE, "GetEndpoint", "('alpha',)", NULL };

        g_assert_cmpint(vt_bus_runv(f->bus, &read, get), ==, 0);
        g_assert_true(g_str_has_prefix(read, "ok (objectpath '" ALPHA "',)"));
}

static gboolean nobody_allowed(gpointer data) {
        g_autofree char *out = nobody_probe(data);
        return g_str_has_prefix(out, "ok ");
}

static void root_still_served(Fixture *f) {
        int lease = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) p = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Pause", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Resume", NULL);
        g_autoptr(GVariant) l = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "ListEndpoints", NULL);
        close(lease);
}

/* A client killed while vmsigd waits for polkit (stopped) on its behalf:
 * the answer that comes later finds nobody to tell, the pending-call
 * quota (1) is given back, and the fds are back at their baseline. */
static void test_kill_9_polkit_pending(Fixture *f, gconstpointer data) {
        if (!f->polkit)
                return;
        guint32 polkitd = vt_name_owner_pid(f->conn, POLKIT_NAME);
        GPid daemon = vt_daemon_pid(f->daemon);
        int out;

        g_assert_cmpuint(polkitd, >, 0);
        nobody_may_read_memory(f);
        g_autofree char *first = nobody_probe(f);
        g_assert_true(g_str_has_prefix(first, "ok "));
        ping(f->conn);
        guint baseline = vt_count_fds(daemon);

        g_assert_cmpint(kill((pid_t) polkitd, SIGSTOP), ==, 0);
        guint asked = monitor_count(f->monitor, CHECK_CALL);
        GPid pid = spawn_nobody_probe(&out);
        g_autofree char *who = g_strdup_printf("uid=65534 pid=%d sender=", (int) pid);
        monitor_wait(f->monitor, CHECK_CALL, asked + 1);
        kill_9(pid, out);
        /* Root needs no polkit and is served while the check hangs. */
        root_still_served(f);
        guint answered = monitor_count(f->monitor, "reply ");
        g_assert_cmpint(kill((pid_t) polkitd, SIGCONT), ==, 0);
        /* polkitd answers about a caller that is gone; vmsigd has nobody
         * to tell, and the query's quota comes back: nobody's next call
         * would be refused with QuotaExceeded while it is held. */
        monitor_wait(f->monitor, "reply ", answered + 1);
        g_assert_true(vt_wait_for(nobody_allowed, f, WAIT_MS));
        g_assert_cmpuint(log_count(f->daemon, who, "result=granted"), ==, 0);
        ping(f->conn);
        g_assert_cmpuint(vt_count_fds(daemon), ==, baseline);
}

static void polkit_log_to(VtBus *bus, int *fd) {
        g_autofree char *path = g_build_filename(vt_bus_dir(bus), "polkitd-restarted.log", NULL);
        *fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        g_assert_cmpint(*fd, >=, 0);
}

static gboolean polkit_has_our_actions(gpointer data) {
        GDBusConnection *c = data;
        g_autoptr(GVariant) reply = g_dbus_connection_call_sync(
                c, POLKIT_NAME, "/org/freedesktop/PolicyKit1/Authority", "org.freedesktop.PolicyKit1.Authority",
                "EnumerateActions", g_variant_new("(s)", ""), NULL, G_DBUS_CALL_FLAGS_NONE, 2000, NULL, NULL);
        g_autofree char *text = reply ? g_variant_print(reply, FALSE) : NULL;

        return text && strstr(text, "'org.vmsig.admin'");
}

/* polkitd is SIGKILLed while a check waits for it: the caller is denied
 * at once (not after a timeout); while it is gone, everyone but root is
 * denied; a new polkitd is used as soon as it is on the bus, by the same
 * vmsigd. */
/* A new polkitd, started as the polkit harness starts one (in a mount
 * namespace of its own, on the test's actions and rules, which stay in the
 * bus's directory); its pid. */
static GPid polkitd_restart(Fixture *f) {
        g_autofree char *actions = g_build_filename(vt_bus_dir(f->bus), "polkit", "actions", NULL);
        g_autofree char *rules = g_build_filename(vt_bus_dir(f->bus), "polkit", "rules.d", NULL);
        const char *argv[] = { "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                               "mount --bind \"$1\" /usr/share/polkit-1/actions && "
                               "mount --bind \"$2\" /etc/polkit-1/rules.d && exec \"$3\"",
                               "sh", actions, rules, POLKITD, NULL };
        g_autoptr(GError) error = NULL;
        GPid restarted;
        int log_fd;

        g_assert_true(g_file_test(actions, G_FILE_TEST_IS_DIR));
        polkit_log_to(f->bus, &log_fd);
        if (!g_spawn_async_with_pipes_and_fds(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH,
                                              vt_child_setup, GINT_TO_POINTER(getpid()), -1, log_fd, log_fd, NULL,
                                              NULL, 0, &restarted, NULL, NULL, NULL, &error))
                g_error("Cannot start %s again: %s", POLKITD, error->message);
        close(log_fd);
        return restarted;
}

static void test_polkitd_killed_and_restarted(Fixture *f, gconstpointer data) {
        if (!f->polkit)
                return;
        guint32 polkitd = vt_name_owner_pid(f->conn, POLKIT_NAME);
        GPid daemon = vt_daemon_pid(f->daemon);
        int out;

        nobody_may_read_memory(f);
        g_autofree char *before = nobody_probe(f);
        g_assert_true(g_str_has_prefix(before, "ok "));

        /* In flight: stopped, asked, killed. */
        g_assert_cmpint(kill((pid_t) polkitd, SIGSTOP), ==, 0);
        guint asked = monitor_count(f->monitor, CHECK_CALL);
        GPid pid = spawn_nobody_probe(&out);
        monitor_wait(f->monitor, CHECK_CALL, asked + 1);
        /* nobody's one pending call (max-pending-calls 1) waits for the
         * stopped polkitd; reading takes neither. */
        nobody_reads(f);
        gint64 killed_at = g_get_monotonic_time();
        /* Not reaped here: it is the polkit harness's child. */
        g_assert_cmpint(kill((pid_t) polkitd, SIGKILL), ==, 0);
        int status;
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_spawn_close_pid(pid);
        gint64 took = g_get_monotonic_time() - killed_at;
        g_autofree char *in_flight = read_all(out);
        g_test_message("the caller waiting for the killed polkitd got, after %" G_GINT64_FORMAT " ms: %s",
                       took / 1000, in_flight);
        g_assert_true(g_str_has_prefix(in_flight, "error org.freedesktop.DBus.Error.AccessDenied "));
        g_assert_nonnull(strstr(in_flight, "polkit is not available"));
        /* Not a time-out (sd-bus's own, 25 s, would say "Connection timed
         * out"): vmsigd answered when the bus told it polkitd was gone. How
         * soon is the benchmarks' business. */

        /* Gone. */
        g_autofree char *gone = nobody_probe(f);
        g_assert_true(g_str_has_prefix(gone, "error org.freedesktop.DBus.Error.AccessDenied "));
        g_assert_nonnull(strstr(gone, "polkit is not available to authorize org.vmsig.memctx."));
        nobody_reads(f);
        g_assert_cmpuint(log_count(f->daemon, "uid=65534 ", "action=org.vmsig.memctx endpoint=alpha result=denied reason=no-polkit"),
                         >=, 2);
        root_still_served(f);

        /* Back. */
        GPid restarted = polkitd_restart(f);
        g_assert_true(vt_wait_for(polkit_has_our_actions, f->conn, WAIT_MS));
        g_autofree char *after = nobody_probe(f);
        g_assert_true(g_str_has_prefix(after, "ok "));
        g_assert_cmpuint(log_count(f->daemon, "uid=65534 ", "action=org.vmsig.memctx endpoint=alpha result=granted reason=polkit"),
                         >=, 2);
        /* The same vmsigd all along. */
        g_assert_cmpuint(vt_name_owner_pid(f->conn, VT_NAME), ==, (guint32) daemon);
        g_assert_cmpint(kill(restarted, SIGTERM), ==, 0);
        g_assert_cmpint(waitpid(restarted, &status, 0), ==, restarted);
        g_spawn_close_pid(restarted);
}

/* --- a subscriber that never reads ----------------------------------------------- */

#define CONFIG_STUCK                                                 \
        "<vmsigd><stub-vm name=\"alpha\" ram-size=\"1M\"/>"          \
        "<stub-vm name=\"beta\" ram-size=\"1M\"/></vmsigd>"
#define SAMPLES 600
/* The load's pace: rounds per second, each about ten signals. Below what
 * saturates two cores, so that the latency measured is not just the
 * scheduler's. */
#define LOAD_PERIOD_US 4000
/* Unread bytes after which a subscriber has clearly stopped reading. */
#define STUCK_BYTES (16 * 1024)

/* Load: another client takes alpha's power lease and resets alpha, at a
 * steady pace. Each round is about ten signals: lease and property changes
 * for everyone, a new memctx epoch (MemctxInvalidated, MemctxChanged) for
 * alpha's subscribers. */
typedef struct {
        VtBus *bus;
        GThread *thread;
        gint stop;
        gint rounds;
        gint mark; /* rounds at some point, for churn_moved() */
        gint flat_out; /* no pacing */
} Churn;

static gpointer churn_main(gpointer data) {
        Churn *c = data;
        GMainContext *ctx = g_main_context_new();
        GDBusConnection *conn;
        gint64 next = g_get_monotonic_time();

        g_main_context_push_thread_default(ctx);
        conn = vt_bus_connect(c->bus);
        while (!g_atomic_int_get(&c->stop)) {
                int lease = vt_acquire_lease(conn, ALPHA, "power", NULL);
                g_autoptr(GVariant) r = vt_call(conn, ALPHA, VT_ENDPOINT_IFACE, "Reset", NULL);
                close(lease); /* the reset revoked it already */
                g_atomic_int_inc(&c->rounds);
                next += LOAD_PERIOD_US;
                gint64 now = g_get_monotonic_time();
                if (next > now && !g_atomic_int_get(&c->flat_out))
                        g_usleep(next - now); /* pacing, not synchronization */
                else
                        next = now;
        }
        g_dbus_connection_close_sync(conn, NULL, NULL);
        g_object_unref(conn);
        g_main_context_pop_thread_default(ctx);
        g_main_context_unref(ctx);
        return NULL;
}

static gboolean churn_warm(gpointer data) {
        return g_atomic_int_get(&((Churn *) data)->rounds) >= 20;
}

/* More rounds of load since churn->mark. */
static gboolean churn_moved(gpointer data) {
        Churn *churn = data;

        return g_atomic_int_get(&churn->rounds) > churn->mark + 1;
}

typedef struct {
        const char *phase;
        gint64 p50, p99, max; /* us */
        double rounds_per_s;  /* of the load */
} Latency;

static int cmp_i64(gconstpointer a, gconstpointer b) {
        gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
        return x < y ? -1 : x > y;
}

/* SAMPLES reads of beta's State, each timed. */
static Latency measure(const char *phase, GDBusConnection *c, Churn *churn) {
        gint64 t[SAMPLES];
        gint rounds = churn ? g_atomic_int_get(&churn->rounds) : 0;
        gint64 start = g_get_monotonic_time();
        Latency l = { .phase = phase };

        for (guint i = 0; i < SAMPLES; i++) {
                gint64 t0 = g_get_monotonic_time();
                g_autofree char *state = vt_get_string(c, BETA, VT_ENDPOINT_IFACE, "State");
                t[i] = g_get_monotonic_time() - t0;
        }
        if (churn)
                l.rounds_per_s = (g_atomic_int_get(&churn->rounds) - rounds) * 1e6 / (g_get_monotonic_time() - start);
        qsort(t, SAMPLES, sizeof t[0], cmp_i64);
        l.p50 = t[SAMPLES / 2];
        l.p99 = t[(SAMPLES * 99 + 99) / 100 - 1];
        l.max = t[SAMPLES - 1];
        return l;
}

/* A subscriber (signals of org.vmsig on the bus, alpha's memctx) with a
 * thread that reads everything until told to stop; after that, nothing
 * reads its socket any more. */
typedef struct {
        sd_bus *bus;
        GThread *reader;
        gint stop;
} Subscriber;

static gpointer subscriber_read(gpointer data) {
        Subscriber *s = data;

        while (!g_atomic_int_get(&s->stop)) {
                int r = sd_bus_process(s->bus, NULL);
                g_assert_cmpint(r, >=, 0);
                if (r == 0)
                        (void) sd_bus_wait(s->bus, 20 * 1000);
        }
        return NULL;
}

static void subscriber_start(Subscriber *s, const char *address, gboolean on_bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;

        g_assert_cmpint(sd_bus_new(&s->bus), >=, 0);
        g_assert_cmpint(sd_bus_set_address(s->bus, address), >=, 0);
        g_assert_cmpint(sd_bus_set_bus_client(s->bus, on_bus), >=, 0);
        g_assert_cmpint(sd_bus_negotiate_fds(s->bus, 1), >=, 0);
        g_assert_cmpint(sd_bus_start(s->bus), >=, 0);
        if (on_bus)
                g_assert_cmpint(sd_bus_call_method(s->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                   "org.freedesktop.DBus", "AddMatch", &error, NULL, "s",
                                                   "type='signal',sender='org.vmsig'"),
                                >=, 0);
        g_assert_cmpint(sd_bus_call_method(s->bus, on_bus ? VT_NAME : NULL, ALPHA, VT_ENDPOINT_IFACE,
                                           "SubscribeMemctx", &error, &reply, NULL),
                        >=, 0);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        s->reader = g_thread_new("subscriber", subscriber_read, s);
}

static void subscriber_stop_reading(Subscriber *s) {
        g_atomic_int_set(&s->stop, 1);
        g_thread_join(s->reader);
        s->reader = NULL;
}

static int unread_bytes(sd_bus *b) {
        int n = 0;

        g_assert_cmpint(ioctl(sd_bus_get_fd(b), SIOCINQ, &n), ==, 0);
        return n;
}

typedef struct {
        sd_bus *b;
        int last;
        gboolean full;
} StuckWait;

/* More than a reader a little behind would leave unread and, if full, no
 * more gets in: the sender's socket buffer is exhausted. dbus-daemon's
 * fills fast; vmsigd's takes many MB (sd-bus raises it), so for the
 * private socket "stopped reading" is what is waited for. */
static gboolean is_stuck(gpointer data) {
        StuckWait *w = data;
        int n = unread_bytes(w->b), last = w->last;

        w->last = n;
        return n >= STUCK_BYTES && (!w->full || n == last);
}

static void wait_stuck(sd_bus *b, gboolean full) {
        StuckWait w = { b, -1, full };
        g_assert_true(vt_wait_for(is_stuck, &w, WAIT_MS));
}

static gboolean hung_up(gpointer data) {
        struct pollfd pfd = { .fd = sd_bus_get_fd(data), .events = POLLIN };
        return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP);
}

/* Connects to the private socket and says nothing, not even the
 * authentication's NUL byte. */
static int silent_peer(const char *path) {
        return vt_unix_socket(path, TRUE);
}

static gboolean name_has_owner(GDBusConnection *c, const char *name) {
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(c, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                            "org.freedesktop.DBus", "NameHasOwner",
                                                            g_variant_new("(s)", name), G_VARIANT_TYPE("(b)"),
                                                            G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL);
        gboolean has = FALSE;

        if (r)
                g_variant_get(r, "(b)", &has);
        return has;
}

static void report(const Latency *l, const Latency *base) {
        g_test_message("%-20s p50 %6" G_GINT64_FORMAT " us  p99 %6" G_GINT64_FORMAT " us  max %6" G_GINT64_FORMAT
                       " us  (p50 x%.2f, p99 x%.2f of %s)  load %.0f rounds/s",
                       l->phase, l->p50, l->p99, l->max, (double) l->p50 / base->p50, (double) l->p99 / base->p99,
                       base->phase, l->rounds_per_s);
}

/* Another client's calls, timed under the same load while two subscribers
 * (one on the bus, one on the private socket) read everything, and then
 * once they stopped reading: dbus-daemon queues for the one, vmsigd for
 * the other. Both stay connected. Then a peer that does not even
 * authenticate joins, and vmsigd still stops at once on SIGTERM. */
/* The private peer's socket buffer takes some 30000 messages, then vmsigd
 * queues them; past its limit it disconnects the peer. At full speed that
 * takes seconds, under valgrind minutes. */
static void wait_private_peer_dropped(VtDaemon *d, Churn *churn, Subscriber *private) {
        if (g_getenv("VMSIG_DAEMON_WRAPPER") && *g_getenv("VMSIG_DAEMON_WRAPPER")) {
                g_test_message("under a wrapper: not waiting for vmsigd to disconnect the stuck private peer");
                return;
        }
        gint64 t0 = g_get_monotonic_time();
        g_atomic_int_set(&churn->flat_out, 1);
        /* Some 35000 messages: under ASan on a busy machine the load runs
         * at a tenth of its speed. */
        wait_log_count_ms(d, "Private peer p2p-1 does not read what it is sent", NULL, 1, 6 * WAIT_MS);
        /* The log line comes just before the close. */
        g_assert_true(vt_wait_for(hung_up, private->bus, WAIT_MS));
        g_test_message("vmsigd disconnected the stuck private peer after %" G_GINT64_FORMAT " ms at full "
                       "load (%d rounds in all); RSS %ld kB",
                       (g_get_monotonic_time() - t0) / 1000, g_atomic_int_get(&churn->rounds),
                       vt_rss_kb(vt_daemon_pid(d)));
}

/* Peers that do not read, or do not even authenticate, must not hold up
 * the shutdown: sd-bus flushes every connection when the loop exits, and
 * would wait for them forever. */
static void stop_with_silent_peer(VtDaemon *d, GDBusConnection *c) {
        int silent = silent_peer(vt_daemon_private_socket(d));

        ping(c);
        gint64 t0 = g_get_monotonic_time();
        vt_daemon_signal(d, SIGTERM);
        g_assert_cmpint(vt_daemon_wait(d, 10000), ==, 0);
        g_test_message("vmsigd exited %" G_GINT64_FORMAT " ms after SIGTERM", (g_get_monotonic_time() - t0) / 1000);
        g_assert_cmpint(vt_daemon_stop(d), ==, 0);
        close(silent);
}

static void test_stuck_subscriber(void) {
        VtBus *bus = vt_bus_start();
        VtDaemon *d = vt_daemon_start(bus, CONFIG_STUCK);
        GDBusConnection *c = vt_bus_connect(bus);
        GPid pid = vt_daemon_pid(d);
        Churn churn = { .bus = bus };
        Subscriber on_bus = {}, private = {};
        g_autofree char *p2p = g_strdup_printf("unix:path=%s", vt_daemon_private_socket(d));
        const char *stuck_name = NULL;
        Latency idle, reading, stuck;

        idle = measure("idle", c, NULL);
        subscriber_start(&on_bus, vt_bus_address(bus), TRUE);
        subscriber_start(&private, p2p, FALSE);
        g_assert_cmpint(sd_bus_get_unique_name(on_bus.bus, &stuck_name), >=, 0);
        churn.thread = g_thread_new("load", churn_main, &churn);
        g_assert_true(vt_wait_for(churn_warm, &churn, WAIT_MS));
        reading = measure("load, readers", c, &churn);

        long rss_before = vt_rss_kb(pid);
        subscriber_stop_reading(&on_bus);
        subscriber_stop_reading(&private);
        wait_stuck(on_bus.bus, TRUE);
        wait_stuck(private.bus, FALSE);
        stuck = measure("load, stuck readers", c, &churn);
        long rss_after = vt_rss_kb(pid);
        g_assert_true(name_has_owner(c, stuck_name));

        g_test_message("%d rounds of load; unread by the stuck subscribers: %d bytes (bus), %d bytes (p2p); "
                       "the bus one still connected: %s; vmsigd RSS %ld kB -> %ld kB",
                       g_atomic_int_get(&churn.rounds), unread_bytes(on_bus.bus), unread_bytes(private.bus),
                       name_has_owner(c, stuck_name) ? "yes" : "no", rss_before, rss_after);
        report(&idle, &idle);
        report(&reading, &idle);
        report(&stuck, &reading);
        /* Not stalled: every call of the measurement was answered (measure()
         * asserts it) and the load went on. How much slower it got is a
         * figure for bench/RESULTS.md, not a bound a loaded machine could
         * break. */
        churn.mark = g_atomic_int_get(&churn.rounds);
        g_assert_true(vt_wait_for(churn_moved, &churn, WAIT_MS));

        wait_private_peer_dropped(d, &churn, &private);
        g_atomic_int_set(&churn.stop, 1);
        g_thread_join(churn.thread);

        stop_with_silent_peer(d, c);
        sd_bus_close_unref(private.bus);
        sd_bus_close_unref(on_bus.bus);
        g_object_unref(c);
        vt_bus_stop(bus);
}

/* --- nowhere to put the private socket -------------------------------------------- */

/* Runs vmsigd (no wrapper: it exits at start) on bus with the private
 * socket at path, in a mount namespace of its own where a tmpfs with
 * mount_opts is mounted at mountpoint first (and a file created in it if
 * fill), unless mountpoint is NULL. Returns its exit status; its stderr
 * goes to *err. */
static int run_vmsigd_private(VtBus *bus, const char *conf, const char *path, const char *mountpoint,
                              const char *mount_opts, gboolean fill, char **err) {
        static const char script[] = "mp=$1 opts=$2 fill=$3; shift 3\n"
                                     "mount -t tmpfs -o \"$opts\" vmsig-test \"$mp\" || exit 90\n"
                                     "if [ \"$fill\" = fill ]; then : > \"$mp/filler\" || exit 91; fi\n"
                                     "exec \"$@\"\n";
        g_autofree char *bin = g_build_filename(g_getenv("VMSIG_BUILDDIR"), "vmsigd", NULL);
        g_autofree char *socket_arg = g_strdup_printf("--private-socket=%s", path);
        g_auto(GStrv) env = g_environ_setenv(g_get_environ(), "DBUS_SYSTEM_BUS_ADDRESS", vt_bus_address(bus), TRUE);
        const char *direct[] = { bin, "--config", conf, socket_arg, NULL };
        const char *namespaced[] = { "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                                     mountpoint, mount_opts, fill ? "fill" : "-", bin, "--config", conf, socket_arg,
                                     NULL };
        g_autoptr(GError) error = NULL;
        int status;

        g_assert_true(g_spawn_sync(NULL, (char **) (mountpoint ? namespaced : direct), env, G_SPAWN_SEARCH_PATH,
                                   NULL, NULL, NULL, err, &status, &error));
        g_assert_no_error(error);
        g_test_message("vmsigd with the private socket at %s: status 0x%x, stderr:\n%s", path, status, *err);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), !=, 90);
        g_assert_cmpint(WEXITSTATUS(status), !=, 91);
        return WEXITSTATUS(status);
}

static gboolean can_mount(void) {
        const char *argv[] = { "unshare", "--mount", "--propagation", "private", "true", NULL };
        int status = -1;

        return g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL |
                                                            G_SPAWN_STDERR_TO_DEV_NULL,
                            NULL, NULL, NULL, NULL, &status, NULL) &&
               WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The private socket is the one thing vmsigd creates on disk. Where it
 * cannot be created, vmsigd exits with 1 at start and its log says where
 * and why; a file in its place is left alone. */
static void test_private_socket_unwritable(void) {
        VtBus *bus = vt_bus_start();
        const char *dir = vt_bus_dir(bus);
        g_autofree char *conf = g_build_filename(dir, "unwritable.conf", NULL);
        g_autofree char *ro = g_build_filename(dir, "ro", NULL), *full = g_build_filename(dir, "full", NULL);
        g_autofree char *ro_sock = g_build_filename(ro, "private", NULL);
        g_autofree char *full_sock = g_build_filename(full, "private", NULL);
        g_autofree char *missing = g_build_filename(dir, "missing", "private", NULL);
        g_autofree char *in_the_way = g_build_filename(dir, "in-the-way", NULL);
        g_autofree char *dir_in_the_way = g_build_filename(dir, "dir-in-the-way", NULL);
        g_autofree char *err = NULL, *want = NULL, *contents = NULL;
        struct stat st;

        g_assert_true(g_file_set_contents(conf, "<vmsigd><stub-vm name=\"a\" ram-size=\"1M\"/></vmsigd>", -1, NULL));
        g_assert_true(g_file_set_contents(in_the_way, "not a socket", -1, NULL));
        g_assert_cmpint(g_mkdir(dir_in_the_way, 0700), ==, 0);

        g_assert_cmpint(run_vmsigd_private(bus, conf, missing, NULL, NULL, FALSE, &err), ==, 1);
        want = g_strdup_printf("Cannot listen on the private socket %s: No such file or directory", missing);
        g_assert_nonnull(strstr(err, want));

        const char *const in_the_ways[] = { in_the_way, dir_in_the_way };
        for (size_t i = 0; i < G_N_ELEMENTS(in_the_ways); i++) {
                g_clear_pointer(&err, g_free);
                g_clear_pointer(&want, g_free);
                g_assert_cmpint(run_vmsigd_private(bus, conf, in_the_ways[i], NULL, NULL, FALSE, &err), ==, 1);
                want = g_strdup_printf("Cannot listen on the private socket %s: something that is not a socket is "
                                       "in the way", in_the_ways[i]);
                g_assert_nonnull(strstr(err, want));
        }
        g_assert_true(g_file_get_contents(in_the_way, &contents, NULL, NULL));
        g_assert_cmpstr(contents, ==, "not a socket");
        g_assert_cmpint(stat(dir_in_the_way, &st), ==, 0);
        g_assert_true(S_ISDIR(st.st_mode));

        if (!can_mount()) {
                g_test_skip("cannot mount in a new mount namespace here (unshare --mount): the read-only and full "
                            "file system cases were not run");
                vt_bus_stop(bus);
                return;
        }
        g_assert_cmpint(g_mkdir(ro, 0700), ==, 0);
        g_assert_cmpint(g_mkdir(full, 0700), ==, 0);
        g_clear_pointer(&err, g_free);
        g_clear_pointer(&want, g_free);
        g_assert_cmpint(run_vmsigd_private(bus, conf, ro_sock, ro, "ro,size=64k", FALSE, &err), ==, 1);
        want = g_strdup_printf("Cannot listen on the private socket %s: Read-only file system", ro_sock);
        g_assert_nonnull(strstr(err, want));
        /* Full: no inode left for the socket (a socket takes no blocks). */
        g_clear_pointer(&err, g_free);
        g_clear_pointer(&want, g_free);
        g_assert_cmpint(run_vmsigd_private(bus, conf, full_sock, full, "size=64k,nr_inodes=2", TRUE, &err), ==, 1);
        want = g_strdup_printf("Cannot listen on the private socket %s: No space left on device", full_sock);
        g_assert_nonnull(strstr(err, want));
        vt_bus_stop(bus);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add("/faults/kill-9-mid-call", Fixture, NULL, fixture_setup, test_kill_9_mid_call, fixture_teardown);
        g_test_add("/faults/stub-ram-cannot-shrink", Fixture, NULL, fixture_setup, test_stub_ram_cannot_shrink,
                   fixture_teardown);
        g_test_add("/faults/kill-9-polkit-pending", Fixture, CONFIG_POLKIT, fixture_setup, test_kill_9_polkit_pending,
                   fixture_teardown);
        g_test_add("/faults/polkitd-killed-and-restarted", Fixture, CONFIG_POLKIT, fixture_setup,
                   test_polkitd_killed_and_restarted, fixture_teardown);
        VT_TESTS("/faults/", test_stuck_subscriber, test_private_socket_unwritable);
        return g_test_run();
}
