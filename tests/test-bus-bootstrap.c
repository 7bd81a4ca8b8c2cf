/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The address-space bootstrap, end to end against a stub VM whose vCPU is
 * simulated (stub.h): nothing is published while the vCPU runs with paging
 * off, whatever RAM holds; a root is published once the System EPROCESS
 * and the vCPU's CR3 agree, said so in one line; a reset keeps RAM, and
 * the previous boot's root is never published again; a published root is
 * checked again while someone relies on it and withdrawn when it fails;
 * without registers a kernel must be seen running. */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <gio/gunixfdlist.h>

#include "fixture.h"
#include "vt-util.h"
#include "guest-image.h"
#include "stub.h"

#define ALPHA VT_ENDPOINT("alpha")

typedef struct {
        VT_FIXTURE;
        GuestImageSpec spec;
        int lease; /* memory-write, while writing */
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data) {
        vt_fixture_setup(&f->vt, data, VT_FIXTURE_SIGNAL_LOG);
        guest_image_spec_init(&f->spec);
        f->spec.layout = GUEST_IMAGE_LAYOUT_FLAT;
        f->spec.boot = true;
        f->lease = -1;
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        if (f->lease >= 0)
                close(f->lease);
        vt_fixture_teardown(&f->vt);
}

static void hold_write_lease(Fixture *f) {
        if (f->lease < 0)
                f->lease = vt_acquire_lease(f->conn, ALPHA, "memory-write", NULL);
}

static void release_write_lease(Fixture *f) {
        if (f->lease >= 0)
                close(f->lease);
        f->lease = -1;
}

static void mem_write(Fixture *f, uint64_t gpa, const void *data, size_t len) {
        GVariant *bytes = g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, data, len, 1);

        hold_write_lease(f);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "MemWrite",
                                        g_variant_new("(t@aya{sv})", gpa, bytes, NULL));
}

static void write_u64(Fixture *f, uint64_t gpa, uint64_t v) {
        uint64_t le = GUINT64_TO_LE(v);
        mem_write(f, gpa, &le, sizeof le);
}

/* The guest's structures appear in RAM, written the only way anything is
 * written into a VM, with MemWrite; with spec.boot the kernel then "runs"
 * (the simulated vCPU loads its CR3). */
static void write_image(Fixture *f, const GuestImageSpec *spec) {
        GuestImageWrite *w = NULL;
        size_t n = 0;

        g_assert_cmpint(guest_image_build(spec, &w, &n), ==, 0);
        for (size_t i = 0; i < n; i++)
                mem_write(f, w[i].gpa, w[i].data, w[i].len);
        guest_image_writes_free(w, n);
}

static void boot_guest(Fixture *f) {
        write_image(f, &f->spec);
        release_write_lease(f);
}

static char *state(Fixture *f) {
        return vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "BootstrapState");
}

static guint attempts(Fixture *f) {
        return (guint) vt_get_uint(f->conn, ALPHA, VT_ENDPOINT_IFACE, "BootstrapAttempts");
}

static guint64 epoch(Fixture *f) {
        return vt_get_uint(f->conn, ALPHA, VT_ENDPOINT_IFACE, "MemctxEpoch");
}

static gboolean state_is(Fixture *f, const char *want) {
        g_autofree char *s = state(f);
        return g_str_equal(s, want);
}

static gboolean is_ready(gpointer data) {
        return state_is(data, "ready");
}

static gboolean is_booting(gpointer data) {
        return state_is(data, "booting");
}

static guint count_log(Fixture *f, const char *needle) {
        return vt_daemon_log_count(f->daemon, needle);
}

static guint64 read_ram(const VtMemctx *d, uint64_t gpa) {
        guint64 v = 0;
        g_assert_cmpint(pread(d->fd, &v, sizeof v, (off_t) gpa), ==, sizeof v);
        return GUINT64_FROM_LE(v);
}

static char *expect_state_for(Fixture *f, const char *want, guint ms) {
        gint64 end = g_get_monotonic_time() + ms * 1000;

        while (g_get_monotonic_time() < end) {
                g_autofree char *s = state(f);
                if (!g_str_equal(s, want))
                        return g_steal_pointer(&s);
                vt_bus_iterate(f->bus, 50);
        }
        return NULL;
}

static char *changed_signal(guint64 epoch, guint64 dtb) {
        return g_strdup_printf("MemctxChanged " ALPHA " (uint64 %" G_GUINT64_FORMAT ", uint64 %" G_GUINT64_FORMAT ")",
                               epoch, dtb);
}

/* MemWriteVirtual of value at va; the D-Bus error name, or NULL. */
static char *write_virtual(Fixture *f, uint64_t va, uint64_t value, gboolean with_epoch, guint64 expected) {
        GVariantBuilder opts;
        uint64_t le = GUINT64_TO_LE(value);

        g_variant_builder_init(&opts, G_VARIANT_TYPE("a{sv}"));
        if (with_epoch)
                g_variant_builder_add(&opts, "{sv}", "expected_epoch", g_variant_new_uint64(expected));
        hold_write_lease(f);
        GVariant *args = g_variant_new("(t@aya{sv})", va,
                                       g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, &le, sizeof le, 1), &opts);
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(f->conn, VT_NAME, ALPHA, VT_ENDPOINT_IFACE,
                                                            "MemWriteVirtual", args, NULL, G_DBUS_CALL_FLAGS_NONE,
                                                            10000, NULL, &error);
        if (r)
                return NULL;
        char *name = g_dbus_error_get_remote_error(error);
        g_assert_nonnull(name); /* a D-Bus error, not a timeout */
        return name;
}

#define CONFIG_RETRY                                                                                      \
        "<vmsigd><limits bootstrap-backoff-max-ms=\"1000\"/>"                                             \
        "<stub-vm name=\"alpha\" ram-size=\"64M\" bootstrap=\"yes\" fail-boots=\"3\"/></vmsigd>"

/* With fail-boots="3" and the kernel running on its structures, the 4th
 * attempt finds the root, confirmed by the vCPU; one diagnostic line in
 * all; then no more attempts; a late subscriber gets the datum. */
static void test_retry(Fixture *f, gconstpointer data) {
        g_assert_true(vt_wait_for(is_booting, f, 5000));
        boot_guest(f);
        g_assert_true(vt_wait_for(is_ready, f, 20000));
        g_assert_cmpuint(attempts(f), ==, 4);
        g_autofree char *method = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "BootstrapMethod");
        g_autofree char *os = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "GuestOs");
        g_autofree char *release = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "GuestOsRelease");
        g_assert_cmpstr(method, ==, "eprocess+self-ref+cr3");
        g_assert_cmpstr(os, ==, "windows");
        g_assert_cmpstr(release, ==, "19041");
        g_assert_cmpuint(count_log(f, "No address-space root in the RAM of 'alpha' yet"), ==, 1);
        g_assert_cmpuint(count_log(f, "Found the windows root of 'alpha' at 0x1aa000 (eprocess+self-ref+cr3) after "
                                      "4 attempts"),
                         ==, 1);
        /* Disarmed: nothing more happens, well past the longest backoff. */
        g_usleep(1500 * 1000);
        g_assert_cmpuint(attempts(f), ==, 4);
        GDBusConnection *late = vt_bus_connect(f->bus);
        VtMemctx d = vt_subscribe_memctx(late, ALPHA);
        g_assert_cmpuint(d.dtb, ==, f->spec.dtb);
        g_assert_cmpuint(d.epoch, ==, 2);
        vt_memctx_clear(&d);
        g_object_unref(late);
}

#define CONFIG_WATCH                                                                                      \
        "<vmsigd><limits bootstrap-backoff-max-ms=\"500\"/>"                                              \
        "<stub-vm name=\"alpha\" ram-size=\"64M\" bootstrap=\"yes\"/></vmsigd>"

/* RAM alone is no witness: the kernel's structures are all there, but the
 * vCPU has paging off, so the guest is "booting" and nothing is looked
 * for. The kernel starts running on them: the root is published at once
 * and MemctxChanged tells the subscriber, with no invalidation of the
 * rootless epoch before. A reset: the vCPU is back in the firmware, the
 * root is withdrawn with MemctxInvalidated, then found again. */
static void test_booting_until_the_kernel_runs(Fixture *f, gconstpointer data) {
        VtMemctx before = vt_subscribe_memctx(f->conn, ALPHA);
        GuestImageSpec no_boot = f->spec;

        g_assert_cmpuint(before.dtb, ==, 0);
        no_boot.boot = false;
        write_image(f, &no_boot);
        g_assert_true(vt_wait_for(is_booting, f, 5000));
        g_autofree char *left = expect_state_for(f, "booting", 1500);
        g_assert_null(left);
        g_assert_cmpuint(attempts(f), ==, 0);

        boot_guest(f);
        g_autofree char *changed = changed_signal(before.epoch + 1, f->spec.dtb);
        g_assert_true(vt_signal_log_wait(f->log, changed, 5000));
        g_assert_cmpint(vt_signal_log_find(f->log, "MemctxInvalidated", 0), <, 0);
        g_assert_true(is_ready(f));
        g_assert_cmpuint(attempts(f), ==, 1);

        int power = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Reset", NULL);
        close(power);
        g_autofree char *invalidated = g_strdup_printf("MemctxInvalidated " ALPHA " (uint64 %" G_GUINT64_FORMAT ",)",
                                                       before.epoch + 1);
        g_assert_true(vt_signal_log_wait(f->log, invalidated, 5000));
        g_assert_true(vt_signal_log_wait(f->log, "PropertiesChanged " ALPHA " ('org.vmsig.Endpoint', "
                                                 "{'BootstrapState': <'booting'>",
                                         5000));
        /* The mailbox still holds the CR3: the same kernel runs again. */
        g_autofree char *again = changed_signal(before.epoch + 3, f->spec.dtb);
        g_assert_true(vt_signal_log_wait(f->log, again, 5000));
        vt_memctx_clear(&before);
}

/* A reset keeps RAM: the previous boot's System EPROCESS, its tables and
 * its root stay intact while the firmware runs. None of it is published;
 * a write through the old root is refused; when the next boot's kernel
 * runs on tables elsewhere, its root is found past the stale copy, which
 * lies lower in RAM and comes first. */
static void test_stale_root_after_reset(Fixture *f, gconstpointer data) {
        GuestImageSpec next = f->spec;
        GuestImageInfo info;

        boot_guest(f);
        g_assert_true(vt_wait_for(is_ready, f, 10000));
        VtMemctx old = vt_subscribe_memctx(f->conn, ALPHA);
        g_assert_cmphex(old.dtb, ==, f->spec.dtb);
        g_assert_cmpint(guest_image_info(&f->spec, &info), ==, 0);

        /* The guest program waits again after the reset (stub.h). */
        write_u64(f, VMSIG_STUB_MAILBOX_MAGIC_GPA, 0);
        release_write_lease(f); /* a reset would revoke it */
        int power = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Reset", NULL);
        close(power);
        g_assert_true(vt_wait_for(is_booting, f, 5000));
        g_autofree char *left = expect_state_for(f, "booting", 1500);
        g_assert_null(left);
        g_assert_cmpuint(count_log(f, "Found the windows root"), ==, 1);

        /* Through the dead boot's tables: never. */
        uint64_t target = f->spec.eprocess + 0x30, value = read_ram(&old, target);
        g_autofree char *stale = write_virtual(f, info.eprocess_va + 0x30, 0x5A5A5A5A, TRUE, old.epoch);
        g_autofree char *none = write_virtual(f, info.eprocess_va + 0x30, 0x5A5A5A5A, FALSE, 0);
        g_assert_cmpstr(stale, ==, "org.vmsig.Error.StaleEpoch");
        g_assert_cmpstr(none, ==, "org.vmsig.Error.NoAddressSpace");
        g_assert_cmphex(read_ram(&old, target), ==, value);

        /* The next boot: its own tables, EPROCESS and kernel image, above
         * the old ones. */
        next.dtb = 0x2BB000;
        next.self_ref = 0x1A3;
        next.kernel_image = 0x3000000;
        next.eprocess = 0x3C1F040;
        next.stub = GUEST_IMAGE_STUB_NONE;
        guint64 reset_epoch = epoch(f);
        write_image(f, &next);
        release_write_lease(f);
        g_autofree char *found = changed_signal(reset_epoch + 1, next.dtb);
        g_assert_true(vt_signal_log_wait(f->log, found, 10000));
        g_assert_true(is_ready(f));
        g_assert_cmpuint(count_log(f, "Found the windows root of 'alpha' at 0x2bb000 (eprocess+self-ref+cr3)"), ==, 1);
        /* The old one stayed where it was, and was passed over. */
        g_assert_cmphex(read_ram(&old, f->spec.eprocess + 0x28), ==, f->spec.dtb);
        vt_memctx_clear(&old);
}

/* While someone subscribes, the published root is checked again: the
 * kernel's structures change under it (here its System EPROCESS names
 * another DTB) and it is withdrawn with MemctxInvalidated. A write through
 * it right after the change is refused before any timer: it is checked
 * before every write through a virtual address. */
static void test_revalidation_withdraws(Fixture *f, gconstpointer data) {
        GuestImageInfo info;

        boot_guest(f);
        g_assert_true(vt_wait_for(is_ready, f, 10000));
        VtMemctx d = vt_subscribe_memctx(f->conn, ALPHA);
        g_assert_cmpint(guest_image_info(&f->spec, &info), ==, 0);
        g_assert_null(write_virtual(f, info.eprocess_va + 0x30, 0x1111, TRUE, d.epoch));
        g_assert_cmphex(read_ram(&d, f->spec.eprocess + 0x30), ==, 0x1111);

        /* DirectoryTableBase of the System EPROCESS: another table. */
        write_u64(f, f->spec.eprocess + 0x28, 0x10000);
        g_autofree char *refused = write_virtual(f, info.eprocess_va + 0x30, 0x2222, TRUE, d.epoch);
        g_assert_cmpstr(refused, ==, "org.vmsig.Error.StaleEpoch");
        g_assert_cmphex(read_ram(&d, f->spec.eprocess + 0x30), ==, 0x1111);
        g_autofree char *invalidated = g_strdup_printf("MemctxInvalidated " ALPHA " (uint64 %" G_GUINT64_FORMAT ",)",
                                                       d.epoch);
        g_assert_true(vt_signal_log_wait(f->log, invalidated, 1000));
        g_assert_cmpuint(count_log(f, "The address-space root 0x1aa000 of 'alpha' failed its check"), ==, 1);
        g_autofree char *s = state(f);
        g_assert_cmpstr(s, !=, "ready");
        vt_memctx_clear(&d);
}

/* The same change while nobody relies on the root goes unnoticed by the
 * timer (no wakeups for nobody); a subscriber arriving checks it. */
static void test_revalidation_only_while_watched(Fixture *f, gconstpointer data) {
        /* The change is written under the lease the boot was written with:
         * taking a new one would have the root checked at once, and
         * whether that check ran before or after the write would decide
         * the test. The 2 s timer of the holder is not due yet. */
        write_image(f, &f->spec);
        g_assert_true(vt_wait_for(is_ready, f, 10000));
        write_u64(f, f->spec.eprocess + 0x28, 0x10000);
        release_write_lease(f);
        vt_bus_iterate(f->bus, 3000);
        g_assert_true(is_ready(f));

        GDBusConnection *watcher = vt_bus_connect(f->bus);
        VtSignalLog *log = vt_signal_log_new(watcher);
        VtMemctx d = vt_subscribe_memctx(watcher, ALPHA);
        g_autofree char *invalidated = g_strdup_printf("MemctxInvalidated " ALPHA " (uint64 %" G_GUINT64_FORMAT ",)",
                                                       d.epoch);
        /* Checked as soon as someone relies on it, not a period later. */
        g_assert_true(vt_signal_log_wait(log, invalidated, 1000));

        /* The kernel puts its DTB back: found again. While watched, a later
         * change is caught by the periodic check (every 2 s), with no write
         * to trigger it. */
        write_u64(f, f->spec.eprocess + 0x28, f->spec.dtb);
        g_assert_true(vt_wait_for(is_ready, f, 5000));
        guint64 again = epoch(f);
        write_u64(f, f->spec.eprocess + 0x28, 0x10000);
        g_autofree char *second = g_strdup_printf("MemctxInvalidated " ALPHA " (uint64 %" G_GUINT64_FORMAT ",)",
                                                  again);
        g_assert_true(vt_signal_log_wait(log, second, 3500));
        vt_signal_log_free(log);
        vt_memctx_clear(&d);
        g_object_unref(watcher);
}

/* vmsigd quiet once the root is published and nobody watches. */
#define QUIET_MS 3500

static void test_no_wakeups_unwatched(Fixture *f, gconstpointer data) {
        GPid pid = vt_daemon_pid(f->daemon);

        boot_guest(f);
        g_assert_true(vt_wait_for(is_ready, f, 10000));
        vt_bus_iterate(f->bus, QUIET_MS); /* the heap trim after the last work */
        guint64 before = vt_context_switches(pid);
        vt_bus_iterate(f->bus, 2500);
        g_assert_cmpuint(vt_context_switches(pid) - before, ==, 0);
}

#define CONFIG_NO_REGISTERS                                                                               \
        "<vmsigd><limits bootstrap-backoff-max-ms=\"300\"/>"                                              \
        "<stub-vm name=\"alpha\" ram-size=\"64M\" bootstrap=\"yes\" vcpu-registers=\"no\"/></vmsigd>"

typedef struct {
        Fixture *f;
        uint64_t tick;
} Kernel;

/* A running kernel keeps changing its System process (times, counters). */
static gboolean kernel_runs_until_ready(gpointer data) {
        Kernel *k = data;

        write_u64(k->f, k->f->spec.eprocess + 0x30, ++k->tick);
        return is_ready(k->f);
}

/* Without registers: structures that do not change are a copy left in RAM,
 * not a running kernel; once they change between two attempts the root is
 * published, and the method says how it was confirmed. */
static void test_no_registers_needs_a_running_kernel(Fixture *f, gconstpointer data) {
        Kernel k = { .f = f };

        boot_guest(f);
        vt_bus_iterate(f->bus, 2000);
        g_assert_cmpuint(attempts(f), >=, 3);
        g_assert_false(is_ready(f));
        g_assert_cmpuint(count_log(f, "cannot tell the vCPU's registers"), ==, 1);

        g_assert_true(vt_wait_for(kernel_runs_until_ready, &k, 10000));
        g_autofree char *method = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "BootstrapMethod");
        g_assert_cmpstr(method, ==, "eprocess+self-ref+live");
}

#define CONFIG_PINNED_LINUX                                                                               \
        "<vmsigd><limits bootstrap-backoff-max-ms=\"300\"/>"                                              \
        "<stub-vm name=\"alpha\" ram-size=\"64M\" bootstrap=\"yes\" guest-os=\"linux\"/></vmsigd>"

/* Pinned to Linux: a Windows kernel is no Linux kernel, and the OS is what
 * the configuration says. */
static void test_pinned_os(Fixture *f, gconstpointer data) {
        g_autofree char *os = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "GuestOs");

        g_assert_cmpstr(os, ==, "linux");
        boot_guest(f);
        vt_bus_iterate(f->bus, 2000);
        g_assert_cmpuint(attempts(f), >=, 2);
        g_assert_false(is_ready(f));
        g_assert_cmpuint(count_log(f, "no Linux banner under the vCPU's CR3"), >=, 1);
}

/* Without bootstrap="yes" a stub VM never searches: nothing to wake for. */
static void test_disabled_is_idle(Fixture *f, gconstpointer data) {
        g_autofree char *s = state(f);
        g_autofree char *method = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "BootstrapMethod");
        g_assert_cmpstr(s, ==, "idle");
        g_assert_cmpstr(method, ==, "");
        g_usleep(600 * 1000);
        g_assert_cmpuint(attempts(f), ==, 0);
}

/* A root given by the configuration says so. */
static void test_fixed_root(Fixture *f, gconstpointer data) {
        g_autofree char *s = state(f);
        g_autofree char *method = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "BootstrapMethod");
        g_assert_cmpstr(s, ==, "ready");
        g_assert_cmpstr(method, ==, "config");
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
#define ADD(name, config, fn) g_test_add("/bootstrap/" name, Fixture, config, fixture_setup, fn, fixture_teardown)
        ADD("retry", CONFIG_RETRY, test_retry);
        VT_FIXTURE_TESTS_WITH("/bootstrap/", CONFIG_WATCH, test_booting_until_the_kernel_runs,
                              test_stale_root_after_reset, test_revalidation_withdraws,
                              test_revalidation_only_while_watched, test_no_wakeups_unwatched);
        ADD("no-registers-needs-a-running-kernel", CONFIG_NO_REGISTERS, test_no_registers_needs_a_running_kernel);
        ADD("pinned-os", CONFIG_PINNED_LINUX, test_pinned_os);
        ADD("disabled-is-idle", "<vmsigd><stub-vm name=\"alpha\" ram-size=\"64M\"/></vmsigd>", test_disabled_is_idle);
        ADD("fixed-root", "<vmsigd><stub-vm name=\"alpha\" ram-size=\"64M\" dtb=\"0x1aa000\"/></vmsigd>",
            test_fixed_root);
        return g_test_run();
}
