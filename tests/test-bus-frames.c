/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Frames of the guest's screen over a real dbus-daemon, from stub VMs
 * through the vgpu library vmsigd loads: the frame and its sealed fd, the
 * stub's pattern following the VM's state, the rate limit, replay to a late
 * subscriber, the ways a subscription ends, and no wakeups of vmsigd while
 * nobody subscribes. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gio/gunixfdlist.h>

#include "fixture.h"
#include "vt-util.h"

#define ALPHA VT_ENDPOINT("alpha")
#define BETA VT_ENDPOINT("beta")
#define RATE 4
#define CONFIG                                                                                                      \
        "<vmsigd><frames rate=\"4\"/>"                                                                              \
        "<stub-vm name=\"alpha\" ram-size=\"1M\"/>"                                                                 \
        "<stub-vm name=\"beta\" ram-size=\"1M\"/>"                                                                  \
        "</vmsigd>"

VT_FIXTURE_DEFINE(CONFIG, 0)

typedef struct {
        int fd;
        guint32 width, height, stride;
        char *format;
        guint64 seq;
} Frame;

static void frame_clear(Frame *fr) {
        if (fr->fd >= 0)
                close(fr->fd);
        g_free(fr->format);
        fr->fd = -1;
        fr->format = NULL;
}

static Frame call_frame(GDBusConnection *c, const char *path, const char *method) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) reply = g_dbus_connection_call_with_unix_fd_list_sync(
                c, VT_NAME, path, VT_ENDPOINT_IFACE, method, NULL, G_VARIANT_TYPE("(huuust)"), G_DBUS_CALL_FLAGS_NONE,
                20000, NULL, &fds, NULL, &error);
        Frame fr = { .fd = -1 };
        gint32 index;

        g_assert_no_error(error);
        g_variant_get(reply, "(huuust)", &index, &fr.width, &fr.height, &fr.stride, &fr.format, &fr.seq);
        fr.fd = g_unix_fd_list_get(fds, index, &error);
        g_assert_no_error(error);
        return fr;
}

static char *call_error(GDBusConnection *c, const char *path, const char *method, char **message) {
        return vt_call_error(c, path, VT_ENDPOINT_IFACE, method, NULL, message);
}

/* The pixels, copied out through a read-only mapping. */
static GBytes *frame_pixels(const Frame *fr) {
        size_t size = (size_t) fr->stride * fr->height;
        void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fr->fd, 0);
        GBytes *b;

        g_assert_true(p != MAP_FAILED);
        b = g_bytes_new(p, size);
        munmap(p, size);
        return b;
}

static void assert_stub_frame(const Frame *fr) {
        struct stat st;

        g_assert_cmpuint(fr->width, ==, 640);
        g_assert_cmpuint(fr->height, ==, 480);
        g_assert_cmpuint(fr->stride, ==, 640 * 4);
        g_assert_cmpstr(fr->format, ==, "XRGB8888");
        g_assert_cmpuint(fr->seq, >=, 1);
        g_assert_cmpint(fstat(fr->fd, &st), ==, 0);
        g_assert_cmpint(st.st_size, >=, (off_t) fr->stride * fr->height);
}

static gboolean all_same(GBytes *b) {
        gsize n;
        const guint32 *px = g_bytes_get_data(b, &n);

        for (gsize i = 1; i < n / 4; i++)
                if (px[i] != px[0])
                        return FALSE;
        return TRUE;
}

/* No route makes the received frame writable: it is a sealed memfd. */
static void assert_sealed(int fd) {
        g_autofree char *proc = g_strdup_printf("/proc/self/fd/%d", fd);
        int seals = fcntl(fd, F_GET_SEALS), rw;
        char byte = 1;

        g_assert_cmpint(seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), ==,
                        F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
        g_assert_cmpint(pwrite(fd, &byte, 1, 0), ==, -1);
        g_assert_true(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
        g_assert_cmpint(errno, ==, EPERM);
        g_assert_cmpint(ftruncate(fd, 0), ==, -1);
        g_assert_cmpint(fallocate(fd, 0, 0, 1 << 30), ==, -1);
        g_assert_cmpint(fcntl(fd, F_ADD_SEALS, 0), ==, -1);
        rw = open(proc, O_RDWR | O_CLOEXEC);
        if (rw >= 0) {
                /* Reopening for writing works on a memfd; writing does not. */
                g_assert_cmpint(pwrite(rw, &byte, 1, 0), ==, -1);
                g_assert_cmpint(errno, ==, EPERM);
                g_assert_true(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0) == MAP_FAILED);
                close(rw);
        }
}

static void test_subscribe(Fixture *f, gconstpointer data) {
        g_autofree char *message = NULL;
        g_autoptr(GBytes) pixels = NULL;
        Frame fr = call_frame(f->conn, ALPHA, "SubscribeFrames"), again;

        assert_stub_frame(&fr);
        pixels = frame_pixels(&fr);
        g_assert_false(all_same(pixels));
        assert_sealed(fr.fd);

        again = call_frame(f->conn, ALPHA, "GetFrame");
        assert_stub_frame(&again);
        g_assert_cmpuint(again.seq, >=, fr.seq);
        frame_clear(&again);

        g_variant_unref(vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "UnsubscribeFrames", NULL));
        g_autofree char *name = call_error(f->conn, ALPHA, "GetFrame", &message);
        g_assert_cmpstr(name, ==, "org.vmsig.Error.NotSubscribed");
        g_assert_cmpstr(message, ==, "You are not subscribed to the frames of 'alpha'.");
        g_autofree char *name2 = call_error(f->conn, ALPHA, "UnsubscribeFrames", NULL);
        g_assert_cmpstr(name2, ==, "org.vmsig.Error.NotSubscribed");
        /* The frame received stays readable after the subscription ended. */
        g_autoptr(GBytes) still = frame_pixels(&fr);
        g_assert_true(g_bytes_equal(still, pixels));
        frame_clear(&fr);
}

typedef struct {
        VtSignalLog *log;
        guint n;
} CountCtx;

static guint frame_changes(VtSignalLog *log, const char *path) {
        g_autofree char *prefix = g_strdup_printf("FrameChanged %s ", path);
        guint n = 0;

        for (int i = vt_signal_log_find(log, prefix, 0); i >= 0; i = vt_signal_log_find(log, prefix, i + 1))
                n++;
        return n;
}

static gboolean have_changes(gpointer p) {
        CountCtx *c = p;
        return frame_changes(c->log, ALPHA) >= c->n;
}

static void wait_changes(VtSignalLog *log, guint n) {
        CountCtx c = { log, n };
        g_assert_true(vt_wait_for(have_changes, &c, 10000));
}

static GBytes *current_pixels(Fixture *f, guint64 *seq) {
        Frame fr = call_frame(f->conn, ALPHA, "GetFrame");
        GBytes *b = frame_pixels(&fr);

        if (seq)
                *seq = fr.seq;
        frame_clear(&fr);
        return b;
}

static void lifecycle(Fixture *f, const char *method) {
        g_autoptr(GVariant) r = vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, method, NULL);
}

/* A running stub's clock moves on every capture; a paused one's does not,
 * and the palette says which state the VM is in. */
static void test_pattern_follows_state(Fixture *f, gconstpointer data) {
        int lease = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        VtSignalLog *log = vt_signal_log_new(f->conn);
        g_autoptr(GBytes) running = NULL, paused = NULL, paused_later = NULL, off = NULL;
        guint64 seq_paused, seq_later;
        Frame first = call_frame(f->conn, ALPHA, "SubscribeFrames");

        frame_clear(&first);
        wait_changes(log, 2);
        running = current_pixels(f, NULL);

        lifecycle(f, "Pause");
        /* The next frame shows the pause; after that nothing changes. */
        vt_bus_iterate(f->bus, 1000 + 2000 / RATE);
        paused = current_pixels(f, &seq_paused);
        g_assert_false(g_bytes_equal(paused, running));
        guint n = frame_changes(log, ALPHA);
        vt_bus_iterate(f->bus, 1500);
        g_assert_cmpuint(frame_changes(log, ALPHA), ==, n);
        paused_later = current_pixels(f, &seq_later);
        g_assert_cmpuint(seq_later, ==, seq_paused);
        g_assert_true(g_bytes_equal(paused_later, paused));

        lifecycle(f, "Resume");
        wait_changes(log, n + 2);

        lifecycle(f, "PowerOff");
        vt_bus_iterate(f->bus, 1000 + 2000 / RATE);
        off = current_pixels(f, NULL);
        g_assert_false(g_bytes_equal(off, paused));
        g_assert_false(g_bytes_equal(off, running));
        vt_signal_log_free(log);
        close(lease);
}

/* At most RATE captures a second, however fast the screen changes. */
static void test_rate_limit(Fixture *f, gconstpointer data) {
        VtSignalLog *log = vt_signal_log_new(f->conn);
        Frame first = call_frame(f->conn, ALPHA, "SubscribeFrames");
        gint64 start = g_get_monotonic_time();
        double seconds;
        guint n;

        vt_bus_iterate(f->bus, 3000);
        seconds = (double) (g_get_monotonic_time() - start) / G_USEC_PER_SEC;
        n = frame_changes(log, ALPHA);
        g_test_message("%u frames in %.2f s at rate %d", n, seconds, RATE);
        g_assert_cmpuint(n, >=, RATE);
        g_assert_cmpuint(n, <=, (guint) (seconds * RATE) + 1);
        /* Only alpha is watched: beta was never captured. */
        g_assert_cmpuint(frame_changes(log, BETA), ==, 0);
        frame_clear(&first);
        vt_signal_log_free(log);
}

/* Subscribing while nobody watched answers with a fresh capture, also
 * when the screen did not change since the retained frame (a paused VM). */
static void test_resubscribe_unchanged(Fixture *f, gconstpointer data) {
        int lease = vt_acquire_lease(f->conn, ALPHA, "power", NULL);
        Frame first, again;
        gint64 start;

        lifecycle(f, "Pause");
        first = call_frame(f->conn, ALPHA, "SubscribeFrames");
        g_variant_unref(vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "UnsubscribeFrames", NULL));
        vt_bus_iterate(f->bus, 600);
        start = g_get_monotonic_time();
        again = call_frame(f->conn, ALPHA, "SubscribeFrames");
        /* One capture, not the 10 s timeout. */
        g_assert_cmpint(g_get_monotonic_time() - start, <, 5 * G_USEC_PER_SEC);
        g_assert_cmpuint(again.seq, >, first.seq);
        g_autoptr(GBytes) a = frame_pixels(&first), b = frame_pixels(&again);
        g_assert_true(g_bytes_equal(a, b));
        frame_clear(&first);
        frame_clear(&again);
        close(lease);
}

/* A second subscriber gets the newest frame at once, the one the first
 * subscriber was told of. */
static void test_late_subscriber(Fixture *f, gconstpointer data) {
        g_autoptr(GDBusConnection) late = vt_bus_connect(f->bus);
        VtSignalLog *log = vt_signal_log_new(f->conn);
        Frame first = call_frame(f->conn, ALPHA, "SubscribeFrames"), second;
        guint64 seq;

        wait_changes(log, 1);
        g_autoptr(GBytes) newest = current_pixels(f, &seq);
        second = call_frame(late, ALPHA, "SubscribeFrames");
        g_assert_cmpuint(second.seq, >=, seq);
        assert_stub_frame(&second);
        frame_clear(&first);
        frame_clear(&second);
        vt_signal_log_free(log);
}

static guint64 wakeups_over(Fixture *f, guint ms) {
        guint64 before = vt_context_switches(vt_daemon_pid(f->daemon));
        vt_bus_iterate(f->bus, ms);
        return vt_context_switches(vt_daemon_pid(f->daemon)) - before;
}

/* vmsigd trims its heap once, 3 s after the last work (memory-trim.c). */
#define QUIET_MS 3500

/* Nobody subscribed: vmsigd sleeps. A subscriber: it captures. */
static void test_no_wakeups_without_subscribers(Fixture *f, gconstpointer data) {
        Frame fr;

        vt_bus_iterate(f->bus, QUIET_MS);
        g_assert_cmpuint(wakeups_over(f, 2000), ==, 0);
        fr = call_frame(f->conn, ALPHA, "SubscribeFrames");
        g_assert_cmpuint(wakeups_over(f, 1000), >=, RATE / 2);
        g_variant_unref(vt_call(f->conn, ALPHA, VT_ENDPOINT_IFACE, "UnsubscribeFrames", NULL));
        /* A capture in flight finishes, the heap is trimmed; then nothing. */
        vt_bus_iterate(f->bus, QUIET_MS);
        g_assert_cmpuint(wakeups_over(f, 2000), ==, 0);
        frame_clear(&fr);
}

/* A subscription ends with its endpoint; the daemon keeps no fd of it. */
static void test_detach_ends_subscription(Fixture *f, gconstpointer data) {
        guint fds_before;
        Frame fr;

        vt_bus_iterate(f->bus, 300);
        fds_before = vt_count_fds(vt_daemon_pid(f->daemon));
        fr = call_frame(f->conn, BETA, "SubscribeFrames");
        g_autoptr(GVariant) r = vt_call(f->conn, "/org/vmsig", "org.vmsig.Manager", "DetachEndpoint",
                                        g_variant_new("(s)", "beta"));
        g_autofree char *name = call_error(f->conn, BETA, "GetFrame", NULL);
        g_assert_cmpstr(name, ==, "org.freedesktop.DBus.Error.UnknownObject");
        frame_clear(&fr);
        vt_bus_iterate(f->bus, 500);
        /* beta's RAM fd and event fd went with it; nothing of the frames stayed. */
        g_assert_cmpuint(vt_count_fds(vt_daemon_pid(f->daemon)), <, fds_before);
}

/* Leaving the bus ends the subscription, and with the last one, capturing. */
static void test_subscriber_leaves(Fixture *f, gconstpointer data) {
        GDBusConnection *c = vt_bus_connect(f->bus);
        Frame fr = call_frame(c, ALPHA, "SubscribeFrames");

        frame_clear(&fr);
        g_dbus_connection_close_sync(c, NULL, NULL);
        g_object_unref(c);
        vt_bus_iterate(f->bus, QUIET_MS);
        g_assert_cmpuint(wakeups_over(f, 1500), ==, 0);
}

/* Without the library, frames are not offered, and say why. */
static void test_without_vgpu(void) {
        VtBus *bus = vt_bus_start();
        VtDaemon *d;
        GDBusConnection *c;
        g_autofree char *message = NULL, *name = NULL;

        g_setenv("VMSIG_VGPU_LIBRARY", "/nonexistent/libvmsig-vgpu.so.0", TRUE);
        d = vt_daemon_start(bus, CONFIG);
        g_unsetenv("VMSIG_VGPU_LIBRARY");
        c = vt_bus_connect(bus);
        name = call_error(c, ALPHA, "SubscribeFrames", &message);
        g_assert_cmpstr(name, ==, "org.vmsig.Error.NotSupported");
        g_assert_cmpstr(message, ==,
                        "Frames are not available: vmsigd runs without the vgpu library, "
                        "or frames are off in its configuration.");
        g_object_unref(c);
        g_assert_cmpint(vt_daemon_stop(d), ==, 0);
        vt_bus_stop(bus);
}

/* <frames enabled="no"/>: the same, with the library there. */
static void test_frames_off(void) {
        VtBus *bus = vt_bus_start();
        VtDaemon *d = vt_daemon_start(bus, "<vmsigd><frames enabled=\"no\"/>"
                                           "<stub-vm name=\"alpha\" ram-size=\"1M\"/></vmsigd>");
        GDBusConnection *c = vt_bus_connect(bus);
        g_autofree char *name = call_error(c, ALPHA, "SubscribeFrames", NULL);

        g_assert_cmpstr(name, ==, "org.vmsig.Error.NotSupported");
        g_object_unref(c);
        g_assert_cmpint(vt_daemon_stop(d), ==, 0);
        vt_bus_stop(bus);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        VT_FIXTURE_TESTS("/bus/frames/", test_subscribe, test_pattern_follows_state, test_rate_limit,
                         test_late_subscriber, test_resubscribe_unchanged, test_no_wakeups_without_subscribers,
                         test_detach_ends_subscription, test_subscriber_leaves);
        g_test_add_func("/bus/frames/without-vgpu", test_without_vgpu);
        g_test_add_func("/bus/frames/frames-off", test_frames_off);
        return g_test_run();
}
