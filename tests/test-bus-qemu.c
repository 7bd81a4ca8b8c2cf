/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsigd with a real QEMU (TCG), found through its trigger file, driven
 * over the bus, and checked against QEMU's own view through a second QMP
 * session of the test. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <gio/gunixfdlist.h>

#include "fixture.h"
#include "qemu-harness.h"
#include "vt-util.h"

#define VM VT_ENDPOINT("guest")

typedef struct {
        VT_FIXTURE;
        QemuVm *qemu;
        char *trigger;
} Fixture;

static void write_trigger(Fixture *f) {
        vt_write_trigger(f->trigger_dir, "guest", NULL, f->qemu->ram_path, f->qemu->qmp_path);
}

static void fixture_setup(Fixture *f, gconstpointer data) {
        if (!qemu_harness_available())
                return;
        f->qemu = qemu_vm_new();
        f->qemu->vga = data != NULL;
        qemu_vm_start(f->qemu);
        vt_fixture_setup_discovering(&f->vt, "<audit target=\"stderr\"/><limits bootstrap-backoff-max-ms=\"500\"/>",
                                     VT_FIXTURE_SIGNAL_LOG);
        f->trigger = g_build_filename(f->trigger_dir, "guest.xml", NULL);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        if (!f->qemu)
                return;
        vt_fixture_teardown(&f->vt);
        qemu_vm_free(f->qemu);
        g_free(f->trigger);
}

static char *state(Fixture *f) {
        return vt_get_string(f->conn, VM, VT_ENDPOINT_IFACE, "State");
}

static void wait_state(Fixture *f, const char *want) {
        g_assert_true(vt_endpoint_wait_property(f->conn, VM, "State", want, TRUE, 10000));
}

/* The trigger file brings the VM onto the bus (how fast is the bench's
 * business: bench/RESULTS.md, 11a); its removal takes it off again. */
static void test_discovery(Fixture *f, gconstpointer data) {
        if (!f->qemu)
                return;
        gint64 start = g_get_monotonic_time();
        write_trigger(f);
        g_assert_true(vt_signal_log_wait(f->log, "EndpointAdded /org/vmsig ", 5000));
        gint64 took = g_get_monotonic_time() - start;
        g_test_message("trigger file to EndpointAdded: %" G_GINT64_FORMAT " us", took);
        wait_state(f, "running");
        g_autofree char *backend = vt_get_string(f->conn, VM, VT_ENDPOINT_IFACE, "Backend");
        g_assert_cmpstr(backend, ==, "qemu");
        /* One line says it, with the vmid. */
        g_autofree char *log = vt_daemon_log(f->daemon);
        const char *first = strstr(log, "Attached VM");
        g_assert_nonnull(first);
        g_assert_null(strstr(first + 1, "Attached VM"));
        g_assert_nonnull(strstr(first, "as vmid 1"));

        g_assert_cmpint(g_unlink(f->trigger), ==, 0);
        g_assert_true(vt_signal_log_wait(f->log, "EndpointRemoved /org/vmsig ", 5000));
}

/* Lifecycle, input and MemWrite through the bus, as QEMU sees them. */
static void test_drive(Fixture *f, gconstpointer data) {
        if (!f->qemu)
                return;
        write_trigger(f);
        wait_state(f, "running");

        int power = vt_acquire_lease(f->conn, VM, "power", NULL);
        g_autoptr(GVariant) p = vt_call(f->conn, VM, VT_ENDPOINT_IFACE, "Pause", NULL);
        g_autofree char *paused = qmp_session_status(f->qemu->session);
        g_assert_cmpstr(paused, ==, "paused");
        g_autofree char *s1 = state(f);
        g_assert_cmpstr(s1, ==, "paused");
        g_autoptr(GVariant) r = vt_call(f->conn, VM, VT_ENDPOINT_IFACE, "Resume", NULL);
        g_autofree char *running = qmp_session_status(f->qemu->session);
        g_assert_cmpstr(running, ==, "running");

        /* State follows QEMU, also when someone else stops it. */
        qmp_session_run(f->qemu->session, "stop", NULL);
        wait_state(f, "paused");
        qmp_session_run(f->qemu->session, "cont", NULL);
        wait_state(f, "running");

        int input = vt_acquire_lease(f->conn, VM, "input", NULL);
        GVariantBuilder b;
        g_variant_builder_init(&b, G_VARIANT_TYPE("a(uui)"));
        g_variant_builder_add(&b, "(uui)", 0, 36, 1); /* qcode 36: a */
        g_variant_builder_add(&b, "(uui)", 0, 36, 0);
        g_autoptr(GVariant) in = vt_call(f->conn, VM, VT_ENDPOINT_IFACE, "InjectInput", g_variant_new("(a(uui))", &b));

        int mw = vt_acquire_lease(f->conn, VM, "memory-write", NULL);
        const guint8 bytes[8] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };
        g_autoptr(GVariant) w = vt_call(
                f->conn, VM, VT_ENDPOINT_IFACE, "MemWrite",
                g_variant_new("(t@aya{sv})", (guint64) 0x7000000,
                              g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, bytes, sizeof bytes, 1), NULL));
        g_assert_cmphex(qmp_session_xp(f->qemu->session, 0x7000000), ==, 0x8877665544332211ULL);

        close(mw);
        close(input);
        close(power);
}

/* QEMU killed: shut off, leases revoked, no crash. QEMU back: picked up,
 * and killed through vmsigd. */
static void test_qemu_dies_and_returns(Fixture *f, gconstpointer data) {
        if (!f->qemu)
                return;
        write_trigger(f);
        wait_state(f, "running");
        g_autofree char *lease = NULL;
        int power = vt_acquire_lease(f->conn, VM, "power", &lease);

        qemu_vm_kill(f->qemu);
        wait_state(f, "shut-off");
        g_autofree char *holder = vt_get_string(f->conn, VM, VT_ENDPOINT_IFACE, "PowerLeaseHolder");
        g_assert_cmpstr(holder, ==, "");
        close(power);

        qemu_vm_start(f->qemu);
        wait_state(f, "running");
        power = vt_acquire_lease(f->conn, VM, "power", NULL);
        g_autoptr(GVariant) p = vt_call(f->conn, VM, VT_ENDPOINT_IFACE, "Pause", NULL);
        g_autofree char *paused = qmp_session_status(f->qemu->session);
        g_assert_cmpstr(paused, ==, "paused");

        /* Kill: QEMU quits, the endpoint is shut off, the lease ends. */
        g_autoptr(GVariant) k = vt_call(f->conn, VM, VT_ENDPOINT_IFACE, "Kill", NULL);
        g_assert_true(qemu_vm_wait_exit(f->qemu, 10000));
        wait_state(f, "shut-off");
        g_autofree char *after_kill = vt_get_string(f->conn, VM, VT_ENDPOINT_IFACE, "PowerLeaseHolder");
        g_assert_cmpstr(after_kill, ==, "");
        close(power);
}

#ifdef VMSIG_HAVE_VGPU
typedef struct {
        Fixture *f;
        guint32 width, height;
        gboolean blank;
        guint64 seq;
} FrameWait;

/* Fetches the newest frame (subscribing the first time) and looks at it. */
static gboolean got_screen(gpointer data) {
        FrameWait *w = data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) reply = g_dbus_connection_call_with_unix_fd_list_sync(
                w->f->conn, VT_NAME, VM, VT_ENDPOINT_IFACE, w->seq ? "GetFrame" : "SubscribeFrames", NULL,
                G_VARIANT_TYPE("(huuust)"), G_DBUS_CALL_FLAGS_NONE, 20000, NULL, &fds, NULL, &error);
        g_autofree char *format = NULL;
        guint32 stride;
        gint32 index;
        int fd;

        g_assert_no_error(error);
        g_variant_get(reply, "(huuust)", &index, &w->width, &w->height, &stride, &format, &w->seq);
        g_assert_cmpstr(format, ==, "XRGB8888");
        fd = g_unix_fd_list_get(fds, index, &error);
        g_assert_no_error(error);
        /* Sealed: not even root writes it. */
        g_assert_cmpint(fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE, ==, F_SEAL_WRITE);
        const guint32 *px = mmap(NULL, (size_t) stride * w->height, PROT_READ, MAP_SHARED, fd, 0);
        g_assert_true(px != MAP_FAILED);
        w->blank = TRUE;
        for (guint32 y = 0; y < w->height && w->blank; y++)
                for (guint32 x = 0; x < w->width; x++)
                        if (px[(size_t) y * (stride / 4) + x] != px[0]) {
                                w->blank = FALSE;
                                break;
                        }
        munmap((void *) px, (size_t) stride * w->height);
        close(fd);
        return w->width == 720 && w->height == 400 && !w->blank;
}

/* QEMU at SeaBIOS's screen (VGA text mode, 720x400), seen through
 * libvmsig-vgpu: the screendump decoded into a frame that is not blank. */
static void test_frames(Fixture *f, gconstpointer data) {
        FrameWait w = { .f = f };

        if (!f->qemu)
                return;
        write_trigger(f);
        wait_state(f, "running");
        g_autoptr(GVariant) caps = vt_get_property(f->conn, VM, VT_ENDPOINT_IFACE, "Capabilities");
        g_autofree char *caps_text = g_variant_print(caps, FALSE);
        g_assert_nonnull(strstr(caps_text, "'display'"));
        /* SeaBIOS draws its screen within a second or two of TCG. */
        gboolean ok = vt_wait_for(got_screen, &w, 15000);
        g_test_message("frame %" G_GUINT64_FORMAT ": %ux%u%s", w.seq, w.width, w.height, w.blank ? ", blank" : "");
        g_assert_true(ok);
        g_autoptr(GVariant) r = vt_call(f->conn, VM, VT_ENDPOINT_IFACE, "UnsubscribeFrames", NULL);
}
#endif

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add("/qemu/" name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        VT_FIXTURE_TESTS("/qemu/", test_discovery, test_drive);
        ADD("qemu-dies-and-returns", test_qemu_dies_and_returns);
#ifdef VMSIG_HAVE_VGPU
        g_test_add("/qemu/frames", Fixture, "vga", fixture_setup, test_frames, fixture_teardown);
#endif
        return g_test_run();
}
