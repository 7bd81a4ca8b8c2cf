/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bootstrap.h"
#include "fd-util.h"
#include "host-common.h"
#include "log.h"
#include "macro.h"
#include "memctx.h"
#include "memwrite.h"
#include "stub.h"
#include "time-util.h"

#define INPUT_LOG_MAX 4096
#define DISPLAY_WIDTH_DEFAULT 640
#define DISPLAY_HEIGHT_DEFAULT 480

typedef enum request_type { REQUEST_LIFECYCLE, REQUEST_INPUT, REQUEST_CAPTURE, REQUEST_VCPU } request_type;

/* A request: done for lifecycle and input, display_done for a capture,
 * vcpu_done for a vCPU read. Dropped input keeps why in base.message. */
typedef struct request {
        host_request base; /* first: the queues hold it */
        request_type type;
        vmsig_lifecycle_op op;
        size_t n_events;
        vmsig_input_event *events;
        uint64_t due; /* CLOCK_MONOTONIC usec, with a latency */
} request;

struct vmsig_stub {
        unsigned n_ref; /* one per adapter role */
        vmsig_endpoint *endpoint; /* while attached; not a reference */
        vmsig_stub_spec spec;
        char *name;

        int ram_fd; /* private; sealed against writes, see create_ram() */
        void *ram;  /* private shared writable mapping: the only way in */
        vmsig_memctx_source memctx;
        vmsig_bootstrap *bootstrap;
        vmsig_subscriber *lifecycle_sub;

        int event_fd; /* an eventfd, or a timerfd when requests take time */
        vmsig_cookie cookie;
        host_queue queue;
        host_queue cancelled; /* dropped input, completed on the next iteration */

        vmsig_input_event *input_log;
        size_t input_head, n_input;

        uint64_t booted_usec; /* when the vCPU last left reset (CLOCK_MONOTONIC) */
        uint64_t long_mode_cr3; /* the program's CR3 once it entered long mode; 0 before */
        uint64_t resets; /* completed resets: the band of the test pattern */
        uint64_t ticks;  /* captures while running: the clock of the test pattern */
        int display_fd;  /* the last capture; made on the first */
        uint32_t *display;
        size_t display_size;
};

static void stub_free(vmsig_stub *s) {
        free(s->input_log);
        free(s->name);
        free(s);
}

DEFINE_PRIVATE_TRIVIAL_REF_UNREF_FUNC(vmsig_stub, stub, stub_free);

static void complete(request *q, int error, const char *message) {
        host_request_answer(&q->base, error, message);
        free(q->events);
        free(q);
}

static request *queue_head(vmsig_stub *s) {
        return (request *) s->queue.head;
}

static request *queue_pop(vmsig_stub *s) {
        return (request *) host_queue_pop(&s->queue);
}

/* Wakes the loop when the oldest request is due: at once through the
 * eventfd, or through the timerfd when requests take time. */
static int kick(vmsig_stub *s) {
        uint64_t due;

        if (s->spec.latency_usec == 0)
                return eventfd_write(s->event_fd, 1) < 0 ? -errno : 0;
        due = queue_head(s) ? queue_head(s)->due : 0;
        if (due == 0)
                return 0;
        return timerfd_arm_usec(s->event_fd, due, TFD_TIMER_ABSTIME);
}

/* Wakes the loop on its next iteration, whatever is due. */
static void wake_now(vmsig_stub *s) {
        if (s->spec.latency_usec == 0)
                (void) eventfd_write(s->event_fd, 1);
        else
                (void) timerfd_arm_usec(s->event_fd, 0, 0);
}

static int queue_push(vmsig_stub *s, request *q) {
        if (s->event_fd < 0) {
                free(q->events);
                free(q);
                return -ENODEV;
        }
        q->due = s->spec.latency_usec > 0 ? now_usec() + s->spec.latency_usec : 0;
        host_queue_push(&s->queue, &q->base);
        /* Completion happens on a later loop iteration, as with a real
         * hypervisor round trip. */
        return q == queue_head(s) || s->spec.latency_usec == 0 ? kick(s) : 0;
}

/* The vCPU: see stub.h. */

static void vcpu_reset(vmsig_stub *s) {
        s->booted_usec = now_usec();
        s->long_mode_cr3 = 0;
}

static uint64_t ram_qword(vmsig_stub *s, uint64_t gpa) {
        uint64_t v;

        if (!s->ram || gpa + sizeof v > s->spec.ram_size)
                return 0;
        memcpy(&v, (const uint8_t *) s->ram + gpa, sizeof v);
        return le64toh(v);
}

static void vcpu_now(vmsig_stub *s, vmsig_vcpu_state *ret) {
        /* Paging off, protection on: where QEMU's firmware and the waiting
         * program are. */
        *ret = (vmsig_vcpu_state) { .cr0 = 0x11 };
        if (s->spec.dtb && !s->spec.bootstrap) {
                s->long_mode_cr3 = s->spec.dtb;
        } else if (!s->long_mode_cr3 && now_usec() - s->booted_usec >= VMSIG_STUB_FIRMWARE_USEC &&
                   ram_qword(s, VMSIG_STUB_MAILBOX_MAGIC_GPA) == VMSIG_STUB_MAILBOX_MAGIC)
                s->long_mode_cr3 = ram_qword(s, VMSIG_STUB_MAILBOX_CR3_GPA);
        if (!s->long_mode_cr3)
                return;
        *ret = (vmsig_vcpu_state) {
                .cr0 = 0x80000011, /* PG, ET, PE */
                .cr3 = s->long_mode_cr3,
                .cr4 = 0x20,   /* PAE */
                .efer = 0x500, /* LMA, LME */
        };
}

static void run_vcpu(vmsig_stub *s, request *q) {
        vmsig_state state = vmsig_endpoint_get_state(s->endpoint);
        vmsig_result res = {};
        vmsig_vcpu_state vcpu;
        char msg[128];

        if (state == VMSIG_STATE_SHUT_OFF) {
                snprintf(msg, sizeof msg, "Endpoint '%s' is shut off: it has no vCPU to read.", s->name);
                complete(q, -EBADFD, msg);
                return;
        }
        vcpu_now(s, &vcpu);
        q->base.vcpu_done(&res, &vcpu, q->base.userdata);
        free(q);
}

/* The guest's state machine. */
static int transition(vmsig_state from, vmsig_lifecycle_op op, vmsig_state *to) {
        switch (op) {
        case VMSIG_OP_PAUSE:
                *to = VMSIG_STATE_PAUSED;
                return from == VMSIG_STATE_RUNNING ? 0 : -EBADFD;
        case VMSIG_OP_RESUME:
                *to = VMSIG_STATE_RUNNING;
                return from == VMSIG_STATE_PAUSED ? 0 : -EBADFD;
        case VMSIG_OP_RESET:
                /* A reset keeps a paused guest paused, as QEMU does. */
                *to = from;
                return from == VMSIG_STATE_RUNNING || from == VMSIG_STATE_PAUSED ? 0 : -EBADFD;
        case VMSIG_OP_POWER_OFF:
        case VMSIG_OP_KILL:
                *to = VMSIG_STATE_SHUT_OFF;
                return from == VMSIG_STATE_RUNNING || from == VMSIG_STATE_PAUSED ? 0 : -EBADFD;
        default:
                return -EINVAL;
        }
}

static void run_lifecycle(vmsig_stub *s, request *q) {
        vmsig_state from = vmsig_endpoint_get_state(s->endpoint), to;
        char msg[128];

        if (transition(from, q->op, &to) < 0) {
                snprintf(msg, sizeof msg, "Cannot %s endpoint '%s': it is %s.", vmsig_lifecycle_op_to_string(q->op),
                         s->name, vmsig_state_to_string(from));
                complete(q, -EBADFD, msg);
                return;
        }
        if (q->op == VMSIG_OP_RESET) {
                s->resets++;
                vcpu_reset(s);
        }
        vmsig_endpoint_report_lifecycle(s->endpoint, q->op, to);
        complete(q, 0, NULL);
}

static void record_input(vmsig_stub *s, const vmsig_input_event *ev) {
        size_t i = (s->input_head + s->n_input) % INPUT_LOG_MAX;
        s->input_log[i] = *ev;
        if (s->n_input < INPUT_LOG_MAX)
                s->n_input++;
        else
                s->input_head = (s->input_head + 1) % INPUT_LOG_MAX;
}

static void run_input(vmsig_stub *s, request *q) {
        char msg[128];

        if (vmsig_endpoint_get_state(s->endpoint) == VMSIG_STATE_SHUT_OFF) {
                snprintf(msg, sizeof msg, "Endpoint '%s' is shut off and takes no input.", s->name);
                complete(q, -EBADFD, msg);
                return;
        }
        /* Most VMs never get input: the log is allocated on first use. */
        if (!s->input_log)
                s->input_log = calloc(INPUT_LOG_MAX, sizeof(vmsig_input_event));
        if (!s->input_log) {
                complete(q, -ENOMEM, "Out of memory for the input log.");
                return;
        }
        for (size_t i = 0; i < q->n_events; i++)
                record_input(s, &q->events[i]);
        complete(q, 0, NULL);
}

/* Display: a test pattern drawn into a memfd on each capture. */

/* 75% colour bars: every channel is 0x00 or 0xc0, so neither the band
 * (0x80) nor the clock (0x40..0x7f) can look like a bar. */
static const uint32_t bar_colours[8] = {
        0xc0c0c0, 0xc0c000, 0x00c0c0, 0x00c000, 0xc000c0, 0xc00000, 0x0000c0, 0x000000,
};

/* Every state has a palette of its own. */
static uint32_t tint(uint32_t rgb, vmsig_state state) {
        switch (state) {
        case VMSIG_STATE_RUNNING:
                return rgb;
        case VMSIG_STATE_PAUSED: /* dimmed, bluish */
                return ((rgb >> 1) & 0x7f7f7f) | 0x000080;
        case VMSIG_STATE_SHUT_OFF: /* all but black */
                return (rgb >> 3) & 0x1f1f1f;
        default:
                return rgb ^ 0xffffff;
        }
}

static void fill(uint32_t *row, uint32_t n, uint32_t rgb) {
        uint32_t px = htole32(rgb);
        for (uint32_t i = 0; i < n; i++)
                row[i] = px;
}

/* Bars across, a band whose row depends on the resets, and a block along
 * the bottom that moves one step and changes colour with every tick. */
static void render(uint32_t *px, uint32_t w, uint32_t h, vmsig_state state, uint64_t resets, uint64_t tick) {
        uint32_t band_h = h / 16, band_y = (uint32_t) (resets % (h / band_h)) * band_h;
        uint32_t block = MIN(w, h) / 16, block_x = (uint32_t) (tick % (w / block)) * block;
        uint32_t clock = 0x404040 | ((uint32_t) tick * UINT32_C(0x9e3779b1) & 0x3f3f3f);

        for (uint32_t x = 0; x < w; x++)
                px[x] = htole32(tint(bar_colours[(uint64_t) x * 8 / w], state));
        for (uint32_t y = 1; y < h; y++)
                memcpy(px + (size_t) y * w, px, (size_t) w * 4);
        for (uint32_t y = band_y; y < band_y + band_h; y++)
                fill(px + (size_t) y * w, w, tint(0x808080, state));
        for (uint32_t y = h - block; y < h; y++)
                fill(px + (size_t) y * w + block_x, block, tint(clock, state));
}

static int display_create(vmsig_stub *s) {
        _cleanup_close_ int fd = -1;
        size_t size = (size_t) s->spec.display_width * s->spec.display_height * 4;
        void *p;

        fd = memfd_create(s->name, MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fchmod(fd, 0600) < 0) /* as the RAM: not for other users */
                return -errno;
        if (ftruncate(fd, (off_t) size) < 0)
                return -errno;
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        s->display = p;
        s->display_size = size;
        s->display_fd = TAKE_FD(fd);
        return 0;
}

static void display_release(vmsig_stub *s) {
        if (s->display)
                (void) munmap(s->display, s->display_size);
        s->display = NULL;
        s->display_size = 0;
        s->display_fd = safe_close(s->display_fd);
}

static void run_capture(vmsig_stub *s, request *q) {
        vmsig_state state = vmsig_endpoint_get_state(s->endpoint);
        vmsig_result res = {};
        char msg[128];
        int r;

        /* Most VMs are never looked at: the display is made on first use. */
        if (s->display_fd < 0) {
                r = display_create(s);
                if (r < 0) {
                        snprintf(msg, sizeof msg, "Cannot create the display of endpoint '%s': %s", s->name,
                                 strerror(-r));
                        complete(q, r, msg);
                        return;
                }
        }
        if (state == VMSIG_STATE_RUNNING)
                s->ticks++;
        render(s->display, s->spec.display_width, s->spec.display_height, state, s->resets, s->ticks);
        /* The receiver may read(2) it: the image starts at offset 0. */
        (void) lseek(s->display_fd, 0, SEEK_SET);

        vmsig_display_image image = {
                .fd = s->display_fd,
                .size = s->display_size,
                .encoding = VMSIG_IMAGE_RAW,
                .width = s->spec.display_width,
                .height = s->spec.display_height,
                .stride = s->spec.display_width * 4,
        };
        q->base.display_done(&res, &image, q->base.userdata);
        free(q);
}

static void complete_cancelled(vmsig_stub *s) {
        for (request *q; (q = (request *) host_queue_pop(&s->cancelled));)
                complete(q, q->base.error, q->base.message);
}

static void on_event_fd(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        vmsig_stub *s = userdata;
        uint64_t v, now = now_usec();

        (void) !read(fd, &v, sizeof v); /* eventfd counter or timer expirations */
        complete_cancelled(s);
        /* Only what was queued before now and is due; requests queued by a
         * completion callback run on a later iteration, keeping the loop
         * fair. */
        request *tail = (request *) s->queue.tail;
        for (request *q; s->endpoint && queue_head(s) && queue_head(s)->due <= now && (q = queue_pop(s));) {
                bool last = q == tail;
                if (q->type == REQUEST_LIFECYCLE)
                        run_lifecycle(s, q);
                else if (q->type == REQUEST_CAPTURE)
                        run_capture(s, q);
                else if (q->type == REQUEST_VCPU)
                        run_vcpu(s, q);
                else
                        run_input(s, q);
                if (last)
                        break;
        }
        if (queue_head(s) && s->event_fd >= 0)
                (void) kick(s);
}

/* Host-management seam. */

static int host_attach(void *data, vmsig_endpoint *ep) {
        vmsig_stub *s = data;
        int r;

        s->endpoint = ep;
        vcpu_reset(s);
        s->event_fd = s->spec.latency_usec > 0 ? timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)
                                                : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->event_fd < 0)
                return -errno;
        r = vmsig_endpoint_add_fd(ep, s->event_fd, EPOLLIN, on_event_fd, s, &s->cookie);
        if (r < 0)
                s->event_fd = safe_close(s->event_fd);
        return r;
}

static void host_detach(void *data, vmsig_endpoint *ep) {
        vmsig_stub *s = data;
        char msg[128];

        if (s->event_fd >= 0) {
                (void) vmsig_endpoint_remove_fd(ep, s->cookie);
                s->event_fd = safe_close(s->event_fd);
        }
        host_detached_message(msg, sizeof msg, s->name);
        complete_cancelled(s);
        for (request *q; (q = queue_pop(s));)
                complete(q, -ENODEV, msg);
        s->endpoint = NULL;
}

static int host_lifecycle(void *data, vmsig_lifecycle_op op, vmsig_done_fn done, void *userdata) {
        vmsig_stub *s = data;
        request *q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        *q = (request) { .base = { .done = done, .userdata = userdata }, .type = REQUEST_LIFECYCLE, .op = op };
        return queue_push(s, q);
}

static int host_read_vcpu(void *data, vmsig_vcpu_done_fn done, void *userdata) {
        vmsig_stub *s = data;
        request *q;

        if (!done)
                return -EINVAL;
        if (s->spec.no_vcpu_registers)
                return -EOPNOTSUPP;
        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        *q = (request) { .base = { .vcpu_done = done, .userdata = userdata }, .type = REQUEST_VCPU };
        return queue_push(s, q);
}

static const vmsig_host_ops stub_host_ops = {
        .base = { .attach = host_attach, .detach = host_detach, .free = stub_unref_data },
        .backend = "stub",
        .lifecycle = host_lifecycle,
        .read_vcpu = host_read_vcpu,
};

/* Input actuator. */

static int input_inject(void *data, const vmsig_input_event *events, size_t n, vmsig_done_fn done, void *userdata) {
        vmsig_stub *s = data;

        for (size_t i = 0; i < n; i++)
                if (events[i].type >= _VMSIG_INPUT_TYPE_MAX)
                        return -EINVAL;
        request *q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        *q = (request) { .base = { .done = done, .userdata = userdata }, .type = REQUEST_INPUT, .n_events = n };
        if (n > 0) {
                q->events = memdup_array(events, n, sizeof *events);
                if (!q->events) {
                        free(q);
                        return -ENOMEM;
                }
        }
        return queue_push(s, q);
}

static bool is_input(const host_request *rq) {
        return ((const request *) rq)->type == REQUEST_INPUT;
}

/* Takes the waiting input requests out of the queue; the lifecycle
 * requests among them keep their order. */
static void input_cancel(void *data, const char *message) {
        vmsig_stub *s = data;
        host_queue dropped = {};

        host_queue_move_if(&s->queue, &dropped, is_input);
        for (host_request *rq; (rq = host_queue_pop(&dropped));) {
                host_request_set_error(rq, -ECANCELED, message);
                host_queue_push(&s->cancelled, rq);
        }
        if (s->cancelled.head && s->event_fd >= 0)
                wake_now(s);
}

static const vmsig_input_ops stub_input_ops = {
        .base = { .free = stub_unref_data },
        .inject = input_inject,
        .cancel = input_cancel,
};

/* memctx adapter: the RAM region, and a new epoch on every guest reset. */

static int on_lifecycle(vmsig_subscriber *sub, const vmsig_delivery *d, void *userdata) {
        vmsig_stub *s = userdata;

        if (!s->endpoint || !host_is_guest_reset(d))
                return VMSIG_DELIVER_OK;
        /* Without a bootstrap of its own (disabled, or a root given by
         * the spec), the root is unknown after a reset: idle. */
        (void) vmsig_bootstrap_guest_reset(s->endpoint, &s->memctx, NULL, &s->bootstrap);
        return VMSIG_DELIVER_OK;
}

static int create_ram(vmsig_stub *s, int *ret_ro) {
        _cleanup_close_ int fd = -1, ro = -1;

        fd = memfd_create(s->name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        /* memfds are created 0777: without this, anyone handed the
         * read-only fd could reopen it for writing through /proc. */
        if (fchmod(fd, 0600) < 0)
                return -errno;
        if (ftruncate(fd, (off_t) s->spec.ram_size) < 0)
                return -errno;
        /* Our own way in is a writable mapping made before the seal. After
         * F_SEAL_FUTURE_WRITE nobody, root included, can write(2) to the
         * memfd or map it writable again, whatever fd they reopen. */
        s->ram = mmap(NULL, s->spec.ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (s->ram == MAP_FAILED) {
                s->ram = NULL;
                return -errno;
        }
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        ro = fd_reopen(fd, O_RDONLY);
        if (ro < 0)
                return ro;
        s->ram_fd = TAKE_FD(fd);
        *ret_ro = TAKE_FD(ro);
        return 0;
}

static void memctx_detach(void *data, vmsig_endpoint *ep) {
        vmsig_stub *s = data;

        s->lifecycle_sub = vmsig_subscriber_free(s->lifecycle_sub);
        s->bootstrap = vmsig_bootstrap_free(s->bootstrap);
        vmsig_memctx_source_done(&s->memctx);
        /* The daemon owns the RAM fds; they go with the endpoint. */
        s->ram_fd = safe_close(s->ram_fd);
        if (s->ram)
                (void) munmap(s->ram, s->spec.ram_size);
        s->ram = NULL;
}

static int memctx_write_ram(void *data, uint64_t offset, const void *buf, size_t len) {
        vmsig_stub *s = data;
        vmsig_memwrite_mapping map = { .base = s->ram, .size = s->spec.ram_size };

        if (!s->ram)
                return -ENODEV;
        return vmsig_memwrite_memcpy(&map, offset, buf, len);
}

static int start_bootstrap(vmsig_stub *s, vmsig_endpoint *ep) {
        int r;

        if (s->spec.dtb)
                return vmsig_bootstrap_publish_fixed(ep, VMSIG_BOOTSTRAP_READY, s->spec.dtb);
        if (!s->spec.bootstrap)
                return vmsig_bootstrap_publish_fixed(ep, VMSIG_BOOTSTRAP_IDLE, 0);
        r = vmsig_bootstrap_new(ep, &s->memctx, &s->spec.bootstrap_config, &s->bootstrap);
        return r < 0 ? r : vmsig_bootstrap_start(s->bootstrap);
}

static int memctx_attach(void *data, vmsig_endpoint *ep) {
        vmsig_stub *s = data;
        int ro = -1, r;

        r = create_ram(s, &ro);
        if (r < 0) {
                if (s->ram)
                        (void) munmap(s->ram, s->spec.ram_size);
                s->ram = NULL;
                return log_error_errno(r, "Cannot create RAM of stub VM '%s': %m", s->name);
        }
        r = vmsig_memctx_source_init(&s->memctx, ro, s->spec.ram_size, NULL, 0);
        /* A simulated guest may come "bootstrapped"; after a reset the
         * root is unknown again, as with a real guest. */
        if (s->spec.dtb)
                s->memctx.root = (vmsig_memctx_root) {
                        .dtb = s->spec.dtb,
                        .levels = 4,
                        .witnesses = VMSIG_WITNESS_CONFIG,
                };
        if (r >= 0)
                r = host_subscribe_resets(ep, on_lifecycle, s, &s->lifecycle_sub);
        if (r >= 0)
                r = vmsig_memctx_source_publish(&s->memctx, ep);
        if (r >= 0)
                r = start_bootstrap(s, ep);
        if (r < 0)
                memctx_detach(s, ep); /* the endpoint only detaches adapters that attached */
        return r;
}

static int memctx_verify_root(void *data) {
        vmsig_stub *s = data;

        /* A root given by the configuration is taken as it is. */
        return s->bootstrap ? vmsig_bootstrap_verify(s->bootstrap) : 1;
}

static const vmsig_memctx_ops stub_memctx_ops = {
        .base = { .attach = memctx_attach, .detach = memctx_detach, .free = stub_unref_data },
        .write_ram = memctx_write_ram,
        .verify_root = memctx_verify_root,
};

/* The display adapter: captures queue behind the other requests, so that
 * they show the guest as those left it. The host adapter's detach
 * completes them with -ENODEV. */

static int display_capture(void *data, vmsig_display_done_fn done, void *userdata) {
        vmsig_stub *s = data;
        request *q;

        if (!done)
                return -EINVAL;
        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        *q = (request) { .base = { .display_done = done, .userdata = userdata }, .type = REQUEST_CAPTURE };
        return queue_push(s, q);
}

static void display_detach(void *data, vmsig_endpoint *ep) {
        display_release(data);
}

static const vmsig_display_ops stub_display_ops = {
        .base = { .detach = display_detach, .free = stub_unref_data },
        .capture = display_capture,
};

static bool display_size_is_valid(uint32_t n) {
        return n == 0 || (n >= VMSIG_STUB_DISPLAY_MIN && n <= VMSIG_STUB_DISPLAY_MAX);
}

int vmsig_stub_new(const vmsig_stub_spec *spec, vmsig_endpoint_spec *ret, vmsig_stub **ret_stub) {
        vmsig_stub *s;

        if (!vmsig_endpoint_name_is_valid(spec->name) || spec->ram_size == 0 || spec->ram_size % 4096)
                return -EINVAL;
        if (!display_size_is_valid(spec->display_width) || !display_size_is_valid(spec->display_height))
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->n_ref = _VMSIG_ADAPTER_MAX;
        s->spec = *spec;
        s->ram_fd = s->event_fd = s->display_fd = -1;
        if (s->spec.display_width == 0)
                s->spec.display_width = DISPLAY_WIDTH_DEFAULT;
        if (s->spec.display_height == 0)
                s->spec.display_height = DISPLAY_HEIGHT_DEFAULT;
        s->memctx.ram_fd = -1;
        s->name = strdup(spec->name);
        if (!s->name) {
                free(s);
                return -ENOMEM;
        }
        s->spec.name = s->name;

        host_endpoint_spec_init(ret, s->name, spec->uuid, spec->initial_state);
        ret->adapters[VMSIG_ADAPTER_MEMCTX] = (vmsig_adapter) { &stub_memctx_ops.base, s };
        ret->adapters[VMSIG_ADAPTER_INPUT] = (vmsig_adapter) { &stub_input_ops.base, s };
        ret->adapters[VMSIG_ADAPTER_HOST] = (vmsig_adapter) { &stub_host_ops.base, s };
        ret->adapters[VMSIG_ADAPTER_DISPLAY] = (vmsig_adapter) { &stub_display_ops.base, s };
        if (ret_stub)
                *ret_stub = s;
        return 0;
}

const vmsig_input_event *vmsig_stub_input_log(vmsig_stub *s, size_t *n) {
        /* Linearise the ring so callers get one array. */
        if (s->input_head != 0 && s->input_log) {
                vmsig_input_event *t = malloc(INPUT_LOG_MAX * sizeof *t);
                if (t) {
                        for (size_t i = 0; i < s->n_input; i++)
                                t[i] = s->input_log[(s->input_head + i) % INPUT_LOG_MAX];
                        free(s->input_log);
                        s->input_log = t;
                        s->input_head = 0;
                }
        }
        *n = s->n_input;
        return s->input_log;
}

int vmsig_stub_ram_fd(vmsig_stub *s) {
        return s->ram_fd;
}
