/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-frames --case qemu: a real QEMU (TCG, q35, -vga std, no boot
 * device: SeaBIOS's 720x400 text screen) with two QMP sockets, one for the
 * QEMU backend in this process and one for a direct client.
 *
 *   direct   a blocking QMP client: screendump (PNG) to a file, read the
 *            file, decode it with libpng to 32-bit pixels; back to back.
 *   library  the QEMU endpoint attached in process (the QMP backend: add-fd
 *            of a memfd, screendump into it), each image through
 *            vmsig_vgpu_frame_from_image() (decode, hash, sealed memfd);
 *            back to back, no rate limit: the library's cost per frame.
 *   vgpu     the same endpoint, libvmsig-vgpu at its highest rate (60) and
 *            one core subscriber: completed captures per second (an
 *            unchanged screen is captured but not republished, so captures
 *            are counted, not frames), and capture-to-delivery latency.
 *
 * direct and library alternate RUNS times (medians reported); each side
 * times FRAMES frames. CPU per frame: this process (CLOCK_PROCESS_CPUTIME_ID)
 * and QEMU (/proc/PID/stat, clock ticks).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <png.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-util.h"
#include "frames.h"
#include "qmp.h"

/* --- a bare, blocking QMP client ------------------------------------------ */

typedef struct qmp_client {
        int fd;
        char buf[65536];
        size_t len;
        uint64_t next_id;
} qmp_client;

/* The next line QEMU sent, NUL-terminated in line (at most size bytes). */
static int qmp_read_line(qmp_client *c, char *line, size_t size) {
        for (;;) {
                char *nl = memchr(c->buf, '\n', c->len);
                if (nl) {
                        size_t n = (size_t) (nl - c->buf) + 1;
                        snprintf(line, size, "%.*s", (int) (n - 1), c->buf);
                        memmove(c->buf, c->buf + n, c->len - n);
                        c->len -= n;
                        return 0;
                }
                if (c->len >= sizeof c->buf)
                        return -E2BIG;
                struct pollfd p = { .fd = c->fd, .events = POLLIN };
                int r = poll(&p, 1, (int) (FRAMES_TIMEOUT_USEC / 1000));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return r < 0 ? -errno : -ETIMEDOUT;
                ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -ECONNRESET;
                c->len += (size_t) n;
        }
}

/* Runs a command and waits for its reply, dropping events on the way. */
static int qmp_execute(qmp_client *c, const char *command, const char *arguments) {
        char text[4096], line[4096];
        int n = snprintf(text, sizeof text, "{\"execute\":\"%s\",\"id\":%" PRIu64 "%s%s}\n", command, c->next_id++,
                         arguments ? ",\"arguments\":" : "", arguments ? arguments : "");
        int r;

        if (n < 0 || (size_t) n >= sizeof text)
                return -E2BIG;
        if (send(c->fd, text, (size_t) n, MSG_NOSIGNAL) != n)
                return -EIO;
        for (;;) {
                r = qmp_read_line(c, line, sizeof line);
                if (r < 0)
                        return r;
                if (strstr(line, "\"event\":"))
                        continue;
                if (!strstr(line, "\"return\":")) {
                        fprintf(stderr, "bench-frames: QEMU refused %s: %s\n", command, line);
                        return -EIO;
                }
                return 0;
        }
}

static int qmp_open(const char *path, qmp_client *c) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char line[4096];
        int r;

        *c = (qmp_client) { .fd = -1, .next_id = 1 };
        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
                return -errno;
        if (connect(c->fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        r = qmp_read_line(c, line, sizeof line);
        if (r >= 0 && !strstr(line, "\"QMP\":"))
                r = -EPROTO;
        return r < 0 ? r : qmp_execute(c, "qmp_capabilities", NULL);
}

/* --- QEMU ---------------------------------------------------------------------- */

typedef struct qemu {
        pid_t pid;
        char dir[256], lib_sock[300], direct_sock[300], dump[300];
} qemu;

static bool is_socket(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int qemu_start(qemu *q, const char *binary) {
        const char *tmp = getenv("TMPDIR");
        char lib_arg[340], direct_arg[340];
        pid_t parent = getpid();
        uint64_t deadline;
        int status;

        snprintf(q->dir, sizeof q->dir, "%s/vmsig-bench-frames.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(q->dir))
                return -errno;
        snprintf(q->lib_sock, sizeof q->lib_sock, "%s/lib.sock", q->dir);
        snprintf(q->direct_sock, sizeof q->direct_sock, "%s/direct.sock", q->dir);
        snprintf(q->dump, sizeof q->dump, "%s/screen.png", q->dir);
        snprintf(lib_arg, sizeof lib_arg, "unix:%s,server=on,wait=off", q->lib_sock);
        snprintf(direct_arg, sizeof direct_arg, "unix:%s,server=on,wait=off", q->direct_sock);
        char *const argv[] = {
                (char *) binary, "-machine", "q35,accel=tcg", "-m", "128M", "-qmp", lib_arg, "-qmp", direct_arg,
                "-display", "none", "-nodefaults", "-monitor", "none", "-serial", "none", "-vga", "std", NULL,
        };
        q->pid = fork();
        if (q->pid < 0)
                return -errno;
        if (q->pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null >= 0)
                        (void) dup2(null, STDOUT_FILENO);
                execvp(binary, argv);
                fprintf(stderr, "bench-frames: cannot run %s: %s\n", binary, strerror(errno));
                _exit(127);
        }
        deadline = frames_now_usec() + FRAMES_TIMEOUT_USEC;
        while (!is_socket(q->lib_sock) || !is_socket(q->direct_sock)) {
                if (waitpid(q->pid, &status, WNOHANG) == q->pid) {
                        q->pid = 0;
                        return -ECHILD;
                }
                if (frames_now_usec() > deadline)
                        return -ETIMEDOUT;
                usleep(5000);
        }
        return 0;
}

static void qemu_stop(qemu *q) {
        if (q->pid > 0) {
                (void) kill(q->pid, SIGTERM);
                while (waitpid(q->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        (void) unlink(q->lib_sock);
        (void) unlink(q->direct_sock);
        (void) unlink(q->dump);
        if (q->dir[0])
                (void) rmdir(q->dir);
}

/* --- the two sides ------------------------------------------------------------- */

typedef struct side_cost {
        uint64_t wall, self_cpu, qemu_cpu; /* usec for all frames of a run */
} side_cost;

typedef struct ctx {
        qemu q;
        qmp_client direct;
        sd_event *event;
        vmsig_core *core;
        vmsig_vgpu *vgpu;
        vmsig_endpoint *ep;
        vmsig_qmp *qmp;
        frames_clock clock;
        unsigned char *file, *pixels;
        size_t file_size;
        bool done;
        int error;
        uint32_t width, height;
} ctx;

/* One screendump read back and decoded, as a direct client does it. */
static int direct_frame(ctx *c) {
        char args[400];
        png_image png = { .version = PNG_IMAGE_VERSION };
        struct stat st;
        int fd, r;

        snprintf(args, sizeof args, "{\"filename\":\"%s\",\"format\":\"png\"}", c->q.dump);
        r = qmp_execute(&c->direct, "screendump", args);
        if (r < 0)
                return r;
        fd = open(c->q.dump, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || st.st_size <= 0) {
                close(fd);
                return -EIO;
        }
        if ((size_t) st.st_size > c->file_size) {
                free(c->file);
                c->file = malloc((size_t) st.st_size);
                if (!c->file) {
                        close(fd);
                        return -ENOMEM;
                }
                c->file_size = (size_t) st.st_size;
        }
        r = pread(fd, c->file, (size_t) st.st_size, 0) == st.st_size ? 0 : -EIO;
        close(fd);
        if (r < 0)
                return r;
        if (!png_image_begin_read_from_memory(&png, c->file, (size_t) st.st_size))
                return -EBADMSG;
        png.format = PNG_FORMAT_BGRA;
        if (!c->pixels) {
                c->pixels = malloc(PNG_IMAGE_SIZE(png));
                c->width = png.width, c->height = png.height;
        }
        if (!c->pixels || png.width != c->width || png.height != c->height) {
                png_image_free(&png);
                return -EBADMSG;
        }
        if (!png_image_finish_read(&png, NULL, c->pixels, 0, NULL))
                return -EBADMSG;
        return 0;
}

static void on_image(const vmsig_result *result, const vmsig_display_image *image, void *userdata) {
        ctx *c = userdata;
        vmsig_frame fr;

        c->done = true;
        c->error = result->error;
        if (c->error < 0 || !image)
                return;
        c->error = vmsig_vgpu_frame_from_image(image, &fr);
        if (c->error < 0)
                return;
        if (fr.width != c->width || fr.height != c->height)
                c->error = -EBADMSG;
        close(fr.fd);
}

/* One capture through the QEMU backend and the library's decoder. */
static int library_frame(ctx *c) {
        int r;

        c->done = false;
        r = vmsig_endpoint_capture_display(c->ep, on_image, c);
        if (r >= 0)
                r = frames_run_until(c->event, &c->done, FRAMES_TIMEOUT_USEC);
        return r < 0 ? r : c->error;
}

static int run_side(ctx *c, int (*frame)(ctx *c), unsigned frames, side_cost *ret) {
        uint64_t t0 = frames_now_usec(), s0 = frames_self_cpu_usec(), q0 = frames_pid_cpu_usec(c->q.pid);
        int r;

        for (unsigned i = 0; i < frames; i++) {
                r = frame(c);
                if (r < 0)
                        return r;
        }
        ret->wall = frames_now_usec() - t0;
        ret->self_cpu = frames_self_cpu_usec() - s0;
        ret->qemu_cpu = frames_pid_cpu_usec(c->q.pid) - q0;
        return 0;
}

static int setup(ctx *c, const char *binary) {
        vmsig_qmp_spec spec = { .name = "screen" };
        vmsig_vgpu_config config = { .rate = VMSIG_VGPU_RATE_MAX };
        vmsig_endpoint_spec es;
        int r;

        r = qemu_start(&c->q, binary);
        if (r < 0) {
                fprintf(stderr, "bench-frames: cannot start %s: %s\n", binary, strerror(-r));
                return r;
        }
        r = qmp_open(c->q.direct_sock, &c->direct);
        if (r >= 0)
                r = sd_event_new(&c->event);
        if (r >= 0)
                r = vmsig_core_new(c->event, &c->core);
        if (r >= 0)
                r = vmsig_vgpu_new(c->core, &config, &c->vgpu);
        spec.qmp_socket = c->q.lib_sock;
        if (r >= 0)
                r = vmsig_qmp_new(&spec, &es, &c->qmp);
        if (r >= 0)
                r = frames_probe_wrap(&es, &c->clock);
        if (r >= 0)
                r = vmsig_core_attach_endpoint(c->core, &es, &c->ep);
        for (uint64_t end = frames_now_usec() + FRAMES_TIMEOUT_USEC; r >= 0 && !vmsig_qmp_is_connected(c->qmp);)
                r = frames_now_usec() > end ? -ETIMEDOUT : sd_event_run(c->event, 10000);
        /* SeaBIOS finds no boot device and its text screen stands still. */
        if (r >= 0)
                r = frames_run_for(c->event, 3000000);
        if (r < 0)
                fprintf(stderr, "bench-frames: cannot set up the QEMU endpoint: %s\n", strerror(-r));
        return r;
}

static void teardown(ctx *c) {
        if (c->ep)
                (void) vmsig_core_detach_endpoint(c->core, c->ep);
        if (c->event)
                (void) frames_run_for(c->event, 20000);
        vmsig_vgpu_free(c->vgpu);
        vmsig_core_free(c->core);
        sd_event_unref(c->event);
        if (c->direct.fd >= 0)
                close(c->direct.fd);
        qemu_stop(&c->q);
        free(c->file);
        free(c->pixels);
}

static uint64_t median_of(const side_cost *v, unsigned runs, size_t field) {
        uint64_t x[BENCH_RUNS_MAX];

        for (unsigned i = 0; i < runs; i++)
                x[i] = *(const uint64_t *) ((const char *) &v[i] + field);
        return bench_median(x, runs);
}

static frames_latency vgpu_latency;

/* libvmsig-vgpu at 60/s for seconds: completed captures and latency. */
static int run_vgpu(ctx *c, unsigned seconds) {
        frames_watch w = { .vgpu = c->vgpu, .clock = &c->clock, .lat = &vgpu_latency };
        vmsig_vgpu_stats s0, s1;
        uint64_t t0, t1, cpu0, cpu1, q0, q1, busy0, busy1;
        int r;

        r = frames_watch_start(&w, c->core, vmsig_endpoint_get_id(c->ep));
        if (r < 0)
                return r;
        r = frames_run_for(c->event, 500000);
        vmsig_vgpu_get_stats(c->vgpu, &s0);
        busy0 = c->clock.completions;
        t0 = frames_now_usec(), cpu0 = frames_self_cpu_usec(), q0 = frames_pid_cpu_usec(c->q.pid);
        /* The probe's stage times of every capture, unchanged ones too. */
        uint64_t capture_sum = 0, decode_sum = 0, seen = c->clock.completions;
        for (uint64_t end = t0 + seconds * UINT64_C(1000000), now; r >= 0 && (now = frames_now_usec()) < end;) {
                r = sd_event_run(c->event, end - now);
                if (c->clock.completions != seen) {
                        seen = c->clock.completions;
                        capture_sum += c->clock.captured - c->clock.started;
                        decode_sum += c->clock.decoded - c->clock.captured;
                }
        }
        t1 = frames_now_usec(), cpu1 = frames_self_cpu_usec(), q1 = frames_pid_cpu_usec(c->q.pid);
        vmsig_vgpu_get_stats(c->vgpu, &s1);
        busy1 = c->clock.completions;
        frames_watch_stop(&w);
        if (r < 0)
                return r;

        uint64_t captures = s1.captures - s0.captures, n = busy1 - busy0;
        double cps = captures / ((t1 - t0) / 1e6);
        double per_capture_ms = n ? (capture_sum + decode_sum) / 1e3 / n : 0;
        printf("  vgpu     rate %.0f: %" PRIu64 " captures in %.2f s = %.1f captures/s (%" PRIu64 " published, %" PRIu64
               " unchanged, %" PRIu64 " errors)\n",
               VMSIG_VGPU_RATE_MAX, captures, (t1 - t0) / 1e6, cps, s1.published - s0.published,
               s1.unchanged - s0.unchanged, s1.errors - s0.errors);
        printf("  vgpu     per capture: screendump %.2f ms + decode/hash/seal %.2f ms = %.2f ms; the %.0f/s cap %s\n",
               n ? capture_sum / 1e3 / n : 0, n ? decode_sum / 1e3 / n : 0, per_capture_ms, VMSIG_VGPU_RATE_MAX,
               per_capture_ms < 1000 / VMSIG_VGPU_RATE_MAX ? "binds (a capture takes less than an interval)"
                                                           : "does not bind (captures are slower than 60/s)");
        printf("  vgpu     CPU per capture: this process %.0f us, QEMU %.0f us\n",
               captures ? (double) (cpu1 - cpu0) / captures : 0, captures ? (double) (q1 - q0) / captures : 0);
        if (vgpu_latency.n > 0)
                frames_print_latency("vgpu", &vgpu_latency);
        printf("@ frames-qemu-vgpu captures_per_s=%.1f capture_ms=%.2f decode_ms=%.2f self_cpu_us=%.0f qemu_cpu_us=%.0f"
               " errors=%" PRIu64,
               cps, n ? capture_sum / 1e3 / n : 0, n ? decode_sum / 1e3 / n : 0,
               captures ? (double) (cpu1 - cpu0) / captures : 0, captures ? (double) (q1 - q0) / captures : 0,
               s1.errors - s0.errors);
        if (vgpu_latency.n > 0)
                frames_at_latency(&vgpu_latency);
        printf("\n");
        return s1.errors != s0.errors || captures == 0 ? -EIO : 0;
}

int frames_qemu_main(const char *binary, unsigned frames, unsigned runs, unsigned seconds) {
        ctx c = { .direct.fd = -1 };
        side_cost direct[BENCH_RUNS_MAX], library[BENCH_RUNS_MAX];
        int r;

        r = setup(&c, binary);
        /* One of each first: the warm-up, and the screen's size. */
        if (r >= 0)
                r = direct_frame(&c);
        if (r >= 0)
                r = library_frame(&c);
        for (unsigned i = 0; r >= 0 && i < runs; i++) {
                /* Alternating which goes first (ABBA). */
                if (i % 2 == 0) {
                        r = run_side(&c, direct_frame, frames, &direct[i]);
                        if (r >= 0)
                                r = run_side(&c, library_frame, frames, &library[i]);
                } else {
                        r = run_side(&c, library_frame, frames, &library[i]);
                        if (r >= 0)
                                r = run_side(&c, direct_frame, frames, &direct[i]);
                }
        }
        if (r < 0) {
                fprintf(stderr, "bench-frames: %s\n", strerror(-r));
                teardown(&c);
                return r;
        }

        uint64_t dw = median_of(direct, runs, offsetof(side_cost, wall)),
                 lw = median_of(library, runs, offsetof(side_cost, wall));
        double dfps = frames / (dw / 1e6), lfps = frames / (lw / 1e6);
        double ds = (double) median_of(direct, runs, offsetof(side_cost, self_cpu)) / frames,
               ls = (double) median_of(library, runs, offsetof(side_cost, self_cpu)) / frames,
               dq = (double) median_of(direct, runs, offsetof(side_cost, qemu_cpu)) / frames,
               lq = (double) median_of(library, runs, offsetof(side_cost, qemu_cpu)) / frames;
        printf("  qemu     %ux%u screen, %u frames a side, median of %u runs (ABBA)\n", c.width, c.height, frames, runs);
        printf("  qemu     direct  screendump+read+libpng  %6.1f frames/s  (%.2f ms)  CPU/frame: bench %.0f us, QEMU %.0f us\n",
               dfps, 1e3 / dfps, ds, dq);
        printf("  qemu     library QMP backend+vgpu decode %6.1f frames/s  (%.2f ms)  CPU/frame: bench %.0f us, QEMU %.0f us\n",
               lfps, 1e3 / lfps, ls, lq);
        printf("  qemu     ratio library/direct frames/s %.3f\n", lfps / dfps);
        printf("@ frames-qemu direct_fps=%.1f library_fps=%.1f ratio=%.3f direct_self_cpu_us=%.0f library_self_cpu_us=%.0f"
               " direct_qemu_cpu_us=%.0f library_qemu_cpu_us=%.0f width=%u height=%u\n",
               dfps, lfps, lfps / dfps, ds, ls, dq, lq, c.width, c.height);
        r = run_vgpu(&c, seconds);
        teardown(&c);
        return r;
}
