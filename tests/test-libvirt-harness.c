/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The private libvirtd of libvirt-harness.h: a domain with file-backed
 * shared RAM runs, its RAM file is where libvirt puts it and mapped by its
 * QEMU, it survives libvirtd's SIGKILL and restart and is listed again; a
 * memfd domain's RAM is a memfd; a second harness starts from the cached
 * capabilities.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <libvirt/libvirt.h>

#include "libvirt-harness.h"
#include "linux-guest.h"

#define RAM_MIB 128
#define BOOT_TIMEOUT_MS 90000 /* TCG on a loaded machine */

static bool maps_contain(pid_t pid, const char *what) {
        g_autofree char *path = g_strdup_printf("/proc/%d/maps", (int) pid), *maps = NULL;

        g_assert_true(g_file_get_contents(path, &maps, NULL, NULL));
        return strstr(maps, what) != NULL;
}

static void report_start(LibvirtHarness *h, const char *which) {
        g_test_message("%s start of libvirtd: %.3f s (%u capabilities files cached, %s)", which, h->start_seconds,
                       h->cache_loaded, h->cache_kept ? "kept" : "probed anew");
}

/* Running again after libvirtd came back: same id, listed, running. */
static void assert_still_running(LibvirtHarness *h, const char *name, int id) {
        virDomainPtr *domains = NULL;
        virDomainPtr dom = virDomainLookupByName(h->conn, name);
        int state = -1, reason, n;

        g_assert_nonnull(dom);
        g_assert_cmpint(virDomainGetState(dom, &state, &reason, 0), ==, 0);
        g_assert_cmpint(state, ==, VIR_DOMAIN_RUNNING);
        g_assert_cmpint((int) virDomainGetID(dom), ==, id);
        n = virConnectListAllDomains(h->conn, &domains, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
        g_assert_cmpint(n, ==, 1);
        g_assert_cmpstr(virDomainGetName(domains[0]), ==, name);
        virDomainFree(domains[0]);
        free(domains);
        virDomainFree(dom);
}

static void test_file_ram_survives_restart(void) {
        g_autoptr(LibvirtHarness) h = NULL;
        g_autofree char *ram = NULL;
        virDomainPtr dom;
        struct stat st;
        pid_t pid;
        int id, state = -1, reason;

        if (!libvirt_harness_available())
                return;
        h = libvirt_harness_new();
        libvirt_harness_start(h);
        report_start(h, "first");

        dom = libvirt_harness_start_domain(h, "vmsig-file", LIBVIRT_RAM_FILE, RAM_MIB);
        id = (int) virDomainGetID(dom);
        ram = g_strdup_printf("/var/lib/libvirt/qemu/ram/%d-vmsig-file/pc.ram", id);
        g_assert_cmpint(stat(ram, &st), ==, 0);
        g_assert_cmpint(st.st_size, ==, (off_t) RAM_MIB << 20);
        pid = libvirt_harness_domain_pid(h, "vmsig-file");
        g_assert_true(maps_contain(pid, ram));

        libvirt_harness_kill(h);
        g_assert_cmpint(kill(pid, 0), ==, 0);
        libvirt_harness_start(h);
        report_start(h, "restarted");
        assert_still_running(h, "vmsig-file", id);
        g_assert_cmpint(libvirt_harness_domain_pid(h, "vmsig-file"), ==, pid);
        /* The guest's own word that the harness's kernel and initramfs boot. */
        libvirt_harness_wait_guest(h, "vmsig-file", BOOT_TIMEOUT_MS);

        /* The old handle is of the old connection. */
        virDomainFree(dom);
        dom = virDomainLookupByName(h->conn, "vmsig-file");
        g_assert_nonnull(dom);
        g_assert_cmpint(virDomainDestroy(dom), ==, 0);
        g_assert_cmpint(virDomainGetState(dom, &state, &reason, 0), ==, 0);
        g_assert_cmpint(state, ==, VIR_DOMAIN_SHUTOFF);
        virDomainFree(dom);
}

static bool has_memfd(pid_t pid) {
        g_autofree char *dir_path = g_strdup_printf("/proc/%d/fd", (int) pid);
        g_autoptr(GDir) dir = g_dir_open(dir_path, 0, NULL);

        g_assert_nonnull(dir);
        for (const char *name; (name = g_dir_read_name(dir));) {
                g_autofree char *path = g_build_filename(dir_path, name, NULL);
                g_autofree char *target = g_file_read_link(path, NULL);

                if (target && g_str_has_prefix(target, "/memfd:memory-backend-memfd"))
                        return true;
        }
        return false;
}

/* The second harness of the program: the first left its probe cached. */
static void test_memfd_and_cache(void) {
        g_autoptr(LibvirtHarness) h = NULL;
        virDomainPtr dom;
        pid_t pid;

        if (!libvirt_harness_available())
                return;
        h = libvirt_harness_new();
        libvirt_harness_start(h);
        report_start(h, "cached");
        g_assert_cmpuint(h->cache_loaded, >, 0);
        g_assert_true(h->cache_kept);

        dom = libvirt_harness_start_domain(h, "vmsig-memfd", LIBVIRT_RAM_MEMFD, RAM_MIB / 2);
        pid = libvirt_harness_domain_pid(h, "vmsig-memfd");
        g_assert_true(has_memfd(pid));
        g_assert_true(maps_contain(pid, "/memfd:memory-backend-memfd"));
        g_assert_cmpint(virDomainDestroy(dom), ==, 0);
        virDomainFree(dom);
}

int main(int argc, char **argv) {
        /* Before GLib can start a thread: see libvirt-harness.h. */
        libvirt_harness_enter_namespace();
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/libvirt-harness/file-ram-survives-restart", test_file_ram_survives_restart);
        g_test_add_func("/libvirt-harness/memfd-and-cache", test_memfd_and_cache);
        return g_test_run();
}
