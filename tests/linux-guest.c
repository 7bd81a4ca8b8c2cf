/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "linux-guest.h"
#include "linux-initrd.h"
#include "vt-util.h"

#define APPEND "console=ttyS0 panic=-1"

/* The marker goes to the console only once /proc is there, so that a
 * guest that shows it can also read its command line. A change here needs
 * a new number in LINUX_GUEST_INITRD, or caches keep the old one. */
static const char init_script[] =
        "#!/bin/busybox sh\n"
        "/bin/busybox mount -t proc proc /proc\n"
        /* The kernel's own word on where its banner is: a witness that owes
         * nothing to vmsig's page walks. */
        "echo \"" LINUX_GUEST_BANNER_PREFIX "$(/bin/busybox grep ' linux_banner$' /proc/kallsyms)\" > /dev/console\n"
        "echo '" LINUX_GUEST_MARKER "' > /dev/console\n"
        "case \" $(/bin/busybox cat /proc/cmdline) \" in\n"
        "*' vmsig.spin '*) while :; do :; done ;;\n"
        "esac\n"
        "while :; do /bin/busybox sleep 1; done\n";

static bool under_ci(void) {
        return g_strcmp0(g_getenv("CI"), "true") == 0;
}

/* Skips the test, or under CI=true aborts it: CI must run everything. */
static bool missing(const char *what, const char *package) {
        g_autofree char *why = g_strdup_printf("%s is missing (apt-get install %s)", what, package);

        if (under_ci())
                g_error("%s; CI must not skip the Linux guest tests", why);
        g_test_skip(why);
        return false;
}

bool linux_guest_available(void) {
        g_autofree char *kernel = NULL, *busybox = NULL, *cpio = NULL, *gzip = NULL;

        if (!qemu_harness_available())
                return false;
        if (!(kernel = linux_initrd_find_kernel()))
                return missing("a kernel " LINUX_INITRD_KERNEL_DIR "/" LINUX_INITRD_KERNEL_PREFIX
                               "*" LINUX_INITRD_KERNEL_SUFFIX " (or VMSIG_TEST_KERNEL)",
                               "linux-image-cloud-amd64");
        if (!(busybox = linux_initrd_find_busybox()))
                return missing("a static busybox", "busybox-static");
        if (!(cpio = g_find_program_in_path("cpio")))
                return missing("cpio", "cpio");
        if (!(gzip = g_find_program_in_path("gzip")))
                return missing("gzip", "gzip");
        return true;
}

/* tests/ of the build tree; run by hand, the directory of the program. */
static char *cache_dir(void) {
        const char *builddir = g_getenv("VMSIG_BUILDDIR");
        g_autofree char *exe = NULL, *dir = NULL;

        if (builddir && *builddir)
                return g_build_filename(builddir, "tests", NULL);
        exe = g_file_read_link("/proc/self/exe", NULL);
        g_assert_nonnull(exe);
        dir = g_path_get_dirname(exe);
        /* A libtool wrapper runs the program from .libs. */
        if (g_str_has_suffix(dir, "/.libs"))
                return g_path_get_dirname(dir);
        return g_steal_pointer(&dir);
}

LinuxGuest *linux_guest_new(const char *cpu, bool spin) {
        LinuxGuest *g = g_new0(LinuxGuest, 1);
        g_autofree char *dir = cache_dir(), *base = NULL;

        g->kernel = linux_initrd_find_kernel();
        g_assert_nonnull(g->kernel);
        base = g_path_get_basename(g->kernel);
        g->release = g_strdup(g_str_has_prefix(base, LINUX_INITRD_KERNEL_PREFIX)
                                      ? base + strlen(LINUX_INITRD_KERNEL_PREFIX)
                                      : base);
        g->initrd = g_build_filename(dir, LINUX_GUEST_INITRD, NULL);
        if (!g_file_test(g->initrd, G_FILE_TEST_IS_REGULAR)) {
                g_autofree char *busybox = linux_initrd_find_busybox();

                g_assert_nonnull(busybox);
                g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
                g_assert_cmpint(linux_initrd_pack(busybox, init_script, 9, g->initrd), ==, 0);
        }
        g->append = g_strdup_printf("%s%s", APPEND, spin ? " vmsig.spin" : "");
        g->ram_fd = -1;

        g->vm = qemu_vm_new();
        g->serial_path = g_build_filename(g->vm->dir, "serial", NULL);
        g->vm->ram_mib = LINUX_GUEST_RAM_MIB;
        g->vm->cpu = cpu;
        g->vm->kernel = g->kernel;
        g->vm->initrd = g->initrd;
        g->vm->append = g->append;
        g->vm->serial_path = g->serial_path;
        return g;
}

void linux_guest_start(LinuxGuest *g, bool paused, bool no_reboot) {
        struct stat st;

        if (g->ram_fd >= 0)
                g_assert_cmpint(close(g->ram_fd), ==, 0);
        g->ram_fd = -1;
        /* QEMU would reuse the file, and the kernels of earlier boots in it. */
        if (g_unlink(g->vm->ram_path) < 0)
                g_assert_cmpint(errno, ==, ENOENT);
        g->vm->start_paused = paused;
        g->vm->no_reboot = no_reboot;
        qemu_vm_start(g->vm);

        g->ram_fd = open(g->vm->ram_path, O_RDONLY | O_CLOEXEC);
        g_assert_cmpint(g->ram_fd, >=, 0);
        g_assert_cmpint(fstat(g->ram_fd, &st), ==, 0);
        g_assert_cmpuint((uint64_t) st.st_size, ==, (uint64_t) LINUX_GUEST_RAM_MIB << 20);
        /* q35 keeps up to 2 GiB below 4 GiB: all of it, at GPA == offset. */
        g->range = (vmsig_gpa_range) { .gpa = 0, .size = (uint64_t) st.st_size, .offset = 0 };
        g->source = (vmsig_guest_mem) {
                .read_fd = g->ram_fd,
                .ranges = &g->range,
                .n_ranges = 1,
                .ram_size = (uint64_t) st.st_size,
        };
}

static unsigned count_markers(const char *text) {
        unsigned n = 0;

        for (const char *p = text; (p = strstr(p, LINUX_GUEST_MARKER)); p += strlen(LINUX_GUEST_MARKER))
                n++;
        return n;
}

bool linux_guest_banner_va(LinuxGuest *g, unsigned boot, uint64_t *ret) {
        g_autofree char *text = NULL;
        const char *p;
        unsigned n = 0;

        g_assert_cmpuint(boot, >=, 1);
        if (!g_file_get_contents(g->serial_path, &text, NULL, NULL))
                return false;
        for (p = text; (p = strstr(p, LINUX_GUEST_BANNER_PREFIX)); p += strlen(LINUX_GUEST_BANNER_PREFIX))
                if (++n == boot)
                        break;
        if (!p)
                return false;
        /* "ffffffffa2a001a0 D linux_banner" */
        return sscanf(p + strlen(LINUX_GUEST_BANNER_PREFIX), "%" SCNx64 " D linux_banner", ret) == 1 && *ret != 0;
}

void linux_guest_wait_ready(LinuxGuest *g, unsigned count, unsigned timeout_ms) {
        int64_t deadline = g_get_monotonic_time() + (int64_t) timeout_ms * 1000;

        for (;;) {
                g_autofree char *text = NULL;
                gsize len = 0;

                if (g_file_get_contents(g->serial_path, &text, &len, NULL) && count_markers(text) >= count)
                        return;
                if (g_get_monotonic_time() > deadline)
                        g_error("the guest did not print its marker %u times in %u ms; the console ended in:\n%s",
                                count, timeout_ms, text ? text + (len > 4000 ? len - 4000 : 0) : "(nothing)");
                g_usleep(20000);
        }
}

char *linux_guest_hmp(LinuxGuest *g, const char *command) {
        g_autofree char *args = g_strdup_printf("{\"command-line\": \"%s\"}", command);
        json_object *r = qmp_session_execute(g->vm->session, "human-monitor-command", args, NULL);
        char *text = g_strdup(json_object_get_string(r));

        json_object_put(r);
        return text;
}

void linux_guest_registers(LinuxGuest *g, vmsig_vcpu_state *ret, uint64_t *ret_ip) {
        QemuRegisters r;

        g_free(qmp_session_registers(g->vm->session, &r));
        *ret = (vmsig_vcpu_state) { .cr0 = r.cr0, .cr3 = r.cr3, .cr4 = r.cr4, .efer = r.efer };
        if (ret_ip)
                *ret_ip = r.ip;
}

void linux_guest_free(LinuxGuest *g) {
        if (!g)
                return;
        if (g->ram_fd >= 0)
                close(g->ram_fd);
        qemu_vm_kill(g->vm);
        (void) g_unlink(g->serial_path);
        qemu_vm_free(g->vm);
        VT_FREE_MANY(g->kernel, g->release, g->initrd, g->serial_path, g->append, g);
}
