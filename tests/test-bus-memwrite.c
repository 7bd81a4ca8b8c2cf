/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MemWrite, MemWriteVirtual and MemWriteBatch over a real dbus-daemon:
 * writes land, every rejected write names its address and leaves guest RAM
 * byte for byte unchanged, writes can pause the guest, are serialized, are
 * audited without their data, and survive a detach in flight. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <gio/gunixfdlist.h>

#include "fixture.h"
#include "vt-util.h"

#define ALPHA VT_ENDPOINT("alpha")
#define RAM (4u << 20)
#define DTB 0x10000u
#define CONFIG                                                                      \
        "<vmsigd><audit target=\"stderr\"/>"                                        \
        "<stub-vm name=\"alpha\" ram-size=\"4M\" dtb=\"0x10000\"/>"                 \
        "<stub-vm name=\"slow\" ram-size=\"1M\" latency-ms=\"300\"/></vmsigd>"

typedef struct {
        VT_FIXTURE;
        int lease;
        int ram_fd;
        const guint8 *ram; /* a read-only view of alpha's RAM */
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data) {
        vt_fixture_setup(&f->vt, CONFIG, 0);
        f->lease = vt_acquire_lease(f->conn, ALPHA, "memory-write", NULL);
        f->ram_fd = vt_subscribe_memctx_fd(f->conn, ALPHA);
        f->ram = mmap(NULL, RAM, PROT_READ, MAP_SHARED, f->ram_fd, 0);
        g_assert_true(f->ram != MAP_FAILED);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        munmap((void *) f->ram, RAM);
        close(f->ram_fd);
        close(f->lease);
        vt_fixture_teardown(&f->vt);
}

static GVariant *bytes(const void *data, gsize len) {
        return g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, data, len, 1);
}

static GVariant *options(gboolean pause, gint64 expected_epoch) {
        GVariantBuilder b;

        g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
        if (pause)
                g_variant_builder_add(&b, "{sv}", "pause", g_variant_new_boolean(TRUE));
        if (expected_epoch >= 0)
                g_variant_builder_add(&b, "{sv}", "expected_epoch", g_variant_new_uint64(expected_epoch));
        return g_variant_builder_end(&b);
}

static GVariant *write_args(guint64 address, const void *data, gsize len) {
        return g_variant_new("(t@ay@a{sv})", address, bytes(data, len), options(FALSE, -1));
}

static void mem_write(Fixture *f, const char *method, guint64 address, const void *data, gsize len) {
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, method, write_args(address, data, len));
}

static void put_u64(Fixture *f, guint64 gpa, guint64 value) {
        mem_write(f, "MemWrite", gpa, &value, sizeof value);
}

/* Page tables at DTB: VA 0x400000 -> GPA 0x20000 (4K, the next PTE not
 * present), VA 0x600000 -> GPA 0x200000 (2M), VA 0x40000000 -> GPA 0 (1G,
 * mostly beyond the 4M of RAM). */
static void build_page_tables(Fixture *f) {
        put_u64(f, DTB, 0x11000 | 3);                /* PML4[0] -> PDPT */
        put_u64(f, 0x11000, 0x12000 | 3);            /* PDPT[0] -> PD */
        put_u64(f, 0x11000 + 8, 0x0 | 0x80 | 3);     /* PDPT[1]: 1G page at 0 */
        put_u64(f, 0x12000 + 2 * 8, 0x13000 | 3);    /* PD[2] -> PT (VA 0x400000) */
        put_u64(f, 0x12000 + 3 * 8, 0x200000 | 0x83); /* PD[3]: 2M page (VA 0x600000) */
        put_u64(f, 0x13000, 0x20000 | 3);            /* PT[0] -> 0x20000 */
}

/* A rejected write: the named error, the address in the message, and not
 * one byte of RAM changed. */
static void assert_rejected(Fixture *f, const char *method, GVariant *args, const char *error_name,
                            const char *address) {
        g_autofree guint8 *before = g_memdup2(f->ram, RAM);
        g_autofree char *message = NULL;
        g_autofree char *name = vt_call_error(f->conn, ALPHA, VT_ENDPOINT_IFACE, method, args, &message);

        g_test_message("%s: %s", name, message);
        g_assert_cmpstr(name, ==, error_name);
        if (address)
                g_assert_nonnull(strstr(message, address));
        g_assert_cmpmem(before, RAM, f->ram, RAM);
}

static void test_gpa_write(Fixture *f, gconstpointer data) {
        mem_write(f, "MemWrite", 0x2000, "hello", 5);
        g_assert_cmpmem(f->ram + 0x2000, 5, "hello", 5);
        g_autofree char *log = vt_daemon_log(f->daemon);
        g_assert_nonnull(strstr(log, "action=memwrite endpoint=alpha result=ok reason=- address=0x2000 length=5"));
        g_assert_null(strstr(log, "hello"));

        /* At the very end of RAM, and across it. */
        mem_write(f, "MemWrite", RAM - 4, "tail", 4);
        g_assert_cmpmem(f->ram + RAM - 4, 4, "tail", 4);
        assert_rejected(f, "MemWrite", write_args(RAM - 2, "xxxx", 4), "org.vmsig.Error.OutOfRange", "0x400000");
        assert_rejected(f, "MemWrite", write_args(G_MAXUINT64 - 1, "xxxx", 4), "org.vmsig.Error.OutOfRange", NULL);
        assert_rejected(f, "MemWrite", write_args(0x100, "", 0), "org.vmsig.Error.EmptyWrite", "0x100");
        g_autofree guint8 *big = g_malloc0(4097);
        assert_rejected(f, "MemWrite", write_args(0x100, big, 4097), "org.vmsig.Error.WriteTooLong", "4096");
        mem_write(f, "MemWrite", 0x100, big, 4096);
        assert_rejected(f, "MemWrite",
                        g_variant_new("(t@ay@a{sv})", (guint64) 0x100, bytes("x", 1), options(FALSE, 7)),
                        "org.vmsig.Error.StaleEpoch", NULL);
        g_autoptr(GVariant) ok = vt_call(
                f->conn, ALPHA, VT_ENDPOINT_IFACE, "MemWrite",
                g_variant_new("(t@ay@a{sv})", (guint64) 0x100, bytes("y", 1), options(FALSE, 1)));
        g_assert_cmpint(f->ram[0x100], ==, 'y');

        GVariantBuilder bad;
        g_variant_builder_init(&bad, G_VARIANT_TYPE("a{sv}"));
        g_variant_builder_add(&bad, "{sv}", "pauze", g_variant_new_boolean(TRUE));
        assert_rejected(f, "MemWrite",
                        g_variant_new("(t@ay@a{sv})", (guint64) 0x100, bytes("x", 1), g_variant_builder_end(&bad)),
                        "org.vmsig.Error.InvalidArgument", NULL);
}

static void test_needs_lease(Fixture *f, gconstpointer data) {
        GDBusConnection *other = vt_bus_connect(f->bus);
        g_autofree guint8 *before = g_memdup2(f->ram, RAM);
        g_autofree char *e = vt_call_error(other, ALPHA, VT_ENDPOINT_IFACE, "MemWrite", write_args(0x10, "x", 1),
                                           NULL);

        g_assert_cmpstr(e, ==, "org.vmsig.Error.NotLeaseHolder");
        g_assert_cmpmem(before, RAM, f->ram, RAM);
        g_object_unref(other);
}

static void test_virtual(Fixture *f, gconstpointer data) {
        build_page_tables(f);
        mem_write(f, "MemWriteVirtual", 0x400010, "abc", 3);
        g_assert_cmpmem(f->ram + 0x20010, 3, "abc", 3);
        mem_write(f, "MemWriteVirtual", 0x600000 + 0x1234, "2M", 2);
        g_assert_cmpmem(f->ram + 0x200000 + 0x1234, 2, "2M", 2);
        mem_write(f, "MemWriteVirtual", 0x40000000 + 0x5000, "1G", 2);
        g_assert_cmpmem(f->ram + 0x5000, 2, "1G", 2);

        assert_rejected(f, "MemWriteVirtual", write_args(0x401000, "x", 1), "org.vmsig.Error.UnmappedAddress",
                        "0x401000");
        assert_rejected(f, "MemWriteVirtual", write_args(0x400ffe, "xxxx", 4), "org.vmsig.Error.UnmappedAddress",
                        "0x401000");
        assert_rejected(f, "MemWriteVirtual", write_args(0x800000000000, "x", 1), "org.vmsig.Error.UnmappedAddress",
                        "not canonical");
        assert_rejected(f, "MemWriteVirtual", write_args(0x40000000 + (8u << 20), "x", 1),
                        "org.vmsig.Error.OutOfRange", "0x40800000");
}

static void test_virtual_needs_dtb(Fixture *f, gconstpointer data) {
        int power = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "Reset", NULL);
        close(power);
        /* The reset revoked the lease too. */
        g_autofree char *e = vt_call_error(f->conn, ALPHA, VT_ENDPOINT_IFACE, "MemWriteVirtual",
                                           write_args(0x400000, "x", 1), NULL);
        g_assert_cmpstr(e, ==, "org.vmsig.Error.NotLeaseHolder");
        close(f->lease);
        f->lease = vt_acquire_lease(f->conn, ALPHA, "memory-write", NULL);
        assert_rejected(f, "MemWriteVirtual", write_args(0x400000, "x", 1), "org.vmsig.Error.NoAddressSpace", NULL);
        assert_rejected(f, "MemWrite",
                        g_variant_new("(t@ay@a{sv})", (guint64) 0x100, bytes("x", 1), options(FALSE, 1)),
                        "org.vmsig.Error.StaleEpoch", "epoch 2");
}

static GVariant *batch(guint64 a1, const char *d1, guint64 a2, const char *d2) {
        GVariantBuilder b;

        g_variant_builder_init(&b, G_VARIANT_TYPE("a(tay)"));
        g_variant_builder_add(&b, "(t@ay)", a1, bytes(d1, strlen(d1)));
        g_variant_builder_add(&b, "(t@ay)", a2, bytes(d2, strlen(d2)));
        return g_variant_new("(@a(tay)@a{sv})", g_variant_builder_end(&b), options(FALSE, -1));
}

static void test_batch(Fixture *f, gconstpointer data) {
        assert_rejected(f, "MemWriteBatch", batch(0x3000, "AA", RAM + 16, "BB"), "org.vmsig.Error.OutOfRange",
                        "Batch entry 1");
        assert_rejected(f, "MemWriteBatch", batch(0x3000, "AA", 0x4000, ""), "org.vmsig.Error.EmptyWrite",
                        "Batch entry 1");
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "MemWriteBatch",
                                        batch(0x3000, "AA", RAM - 2, "BB"));
        g_assert_cmpmem(f->ram + 0x3000, 2, "AA", 2);
        g_assert_cmpmem(f->ram + RAM - 2, 2, "BB", 2);
        g_autofree char *log = vt_daemon_log(f->daemon);
        /* One record for the batch: its first address, the length of all
         * its writes and how many there were. */
        g_assert_nonnull(strstr(log, "result=ok reason=- address=0x3000 length=4 count=2"));
}

typedef VtReplies Pending;

static gboolean three_done(gpointer data) {
        return ((Pending *) data)->done == 3;
}

/* A paused write pauses and resumes the guest around it; writes queued
 * behind it wait and land in order. */
static void test_pause_and_serialize(Fixture *f, gconstpointer data) {
        VtSignalLog *log = vt_signal_log_new(f->conn);
        Pending p = { .errors = g_ptr_array_new_with_free_func(g_free), .with_ok = TRUE };
        const char *values[] = { "one", "two", "3rd" };

        for (int i = 0; i < 3; i++)
                g_dbus_connection_call(f->conn, VT_NAME, ALPHA, VT_ENDPOINT_IFACE, "MemWrite",
                                       g_variant_new("(t@ay@a{sv})", (guint64) 0x7000, bytes(values[i], 3),
                                                     options(i == 0, -1)),
                                       NULL, G_DBUS_CALL_FLAGS_NONE, 10000, NULL, vt_replies_collect, &p);
        g_assert_true(vt_wait_for(three_done, &p, 10000));
        for (guint i = 0; i < 3; i++)
                g_assert_cmpstr(g_ptr_array_index(p.errors, i), ==, "ok");
        g_assert_cmpmem(f->ram + 0x7000, 3, "3rd", 3);
        g_assert_true(vt_signal_log_wait(log, "PropertiesChanged " ALPHA " ('org.vmsig.Endpoint', {'State': <'running'>}",
                                         5000));
        int paused = vt_signal_log_find(log, "PropertiesChanged " ALPHA " ('org.vmsig.Endpoint', {'State': <'paused'>}",
                                        0);
        g_assert_cmpint(paused, >=, 0);
        g_autofree char *state = vt_get_string(f->conn, ALPHA, VT_ENDPOINT_IFACE, "State");
        g_assert_cmpstr(state, ==, "running");
        g_ptr_array_unref(p.errors);
        vt_signal_log_free(log);
}

static gboolean one_done(gpointer data) {
        return ((Pending *) data)->done == 1;
}

/* The endpoint goes while a paused write waits for the host: the caller
 * gets an error and the daemon stays sound (ASan and valgrind runs). */
static void test_detach_in_flight(Fixture *f, gconstpointer data) {
        Pending p = { .errors = g_ptr_array_new_with_free_func(g_free), .with_ok = TRUE };
        int lease = vt_acquire_lease(f->conn, "/org/vmsig/endpoint/slow", "memory-write", NULL);

        g_dbus_connection_call(f->conn, VT_NAME, "/org/vmsig/endpoint/slow", VT_ENDPOINT_IFACE, "MemWrite",
                               g_variant_new("(t@ay@a{sv})", (guint64) 0x10, bytes("x", 1), options(TRUE, -1)), NULL,
                               G_DBUS_CALL_FLAGS_NONE, 10000, NULL, vt_replies_collect, &p);
        vt_bus_iterate(f->bus, 50);
        g_autoptr(GVariant) d = vt_call(f->conn, VT_MANAGER_PATH, VT_MANAGER_IFACE, "DetachEndpoint",
                                        g_variant_new("(s)", "slow"));
        g_assert_true(vt_wait_for(one_done, &p, 10000));
        g_assert_cmpstr(g_ptr_array_index(p.errors, 0), ==, "org.vmsig.Error.EndpointDetached");
        g_ptr_array_unref(p.errors);
        close(lease);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add("/memwrite/" name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        ADD("gpa", test_gpa_write);
        VT_FIXTURE_TESTS("/memwrite/", test_needs_lease, test_virtual, test_virtual_needs_dtb, test_batch,
                         test_pause_and_serialize, test_detach_in_flight);
        return g_test_run();
}
