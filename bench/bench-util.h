/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small helpers shared by the bench programs: a monotonic clock, medians,
 * an fd count, what /proc says about another process (vmsigd), the
 * private-socket (peer-to-peer) client connection, a way to drop
 * unsolicited messages a client never asked to dispatch, and the body of
 * a MemWriteBatch.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#define BENCH_RUNS_MAX 15

static inline uint64_t bench_now_nsec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static inline int bench_compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* The median of n values, n > 0; sorts v in place. */
static inline uint64_t bench_median(uint64_t *v, size_t n) {
        qsort(v, n, sizeof v[0], bench_compare_u64);
        return v[n / 2];
}

/* The p-th percentile (nearest rank: the smallest value that at least p %
 * of the values do not exceed) of n sorted values, n > 0. */
static inline uint64_t bench_percentile(const uint64_t *sorted, size_t n, unsigned p) {
        size_t rank = (n * p + 99) / 100;

        return sorted[rank > 0 ? rank - 1 : 0];
}

/* The median of n values without reordering them (n <= BENCH_RUNS_MAX). */
static inline uint64_t bench_median_of_runs(const uint64_t *v, size_t n) {
        uint64_t copy[BENCH_RUNS_MAX];

        memcpy(copy, v, n * sizeof v[0]);
        return bench_median(copy, n);
}

/* How many fds this process has open, or -errno. */
static inline int bench_count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory's own fd */
}

/* What /proc says about another process: its open fds and its resident
 * memory by kind (RssShmem holds the guest RAM vmsigd maps, which is the
 * guests' memory rather than the daemon's). */
typedef struct bench_proc_sample {
        int fds;
        long rss_kib, anon_kib, file_kib, shmem_kib;
} bench_proc_sample;

static inline long bench_status_field(const char *text, const char *key) {
        const char *p = strstr(text, key);
        return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static inline int bench_proc_sample_read(pid_t pid, bench_proc_sample *ret) {
        char path[64], text[8192];
        struct dirent *de;
        ssize_t n;
        DIR *d;
        int fd;

        snprintf(path, sizeof path, "/proc/%d/fd", (int) pid);
        d = opendir(path);
        if (!d)
                return -errno;
        ret->fds = 0;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        ret->fds++;
        closedir(d);
        snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, text, sizeof text - 1);
        close(fd);
        if (n <= 0)
                return -EIO;
        text[n] = '\0';
        ret->rss_kib = bench_status_field(text, "VmRSS:");
        ret->anon_kib = bench_status_field(text, "RssAnon:");
        ret->file_kib = bench_status_field(text, "RssFile:");
        ret->shmem_kib = bench_status_field(text, "RssShmem:");
        return 0;
}

/* User + system CPU time of pid so far, in microseconds (clock-tick
 * resolution; 0 if unknown). */
static inline uint64_t bench_proc_cpu_usec(pid_t pid) {
        unsigned long long utime = 0, stime = 0;
        char path[64], text[1024], *p;
        ssize_t n;
        int fd;

        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        n = read(fd, text, sizeof text - 1);
        close(fd);
        if (n <= 0)
                return 0;
        text[n] = '\0';
        /* After the command in parentheses: state is field 3, utime 14. */
        p = strrchr(text, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
                return 0;
        return (utime + stime) * 1000000ULL / (unsigned long long) sysconf(_SC_CLK_TCK);
}

/* Time on a CPU of the live threads of a process, nsec, from the
 * scheduler's own accounting (/proc/PID/task/TID/schedstat): precise where
 * /proc/PID/stat counts clock ticks of 10 ms. */
static inline uint64_t bench_proc_sched_nsec(pid_t pid) {
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
                int fd = open(entry, O_RDONLY | O_CLOEXEC);
                ssize_t n = fd >= 0 ? read(fd, text, sizeof text - 1) : -1;
                if (fd >= 0)
                        close(fd);
                if (n <= 0)
                        continue;
                text[n] = '\0';
                if (sscanf(text, "%llu", &ns) == 1)
                        sum += ns;
        }
        if (d)
                closedir(d);
        return sum;
}

/* A MemWriteBatch body, a(tay): n entries of size bytes, entry i taken
 * from data + i * size. The entries go to a stream of size-byte slots
 * wrapped inside [0, ram): entry k of the stream at bench_batch_offset(k),
 * starting at *k, which moves on by n. */
static inline uint64_t bench_batch_offset(uint64_t k, size_t size, uint64_t ram) {
        return k * size % (ram / size * size);
}

static inline int bench_append_batch(sd_bus_message *m, const uint8_t *data, unsigned n, size_t size, uint64_t ram,
                                     uint64_t *k) {
        int r = sd_bus_message_open_container(m, 'a', "(tay)");

        for (unsigned i = 0; r >= 0 && i < n; i++, (*k)++) {
                r = sd_bus_message_open_container(m, 'r', "tay");
                if (r >= 0)
                        r = sd_bus_message_append(m, "t", bench_batch_offset(*k, size, ram));
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', data + (size_t) i * size, size);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* A client of vmsigd's private socket: no Hello, no bus, calls go out with
 * a NULL destination. */
static inline int bench_p2p_connect(const char *path, sd_bus **ret) {
        sd_bus *bus = NULL;
        char *address = NULL;
        int r;

        if (asprintf(&address, "unix:path=%s", path) < 0)
                return -ENOMEM;
        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_negotiate_fds(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        free(address);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

/* sd_bus_call() queues whatever else arrives while it waits (signals that
 * a peer-to-peer server sends to its only peer). Dispatch the queue, which
 * drops them, so that it does not grow; no syscall when it is empty. */
static inline int bench_drain(sd_bus *bus) {
        uint64_t n = 0;
        int r;

        while ((r = sd_bus_get_n_queued_read(bus, &n)) >= 0 && n > 0) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return r;
        }
        return r < 0 ? r : 0;
}

/* One method call with up to two string arguments and a string-like reply
 * ('s', 'o', or 'v' holding a string; 0: the reply is not read). */
typedef struct bench_method {
        const char *destination; /* NULL on a peer-to-peer connection */
        const char *path;
        const char *interface;
        const char *member;
        const char *arg1, *arg2; /* NULL: fewer arguments */
        char reply_type;
} bench_method;

static inline int bench_call_method_string(sd_bus *bus, const bench_method *t, char **ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        const char *s = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, t->destination, t->path, t->interface, t->member);
        if (r >= 0 && t->arg1)
                r = t->arg2 ? sd_bus_message_append(m, "ss", t->arg1, t->arg2) : sd_bus_message_append(m, "s", t->arg1);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r >= 0 && t->reply_type == 'v')
                r = sd_bus_message_read(reply, "v", "s", &s);
        else if (r >= 0 && t->reply_type)
                r = sd_bus_message_read_basic(reply, t->reply_type, &s);
        if (r < 0)
                fprintf(stderr, "bench: %s %s.%s on %s: %s\n", t->destination ? t->destination : "(peer)", t->interface,
                        t->member, t->path, error.message ? error.message : strerror(-r));
        else if (ret) {
                *ret = strdup(s ? s : "");
                if (!*ret)
                        r = -ENOMEM;
        }
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        return r;
}

static inline int bench_call_method(sd_bus *bus, const void *userdata) {
        return bench_call_method_string(bus, userdata, NULL);
}

/* One side of a comparison: what one iteration does, and on which bus. */
typedef int (*bench_call_fn)(sd_bus *bus, const void *userdata);

typedef struct bench_side {
        sd_bus *bus;
        bench_call_fn call;
        const void *userdata;
} bench_side;

#define BENCH_SLICES 100

static inline int bench_run_side(const bench_side *s, unsigned n, uint64_t *sum_nsec) {
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

/* Warm n sides up (warmup iterations each, in turn), then time runs runs
 * of calls iterations per side. Within a run every side runs in each of
 * BENCH_SLICES slices, in order in even slices and in reverse in odd ones
 * (ABBA..., ABCCBA...), so that drift on the machine (other work on the
 * CPUs) and any order effect hit all alike. ret[s][i]: the time of run i of
 * side s. */
static inline int bench_compare_n(const bench_side *sides, size_t n, unsigned calls, unsigned warmup, unsigned runs,
                                  uint64_t (*ret)[BENCH_RUNS_MAX]) {
        uint64_t ignored = 0;
        int r;

        for (unsigned i = 0; i < warmup; i++)
                for (size_t s = 0; s < n; s++) {
                        r = bench_run_side(&sides[s], 1, &ignored);
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
                                r = bench_run_side(&sides[s], k, &ret[s][i]);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        return 0;
}

/* bench_compare_n() of two sides. ret_a[i], ret_b[i]: the time of run i of
 * each side. */
static inline int bench_compare(const bench_side *a, const bench_side *b, unsigned calls, unsigned warmup,
                                unsigned runs, uint64_t *ret_a, uint64_t *ret_b) {
        const bench_side sides[2] = { *a, *b };
        uint64_t t[2][BENCH_RUNS_MAX];
        int r = bench_compare_n(sides, 2, calls, warmup, runs, t);

        if (r < 0)
                return r;
        memcpy(ret_a, t[0], runs * sizeof t[0][0]);
        memcpy(ret_b, t[1], runs * sizeof t[1][0]);
        return 0;
}

/* " 1234 1250 1190": the rate of each run, in calls per second. */
static inline void bench_print_rates(unsigned calls, const uint64_t *t, unsigned runs) {
        for (unsigned i = 0; i < runs; i++)
                printf(" %.0f", calls / (t[i] / 1e9));
}

/* Parse a positive number for an option, or exit. */
static inline unsigned bench_parse_unsigned(const char *name, const char *s, unsigned min, unsigned max) {
        char *end = NULL;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || !end || *end || end == s || v < min || v > max) {
                fprintf(stderr, "bench: --%s must be a number in %u..%u, not \"%s\"\n", name, min, max, s);
                exit(EXIT_FAILURE);
        }
        return (unsigned) v;
}
