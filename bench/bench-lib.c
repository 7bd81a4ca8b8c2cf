/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the bench programs share; see bench-lib.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/bus-config.h"
#include "bench-lib.h"

#define PROGRAM program_invocation_short_name
#define QMP_TIMEOUT_MSEC 30000

/* --- options ------------------------------------------------------------------ */

unsigned bench_parse_unsigned(const char *name, const char *s, unsigned min, unsigned max) {
        char *end = NULL;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || !end || *end || end == s || v < min || v > max) {
                fprintf(stderr, "%s: --%s must be a number in %u..%u, not \"%s\"\n", PROGRAM, name, min, max, s);
                exit(EXIT_FAILURE);
        }
        return (unsigned) v;
}

const char *bench_absolute_dir(const char *what, const char *dir) {
        /* Never freed: it lives as long as the options. */
        char *path = realpath(dir, NULL);

        if (!path) {
                fprintf(stderr, "%s: %s %s: %s\n", PROGRAM, what, dir, strerror(errno));
                exit(EXIT_FAILURE);
        }
        return path;
}

static void set_option(const bench_option *o, char *arg) {
        bench_list *l = o->value;
        char *save = NULL;

        switch (o->kind) {
        case BENCH_OPT_FLAG:
                *(bool *) o->value = true;
                break;
        case BENCH_OPT_UNSIGNED:
                *(unsigned *) o->value = bench_parse_unsigned(o->name, arg, o->min, o->max);
                break;
        case BENCH_OPT_DOUBLE:
                *(double *) o->value = strtod(arg, NULL);
                break;
        case BENCH_OPT_STRING:
                *(const char **) o->value = arg;
                break;
        case BENCH_OPT_DIR: {
                char what[64];

                snprintf(what, sizeof what, "--%s", o->name);
                *(const char **) o->value = bench_absolute_dir(what, arg);
                break;
        }
        case BENCH_OPT_LIST:
                for (char *item = strtok_r(arg, ", ", &save); item && l->n < BENCH_ELEMENTS(l->item);
                     item = strtok_r(NULL, ", ", &save))
                        l->item[l->n++] = item;
                break;
        }
}

void bench_parse_options(int argc, char *argv[], const bench_option *options, const char *usage) {
        struct option long_options[64] = { { "help", no_argument, NULL, 'h' } };
        size_t n = 0;
        int c, index;

        while (options[n].name && n + 2 < BENCH_ELEMENTS(long_options)) {
                long_options[n + 1] =
                        (struct option) { options[n].name,
                                          options[n].kind == BENCH_OPT_FLAG ? no_argument : required_argument, NULL,
                                          0x100 + (int) n };
                n++;
        }
        while ((c = getopt_long(argc, argv, "h", long_options, &index)) >= 0) {
                if (c == 'h') {
                        fputs(usage, stdout);
                        exit(EXIT_SUCCESS);
                }
                if (c < 0x100)
                        exit(EXIT_FAILURE);
                set_option(&options[c - 0x100], optarg);
        }
}

bool bench_list_wants(const bench_list *l, const char *name) {
        for (unsigned i = 0; i < l->n; i++)
                if (strcmp(l->item[i], name) == 0)
                        return true;
        return l->n == 0;
}

/* --- clocks, medians, the comparison ----------------------------------------- */

uint64_t bench_now_nsec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

uint64_t bench_self_cpu_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

int bench_compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

uint64_t bench_median(uint64_t *v, size_t n) {
        qsort(v, n, sizeof v[0], bench_compare_u64);
        return v[n / 2];
}

uint64_t bench_percentile(const uint64_t *sorted, size_t n, unsigned p) {
        size_t rank = (n * p + 99) / 100;

        return sorted[rank > 0 ? rank - 1 : 0];
}

unsigned bench_abba(unsigned i) {
        return (i + 1) / 2 % 2;
}

uint64_t bench_median_of_runs(const uint64_t *v, size_t n) {
        uint64_t copy[BENCH_RUNS_MAX];

        memcpy(copy, v, n * sizeof v[0]);
        return bench_median(copy, n);
}

bench_summary bench_summarize(uint64_t *v, size_t n) {
        if (n == 0)
                return (bench_summary) {};
        return (bench_summary) {
                .median = bench_median(v, n),
                .p90 = bench_percentile(v, n, 90),
                .p99 = bench_percentile(v, n, 99),
                .min = v[0],
                .max = v[n - 1],
        };
}

int bench_samples_add(bench_samples *s, uint64_t v) {
        if (s->n == s->size) {
                size_t size = s->size ? s->size * 2 : 1024;
                uint64_t *grown = realloc(s->v, size * sizeof *grown);
                if (!grown)
                        return -ENOMEM;
                s->v = grown;
                s->size = size;
        }
        s->v[s->n++] = v;
        return 0;
}

uint64_t bench_samples_percentile(bench_samples *s, unsigned p) {
        if (s->n == 0)
                return 0;
        qsort(s->v, s->n, sizeof s->v[0], bench_compare_u64);
        return bench_percentile(s->v, s->n, p);
}

static int run_side(const bench_side *s, unsigned n, uint64_t *sum_nsec) {
        uint64_t start = bench_now_nsec();
        int r;

        for (unsigned i = 0; i < n; i++) {
                r = s->call(s->bus, s->userdata);
                if (r < 0)
                        return r;
        }
        *sum_nsec += bench_now_nsec() - start;
        return 0;
}

int bench_compare_n(const bench_side *sides, size_t n, unsigned calls, unsigned warmup, unsigned runs,
                    uint64_t (*ret)[BENCH_RUNS_MAX]) {
        uint64_t ignored = 0;
        int r;

        for (unsigned i = 0; i < warmup; i++)
                for (size_t s = 0; s < n; s++) {
                        r = run_side(&sides[s], 1, &ignored);
                        if (r < 0)
                                return r;
                }
        for (unsigned i = 0; i < runs; i++) {
                for (size_t s = 0; s < n; s++)
                        ret[s][i] = 0;
                for (unsigned j = 0; j < BENCH_SLICES; j++) {
                        unsigned k = calls / BENCH_SLICES + (j < calls % BENCH_SLICES);

                        for (size_t t = 0; t < n; t++) {
                                size_t s = j % 2 == 0 ? t : n - 1 - t;
                                r = run_side(&sides[s], k, &ret[s][i]);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        return 0;
}

int bench_compare(const bench_side *a, const bench_side *b, unsigned calls, unsigned warmup, unsigned runs,
                  uint64_t *ret_a, uint64_t *ret_b) {
        const bench_side sides[2] = { *a, *b };
        uint64_t t[2][BENCH_RUNS_MAX];
        int r = bench_compare_n(sides, 2, calls, warmup, runs, t);

        if (r < 0)
                return r;
        memcpy(ret_a, t[0], runs * sizeof t[0][0]);
        memcpy(ret_b, t[1], runs * sizeof t[1][0]);
        return 0;
}

bench_ratio bench_ratio_of(unsigned calls, const uint64_t *ta, const uint64_t *tb, unsigned runs) {
        uint64_t ma = bench_median_of_runs(ta, runs), mb = bench_median_of_runs(tb, runs);

        return (bench_ratio) { calls / (ma / 1e9), calls / (mb / 1e9), (double) ma / (double) mb };
}

void bench_print_rates(double amount, int decimals, const uint64_t *t, unsigned runs) {
        for (unsigned i = 0; i < runs; i++)
                printf(" %.*f", decimals, amount / (t[i] / 1e9));
}

static void print_runs(const char *a, const char *b, double amount, int decimals, const uint64_t *ta,
                       const uint64_t *tb, unsigned runs) {
        printf("  (runs: %s", a);
        bench_print_rates(amount, decimals, ta, runs);
        printf("; %s", b);
        bench_print_rates(amount, decimals, tb, runs);
        printf(")\n");
}

void bench_print_runs(const char *a, const char *b, unsigned calls, const uint64_t *ta, const uint64_t *tb,
                      unsigned runs) {
        print_runs(a, b, calls, 0, ta, tb, runs);
}

int bench_compare_passes(bench_pass_fn pass, void *userdata, unsigned runs, uint64_t ret[2][BENCH_RUNS_MAX]) {
        uint64_t ignored = 0;
        int r = pass(userdata, 0, &ignored);

        if (r >= 0)
                r = pass(userdata, 1, &ignored);
        for (unsigned i = 0; r >= 0 && i < 2 * runs; i++) {
                unsigned side = bench_abba(i);

                ret[side][i / 2] = 0;
                r = pass(userdata, side, &ret[side][i / 2]);
        }
        return r;
}

void bench_print_mib_runs(const char *a, const char *b, double mib, uint64_t t[2][BENCH_RUNS_MAX], unsigned runs) {
        print_runs(a, b, mib, 1, t[0], t[1], runs);
}

/* --- what /proc says ----------------------------------------------------------- */

static int count_entries(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

int bench_count_fds(void) {
        int n = count_entries("/proc/self/fd");

        return n < 0 ? n : n - 1; /* the directory's own fd */
}

static long bench_status_field(const char *text, const char *key) {
        const char *p = strstr(text, key);

        return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

long bench_own_rss(const bench_proc_sample *s) {
        return s->anon_kib + s->file_kib;
}

/* Up to size - 1 bytes of a /proc file, NUL-terminated; its length or -errno. */
ssize_t bench_read_text(const char *path, char *text, size_t size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = read(fd, text, size - 1);
        close(fd);
        if (n <= 0)
                return -EIO;
        text[n] = '\0';
        return n;
}

int bench_proc_sample_read(pid_t pid, bench_proc_sample *ret) {
        char path[64], text[8192];

        snprintf(path, sizeof path, "/proc/%d/fd", (int) pid);
        ret->fds = count_entries(path);
        if (ret->fds < 0)
                return ret->fds;
        snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
        if (bench_read_text(path, text, sizeof text) < 0)
                return -EIO;
        ret->rss_kib = bench_status_field(text, "VmRSS:");
        ret->anon_kib = bench_status_field(text, "RssAnon:");
        ret->file_kib = bench_status_field(text, "RssFile:");
        ret->shmem_kib = bench_status_field(text, "RssShmem:");
        return 0;
}

uint64_t bench_proc_cpu_usec(pid_t pid) {
        unsigned long long utime = 0, stime = 0;
        char path[64], text[1024], *p;

        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        if (bench_read_text(path, text, sizeof text) < 0)
                return 0;
        /* After the command in parentheses: state is field 3, utime 14. */
        p = strrchr(text, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
                return 0;
        return (utime + stime) * 1000000ULL / (unsigned long long) sysconf(_SC_CLK_TCK);
}

uint64_t bench_proc_sched_nsec(pid_t pid) {
        char path[64], entry[128], text[128];
        unsigned long long ns;
        struct dirent *de;
        uint64_t sum = 0;
        DIR *d;

        snprintf(path, sizeof path, "/proc/%d/task", (int) pid);
        d = opendir(path);
        while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                snprintf(entry, sizeof entry, "%s/%.32s/schedstat", path, de->d_name);
                if (bench_read_text(entry, text, sizeof text) > 0 && sscanf(text, "%llu", &ns) == 1)
                        sum += ns;
        }
        if (d)
                closedir(d);
        return sum;
}

/* --- D-Bus clients -------------------------------------------------------------- */

int bench_open_system(sd_bus **ret) {
        int r = sd_bus_open_system(ret);

        if (r < 0)
                fprintf(stderr, "%s: cannot connect to the system bus: %s\n", PROGRAM, strerror(-r));
        return r;
}

static int connect_address(const char *address, bool bus_client, sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0 && bus_client)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_negotiate_fds(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

int bench_p2p_connect(const char *path, sd_bus **ret) {
        char *address = NULL;
        int r;

        if (asprintf(&address, "unix:path=%s", path) < 0)
                return -ENOMEM;
        r = connect_address(address, false, ret);
        free(address);
        if (r < 0)
                fprintf(stderr, "%s: cannot connect to %s: %s\n", PROGRAM, path, strerror(-r));
        return r;
}

int bench_bus_connect(const char *address, sd_bus **ret) {
        return connect_address(address, true, ret);
}

char *bench_endpoint_path(const char *name) {
        char *path = NULL;

        return sd_bus_path_encode(VMSIG_BUS_ENDPOINT_PREFIX, name, &path) < 0 ? NULL : path;
}

int bench_drain(sd_bus *bus) {
        uint64_t n = 0;
        int r;

        while ((r = sd_bus_get_n_queued_read(bus, &n)) >= 0 && n > 0) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return r;
        }
        return r < 0 ? r : 0;
}

int bench_process_all(sd_bus *bus) {
        int r;

        while ((r = sd_bus_process(bus, NULL)) > 0)
                ;
        return r;
}

int bench_run_until(sd_bus *bus, uint64_t deadline, const bool *flag) {
        uint64_t now;
        int r;

        while ((!flag || !*flag) && (now = bench_now_nsec()) < deadline) {
                r = bench_process_all(bus);
                if (r >= 0 && (!flag || !*flag))
                        r = sd_bus_wait(bus, (deadline - now) / NSEC_PER_USEC + 1);
                if (r < 0)
                        return r;
        }
        return bench_process_all(bus);
}

int bench_wait_name(sd_bus *bus, const char *name, double timeout) {
        uint64_t deadline = bench_now_nsec() + (uint64_t) (timeout * 1e9);

        for (;;) {
                sd_bus_message *reply = NULL;
                int has = 0, r;

                r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "NameHasOwner", NULL, &reply, "s", name);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "b", &has);
                sd_bus_message_unref(reply);
                if (r < 0)
                        return r;
                if (has)
                        return 0;
                if (bench_now_nsec() > deadline)
                        return -ETIMEDOUT;
                nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
}

int bench_name_pid(sd_bus *bus, const char *name, pid_t *ret) {
        sd_bus_message *reply = NULL;
        uint32_t pid = 0;
        int r;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetConnectionUnixProcessID", NULL, &reply, "s", name);
        if (r >= 0)
                r = sd_bus_message_read(reply, "u", &pid);
        sd_bus_message_unref(reply);
        if (r >= 0)
                *ret = (pid_t) pid;
        return r;
}

int bench_call(sd_bus *bus, sd_bus_message *m, sd_bus_message **ret_reply) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_call(bus, m, 0, &error, ret_reply);

        if (r < 0)
                fprintf(stderr, "%s: %s %s.%s on %s: %s\n", PROGRAM, sd_bus_message_get_destination(m) ?: "(peer)",
                        sd_bus_message_get_interface(m), sd_bus_message_get_member(m), sd_bus_message_get_path(m),
                        error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        return r;
}

int bench_call_write(sd_bus *bus, sd_bus_message *m, int r) {
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 0);
        if (r >= 0)
                r = bench_call(bus, m, NULL);
        sd_bus_message_unref(m);
        return r;
}

int bench_callf(sd_bus *bus, const char *destination, const char *path, const char *interface, const char *member,
                sd_bus_message **ret_reply, const char *types, ...) {
        sd_bus_message *m = NULL;
        va_list ap;
        int r = sd_bus_message_new_method_call(bus, &m, destination, path, interface, member);

        if (r >= 0 && types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r >= 0)
                r = bench_call(bus, m, ret_reply);
        sd_bus_message_unref(m);
        return r;
}

int bench_get_trivial(sd_bus *bus, const char *path, const char *property, char type, void *ret) {
        sd_bus_message *reply = NULL;
        char signature[2] = { type };
        int r = bench_callf(bus, VMSIG_BUS_NAME, path, BENCH_PROPERTIES_INTERFACE, "Get", &reply, "ss",
                            VMSIG_BUS_ENDPOINT_INTERFACE, property);

        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'v', signature);
        if (r >= 0)
                r = sd_bus_message_read_basic(reply, type, ret);
        sd_bus_message_unref(reply);
        return r;
}

int bench_call_method_string(sd_bus *bus, const bench_method *t, char **ret) {
        sd_bus_message *m = NULL, *reply = NULL;
        const char *s = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, t->destination, t->path, t->interface, t->member);
        if (r >= 0 && t->arg1)
                r = t->arg2 ? sd_bus_message_append(m, "ss", t->arg1, t->arg2) : sd_bus_message_append(m, "s", t->arg1);
        if (r >= 0)
                r = bench_call(bus, m, &reply);
        if (r >= 0 && t->reply_type == 'v')
                r = sd_bus_message_read(reply, "v", "s", &s);
        else if (r >= 0 && t->reply_type)
                r = sd_bus_message_read_basic(reply, t->reply_type, &s);
        if (r >= 0 && ret)
                r = (*ret = strdup(s ? s : "")) ? 0 : -ENOMEM;
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        return r;
}

int bench_call_method(sd_bus *bus, const void *userdata) {
        return bench_call_method_string(bus, userdata, NULL);
}

int bench_acquire_lease(sd_bus *bus, const char *endpoint_path, const char *class, int *ret_fd, char **ret_path) {
        sd_bus_message *reply = NULL;
        const char *lease = NULL;
        int fd = -1, r;

        r = bench_callf(bus, VMSIG_BUS_NAME, endpoint_path, VMSIG_BUS_ENDPOINT_INTERFACE, "AcquireLease", &reply,
                        "sa{sv}", class, 0);
        if (r >= 0)
                r = sd_bus_message_read(reply, "oh", &lease, &fd);
        if (r >= 0)
                r = (*ret_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0 ? -errno : 0;
        if (r >= 0 && ret_path)
                r = (*ret_path = strdup(lease)) ? 0 : -ENOMEM;
        sd_bus_message_unref(reply);
        return r;
}

int bench_lease_acquire(sd_bus *bus, const char *endpoint_path, const char *class, bench_lease *ret) {
        *ret = (bench_lease) { .fd = -1 };
        return bench_acquire_lease(bus, endpoint_path, class, &ret->fd, &ret->path);
}

void bench_lease_release(sd_bus *bus, bench_lease *l) {
        if (l->path)
                (void) sd_bus_call_method(bus, VMSIG_BUS_NAME, l->path, VMSIG_BUS_LEASE_INTERFACE, "Release", NULL,
                                          NULL, NULL);
        if (l->fd >= 0)
                close(l->fd);
        free(l->path);
        *l = (bench_lease) { .fd = -1 };
}

uint64_t bench_batch_offset(uint64_t k, size_t size, uint64_t ram) {
        return k * size % (ram / size * size);
}

int bench_append_entry(sd_bus_message *m, uint64_t gpa, const void *data, size_t size) {
        int r = sd_bus_message_open_container(m, 'r', "tay");

        if (r >= 0)
                r = sd_bus_message_append(m, "t", gpa);
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', data, size);
        return r < 0 ? r : sd_bus_message_close_container(m);
}

int bench_append_batch(sd_bus_message *m, const uint8_t *data, unsigned n, size_t size, uint64_t ram, uint64_t *k) {
        int r = sd_bus_message_open_container(m, 'a', "(tay)");

        for (unsigned i = 0; r >= 0 && i < n; i++, (*k)++)
                r = bench_append_entry(m, bench_batch_offset(*k, size, ram), data + (size_t) i * size, size);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

int bench_call_batch(sd_bus *bus, const bench_method *t, const uint8_t *data, unsigned n, size_t size, uint64_t ram,
                     uint64_t *k) {
        sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, t->destination, t->path, t->interface, t->member);
        if (r >= 0)
                r = bench_append_batch(m, data, n, size, ram, k);
        return bench_call_write(bus, m, r);
}

/* --- processes and files ---------------------------------------------------------- */

int bench_write_file(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        size_t len = strlen(text);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = write(fd, text, len);
        if (close(fd) < 0 || n != (ssize_t) len)
                return n < 0 ? -errno : -EIO;
        return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

static void bench_remove_tree(const char *dir) {
        (void) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* SIGTERM, then SIGKILL after 10 s; the wait status, or -1. */
static int bench_stop_process(pid_t pid) {
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

pid_t bench_spawn(const char *log, char *const argv[], int keep_fd, const char *bus_address) {
        pid_t parent = getpid(), pid = fork();

        if (pid != 0)
                return pid;
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
                _exit(127);
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || (log && dup2(fd, STDERR_FILENO) < 0))
                _exit(127);
        if (keep_fd == 3 ? fcntl(3, F_SETFD, 0) < 0 : keep_fd >= 0 && dup2(keep_fd, 3) < 0)
                _exit(127);
        if (bus_address && setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_address, 1) < 0)
                _exit(127);
        execvp(argv[0], argv);
        fprintf(stderr, "%s: cannot run %s: %s\n", PROGRAM, argv[0], strerror(errno));
        _exit(127);
}

/* The last lines of a vmsigd log other than audit records, on stderr. */
static void bench_print_log_tail(const char *path, const char *who, unsigned lines) {
        char line[1024], *ring[64] = {};
        unsigned n = 0;
        FILE *f = fopen(path, "re");

        lines = lines < BENCH_ELEMENTS(ring) ? lines : BENCH_ELEMENTS(ring);
        while (f && fgets(line, sizeof line, f))
                if (strncmp(line, "vmsig-audit: ", 13) != 0) {
                        free(ring[n % lines]);
                        ring[n++ % lines] = strdup(line);
                }
        if (f)
                fclose(f);
        fprintf(stderr, "%s: %s logged %u lines besides audit records%s\n", PROGRAM, who, n,
                n > lines ? ", the last ones:" : ":");
        for (unsigned i = n > lines ? n - lines : 0; i < n; i++)
                fprintf(stderr, "  %s", ring[i % lines] ? ring[i % lines] : "?\n");
        for (unsigned i = 0; i < lines; i++)
                free(ring[i]);
}

const char *bench_tmpdir(void) {
        const char *tmp = getenv("TMPDIR");

        /* Unix socket paths (the bus, QMP sockets) must fit in 108 bytes: a
         * long $TMPDIR, as in a package build, gives way. */
        return tmp && *tmp && strlen(tmp) <= 60 ? tmp : "/tmp";
}

/* --- a private system bus and a vmsigd on it ---------------------------------------- */

/* The default-deny system policy of tests/system-bus-policy.conf, our policy file,
 * the echo service with the same kind of holes as org.vmsig, and
 * polkitd's own policy; dbus-daemon's built-in limits. */
static const char bus_config_format[] =
        BUS_CONFIG_HEAD
        "  <policy user=\"root\">\n"
        "    <allow own=\"" BENCH_ECHO_NAME "\"/>\n"
        "    <allow send_destination=\"" BENCH_ECHO_NAME "\"/>\n"
        "    <allow receive_sender=\"" BENCH_ECHO_NAME "\"/>\n"
        "  </policy>\n"
        "  <policy context=\"default\">\n"
        "    <allow send_destination=\"" BENCH_ECHO_NAME "\" send_interface=\"" BENCH_ECHO_INTERFACE "\"/>\n"
        "    <allow receive_sender=\"" BENCH_ECHO_NAME "\"/>\n"
        "  </policy>\n"
        "  <include>%s/data/org.vmsig.conf</include>\n"
        "  <include ignore_missing=\"yes\">/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf</include>\n"
        BUS_CONFIG_TAIL;

char *bench_bus_config(const char *dir, const char *srcdir) {
        char *text = NULL, socket_path[256];

        snprintf(socket_path, sizeof socket_path, "%s/system_bus_socket", dir);
        return asprintf(&text, bus_config_format, socket_path, srcdir, srcdir) < 0 ? NULL : text;
}

int bench_services_prepare(bench_services *s, const char *label, const char *parent, bool discovery) {
        char path[192];

        *s = (bench_services) { .label = label, .bus_pid = -1, .vmsigd_pid = -1 };
        snprintf(s->dir, sizeof s->dir, "%s/vmsig-bench.XXXXXX", parent ? parent : bench_tmpdir());
        if (!mkdtemp(s->dir)) {
                s->dir[0] = '\0';
                return -errno;
        }
        snprintf(path, sizeof path, "%s/vms.d", s->dir);
        return discovery && mkdir(path, 0700) < 0 ? -errno : 0;
}

/* dbus-daemon tells its address on fd 3 once it listens. */
static int start_bus(bench_services *s, const char *srcdir, const char *dbus_daemon) {
        char path[256], conf[256], buf[512] = "", *text = bench_bus_config(s->dir, srcdir);
        int fd, r;

        if (!text)
                return -ENOMEM;
        snprintf(path, sizeof path, "%s/bus.conf", s->dir);
        r = bench_write_file(path, text);
        free(text);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "%s/bus.address", s->dir);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        snprintf(conf, sizeof conf, "--config-file=%s/bus.conf", s->dir);
        snprintf(path, sizeof path, "%s/dbus-daemon.log", s->dir);
        char *argv[] = { (char *) dbus_daemon, conf, "--nofork", "--print-address=3", NULL };
        s->bus_pid = bench_spawn(path, argv, fd, NULL);
        r = -ETIMEDOUT;
        for (int i = 0; i < 200 && s->bus_pid > 0; i++) {
                ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
                if (n > 0 && buf[n - 1] == '\n') {
                        r = 0;
                        break;
                }
                usleep(25000);
        }
        close(fd);
        if (r < 0)
                fprintf(stderr, "%s: %s did not start; see %s\n", PROGRAM, dbus_daemon, path);
        snprintf(s->address, sizeof s->address, "unix:path=%s/system_bus_socket", s->dir);
        return r;
}

int bench_services_start(bench_services *s, const char *srcdir, const char *dbus_daemon, const char *vmsigd) {
        char conf[256], log[256];
        int r;

        r = start_bus(s, srcdir, dbus_daemon);
        if (r < 0)
                return r;
        snprintf(conf, sizeof conf, "--config=%s/vmsigd.conf", s->dir);
        snprintf(log, sizeof log, "%s/vmsigd.log", s->dir);
        /* No private socket: everything goes through the bus. */
        char *argv[] = { (char *) vmsigd, conf, "--private-socket=", NULL };
        s->vmsigd_pid = bench_spawn(log, argv, -1, s->address);
        if (s->vmsigd_pid < 0)
                return -errno;
        r = bench_bus_connect(s->address, &s->bus);
        for (int i = 0; r >= 0 && i < 400; i++) {
                r = sd_bus_call_method(s->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "GetNameOwner", NULL, NULL, "s", VMSIG_BUS_NAME);
                if (r >= 0 || !bench_services_alive(s))
                        break;
                r = 0;
                usleep(25000);
        }
        if (r < 0) {
                fprintf(stderr, "%s: %svmsigd did not take %s: %s\n", PROGRAM, s->label, VMSIG_BUS_NAME, strerror(-r));
                bench_services_print_log(s, 30);
        }
        return r;
}

bool bench_services_alive(bench_services *s) {
        int status;

        if (s->vmsigd_pid <= 0)
                return false;
        if (waitpid(s->vmsigd_pid, &status, WNOHANG) == s->vmsigd_pid) {
                fprintf(stderr, "%s: %svmsigd exited (%s %d)\n", PROGRAM, s->label,
                        WIFSIGNALED(status) ? "signal" : "status",
                        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                s->vmsigd_pid = -1;
                return false;
        }
        return true;
}

int bench_services_stop(bench_services *s, bool keep) {
        int status, r = 0;

        s->bus = sd_bus_flush_close_unref(s->bus);
        if (s->vmsigd_pid > 0) {
                status = bench_stop_process(s->vmsigd_pid);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                        fprintf(stderr, "%s: %svmsigd did not exit cleanly on SIGTERM (wait status %d)\n", PROGRAM,
                                s->label, status);
                        bench_services_print_log(s, 20);
                        r = -EIO;
                }
        }
        s->vmsigd_pid = -1;
        (void) bench_stop_process(s->bus_pid);
        s->bus_pid = -1;
        if (s->dir[0] && !keep)
                bench_remove_tree(s->dir);
        else if (s->dir[0])
                printf("  kept %s\n", s->dir);
        s->dir[0] = '\0';
        return r;
}

void bench_services_print_log(const bench_services *s, unsigned lines) {
        char path[256], who[64];

        snprintf(path, sizeof path, "%s/vmsigd.log", s->dir);
        snprintf(who, sizeof who, "%svmsigd", s->label);
        bench_print_log_tail(path, who, lines);
}

/* --- a blocking QMP client, and QEMU ------------------------------------------------- */

/* The next line QEMU sent, without its "\r\n", in q->line. */
static int qmp_read_line(bench_qmp *q, char **ret) {
        for (;;) {
                char *nl = memchr(q->buf, '\n', q->len);
                if (nl) {
                        size_t n = (size_t) (nl - q->buf);
                        memcpy(q->line, q->buf, n);
                        q->line[n] = '\0';
                        if (n > 0 && q->line[n - 1] == '\r')
                                q->line[n - 1] = '\0';
                        memmove(q->buf, nl + 1, q->len - n - 1);
                        q->len -= n + 1;
                        *ret = q->line;
                        return 0;
                }
                if (q->len >= sizeof q->buf)
                        return -E2BIG;
                struct pollfd p = { .fd = q->fd, .events = POLLIN };
                int r = poll(&p, 1, QMP_TIMEOUT_MSEC);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return r < 0 ? -errno : -ETIMEDOUT;
                ssize_t n = read(q->fd, q->buf + q->len, sizeof q->buf - q->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -ECONNRESET;
                q->len += (size_t) n;
        }
}

int bench_qmp_send(bench_qmp *q, const char *command, const char *arguments) {
        char text[4096];
        const char *s = text;
        int n = snprintf(text, sizeof text, "{\"execute\":\"%s\",\"id\":%" PRIu64 "%s%s}\n", command, q->next_id,
                         arguments ? ",\"arguments\":" : "", arguments ? arguments : "");

        if (n < 0 || (size_t) n >= sizeof text)
                return -E2BIG;
        q->next_id++;
        for (size_t len = (size_t) n; len > 0;) {
                ssize_t k = send(q->fd, s, len, MSG_NOSIGNAL);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                s += k;
                len -= (size_t) k;
        }
        return 0;
}

int bench_qmp_wait_reply(bench_qmp *q, char **ret_line) {
        char *line, *id;
        int r;

        for (;;) {
                r = qmp_read_line(q, &line);
                if (r < 0)
                        return r;
                if (strstr(line, "\"event\":")) {
                        q->events++;
                        continue;
                }
                if (strstr(line, "\"QMP\":"))
                        continue; /* the greeting */
                id = strstr(line, "\"id\":");
                if (!id || strtoull(id + 5, NULL, 10) != q->next_reply) {
                        fprintf(stderr, "%s: unexpected QMP message (waiting for id %" PRIu64 "): %s\n", PROGRAM,
                                q->next_reply, line);
                        return -EPROTO;
                }
                q->next_reply++;
                if (!strstr(line, "\"return\":")) {
                        fprintf(stderr, "%s: QEMU refused a command: %s\n", PROGRAM, line);
                        return -EIO;
                }
                if (ret_line)
                        *ret_line = line;
                return 0;
        }
}

int bench_qmp_execute(bench_qmp *q, const char *command, const char *arguments, char **ret_line) {
        int r = bench_qmp_send(q, command, arguments);

        return r < 0 ? r : bench_qmp_wait_reply(q, ret_line);
}

bench_qmp *bench_qmp_close(bench_qmp *q) {
        if (q && q->fd >= 0)
                close(q->fd);
        free(q);
        return NULL;
}

int bench_qmp_open(const char *path, bench_qmp **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        bench_qmp *q = calloc(1, sizeof *q);
        char *line;
        int r;

        if (!q)
                return -ENOMEM;
        *q = (bench_qmp) { .fd = -1, .next_id = 1, .next_reply = 1 };
        if (strlen(path) >= sizeof sa.sun_path) {
                bench_qmp_close(q);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        r = q->fd < 0 || connect(q->fd, (struct sockaddr *) &sa, sizeof sa) < 0 ? -errno : 0;
        if (r >= 0)
                r = qmp_read_line(q, &line);
        if (r >= 0 && !strstr(line, "\"QMP\":"))
                r = -EPROTO;
        if (r >= 0)
                r = bench_qmp_execute(q, "qmp_capabilities", NULL, NULL);
        if (r < 0) {
                bench_qmp_close(q);
                return r;
        }
        *ret = q;
        return 0;
}

static bool bench_is_socket(const char *path) {
        struct stat st;

        return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int qemu_dir(bench_qemu *q, const char *dir) {
        if (dir) {
                snprintf(q->dir, sizeof q->dir, "%s", dir);
                if (mkdir(q->dir, 0700) == 0)
                        q->own_dir = true;
                else if (errno != EEXIST)
                        return -errno;
                return 0;
        }
        snprintf(q->dir, sizeof q->dir, "%s/vmsig-bench-qemu.XXXXXX", bench_tmpdir());
        if (!mkdtemp(q->dir))
                return -errno;
        q->own_dir = true;
        return 0;
}

/* A NULL-ended argv of QEMU for spec, in argv[40], with its strings in s. */
static void qemu_argv(const bench_qemu *q, const bench_qemu_spec *spec, const char *argv[40], char s[5][256]) {
        size_t n = 0;

        snprintf(s[0], 256, "%" PRIu64 "M", spec->ram_mib);
        snprintf(s[1], 256, "memory-backend-file,id=ram0,size=%" PRIu64 "M,mem-path=%s,share=on", spec->ram_mib,
                 q->ram);
        snprintf(s[2], 256, "unix:%s,server=on,wait=off", q->vmsigd_sock);
        snprintf(s[3], 256, "unix:%s,server=on,wait=off", q->bench_sock);
        snprintf(s[4], 256, "file:%s", q->serial);
        argv[n++] = spec->binary;
#define ARG(...)                                                                                                       \
        do {                                                                                                           \
                const char *a_[] = { __VA_ARGS__ };                                                                    \
                for (size_t i_ = 0; i_ < BENCH_ELEMENTS(a_); i_++)                                                     \
                        argv[n++] = a_[i_];                                                                            \
        } while (0)
        ARG("-machine", "q35,accel=tcg", "-m", s[0]);
        if (spec->ram_file)
                ARG("-object", s[1], "-machine", "memory-backend=ram0");
        ARG("-qmp", s[2], "-qmp", s[3], "-display", "none", "-nodefaults", "-monitor", "none");
        ARG("-serial", spec->serial ? s[4] : "none", "-vga", spec->vga ? spec->vga : "none");
        if (spec->kernel)
                ARG("-kernel", spec->kernel);
        if (spec->initrd)
                ARG("-initrd", spec->initrd);
        if (spec->append)
                ARG("-append", spec->append);
        if (spec->no_reboot)
                ARG("-no-reboot");
        if (spec->paused)
                ARG("-S");
#undef ARG
        argv[n] = NULL;
}

int bench_qemu_start(bench_qemu *q, const bench_qemu_spec *spec) {
        const char *argv[40];
        char strings[5][256];
        uint64_t deadline;
        mode_t mask;
        int status, r;

        *q = (bench_qemu) {};
        r = qemu_dir(q, spec->dir);
        if (r < 0)
                return r;
        snprintf(q->ram, sizeof q->ram, "%s/ram", q->dir);
        snprintf(q->vmsigd_sock, sizeof q->vmsigd_sock, "%s/v.sock", q->dir);
        snprintf(q->bench_sock, sizeof q->bench_sock, "%s/b.sock", q->dir);
        snprintf(q->serial, sizeof q->serial, "%s/serial", q->dir);
        snprintf(q->log, sizeof q->log, "%s/qemu.log", q->dir);
        (void) unlink(q->vmsigd_sock);
        (void) unlink(q->bench_sock);
        qemu_argv(q, spec, argv, strings);
        /* The guest's RAM is nobody else's business. */
        mask = umask(077);
        q->pid = bench_spawn(q->log, (char *const *) argv, -1, NULL);
        umask(mask);
        if (q->pid < 0)
                return -errno;
        deadline = bench_now_nsec() + (uint64_t) QMP_TIMEOUT_MSEC * NSEC_PER_MSEC;
        while (!bench_is_socket(q->vmsigd_sock) || !bench_is_socket(q->bench_sock)) {
                if (waitpid(q->pid, &status, WNOHANG) == q->pid) {
                        q->pid = 0;
                        fprintf(stderr, "%s: QEMU exited at start (wait status %d); see %s\n", PROGRAM, status, q->log);
                        return -ECHILD;
                }
                if (bench_now_nsec() > deadline)
                        return -ETIMEDOUT;
                usleep(5000);
        }
        return 0;
}

void bench_qemu_stop(bench_qemu *q) {
        if (q->pid > 0) {
                (void) kill(q->pid, SIGKILL);
                while (waitpid(q->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        q->pid = 0;
        if (q->dir[0] && q->own_dir)
                bench_remove_tree(q->dir);
        else if (q->dir[0]) {
                (void) unlink(q->ram);
                (void) unlink(q->vmsigd_sock);
                (void) unlink(q->bench_sock);
                (void) unlink(q->serial);
                (void) unlink(q->log);
        }
        q->dir[0] = '\0';
}
