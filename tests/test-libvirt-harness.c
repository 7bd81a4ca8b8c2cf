/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The private libvirtd of libvirt-harness.h: a domain with file-backed
 * shared RAM runs, its RAM file is where libvirt puts it and mapped by its
 * QEMU, it survives libvirtd's SIGKILL and restart and is listed again; a
 * memfd domain's RAM is a memfd; a second harness starts from the cached
 * capabilities; the daemon's domain events and the close of its connection
 * arrive through the sd-event adapter.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <libvirt/libvirt.h>

#include "event-loop.h"
#include "libvirt-event.h"
#include "libvirt-harness.h"
#include "linux-guest.h"
#include "vt-util.h"

/* The least Debian's cloud kernel boots in: with 64 MiB it resets at once,
 * again and again. */
#define RAM_MIB 128
#define BOOT_TIMEOUT_MS 90000 /* TCG on a loaded machine */
#define EVENT_TIMEOUT_USEC (30 * G_USEC_PER_SEC)

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

        dom = libvirt_harness_start_domain(h, "vmsig-memfd", LIBVIRT_RAM_MEMFD, RAM_MIB);
        pid = libvirt_harness_domain_pid(h, "vmsig-memfd");
        g_assert_true(has_memfd(pid));
        g_assert_true(maps_contain(pid, "/memfd:memory-backend-memfd"));
        g_assert_cmpint(virDomainDestroy(dom), ==, 0);
        virDomainFree(dom);
}

typedef struct Events {
        int lifecycle[16];
        int n_lifecycle;
        int reboots;
        int closed; /* close callbacks */
        int close_reason;
} Events;

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        Events *e = opaque;

        if (e->n_lifecycle < (int) G_N_ELEMENTS(e->lifecycle))
                e->lifecycle[e->n_lifecycle++] = event;
        return 0;
}

static void on_reboot(virConnectPtr conn, virDomainPtr dom, void *opaque) {
        ((Events *) opaque)->reboots++;
}

static void on_close(virConnectPtr conn, int reason, void *opaque) {
        Events *e = opaque;

        e->closed++;
        e->close_reason = reason;
}

static bool saw(Events *e, int event) {
        for (int i = 0; i < e->n_lifecycle; i++)
                if (e->lifecycle[i] == event)
                        return true;
        return false;
}

/* The backend's own connection beside the harness's: events, and its
 * close when libvirtd dies, through the loop and no thread of libvirt's. */
static void test_events_through_sd_event(void) {
        g_autoptr(LibvirtHarness) h = NULL;
        sd_event *loop = NULL;
        Events e = { 0 };
        virConnectPtr conn;
        virDomainPtr dom;

        if (!libvirt_harness_available())
                return;
        /* Before the connections, which pick their event implementation
         * when they open; process-global, so this test comes last. */
        g_assert_cmpint(sd_event_new(&loop), >=, 0);
        g_assert_cmpint(vmsig_libvirt_event_register(loop), ==, 0);
        h = libvirt_harness_new();
        libvirt_harness_start(h);
        conn = virConnectOpen("qemu:///system");
        g_assert_nonnull(conn);
        g_assert_cmpint(virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                         VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), &e, NULL), >=, 0);
        g_assert_cmpint(virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_REBOOT,
                                                         VIR_DOMAIN_EVENT_CALLBACK(on_reboot), &e, NULL), >=, 0);
        g_assert_cmpint(virConnectRegisterCloseCallback(conn, on_close, &e, NULL), ==, 0);

        dom = libvirt_harness_start_domain(h, "vmsig-events", LIBVIRT_RAM_FILE, RAM_MIB);
        VT_EVENT_RUN_UNTIL(loop, saw(&e, VIR_DOMAIN_EVENT_STARTED), EVENT_TIMEOUT_USEC);
        g_assert_cmpint(virDomainSuspend(dom), ==, 0);
        VT_EVENT_RUN_UNTIL(loop, saw(&e, VIR_DOMAIN_EVENT_SUSPENDED), EVENT_TIMEOUT_USEC);
        g_assert_cmpint(virDomainResume(dom), ==, 0);
        VT_EVENT_RUN_UNTIL(loop, saw(&e, VIR_DOMAIN_EVENT_RESUMED), EVENT_TIMEOUT_USEC);
        g_assert_cmpint(virDomainReset(dom, 0), ==, 0);
        VT_EVENT_RUN_UNTIL(loop, e.reboots >= 1, EVENT_TIMEOUT_USEC);
        vt_event_run_for(loop, 200 * 1000);
        g_test_message("one reset gave %d REBOOT events", e.reboots);
        g_assert_cmpuint(vt_threads(), ==, 1);
        virDomainFree(dom);

        libvirt_harness_kill(h);
        VT_EVENT_RUN_UNTIL(loop, e.closed > 0, EVENT_TIMEOUT_USEC);
        g_assert_cmpint(e.close_reason, ==, VIR_CONNECT_CLOSE_REASON_EOF);
        /* libvirt dropped the callback when it fired. */
        (void) virConnectUnregisterCloseCallback(conn, on_close);
        (void) virConnectClose(conn);
        /* The free callbacks of the dead connection's watches. */
        vt_event_run_for(loop, 50 * 1000);
        libvirt_harness_start(h);
        sd_event_unref(loop);
}

int main(int argc, char **argv) {
        /* Before GLib can start a thread: see libvirt-harness.h. */
        libvirt_harness_enter_namespace();
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/libvirt-harness/", test_file_ram_survives_restart, test_memfd_and_cache,
                 test_events_through_sd_event);
        return g_test_run();
}
