/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the bench programs share: an option table, clocks and medians, the
 * ABBA comparison of two sides and its report, what /proc says about a
 * process, D-Bus clients (bus, private socket, one method call), a private
 * system bus with a vmsigd of its own, a blocking QMP client and a QEMU
 * to talk to. Lines starting with "@" in a program's output are for
 * bench/run.sh.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "bus-names.h"
#include "time-util.h"

#define BENCH_RUNS_MAX 15
#define BENCH_SLICES 100
#define BENCH_ELEMENTS(x) (sizeof(x) / sizeof((x)[0]))
#define NSEC_PER_MSEC UINT64_C(1000000)

#define BENCH_ECHO_NAME "org.vmsig.BenchEcho"
#define BENCH_ECHO_PATH "/org/vmsig/BenchEcho"
#define BENCH_ECHO_INTERFACE "org.vmsig.BenchEcho"
#define BENCH_PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"

/* --- options ------------------------------------------------------------------ */

typedef enum bench_option_kind {
        BENCH_OPT_FLAG,     /* bool, set by the option */
        BENCH_OPT_UNSIGNED, /* unsigned in [min, max] */
        BENCH_OPT_DOUBLE,   /* double */
        BENCH_OPT_STRING,   /* const char * */
        BENCH_OPT_DIR,      /* const char *, an existing directory made absolute (realpath()) */
        BENCH_OPT_LIST,     /* bench_list: the option may repeat, and take "a,b" */
} bench_option_kind;

typedef struct bench_list {
        const char *item[16];
        unsigned n;
} bench_list;

typedef struct bench_option {
        const char *name;
        bench_option_kind kind;
        void *value;
        unsigned min, max;
} bench_option;

#define BENCH_OPT_U(name, v, min, max)                                                                                 \
        { name, BENCH_OPT_UNSIGNED, v, min, max }
#define BENCH_OPT_S(name, v)                                                                                           \
        { name, BENCH_OPT_STRING, v, 0, 0 }
#define BENCH_OPT_DIRECTORY(name, v)                                                                                   \
        { name, BENCH_OPT_DIR, v, 0, 0 }
#define BENCH_OPT_D(name, v)                                                                                           \
        { name, BENCH_OPT_DOUBLE, v, 0, 0 }
#define BENCH_OPT_F(name, v)                                                                                           \
        { name, BENCH_OPT_FLAG, v, 0, 0 }
#define BENCH_OPT_L(name, v)                                                                                           \
        { name, BENCH_OPT_LIST, v, 0, 0 }
#define BENCH_OPT_CALLS(v) BENCH_OPT_U("calls", v, 1, 100000000)
#define BENCH_OPT_WARMUP(v) BENCH_OPT_U("warmup", v, 0, 100000000)
#define BENCH_OPT_RUNS(v) BENCH_OPT_U("runs", v, 1, BENCH_RUNS_MAX)

/* Parses argv by the table (ended by a { NULL } entry); --help prints usage
 * and exits 0, a bad option or value exits 1. */
void bench_parse_options(int argc, char *argv[], const bench_option *options, const char *usage);
/* dir made absolute, once, where the options are parsed: it is handed on
 * to children that resolve a relative path from elsewhere (dbus-daemon
 * takes an <includedir> relative to its configuration file). Exits 1,
 * naming what, if dir does not exist. */
const char *bench_absolute_dir(const char *what, const char *dir);
unsigned bench_parse_unsigned(const char *name, const char *s, unsigned min, unsigned max);
/* Whether name is in the list, or the list is empty (everything wanted). */
bool bench_list_wants(const bench_list *l, const char *name);

/* --- clocks, medians, the comparison ----------------------------------------- */

uint64_t bench_now_nsec(void);
/* CPU time of this process (all threads), usec. */
uint64_t bench_self_cpu_usec(void);
int bench_compare_u64(const void *a, const void *b);
/* The median of n values, n > 0; sorts v in place. */
uint64_t bench_median(uint64_t *v, size_t n);
/* The p-th percentile (nearest rank) of n sorted values, n > 0. */
uint64_t bench_percentile(const uint64_t *sorted, size_t n, unsigned p);
/* Which of two sides (0 or 1) goes at step i of an alternation ABBA ABBA...:
 * step i is the (i / 2)-th turn of that side. */
unsigned bench_abba(unsigned i);
/* The median of n <= BENCH_RUNS_MAX values, without reordering them. */
uint64_t bench_median_of_runs(const uint64_t *v, size_t n);
/* Median, p90 (nearest rank), min and max of n samples; sorts them. */
typedef struct bench_summary {
        uint64_t median, p90, p99, min, max;
} bench_summary;
bench_summary bench_summarize(uint64_t *v, size_t n);

/* A growing set of samples. */
typedef struct bench_samples {
        uint64_t *v;
        size_t n, size;
} bench_samples;
int bench_samples_add(bench_samples *s, uint64_t v);
/* The p-th percentile (nearest rank) of the samples, sorting them; 0 if none. */
uint64_t bench_samples_percentile(bench_samples *s, unsigned p);

/* One side of a comparison: what one iteration does, and on which bus. */
typedef int (*bench_call_fn)(sd_bus *bus, const void *userdata);

typedef struct bench_side {
        sd_bus *bus;
        bench_call_fn call;
        const void *userdata;
} bench_side;

/* Warm n sides up (warmup iterations each, in turn), then time runs runs
 * of calls iterations per side. Within a run every side runs in each of
 * BENCH_SLICES slices, in order in even slices and in reverse in odd ones
 * (ABBA..., ABCCBA...), so that drift on the machine and any order effect
 * hit all alike. ret[s][i]: the time of run i of side s. */
int bench_compare_n(const bench_side *sides, size_t n, unsigned calls, unsigned warmup, unsigned runs,
                    uint64_t (*ret)[BENCH_RUNS_MAX]);
int bench_compare(const bench_side *a, const bench_side *b, unsigned calls, unsigned warmup, unsigned runs,
                  uint64_t *ret_a, uint64_t *ret_b);

/* Two sides' medians: their rates (calls per second) and time a / time b. */
typedef struct bench_ratio {
        double a, b, ratio;
} bench_ratio;
bench_ratio bench_ratio_of(unsigned calls, const uint64_t *ta, const uint64_t *tb, unsigned runs);
/* " 1234 1250 1190": the rate of each run, amount per second, with so many
 * decimals. */
void bench_print_rates(double amount, int decimals, const uint64_t *t, unsigned runs);
/* "  (runs: A r r r; B r r r)\n", the rates in calls per second */
void bench_print_runs(const char *a, const char *b, unsigned calls, const uint64_t *ta, const uint64_t *tb,
                      unsigned runs);

/* Two sides of a throughput comparison by passes: pass(userdata, side,
 * sum) does one pass of side 0 or 1 and adds its time to *sum. One pass of
 * each to warm up, then runs runs of one pass of each, which goes first
 * alternating (ABBA); ret[side][i]: the time of run i. */
typedef int (*bench_pass_fn)(void *userdata, unsigned side, uint64_t *sum);
int bench_compare_passes(bench_pass_fn pass, void *userdata, unsigned runs, uint64_t ret[2][BENCH_RUNS_MAX]);
/* "  (runs: A r r r; B r r r)\n", the rates in MiB per second. */
void bench_print_mib_runs(const char *a, const char *b, double mib, uint64_t t[2][BENCH_RUNS_MAX], unsigned runs);

/* --- what /proc says ----------------------------------------------------------- */

/* How many fds this process has open, or -errno. */
int bench_count_fds(void);

/* Another process's open fds and resident memory by kind (RssShmem holds
 * the guest RAM vmsigd maps, the guests' memory rather than the daemon's). */
typedef struct bench_proc_sample {
        int fds;
        long rss_kib, anon_kib, file_kib, shmem_kib;
} bench_proc_sample;
int bench_proc_sample_read(pid_t pid, bench_proc_sample *ret);
/* Up to size - 1 bytes of a (/proc) file, NUL-terminated; its length or -errno. */
ssize_t bench_read_text(const char *path, char *text, size_t size);
/* Resident memory without guest RAM: RssAnon + RssFile. */
long bench_own_rss(const bench_proc_sample *s);
/* User + system CPU time of pid, usec (clock-tick resolution; 0 if unknown). */
uint64_t bench_proc_cpu_usec(pid_t pid);
/* Time on a CPU of the live threads of pid, nsec, from the scheduler's own
 * accounting (/proc/PID/task/TID/schedstat). */
uint64_t bench_proc_sched_nsec(pid_t pid);

/* --- D-Bus clients -------------------------------------------------------------- */

/* The system bus ($DBUS_SYSTEM_BUS_ADDRESS); says why not on stderr. */
int bench_open_system(sd_bus **ret);
/* A client of a peer-to-peer socket (vmsigd's private socket): no Hello,
 * calls go out with a NULL destination. Says why not on stderr. */
int bench_p2p_connect(const char *path, sd_bus **ret);
/* A bus client of address (not $DBUS_SYSTEM_BUS_ADDRESS). */
int bench_bus_connect(const char *address, sd_bus **ret);
/* /org/vmsig/endpoint/NAME */
char *bench_endpoint_path(const char *name);
/* Drops what sd_bus_call() queued while it waited (signals a p2p server
 * sends its only peer); no syscall when the queue is empty. */
int bench_drain(sd_bus *bus);
/* Processes whatever is queued or readable, without waiting. */
int bench_process_all(sd_bus *bus);
/* Runs the bus until deadline (bench_now_nsec()), or until *flag. */
int bench_run_until(sd_bus *bus, uint64_t deadline, const bool *flag);
/* Waits (20 ms steps) until name has an owner, or timeout seconds. */
int bench_wait_name(sd_bus *bus, const char *name, double timeout);
/* The unique name of name's owner's pid. */
int bench_name_pid(sd_bus *bus, const char *name, pid_t *ret);

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
int bench_call_method_string(sd_bus *bus, const bench_method *t, char **ret);
/* sd_bus_call(), the reply in *ret_reply if given; says on stderr which
 * call failed and why. */
int bench_call(sd_bus *bus, sd_bus_message *m, sd_bus_message **ret_reply);
/* The same for a write method (MemWrite, MemWriteBatch, EchoBatch) whose
 * arguments are in m but its options (empty): r is how building m went so
 * far. m is unreferenced. */
int bench_call_write(sd_bus *bus, sd_bus_message *m, int r);
/* The same for a call built from types and its arguments
 * (sd_bus_message_append()). */
int bench_callf(sd_bus *bus, const char *destination, const char *path, const char *interface, const char *member,
                sd_bus_message **ret_reply, const char *types, ...);
/* A property of a trivial type of vmsigd's endpoint at path; says why not
 * on stderr. */
int bench_get_trivial(sd_bus *bus, const char *path, const char *property, char type, void *ret);
int bench_call_method(sd_bus *bus, const void *userdata);

/* Endpoint.AcquireLease(class, {}); *ret_fd: a copy of its fd, *ret_path
 * (if given) the lease object. */
int bench_acquire_lease(sd_bus *bus, const char *endpoint_path, const char *class, int *ret_fd, char **ret_path);
/* A lease and a copy of its fd. Released with Release() first, then the
 * fd: closing first would end the lease asynchronously, and the next
 * AcquireLease could still find it held. A reset may have revoked it
 * already: errors of Release() are not reported. */
typedef struct bench_lease {
        char *path;
        int fd;
} bench_lease;
int bench_lease_acquire(sd_bus *bus, const char *endpoint_path, const char *class, bench_lease *ret);
void bench_lease_release(sd_bus *bus, bench_lease *l);

/* A MemWriteBatch body, a(tay): n entries of size bytes, entry i from
 * data + i * size, at the slots of a stream of size-byte writes wrapped
 * inside [0, ram): entry k at bench_batch_offset(k), starting at *k. */
uint64_t bench_batch_offset(uint64_t k, size_t size, uint64_t ram);
/* One (tay) entry of such a body. */
int bench_append_entry(sd_bus_message *m, uint64_t gpa, const void *data, size_t size);
int bench_append_batch(sd_bus_message *m, const uint8_t *data, unsigned n, size_t size, uint64_t ram, uint64_t *k);
/* One MemWriteBatch-shaped call (MemWriteBatch, EchoBatch) of such a body
 * and empty options; says what failed on stderr. */
int bench_call_batch(sd_bus *bus, const bench_method *t, const uint8_t *data, unsigned n, size_t size, uint64_t ram,
                     uint64_t *k);

/* --- processes and files ---------------------------------------------------------- */

int bench_write_file(const char *path, const char *text);
/* A child with stdout and stderr in log (NULL: /dev/null for stdout),
 * dying with us. keep_fd becomes its fd 3; bus_address its system bus. */
pid_t bench_spawn(const char *log, char *const argv[], int keep_fd, const char *bus_address);
/* $TMPDIR if it leaves room for unix socket paths, else /tmp. */
const char *bench_tmpdir(void);

/* --- a private system bus and a vmsigd on it ---------------------------------------- */

/* The configuration of a private system bus listening in dir, with
 * srcdir's policy file for org.vmsig. */
char *bench_bus_config(const char *dir, const char *srcdir);

typedef struct bench_services {
        const char *label; /* "" or "the measured ", for messages */
        char dir[128];     /* DIR/vmsigd.conf is the caller's to write */
        char address[192];
        pid_t bus_pid, vmsigd_pid;
        sd_bus *bus; /* a connection of the bench's own */
} bench_services;

/* A temporary directory in parent (NULL: bench_tmpdir()), and in it vms.d
 * with discovery. */
int bench_services_prepare(bench_services *s, const char *label, const char *parent, bool discovery);
/* dbus-daemon with the default-deny system policy and srcdir's policy file,
 * then vmsigd with DIR/vmsigd.conf and no private socket, until it owns
 * org.vmsig. */
int bench_services_start(bench_services *s, const char *srcdir, const char *dbus_daemon, const char *vmsigd);
bool bench_services_alive(bench_services *s);
/* Stops both; -EIO if vmsigd did not exit cleanly. keep: the directory stays. */
int bench_services_stop(bench_services *s, bool keep);
void bench_services_print_log(const bench_services *s, unsigned lines);

/* --- a blocking QMP client, and QEMU ------------------------------------------------- */

typedef struct bench_qmp {
        int fd;
        size_t len;
        uint64_t next_id, next_reply;
        unsigned long events; /* events read and dropped */
        char buf[1 << 17], line[1 << 17];
} bench_qmp;

int bench_qmp_open(const char *path, bench_qmp **ret);
bench_qmp *bench_qmp_close(bench_qmp *q);
/* Sends one command ({"execute":...,"id":N,"arguments":...} without
 * spaces); arguments is a JSON object text or NULL. */
int bench_qmp_send(bench_qmp *q, const char *command, const char *arguments);
/* The reply to the oldest command sent, dropping events on the way; the
 * line (valid until the next read) in *ret_line if asked. */
int bench_qmp_wait_reply(bench_qmp *q, char **ret_line);
int bench_qmp_execute(bench_qmp *q, const char *command, const char *arguments, char **ret_line);

typedef struct bench_qemu_spec {
        const char *binary, *dir; /* dir NULL: a new one in bench_tmpdir() */
        uint64_t ram_mib;
        bool ram_file;   /* the RAM in a file in dir, share=on */
        const char *vga; /* NULL: none */
        const char *kernel, *initrd, *append;
        bool serial, paused, no_reboot;
} bench_qemu_spec;

typedef struct bench_qemu {
        pid_t pid;
        bool own_dir;
        char dir[160], ram[192], vmsigd_sock[192], bench_sock[192], serial[192], log[192];
} bench_qemu;

/* QEMU under TCG (q35), its RAM file created under umask 077, one QMP
 * socket for vmsigd and one for the bench; returns once both listen. */
int bench_qemu_start(bench_qemu *q, const bench_qemu_spec *spec);
void bench_qemu_stop(bench_qemu *q);
