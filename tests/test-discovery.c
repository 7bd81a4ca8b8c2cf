/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM discovery on a real sd-event loop and a real inotify watch: trigger
 * files appearing (renamed in or written in place), changing and going
 * away, bad files reported as FILE:LINE and skipped, name clashes, the host
 * probe waiting for a slow QEMU and giving up, ignored names, a directory
 * that appears late, and no wakeups once idle. The "QEMU"
 * is a unix socket bound in a temporary directory plus a sparse RAM file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Before glib.h, whose MIN and MAX replace those of macro.h (it #undefs
 * them; the other way round would be a redefinition). */
#include "discovery.h"
#include "log.h"
/* Last: it brings GLib, whose MIN and MAX macro.h would redefine. */
#include "event-loop.h"
#include "log-capture.h"
#include "vt-util.h"

#include <glib.h>
#include <glib/gstdio.h>

#define RUN_TIMEOUT_MS 5000
#define TEST_PREFIX "/run/vmsig-test" /* replaced in tests/data/vms files */
#define RAM_SIZE (2u << 20)

typedef enum record_kind { REC_ATTACH, REC_DETACH } record_kind;

typedef struct record {
        record_kind kind;
        char *name;
        char *file;
        char *qmp_socket;
        char *ram_path;
        sd_id128_t uuid;
        vmsig_vm_origin origin;
        vmsig_gpa_range ranges[4];
        size_t n_ranges;
        uint64_t when; /* CLOCK_MONOTONIC usec */
} record;

typedef struct Fixture {
        VT_CORE_MEMBERS;
        vmsig_discovery *disc;
        char *tmp;     /* everything below lives here */
        char *trigger; /* the watched trigger directory */
        char *host;    /* QMP sockets and RAM files */
        GPtrArray *records;
        int attach_result; /* what the attach callback returns */
        GHashTable *attached; /* name -> 1: the daemon's view */
} Fixture;

static void record_free(void *p) {
        record *r = p;

        VT_FREE_MANY(r->name, r->file, r->qmp_socket, r->ram_path, r);
}

/* --- the daemon side ------------------------------------------------------ */

static int on_attach(const vmsig_vm_description *d, void *userdata) {
        Fixture *f = userdata;
        record *r = g_new0(record, 1);

        *r = (record) {
                .kind = REC_ATTACH,
                .name = g_strdup(d->name),
                .file = g_strdup(d->file),
                .qmp_socket = g_strdup(d->qmp_socket),
                .ram_path = g_strdup(d->ram_path),
                .uuid = d->uuid,
                .origin = d->origin,
                .n_ranges = MIN(d->n_ranges, G_N_ELEMENTS(r->ranges)),
                .when = vt_now_usec(),
        };
        if (r->n_ranges > 0)
                memcpy(r->ranges, d->ranges, r->n_ranges * sizeof(vmsig_gpa_range));
        g_ptr_array_add(f->records, r);
        if (f->attach_result < 0)
                return f->attach_result;
        /* A name is never attached twice at the same time. */
        g_assert_false(g_hash_table_contains(f->attached, d->name));
        g_hash_table_add(f->attached, g_strdup(d->name));
        return 0;
}

static void on_detach(const char *name, void *userdata) {
        Fixture *f = userdata;
        record *r = g_new0(record, 1);

        r->kind = REC_DETACH;
        r->name = g_strdup(name);
        r->when = vt_now_usec();
        g_ptr_array_add(f->records, r);
        /* Only what was attached is detached. */
        g_assert_true(g_hash_table_remove(f->attached, name));
}

static const vmsig_discovery_ops ops = { .attach = on_attach, .detach = on_detach };

static const record *rec_at(Fixture *f, guint i) {
        g_assert_cmpuint(i, <, f->records->len);
        return f->records->pdata[i];
}

static void assert_rec(Fixture *f, guint i, record_kind kind, const char *name) {
        const record *r = rec_at(f, i);

        g_assert_cmpint(r->kind, ==, kind);
        g_assert_cmpstr(r->name, ==, name);
}

/* --- fixture ---------------------------------------------------------------- */

static void fixture_setup(Fixture *f, gconstpointer data) {
        g_autoptr(GError) error = NULL;

        vt_core_start(&f->event, &f->core);
        f->tmp = g_dir_make_tmp("vmsig-discovery-XXXXXX", &error);
        g_assert_no_error(error);
        f->trigger = g_build_filename(f->tmp, "vms.d", NULL);
        f->host = g_build_filename(f->tmp, "host", NULL);
        g_assert_cmpint(g_mkdir(f->trigger, 0755), ==, 0);
        g_assert_cmpint(g_mkdir(f->host, 0755), ==, 0);
        f->records = g_ptr_array_new_with_free_func(record_free);
        f->attached = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
}

static void remove_tree(const char *path) {
        g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
        const char *name;

        while (dir && (name = g_dir_read_name(dir))) {
                g_autofree char *p = g_build_filename(path, name, NULL);
                if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
                        remove_tree(p);
                else
                        g_unlink(p);
        }
        g_rmdir(path);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        vmsig_discovery_free(f->disc);
        vt_core_stop(f->event, f->core);
        remove_tree(f->tmp);
        VT_FREE_MANY(f->tmp, f->trigger, f->host);
        g_ptr_array_unref(f->records);
        g_hash_table_unref(f->attached);
}

static void start(Fixture *f) {
        g_assert_cmpint(vmsig_discovery_new(f->core, f->trigger, &ops, f, &f->disc), ==, 0);
}

#define RUN_UNTIL(f, cond) VT_EVENT_RUN_UNTIL((f)->event, cond, RUN_TIMEOUT_MS * 1000u)

static void run_for(Fixture *f, unsigned ms) {
        vt_event_run_for(f->event, (uint64_t) ms * 1000);
}

/* Nothing armed, nothing ready: the loop sleeps through the whole timeout. */
static void assert_idle(Fixture *f) {
        vmsig_discovery_stats st;

        while (sd_event_run(f->event, 0) > 0)
                ;
        vmsig_discovery_get_stats(f->disc, &st);
        g_assert_cmpuint(st.probing, ==, 0);
        g_assert_cmpint(sd_event_run(f->event, 200 * 1000), ==, 0);
}

/* --- fake QEMU ---------------------------------------------------------------- */

static char *host_path(Fixture *f, const char *name, const char *suffix) {
        return g_strdup_printf("%s/%s.%s", f->host, name, suffix);
}

/* A listening QEMU leaves a socket inode behind; bind() alone makes one. */
static void make_socket(Fixture *f, const char *name) {
        g_autofree char *path = host_path(f, name, "qmp");

        close(vt_unix_socket(path, FALSE));
}

static void make_ram(Fixture *f, const char *name) {
        g_autofree char *path = host_path(f, name, "ram");
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(ftruncate(fd, RAM_SIZE), ==, 0);
        close(fd);
}

static void make_qemu(Fixture *f, const char *name) {
        make_socket(f, name);
        make_ram(f, name);
}

/* --- trigger files --------------------------------------------------------------- */

static char *vm_xml(Fixture *f, const char *name, const char *uuid, const char *extra) {
        g_autofree char *qmp = host_path(f, name, "qmp"), *ram = host_path(f, name, "ram");

        return g_strdup_printf("<vm name=\"%s\"%s%s%s>\n"
                               "  <qmp socket=\"%s\"/>\n"
                               "  <ram path=\"%s\"/>\n"
                               "%s"
                               "</vm>\n",
                               name, uuid ? " uuid=\"" : "", uuid ?: "", uuid ? "\"" : "", qmp, ram, extra ?: "");
}

/* The way a careful launcher writes: a temporary name, then rename(2). */
static void write_atomic(const char *dir, const char *filename, const char *contents) {
        g_autofree char *tmp = g_strdup_printf("%s/.%s.tmp", dir, filename);
        g_autofree char *path = g_build_filename(dir, filename, NULL);
        g_autoptr(GError) error = NULL;

        g_assert_true(g_file_set_contents(tmp, contents, -1, &error));
        g_assert_no_error(error);
        g_assert_cmpint(g_chmod(tmp, 0644), ==, 0);
        g_assert_cmpint(rename(tmp, path), ==, 0);
}

/* The way a shell redirection writes: truncate and write in place. */
static void write_in_place(const char *dir, const char *filename, const char *contents) {
        g_autofree char *path = g_build_filename(dir, filename, NULL);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        size_t n = strlen(contents);

        g_assert_cmpint(fd, >=, 0);
        /* Two writes, as a slow writer would do: only the close counts. */
        g_assert_cmpint(write(fd, contents, n / 2), ==, (ssize_t) (n / 2));
        g_assert_cmpint(write(fd, contents + n / 2, n - n / 2), ==, (ssize_t) (n - n / 2));
        close(fd);
}

static void remove_file(const char *dir, const char *filename) {
        g_autofree char *path = g_build_filename(dir, filename, NULL);

        g_assert_cmpint(g_unlink(path), ==, 0);
}

/* A sample of tests/data/vms with its paths moved into our host dir. */
static char *sample(Fixture *f, const char *name) {
        g_autofree char *path = g_build_filename(g_getenv("VMSIG_SRCDIR") ?: ".", "tests", "data", "vms", name, NULL);
        g_autofree char *contents = NULL;
        g_autoptr(GError) error = NULL;
        g_auto(GStrv) parts = NULL;

        g_assert_true(g_file_get_contents(path, &contents, NULL, &error));
        g_assert_no_error(error);
        parts = g_strsplit(contents, TEST_PREFIX, -1);
        return g_strjoinv(f->host, parts);
}

static void install_sample(Fixture *f, const char *dir, const char *sample_name, const char *filename) {
        g_autofree char *contents = sample(f, sample_name);

        write_atomic(dir, filename, contents);
}

/* --- log capture -------------------------------------------------------------------- */

static void assert_logged(const char *log, const char *dir, const char *file_line, const char *what) {
        g_autofree char *needle = g_strdup_printf("%s/%s: ", dir, file_line);
        const char *at = strstr(log, needle);

        if (!at)
                g_error("log lacks \"%s\":\n%s", needle, log);
        if (what && !strstr(at, what))
                g_error("log line for %s lacks \"%s\":\n%s", needle, what, log);
}

/* --- tests ------------------------------------------------------------------------------ */

/* Files already there are attached before vmsig_discovery_new() returns,
 * with everything the file says. */
static void test_initial_enumeration(Fixture *f, gconstpointer data) {
        sd_id128_t uuid;
        const record *r;

        make_qemu(f, "win10");
        make_qemu(f, "minimal");
        install_sample(f, f->trigger, "win10.xml", "win10.xml");
        install_sample(f, f->trigger, "minimal.xml", "minimal.xml");
        start(f);

        g_assert_cmpuint(f->records->len, ==, 2);
        /* Sorted by file name. */
        assert_rec(f, 0, REC_ATTACH, "minimal");
        assert_rec(f, 1, REC_ATTACH, "win10");

        r = rec_at(f, 0);
        g_assert_true(sd_id128_is_null(r->uuid));
        g_assert_cmpuint(r->n_ranges, ==, 0);

        r = rec_at(f, 1);
        g_autofree char *file = g_build_filename(f->trigger, "win10.xml", NULL);
        g_autofree char *qmp = host_path(f, "win10", "qmp"), *ram = host_path(f, "win10", "ram");
        g_assert_cmpstr(r->file, ==, file);
        g_assert_cmpint(r->origin, ==, VMSIG_VM_ORIGIN_TRIGGER);
        g_assert_cmpstr(r->qmp_socket, ==, qmp);
        g_assert_cmpstr(r->ram_path, ==, ram);
        g_assert_cmpint(sd_id128_from_string("6f1c9a52-8d3e-4b7a-9c21-0e5f4d3b2a19", &uuid), ==, 0);
        g_assert_true(sd_id128_equal(r->uuid, uuid));
        /* Given out of order, handed over sorted. */
        g_assert_cmpuint(r->n_ranges, ==, 2);
        g_assert_cmpuint(r->ranges[0].gpa, ==, 0);
        g_assert_cmpuint(r->ranges[0].size, ==, 1u << 20);
        g_assert_cmpuint(r->ranges[0].offset, ==, 0);
        g_assert_cmpuint(r->ranges[1].gpa, ==, 0x100000000ULL);
        g_assert_cmpuint(r->ranges[1].size, ==, 1u << 20);
        g_assert_cmpuint(r->ranges[1].offset, ==, 1u << 20);
        assert_idle(f);
}

/* Renamed into place: attached from the loop, as soon as the event comes. */
static void test_appear_atomic(Fixture *f, gconstpointer data) {
        g_autofree char *xml = vm_xml(f, "alpha", NULL, NULL);

        make_qemu(f, "alpha");
        start(f);
        g_assert_cmpuint(f->records->len, ==, 0);
        write_atomic(f->trigger, "alpha.xml", xml);
        g_assert_cmpuint(f->records->len, ==, 0); /* nothing happens outside the loop */
        RUN_UNTIL(f, f->records->len == 1);
        assert_rec(f, 0, REC_ATTACH, "alpha");
        assert_idle(f);
        g_assert_cmpuint(f->records->len, ==, 1);
}

/* Written in place in two writes: read once, when closed. */
static void test_appear_in_place(Fixture *f, gconstpointer data) {
        g_autofree char *xml = vm_xml(f, "beta", "0b6d1e4c-2f3a-4b5c-8d9e-0f1a2b3c4d5e", NULL);
        capture c;

        make_qemu(f, "beta");
        start(f);
        capture_begin(&c);
        write_in_place(f->trigger, "beta.xml", xml);
        RUN_UNTIL(f, f->records->len == 1);
        assert_idle(f);
        g_autofree char *log = capture_end(&c);
        assert_rec(f, 0, REC_ATTACH, "beta");
        g_assert_cmpuint(f->records->len, ==, 1);
        g_assert_null(strstr(log, "warning")); /* no half-written file was read */
}

/* Each kind of bad file is logged with FILE:LINE and skipped; the good
 * files around them are attached all the same. */
static void test_bad_files(Fixture *f, gconstpointer data) {
        g_autofree char *good = vm_xml(f, "good", NULL, NULL);
        g_autofree char *dup = vm_xml(f, "good", NULL, NULL);
        g_autofree char *bad_name = vm_xml(f, "-bad", NULL, NULL);
        g_autofree char *os = vm_xml(f, "osbad", NULL, NULL);
        g_auto(GStrv) os_parts = g_strsplit(os, "<vm name=\"osbad\"", 2);
        g_autofree char *bad_os = g_strconcat("<vm name=\"osbad\" guest-os=\"linx\"", os_parts[1], NULL);
        vmsig_discovery_stats st;
        capture c;

        make_qemu(f, "good");
        write_atomic(f->trigger, "a-good.xml", good);
        install_sample(f, f->trigger, "bad-schema.xml", "bad-schema.xml");
        install_sample(f, f->trigger, "bad-xml.xml", "bad-xml.xml");
        install_sample(f, f->trigger, "bad-overlap.xml", "bad-overlap.xml");
        write_atomic(f->trigger, "bad-name.xml", bad_name);
        write_atomic(f->trigger, "bad-os.xml", bad_os);

        capture_begin(&c);
        start(f);
        write_atomic(f->trigger, "b-dup.xml", dup); /* the second file for "good" */
        RUN_UNTIL(f, ({ vmsig_discovery_get_stats(f->disc, &st); st.files == 7; }));
        assert_idle(f);
        g_autofree char *log = capture_end(&c);

        g_assert_cmpuint(f->records->len, ==, 1);
        assert_rec(f, 0, REC_ATTACH, "good");
        assert_logged(log, f->trigger, "bad-schema.xml:6", "cpus");
        assert_logged(log, f->trigger, "bad-xml.xml:6", "tag mismatch");
        assert_logged(log, f->trigger, "bad-overlap.xml:8", "overlaps the one on line 7");
        assert_logged(log, f->trigger, "bad-name.xml:1", "invalid VM name");
        assert_logged(log, f->trigger, "bad-os.xml:1",
                      "guest-os=\"linx\" is not one of windows or linux (did you mean \"linux\"?).");
        assert_logged(log, f->trigger, "b-dup.xml:1", "a-good.xml:1");
        vmsig_discovery_get_stats(f->disc, &st);
        g_assert_cmpuint(st.attached, ==, 1);
        g_assert_cmpuint(st.rejected, ==, 6);

        /* The first file goes: the rejected second one takes over. */
        remove_file(f->trigger, "a-good.xml");
        RUN_UNTIL(f, f->records->len == 3);
        assert_rec(f, 1, REC_DETACH, "good");
        assert_rec(f, 2, REC_ATTACH, "good");
        g_assert_true(g_str_has_suffix(rec_at(f, 2)->file, "/b-dup.xml"));
        assert_idle(f);
}

/* Two files with different names for the same uuid: one VM, not two. */
static void test_uuid_clash(Fixture *f, gconstpointer data) {
        const char *uuid = "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7";
        g_autofree char *one = vm_xml(f, "one", uuid, NULL), *two = vm_xml(f, "two", uuid, NULL);
        capture c;

        make_qemu(f, "one");
        make_qemu(f, "two");
        write_atomic(f->trigger, "one.xml", one);
        start(f);
        capture_begin(&c);
        write_atomic(f->trigger, "two.xml", two);
        run_for(f, 100);
        g_autofree char *log = capture_end(&c);
        g_assert_cmpuint(f->records->len, ==, 1);
        assert_rec(f, 0, REC_ATTACH, "one");
        assert_logged(log, f->trigger, "two.xml:1", uuid);
        assert_idle(f);
}

/* Removed, or renamed to a name that is not watched: detached. */
static void test_removal(Fixture *f, gconstpointer data) {
        g_autofree char *a = vm_xml(f, "gamma", NULL, NULL), *b = vm_xml(f, "delta", NULL, NULL);
        g_autofree char *from = g_build_filename(f->trigger, "delta.xml", NULL);
        g_autofree char *to = g_build_filename(f->trigger, "delta.xml.disabled", NULL);

        make_qemu(f, "gamma");
        make_qemu(f, "delta");
        write_atomic(f->trigger, "gamma.xml", a);
        write_atomic(f->trigger, "delta.xml", b);
        start(f);
        g_assert_cmpuint(f->records->len, ==, 2);

        remove_file(f->trigger, "gamma.xml");
        RUN_UNTIL(f, f->records->len == 3);
        assert_rec(f, 2, REC_DETACH, "gamma");

        g_assert_cmpint(rename(from, to), ==, 0);
        RUN_UNTIL(f, f->records->len == 4);
        assert_rec(f, 3, REC_DETACH, "delta");

        /* And back: attached again. */
        g_assert_cmpint(rename(to, from), ==, 0);
        RUN_UNTIL(f, f->records->len == 5);
        assert_rec(f, 4, REC_ATTACH, "delta");
        assert_idle(f);
        g_assert_cmpuint(g_hash_table_size(f->attached), ==, 1);
}

/* Rewrites: the same content changes nothing, a changed field detaches and
 * attaches again, a broken rewrite keeps the VM, a new name swaps names. */
static void test_rewrite(Fixture *f, gconstpointer data) {
        g_autofree char *v1 = vm_xml(f, "eps", NULL, NULL);
        g_autofree char *v2 = vm_xml(f, "eps", NULL,
                                     "  <gpa-map><range gpa=\"0x0\" size=\"0x100000\" offset=\"0x0\"/></gpa-map>\n");
        g_autofree char *v3 = vm_xml(f, "zeta", NULL, NULL);
        capture c;

        make_qemu(f, "eps");
        make_qemu(f, "zeta");
        write_atomic(f->trigger, "vm.xml", v1);
        start(f);
        g_assert_cmpuint(f->records->len, ==, 1);

        write_atomic(f->trigger, "vm.xml", v1);
        write_in_place(f->trigger, "vm.xml", v1);
        run_for(f, 100);
        g_assert_cmpuint(f->records->len, ==, 1);

        write_atomic(f->trigger, "vm.xml", v2);
        RUN_UNTIL(f, f->records->len == 3);
        assert_rec(f, 1, REC_DETACH, "eps");
        assert_rec(f, 2, REC_ATTACH, "eps");
        g_assert_cmpuint(rec_at(f, 2)->n_ranges, ==, 1);

        capture_begin(&c);
        write_atomic(f->trigger, "vm.xml", "<vm name=\"eps\">\n<qmp/>\n</vm>\n");
        run_for(f, 100);
        g_autofree char *log = capture_end(&c);
        g_assert_cmpuint(f->records->len, ==, 3);
        assert_logged(log, f->trigger, "vm.xml:1", "Keeping the previous description");

        write_atomic(f->trigger, "vm.xml", v3);
        RUN_UNTIL(f, f->records->len == 5);
        assert_rec(f, 3, REC_DETACH, "eps");
        assert_rec(f, 4, REC_ATTACH, "zeta");
        assert_idle(f);
}

static int on_make_socket(sd_event_source *s, uint64_t usec, void *userdata) {
        Fixture *f = userdata;

        make_socket(f, "slow");
        return 0;
}

/* QEMU still starting: the socket shows up 300 ms after the file. The probe
 * retries from the loop and attaches right after it appears. */
static void test_probe_waits(Fixture *f, gconstpointer data) {
        g_autofree char *xml = vm_xml(f, "slow", NULL, NULL);
        sd_event_source *timer = NULL;
        vmsig_discovery_stats st;
        uint64_t t0, socket_at;

        make_ram(f, "slow");
        start(f);
        t0 = vt_now_usec();
        write_atomic(f->trigger, "slow.xml", xml);
        g_assert_cmpint(sd_event_add_time_relative(f->event, &timer, CLOCK_MONOTONIC, 300 * 1000, 0, on_make_socket, f),
                        >=, 0);
        RUN_UNTIL(f, ({ vmsig_discovery_get_stats(f->disc, &st); st.probing == 1; }));
        g_assert_cmpuint(f->records->len, ==, 0);
        RUN_UNTIL(f, f->records->len == 1);
        socket_at = t0 + 300 * 1000;
        assert_rec(f, 0, REC_ATTACH, "slow");
        g_assert_cmpuint(rec_at(f, 0)->when, >=, socket_at);
        /* How soon after is the bench's business (bench/RESULTS.md, 11a). */
        g_test_message("attached %.0f ms after the file, %.0f ms after the socket",
                       (rec_at(f, 0)->when - t0) / 1e3, (rec_at(f, 0)->when - socket_at) / 1e3);
        sd_event_source_unref(timer);
        assert_idle(f);
}

/* The host files never appear: one warning at the timeout, then silence,
 * and touching the file tries again. */
static void test_probe_gives_up(Fixture *f, gconstpointer data) {
        g_autofree char *xml = vm_xml(f, "never", NULL, NULL);
        g_autofree char *path = g_build_filename(f->trigger, "never.xml", NULL);
        vmsig_discovery_stats st;
        capture c;

        start(f);
        vmsig_discovery_set_probe_timeout(f->disc, 300 * 1000);
        capture_begin(&c);
        write_atomic(f->trigger, "never.xml", xml);
        RUN_UNTIL(f, ({ vmsig_discovery_get_stats(f->disc, &st); st.rejected == 1; }));
        assert_idle(f);
        g_autofree char *log = capture_end(&c);
        g_assert_cmpuint(f->records->len, ==, 0);
        assert_logged(log, f->trigger, "never.xml", "Giving up on VM \"never\" after 0.3 s: QMP socket");
        g_assert_null(strstr(strstr(log, "Giving up") + 1, "Giving up")); /* once */

        make_qemu(f, "never");
        g_assert_cmpint(utimensat(AT_FDCWD, path, NULL, 0), ==, 0); /* touch */
        RUN_UNTIL(f, f->records->len == 1);
        assert_rec(f, 0, REC_ATTACH, "never");
        assert_idle(f);
}

/* A shorter timeout also cuts probes that already run. */
static void test_probe_timeout_applies_to_running(Fixture *f, gconstpointer data) {
        g_autofree char *xml = vm_xml(f, "late", NULL, NULL);
        vmsig_discovery_stats st;
        capture c;

        write_atomic(f->trigger, "late.xml", xml);
        capture_begin(&c);
        start(f);
        vmsig_discovery_get_stats(f->disc, &st);
        g_assert_cmpuint(st.probing, ==, 1);
        vmsig_discovery_set_probe_timeout(f->disc, 200 * 1000);
        RUN_UNTIL(f, ({ vmsig_discovery_get_stats(f->disc, &st); st.rejected == 1; }));
        assert_idle(f);
        g_autofree char *log = capture_end(&c);
        /* The running probe gave up at the new timeout, not the old one. */
        assert_logged(log, f->trigger, "late.xml", "Giving up on VM \"late\" after 0.2 s");
}

/* A QMP socket that is there but closed to vmsigd: a warning at once, not
 * only when the probe gives up, and the wait goes on, so that a chmod by
 * its owner is enough. Root passes every mode check, so the test runs in a
 * child that gave up its capabilities (access(2) of a root process checks
 * its permitted set): the socket, mode 0, is closed to it. */
static void test_probe_access_denied(Fixture *f, gconstpointer data) {
        if (g_test_subprocess()) {
                g_autofree char *xml = vm_xml(f, "closed", NULL, NULL);
                g_autofree char *qmp = host_path(f, "closed", "qmp");
                vmsig_discovery_stats st;
                capture c;

                make_qemu(f, "closed");
                g_assert_cmpint(chmod(qmp, 0), ==, 0);
                vt_drop_capabilities();
                start(f);
                capture_begin(&c);
                write_atomic(f->trigger, "closed.xml", xml);
                RUN_UNTIL(f, ({ vmsig_discovery_get_stats(f->disc, &st); st.probing == 1; }));
                g_autofree char *log = capture_end(&c);
                assert_logged(log, f->trigger, "closed.xml", "VM \"closed\": QMP socket");
                g_assert_nonnull(strstr(log, "Permission denied; vmsigd needs read access"));
                g_assert_cmpuint(f->records->len, ==, 0);
                /* Its owner opens it: the probe that still runs attaches. */
                g_assert_cmpint(chmod(qmp, 0666), ==, 0);
                RUN_UNTIL(f, f->records->len == 1);
                assert_rec(f, 0, REC_ATTACH, "closed");
                return;
        }
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
        g_test_trap_assert_passed();
}

/* Other names, dotfiles and temporary files are not VM files. */
static void test_ignored_names(Fixture *f, gconstpointer data) {
        const char *names[] = { ".hidden.xml", "notes.txt", "vm.xml~", "vm.xml.tmp", "#vm.xml#", ".xml", "vm.XML" };
        g_autofree char *xml = vm_xml(f, "eta", NULL, NULL);
        g_autofree char *subdir = g_build_filename(f->trigger, "dir.xml", NULL);
        vmsig_discovery_stats st;

        make_qemu(f, "eta");
        start(f);
        for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
                write_in_place(f->trigger, names[i], xml);
        g_assert_cmpint(g_mkdir(subdir, 0755), ==, 0);
        run_for(f, 100);
        vmsig_discovery_rescan(f->disc);
        vmsig_discovery_get_stats(f->disc, &st);
        g_assert_cmpuint(st.files, ==, 0);
        g_assert_cmpuint(f->records->len, ==, 0);
        assert_idle(f);
}

/* A rescan (after lost events, or on reload) reconciles at once; the
 * events that then arrive change nothing. */
static void test_rescan(Fixture *f, gconstpointer data) {
        g_autofree char *mu = vm_xml(f, "mu", NULL, NULL), *nu = vm_xml(f, "nu", NULL, NULL);

        make_qemu(f, "mu");
        make_qemu(f, "nu");
        write_atomic(f->trigger, "mu.xml", mu);
        start(f);
        g_assert_cmpuint(f->records->len, ==, 1);

        remove_file(f->trigger, "mu.xml");
        write_atomic(f->trigger, "nu.xml", nu);
        vmsig_discovery_rescan(f->disc);
        g_assert_cmpuint(f->records->len, ==, 3);
        assert_rec(f, 1, REC_ATTACH, "nu");
        assert_rec(f, 2, REC_DETACH, "mu");
        run_for(f, 100);
        g_assert_cmpuint(f->records->len, ==, 3);
        assert_idle(f);
}

/* Files anyone could have written, and symbolic links, are not trusted. */
static void test_untrusted(Fixture *f, gconstpointer data) {
        g_autofree char *xml = vm_xml(f, "theta", NULL, NULL);
        g_autofree char *path = g_build_filename(f->trigger, "theta.xml", NULL);
        g_autofree char *target = g_build_filename(f->host, "theta.xml", NULL);
        g_autofree char *link = g_build_filename(f->trigger, "link.xml", NULL);
        capture c;

        make_qemu(f, "theta");
        write_atomic(f->host, "theta.xml", xml);
        g_assert_cmpint(symlink(target, link), ==, 0);
        write_atomic(f->trigger, "theta.xml", xml);
        g_assert_cmpint(g_chmod(path, 0666), ==, 0);
        capture_begin(&c);
        start(f);
        g_autofree char *log = capture_end(&c);
        g_assert_cmpuint(f->records->len, ==, 0);
        assert_logged(log, f->trigger, "theta.xml", "writable by group or others");
        assert_logged(log, f->trigger, "link.xml", "symbolic link");

        /* Fixing the mode is an attribute change: seen, and attached. */
        g_assert_cmpint(g_chmod(path, 0644), ==, 0);
        RUN_UNTIL(f, f->records->len == 1);
        assert_rec(f, 0, REC_ATTACH, "theta");
        assert_idle(f);
}

/* A refused attach is not detached, and a rewrite tries again. */
static void test_attach_refused(Fixture *f, gconstpointer data) {
        g_autofree char *xml = vm_xml(f, "iota", NULL, NULL);
        capture c;

        make_qemu(f, "iota");
        start(f);
        f->attach_result = -ENOSPC;
        capture_begin(&c);
        write_atomic(f->trigger, "iota.xml", xml);
        RUN_UNTIL(f, f->records->len == 1);
        g_autofree char *log = capture_end(&c);
        assert_logged(log, f->trigger, "iota.xml", "Cannot attach VM \"iota\"");

        f->attach_result = 0;
        write_atomic(f->trigger, "iota.xml", xml);
        RUN_UNTIL(f, f->records->len == 2);
        assert_rec(f, 1, REC_ATTACH, "iota");
        remove_file(f->trigger, "iota.xml");
        RUN_UNTIL(f, f->records->len == 3);
        assert_rec(f, 2, REC_DETACH, "iota");

        f->attach_result = -ENOSPC;
        write_atomic(f->trigger, "iota.xml", xml);
        RUN_UNTIL(f, f->records->len == 4);
        remove_file(f->trigger, "iota.xml");
        run_for(f, 100);
        g_assert_cmpuint(f->records->len, ==, 4); /* no detach for the refused one */
        assert_idle(f);
}

/* The trigger directory does not exist at start, and two levels of it are
 * created later; then it is renamed away, taking its VMs with it, and comes
 * back. */
static void test_directory_appears(Fixture *f, gconstpointer data) {
        g_autofree char *parent = g_build_filename(f->tmp, "late", NULL);
        g_autofree char *dir = g_build_filename(parent, "vms.d", NULL);
        g_autofree char *moved = g_build_filename(f->tmp, "gone", NULL);
        g_autofree char *xml = vm_xml(f, "kappa", NULL, NULL);

        make_qemu(f, "kappa");
        g_free(f->trigger);
        f->trigger = g_strdup(dir);
        start(f);
        g_assert_cmpint(g_mkdir(parent, 0755), ==, 0);
        run_for(f, 20);
        g_assert_cmpint(g_mkdir(dir, 0755), ==, 0);
        run_for(f, 20);
        write_atomic(dir, "kappa.xml", xml);
        RUN_UNTIL(f, f->records->len == 1);
        assert_rec(f, 0, REC_ATTACH, "kappa");

        g_assert_cmpint(rename(dir, moved), ==, 0);
        RUN_UNTIL(f, f->records->len == 2);
        assert_rec(f, 1, REC_DETACH, "kappa");
        g_assert_cmpint(rename(moved, dir), ==, 0);
        RUN_UNTIL(f, f->records->len == 3);
        assert_rec(f, 2, REC_ATTACH, "kappa");
        assert_idle(f);
}

/* An external entity is never expanded: where it would stand in for the
 * name, the file it names is not read and the file is refused. */
static void test_external_entity(Fixture *f, gconstpointer data) {
        g_autofree char *secret = g_build_filename(f->host, "secret", NULL);
        g_autofree char *xml = vm_xml(f, "linux", NULL, NULL);
        g_autofree char *doctype = g_strdup_printf("<!DOCTYPE vm [ <!ENTITY secret SYSTEM \"file://%s\"> ]>\n", secret);
        g_autofree char *with_entity = NULL, *bad = NULL;
        g_auto(GStrv) parts = NULL;
        vmsig_discovery_stats st;
        capture c;

        g_assert_true(g_file_set_contents(secret, "vmsigsecret7f3a9c", -1, NULL));
        parts = g_strsplit(xml, "name=\"linux\"", -1);
        with_entity = g_strjoinv("name=\"&secret;\"", parts);
        bad = g_strconcat(doctype, with_entity, NULL);
        make_qemu(f, "linux");
        write_atomic(f->trigger, "linux.xml", bad);
        capture_begin(&c);
        start(f);
        g_autofree char *log = capture_end(&c);
        vmsig_discovery_get_stats(f->disc, &st);
        g_assert_cmpuint(st.attached, ==, 0);
        g_assert_cmpuint(st.rejected, ==, 1);
        g_assert_cmpuint(f->records->len, ==, 0);
        g_assert_null(strstr(log, "vmsigsecret7f3a9c"));
        assert_logged(log, f->trigger, "linux.xml:2", "");
        assert_idle(f);
}

/* The same file renamed in and removed 50 times, QEMU already running:
 * each rename attaches once and each removal detaches once. (How fast is
 * the bench's business: bench/RESULTS.md, 11a.) */
static void test_rename_cycles(Fixture *f, gconstpointer data) {
        enum { N = 50 };

        make_qemu(f, "lambda");
        start(f);
        for (unsigned i = 0; i < N; i++) {
                g_autofree char *xml = vm_xml(f, "lambda", NULL, NULL);
                g_autofree char *tmp = g_strdup_printf("%s/.lambda.tmp", f->trigger);
                g_autofree char *path = g_build_filename(f->trigger, "lambda.xml", NULL);

                g_assert_true(g_file_set_contents(tmp, xml, -1, NULL));
                g_assert_cmpint(g_chmod(tmp, 0644), ==, 0);
                g_assert_cmpint(rename(tmp, path), ==, 0);
                RUN_UNTIL(f, f->records->len == 2 * i + 1);
                assert_rec(f, 2 * i, REC_ATTACH, "lambda");
                remove_file(f->trigger, "lambda.xml");
                RUN_UNTIL(f, f->records->len == 2 * i + 2);
                assert_rec(f, 2 * i + 1, REC_DETACH, "lambda");
        }
        assert_idle(f);
}

int main(int argc, char *argv[]) {
        /* Plain "vmsigd: ..." lines, whatever the environment of the run. */
        g_unsetenv("JOURNAL_STREAM");
        umask(022);
        g_test_init(&argc, &argv, NULL);
        VT_FIXTURE_TESTS("/discovery/", test_initial_enumeration, test_appear_atomic, test_appear_in_place,
                         test_bad_files, test_uuid_clash, test_removal, test_rewrite, test_probe_waits,
                         test_probe_gives_up, test_probe_timeout_applies_to_running, test_ignored_names, test_rescan,
                         test_untrusted, test_attach_refused, test_directory_appears, test_external_entity,
                         test_rename_cycles, test_probe_access_denied);
        return g_test_run();
}
