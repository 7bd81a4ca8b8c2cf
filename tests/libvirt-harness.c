/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <grp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "libvirt-harness.h"
#include "linux-guest.h"
#include "vt-util.h"

#define LIBVIRTD "/usr/sbin/libvirtd"
#define QEMU_USER "libvirt-qemu"
#define URI "qemu:///system"
#define PID_FILE "/run/libvirt/libvirtd.pid"
#define CAPS_DIR "/var/cache/libvirt/qemu/capabilities"
#define QEMU_RUN_DIR "/run/libvirt/qemu"
#define QEMU_LOG_DIR "/var/log/libvirt/qemu" /* QEMU's stderr: stdio_handler "file" */
/* The domain's USB, and what a tablet domain has instead. */
#define NO_USB "<controller type='usb' model='none'/>"
#define TABLET "<controller type='usb' model='qemu-xhci'/><input type='tablet' bus='usb'/>"
#define IMAGE_DIR "/var/lib/libvirt/vmsig" /* in the namespace's tmpfs */
#define START_TIMEOUT_MS 60000 /* a first probe under load, with margin */
#define STOP_TIMEOUT_MS 10000

static const char *const tmpfs_dirs[] = {
        "/run/libvirt",
        "/var/lib/libvirt",
        "/var/log/libvirt",
        "/var/cache/libvirt",
};

/* What libvirt_harness_enter_namespace() got: 0, or an errno. */
static int namespace_error = -1;

static bool under_ci(void) {
        return g_strcmp0(g_getenv("CI"), "true") == 0;
}

static bool missing(const char *why) {
        if (under_ci())
                g_error("%s; CI must not skip the libvirt tests", why);
        g_test_skip(why);
        return false;
}

/* Plain libc, no GLib: the guard below runs this in a child forked
 * before GLib started. */
static void kill_pid_file(const char *path) {
        FILE *f = fopen(path, "re");
        long pid;

        if (!f)
                return;
        if (fscanf(f, "%ld", &pid) == 1 && pid > 1)
                (void) kill((pid_t) pid, SIGKILL);
        fclose(f);
}

/* libvirtd and its QEMUs, from their pid files in the namespace's
 * /run/libvirt: QEMU outlives libvirtd, and nobody else would stop it. */
static void kill_daemons(void) {
        DIR *dir = opendir(QEMU_RUN_DIR);
        struct dirent *de;
        char path[PATH_MAX];

        kill_pid_file(PID_FILE);
        while (dir && (de = readdir(dir))) {
                size_t len = strlen(de->d_name);

                if (len > 4 && strcmp(de->d_name + len - 4, ".pid") == 0 &&
                    snprintf(path, sizeof path, "%s/%s", QEMU_RUN_DIR, de->d_name) < (int) sizeof path)
                        kill_pid_file(path);
        }
        if (dir)
                closedir(dir);
}

/* A test that fails aborts without libvirt_harness_free(): a child of
 * ours in the same namespace waits for the program's end (EOF on a pipe
 * whose write end only the program holds) and then stops whatever
 * libvirtd and QEMU are still listed. After a clean free the tmpfs is gone
 * and it finds nothing. */
static void fork_guard(void) {
        int p[2];
        pid_t pid;
        char c;

        if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0)
                g_error("cannot start the libvirt guard: %s", g_strerror(errno));
        if (pid > 0) {
                close(p[0]);
                return;
        }
        close(p[1]);
        /* Ctrl-C on make check reaches the whole group; the guard must
         * outlive the program to clean up after it. */
        (void) signal(SIGINT, SIG_IGN);
        (void) signal(SIGTERM, SIG_IGN);
        (void) signal(SIGHUP, SIG_IGN);
        while (read(p[0], &c, 1) < 0 && errno == EINTR)
                ;
        kill_daemons();
        _exit(0);
}

void libvirt_harness_enter_namespace(void) {
        /* libvirt writes to its sockets without MSG_NOSIGNAL: a daemon
         * killed under a connection must not kill the test too. */
        (void) signal(SIGPIPE, SIG_IGN);
        namespace_error = 0;
        if (unshare(CLONE_NEWNS) < 0)
                namespace_error = errno;
        /* Private all the way down: our mounts stay ours, and unmounting
         * them later does not reach the host. */
        else if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
                namespace_error = errno;
        if (namespace_error != 0 && under_ci())
                g_error("no private mount namespace: %s", g_strerror(namespace_error));
        if (namespace_error == 0)
                fork_guard();
}

bool libvirt_harness_available(void) {
        g_autofree char *why = NULL;

        if (namespace_error < 0)
                g_error("libvirt_harness_enter_namespace() was not called first in main()");
        if (namespace_error > 0) {
                why = g_strdup_printf("no private mount namespace (%s; root is needed)", g_strerror(namespace_error));
                return missing(why);
        }
        if (!g_file_test(LIBVIRTD, G_FILE_TEST_IS_EXECUTABLE))
                return missing(LIBVIRTD " is missing (apt-get install libvirt-daemon-system "
                               "libvirt-daemon-driver-qemu)");
        if (!getpwnam(QEMU_USER))
                return missing("user " QEMU_USER " is missing (apt-get install libvirt-daemon-system)");
        return linux_guest_available();
}

static void run(const char *const *argv) {
        g_autoptr(GError) error = NULL;
        g_autofree char *err = NULL;
        int status;

        if (!g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, &err, &status, &error) ||
            !g_spawn_check_wait_status(status, &error))
                g_error("%s failed: %s %s", argv[0], error->message, err ? err : "");
}

/* Whole or not at all: another test program may read the target. */
static void copy_file(const char *from, const char *to, int mode) {
        g_autoptr(GError) error = NULL;
        g_autofree char *data = NULL;
        gsize len;

        g_file_get_contents(from, &data, &len, &error);
        g_assert_no_error(error);
        g_file_set_contents_full(to, data, (gssize) len, G_FILE_SET_CONTENTS_CONSISTENT, mode, &error);
        g_assert_no_error(error);
}

static void chown_to_qemu(const char *path) {
        struct passwd *pw = getpwnam(QEMU_USER);

        g_assert_nonnull(pw);
        g_assert_cmpint(chown(path, pw->pw_uid, pw->pw_gid), ==, 0);
}

/* Appends text to the file at path. */
static void append_to(const char *path, const char *text) {
        g_autoptr(GError) error = NULL;
        g_autofree char *conf = NULL, *patched = NULL;

        g_file_get_contents(path, &conf, NULL, &error);
        g_assert_no_error(error);
        patched = g_strconcat(conf, text, NULL);
        g_file_set_contents(path, patched, -1, &error);
        g_assert_no_error(error);
}

/* The copy of /etc/libvirt over the real one. The settings go last,
 * where they override Debian's commented defaults. */
static void mount_config(LibvirtHarness *h) {
        g_autofree char *qemu_conf = g_build_filename(h->etc, "qemu.conf", NULL);
        g_autofree char *autostart = g_build_filename(h->etc, "qemu", "networks", "autostart", NULL);
        g_autofree char *libvirtd_conf = g_build_filename(h->etc, "libvirtd.conf", NULL);
        g_autofree char *logging = NULL;

        run((const char *const[]) { "cp", "-a", "/etc/libvirt", h->etc, NULL });
        append_to(qemu_conf, "\n# vmsig tests: no virtlogd, no chown of the images, and no\n"
                             "# cgroups (the host's, shared by every test's libvirtd)\n"
                             "stdio_handler = \"file\"\ndynamic_ownership = 0\ncgroup_controllers = [ ]\n");
        /* The public API's calls as libvirtd runs them for its clients
         * (libvirt_harness_api_calls()), in a file of their own; warnings
         * and errors on stderr as before. */
        logging = g_strdup_printf("\n# vmsig tests: the domain API's calls\nlog_filters = \"1:libvirt.domain\"\n"
                                  "log_outputs = \"1:file:%s 3:stderr\"\n", h->api_log_path);
        append_to(libvirtd_conf, logging);
        /* A network's bridge would be the host's: no autostart. */
        run((const char *const[]) { "rm", "-rf", autostart, NULL });
        g_assert_cmpint(mount(h->etc, "/etc/libvirt", "none", MS_BIND, NULL), ==, 0);
}

/* The kernel and initramfs where QEMU's user can read them, with a serial
 * file per domain beside them. The capabilities cache goes with the
 * initramfs's. */
static void copy_guest(LibvirtHarness *h) {
        g_autoptr(LinuxGuest) g = linux_guest_new(NULL, false);
        g_autofree char *cache = g_path_get_dirname(g->initrd);

        h->cache = g_build_filename(cache, "libvirt-cache", NULL);

        g_assert_cmpint(g_mkdir(IMAGE_DIR, 0755), ==, 0);
        chown_to_qemu(IMAGE_DIR);
        h->kernel = g_build_filename(IMAGE_DIR, "vmlinuz", NULL);
        h->initrd = g_build_filename(IMAGE_DIR, "initrd.cpio.gz", NULL);
        copy_file(g->kernel, h->kernel, 0644);
        copy_file(g->initrd, h->initrd, 0644);
}

LibvirtHarness *libvirt_harness_new(void) {
        LibvirtHarness *h = g_new0(LibvirtHarness, 1);
        g_autoptr(GError) error = NULL;

        g_assert_cmpint(namespace_error, ==, 0);
        h->dir = g_dir_make_tmp("vmsig-libvirt-XXXXXX", &error);
        g_assert_no_error(error);
        h->etc = g_build_filename(h->dir, "etc", NULL);
        h->log_path = g_build_filename(h->dir, "libvirtd.log", NULL);
        h->api_log_path = g_build_filename(h->dir, "api.log", NULL);
        for (size_t i = 0; i < G_N_ELEMENTS(tmpfs_dirs); i++) {
                g_assert_cmpint(g_mkdir_with_parents(tmpfs_dirs[i], 0755), ==, 0);
                if (mount("tmpfs", tmpfs_dirs[i], "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
                        g_error("mounting a tmpfs on %s: %s", tmpfs_dirs[i], g_strerror(errno));
        }
        mount_config(h);
        copy_guest(h);
        return h;
}

/* Copies every file of one directory into another (made if missing);
 * the number copied. */
static unsigned copy_dir(const char *from, const char *to) {
        g_autoptr(GDir) dir = g_dir_open(from, 0, NULL);
        unsigned n = 0;

        if (!dir)
                return 0;
        g_assert_cmpint(g_mkdir_with_parents(to, 0755), ==, 0);
        for (const char *name; (name = g_dir_read_name(dir)); n++) {
                g_autofree char *src = g_build_filename(from, name, NULL), *dst = g_build_filename(to, name, NULL);

                copy_file(src, dst, 0600);
        }
        return n;
}

/* A newer mtime than the restore's, or a file gone: libvirt probed again. */
static bool caps_unchanged(const char *dir, GHashTable *restored) {
        GHashTableIter it;
        gpointer key, value;

        g_hash_table_iter_init(&it, restored);
        while (g_hash_table_iter_next(&it, &key, &value)) {
                g_autofree char *path = g_build_filename(dir, key, NULL);
                struct stat st;

                if (stat(path, &st) < 0 || (gint64) st.st_mtim.tv_sec * G_USEC_PER_SEC + st.st_mtim.tv_nsec / 1000 !=
                                                   *(gint64 *) value)
                        return false;
        }
        return g_hash_table_size(restored) > 0;
}

static GHashTable *restore_caps(LibvirtHarness *h) {
        GHashTable *restored = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        g_autoptr(GDir) dir = NULL;

        h->cache_loaded = copy_dir(h->cache, CAPS_DIR);
        dir = g_dir_open(CAPS_DIR, 0, NULL);
        for (const char *name; dir && (name = g_dir_read_name(dir));) {
                g_autofree char *path = g_build_filename(CAPS_DIR, name, NULL);
                gint64 *mtime = g_new(gint64, 1);
                struct stat st;

                g_assert_cmpint(stat(path, &st), ==, 0);
                *mtime = (gint64) st.st_mtim.tv_sec * G_USEC_PER_SEC + st.st_mtim.tv_nsec / 1000;
                g_hash_table_insert(restored, g_strdup(name), mtime);
        }
        return restored;
}

static void quiet_error(void *userdata, virErrorPtr error) {
        /* The harness reports what matters itself; libvirt would print
         * every refused connection while the daemon starts. */
}

static void fail_with_log(LibvirtHarness *h, const char *what) {
        g_autofree char *log = NULL;
        gsize len = 0;

        g_file_get_contents(h->log_path, &log, &len, NULL);
        g_error("%s; libvirtd's log ended in:\n%s", what, log ? log + (len > 4000 ? len - 4000 : 0) : "(nothing)");
}

static void spawn_libvirtd(LibvirtHarness *h) {
        const char *argv[] = { LIBVIRTD, "--pid-file", PID_FILE, NULL };
        g_autoptr(GError) error = NULL;
        int log_fd = open(h->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

        g_assert_cmpint(log_fd, >=, 0);
        if (!g_spawn_async_with_pipes_and_fds(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, -1, log_fd,
                                              log_fd, NULL, NULL, 0, &h->pid, NULL, NULL, NULL, &error))
                g_error("starting libvirtd: %s", error->message);
        g_assert_cmpint(close(log_fd), ==, 0);
}

void libvirt_harness_start(LibvirtHarness *h) {
        g_autoptr(GHashTable) restored = NULL;
        gint64 start, deadline;
        char *caps;

        g_assert_cmpint(h->pid, ==, 0);
        virSetErrorFunc(NULL, quiet_error);
        restored = restore_caps(h);
        start = g_get_monotonic_time();
        deadline = start + (gint64) START_TIMEOUT_MS * 1000;
        spawn_libvirtd(h);
        while (!(h->conn = virConnectOpen(URI))) {
                int status;

                if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
                        h->pid = 0;
                        fail_with_log(h, "libvirtd exited while starting");
                }
                if (g_get_monotonic_time() > deadline)
                        fail_with_log(h, "libvirtd did not answer on " URI " within a minute");
                g_usleep(20000);
        }
        /* The first call that needs QEMU's capabilities waits for the
         * probe, which a mere connection does not. */
        caps = virConnectGetCapabilities(h->conn);
        if (!caps)
                fail_with_log(h, "libvirtd gave no capabilities");
        free(caps);
        h->start_seconds = (double) (g_get_monotonic_time() - start) / G_USEC_PER_SEC;
        /* The probe is done: keep what it found. */
        h->cache_kept = caps_unchanged(CAPS_DIR, restored);
        if (!h->cache_kept)
                copy_dir(CAPS_DIR, h->cache);
}

static void reap(LibvirtHarness *h, int sig, unsigned timeout_ms) {
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;
        int status;

        g_assert_cmpint(kill(h->pid, sig), ==, 0);
        while (waitpid(h->pid, &status, WNOHANG) != h->pid) {
                if (g_get_monotonic_time() > deadline) {
                        g_assert_cmpint(kill(h->pid, SIGKILL), ==, 0);
                        g_assert_cmpint(waitpid(h->pid, &status, 0), ==, h->pid);
                        break;
                }
                g_usleep(10000);
        }
        g_spawn_close_pid(h->pid);
        h->pid = 0;
}

static void close_conn(LibvirtHarness *h) {
        if (h->conn)
                (void) virConnectClose(h->conn);
        h->conn = NULL;
}

void libvirt_harness_kill(LibvirtHarness *h) {
        g_assert_cmpint(h->pid, >, 0);
        reap(h, SIGKILL, 0);
        close_conn(h);
}

LibvirtHarness *libvirt_harness_new_started(void) {
        LibvirtHarness *h;

        if (!libvirt_harness_available())
                return NULL;
        h = libvirt_harness_new();
        libvirt_harness_start(h);
        return h;
}

char *libvirt_harness_serial(LibvirtHarness *h, const char *name) {
        g_autofree char *file = g_strdup_printf("%s.serial", name);

        return g_build_filename(IMAGE_DIR, file, NULL);
}

char *libvirt_harness_domain_xml(LibvirtHarness *h, const char *name, LibvirtRam ram, unsigned ram_mib) {
        g_autofree char *serial = libvirt_harness_serial(h, name);
        const char *backing = ram == LIBVIRT_RAM_NONE  ? ""
                              : ram == LIBVIRT_RAM_MEMFD ? "  <memoryBacking><source type='memfd'/><access "
                                                           "mode='shared'/></memoryBacking>\n"
                                                         : "  <memoryBacking><source type='file'/><access "
                                                           "mode='shared'/></memoryBacking>\n";

        return g_strdup_printf(
                "<domain type='qemu'>\n"
                "  <name>%s</name>\n"
                "  <memory unit='MiB'>%u</memory>\n"
                "  <vcpu>1</vcpu>\n"
                "%s"
                "  <os>\n"
                "    <type arch='x86_64' machine='q35'>hvm</type>\n"
                "    <kernel>%s</kernel>\n"
                "    <initrd>%s</initrd>\n"
                "    <cmdline>console=ttyS0 panic=-1</cmdline>\n"
                "  </os>\n"
                "  <features><acpi/></features>\n"
                "  <devices>\n"
                "    <serial type='file'><source path='%s'/><target port='0'/></serial>\n"
                "    <video><model type='vga'/></video>\n"
                "    " NO_USB "\n"
                "    <memballoon model='none'/>\n"
                "  </devices>\n"
                "</domain>\n",
                name, ram_mib, backing, h->kernel, h->initrd, serial);
}

static const char *last_error(void) {
        const char *message = virGetLastErrorMessage();

        return message ? message : "(no message)";
}

/* Defines xml and starts it with flags; it is in state when this returns. */
static virDomainPtr define_and_start(LibvirtHarness *h, const char *name, const char *xml, unsigned flags,
                                     int want_state) {
        g_autofree char *serial = libvirt_harness_serial(h, name);
        virDomainPtr dom;
        int state = -1, reason;

        g_assert_nonnull(h->conn);
        /* Empty and QEMU's, whoever opens it: a log of an earlier boot
         * would show an old marker. */
        g_assert_cmpint(g_file_set_contents(serial, "", 0, NULL), ==, TRUE);
        chown_to_qemu(serial);
        dom = virDomainDefineXML(h->conn, xml);
        if (!dom)
                g_error("defining %s: %s", name, last_error());
        if (virDomainCreateWithFlags(dom, flags) < 0)
                g_error("starting %s: %s", name, last_error());
        g_assert_cmpint(virDomainGetState(dom, &state, &reason, 0), ==, 0);
        g_assert_cmpint(state, ==, want_state);
        return dom;
}

virDomainPtr libvirt_harness_start_domain(LibvirtHarness *h, const char *name, LibvirtRam ram, unsigned ram_mib) {
        g_autofree char *xml = libvirt_harness_domain_xml(h, name, ram, ram_mib);

        return define_and_start(h, name, xml, 0, VIR_DOMAIN_RUNNING);
}

virDomainPtr libvirt_harness_start_paused(LibvirtHarness *h, const char *name, const char *machine, unsigned ram_mib,
                                         const char *qemu_extra) {
        g_autofree char *base = libvirt_harness_domain_xml(h, name, LIBVIRT_RAM_MEMFD, ram_mib);
        g_autoptr(GString) xml = g_string_new(base);
        g_autofree char *type = g_strdup_printf("machine='%s'", machine);

        g_assert_cmpuint(g_string_replace(xml, "machine='q35'", type, 1), ==, 1);
        if (qemu_extra) {
                g_autofree char *tail = g_strdup_printf("%s</domain>", qemu_extra);

                g_assert_cmpuint(g_string_replace(xml, "<domain type='qemu'>",
                                                  "<domain type='qemu' xmlns:qemu='" LIBVIRT_HARNESS_QEMU_NS "'>", 1),
                                 ==, 1);
                g_assert_cmpuint(g_string_replace(xml, "</domain>", tail, 1), ==, 1);
        }
        return define_and_start(h, name, xml->str, VIR_DOMAIN_START_PAUSED, VIR_DOMAIN_PAUSED);
}

virDomainPtr libvirt_harness_start_tablet_domain(LibvirtHarness *h, const char *name, LibvirtRam ram,
                                                 unsigned ram_mib) {
        g_autofree char *xml = libvirt_harness_domain_xml(h, name, ram, ram_mib);
        g_auto(GStrv) parts = g_strsplit(xml, NO_USB, 2);
        g_autofree char *tablet_xml = NULL;

        g_assert_nonnull(parts[1]);
        tablet_xml = g_strconcat(parts[0], TABLET, parts[1], NULL);
        return define_and_start(h, name, tablet_xml, 0, VIR_DOMAIN_RUNNING);
}

char *libvirt_harness_hmp(LibvirtHarness *h, const char *name, const char *command) {
        virDomainPtr dom = virDomainLookupByName(h->conn, name);
        char *out = NULL;

        g_assert_nonnull(dom);
        if (virDomainQemuMonitorCommand(dom, command, &out, VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP) < 0)
                g_error("%s on %s: %s", command, name, last_error());
        virDomainFree(dom);
        return out;
}

char *libvirt_harness_qemu_log(LibvirtHarness *h, const char *name) {
        g_autofree char *file = g_strdup_printf("%s.log", name);
        g_autofree char *path = g_build_filename(QEMU_LOG_DIR, file, NULL);
        g_autoptr(GError) error = NULL;
        char *text = NULL;

        g_file_get_contents(path, &text, NULL, &error);
        g_assert_no_error(error);
        return text;
}

pid_t libvirt_harness_claim_uuid(const char *uuid, const char *user) {
        /* Not a lone command, which sh would exec, losing its own command
         * line. */
        const char *argv[] = { "/bin/sh", "-c", "sleep 600; :", "-uuid", uuid, NULL };
        struct passwd *pw = user ? getpwnam(user) : NULL;
        g_autofree char *path = NULL;
        pid_t pid;

        g_assert_true(!user || pw);
        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                /* A group of its own, for sh's sleep to end with it: left
                 * behind, it would hold the test's output open. */
                if (setpgid(0, 0) < 0 ||
                    (pw && (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)))
                        _exit(126);
                /* After the uid changed, which clears it. */
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                execv(argv[0], (char **) argv);
                _exit(127);
        }
        /* The claim shows once sh runs. */
        path = g_strdup_printf("/proc/%d/cmdline", (int) pid);
        for (;;) {
                g_autofree char *text = NULL;
                gsize len = 0;

                if (g_file_get_contents(path, &text, &len, NULL) && memmem(text, len, uuid, strlen(uuid)))
                        return pid;
                g_assert_cmpint(waitpid(pid, NULL, WNOHANG), ==, 0);
                g_usleep(1000);
        }
}

void libvirt_harness_end_claim(pid_t pid) {
        g_assert_cmpint(kill(-pid, SIGKILL), ==, 0);
        g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
}

pid_t libvirt_harness_domain_pid(LibvirtHarness *h, const char *name) {
        g_autofree char *file = g_strdup_printf("%s.pid", name);
        g_autofree char *path = g_build_filename(QEMU_RUN_DIR, file, NULL), *text = NULL;
        g_autoptr(GError) error = NULL;
        gint64 pid;

        g_file_get_contents(path, &text, NULL, &error);
        g_assert_no_error(error);
        pid = g_ascii_strtoll(text, NULL, 10);
        g_assert_cmpint(pid, >, 1);
        return (pid_t) pid;
}

void libvirt_harness_wait_guest(LibvirtHarness *h, const char *name, unsigned timeout_ms) {
        g_autofree char *serial = libvirt_harness_serial(h, name);
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;

        for (;;) {
                g_autofree char *text = NULL;
                gsize len = 0;

                if (g_file_get_contents(serial, &text, &len, NULL) && strstr(text, LINUX_GUEST_MARKER))
                        return;
                if (g_get_monotonic_time() > deadline)
                        g_error("%s did not show its marker in %u ms; the console ended in:\n%s", name, timeout_ms,
                                text ? text + (len > 4000 ? len - 4000 : 0) : "(nothing)");
                g_usleep(50000);
        }
}

static void remove_domains(LibvirtHarness *h) {
        virDomainPtr *domains = NULL;
        int n = virConnectListAllDomains(h->conn, &domains, 0);

        for (int i = 0; i < n; i++) {
                if (virDomainIsActive(domains[i]) == 1)
                        (void) virDomainDestroy(domains[i]);
                (void) virDomainUndefine(domains[i]);
                virDomainFree(domains[i]);
        }
        free(domains);
}

void libvirt_harness_free(LibvirtHarness *h) {
        if (!h)
                return;
        if (h->conn)
                remove_domains(h);
        close_conn(h);
        if (h->pid > 0)
                reap(h, SIGTERM, STOP_TIMEOUT_MS);
        kill_daemons();
        /* Lazily: a QEMU that was just killed may still hold its files. */
        (void) umount2("/etc/libvirt", MNT_DETACH);
        for (size_t i = G_N_ELEMENTS(tmpfs_dirs); i > 0; i--)
                (void) umount2(tmpfs_dirs[i - 1], MNT_DETACH);
        run((const char *const[]) { "rm", "-rf", h->dir, NULL });
        VT_FREE_MANY(h->dir, h->etc, h->cache, h->log_path, h->api_log_path, h->kernel, h->initrd, h);
}

unsigned libvirt_harness_api_calls(LibvirtHarness *h, const char *api, const char *name) {
        g_autofree char *log = NULL, *call = g_strconcat(" ", api, ":", NULL), *vm = g_strconcat("name=", name, ",", NULL);
        g_auto(GStrv) lines = NULL;
        unsigned n = 0;

        if (!g_file_get_contents(h->api_log_path, &log, NULL, NULL))
                return 0;
        lines = g_strsplit(log, "\n", -1);
        for (char **l = lines; *l; l++)
                n += strstr(*l, call) && strstr(*l, vm);
        return n;
}
