/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsigd against an unprivileged, hostile caller, with a real dbus-daemon
 * that enforces data/org.vmsig.conf and a real polkitd:
 *
 *  - the caller matrix: every method and property of every object, as
 *    nobody, generated from the introspection data and compared with an
 *    explicit table; a method the table does not know fails the test, and
 *    nothing may change after a refused call;
 *  - the same when polkit grants nobody everything: then exactly the lease
 *    and lifecycle rules decide, and a grant for one endpoint is not one
 *    for another;
 *  - the guest RAM fd a non-root subscriber receives cannot be made to
 *    write guest memory by any route (root receivers for comparison);
 *  - the private socket refuses non-root peers;
 *  - the bus policy: only root may own org.vmsig, and nobody reaches only
 *    what the policy opens;
 *  - the audit trail: one record per refused call and per operation.
 *
 * Unprivileged callers are this program itself, started again with
 * --helper under setpriv: it reads commands on stdin and answers each with
 * some lines and "end" (see helper_main()). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gio/gunixfdlist.h>
#include <glib/gstdio.h>

#include "fixture.h"
#ifdef VMSIG_HAVE_QMP
#include "qemu-harness.h"
#endif

#define ALPHA VT_ENDPOINT("alpha")
#define BETA VT_ENDPOINT("beta")
#define ALPHA_RAM (2u << 20)
#define CONFIG                                                              \
        "<vmsigd><audit target=\"stderr\"/>"                                \
        "<stub-vm name=\"alpha\" ram-size=\"2M\" dtb=\"0x10000\"/>"         \
        "<stub-vm name=\"beta\" ram-size=\"1M\"/></vmsigd>"
#define CALL_TIMEOUT_MS 25000

#define IAR "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
#define ACCESS_DENIED "org.freedesktop.DBus.Error.AccessDenied"
#define NOT_HOLDER "org.vmsig.Error.NotLeaseHolder"

/* ===================================================================== */
/* The unprivileged side: test-security --helper                          */
/* ===================================================================== */

static GMutex seen_lock;
static GPtrArray *seen;
static gboolean eavesdropping;

/* Runs in GDBus's worker thread: what an eavesdropper got that was not
 * meant for it. Replies to our own calls are not interesting. */
static GDBusMessage *on_message(GDBusConnection *c, GDBusMessage *m, gboolean incoming, gpointer data) {
        GDBusMessageType t = g_dbus_message_get_message_type(m);

        if (!incoming || !g_atomic_int_get(&eavesdropping))
                return m;
        if (t != G_DBUS_MESSAGE_TYPE_SIGNAL && t != G_DBUS_MESSAGE_TYPE_METHOD_CALL)
                return m;
        g_mutex_lock(&seen_lock);
        g_ptr_array_add(seen, g_strdup_printf("%s %s %s dest=%s", t == G_DBUS_MESSAGE_TYPE_SIGNAL ? "signal" : "call",
                                              g_dbus_message_get_member(m) ?: "-", g_dbus_message_get_path(m) ?: "-",
                                              g_dbus_message_get_destination(m) ?: "-"));
        g_mutex_unlock(&seen_lock);
        return m;
}

static void one_line(char *s) {
        for (char *p = s; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
}

/* GDBus's call API insists on an interface; D-Bus does not. */
static GVariant *call_without_interface(GDBusConnection *c, const char *dest, const char *path, const char *method,
                                        GVariant *args, gboolean interactive, GError **error) {
        g_autoptr(GDBusMessage) m = g_dbus_message_new_method_call(dest, path, NULL, method);
        g_autoptr(GDBusMessage) reply = NULL;
        GVariant *body;

        if (args)
                g_dbus_message_set_body(m, args);
        if (interactive)
                g_dbus_message_set_flags(m, G_DBUS_MESSAGE_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION);
        reply = g_dbus_connection_send_message_with_reply_sync(c, m, G_DBUS_SEND_MESSAGE_FLAGS_NONE, CALL_TIMEOUT_MS,
                                                               NULL, NULL, error);
        if (!reply || g_dbus_message_to_gerror(reply, error))
                return NULL;
        body = g_dbus_message_get_body(reply);
        return body ? g_variant_ref(body) : g_variant_new("()");
}

/* call FLAGS DEST PATH IFACE METHOD [ARGS]: FLAGS "i" allows interactive
 * authorization, "-" not; DEST "-" is org.vmsig, IFACE "-" none. Every fd
 * received is kept open until the helper exits (leases, RAM fds). */
static void helper_call(GDBusConnection *c, GPtrArray *kept, char **f) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) args = NULL, reply = NULL;
        g_autoptr(GUnixFDList) fds = NULL;

        if (g_strv_length(f) < 6) {
                printf("error (usage) call FLAGS DEST PATH IFACE METHOD [ARGS]\n");
                return;
        }
        if (f[6]) {
                args = g_variant_parse(NULL, f[6], NULL, NULL, &error);
                if (!args) {
                        printf("error (usage) bad arguments: %s\n", error->message);
                        return;
                }
        }
        if (g_str_equal(f[4], "-"))
                reply = call_without_interface(c, g_str_equal(f[2], "-") ? VT_NAME : f[2], f[3], f[5],
                                               g_steal_pointer(&args), strchr(f[1], 'i') != NULL, &error);
        else
                reply = g_dbus_connection_call_with_unix_fd_list_sync(
                        c, g_str_equal(f[2], "-") ? VT_NAME : f[2], f[3], f[4], f[5], g_steal_pointer(&args), NULL,
                        strchr(f[1], 'i') ? G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION : G_DBUS_CALL_FLAGS_NONE,
                        CALL_TIMEOUT_MS, NULL, &fds, NULL, &error);
        if (!reply) {
                g_autofree char *name = g_dbus_error_get_remote_error(error);
                g_dbus_error_strip_remote_error(error);
                one_line(error->message);
                printf("error %s %s\n", name ?: "(local)", error->message);
                return;
        }
        if (fds)
                g_ptr_array_add(kept, g_steal_pointer(&fds));
        g_autofree char *text = g_variant_print(reply, TRUE);
        printf("ok %s\n", text);
}

/* Each attempt prints "ROUTE OK" or "ROUTE ERRNO-NAME". */
static void result(const char *route, long r, int err) {
        printf("%s %s\n", route, r >= 0 ? "OK" : strerrorname_np(err));
}
#define TRY(route, expr)                                  \
        G_STMT_START {                                    \
                errno = 0;                                \
                long _r = (long) (expr);                  \
                result((route), _r, errno);               \
        }                                                 \
        G_STMT_END

typedef struct {
        int fd;
        guint64 size;
        guint8 orig[16], payload[16]; /* what is at offset 0; what we try to put there */
        gboolean gentle;              /* root: skip what would really destroy an unsealed file */
        gboolean sealed;              /* F_SEAL_FUTURE_WRITE, F_SEAL_SHRINK and F_SEAL_GROW are set */
} Probe;

static gboolean may_destroy(const Probe *p) {
        return !p->gentle || p->sealed;
}

/* After a route that gave us a writable fd (root only, or a failure of the
 * RAM fd's protection): does writing through it work? */
static void write_through(const Probe *p, const char *route, int fd) {
        g_autofree char *w = g_strdup_printf("%s-write", route);
        g_autofree char *m = g_strdup_printf("%s-mmap-write", route);
        void *map;

        TRY(w, pwrite(fd, p->payload, sizeof p->payload, 0));
        map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        result(m, map == MAP_FAILED ? -1 : 0, errno);
        if (map != MAP_FAILED) {
                memcpy(map, p->payload, sizeof p->payload);
                munmap(map, 4096);
        }
        if (may_destroy(p)) {
                g_autofree char *t = g_strdup_printf("%s-ftruncate", route);
                g_autofree char *h = g_strdup_printf("%s-fallocate-punch", route);
                TRY(t, ftruncate(fd, 0));
                TRY(h, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
        }
}

static void try_open(const Probe *p, const char *route, const char *path, int flags) {
        int fd;

        errno = 0;
        fd = open(path, flags | O_CLOEXEC);
        result(route, fd, errno);
        if (fd < 0)
                return;
        if ((flags & O_ACCMODE) != O_RDONLY)
                write_through(p, route, fd);
        close(fd);
}

static void probe_links(const Probe *p, const char *self) {
        g_autofree char *tmp = g_strdup_printf("/tmp/vmsig-test-security-%d", (int) getpid());

        /* flink(): a name for the RAM outside our control, to reopen. */
        TRY("linkat-empty-path", linkat(p->fd, "", AT_FDCWD, tmp, AT_EMPTY_PATH));
        if (access(tmp, F_OK) == 0) {
                try_open(p, "linkat-empty-path-open-rdwr", tmp, O_RDWR);
                unlink(tmp);
        }
        TRY("linkat-proc", linkat(AT_FDCWD, self, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW));
        if (access(tmp, F_OK) == 0) {
                try_open(p, "linkat-proc-open-rdwr", tmp, O_RDWR);
                unlink(tmp);
        }

        /* A file handle, opened again with other flags. */
        struct file_handle *h = g_malloc0(sizeof *h + MAX_HANDLE_SZ);
        int mount_id, fd;
        h->handle_bytes = MAX_HANDLE_SZ;
        errno = 0;
        if (name_to_handle_at(p->fd, "", h, &mount_id, AT_EMPTY_PATH) < 0)
                result("open-by-handle", -1, errno);
        else {
                errno = 0;
                fd = open_by_handle_at(p->fd, h, O_RDWR | O_CLOEXEC);
                result("open-by-handle", fd, errno);
                if (fd >= 0) {
                        write_through(p, "open-by-handle", fd);
                        close(fd);
                }
        }
        g_free(h);
}

static void probe_mappings(const Probe *p) {
        guint8 now[sizeof p->orig];
        void *map;
        char path[96];

        map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
        result("mmap-shared-write", map == MAP_FAILED ? -1 : 0, errno);
        if (map != MAP_FAILED) {
                memcpy(map, p->payload, sizeof p->payload);
                munmap(map, 4096);
        }
        map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE, p->fd, 0);
        result("mmap-shared-validate-write", map == MAP_FAILED ? -1 : 0, errno);
        if (map != MAP_FAILED)
                munmap(map, 4096);

        map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, p->fd, 0);
        if (map == MAP_FAILED) {
                result("mmap-shared-read", -1, errno);
                return;
        }
        TRY("mprotect-write", mprotect(map, 4096, PROT_READ | PROT_WRITE));
        TRY("pkey-mprotect-write", pkey_mprotect(map, 4096, PROT_READ | PROT_WRITE, -1));
        /* Would punch a hole into the guest's RAM. */
        TRY("madvise-remove", madvise(map, 4096, MADV_REMOVE));
        /* /proc/self/map_files reopens the mapped file with new flags. */
        snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", (unsigned long) map,
                 (unsigned long) map + 4096);
        try_open(p, "map-files-rdwr", path, O_RDWR);
        munmap(map, 4096);

        /* A private writable mapping is allowed, and is ours alone. */
        map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, p->fd, 0);
        result("mmap-private-write", map == MAP_FAILED ? -1 : 0, errno);
        if (map != MAP_FAILED) {
                memcpy(map, p->payload, sizeof p->payload);
                munmap(map, 4096);
        }
        if (pread(p->fd, now, sizeof now, 0) == (ssize_t) sizeof now)
                printf("private-write-shared %s\n",
                       memcmp(now, p->orig, sizeof now) == 0 ? "unchanged" : "CHANGED");
}

static void probe_size_and_seals(const Probe *p) {
        if (!may_destroy(p)) {
                printf("ftruncate-shrink SKIPPED\nftruncate-grow SKIPPED\nfallocate-punch SKIPPED\n"
                       "fallocate-zero SKIPPED\nfallocate-grow SKIPPED\n");
        } else {
                TRY("ftruncate-shrink", ftruncate(p->fd, 0));
                TRY("ftruncate-grow", ftruncate(p->fd, (off_t) p->size * 2));
                TRY("fallocate-punch", fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
                TRY("fallocate-zero", fallocate(p->fd, FALLOC_FL_ZERO_RANGE, 0, 4096));
                TRY("fallocate-grow", fallocate(p->fd, 0, (off_t) p->size, 4096));
        }
        /* Seals are only ever added; F_SEAL_WRITE would stop the daemon's
         * own writes (MemWrite), a denial of service. */
        TRY("add-seals", fcntl(p->fd, F_ADD_SEALS, F_SEAL_WRITE));
        if (p->gentle) {
                /* Root could: that would change the daemon's file. */
                printf("fchmod SKIPPED\nfchown SKIPPED\n");
        } else {
                TRY("fchmod", fchmod(p->fd, 0666));
                TRY("fchown", fchown(p->fd, getuid(), getgid()));
        }
}

static void probe_copies(const Probe *p) {
        int pipefd[2], src;
        loff_t off = 0, src_off = 0;
        off_t sf_off = 0;

        g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
        g_assert_cmpint(write(pipefd[1], p->payload, sizeof p->payload), ==, (ssize_t) sizeof p->payload);
        TRY("splice-into", splice(pipefd[0], NULL, p->fd, &off, sizeof p->payload, 0));
        close(pipefd[0]);
        close(pipefd[1]);
        src = memfd_create("payload", MFD_CLOEXEC);
        g_assert_cmpint(src, >=, 0);
        g_assert_cmpint(write(src, p->payload, sizeof p->payload), ==, (ssize_t) sizeof p->payload);
        off = 0;
        TRY("sendfile-into", sendfile(p->fd, src, &sf_off, sizeof p->payload));
        TRY("copy-file-range-into", copy_file_range(src, &src_off, p->fd, &off, sizeof p->payload, 0));
        close(src);
}

/* Through the daemon itself: its fds (one is the writable memfd), its
 * memory (it maps the RAM writable). */
static void probe_daemon(const Probe *p, pid_t pid) {
        char path[64];
        int fd, reopened = 0, first_errno = 0;

        snprintf(path, sizeof path, "/proc/%d/fd", (int) pid);
        try_open(p, "daemon-fd-dir", path, O_RDONLY | O_DIRECTORY);
        for (int n = 0; n < 256; n++) {
                snprintf(path, sizeof path, "/proc/%d/fd/%d", (int) pid, n);
                fd = open(path, O_RDWR | O_CLOEXEC);
                if (fd >= 0) {
                        reopened++;
                        close(fd);
                } else if (!first_errno && errno != ENOENT)
                        first_errno = errno;
        }
        if (reopened)
                printf("daemon-fd-reopen OK\n");
        else
                printf("daemon-fd-reopen %s\n", first_errno ? strerrorname_np(first_errno) : "ENOENT");
        snprintf(path, sizeof path, "/proc/%d/mem", (int) pid);
        try_open(p, "daemon-mem", path, O_RDWR);
        struct iovec local = { (void *) p->payload, sizeof p->payload }, remote = { (void *) 0x10000, 16 };
        TRY("process-vm-writev", process_vm_writev(pid, &local, 1, &remote, 1, 0));
}

/* A user namespace makes us "root" there, with every capability; none of
 * them counts for a file owned by a uid the namespace does not map. */
static void probe_userns(const Probe *p, const char *self) {
        pid_t child;
        int status;

        fflush(stdout);
        child = fork();
        g_assert_cmpint(child, >=, 0);
        if (child == 0) {
                char map[64];
                int fd;

                if (unshare(CLONE_NEWUSER) < 0) {
                        printf("userns %s\n", strerrorname_np(errno));
                        fflush(stdout);
                        _exit(0);
                }
                snprintf(map, sizeof map, "0 %u 1", (unsigned) getuid());
                fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
                if (fd < 0 || write(fd, map, strlen(map)) < 0) {
                        printf("userns %s\n", strerrorname_np(errno));
                        fflush(stdout);
                        _exit(0);
                }
                close(fd);
                printf("userns OK\n");
                try_open(p, "userns-reopen-rdwr", self, O_RDWR);
                TRY("userns-fchmod", fchmod(p->fd, 0666));
                fflush(stdout);
                _exit(0);
        }
        (void) waitpid(child, &status, 0);
}

/* Subscribes to path's memory context: p->fd and p->size, or false
 * (and a "subscribe-error" line). */
static gboolean probe_subscribe(GDBusConnection *c, const char *path, Probe *p) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) reply = NULL;
        guint64 dtb, epoch;
        gint32 index;

        reply = g_dbus_connection_call_with_unix_fd_list_sync(c, VT_NAME, path, VT_ENDPOINT_IFACE, "SubscribeMemctx",
                                                              NULL, G_VARIANT_TYPE("(httta(ttt))"),
                                                              G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL, &fds,
                                                              NULL, &error);
        if (!reply) {
                g_autofree char *name = g_dbus_error_get_remote_error(error);
                printf("subscribe-error %s\n", name ?: "(local)");
                return FALSE;
        }
        g_variant_get(reply, "(httt@a(ttt))", &index, &dtb, &epoch, &p->size, NULL);
        p->fd = g_unix_fd_list_get(fds, index, &error);
        g_assert_no_error(error);
        return TRUE;
}

/* What the fd is: its file's mode and owner, its access mode, its seals. */
static void probe_what(Probe *p) {
        struct stat st;
        int seals;

        printf("subscribed OK\n");
        g_assert_cmpint(fstat(p->fd, &st), ==, 0);
        printf("stat mode=%04o uid=%u\n", (unsigned) (st.st_mode & 07777), (unsigned) st.st_uid);
        printf("accmode %s\n", (fcntl(p->fd, F_GETFL) & O_ACCMODE) == O_RDONLY ? "O_RDONLY" : "writable");
        errno = 0;
        seals = fcntl(p->fd, F_GET_SEALS);
        if (seals < 0)
                printf("seals %s\n", strerrorname_np(errno));
        else
                printf("seals 0x%x\n", (unsigned) seals);
        p->sealed = seals >= 0 && (seals & (F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)) ==
                                          (F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW);
}

/* Writes through the fd itself, a duplicate, and the fd reopened (self:
 * its /proc/self/fd path). */
static void probe_writes(Probe *p, const char *self) {
        struct iovec iov = { p->payload, sizeof p->payload };
        int d;

        TRY("write", write(p->fd, p->payload, sizeof p->payload));
        TRY("pwrite", pwrite(p->fd, p->payload, sizeof p->payload, 0));
        TRY("pwritev2", pwritev2(p->fd, &iov, 1, 0, 0));
        /* F_SETFL ignores the access mode: "succeeds", changes nothing. */
        TRY("setfl-rdwr", fcntl(p->fd, F_SETFL, O_RDWR));
        TRY("write-after-setfl", pwrite(p->fd, p->payload, sizeof p->payload, 0));
        d = dup(p->fd);
        TRY("dup-write", pwrite(d, p->payload, sizeof p->payload, 0));
        close(d);

        try_open(p, "reopen-rdwr", self, O_RDWR);
        try_open(p, "reopen-wronly", self, O_WRONLY);
        g_autofree char *devfd = g_strdup_printf("/dev/fd/%d", p->fd);
        try_open(p, "reopen-devfd", devfd, O_RDWR);
        if (may_destroy(p))
                try_open(p, "reopen-rdonly-trunc", self, O_RDONLY | O_TRUNC);
        else
                printf("reopen-rdonly-trunc SKIPPED\n");
}

/* probe PATH PID MODE: subscribes to PATH's memory context and tries to
 * write the RAM through what it got, every way we know. MODE "clobber"
 * tries to put 0xee bytes at offset 0; "gentle" (for root) writes back
 * what is there and skips what would resize or punch an unsealed file.
 * PID is vmsigd's, 0 to leave it alone. */
static void helper_probe(GDBusConnection *c, char **f) {
        Probe p = {};
        char self[64];
        struct stat st;

        if (g_strv_length(f) < 4) {
                printf("error (usage) probe PATH PID MODE\n");
                return;
        }
        if (!probe_subscribe(c, f[1], &p))
                return;
        p.gentle = g_str_equal(f[3], "gentle");
        g_assert_cmpint(pread(p.fd, p.orig, sizeof p.orig, 0), ==, (ssize_t) sizeof p.orig);
        if (p.gentle)
                memcpy(p.payload, p.orig, sizeof p.orig);
        else
                memset(p.payload, 0xee, sizeof p.payload);
        snprintf(self, sizeof self, "/proc/self/fd/%d", p.fd);

        probe_what(&p);
        probe_writes(&p, self);
        probe_mappings(&p);
        probe_size_and_seals(&p);
        probe_links(&p, self);
        probe_copies(&p);
        if (g_ascii_strtoll(f[2], NULL, 10) > 0)
                probe_daemon(&p, (pid_t) g_ascii_strtoll(f[2], NULL, 10));
        if (!p.gentle)
                probe_userns(&p, self);

        guint8 now[sizeof p.orig];
        g_assert_cmpint(pread(p.fd, now, sizeof now, 0), ==, (ssize_t) sizeof now);
        printf("ram-at-0 %s\n", memcmp(now, p.orig, sizeof now) == 0 ? "unchanged" : "CHANGED");
        g_assert_cmpint(fstat(p.fd, &st), ==, 0);
        printf("ram-size %s\n", (guint64) st.st_size == p.size ? "unchanged" : "CHANGED");
        close(p.fd);
}

/* p2p SOCKET N: N raw connections to the private socket, each
 * authenticating as our uid: "connect OK|ERRNO", "auth OK|REJECTED|EOF|ERRNO". */
static void helper_p2p(char **f) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int n = f[1] && f[2] ? (int) g_ascii_strtoll(f[2], NULL, 10) : 0;
        g_autofree char *hex = NULL;
        g_autofree char *uid = g_strdup_printf("%u", (unsigned) geteuid());
        GString *h = g_string_new(NULL);

        for (const char *s = uid; *s; s++)
                g_string_append_printf(h, "%02x", (unsigned char) *s);
        hex = g_string_free(h, FALSE);
        if (n <= 0) {
                printf("error (usage) p2p SOCKET N\n");
                return;
        }
        g_strlcpy(sa.sun_path, f[1], sizeof sa.sun_path);
        for (int i = 0; i < n; i++) {
                g_autofree char *auth = g_strdup_printf("AUTH EXTERNAL %s\r\n", hex);
                struct pollfd pfd;
                char buf[256] = "";
                ssize_t got;
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                g_assert_cmpint(fd, >=, 0);
                errno = 0;
                if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                        result("connect", -1, errno);
                        close(fd);
                        continue;
                }
                printf("connect OK\n");
                /* The daemon may have closed it already: no SIGPIPE. */
                (void) send(fd, "", 1, MSG_NOSIGNAL);
                (void) send(fd, auth, strlen(auth), MSG_NOSIGNAL);
                pfd = (struct pollfd) { .fd = fd, .events = POLLIN };
                if (poll(&pfd, 1, 10000) <= 0) {
                        printf("auth TIMEOUT\n");
                        close(fd);
                        continue;
                }
                errno = 0;
                got = recv(fd, buf, sizeof buf - 1, 0);
                if (got < 0)
                        printf("auth %s\n", strerrorname_np(errno));
                else if (got == 0)
                        printf("auth EOF\n");
                else
                        printf("auth %s\n", strtok(buf, " \r\n"));
                close(fd);
        }
}

static int helper_main(void) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GDBusConnection) c = NULL;
        g_autoptr(GPtrArray) kept = g_ptr_array_new_with_free_func(g_object_unref);
        char line[65536];

        seen = g_ptr_array_new_with_free_func(g_free);
        /* A test that dies closes our stdin: then we go too. */
        while (fgets(line, sizeof line, stdin)) {
                g_auto(GStrv) f = NULL;

                g_strchomp(line);
                f = g_strsplit(line, " ", 7);
                if (!f[0])
                        continue;
                if (g_str_equal(f[0], "p2p")) {
                        helper_p2p(f);
                        goto end;
                }
                if (!c) {
                        c = g_bus_get_sync(G_BUS_TYPE_SYSTEM, NULL, &error);
                        if (!c) {
                                printf("error (connect) %s\nend\n", error->message);
                                fflush(stdout);
                                return 2;
                        }
                        g_dbus_connection_set_exit_on_close(c, FALSE);
                        (void) g_dbus_connection_add_filter(c, on_message, NULL, NULL);
                }
                if (g_str_equal(f[0], "call"))
                        helper_call(c, kept, f);
                else if (g_str_equal(f[0], "probe"))
                        helper_probe(c, f);
                else if (g_str_equal(f[0], "unique"))
                        printf("ok %s\n", g_dbus_connection_get_unique_name(c));
                else if (g_str_equal(f[0], "eavesdrop")) {
                        g_atomic_int_set(&eavesdropping, TRUE);
                        char *cmd[] = { "call", "-", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus", "AddMatch", "(\"eavesdrop='true'\",)", NULL };
                        helper_call(c, kept, cmd);
                        char *own[] = { "call", "-", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus", "AddMatch", "(\"type='signal',sender='org.vmsig'\",)",
                                        NULL };
                        helper_call(c, kept, own);
                } else if (g_str_equal(f[0], "seen")) {
                        g_mutex_lock(&seen_lock);
                        for (guint i = 0; i < seen->len; i++)
                                printf("seen %s\n", (char *) g_ptr_array_index(seen, i));
                        g_mutex_unlock(&seen_lock);
                } else
                        printf("error (usage) unknown command %s\n", f[0]);
end:
                printf("end\n");
                fflush(stdout);
        }
        return 0;
}

/* ===================================================================== */
/* The test side                                                          */
/* ===================================================================== */

typedef struct {
        GSubprocess *proc;
        GOutputStream *in;
        GDataInputStream *out;
} Helper;

static char *self_path(void) {
        return g_build_filename(g_getenv("VMSIG_BUILDDIR"), "tests", "test-security", NULL);
}

/* The helper as nobody (prefix NULL), as root (prefix {NULL}), or under
 * another setpriv incantation. */
static const char *const NOBODY[] = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", NULL };
static const char *const ROOT[] = { NULL };

static Helper *helper_start(const char *const *prefix) {
        g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE |
                                                                     G_SUBPROCESS_FLAGS_STDOUT_PIPE);
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_autofree char *self = self_path();
        g_autoptr(GError) error = NULL;
        Helper *h = g_new0(Helper, 1);

        for (; prefix && *prefix; prefix++)
                g_ptr_array_add(argv, (gpointer) *prefix);
        g_ptr_array_add(argv, self);
        g_ptr_array_add(argv, "--helper");
        g_ptr_array_add(argv, NULL);
        g_subprocess_launcher_unsetenv(l, "NOTIFY_SOCKET");
        g_subprocess_launcher_set_child_setup(l, vt_child_setup, GINT_TO_POINTER(getpid()), NULL);
        h->proc = g_subprocess_launcher_spawnv(l, (const char *const *) argv->pdata, &error);
        g_assert_no_error(error);
        h->in = g_subprocess_get_stdin_pipe(h->proc);
        h->out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(h->proc));
        return h;
}

static void helper_stop(Helper *h) {
        g_autoptr(GError) error = NULL;

        if (!h)
                return;
        (void) g_output_stream_close(h->in, NULL, NULL);
        g_assert_true(g_subprocess_wait(h->proc, NULL, &error));
        g_object_unref(h->out);
        g_object_unref(h->proc);
        g_free(h);
}

/* Sends one command; returns the lines of its answer (before "end"). */
static GStrv helper_run(Helper *h, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static GStrv helper_run(Helper *h, const char *fmt, ...) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GStrvBuilder) b = g_strv_builder_new();
        g_autofree char *cmd = NULL;
        va_list ap;

        va_start(ap, fmt);
        cmd = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        g_autofree char *line = g_strconcat(cmd, "\n", NULL);
        g_assert_true(g_output_stream_write_all(h->in, line, strlen(line), NULL, NULL, &error));
        g_assert_true(g_output_stream_flush(h->in, NULL, &error));
        g_assert_no_error(error);
        for (;;) {
                g_autofree char *got = g_data_input_stream_read_line_utf8(h->out, NULL, NULL, &error);
                g_assert_no_error(error);
                if (!got)
                        g_error("The helper died while running: %s", cmd);
                if (g_str_equal(got, "end"))
                        break;
                g_strv_builder_add(b, got);
        }
        return g_strv_builder_end(b);
}

/* One call through the helper: "ok REPLY" or "error NAME MESSAGE". */
static char *helper_call_line(Helper *h, gboolean interactive, const char *dest, const char *path, const char *iface,
                              const char *method, const char *args) {
        g_auto(GStrv) lines = helper_run(h, "call %s %s %s %s %s%s%s", interactive ? "i" : "-", dest ?: "-", path,
                                         iface ?: "-", method, args ? " " : "", args ?: "");
        g_assert_cmpuint(g_strv_length(lines), ==, 1);
        return g_strdup(lines[0]);
}

/* "ok" or the error name of a result line. */
static char *outcome_of(const char *line) {
        if (g_str_has_prefix(line, "ok"))
                return g_strdup("ok");
        g_auto(GStrv) w = g_strsplit(line, " ", 3);
        return g_strdup(w[0] && w[1] ? w[1] : line);
}

typedef struct {
        VT_FIXTURE;
        Helper *nobody;
        gsize log_mark;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data) {
        vt_fixture_setup(&f->vt, data ?: CONFIG, VT_FIXTURE_POLKIT_REQUIRED);
        if (!f->polkit)
                return;
        f->nobody = helper_start(NOBODY);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        helper_stop(f->nobody);
        vt_fixture_teardown(&f->vt);
}

/* A polkit rule that says yes to the helper when the JavaScript condition
 * holds. Rules are read by every polkitd on the machine, also those of
 * other tests running at the same time: this one is for our helper's
 * process only. */
static void grant_helper(Fixture *f, Helper *h, const char *condition) {
        g_autofree char *ours = g_strdup_printf("subject.pid == %s && subject.user == \"nobody\" && (%s)",
                                                g_subprocess_get_identifier(h->proc), condition);
        vt_polkit_allow(f->polkit, ours);
}

#define EVERY_VMSIG_ACTION "action.id.indexOf(\"org.vmsig.\") == 0"

static GVariant *call_fds(GDBusConnection *c, const char *path, const char *iface, const char *method, GVariant *args,
                          GUnixFDList **fds) {
        g_autoptr(GError) error = NULL;
        GVariant *r = g_dbus_connection_call_with_unix_fd_list_sync(c, VT_NAME, path, iface, method, args, NULL,
                                                                    G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL,
                                                                    fds, NULL, &error);
        g_assert_no_error(error);
        return r;
}

/* root's RAM fd of an endpoint. */
static int subscribe_fd(GDBusConnection *c, const char *path) {
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) r = call_fds(c, path, VT_ENDPOINT_IFACE, "SubscribeMemctx", NULL, &fds);
        g_autoptr(GError) error = NULL;
        int fd = g_unix_fd_list_get(fds, 0, &error);

        g_assert_no_error(error);
        return fd;
}

static char *hash_fd(int fd) {
        g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
        guint8 buf[65536];
        off_t off = 0;
        ssize_t n;

        while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
                g_checksum_update(sum, buf, n);
                off += n;
        }
        g_assert_cmpint(n, ==, 0);
        return g_strdup_printf("%s (%" G_GINT64_FORMAT " bytes)", g_checksum_get_string(sum), (gint64) off);
}

static char *introspect(GDBusConnection *c, const char *path) {
        g_autoptr(GVariant) r = vt_call(c, path, "org.freedesktop.DBus.Introspectable", "Introspect", NULL);
        char *xml = NULL;

        g_variant_get(r, "(s)", &xml);
        return xml;
}

/* Everything a refused call could have changed: the roster, the
 * endpoints' properties (state, epoch, lease holders), the lease objects,
 * and the RAM, byte for byte. */
static char *snapshot(Fixture *f, int ram_alpha, int ram_beta) {
        GString *s = g_string_new(NULL);
        const char *paths[] = { VT_MANAGER_PATH, ALPHA, BETA };
        const char *ifaces[] = { VT_MANAGER_IFACE, VT_ENDPOINT_IFACE, VT_ENDPOINT_IFACE };

        for (size_t i = 0; i < G_N_ELEMENTS(paths); i++) {
                g_autoptr(GVariant) all = vt_call(f->conn, paths[i], "org.freedesktop.DBus.Properties", "GetAll",
                                                  g_variant_new("(s)", ifaces[i]));
                g_autofree char *text = g_variant_print(all, FALSE);
                g_string_append_printf(s, "%s %s\n", paths[i], text);
        }
        g_autofree char *leases = introspect(f->conn, VMSIG_BUS_LEASE_PREFIX);
        g_autoptr(GDBusNodeInfo) node = g_dbus_node_info_new_for_xml(leases, NULL);
        g_string_append(s, "leases:");
        for (GDBusNodeInfo **n = node ? node->nodes : NULL; n && *n; n++)
                g_string_append_printf(s, " %s", (*n)->path);
        g_autofree char *ha = hash_fd(ram_alpha), *hb = hash_fd(ram_beta);
        g_string_append_printf(s, "\nram alpha %s\nram beta %s\n", ha, hb);
        return g_string_free(s, FALSE);
}

/* ------------------------------------------------------------------------ */
/* The caller matrix                                                        */
/* ------------------------------------------------------------------------ */

/* The documented result of each call for nobody, with polkit's defaults
 * (polkit/org.vmsig.policy), no rules and no agent, while root holds the
 * power, input and memory-write leases of alpha.
 *   key: "K INTERFACE.MEMBER", K being M (/org/vmsig), E (an endpoint), L
 *        (a lease object) or * (any object); "P K INTERFACE.PROPERTY" for
 *        a property (Properties.Get; Set is always refused by the bus).
 *   plain: without ALLOW_INTERACTIVE_AUTHORIZATION; interactive: with it
 *        (NULL: the same). "ok" or an error name.
 * Every method and property in the introspection data of the objects must
 * be here: a new one needs a decision, not a default. */
typedef struct {
        const char *key;
        const char *args;
        const char *plain;
        const char *interactive;
} MatrixRow;

#define GENERATED "*"

static const MatrixRow matrix[] = {
        /* Reading: public, no action. */
        { "M org.vmsig.Manager.ListEndpoints", NULL, "ok", NULL },
        { "M org.vmsig.Manager.GetEndpoint", "('alpha',)", "ok", NULL },
        { "M org.vmsig.Manager.GetEndpointByVmid", "(uint32 1,)", "ok", NULL },
        /* org.vmsig.admin: auth_admin. */
        { "M org.vmsig.Manager.Reload", NULL, IAR, ACCESS_DENIED },
        { "M org.vmsig.Manager.DetachEndpoint", "('alpha',)", IAR, ACCESS_DENIED },
        /* org.vmsig.lease-*: auth_admin_keep; force is org.vmsig.admin. */
        { "E org.vmsig.Endpoint.AcquireLease", "('input', @a{sv} {})", IAR, ACCESS_DENIED },
        { "E org.vmsig.Endpoint.AcquireLease", "('power', @a{sv} {})", IAR, ACCESS_DENIED },
        { "E org.vmsig.Endpoint.AcquireLease", "('memory-write', @a{sv} {})", IAR, ACCESS_DENIED },
        { "E org.vmsig.Endpoint.AcquireLease", "('power', {'force': <true>})", IAR, ACCESS_DENIED },
        /* org.vmsig.memctx: auth_admin_keep. */
        { "E org.vmsig.Endpoint.SubscribeMemctx", NULL, IAR, ACCESS_DENIED },
        /* Gives up only what the caller holds. */
        { "E org.vmsig.Endpoint.UnsubscribeMemctx", NULL, "org.vmsig.Error.NotSubscribed", NULL },
        /* org.vmsig.frames: auth_admin (the screen may show secrets). */
        { "E org.vmsig.Endpoint.SubscribeFrames", NULL, IAR, ACCESS_DENIED },
        /* Only a subscriber has a frame to get or a subscription to end. */
        { "E org.vmsig.Endpoint.GetFrame", NULL, "org.vmsig.Error.NotSubscribed", NULL },
        { "E org.vmsig.Endpoint.UnsubscribeFrames", NULL, "org.vmsig.Error.NotSubscribed", NULL },
        /* The lease is checked before polkit is asked. */
        { "E org.vmsig.Endpoint.InjectInput", "([(uint32 0, uint32 30, 1), (uint32 0, uint32 30, 0)],)", NOT_HOLDER,
          NULL },
        { "E org.vmsig.Endpoint.MemWrite", "(uint64 4096, [byte 0xee], @a{sv} {})", NOT_HOLDER, NULL },
        { "E org.vmsig.Endpoint.MemWriteVirtual", "(uint64 4096, [byte 0xee], @a{sv} {})", NOT_HOLDER, NULL },
        { "E org.vmsig.Endpoint.MemWriteBatch", "([(uint64 4096, [byte 0xee])], @a{sv} {})", NOT_HOLDER, NULL },
        { "E org.vmsig.Endpoint.Pause", NULL, NOT_HOLDER, NULL },
        { "E org.vmsig.Endpoint.Resume", NULL, NOT_HOLDER, NULL },
        { "E org.vmsig.Endpoint.Reset", NULL, NOT_HOLDER, NULL },
        { "E org.vmsig.Endpoint.PowerOff", NULL, NOT_HOLDER, NULL },
        { "E org.vmsig.Endpoint.Kill", NULL, NOT_HOLDER, NULL },
        { "L org.vmsig.Lease.Release", NULL, NOT_HOLDER, NULL },
        /* The standard interfaces: the policy lets nobody use all but
         * Properties.Set. */
        { "* org.freedesktop.DBus.Peer.Ping", NULL, "ok", NULL },
        { "* org.freedesktop.DBus.Peer.GetMachineId", NULL, "ok", NULL },
        { "* org.freedesktop.DBus.Introspectable.Introspect", NULL, "ok", NULL },
        { "* org.freedesktop.DBus.Properties.Get", GENERATED, "ok", NULL },
        { "* org.freedesktop.DBus.Properties.GetAll", GENERATED, "ok", NULL },
        { "* org.freedesktop.DBus.Properties.Set", GENERATED, ACCESS_DENIED, NULL },
        { "* org.freedesktop.DBus.ObjectManager.GetManagedObjects", NULL, "ok", NULL },
        /* Every property is readable by everyone. */
        { "P M org.vmsig.Manager.Version", NULL, "ok", NULL },
        { "P M org.vmsig.Manager.EndpointCount", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.Name", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.Uuid", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.Vmid", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.Generation", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.Backend", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.State", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.MemctxEpoch", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.RamSize", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.Capabilities", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.BootstrapState", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.BootstrapAttempts", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.BootstrapMethod", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.GuestOs", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.GuestOsRelease", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.InputLeaseHolder", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.PowerLeaseHolder", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.MemoryWriteLeaseHolder", NULL, "ok", NULL },
        { "P E org.vmsig.Endpoint.Sequence", NULL, "ok", NULL },
        { "P L org.vmsig.Lease.Class", NULL, "ok", NULL },
        { "P L org.vmsig.Lease.Endpoint", NULL, "ok", NULL },
        { "P L org.vmsig.Lease.Holder", NULL, "ok", NULL },
        /* Who holds a lease is public, as a session's leader is in logind. */
        { "P L org.vmsig.Lease.HolderUID", NULL, "ok", NULL },
        { "P L org.vmsig.Lease.HolderPID", NULL, "ok", NULL },
        { "P L org.vmsig.Lease.HolderCommand", NULL, "ok", NULL },
        { "P L org.vmsig.Lease.AcquiredAt", NULL, "ok", NULL },
};

typedef struct {
        char kind;
        const char *path;
} MatrixObject;

/* Every row for kind/iface/member, with the rows for any object; FALSE if
 * there is none. */
static gboolean rows_for(char kind, const char *iface, const char *member, GPtrArray *out) {
        g_autofree char *own = g_strdup_printf("%c %s.%s", kind, iface, member);
        g_autofree char *any = g_strdup_printf("* %s.%s", iface, member);

        for (size_t i = 0; i < G_N_ELEMENTS(matrix); i++)
                if (g_str_equal(matrix[i].key, own) || g_str_equal(matrix[i].key, any))
                        g_ptr_array_add(out, (gpointer) &matrix[i]);
        return out->len > 0;
}

static const MatrixRow *property_row(char kind, const char *iface, const char *prop) {
        g_autofree char *key = g_strdup_printf("P %c %s.%s", kind, iface, prop);

        for (size_t i = 0; i < G_N_ELEMENTS(matrix); i++)
                if (g_str_equal(matrix[i].key, key))
                        return &matrix[i];
        return NULL;
}

typedef struct {
        Fixture *f;
        int ram_alpha, ram_beta;
        char *before;
        guint calls;
        GPtrArray *problems;
} MatrixRun;

/* One call as nobody, both ways, each compared with the table and followed
 * by a look at everything it could have changed. */
static void matrix_call(MatrixRun *m, const MatrixObject *o, const char *iface, const char *method, const char *args,
                        const char *plain, const char *interactive) {
        for (int i = 0; i < 2; i++) {
                const char *want = i && interactive ? interactive : plain;
                g_autofree char *line = helper_call_line(m->f->nobody, i, NULL, o->path, iface, method, args);
                g_autofree char *got = outcome_of(line);
                g_autofree char *after = NULL;

                m->calls++;
                g_test_message("nobody%s %s %s.%s%s%s: %.160s", i ? " (interactive)" : "", o->path, iface, method,
                               args ? " " : "", args ?: "", line);
                if (!g_str_equal(got, want))
                        g_ptr_array_add(m->problems, g_strdup_printf("%s %s.%s %s%s: expected %s, got %s", o->path,
                                                                     iface, method, args ?: "",
                                                                     i ? " (interactive)" : "", want, line));
                if (g_str_equal(want, "ok"))
                        continue;
                /* Refused: nothing may have changed. */
                after = snapshot(m->f, m->ram_alpha, m->ram_beta);
                if (!g_str_equal(after, m->before))
                        g_ptr_array_add(m->problems,
                                        g_strdup_printf("%s %s.%s %s changed the state:\nbefore: %s\nafter: %s",
                                                        o->path, iface, method, args ?: "", m->before, after));
        }
}

static char *value_text(Fixture *f, const char *path, const char *iface, const char *prop) {
        g_autoptr(GVariant) v = vt_get_property(f->conn, path, iface, prop);
        return g_variant_print(v, TRUE);
}

static void matrix_properties(MatrixRun *m, const MatrixObject *o, GDBusInterfaceInfo *iface, const char *member) {
        if (g_str_equal(member, "GetAll")) {
                g_autofree char *args = g_strdup_printf("('%s',)", iface->name);
                const MatrixRow *row = NULL;
                g_autoptr(GPtrArray) rows = g_ptr_array_new();
                g_assert_true(rows_for(o->kind, "org.freedesktop.DBus.Properties", "GetAll", rows));
                row = g_ptr_array_index(rows, 0);
                matrix_call(m, o, "org.freedesktop.DBus.Properties", "GetAll", args, row->plain, row->interactive);
                return;
        }
        for (GDBusPropertyInfo **p = iface->properties; p && *p; p++) {
                const MatrixRow *prop = property_row(o->kind, iface->name, (*p)->name);
                g_autofree char *args = NULL;

                if (!prop) {
                        g_ptr_array_add(m->problems, g_strdup_printf("property %s.%s of %s is not in the matrix",
                                                                     iface->name, (*p)->name, o->path));
                        continue;
                }
                if (g_str_equal(member, "Get")) {
                        args = g_strdup_printf("('%s', '%s')", iface->name, (*p)->name);
                        matrix_call(m, o, "org.freedesktop.DBus.Properties", "Get", args, prop->plain,
                                    prop->interactive);
                } else {
                        /* Set the value it has: the attempt, not a change. */
                        g_autoptr(GPtrArray) rows = g_ptr_array_new();
                        g_autofree char *value = value_text(m->f, o->path, iface->name, (*p)->name);
                        g_assert_true(rows_for(o->kind, "org.freedesktop.DBus.Properties", "Set", rows));
                        const MatrixRow *row = g_ptr_array_index(rows, 0);
                        args = g_strdup_printf("('%s', '%s', <%s>)", iface->name, (*p)->name, value);
                        matrix_call(m, o, "org.freedesktop.DBus.Properties", "Set", args, row->plain,
                                    row->interactive);
                }
        }
}

static void matrix_object(MatrixRun *m, const MatrixObject *o) {
        g_autofree char *xml = introspect(m->f->conn, o->path);
        g_autoptr(GError) error = NULL;
        g_autoptr(GDBusNodeInfo) node = g_dbus_node_info_new_for_xml(xml, &error);

        g_assert_no_error(error);
        for (GDBusInterfaceInfo **i = node->interfaces; *i; i++)
                for (GDBusMethodInfo **me = (*i)->methods; me && *me; me++) {
                        g_autoptr(GPtrArray) rows = g_ptr_array_new();

                        if (!rows_for(o->kind, (*i)->name, (*me)->name, rows)) {
                                g_ptr_array_add(m->problems, g_strdup_printf("%s.%s of %s is not in the matrix",
                                                                             (*i)->name, (*me)->name, o->path));
                                continue;
                        }
                        for (guint r = 0; r < rows->len; r++) {
                                const MatrixRow *row = g_ptr_array_index(rows, r);
                                if (g_strcmp0(row->args, GENERATED) != 0) {
                                        matrix_call(m, o, (*i)->name, (*me)->name, row->args, row->plain,
                                                    row->interactive);
                                        continue;
                                }
                                /* Properties: once per interface that has some. */
                                for (GDBusInterfaceInfo **pi = node->interfaces; *pi; pi++)
                                        if ((*pi)->properties && (*pi)->properties[0])
                                                matrix_properties(m, o, *pi, (*me)->name);
                        }
                }
}

static char *lease_path_of(GVariant *reply) {
        const char *path;
        gint32 h;

        g_variant_get(reply, "(&oh)", &path, &h);
        return g_strdup(path);
}

static int acquire(GDBusConnection *c, const char *path, const char *class, char **lease_path) {
        return vt_acquire_lease(c, path, class, lease_path);
}

static void report_problems(GPtrArray *problems) {
        for (guint i = 0; i < problems->len; i++)
                g_test_message("PROBLEM: %s", (char *) g_ptr_array_index(problems, i));
        if (problems->len > 0)
                g_test_fail_printf("%u problems; see the messages above", problems->len);
}

/* nobody, no polkit rules: every method and property, both ways. */
static void test_matrix_denied(Fixture *f, gconstpointer data) {
        g_autofree char *power_lease = NULL;
        MatrixRun m = { .f = f, .problems = g_ptr_array_new_with_free_func(g_free) };

        if (!f->polkit)
                return;
        int leases[] = {
                acquire(f->conn, ALPHA, "power", &power_lease),
                acquire(f->conn, ALPHA, "input", NULL),
                acquire(f->conn, ALPHA, "memory-write", NULL),
        };
        m.ram_alpha = subscribe_fd(f->conn, ALPHA);
        m.ram_beta = subscribe_fd(f->conn, BETA);
        /* Something in the RAM, so that a write of anything shows. */
        g_autoptr(GVariant) w = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "MemWrite",
                                        g_variant_new_parsed("(uint64 4096, [byte 0x5a, 0x5a], @a{sv} {})"));
        m.before = snapshot(f, m.ram_alpha, m.ram_beta);
        g_test_message("state: %s", m.before);

        const MatrixObject objects[] = { { 'M', VT_MANAGER_PATH }, { 'E', ALPHA }, { 'L', power_lease } };
        for (size_t i = 0; i < G_N_ELEMENTS(objects); i++)
                matrix_object(&m, &objects[i]);
        g_test_message("%u calls made as nobody", m.calls);
        report_problems(m.problems);

        for (size_t i = 0; i < G_N_ELEMENTS(leases); i++)
                close(leases[i]);
        close(m.ram_alpha);
        close(m.ram_beta);
        g_free(m.before);
        g_ptr_array_unref(m.problems);
}

/* ------------------------------------------------------------------------ */
/* polkit grants nobody everything: the leases and the lifecycle decide     */
/* ------------------------------------------------------------------------ */

#define EP VT_ENDPOINT_IFACE
#define MGR VT_MANAGER_IFACE
#define LEASE VT_LEASE_IFACE
#define PEER "org.freedesktop.DBus.Peer"
#define INTRO "org.freedesktop.DBus.Introspectable"
#define PROPS "org.freedesktop.DBus.Properties"
#define OBJMGR "org.freedesktop.DBus.ObjectManager"
#define BUSY "org.vmsig.Error.LeaseBusy"
#define INVALID_STATE "org.vmsig.Error.InvalidState"
#define PAGE_TABLES                                                                     \
        "([(uint64 0x10000, [byte 0x03, 0x10, 0x01, 0, 0, 0, 0, 0]),"                  \
        " (uint64 0x11000, [byte 0x03, 0x20, 0x01, 0, 0, 0, 0, 0]),"                   \
        " (uint64 0x12000, [byte 0x83, 0, 0, 0, 0, 0, 0, 0])], @a{sv} {})"

/* One call of the script. obj: M, E (alpha), B (beta), L (the lease nobody
 * took last), R (root's power lease on alpha). check: after the call,
 * "K PROPERTY VALUE" ($NOBODY and $ROOT stand for the unique names; '' is
 * empty) or "ram OFFSET HEXBYTES" for alpha's RAM. */
typedef struct {
        char obj;
        const char *iface, *method, *args, *want, *check;
} Step;

static const Step granted_script[] = {
        /* polkit says yes; root holds the leases. */
        { 'E', EP, "Pause", NULL, NOT_HOLDER, "E State running" },
        { 'E', EP, "AcquireLease", "('power', @a{sv} {})", BUSY, "E PowerLeaseHolder $ROOT" },
        { 'R', LEASE, "Release", NULL, NOT_HOLDER, "E PowerLeaseHolder $ROOT" },
        { 'E', EP, "AcquireLease", "('power', {'force': <true>})", "ok", "E PowerLeaseHolder $NOBODY" },
        { 'E', EP, "Pause", NULL, "ok", "E State paused" },
        { 'E', EP, "Pause", NULL, INVALID_STATE, "E State paused" },
        { 'E', EP, "Resume", NULL, "ok", "E State running" },
        { 'E', EP, "AcquireLease", "('memory-write', @a{sv} {})", BUSY, "E MemoryWriteLeaseHolder $ROOT" },
        { 'E', EP, "AcquireLease", "('memory-write', {'force': <true>})", "ok", "E MemoryWriteLeaseHolder $NOBODY" },
        { 'E', EP, "MemWrite", "(uint64 0x2000, [byte 0x11, 0x22], @a{sv} {})", "ok", "ram 0x2000 1122" },
        { 'E', EP, "MemWriteBatch", PAGE_TABLES, "ok", "ram 0x11000 03200100" },
        { 'E', EP, "MemWriteVirtual", "(uint64 0x4000, [byte 0x55], @a{sv} {})", "ok", "ram 0x4000 55" },
        { 'E', EP, "AcquireLease", "('input', @a{sv} {})", "ok", "E InputLeaseHolder $NOBODY" },
        { 'E', EP, "InjectInput", "([(uint32 0, uint32 30, 1), (uint32 0, uint32 30, 0)],)", "ok", NULL },
        { 'L', LEASE, "Release", NULL, "ok", "E InputLeaseHolder ''" },
        { 'E', EP, "InjectInput", "([(uint32 0, uint32 30, 1)],)", NOT_HOLDER, NULL },
        { 'E', EP, "SubscribeMemctx", NULL, "ok", NULL },
        { 'E', EP, "UnsubscribeMemctx", NULL, "ok", NULL },
        { 'E', EP, "UnsubscribeMemctx", NULL, "org.vmsig.Error.NotSubscribed", NULL },
        { 'E', EP, "SubscribeFrames", NULL, "ok", NULL },
        { 'E', EP, "GetFrame", NULL, "ok", NULL },
        { 'E', EP, "UnsubscribeFrames", NULL, "ok", NULL },
        { 'E', EP, "GetFrame", NULL, "org.vmsig.Error.NotSubscribed", NULL },
        /* A reset revokes every lease of the endpoint. */
        { 'E', EP, "Reset", NULL, "ok", "E MemctxEpoch 2" },
        { 'E', EP, "Pause", NULL, NOT_HOLDER, "E PowerLeaseHolder ''" },
        { 'E', EP, "MemWrite", "(uint64 0x2000, [byte 0x33], @a{sv} {})", NOT_HOLDER, "ram 0x2000 1122" },
        { 'E', EP, "AcquireLease", "('power', @a{sv} {})", "ok", "E PowerLeaseHolder $NOBODY" },
        /* The standard interfaces of a lease object. */
        { 'L', PEER, "Ping", NULL, "ok", NULL },
        { 'L', PEER, "GetMachineId", NULL, "ok", NULL },
        { 'L', INTRO, "Introspect", NULL, "ok", NULL },
        { 'L', PROPS, "Get", "('org.vmsig.Lease', 'Class')", "ok", NULL },
        { 'L', PROPS, "GetAll", "('org.vmsig.Lease',)", "ok", NULL },
        { 'L', PROPS, "Set", "('org.vmsig.Lease', 'Class', <'input'>)", ACCESS_DENIED, NULL },
        { 'E', EP, "PowerOff", NULL, "ok", "E State shut-off" },
        { 'E', EP, "Kill", NULL, INVALID_STATE, "E State shut-off" },
        { 'B', EP, "AcquireLease", "('power', @a{sv} {})", "ok", "B PowerLeaseHolder $NOBODY" },
        { 'B', EP, "Kill", NULL, "ok", "B State shut-off" },
        /* org.vmsig.admin. */
        { 'M', MGR, "Reload", NULL, "ok", "M EndpointCount 2" },
        { 'M', MGR, "DetachEndpoint", "('beta',)", "ok", "M EndpointCount 1" },
        { 'M', MGR, "ListEndpoints", NULL, "ok", NULL },
        { 'M', MGR, "GetEndpoint", "('alpha',)", "ok", NULL },
        { 'M', MGR, "GetEndpoint", "('beta',)", "org.vmsig.Error.NoSuchEndpoint", NULL },
        { 'M', MGR, "GetEndpointByVmid", "(uint32 1,)", "ok", NULL },
        /* Properties.Set stays the bus's to refuse. */
        { 'M', PEER, "Ping", NULL, "ok", NULL },
        { 'M', PEER, "GetMachineId", NULL, "ok", NULL },
        { 'M', INTRO, "Introspect", NULL, "ok", NULL },
        { 'M', PROPS, "Get", "('org.vmsig.Manager', 'Version')", "ok", NULL },
        { 'M', PROPS, "GetAll", "('org.vmsig.Manager',)", "ok", NULL },
        { 'M', PROPS, "Set", "('org.vmsig.Manager', 'EndpointCount', <uint32 7>)", ACCESS_DENIED, "M EndpointCount 1" },
        { 'M', OBJMGR, "GetManagedObjects", NULL, "ok", NULL },
        { 'E', PEER, "Ping", NULL, "ok", NULL },
        { 'E', PEER, "GetMachineId", NULL, "ok", NULL },
        { 'E', INTRO, "Introspect", NULL, "ok", NULL },
        { 'E', PROPS, "Get", "('org.vmsig.Endpoint', 'State')", "ok", NULL },
        { 'E', PROPS, "GetAll", "('org.vmsig.Endpoint',)", "ok", NULL },
        { 'E', PROPS, "Set", "('org.vmsig.Endpoint', 'State', <'running'>)", ACCESS_DENIED, "E State shut-off" },
};

static char kind_of(char obj) {
        return obj == 'B' ? 'E' : obj == 'R' ? 'L' : obj;
}

static void check_after(Fixture *f, const Step *s, const char *nobody, int ram, GPtrArray *problems) {
        g_auto(GStrv) w = g_strsplit(s->check, " ", 3);
        g_autofree char *got = NULL, *want = NULL;

        if (g_str_equal(w[0], "ram")) {
                guint64 off = g_ascii_strtoull(w[1], NULL, 0);
                guint8 buf[16];
                size_t n = strlen(w[2]) / 2;
                GString *hex = g_string_new(NULL);

                g_assert_cmpint(pread(ram, buf, n, (off_t) off), ==, (ssize_t) n);
                for (size_t i = 0; i < n; i++)
                        g_string_append_printf(hex, "%02x", buf[i]);
                got = g_string_free(hex, FALSE);
                want = g_strdup(w[2]);
        } else {
                const char *path = w[0][0] == 'M' ? VT_MANAGER_PATH : w[0][0] == 'B' ? BETA : ALPHA;
                g_autoptr(GVariant) v = vt_get_property(f->conn, path, w[0][0] == 'M' ? MGR : EP, w[1]);
                got = g_variant_is_of_type(v, G_VARIANT_TYPE_STRING) ? g_variant_dup_string(v, NULL)
                                                                      : g_variant_print(v, FALSE);
                if (g_str_equal(w[2], "$NOBODY"))
                        want = g_strdup(nobody);
                else if (g_str_equal(w[2], "$ROOT"))
                        want = g_strdup(g_dbus_connection_get_unique_name(f->conn));
                else if (g_str_equal(w[2], "''"))
                        want = g_strdup("");
                else
                        want = g_strdup(w[2]);
        }
        if (!g_str_equal(got, want))
                g_ptr_array_add(problems, g_strdup_printf("after %c %s.%s %s: %s is '%s', expected '%s'", s->obj,
                                                          s->iface, s->method, s->args ?: "", s->check, got, want));
}

/* Every method of the object kinds the introspection shows. */
static void methods_of(GDBusConnection *c, char kind, const char *path, GHashTable *into) {
        g_autofree char *xml = introspect(c, path);
        g_autoptr(GDBusNodeInfo) node = g_dbus_node_info_new_for_xml(xml, NULL);

        g_assert_nonnull(node);
        for (GDBusInterfaceInfo **i = node->interfaces; *i; i++)
                for (GDBusMethodInfo **m = (*i)->methods; m && *m; m++)
                        g_hash_table_add(into, g_strdup_printf("%c %s.%s", kind, (*i)->name, (*m)->name));
}

static void test_matrix_granted(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GHashTable) all = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_autoptr(GHashTable) called = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_autofree char *root_lease = NULL, *last_lease = NULL, *nobody = NULL;

        if (!f->polkit)
                return;
        int power = acquire(f->conn, ALPHA, "power", &root_lease);
        int memwrite = acquire(f->conn, ALPHA, "memory-write", NULL);
        int ram = subscribe_fd(f->conn, ALPHA);
        methods_of(f->conn, 'M', VT_MANAGER_PATH, all);
        methods_of(f->conn, 'E', ALPHA, all);
        methods_of(f->conn, 'L', root_lease, all);
        grant_helper(f, f->nobody, EVERY_VMSIG_ACTION);
        g_auto(GStrv) unique = helper_run(f->nobody, "unique");
        nobody = g_strdup(unique[0] + 3);

        for (size_t i = 0; i < G_N_ELEMENTS(granted_script); i++) {
                const Step *s = &granted_script[i];
                const char *path = s->obj == 'M'   ? VT_MANAGER_PATH
                                   : s->obj == 'B' ? BETA
                                   : s->obj == 'L' ? last_lease
                                   : s->obj == 'R' ? root_lease
                                                   : ALPHA;
                g_autofree char *line = helper_call_line(f->nobody, FALSE, NULL, path, s->iface, s->method, s->args);
                g_autofree char *got = outcome_of(line);

                g_test_message("nobody %s %s.%s %s: %.160s", path, s->iface, s->method, s->args ?: "", line);
                g_hash_table_add(called, g_strdup_printf("%c %s.%s", kind_of(s->obj), s->iface, s->method));
                if (!g_str_equal(got, s->want))
                        g_ptr_array_add(problems, g_strdup_printf("%s %s.%s %s: expected %s, got %s", path, s->iface,
                                                                  s->method, s->args ?: "", s->want, line));
                if (g_str_equal(got, "ok") && g_str_equal(s->method, "AcquireLease")) {
                        g_autoptr(GVariant) reply = g_variant_parse(NULL, line + 3, NULL, NULL, NULL);
                        g_assert_nonnull(reply);
                        g_free(last_lease);
                        last_lease = lease_path_of(reply);
                }
                if (s->check)
                        check_after(f, s, nobody, ram, problems);
        }
        /* A method the script never called is a method nobody checked. */
        GHashTableIter it;
        const char *key;
        g_hash_table_iter_init(&it, all);
        while (g_hash_table_iter_next(&it, (gpointer *) &key, NULL))
                if (!g_hash_table_contains(called, key))
                        g_ptr_array_add(problems, g_strdup_printf("%s is not in the granted script", key));
        report_problems(problems);
        close(power);
        close(memwrite);
        close(ram);
}

/* A rule for one endpoint grants that endpoint only, also to a caller that
 * already used the grant on another endpoint over the same connection:
 * org.vmsig.lifecycle is checked with the endpoint in its details, and the
 * kept grant must not outgrow them. org.vmsig.lease-power implies
 * org.vmsig.lifecycle; polkit checks the implication with the lifecycle
 * call's details (class "lifecycle"), so this rule grants the lease alone
 * by its class "power". */
static void test_grant_per_endpoint(Fixture *f, gconstpointer data) {
        if (!f->polkit)
                return;
        grant_helper(f, f->nobody,
                     "(action.id == \"org.vmsig.lease-power\" && action.lookup(\"class\") == \"power\") ||"
                     " (action.id == \"org.vmsig.lifecycle\" && action.lookup(\"endpoint\") == \"alpha\")");
        const struct {
                const char *path, *method, *args, *want;
        } steps[] = {
                { ALPHA, "AcquireLease", "('power', @a{sv} {})", "ok" },
                { ALPHA, "Pause", NULL, "ok" },
                { BETA, "AcquireLease", "('power', @a{sv} {})", "ok" },
                { BETA, "Pause", NULL, IAR },
                { BETA, "Resume", NULL, IAR },
                { ALPHA, "Resume", NULL, "ok" },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(steps); i++) {
                g_autofree char *line = helper_call_line(f->nobody, FALSE, NULL, steps[i].path, EP, steps[i].method,
                                                         steps[i].args);
                g_autofree char *got = outcome_of(line);
                g_test_message("nobody %s %s: %s", steps[i].path, steps[i].method, line);
                g_assert_cmpstr(got, ==, steps[i].want);
        }
        g_autofree char *beta = vt_get_string(f->conn, BETA, EP, "State");
        g_assert_cmpstr(beta, ==, "running");
}

/* ------------------------------------------------------------------------ */
/* The RAM fd                                                               */
/* ------------------------------------------------------------------------ */

/* What each receiver of the RAM fd gets on each route it tries, one column
 * a receiver: nobody and root, of the stub's memfd and of QEMU's RAM file.
 *
 * Root may reopen the memfd for writing (and more); the seals stop every
 * write all the same. QEMU's RAM file is not a memfd: nothing seals it, and
 * only its mode (0600, umask 077) and the fd's access mode keep a receiver
 * out; root reopens it for writing and writes (the same bytes back).
 *
 * An expected result is "OK", an errno name, "!OK" (any failure), "any",
 * or a value ("mode=0600 uid=0"); NULL: the receiver does not try that
 * route. A route starting with '*' matches by suffix. A route in the output
 * that the column does not know fails, and so does a missing one unless it
 * is marked optional (leading '?'). */
typedef enum {
        NOBODY_MEMFD,
        ROOT_MEMFD,
        NOBODY_QEMU,
        ROOT_QEMU,
        N_RECEIVERS,
} Receiver;

typedef struct {
        const char *route;
        const char *want[N_RECEIVERS];
} Expect;

#define SAME(w) { w, w, w, w }
static const Expect fd_routes[] = {
        { "subscribed", SAME("OK") },
        { "stat", SAME("mode=0600 uid=0") },
        { "accmode", SAME("O_RDONLY") },
        { "seals", { "0x17", "0x17", "EINVAL", "EINVAL" } }, /* SEAL | SHRINK | GROW | FUTURE_WRITE */
        { "write", SAME("EBADF") },
        { "pwrite", SAME("EBADF") },
        { "pwritev2", SAME("EBADF") },
        { "setfl-rdwr", SAME("OK") },
        { "write-after-setfl", SAME("EBADF") },
        { "dup-write", SAME("EBADF") },
        { "reopen-rdwr", { "EACCES", "OK", "EACCES", "OK" } },
        { "reopen-rdwr-write", { NULL, NULL, NULL, "OK" } },
        { "reopen-rdwr-mmap-write", { NULL, NULL, NULL, "OK" } },
        { "reopen-wronly", { "EACCES", "OK", "EACCES", "OK" } },
        { "reopen-devfd", { "EACCES", "OK", "EACCES", "OK" } },
        { "reopen-rdonly-trunc", { "EACCES", "EPERM", "EACCES", "SKIPPED" } },
        { "*-write", { NULL, "!OK", NULL, "any" } },
        { "*-mmap-write", { NULL, "!OK", NULL, NULL } },
        { "*-ftruncate", { NULL, "EPERM", NULL, NULL } },
        { "*-fallocate-punch", { NULL, "EPERM", NULL, NULL } },
        { "mmap-shared-write", SAME("EACCES") },
        { "mmap-shared-validate-write", SAME("EACCES") },
        { "mprotect-write", SAME("EACCES") },
        { "pkey-mprotect-write", SAME("EACCES") },
        { "madvise-remove", SAME("EACCES") },
        { "map-files-rdwr", { "!OK", "any", "!OK", "any" } },
        { "mmap-private-write", SAME("OK") },
        { "private-write-shared", SAME("unchanged") },
        { "ftruncate-shrink", { "EINVAL", "EINVAL", "EINVAL", "SKIPPED" } },
        { "ftruncate-grow", { "EINVAL", "EINVAL", "EINVAL", "SKIPPED" } },
        { "fallocate-punch", { "EBADF", "EBADF", "EBADF", "SKIPPED" } },
        { "fallocate-zero", { "EBADF", "EBADF", "EBADF", "SKIPPED" } },
        { "fallocate-grow", { "EBADF", "EBADF", "EBADF", "SKIPPED" } },
        { "add-seals", SAME("EPERM") }, /* F_ADD_SEALS wants a writable fd first */
        { "fchmod", { "EPERM", "SKIPPED", "EPERM", "SKIPPED" } },
        { "fchown", { "EPERM", "SKIPPED", "EPERM", "SKIPPED" } },
        { "linkat-empty-path", { "!OK", "any", "!OK", "any" } },
        { "?linkat-empty-path-open-rdwr", { NULL, NULL, NULL, "any" } },
        { "linkat-proc", { "!OK", "any", "!OK", "any" } },
        { "?linkat-proc-open-rdwr", { NULL, NULL, NULL, "any" } },
        { "open-by-handle", { "!OK", "any", "!OK", "any" } },
        { "splice-into", SAME("EBADF") },
        { "sendfile-into", SAME("EBADF") },
        { "copy-file-range-into", SAME("EBADF") },
        { "daemon-fd-dir", { "EACCES", NULL, "EACCES", NULL } },
        { "daemon-fd-reopen", { "EACCES", NULL, "EACCES", NULL } },
        { "daemon-mem", { "EACCES", NULL, "EACCES", NULL } },
        { "process-vm-writev", { "EPERM", NULL, "EPERM", NULL } },
        { "userns", { "any", NULL, "any", NULL } },
        { "?userns-reopen-rdwr", { "EACCES", NULL, "EACCES", NULL } },
        { "?userns-fchmod", { "EPERM", NULL, "EPERM", NULL } },
        { "ram-at-0", SAME("unchanged") },
        { "ram-size", SAME("unchanged") },
};
#undef SAME

/* The routes receiver r tries. */
#define FOREACH_ROUTE(e, r)                                                          \
        for (const Expect *e = fd_routes; e < fd_routes + G_N_ELEMENTS(fd_routes); e++) \
                if (e->want[r])

static const Expect *expect_for(Receiver r, const char *route) {
        FOREACH_ROUTE(e, r) {
                const char *name = e->route[0] == '?' ? e->route + 1 : e->route;
                if (g_str_equal(name, route))
                        return e;
        }
        FOREACH_ROUTE(e, r)
                if (e->route[0] == '*' && g_str_has_suffix(route, e->route + 1))
                        return e;
        return NULL;
}

static void check_probe(GStrv lines, Receiver r) {
        g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GHashTable) got = g_hash_table_new(g_str_hash, g_str_equal);

        for (char **l = lines; *l; l++) {
                g_auto(GStrv) w = g_strsplit(*l, " ", 2);
                const Expect *e = expect_for(r, w[0]);
                const char *value = w[1] ?: "";

                g_test_message("probe: %s", *l);
                g_hash_table_add(got, (gpointer) g_intern_string(w[0]));
                if (!e) {
                        g_ptr_array_add(problems, g_strdup_printf("unexpected: %s", *l));
                        continue;
                }
                const char *want = e->want[r];
                if (g_str_equal(want, "any"))
                        continue;
                if (g_str_equal(want, "!OK") ? g_str_equal(value, "OK") : !g_str_equal(value, want))
                        g_ptr_array_add(problems, g_strdup_printf("%s: expected %s", *l, want));
        }
        FOREACH_ROUTE(e, r)
                if (e->route[0] != '?' && e->route[0] != '*' && !g_hash_table_contains(got, g_intern_string(e->route)))
                        g_ptr_array_add(problems, g_strdup_printf("%s was not tried", e->route));
        report_problems(problems);
}

#define MEMCTX_ONLY "action.id == \"org.vmsig.memctx\""

/* nobody (clobbering: it also goes for vmsigd) and root (gently) probe the
 * RAM fd of the endpoint at path, each as its column of fd_routes says;
 * the RAM, seen through ram, stays byte for byte what it was. */
static void probe_ram_fd(Fixture *f, const char *path, int ram, Receiver nobody_column, Receiver root_column) {
        g_autofree char *before = hash_fd(ram);

        grant_helper(f, f->nobody, MEMCTX_ONLY);
        g_auto(GStrv) nobody = helper_run(f->nobody, "probe %s %d clobber", path, (int) vt_daemon_pid(f->daemon));
        check_probe(nobody, nobody_column);
        g_autofree char *after = hash_fd(ram);
        g_assert_cmpstr(after, ==, before);

        Helper *root = helper_start(ROOT);
        g_auto(GStrv) as_root = helper_run(root, "probe %s 0 gentle", path);
        helper_stop(root);
        check_probe(as_root, root_column);
        g_autofree char *after_root = hash_fd(ram);
        g_assert_cmpstr(after_root, ==, before);
}

/* Every route nobody has to write through the fd it received (and to the
 * daemon behind it) fails, and the RAM stays byte for byte what it was. */
static void test_ram_fd_stub(Fixture *f, gconstpointer data) {
        if (!f->polkit)
                return;
        int lease = acquire(f->conn, ALPHA, "memory-write", NULL);
        g_autoptr(GVariant) w = vt_call(f->conn, ALPHA, EP, "MemWrite",
                                        g_variant_new_parsed("(uint64 0, [byte 1, 2, 3, 4, 5, 6, 7, 8], @a{sv} {})"));
        close(lease);
        int ram = subscribe_fd(f->conn, ALPHA);
        g_autofree char *epoch = value_text(f, ALPHA, EP, "MemctxEpoch");

        probe_ram_fd(f, ALPHA, ram, NOBODY_MEMFD, ROOT_MEMFD);
        g_autofree char *epoch_after = value_text(f, ALPHA, EP, "MemctxEpoch");
        g_assert_cmpstr(epoch_after, ==, epoch);
        g_autofree char *state = vt_get_string(f->conn, ALPHA, EP, "State");
        g_assert_cmpstr(state, ==, "running");
        close(ram);
}

#ifdef VMSIG_HAVE_QMP
#define GUEST VT_ENDPOINT("guest")

/* Connected to QEMU (running), with the RAM published. */
static gboolean guest_ready(gpointer data) {
        Fixture *f = data;
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(f->conn, VT_NAME, GUEST, PROPS, "GetAll",
                                                            g_variant_new("(s)", EP), NULL, G_DBUS_CALL_FLAGS_NONE,
                                                            5000, NULL, NULL);
        g_autoptr(GVariant) all = NULL;
        const char *state = NULL;
        guint64 size = 0;

        if (!r)
                return FALSE;
        all = g_variant_get_child_value(r, 0);
        return g_variant_lookup(all, "State", "&s", &state) && g_str_equal(state, "running") &&
               g_variant_lookup(all, "RamSize", "t", &size) && size == QEMU_RAM_SIZE;
}

/* The same routes against the QEMU backend's RAM fd (armed build). */
static void test_ram_fd_qemu(void) {
        Fixture fx = {}, *f = &fx;
        QemuVm *qemu;

        if (!qemu_harness_available())
                return;
        qemu = qemu_vm_new();
        qemu_vm_start(qemu);
        vt_fixture_setup_discovering(&f->vt, "<audit target=\"stderr\"/>", VT_FIXTURE_POLKIT_REQUIRED);
        if (!f->polkit) {
                vt_fixture_teardown(&f->vt);
                qemu_vm_free(qemu);
                return;
        }
        f->nobody = helper_start(NOBODY);
        vt_write_trigger(f->trigger_dir, "guest", NULL, qemu->ram_path, qemu->qmp_path);
        g_assert_true(vt_wait_for(guest_ready, f, 20000));

        /* A paused guest does not change its RAM under the comparison. */
        int power = acquire(f->conn, GUEST, "power", NULL);
        g_autoptr(GVariant) p = vt_call(f->conn, GUEST, EP, "Pause", NULL);
        int ram = subscribe_fd(f->conn, GUEST);

        probe_ram_fd(f, GUEST, ram, NOBODY_QEMU, ROOT_QEMU);
        close(ram);
        close(power);
        fixture_teardown(f, NULL);
        qemu_vm_free(qemu);
}
#endif

/* ------------------------------------------------------------------------ */
/* The private socket                                                       */
/* ------------------------------------------------------------------------ */

/* The audit records written since the last look. */
static GStrv new_records(Fixture *f) {
        g_autofree char *log = vt_daemon_log(f->daemon);
        g_autoptr(GStrvBuilder) b = g_strv_builder_new();
        gsize len = strlen(log);
        g_auto(GStrv) lines = g_strsplit(log + MIN(f->log_mark, len), "\n", -1);

        for (char **l = lines; *l; l++)
                if (strstr(*l, "vmsig-audit: "))
                        g_strv_builder_add(b, *l);
        f->log_mark = len;
        return g_strv_builder_end(b);
}

static char *log_since(Fixture *f, gsize mark) {
        g_autofree char *log = vt_daemon_log(f->daemon);
        return g_strdup(log + MIN(mark, strlen(log)));
}

static guint count_lines(GStrv lines, const char *needle) {
        guint n = 0;

        for (char **l = lines; *l; l++)
                if (strstr(*l, needle))
                        n++;
        return n;
}

/* Non-root peers are refused before a byte of D-Bus is read: with the
 * socket's mode (0600) in their way, or, with CAP_DAC_OVERRIDE, by
 * SO_PEERCRED (whose uid is the effective one). Each refusal is one
 * record, nothing is granted or served, and the daemon keeps no fd. */
static void test_p2p_refuses_non_root(Fixture *f, gconstpointer data) {
        const char *const dac[] = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                    "--inh-caps=+dac_override", "--ambient-caps=+dac_override", NULL };
        const char *const euid_only[] = { "setpriv", "--euid=nobody", "--egid=nogroup", "--clear-groups",
                                          "--inh-caps=+dac_override", "--ambient-caps=+dac_override", NULL };
        const char *const *who[] = { NOBODY, dac, euid_only };
        const char *const label[] = { "nobody", "nobody with CAP_DAC_OVERRIDE", "euid nobody with CAP_DAC_OVERRIDE" };
        const char *socket = vt_daemon_private_socket(f->daemon);
        guint connected = 0;
        gsize mark;

        if (!f->polkit)
                return;
        g_autoptr(GVariant) ping = vt_call(f->conn, VT_MANAGER_PATH, PEER, "Ping", NULL);
        guint fds = vt_count_fds(vt_daemon_pid(f->daemon));
        g_strfreev(new_records(f));
        mark = f->log_mark;

        for (size_t i = 0; i < G_N_ELEMENTS(who); i++) {
                Helper *h = helper_start(who[i]);
                g_auto(GStrv) lines = helper_run(h, "p2p %s 4", socket);
                helper_stop(h);
                for (char **l = lines; *l; l++)
                        g_test_message("%s: %s", label[i], *l);
                g_assert_cmpuint(count_lines(lines, "auth OK"), ==, 0);
                g_assert_cmpuint(count_lines(lines, "connect "), ==, 4);
                connected += count_lines(lines, "connect OK");
                if (i == 0)
                        g_assert_cmpuint(count_lines(lines, "connect EACCES"), ==, 4);
                if (i == 1)
                        g_assert_cmpuint(count_lines(lines, "connect OK"), ==, 4);
        }
        /* A round trip: the daemon has handled every connection. */
        g_autoptr(GVariant) ping2 = vt_call(f->conn, VT_MANAGER_PATH, PEER, "Ping", NULL);
        g_auto(GStrv) records = new_records(f);
        for (char **r = records; *r; r++)
                g_test_message("record: %s", *r);
        g_assert_cmpuint(g_strv_length(records), ==, connected);
        g_assert_cmpuint(count_lines(records, "uid=65534 "), ==, connected);
        g_assert_cmpuint(count_lines(records, " sender=p2p action=connect endpoint=- result=denied reason=p2p-not-root"),
                         ==, connected);
        g_autofree char *log = log_since(f, mark);
        g_assert_null(strstr(log, "Private connection from"));
        g_assert_cmpuint(vt_count_fds(vt_daemon_pid(f->daemon)), ==, fds);

        /* Root still gets in. */
        Helper *root = helper_start(ROOT);
        g_auto(GStrv) ok = helper_run(root, "p2p %s 1", socket);
        helper_stop(root);
        g_assert_cmpuint(count_lines(ok, "auth OK"), ==, 1);
}

/* ------------------------------------------------------------------------ */
/* The bus policy (data/org.vmsig.conf on a real dbus-daemon)                */
/* ------------------------------------------------------------------------ */

static char *name_owner(GDBusConnection *c) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(c, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                            "org.freedesktop.DBus", "GetNameOwner",
                                                            g_variant_new("(s)", VT_NAME), G_VARIANT_TYPE("(s)"),
                                                            G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
        char *owner = NULL;

        if (!r)
                return g_strdup("");
        g_variant_get(r, "(s)", &owner);
        return owner;
}

static char *queued_owners(GDBusConnection *c) {
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(c, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                            "org.freedesktop.DBus", "ListQueuedOwners",
                                                            g_variant_new("(s)", VT_NAME), NULL,
                                                            G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL);
        return r ? g_variant_print(r, FALSE) : g_strdup("none");
}

static guint32 request_name(GDBusConnection *c, guint32 flags) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(c, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                            "org.freedesktop.DBus", "RequestName",
                                                            g_variant_new("(su)", VT_NAME, flags), G_VARIANT_TYPE("(u)"),
                                                            G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
        guint32 reply;

        g_assert_no_error(error);
        g_variant_get(r, "(u)", &reply);
        return reply;
}

static void assert_nobody_cannot_own(Fixture *f) {
        /* ALLOW_REPLACEMENT 1, REPLACE_EXISTING 2, DO_NOT_QUEUE 4: not even
         * a place in the queue. */
        for (guint32 flags = 0; flags < 8; flags++) {
                g_autofree char *args = g_strdup_printf("('org.vmsig', uint32 %u)", flags);
                g_autofree char *line = helper_call_line(f->nobody, FALSE, "org.freedesktop.DBus",
                                                         "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                                         "RequestName", args);
                g_test_message("nobody RequestName org.vmsig %u: %s", flags, line);
                g_assert_true(g_str_has_prefix(line, "error " ACCESS_DENIED " "));
        }
}

/* Only root may own org.vmsig, or wait for it: nobody's RequestName is
 * refused with any flags, running vmsigd or not; root queues behind a
 * running vmsigd (which does not allow replacement) and gets the name
 * when it goes. */
static void test_bus_policy_own(Fixture *f, gconstpointer data) {
        if (!f->polkit)
                return;
        g_autofree char *vmsigd = name_owner(f->conn);
        g_assert_true(vmsigd[0] == ':');
        assert_nobody_cannot_own(f);
        g_autofree char *release = helper_call_line(f->nobody, FALSE, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                    "org.freedesktop.DBus", "ReleaseName", "('org.vmsig',)");
        g_assert_cmpstr(release, ==, "ok (uint32 3,)"); /* NOT_OWNER */
        g_autofree char *queue = queued_owners(f->conn);
        g_autofree char *only_quoted = g_strdup_printf("(['%s'],)", vmsigd);
        g_assert_cmpstr(queue, ==, only_quoted);

        /* root: EXISTS without queueing, IN_QUEUE otherwise; replacing is
         * not allowed by vmsigd's request. */
        GDBusConnection *root = vt_bus_connect(f->bus);
        g_assert_cmpuint(request_name(root, 4), ==, 3);
        g_assert_cmpuint(request_name(root, 2), ==, 2);
        g_autofree char *owner = name_owner(f->conn);
        g_assert_cmpstr(owner, ==, vmsigd);

        /* vmsigd leaves: the queued root connection owns the name, and
         * what nobody sends to org.vmsig goes to it. */
        g_assert_cmpint(vt_daemon_stop(f->daemon), ==, 0);
        f->daemon = NULL;
        g_autofree char *next = name_owner(f->conn);
        g_assert_cmpstr(next, ==, g_dbus_connection_get_unique_name(root));
        g_autofree char *to_root = helper_call_line(f->nobody, FALSE, NULL, VT_MANAGER_PATH, MGR, "ListEndpoints",
                                                    NULL);
        g_test_message("nobody to the new owner: %s", to_root);
        g_assert_false(g_str_has_prefix(to_root, "error " ACCESS_DENIED));
        g_assert_true(g_str_has_prefix(to_root, "error "));

        /* Released: nobody still cannot take it. */
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(root, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                            "org.freedesktop.DBus", "ReleaseName",
                                                            g_variant_new("(s)", VT_NAME), NULL,
                                                            G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL);
        g_autofree char *none = name_owner(f->conn);
        g_assert_cmpstr(none, ==, "");
        assert_nobody_cannot_own(f);
        g_assert_cmpuint(request_name(root, 0), ==, 1); /* PRIMARY_OWNER */
        g_object_unref(root);
}

/* What nobody may send: the interfaces the policy opens, to org.vmsig
 * however it is addressed; not Properties.Set, not an interface it does
 * not list, not a call without an interface. The bus refuses those
 * ("Rejected send message"), vmsigd never sees them. */
static void test_bus_policy_send(Fixture *f, gconstpointer data) {
        const struct {
                const char *dest, *path, *iface, *method, *args;
                gboolean bus_refuses;
        } calls[] = {
                { NULL, ALPHA, PROPS, "Set", "('org.vmsig.Endpoint', 'State', <'paused'>)", TRUE },
                { NULL, VT_MANAGER_PATH, "org.example.NotListed", "Anything", NULL, TRUE },
                { NULL, ALPHA, NULL, "Pause", NULL, TRUE },
                { NULL, VT_MANAGER_PATH, NULL, "Reload", NULL, TRUE },
                { "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.Monitoring", "BecomeMonitor",
                  "(@as [], uint32 0)", TRUE },
                { NULL, VT_MANAGER_PATH, MGR, "ListEndpoints", NULL, FALSE },
                { NULL, ALPHA, PROPS, "Get", "('org.vmsig.Endpoint', 'State')", FALSE },
                { NULL, ALPHA, EP, "Pause", NULL, FALSE },
        };
        g_autofree char *vmsigd = NULL;

        if (!f->polkit)
                return;
        vmsigd = name_owner(f->conn);
        g_strfreev(new_records(f));
        for (int by_unique = 0; by_unique < 2; by_unique++)
                for (size_t i = 0; i < G_N_ELEMENTS(calls); i++) {
                        const char *dest = calls[i].dest ?: by_unique ? vmsigd : NULL;
                        g_autofree char *line = helper_call_line(f->nobody, FALSE, dest, calls[i].path, calls[i].iface,
                                                                 calls[i].method, calls[i].args);
                        g_test_message("nobody -> %s %s %s.%s: %s", dest ?: VT_NAME, calls[i].path,
                                       calls[i].iface ?: "(none)", calls[i].method, line);
                        if (calls[i].bus_refuses) {
                                g_assert_true(g_str_has_prefix(line, "error " ACCESS_DENIED " "));
                                g_assert_nonnull(strstr(line, "Rejected send message"));
                        } else
                                g_assert_null(strstr(line, "Rejected send message"));
                }
        /* The refused ones never reached vmsigd; the Pauses did (and were
         * refused there, with a record each), and so did ListEndpoints,
         * which is public and leaves none. */
        g_auto(GStrv) records = new_records(f);
        for (char **r = records; *r; r++)
                g_test_message("record: %s", *r);
        g_assert_cmpuint(count_lines(records, "result=denied reason=not-lease-holder"), ==, 2);
        g_assert_cmpuint(g_strv_length(records), ==, 2);
        g_autofree char *state = vt_get_string(f->conn, ALPHA, EP, "State");
        g_assert_cmpstr(state, ==, "running");

        /* root, for comparison: the bus lets everything through to vmsigd,
         * which answers for itself. */
        g_autofree char *ro = vt_call_error(f->conn, ALPHA, PROPS, "Set",
                                            g_variant_new("(ssv)", EP, "State", g_variant_new_string("paused")), NULL);
        g_assert_cmpstr(ro, ==, "org.freedesktop.DBus.Error.PropertyReadOnly");
}

static gboolean nobody_saw(Fixture *f, const char *what) {
        g_auto(GStrv) lines = helper_run(f->nobody, "seen");
        return count_lines(lines, what) > 0;
}

typedef struct {
        Fixture *f;
        const char *what;
} SawCtx;

static gboolean saw(gpointer data) {
        SawCtx *c = data;
        return nobody_saw(c->f, c->what);
}

/* An eavesdropping match gets nobody the broadcasts only: not the
 * MemctxChanged, MemctxInvalidated and LeaseRevoked sent to one
 * subscriber or holder (the DTB is theirs alone), not other callers' method
 * calls. */
static void test_bus_policy_eavesdrop(Fixture *f, gconstpointer data) {
        if (!f->polkit)
                return;
        g_auto(GStrv) added = helper_run(f->nobody, "eavesdrop");
        for (char **l = added; *l; l++)
                g_test_message("nobody AddMatch: %s", *l);
        /* dbus-daemon refuses eavesdropping matches to non-root
         * (1.14 does); if it took one, the policy still keeps the unicasts
         * away, which is what is checked below. */
        g_assert_cmpuint(g_strv_length(added), ==, 2);
        g_assert_true(g_str_has_prefix(added[0], "ok ") || g_str_has_prefix(added[0], "error " ACCESS_DENIED " "));
        g_assert_true(g_str_has_prefix(added[1], "ok "));
        VtSignalLog *mine = vt_signal_log_new(f->conn);
        int ram = subscribe_fd(f->conn, ALPHA);
        int lease = acquire(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, EP, "Reset", NULL);
        g_assert_true(vt_signal_log_wait(mine, "MemctxChanged " ALPHA, 5000));
        g_assert_cmpint(vt_signal_log_find(mine, "MemctxInvalidated " ALPHA, 0), >=, 0);
        g_assert_true(vt_signal_log_wait(mine, "LeaseRevoked ", 5000));
        /* The broadcast that follows them reaches nobody; so would they. */
        SawCtx c = { f, "signal PropertiesChanged " ALPHA };
        g_assert_true(vt_wait_for(saw, &c, 5000));
        g_autoptr(GVariant) ping = vt_call(f->conn, VT_MANAGER_PATH, PEER, "Ping", NULL);
        g_auto(GStrv) lines = helper_run(f->nobody, "seen");
        for (char **l = lines; *l; l++)
                g_test_message("nobody %s", *l);
        g_assert_cmpuint(count_lines(lines, "signal MemctxChanged"), ==, 0);
        g_assert_cmpuint(count_lines(lines, "signal MemctxInvalidated"), ==, 0);
        g_assert_cmpuint(count_lines(lines, "signal LeaseRevoked"), ==, 0);
        g_assert_cmpuint(count_lines(lines, "call "), ==, 0);
        vt_signal_log_free(mine);
        close(lease);
        close(ram);
}

/* ------------------------------------------------------------------------ */
/* The audit trail                                                          */
/* ------------------------------------------------------------------------ */

/* What "a record" is (vmsigd(8), AUDIT RECORDS; src/bus/bus-audit.h): one
 * line per authorization decision and one per operation carried out. So,
 * per call that reaches vmsigd:
 *  - refused (allow-list, polkit or its absence, the private socket's root
 *    rule, or not holding the lease the call needs): exactly one record,
 *    result=denied, and nothing else;
 *  - destructive and let through: exactly one operation record, result=ok
 *    or failed (with the errno name) - one per call for MemWrite* too, a
 *    batch's naming its count, and two for a forced AcquireLease that
 *    takes a held lease (revoke-lease, then acquire-lease) - plus at most one "granted"
 *    decision: none when the grant is one kept for the connection and
 *    endpoint (lifecycle, lease-input, lease-memwrite), one per call for
 *    the others (AcquireLease, SubscribeMemctx, org.vmsig.admin);
 *  - reading (the properties, ListEndpoints, GetEndpoint*): public, no
 *    record;
 *  - refused by the bus policy: it never reaches vmsigd, no record.
 * Each pattern is "UID ACTION ENDPOINT RESULT REASON", in order. */
static void expect_records(Fixture *f, const char *what, ...) G_GNUC_NULL_TERMINATED;
static void expect_records(Fixture *f, const char *what, ...) {
        g_auto(GStrv) records = new_records(f);
        g_autoptr(GPtrArray) want = g_ptr_array_new_with_free_func(g_free);
        va_list ap;

        va_start(ap, what);
        for (const char *p; (p = va_arg(ap, const char *));) {
                g_auto(GStrv) w = g_strsplit(p, " ", 5);
                g_assert_cmpuint(g_strv_length(w), ==, 5);
                g_ptr_array_add(want, g_strdup_printf("uid=%s ", w[0]));
                g_ptr_array_add(want, g_strdup_printf(" action=%s endpoint=%s result=%s reason=%s", w[1], w[2], w[3],
                                                      w[4]));
        }
        va_end(ap);
        for (char **r = records; *r; r++)
                g_test_message("%s: %s", what, *r);
        if (g_strv_length(records) != want->len / 2) {
                g_test_fail_printf("%s: %u audit records, expected %u", what, g_strv_length(records), want->len / 2);
                return;
        }
        for (guint i = 0; i < want->len / 2; i++)
                if (!strstr(records[i], g_ptr_array_index(want, 2 * i)) ||
                    !strstr(records[i], g_ptr_array_index(want, 2 * i + 1)))
                        g_test_fail_printf("%s: record %u is '%s', expected '%s...%s'", what, i, records[i],
                                           (char *) g_ptr_array_index(want, 2 * i),
                                           (char *) g_ptr_array_index(want, 2 * i + 1));
}

static void nobody_expects(Fixture *f, gboolean interactive, const char *path, const char *iface, const char *method,
                           const char *args, const char *want) {
        g_autofree char *line = helper_call_line(f->nobody, interactive, NULL, path, iface, method, args);
        g_autofree char *got = outcome_of(line);

        g_test_message("nobody %s.%s: %s", iface ?: "", method, line);
        g_assert_cmpstr(got, ==, want);
}

static void root_expects(Fixture *f, GDBusConnection *c, const char *path, const char *iface, const char *method,
                         GVariant *args, const char *want) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(c, VT_NAME, path, iface, method, args, NULL,
                                                            G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL, &error);
        g_autofree char *name = error ? g_dbus_error_get_remote_error(error) : g_strdup("ok");

        g_test_message("root %s.%s: %s", iface, method, error ? error->message : "ok");
        g_assert_cmpstr(name, ==, want);
}

#define MW(addr, bytes) g_variant_new_parsed("(uint64 " addr ", [byte " bytes "], @a{sv} {})")
#define MW_TEXT "(uint64 4096, [byte 0xee], @a{sv} {})"

/* What nobody may not do, each refusal audited once. */
static void audit_nobody(Fixture *f, const char *root_lease) {
        /* nobody, no rules. */
        nobody_expects(f, FALSE, VT_MANAGER_PATH, MGR, "ListEndpoints", NULL, "ok");
        nobody_expects(f, FALSE, VT_MANAGER_PATH, MGR, "GetEndpoint", "('alpha',)", "ok");
        nobody_expects(f, FALSE, VT_MANAGER_PATH, MGR, "GetEndpointByVmid", "(uint32 1,)", "ok");
        expect_records(f, "nobody reads (public)", NULL);
        nobody_expects(f, FALSE, VT_MANAGER_PATH, MGR, "Reload", NULL, IAR);
        expect_records(f, "nobody Reload", "65534 org.vmsig.admin - denied interactive-required", NULL);
        nobody_expects(f, TRUE, VT_MANAGER_PATH, MGR, "Reload", NULL, ACCESS_DENIED);
        expect_records(f, "nobody Reload (interactive)", "65534 org.vmsig.admin - denied polkit", NULL);
        nobody_expects(f, FALSE, VT_MANAGER_PATH, MGR, "DetachEndpoint", "('alpha',)", IAR);
        expect_records(f, "nobody DetachEndpoint", "65534 org.vmsig.admin alpha denied interactive-required", NULL);
        nobody_expects(f, FALSE, ALPHA, EP, "AcquireLease", "('power', @a{sv} {})", IAR);
        expect_records(f, "nobody AcquireLease", "65534 org.vmsig.lease-power alpha denied interactive-required",
                       NULL);
        nobody_expects(f, FALSE, ALPHA, EP, "AcquireLease", "('power', {'force': <true>})", IAR);
        expect_records(f, "nobody AcquireLease force", "65534 org.vmsig.admin alpha denied interactive-required",
                       NULL);
        nobody_expects(f, FALSE, ALPHA, EP, "SubscribeMemctx", NULL, IAR);
        expect_records(f, "nobody SubscribeMemctx", "65534 org.vmsig.memctx alpha denied interactive-required", NULL);
        for (size_t i = 0; i < 5; i++) {
                const char *m[] = { "Pause", "Resume", "Reset", "PowerOff", "Kill" };
                nobody_expects(f, FALSE, ALPHA, EP, m[i], NULL, NOT_HOLDER);
                expect_records(f, m[i], "65534 org.vmsig.lease-power alpha denied not-lease-holder", NULL);
        }
        nobody_expects(f, FALSE, ALPHA, EP, "InjectInput", "([(uint32 0, uint32 30, 1)],)", NOT_HOLDER);
        expect_records(f, "nobody InjectInput", "65534 org.vmsig.lease-input alpha denied not-lease-holder", NULL);
        nobody_expects(f, FALSE, ALPHA, EP, "MemWrite", MW_TEXT, NOT_HOLDER);
        expect_records(f, "nobody MemWrite", "65534 org.vmsig.lease-memwrite alpha denied not-lease-holder", NULL);
        nobody_expects(f, FALSE, ALPHA, EP, "MemWriteVirtual", MW_TEXT, NOT_HOLDER);
        expect_records(f, "nobody MemWriteVirtual", "65534 org.vmsig.lease-memwrite alpha denied not-lease-holder",
                       NULL);
        nobody_expects(f, FALSE, ALPHA, EP, "MemWriteBatch", "([(uint64 4096, [byte 0xee]), (uint64 8192, [byte 1])], @a{sv} {})",
                       NOT_HOLDER);
        expect_records(f, "nobody MemWriteBatch", "65534 org.vmsig.lease-memwrite alpha denied not-lease-holder",
                       NULL);
        nobody_expects(f, FALSE, root_lease, LEASE, "Release", NULL, NOT_HOLDER);
        expect_records(f, "nobody Release", "65534 org.vmsig.lease-power alpha denied not-lease-holder", NULL);
        nobody_expects(f, FALSE, ALPHA, PROPS, "Set", "('org.vmsig.Endpoint', 'State', <'paused'>)", ACCESS_DENIED);
        expect_records(f, "nobody Properties.Set (the bus refuses)", NULL);
}

/* root's lifecycle calls and writes; the leases it takes stay held (their
 * fds in *ret_memwrite and *ret_input): giving one up is audited too. */
static void audit_root_writes(Fixture *f, int *ret_memwrite, int *ret_input) {
        g_autofree char *input_lease = NULL;

        /* root, destructive. */
        root_expects(f, f->conn, ALPHA, EP, "Pause", NULL, "ok");
        expect_records(f, "root Pause", "0 org.vmsig.lifecycle alpha granted root", "0 pause alpha ok -", NULL);
        root_expects(f, f->conn, ALPHA, EP, "Pause", NULL, INVALID_STATE);
        expect_records(f, "root Pause (paused)", "0 pause alpha failed EBADFD", NULL);
        root_expects(f, f->conn, ALPHA, EP, "Resume", NULL, "ok");
        expect_records(f, "root Resume", "0 resume alpha ok -", NULL);
        *ret_memwrite = acquire(f->conn, ALPHA, "memory-write", NULL);
        expect_records(f, "root AcquireLease memory-write", "0 org.vmsig.lease-memwrite alpha granted root",
                       "0 acquire-lease alpha ok -", NULL);
        root_expects(f, f->conn, ALPHA, EP, "MemWrite", MW("0x1000", "1, 2"), "ok");
        expect_records(f, "root MemWrite", "0 org.vmsig.lease-memwrite alpha granted root",
                       "0 memwrite alpha ok - address=0x1000 length=2", NULL);
        root_expects(f, f->conn, ALPHA, EP, "MemWrite", MW("0x1000", "3"), "ok");
        expect_records(f, "root MemWrite again", "0 memwrite alpha ok - address=0x1000 length=1", NULL);
        root_expects(f, f->conn, ALPHA, EP, "MemWriteBatch", g_variant_new_parsed(PAGE_TABLES), "ok");
        expect_records(f, "root MemWriteBatch", "0 memwrite alpha ok - address=0x10000 length=24 count=3", NULL);
        root_expects(f, f->conn, ALPHA, EP, "MemWriteVirtual", MW("0x4000", "0x55"), "ok");
        expect_records(f, "root MemWriteVirtual", "0 memwrite-virtual alpha ok - address=0x4000 length=1", NULL);
        *ret_input = acquire(f->conn, ALPHA, "input", &input_lease);
        expect_records(f, "root AcquireLease input", "0 org.vmsig.lease-input alpha granted root",
                       "0 acquire-lease alpha ok -", NULL);
        root_expects(f, f->conn, ALPHA, EP, "InjectInput", g_variant_new_parsed("([(uint32 0, uint32 30, 1)],)"), "ok");
        expect_records(f, "root InjectInput", "0 org.vmsig.lease-input alpha granted root",
                       "0 inject-input alpha ok -", NULL);
        root_expects(f, f->conn, ALPHA, EP, "InjectInput", g_variant_new_parsed("([(uint32 0, uint32 30, 0)],)"), "ok");
        expect_records(f, "root InjectInput again", "0 inject-input alpha ok -", NULL);
        root_expects(f, f->conn, input_lease, LEASE, "Release", NULL, "ok");
        expect_records(f, "root Release", "0 release-lease alpha ok -", NULL);
}

/* A forced take-over of a held lease, and root's destructive calls; the
 * leases taken stay held (*ret_theirs on other, *ret_beta). */
static void audit_root_destructive(Fixture *f, GDBusConnection *other, int *power, int *ret_theirs, int *ret_beta) {
        *ret_theirs = acquire(other, ALPHA, "input", NULL);
        expect_records(f, "other AcquireLease input", "0 org.vmsig.lease-input alpha granted root",
                       "0 acquire-lease alpha ok -", NULL);
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) forced = call_fds(f->conn, ALPHA, EP, "AcquireLease",
                                              g_variant_new_parsed("('input', {'force': <true>})"), &fds);
        expect_records(f, "root AcquireLease force", "0 org.vmsig.admin alpha granted root",
                       "0 revoke-lease alpha ok -", "0 acquire-lease alpha ok -", NULL);
        root_expects(f, f->conn, ALPHA, EP, "Reset", NULL, "ok");
        expect_records(f, "root Reset", "0 reset alpha ok -", NULL);
        close(*power);
        *power = acquire(f->conn, ALPHA, "power", NULL);
        expect_records(f, "root AcquireLease power again", "0 org.vmsig.lease-power alpha granted root",
                       "0 acquire-lease alpha ok -", NULL);
        root_expects(f, f->conn, ALPHA, EP, "PowerOff", NULL, "ok");
        expect_records(f, "root PowerOff", "0 power-off alpha ok -", NULL);
        *ret_beta = acquire(f->conn, BETA, "power", NULL);
        expect_records(f, "root AcquireLease power beta", "0 org.vmsig.lease-power beta granted root",
                       "0 acquire-lease beta ok -", NULL);
        root_expects(f, f->conn, BETA, EP, "Kill", NULL, "ok");
        expect_records(f, "root Kill beta", "0 org.vmsig.lifecycle beta granted root", "0 kill beta ok -", NULL);
        root_expects(f, f->conn, VT_MANAGER_PATH, MGR, "Reload", NULL, "ok");
        expect_records(f, "root Reload", "0 org.vmsig.admin - granted root", "0 reload - ok -", NULL);
        root_expects(f, f->conn, VT_MANAGER_PATH, MGR, "DetachEndpoint", g_variant_new("(s)", "beta"), "ok");
        expect_records(f, "root DetachEndpoint", "0 org.vmsig.admin beta granted root", "0 detach beta ok -", NULL);
}

static void test_audit_one_record_per_call(Fixture *f, gconstpointer data) {
        g_autofree char *root_lease = NULL;
        GDBusConnection *other;
        int memwrite, input, theirs, beta;

        if (!f->polkit)
                return;
        g_strfreev(new_records(f));
        int power = acquire(f->conn, ALPHA, "power", &root_lease);
        expect_records(f, "root AcquireLease power", "0 org.vmsig.lease-power alpha granted root",
                       "0 acquire-lease alpha ok -", NULL);

        audit_nobody(f, root_lease);
        audit_root_writes(f, &memwrite, &input);
        other = vt_bus_connect(f->bus);
        audit_root_destructive(f, other, &power, &theirs, &beta);

        close(beta);
        close(theirs);
        close(input);
        close(memwrite);
        close(power);
        g_object_unref(other);
}

int main(int argc, char *argv[]) {
        if (argc == 2 && g_str_equal(argv[1], "--helper"))
                return helper_main();
        g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add("/security/" name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        ADD("matrix/nobody-denied", test_matrix_denied);
        ADD("matrix/nobody-granted", test_matrix_granted);
        ADD("matrix/grant-per-endpoint", test_grant_per_endpoint);
        ADD("ram-fd/stub", test_ram_fd_stub);
#ifdef VMSIG_HAVE_QMP
        /* Only the armed build has the QEMU backend: its suite runs this. */
        g_test_add_func("/security/ram-fd/qemu", test_ram_fd_qemu);
#endif
        ADD("p2p/refuses-non-root", test_p2p_refuses_non_root);
        ADD("bus-policy/own", test_bus_policy_own);
        ADD("bus-policy/send", test_bus_policy_send);
        ADD("bus-policy/eavesdrop", test_bus_policy_eavesdrop);
        ADD("audit/one-record-per-call", test_audit_one_record_per_call);
        return g_test_run();
}
