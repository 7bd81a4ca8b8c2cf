/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QEMU backend's display adapter against a real QEMU under TCG with a
 * standard VGA: SeaBIOS's text screen (720x400) comes back, as PPM with
 * pixels that are not all the same, and as PNG of that size; QEMU keeps
 * none of our descriptors; a QEMU without a display says so, in its
 * words. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "qemu-harness.h"
#include "qmp.h"
#include "vmsig-core.h"
#include "vmsig-endpoint.h"
/* Last: it brings GLib, whose MIN and MAX macro.h would redefine. */
#include "event-loop.h"
#include "vt-util.h"

#define NAME "screen"
#define TIMEOUT_USEC (20 * G_USEC_PER_SEC)
#define TEXT_WIDTH 720 /* VGA text mode: 80 columns of 9 pixels */
#define TEXT_HEIGHT 400 /* 25 rows of 16 */

typedef struct Fixture {
        VT_CORE_MEMBERS;
        QemuVm *vm; /* NULL: no QEMU, the test is skipped */
        vmsig_endpoint *ep;
        vmsig_qmp *qmp;
} Fixture;

typedef struct capture_ctx {
        unsigned calls;
        int error;
        char message[256];
        vmsig_image_encoding encoding;
        GByteArray *data;
} capture_ctx;

static void fixture_setup(Fixture *f, gconstpointer data) {
        vt_core_start(&f->event, &f->core);
        if (qemu_harness_available())
                f->vm = qemu_vm_new();
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        vt_core_stop(f->event, f->core);
        qemu_vm_free(f->vm);
}

#define RUN_UNTIL(f, expr) VT_EVENT_RUN_UNTIL((f)->event, expr, TIMEOUT_USEC)

static void run_for(Fixture *f, unsigned ms) {
        vt_event_run_for(f->event, (uint64_t) ms * 1000);
}

static void child_setup(gpointer data) {
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != (pid_t) GPOINTER_TO_INT(data))
                _exit(127);
}

/* The harness's QEMU has no display device: this one has the VGA asked
 * for, and no RAM file (the display needs none). qemu_vm_free() ends it. */
static void start_qemu(QemuVm *vm, const char *vga) {
        g_autoptr(GError) error = NULL;
        g_autofree char *qmp = g_strdup_printf("unix:%s,server=on,wait=off", vm->qmp_path);
        const char *qemu = g_getenv("VMSIG_QEMU");
        const char *argv[] = {
                qemu && *qemu ? qemu : "qemu-system-x86_64",
                "-machine", "q35,accel=tcg", "-m", "128M", "-qmp", qmp, "-display", "none", "-nodefaults",
                "-monitor", "none", "-serial", "none", "-vga", vga, NULL,
        };
        int64_t deadline = g_get_monotonic_time() + TIMEOUT_USEC;
        struct stat st;

        g_spawn_async(NULL, (char **) argv, NULL,
                      G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, child_setup,
                      GINT_TO_POINTER(getpid()), &vm->pid, &error);
        g_assert_no_error(error);
        while (stat(vm->qmp_path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                if (g_get_monotonic_time() > deadline)
                        g_error("QEMU did not create its QMP socket");
                g_usleep(5000);
        }
}

static void attach(Fixture *f, bool ppm) {
        vmsig_qmp_spec spec = { .name = NAME, .qmp_socket = f->vm->qmp_path, .display_ppm = ppm };
        vmsig_endpoint_spec es;

        g_assert_cmpint(vmsig_qmp_new(&spec, &es, &f->qmp), ==, 0);
        g_assert_cmpint(vmsig_core_attach_endpoint(f->core, &es, &f->ep), ==, 0);
        RUN_UNTIL(f, vmsig_qmp_is_connected(f->qmp));
}

static void detach(Fixture *f) {
        g_assert_cmpint(vmsig_core_detach_endpoint(f->core, f->ep), ==, 0);
        f->ep = NULL;
        f->qmp = NULL;
        run_for(f, 20); /* the reap */
}

static void on_image(const vmsig_result *r, const vmsig_display_image *image, void *userdata) {
        capture_ctx *x = userdata;

        x->calls++;
        x->error = r->error;
        g_strlcpy(x->message, r->message ? r->message : "", sizeof x->message);
        if (!image)
                return;
        x->encoding = image->encoding;
        x->data = g_byte_array_sized_new(image->size);
        g_byte_array_set_size(x->data, image->size);
        g_assert_cmpint(pread(image->fd, x->data->data, image->size, 0), ==, (ssize_t) image->size);
}

static void capture(Fixture *f, capture_ctx *x) {
        if (x->data)
                g_byte_array_unref(x->data);
        *x = (capture_ctx) {};
        g_assert_cmpint(vmsig_endpoint_capture_display(f->ep, on_image, x), ==, 0);
        RUN_UNTIL(f, x->calls > 0);
        g_assert_cmpuint(x->calls, ==, 1);
}

/* "P6\n720 400\n255\n" then the pixels; false if it is not that. */
static bool ppm_parse(const GByteArray *data, unsigned *width, unsigned *height, const uint8_t **pixels) {
        g_autofree char *head = g_strndup((const char *) data->data, MIN(data->len, 32));
        unsigned maxval;
        int end = 0;

        if (sscanf(head, "P6 %u %u %u%n", width, height, &maxval, &end) != 3 || maxval != 255)
                return false;
        end++; /* the one whitespace byte before the pixels */
        if ((size_t) end + (size_t) *width * *height * 3 != data->len)
                return false;
        *pixels = data->data + end;
        return true;
}

static bool all_equal(const uint8_t *pixels, size_t n) {
        for (size_t i = 1; i < n; i++)
                if (memcmp(pixels, pixels + i * 3, 3) != 0)
                        return false;
        return true;
}

/* The PNG signature, then IHDR, whose width and height come first. */
static void assert_png_size(const GByteArray *data, uint32_t width, uint32_t height) {
        const uint8_t *p = data->data;

        g_assert_cmpuint(data->len, >, 24);
        g_assert_cmpmem(p, 8, "\x89PNG\r\n\x1a\n", 8);
        g_assert_cmpmem(p + 12, 4, "IHDR", 4);
        g_assert_cmpuint((uint32_t) p[16] << 24 | p[17] << 16 | p[18] << 8 | p[19], ==, width);
        g_assert_cmpuint((uint32_t) p[20] << 24 | p[21] << 16 | p[22] << 8 | p[23], ==, height);
}

static size_t count_fds(pid_t pid) {
        return vt_open_fds(pid);
}

static void test_text_screen(Fixture *f, gconstpointer data) {
        capture_ctx x = {};
        unsigned width = 0, height = 0;
        const uint8_t *pixels = NULL;
        int64_t deadline;
        size_t ours, qemus;

        if (!f->vm)
                return;
        ours = count_fds(getpid());
        start_qemu(f->vm, "std");
        attach(f, true);

        /* Until SeaBIOS has set the text mode and written to it; before
         * that QEMU shows a screen of its own. */
        deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        for (;;) {
                capture(f, &x);
                g_assert_cmpint(x.error, ==, 0);
                g_assert_cmpint(x.encoding, ==, VMSIG_IMAGE_PPM);
                g_assert_true(ppm_parse(x.data, &width, &height, &pixels));
                if (width == TEXT_WIDTH && height == TEXT_HEIGHT && !all_equal(pixels, (size_t) width * height))
                        break;
                if (g_get_monotonic_time() > deadline)
                        g_error("No SeaBIOS text screen in 10 s: last %ux%u", width, height);
                run_for(f, 100);
        }

        /* Again and again: QEMU keeps none of the memfds. */
        run_for(f, 50); /* the last remove-fd */
        qemus = count_fds(f->vm->pid);
        for (int i = 0; i < 5; i++) {
                capture(f, &x);
                g_assert_cmpint(x.error, ==, 0);
        }
        run_for(f, 50); /* the last remove-fd */
        g_assert_cmpuint(count_fds(f->vm->pid), ==, qemus);
        detach(f);

        /* PNG, which QEMU 7.1 and later write, of the same screen. */
        attach(f, false);
        capture(f, &x);
        g_assert_cmpint(x.error, ==, 0);
        g_assert_cmpint(x.encoding, ==, VMSIG_IMAGE_PNG);
        assert_png_size(x.data, TEXT_WIDTH, TEXT_HEIGHT);
        g_byte_array_unref(x.data);
        detach(f);
        g_assert_cmpuint(count_fds(getpid()), ==, ours);
}

static void test_no_display(Fixture *f, gconstpointer data) {
        capture_ctx x = {};
        size_t ours;

        if (!f->vm)
                return;
        ours = count_fds(getpid());
        start_qemu(f->vm, "none");
        attach(f, false);
        capture(f, &x);
        g_assert_cmpint(x.error, ==, -EIO);
        g_assert_cmpstr(x.message, ==, "QEMU: GenericError: There is no console to take a screendump from");
        g_assert_null(x.data);
        detach(f);
        g_assert_cmpuint(count_fds(getpid()), ==, ours);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);

        VT_FIXTURE_TESTS("/qmp-display/", test_text_screen, test_no_display);
        return g_test_run();
}
