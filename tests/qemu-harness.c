/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "fd-util.h"
#include "qemu-harness.h"
#include "vt-util.h"

#define QEMU_DEFAULT "qemu-system-x86_64"
#define TIMEOUT_MS 20000

struct QmpSession {
        int fd;
        json_tokener *tok;
        char buf[16384];
        size_t len, off;
        int64_t next_id;
        GPtrArray *events; /* names, oldest first */
};

static const char *qemu_binary(void) {
        const char *q = g_getenv("VMSIG_QEMU");
        return q && *q ? q : QEMU_DEFAULT;
}

bool qemu_harness_available(void) {
        g_autofree char *path = g_find_program_in_path(qemu_binary()), *why = NULL;

        if (path)
                return true;
        if (g_strcmp0(g_getenv("CI"), "true") == 0)
                g_error("%s is missing; CI must not skip the QEMU tests", qemu_binary());
        why = g_strdup_printf("%s is not installed (apt-get install qemu-system-x86)", qemu_binary());
        g_test_skip(why);
        return false;
}

static int64_t now_ms(void) {
        return g_get_monotonic_time() / 1000;
}

/* Reads until one complete JSON message is there; NULL on EOF or when
 * the deadline passed. */
static json_object *read_message(QmpSession *s, int64_t deadline) {
        for (;;) {
                while (s->off < s->len) {
                        json_object *msg = json_tokener_parse_ex(s->tok, s->buf + s->off, (int) (s->len - s->off));
                        enum json_tokener_error e = json_tokener_get_error(s->tok);
                        if (e == json_tokener_continue) {
                                s->off = s->len;
                                break;
                        }
                        if (e != json_tokener_success)
                                g_error("QMP session: bad JSON from QEMU: %s", json_tokener_error_desc(e));
                        s->off += json_tokener_get_parse_end(s->tok);
                        return msg;
                }
                struct pollfd p = { .fd = s->fd, .events = POLLIN };
                int64_t left = deadline - now_ms();
                if (left <= 0 || poll(&p, 1, (int) left) <= 0)
                        return NULL;
                ssize_t n = read(s->fd, s->buf, sizeof s->buf);
                if (n <= 0)
                        return NULL;
                s->len = (size_t) n;
                s->off = 0;
        }
}

/* Events are kept by name; anything else is handed back. */
static bool take_event(QmpSession *s, json_object *msg) {
        json_object *name;

        if (!json_object_object_get_ex(msg, "event", &name))
                return false;
        g_ptr_array_add(s->events, g_strdup(json_object_get_string(name)));
        json_object_put(msg);
        return true;
}

static void send_all(QmpSession *s, const char *text) {
        int r = loop_write(s->fd, text, strlen(text));

        if (r < 0)
                g_error("QMP session: cannot write to QEMU: %s", g_strerror(-r));
}

json_object *qmp_session_execute(QmpSession *s, const char *command, const char *args, char **ret_error) {
        int64_t id = ++s->next_id, deadline = now_ms() + TIMEOUT_MS;
        g_autofree char *text = g_strdup_printf("{\"execute\": \"%s\", \"id\": %" PRId64 "%s%s}\n", command, id,
                                                args ? ", \"arguments\": " : "", args ? args : "");
        json_object *msg, *v, *result = NULL;

        send_all(s, text);
        while ((msg = read_message(s, deadline))) {
                if (take_event(s, msg))
                        continue;
                if (!json_object_object_get_ex(msg, "id", &v) || json_object_get_int64(v) != id) {
                        json_object_put(msg);
                        continue;
                }
                if (json_object_object_get_ex(msg, "return", &v))
                        result = json_object_get(v);
                else {
                        json_object *e = NULL, *cls = NULL, *desc = NULL;
                        (void) json_object_object_get_ex(msg, "error", &e);
                        (void) json_object_object_get_ex(e, "class", &cls);
                        (void) json_object_object_get_ex(e, "desc", &desc);
                        g_assert_nonnull(ret_error);
                        *ret_error = g_strdup_printf("%s: %s", json_object_get_string(cls),
                                                     json_object_get_string(desc));
                }
                json_object_put(msg);
                return result;
        }
        g_error("QMP session: QEMU did not answer %s", command);
}

void qmp_session_run(QmpSession *s, const char *command, const char *args) {
        g_autofree char *error = NULL;
        json_object *r = qmp_session_execute(s, command, args, &error);

        if (error)
                g_error("QMP session: %s failed: %s", command, error);
        json_object_put(r);
}

static int connect_retrying(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int64_t deadline = now_ms() + TIMEOUT_MS;

        g_assert_cmpuint(strlen(path), <, sizeof sa.sun_path);
        strcpy(sa.sun_path, path);
        for (;;) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                g_assert_cmpint(fd, >=, 0);
                if (connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0)
                        return fd;
                close(fd);
                if (now_ms() > deadline)
                        g_error("QMP session: cannot connect to %s: %s", path, g_strerror(errno));
                g_usleep(10000);
        }
}

QmpSession *qmp_session_open(const char *path) {
        QmpSession *s = g_new0(QmpSession, 1);
        json_object *greeting, *v;

        s->fd = connect_retrying(path);
        s->tok = json_tokener_new();
        s->events = g_ptr_array_new_with_free_func(g_free);
        greeting = read_message(s, now_ms() + TIMEOUT_MS);
        if (!greeting || !json_object_object_get_ex(greeting, "QMP", &v))
                g_error("QMP session: no greeting on %s", path);
        json_object_put(greeting);
        qmp_session_run(s, "qmp_capabilities", NULL);
        return s;
}

void qmp_session_close(QmpSession *s) {
        if (!s)
                return;
        close(s->fd);
        json_tokener_free(s->tok);
        g_ptr_array_unref(s->events);
        g_free(s);
}

char *qmp_session_status(QmpSession *s) {
        json_object *r = qmp_session_execute(s, "query-status", NULL, NULL), *status;
        char *ret;

        g_assert_true(json_object_object_get_ex(r, "status", &status));
        ret = g_strdup(json_object_get_string(status));
        json_object_put(r);
        return ret;
}

uint64_t qmp_session_xp(QmpSession *s, uint64_t gpa) {
        g_autofree char *args = g_strdup_printf("{\"command-line\": \"xp /1gx 0x%" PRIx64 "\"}", gpa);
        json_object *r = qmp_session_execute(s, "human-monitor-command", args, NULL);
        const char *out = json_object_get_string(r), *colon = strstr(out, ": ");
        uint64_t v;

        /* "0000000007f00000: 0x1122334455667788\r\n" */
        if (!colon || sscanf(colon + 2, "%" SCNx64, &v) != 1)
                g_error("QMP session: cannot parse xp output '%s'", out);
        json_object_put(r);
        return v;
}

/* The first CPU block of "info registers" text: after its "CPU#<n>" line
 * if it has one, up to the next vCPU's. */
static char *first_cpu_block(const char *text) {
        const char *start = text, *end;

        while (g_ascii_isspace(*start))
                start++;
        if (g_str_has_prefix(start, "CPU#")) {
                start = strchr(start, '\n');
                if (!start)
                        return g_strdup("");
                start++;
        }
        end = g_str_has_prefix(start, "CPU#") ? start : strstr(start, "\nCPU#");
        return end ? g_strndup(start, end - start) : g_strdup(start);
}

/* Where the value of "NAME=" starts, NAME beginning a line or following a
 * blank: CR0 must not match inside XCR0, nor CR3 inside XCR3. */
static const char *find_field(const char *block, const char *name) {
        size_t n = strlen(name);

        for (const char *p = strstr(block, name); p; p = strstr(p + 1, name))
                if ((p == block || g_ascii_isspace(p[-1])) && p[n] == '=')
                        return p + n + 1;
        return NULL;
}

/* QEMU prints 8 or 16 hex digits and nothing else: no 0x, no sign, a blank
 * or the end after them. Whatever else is there is not a register value,
 * and neither are more than 64 bits. */
static bool read_field(const char *block, const char *name, uint64_t *ret) {
        const char *p = find_field(block, name);
        uint64_t v = 0;
        size_t n = 0;

        if (!p)
                return false;
        for (; g_ascii_isxdigit(p[n]); n++) {
                if (n == 16)
                        return false;
                v = v << 4 | (uint64_t) g_ascii_xdigit_value(p[n]);
        }
        if (n == 0 || (p[n] != '\0' && !g_ascii_isspace(p[n])))
                return false;
        *ret = v;
        return true;
}

bool qemu_parse_registers(const char *text, QemuRegisters *ret) {
        g_autofree char *block = first_cpu_block(text);
        QemuRegisters r = {};
        uint64_t hlt = 0;

        /* QEMU names the IP after the mode of the code: RIP in 64-bit code,
         * EIP in real, protected and compatibility mode. */
        if (!read_field(block, find_field(block, "RIP") ? "RIP" : "EIP", &r.ip) ||
            !read_field(block, "CR0", &r.cr0) || !read_field(block, "CR3", &r.cr3) ||
            !read_field(block, "CR4", &r.cr4) || !read_field(block, "EFER", &r.efer))
                return false;
        /* Not among the registers a test needs: without a readable HLT= the
         * vCPU just does not count as halted. */
        (void) read_field(block, "HLT", &hlt);
        r.halted = hlt != 0;
        *ret = r;
        return true;
}

char *qmp_session_registers(QmpSession *s, QemuRegisters *ret) {
        json_object *r = qmp_session_execute(s, "human-monitor-command", "{\"command-line\": \"info registers\"}",
                                             NULL);
        char *text = g_strdup(json_object_get_string(r));

        json_object_put(r);
        if (ret && !qemu_parse_registers(text, ret))
                g_error("QMP session: cannot parse 'info registers':\n%s", text);
        return text;
}

bool qmp_session_wait_event(QmpSession *s, const char *name, unsigned timeout_ms) {
        int64_t deadline = now_ms() + timeout_ms;

        for (;;) {
                for (guint i = 0; i < s->events->len; i++)
                        if (g_str_equal(s->events->pdata[i], name)) {
                                g_ptr_array_remove_range(s->events, 0, i + 1);
                                return true;
                        }
                json_object *msg = read_message(s, deadline);
                if (!msg)
                        return false;
                if (!take_event(s, msg))
                        json_object_put(msg);
        }
}

QemuVm *qemu_vm_new(void) {
        g_autoptr(GError) error = NULL;
        QemuVm *vm = g_new0(QemuVm, 1);

        vm->dir = g_dir_make_tmp("vmsig-qemu-XXXXXX", &error);
        g_assert_no_error(error);
        vm->ram_path = g_build_filename(vm->dir, "ram", NULL);
        vm->qmp_path = g_build_filename(vm->dir, "vmsigd.sock", NULL);
        vm->session_path = g_build_filename(vm->dir, "test.sock", NULL);
        return vm;
}

static void child_setup(gpointer data) {
        pid_t parent = (pid_t) GPOINTER_TO_INT(data);

        /* The guest's RAM is nobody else's business. */
        umask(077);
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                _exit(127);
}

static bool is_socket(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static bool try_reap(QemuVm *vm, int *status) {
        pid_t r;

        do
                r = waitpid(vm->pid, status, WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r != vm->pid)
                return false;
        g_spawn_close_pid(vm->pid);
        vm->pid = 0;
        return true;
}

static void wait_for_sockets(QemuVm *vm) {
        int64_t deadline = now_ms() + TIMEOUT_MS;
        int status;

        while (!is_socket(vm->qmp_path) || !is_socket(vm->session_path)) {
                if (try_reap(vm, &status))
                        g_error("QEMU exited at start (status 0x%x)", (unsigned) status);
                if (now_ms() > deadline)
                        g_error("QEMU did not create its QMP sockets in %d ms", TIMEOUT_MS);
                g_usleep(5000);
        }
}

void qemu_vm_start(QemuVm *vm) {
        g_autoptr(GError) error = NULL;
        uint64_t mib = vm->ram_mib ?: QEMU_RAM_SIZE / (1024 * 1024);
        g_autofree char *ram = g_strdup_printf("memory-backend-file,id=ram0,size=%" PRIu64 "M,mem-path=%s,share=on",
                                               mib, vm->ram_path);
        g_autofree char *mem = g_strdup_printf("%" PRIu64 "M", mib);
        g_autofree char *machine = g_strdup_printf("%s,accel=tcg", vm->machine ?: "q35");
        g_autofree char *qmp = g_strdup_printf("unix:%s,server=on,wait=off", vm->qmp_path);
        g_autofree char *session = g_strdup_printf("unix:%s,server=on,wait=off", vm->session_path);
        g_autofree char *serial = vm->serial_path ? g_strdup_printf("file:%s", vm->serial_path) : NULL;
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        const char *fixed[] = {
                qemu_binary(), "-machine", machine, "-m", mem, "-object", ram,
                "-machine", "memory-backend=ram0", "-qmp", qmp, "-qmp", session, "-display", "none",
                "-nodefaults", "-monitor", "none", "-serial", serial ?: "none", "-vga", vm->vga ? "std" : "none",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++)
                g_ptr_array_add(argv, (char *) fixed[i]);
#define ADD_OPTION(flag, value)                              \
        do {                                                 \
                if (value) {                                 \
                        g_ptr_array_add(argv, (char *) flag); \
                        g_ptr_array_add(argv, (char *) value); \
                }                                            \
        } while (0)
        ADD_OPTION("-cpu", vm->cpu);
        ADD_OPTION("-kernel", vm->kernel);
        ADD_OPTION("-initrd", vm->initrd);
        ADD_OPTION("-append", vm->append);
#undef ADD_OPTION
        if (vm->no_reboot)
                g_ptr_array_add(argv, (char *) "-no-reboot");
        if (vm->start_paused)
                g_ptr_array_add(argv, (char *) "-S");
        for (const char *const *a = vm->extra_args; a && *a; a++)
                g_ptr_array_add(argv, (char *) *a);
        g_ptr_array_add(argv, NULL);

        g_assert_cmpint(vm->pid, ==, 0);
        /* Left over by a killed QEMU: waiting for them would not wait. */
        (void) g_unlink(vm->qmp_path);
        (void) g_unlink(vm->session_path);
        g_spawn_async(NULL, (char **) argv->pdata, NULL,
                      G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, child_setup,
                      GINT_TO_POINTER(getpid()), &vm->pid, &error);
        g_assert_no_error(error);
        wait_for_sockets(vm);
        vm->session = qmp_session_open(vm->session_path);
}

void qemu_vm_kill(QemuVm *vm) {
        int status;

        qmp_session_close(vm->session);
        vm->session = NULL;
        if (vm->pid == 0)
                return;
        (void) kill(vm->pid, SIGKILL);
        while (waitpid(vm->pid, &status, 0) < 0 && errno == EINTR)
                ;
        g_spawn_close_pid(vm->pid);
        vm->pid = 0;
}

bool qemu_vm_wait_exit(QemuVm *vm, unsigned timeout_ms) {
        int64_t deadline = now_ms() + timeout_ms;
        int status;

        while (vm->pid != 0 && !try_reap(vm, &status)) {
                if (now_ms() > deadline)
                        return false;
                g_usleep(5000);
        }
        qmp_session_close(vm->session);
        vm->session = NULL;
        return true;
}

void qemu_vm_free(QemuVm *vm) {
        if (!vm)
                return;
        qemu_vm_kill(vm);
        (void) g_unlink(vm->ram_path);
        (void) g_unlink(vm->qmp_path);
        (void) g_unlink(vm->session_path);
        (void) g_rmdir(vm->dir);
        VT_FREE_MANY(vm->ram_path, vm->qmp_path, vm->session_path, vm->dir, vm);
}
