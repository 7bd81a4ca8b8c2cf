/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "fd-util.h"
#include "systemd-guest.h"

#define BOOT_DIR "/boot"
#define INITRD_PREFIX "initrd.img-"
#define KERNEL_SUFFIX "-cloud-amd64"
#define IMAGE_SCRIPT "systemd-guest-image.sh"
/* No network, no first-boot questions, a panic ends QEMU (-no-reboot). */
#define APPEND "root=/dev/vda rw console=ttyS0 panic=-1 systemd.firstboot=off net.ifnames=0"
/* Markers are printed with the word as an argument, so that the command
 * text itself, should the tty echo it, never contains one. */
#define MARKER_FORMAT "@@%s-%u@@"
/* The same, as printf(1) in the guest gets it through a format of ours. */
#define GUEST_MARKER_FORMAT "@@%%s-%%u@@"
/* A probe has no quotes: one that lost its start to a serial line not yet
 * open must not leave the shell in an open quote, waiting forever. The
 * backslash keeps the marker out of the echo. ^U drops a partial line. */
#define PROBE_FORMAT "\025echo @@PRO\\BE-%u@@\n"
#define PROBE_MARKER "@@PROBE-"

static bool missing(const char *why) {
        if (g_strcmp0(g_getenv("CI"), "true") == 0)
                g_error("%s; CI must not skip the systemd guest tests", why);
        g_test_skip(why);
        return false;
}

/* The newest cloud kernel by version that has an initrd next to it, or
 * VMSIG_TEST_KERNEL with that initrd. */
static bool find_kernel(char **ret_kernel, char **ret_initrd) {
        const char *env = g_getenv("VMSIG_TEST_KERNEL");
        g_autoptr(GDir) dir = g_dir_open(BOOT_DIR, 0, NULL);
        g_autofree char *best = NULL;
        const char *name;

        while (dir && (name = g_dir_read_name(dir))) {
                g_autofree char *kernel = g_strdup_printf(BOOT_DIR "/vmlinuz-%s", name + strlen(INITRD_PREFIX));

                if (g_str_has_prefix(name, INITRD_PREFIX) && g_str_has_suffix(name, KERNEL_SUFFIX) &&
                    g_file_test(kernel, G_FILE_TEST_IS_REGULAR) && (!best || strverscmp(name, best) > 0)) {
                        g_free(best);
                        best = g_strdup(name);
                }
        }
        if (!best)
                return false;
        *ret_initrd = g_build_filename(BOOT_DIR, best, NULL);
        *ret_kernel = env && *env ? g_strdup(env)
                                  : g_strdup_printf(BOOT_DIR "/vmlinuz-%s", best + strlen(INITRD_PREFIX));
        return true;
}

bool systemd_guest_available(void) {
        g_autofree char *kernel = NULL, *initrd = NULL, *mmdebstrap = NULL, *mke2fs = NULL;

        if (!qemu_harness_available())
                return false;
        if (!find_kernel(&kernel, &initrd))
                return missing("a kernel " BOOT_DIR "/vmlinuz-*" KERNEL_SUFFIX " with its " INITRD_PREFIX
                               "* is missing (apt-get install linux-image-cloud-amd64)");
        if (!(mmdebstrap = g_find_program_in_path("mmdebstrap")))
                return missing("mmdebstrap is missing (apt-get install mmdebstrap)");
        if (!(mke2fs = g_find_program_in_path("mke2fs")) && !(mke2fs = g_find_program_in_path("/usr/sbin/mke2fs")))
                return missing("mke2fs is missing (apt-get install e2fsprogs)");
        if (getuid() != 0)
                return missing("the systemd guest's image needs root to build");
        return true;
}

static void run_or_die(const char *what, const char *const *argv) {
        g_autoptr(GError) error = NULL;
        g_autofree char *err = NULL;
        int status;

        if (!g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                          NULL, &err, &status, &error) ||
            !g_spawn_check_wait_status(status, &error))
                g_error("%s failed: %s\n%s", what, error->message, err ? err : "");
        if (err && *err)
                g_test_message("%s: %s", what, err);
}

/* The image, built by the script if it is missing or out of date. */
static char *ensure_image(void) {
        const char *srcdir = g_getenv("VMSIG_SRCDIR"), *builddir = g_getenv("VMSIG_BUILDDIR");
        g_autofree char *script = NULL;
        int64_t t0 = g_get_monotonic_time();

        if (!srcdir || !builddir)
                g_error("VMSIG_SRCDIR and VMSIG_BUILDDIR must be set (make check sets them)");
        script = g_build_filename(srcdir, "tests", IMAGE_SCRIPT, NULL);
        const char *argv[] = { "/bin/sh", script, builddir, NULL };
        run_or_die("building the systemd guest's image", argv);
        g_test_message("image ready in %.1f s", (double) (g_get_monotonic_time() - t0) / G_USEC_PER_SEC);
        return g_build_filename(builddir, "tests", "systemd-guest", "root.img", NULL);
}

/* An ext4 image of a copy of data_dir, twice its size and 16 MiB more. */
static void make_data_image(const char *data_dir, const char *path) {
        const char *argv[] = {
                "/bin/sh", "-c",
                "PATH=$PATH:/usr/sbin:/sbin; "
                "mke2fs -q -t ext4 -L vmsig-data -d \"$1\" \"$2\" $(( $(du -sk \"$1\" | cut -f1) * 2 + 16384 ))k",
                "sh", data_dir, path, NULL,
        };
        run_or_die("making the data disk", argv);
}

static void add_args(SystemdGuest *g, const char *option, char *value) {
        g_ptr_array_add(g->extra_args, g_strdup(option));
        g_ptr_array_add(g->extra_args, value);
}

SystemdGuest *systemd_guest_new(const char *data_dir) {
        SystemdGuest *g = g_new0(SystemdGuest, 1);

        g_assert_true(find_kernel(&g->kernel, &g->initrd));
        g->image = ensure_image();
        g->append = g_strdup(APPEND);
        g->shell_fd = -1;
        g->pending = g_string_new(NULL);
        g->vm = qemu_vm_new();
        g->console_path = g_build_filename(g->vm->dir, "console", NULL);
        g->shell_path = g_build_filename(g->vm->dir, "shell.sock", NULL);
        g->extra_args = g_ptr_array_new_with_free_func(g_free);
        add_args(g, "-drive", g_strdup_printf("file=%s,if=virtio,format=raw,snapshot=on", g->image));
        if (data_dir) {
                g->data_image = g_build_filename(g->vm->dir, "data.img", NULL);
                make_data_image(data_dir, g->data_image);
                add_args(g, "-drive", g_strdup_printf("file=%s,if=virtio,format=raw,snapshot=on", g->data_image));
        }
        add_args(g, "-chardev", g_strdup_printf("socket,id=shell,path=%s,server=on,wait=off", g->shell_path));
        /* After the console's -serial: this one is ttyS1. */
        add_args(g, "-serial", g_strdup("chardev:shell"));
        g_ptr_array_add(g->extra_args, NULL);

        g->vm->ram_mib = SYSTEMD_GUEST_RAM_MIB;
        g->vm->kernel = g->kernel;
        g->vm->initrd = g->initrd;
        g->vm->append = g->append;
        g->vm->serial_path = g->console_path;
        g->vm->no_reboot = TRUE;
        g->vm->extra_args = (const char *const *) g->extra_args->pdata;
        return g;
}

char *systemd_guest_console_tail(SystemdGuest *g, size_t max_len) {
        g_autofree char *text = NULL;
        gsize len = 0;

        if (!g_file_get_contents(g->console_path, &text, &len, NULL))
                return g_strdup("(no console)");
        return g_strdup(text + (len > max_len ? len - max_len : 0));
}

static void send_text(SystemdGuest *g, const char *text) {
        int r = loop_write(g->shell_fd, text, strlen(text));

        if (r < 0)
                g_error("systemd guest: cannot write to the shell: %s", g_strerror(-r));
}

/* Reads what is there within wait_ms into g->pending; false on EOF. */
static bool read_some(SystemdGuest *g, int wait_ms) {
        struct pollfd p = { .fd = g->shell_fd, .events = POLLIN };
        char buf[4096];
        ssize_t n;

        if (poll(&p, 1, MAX(wait_ms, 0)) <= 0)
                return true;
        n = read(g->shell_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
                return true;
        if (n <= 0)
                return false;
        g_string_append_len(g->pending, buf, n);
        return true;
}

static int connect_shell(SystemdGuest *g) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpuint(strlen(g->shell_path), <, sizeof sa.sun_path);
        strcpy(sa.sun_path, g->shell_path);
        /* QEMU created the socket before its QMP ones, which start waited for. */
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                g_error("systemd guest: cannot connect to %s: %s", g->shell_path, g_strerror(errno));
        return fd;
}

void systemd_guest_start(SystemdGuest *g, unsigned timeout_ms) {
        int64_t deadline, next_probe = 0;

        g->started = g_get_monotonic_time();
        deadline = g->started + (int64_t) timeout_ms * 1000;
        qemu_vm_start(g->vm);
        g->shell_fd = connect_shell(g);
        /* Until the service opened ttyS1 what is sent is lost, or part of
         * it: probe once a second until one probe's marker comes back. */
        while (!strstr(g->pending->str, PROBE_MARKER)) {
                int64_t now = g_get_monotonic_time();
                if (now > deadline) {
                        g_autofree char *tail = systemd_guest_console_tail(g, 6000);
                        g_error("systemd guest: no shell on ttyS1 in %u ms; ttyS1 said:\n%s\nthe console ended in:\n%s",
                                timeout_ms, g->pending->str, tail);
                }
                if (now >= next_probe) {
                        g_autofree char *probe = g_strdup_printf(PROBE_FORMAT, g->next_id++);
                        send_text(g, probe);
                        next_probe = now + G_USEC_PER_SEC;
                }
                if (!read_some(g, 100))
                        g_error("systemd guest: the shell's socket closed during boot");
        }
        g->shell_ready = g_get_monotonic_time();
}

unsigned systemd_guest_boot_ms(const SystemdGuest *g) {
        return (unsigned) ((g->shell_ready - g->started) / 1000);
}

/* The end marker followed by its line's end, or NULL. */
static const char *find_end(SystemdGuest *g, const char *end) {
        const char *e = strstr(g->pending->str, end);

        return e && strchr(e, '\n') ? e : NULL;
}

int systemd_guest_run_timeout(SystemdGuest *g, const char *cmd, char **ret_out, unsigned timeout_ms) {
        unsigned id = g->next_id++;
        int64_t deadline = g_get_monotonic_time() + (int64_t) timeout_ms * 1000;
        g_autofree char *begin = g_strdup_printf(MARKER_FORMAT "\n", "BEGIN", id);
        g_autofree char *end = g_strdup_printf(MARKER_FORMAT " ", "END", id);
        /* The closing parenthesis on its own line: cmd may end in a comment. */
        g_autofree char *text = g_strdup_printf("printf '" GUEST_MARKER_FORMAT "\\n' BEGIN %u; (%s\n) </dev/null 2>&1; "
                                                "printf '" GUEST_MARKER_FORMAT " %%d\\n' END %u $?\n",
                                                id, cmd, id);
        const char *b, *e;
        int status;

        g_assert_cmpint(g->shell_fd, >=, 0);
        send_text(g, text);
        while (!(e = find_end(g, end))) {
                int64_t left = (deadline - g_get_monotonic_time()) / 1000;
                if (left <= 0 || !read_some(g, (int) MIN(left, 1000)))
                        g_error("systemd guest: '%s' did not end in %u ms; its output so far:\n%s", cmd, timeout_ms,
                                g->pending->str);
        }
        b = strstr(g->pending->str, begin);
        if (!b || b > e || sscanf(e + strlen(end), "%d", &status) != 1)
                g_error("systemd guest: garbled output of '%s':\n%s", cmd, g->pending->str);
        if (ret_out)
                *ret_out = g_strndup(b + strlen(begin), e - (b + strlen(begin)));
        g_string_erase(g->pending, 0, strchr(e, '\n') + 1 - g->pending->str);
        return status;
}

void systemd_guest_assert_run(SystemdGuest *g, const char *cmd, int expected, char **ret_out) {
        g_autofree char *out = NULL;
        int status = guest_run(g, cmd, &out);

        if (status != expected)
                g_error("'%s' exited with %d, not %d:\n%s", cmd, status, expected, out);
        if (ret_out)
                *ret_out = g_steal_pointer(&out);
}

void systemd_guest_assert_contains(const char *out, const char *needle) {
        if (!strstr(out, needle))
                g_error("no '%s' in:\n%s", needle, out);
}

bool systemd_guest_poweroff(SystemdGuest *g, unsigned timeout_ms) {
        g_assert_cmpint(guest_run(g, "systemctl --no-block poweroff", NULL), ==, 0);
        if (qemu_vm_wait_exit(g->vm, timeout_ms))
                return true;
        qemu_vm_kill(g->vm);
        return false;
}

void systemd_guest_free(SystemdGuest *g) {
        if (!g)
                return;
        if (g->shell_fd >= 0)
                close(g->shell_fd);
        qemu_vm_kill(g->vm);
        (void) g_unlink(g->console_path);
        (void) g_unlink(g->shell_path);
        if (g->data_image)
                (void) g_unlink(g->data_image);
        qemu_vm_free(g->vm);
        g_ptr_array_unref(g->extra_args);
        g_string_free(g->pending, TRUE);
        g_free(g->kernel);
        g_free(g->initrd);
        g_free(g->image);
        g_free(g->data_image);
        g_free(g->append);
        g_free(g->console_path);
        g_free(g->shell_path);
        g_free(g);
}
