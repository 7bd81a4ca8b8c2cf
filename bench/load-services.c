/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-load's own private system bus and vmsigd: their configuration and
 * the processes. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-lib.h"
#include "load.h"

#define N_LIFECYCLE_STUBS 8
#define N_MEMWRITE_STUBS 8
#define STUB_RAM_SIZE (4ULL << 20)
#define MEMWRITE_RAM_SIZE (16ULL << 20)

/* The default-deny policy of /usr/share/dbus-1/system.conf and our policy
 * file; dbus-daemon's built-in limits, as on a real system bus. */
static char *bus_config(load_ctx *ctx, const char *srcdir) {
        char *text = NULL;

        if (asprintf(&text,
                     "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                     " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                     "<busconfig>\n"
                     "  <type>system</type>\n"
                     "  <listen>unix:path=%s/system_bus_socket</listen>\n"
                     "  <auth>EXTERNAL</auth>\n"
                     "  <policy context=\"default\">\n"
                     "    <allow user=\"*\"/>\n"
                     "    <deny own=\"*\"/>\n"
                     "    <deny send_type=\"method_call\"/>\n"
                     "    <allow send_type=\"signal\"/>\n"
                     "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"
                     "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
                     "    <allow receive_type=\"method_call\"/>\n"
                     "    <allow receive_type=\"method_return\"/>\n"
                     "    <allow receive_type=\"error\"/>\n"
                     "    <allow receive_type=\"signal\"/>\n"
                     "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\"/>\n"
                     "    <allow send_destination=\"org.freedesktop.DBus\" "
                     "send_interface=\"org.freedesktop.DBus.Introspectable\"/>\n"
                     "    <allow send_destination=\"org.freedesktop.DBus\" "
                     "send_interface=\"org.freedesktop.DBus.Properties\"/>\n"
                     "  </policy>\n"
                     "  <include>%s/data/org.vmsig.conf</include>\n"
                     "</busconfig>\n",
                     ctx->dir, srcdir) < 0)
                return NULL;
        return text;
}

static void append(char **text, size_t *len, size_t *size, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void append(char **text, size_t *len, size_t *size, const char *fmt, ...) {
        va_list ap;
        int n;

        if (!*text)
                return;
        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(*text + *len, *size - *len, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        free(*text);
                        *text = NULL;
                        return;
                }
                if ((size_t) n < *size - *len)
                        break;
                char *grown = realloc(*text, *size * 2 + (size_t) n);
                if (!grown) {
                        free(*text);
                        *text = NULL;
                        return;
                }
                *text = grown;
                *size = *size * 2 + (size_t) n;
        }
        *len += (size_t) n;
}

static int add_target(load_ctx *ctx, const char *name, target_kind kind, uint64_t ram_size) {
        load_target *t = &ctx->targets[ctx->n_targets];

        *t = (load_target) { .kind = kind, .ram_size = ram_size };
        t->name = strdup(name);
        if (!t->name || sd_bus_path_encode(LOAD_ENDPOINT_PREFIX, name, &t->path) < 0)
                return -ENOMEM;
        ctx->n_targets++;
        return 0;
}

/* The stubs: lifecycle ones of 4 MiB, MemWrite ones of 16 MiB, the spare.
 * Quotas are off: 200 connections of one uid (root) would otherwise hit
 * the per-uid limits, which are not what this measures. */
static char *daemon_config(load_ctx *ctx) {
        size_t len = 0, size = 4096;
        char *text = malloc(size), name[32];

        ctx->targets = calloc(N_LIFECYCLE_STUBS + N_MEMWRITE_STUBS + 1 + ctx->opt.trigger_vms, sizeof *ctx->targets);
        if (!text || !ctx->targets) {
                free(text);
                return NULL;
        }
        append(&text, &len, &size, "<vmsigd>\n  <log level=\"warning\"/>\n  <audit target=\"stderr\"/>\n");
        append(&text, &len, &size,
               "  <admission max-pending-calls=\"0\" max-subscriptions=\"0\" max-leases=\"0\"/>\n");
        if (ctx->armed)
                append(&text, &len, &size, "  <discovery trigger-dir=\"%s/vms.d\"/>\n", ctx->dir);
        for (unsigned i = 0; i < N_LIFECYCLE_STUBS; i++) {
                snprintf(name, sizeof name, "lc%02u", i);
                append(&text, &len, &size, "  <stub-vm name=\"%s\" ram-size=\"4M\"/>\n", name);
                if (add_target(ctx, name, TARGET_LIFECYCLE, STUB_RAM_SIZE) < 0)
                        goto fail;
        }
        for (unsigned i = 0; i < N_MEMWRITE_STUBS; i++) {
                snprintf(name, sizeof name, "mw%02u", i);
                append(&text, &len, &size, "  <stub-vm name=\"%s\" ram-size=\"16M\"/>\n", name);
                if (add_target(ctx, name, TARGET_MEMWRITE, MEMWRITE_RAM_SIZE) < 0)
                        goto fail;
        }
        append(&text, &len, &size, "  <stub-vm name=\"spare\" ram-size=\"4M\"/>\n</vmsigd>\n");
        if (add_target(ctx, "spare", TARGET_SPARE, STUB_RAM_SIZE) < 0)
                goto fail;
        return text;
fail:
        free(text);
        return NULL;
}

static int write_configs(load_ctx *ctx, const char *srcdir) {
        char path[4096], *bus = bus_config(ctx, srcdir), *daemon = daemon_config(ctx);
        int r = bus && daemon ? 0 : -ENOMEM;

        snprintf(path, sizeof path, "%s/bus.conf", ctx->dir);
        if (r >= 0)
                r = load_write_file(path, bus, strlen(bus), 0600);
        snprintf(path, sizeof path, "%s/vmsigd.conf", ctx->dir);
        if (r >= 0)
                r = load_write_file(path, daemon, strlen(daemon), 0600);
        free(bus);
        free(daemon);
        return r;
}

/* A child with stdout and stderr in LOG; it dies with us. */
static pid_t spawn(const char *log, char *const argv[], int keep_fd) {
        pid_t pid = fork();

        if (pid != 0)
                return pid;
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
                _exit(127);
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (keep_fd >= 0 && keep_fd != 3 && dup2(keep_fd, 3) < 0)
                _exit(127);
        execvp(argv[0], argv);
        _exit(127);
}

static int start_bus(load_ctx *ctx) {
        char conf[4096], log[4096], addr[4096], buf[512] = "";
        const char *daemon = ctx->opt.dbus_daemon;
        int fd, r = -ETIMEDOUT;

        snprintf(conf, sizeof conf, "--config-file=%s/bus.conf", ctx->dir);
        snprintf(log, sizeof log, "%s/dbus-daemon.log", ctx->dir);
        snprintf(addr, sizeof addr, "%s/bus.address", ctx->dir);
        fd = open(addr, O_RDWR | O_CREAT | O_TRUNC, 0600); /* not CLOEXEC: dup2'd to 3 in the child */
        if (fd < 0)
                return -errno;
        char *argv[] = { (char *) daemon, conf, "--nofork", "--print-address=3", NULL };
        ctx->bus_pid = spawn(log, argv, fd);
        for (int i = 0; i < 200 && ctx->bus_pid > 0; i++) {
                ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
                if (n > 0 && buf[n - 1] == '\n') {
                        r = 0;
                        break;
                }
                usleep(25000);
        }
        close(fd);
        if (r < 0) {
                fprintf(stderr, "bench-load: %s did not start; see %s\n", daemon, log);
                return r;
        }
        if (asprintf(&ctx->bus_address, "unix:path=%s/system_bus_socket", ctx->dir) < 0)
                return -ENOMEM;
        return setenv("DBUS_SYSTEM_BUS_ADDRESS", ctx->bus_address, 1) < 0 ? -errno : 0;
}

static int wait_for_name(load_ctx *ctx) {
        sd_bus *bus = NULL;
        int r = sd_bus_open_system(&bus);

        for (int i = 0; r >= 0 && i < 400; i++) {
                r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "GetNameOwner", NULL, NULL, "s", LOAD_BUS_NAME);
                if (r >= 0 || !load_vmsigd_alive(ctx))
                        break;
                r = 0;
                usleep(25000);
        }
        sd_bus_flush_close_unref(bus);
        return r;
}

static int start_vmsigd(load_ctx *ctx) {
        char conf[4096], log[4096];
        int r;

        snprintf(conf, sizeof conf, "--config=%s/vmsigd.conf", ctx->dir);
        snprintf(log, sizeof log, "%s/vmsigd.log", ctx->dir);
        /* No private socket: the load goes through the bus. */
        char *argv[] = { (char *) ctx->opt.vmsigd, conf, "--private-socket=", NULL };
        ctx->vmsigd_pid = spawn(log, argv, -1);
        if (ctx->vmsigd_pid < 0)
                return -errno;
        r = wait_for_name(ctx);
        if (r < 0) {
                fprintf(stderr, "bench-load: vmsigd did not take %s: %s\n", LOAD_BUS_NAME, strerror(-r));
                load_print_vmsigd_log(ctx, 30);
        }
        return r;
}

int load_services_start(load_ctx *ctx) {
        const char *tmp = getenv("TMPDIR");
        char dir[4096];
        int r;

        if (!ctx->opt.vmsigd)
                ctx->opt.vmsigd = "./vmsigd";
        if (!ctx->opt.srcdir)
                ctx->opt.srcdir = getenv("VMSIG_SRCDIR");
        if (!ctx->opt.dbus_daemon)
                ctx->opt.dbus_daemon = getenv("DBUS_DAEMON") && *getenv("DBUS_DAEMON") ? getenv("DBUS_DAEMON")
                                                                                      : "dbus-daemon";
        if (!ctx->opt.srcdir) {
                fprintf(stderr, "bench-load: give --srcdir (or VMSIG_SRCDIR): data/org.vmsig.conf is needed\n");
                return -EINVAL;
        }
        /* Unix socket paths (the bus, the QMP sockets) must fit in 108
         * bytes: a long $TMPDIR, as in a package build, gives way. */
        if (!tmp || !*tmp || strlen(tmp) > 60)
                tmp = "/tmp";
        snprintf(dir, sizeof dir, "%s/vmsig-load.XXXXXX", tmp);
        if (!mkdtemp(dir) || !(ctx->dir = strdup(dir)))
                return -errno;
        /* vmsigd watches the trigger directory from its start. */
        snprintf(dir, sizeof dir, "%s/vms.d", ctx->dir);
        if (ctx->armed && mkdir(dir, 0700) < 0)
                return -errno;
        r = write_configs(ctx, ctx->opt.srcdir);
        if (r >= 0)
                r = start_bus(ctx);
        if (r >= 0)
                r = start_vmsigd(ctx);
        return r;
}

bool load_vmsigd_alive(load_ctx *ctx) {
        int status;

        if (ctx->vmsigd_pid <= 0)
                return false;
        if (waitpid(ctx->vmsigd_pid, &status, WNOHANG) == ctx->vmsigd_pid) {
                fprintf(stderr, "bench-load: vmsigd exited (%s %d)\n", WIFSIGNALED(status) ? "signal" : "status",
                        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                ctx->vmsigd_pid = -1;
                return false;
        }
        return true;
}

/* SIGTERM, then SIGKILL after 10 s; the exit status, or -1. */
static int stop_process(pid_t pid) {
        int status = -1;

        if (pid <= 0)
                return -1;
        (void) kill(pid, SIGTERM);
        for (int i = 0; i < 400; i++) {
                if (waitpid(pid, &status, WNOHANG) == pid)
                        return status;
                usleep(25000);
        }
        (void) kill(pid, SIGKILL);
        (void) waitpid(pid, &status, 0);
        return status;
}

static void remove_tree(const char *dir) {
        char *argv[] = { "rm", "-rf", (char *) dir, NULL };
        pid_t pid = fork();
        int status;

        if (pid == 0) {
                execvp(argv[0], argv);
                _exit(127);
        }
        if (pid > 0)
                (void) waitpid(pid, &status, 0);
}

int load_services_stop(load_ctx *ctx) {
        int status = stop_process(ctx->vmsigd_pid), bad = 0;

        if (ctx->vmsigd_pid > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                fprintf(stderr, "bench-load: vmsigd did not exit cleanly on SIGTERM (wait status %d)\n", status);
                bad = -EIO;
        }
        ctx->vmsigd_pid = -1;
        (void) stop_process(ctx->bus_pid);
        ctx->bus_pid = -1;
        if (ctx->dir && !ctx->opt.keep)
                remove_tree(ctx->dir);
        else if (ctx->dir)
                printf("  kept %s\n", ctx->dir);
        free(ctx->dir);
        free(ctx->bus_address);
        ctx->dir = NULL;
        return bad;
}

/* The last lines vmsigd logged, other than audit records. */
void load_print_vmsigd_log(load_ctx *ctx, unsigned lines) {
        char path[4096], line[1024];
        char **ring = calloc(lines, sizeof *ring);
        unsigned n = 0;
        FILE *f;

        if (!ctx->dir || !ring) {
                free(ring);
                return;
        }
        snprintf(path, sizeof path, "%s/vmsigd.log", ctx->dir);
        f = fopen(path, "re");
        while (f && fgets(line, sizeof line, f))
                if (strncmp(line, "vmsig-audit: ", 13) != 0) {
                        free(ring[n % lines]);
                        ring[n++ % lines] = strdup(line);
                }
        if (f)
                fclose(f);
        fprintf(stderr, "bench-load: vmsigd logged %u lines besides audit records%s\n", n,
                n > lines ? ", the last ones:" : ":");
        for (unsigned i = n > lines ? n - lines : 0; i < n; i++)
                fprintf(stderr, "  %s", ring[i % lines] ? ring[i % lines] : "?\n");
        for (unsigned i = 0; i < lines; i++)
                free(ring[i]);
        free(ring);
}
