/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvirt-ram.h: the parsers of /proc/PID/maps lines and command lines
 * with hostile input; and against the private libvirtd of
 * libvirt-harness.h, a domain's QEMU found by its uuid and its guest RAM
 * opened, for the file and the memfd backings: the right process, a
 * mapping of the domain's size, a read-only fd that reads what the guest
 * wrote and what vmsigd writes through the writable one, the GPA map of
 * the RAM (qmp-ram-map.h, by inode or, for a memfd, by size) asked through
 * libvirt's monitor passthrough, and a read-only fd that nobody
 * who receives it can reopen for writing; that map equal to the one
 * computed from the machine type in the live XML (libvirt-xml.h) for pc
 * and q35 guests of 1, 3 and 4 GiB, before and after the firmware ran,
 * and a split moved on QEMU's command line refused; a domain without shared RAM,
 * a destroyed one and a uuid of none fail with their own errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>

#include "event-loop.h"
#include "host-common.h"
#include "host-ram.h"
#include "libvirt-harness.h"
#include "libvirt-ram.h"
#include "libvirt-seclabel.h"
#include "libvirt-xml.h"
#include "linux-guest.h"
#include "qmp-ram-map.h"
#include "vt-util.h"

#define RAM_MIB 128
#define BIG_RAM_MIB 3072 /* a q35 guest split around the PCI hole: still one mapping */
#define BOOT_TIMEOUT_MS 90000
#define AS_NOBODY "--reuid=nobody", "--regid=nogroup", "--clear-groups"
#define QEMU_USER "libvirt-qemu"
#define HELPER_CANNOT_READ 200
#define GIB (G_GUINT64_CONSTANT(1) << 30)

static const char *self;

/* The parsers, on what a kernel writes and on what it never would. */

static void test_parse_maps_line(void) {
        libvirt_ram_vma v;
        static const char *const bad[] = {
                "",
                "7f00-7e00 rw-s 00000000 00:01 5 /x",        /* end before start */
                "7f00-7f00 rw-s 00000000 00:01 5 /x",        /* empty */
                "7f00 rw-s 00000000 00:01 5 /x",             /* no end */
                "7f00-8f00 rwzs 00000000 00:01 5 /x",        /* perms */
                "7f00-8f00 rw-q 00000000 00:01 5 /x",
                "7f00-8f00 rw-s 00000000 00-01 5 /x",
                "7f00-8f00 rw-s 00000000 00:01 x /x",
                "7f00-8f00 rw-s 00000000 00:01 5/x",         /* no blank before the name */
                "17f0000000000000-127f0000000000000 rw-s 0 0:1 5 /x", /* 17 digits */
                "-7f00-8f00 rw-s 0 0:1 5 /x",
                "0x7f00-8f00 rw-s 0 0:1 5 /x",
                "7f00-8f00 rw-s 0 1000:1 5 /x",              /* no such major */
                "7f00-8f00 rw-s 0 0:1 184467440737095516160 /x", /* 21 digits */
                "7f00-8f00 rw-s 0 0:1 18446744073709551616 /x",  /* 2^64 */
                " 7f00-8f00 rw-s 0 0:1 5 /x",
        };

        static const char file[] = "7fad3bfff000-7fad43fff000 rw-s 00000000 00:29 20                         "
                                   "/var/lib/libvirt/qemu/ram/1-vf/pc.ram";

        g_assert_cmpint(libvirt_ram_parse_maps_line(file, strlen(file), &v), ==, 0);
        g_assert_cmphex(v.start, ==, 0x7fad3bfff000);
        g_assert_cmphex(v.end - v.start, ==, (guint64) RAM_MIB << 20);
        g_assert_cmpuint(major(v.dev), ==, 0);
        g_assert_cmpuint(minor(v.dev), ==, 0x29);
        g_assert_cmpuint(v.ino, ==, 20);
        g_assert_true(v.shared && v.writable);
        g_assert_cmpstr(v.name, ==, "/var/lib/libvirt/qemu/ram/1-vf/pc.ram");
        g_assert_cmpint(libvirt_ram_parse_maps_line("55d0-55e0 r--p 00000000 00:00 0", 31, &v), ==, 0);
        g_assert_cmpstr(v.name, ==, "");
        g_assert_false(v.shared || v.writable);

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                memset(&v, 0x5a, sizeof v);
                if (libvirt_ram_parse_maps_line(bad[i], strlen(bad[i]), &v) != -EBADMSG)
                        g_error("accepted: \"%s\"", bad[i]);
                g_assert_cmphex(v.start, ==, 0x5a5a5a5a5a5a5a5a); /* untouched */
        }
        /* A NUL inside, and a line longer than any maps line. */
        g_assert_cmpint(libvirt_ram_parse_maps_line("7f00-8f00 rw-s 0 0:1 5 /a\0b", 27, &v), ==, -EBADMSG);
        g_autofree char *long_line = g_strnfill(LIBVIRT_RAM_LINE_MAX + 10, '/');
        memcpy(long_line, "7f00-8f00 rw-s 0 0:1 5 ", 23);
        g_assert_cmpint(libvirt_ram_parse_maps_line(long_line, strlen(long_line), &v), ==, -EBADMSG);
}

/* Feeds the lines of text to a fresh scan; its result. */
static int scan_text(const char *text, libvirt_ram_vma *ret) {
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        g_autofree libvirt_ram_scan *s = g_new(libvirt_ram_scan, 1);
        const libvirt_ram_vma *v;
        int r;

        libvirt_ram_scan_init(s);
        for (char **l = lines; *l; l++)
                if (**l && (r = libvirt_ram_scan_feed(s, *l, strlen(*l))) < 0)
                        return r;
        r = libvirt_ram_scan_result(s, &v);
        if (r == 0 && ret)
                *ret = *v;
        return r;
}

#define LIBS "7f0000000000-7f0000100000 r-xp 00000000 08:01 77 /usr/lib/libc.so.6\n" \
             "7f0000200000-7f0000201000 rw-s 00000000 00:05 9 /dev/zero (deleted)\n" \
             "7f0000300000-7f0000301000 rw-s 00000000 00:00 42 /SYSV00000000 (deleted)\n" \
             "7f0000400000-7f0000500000 rw-s 00000000 00:06 3 /dev/dri/renderD128\n" \
             "7f0000600000-7f0000700000 rw-p 00000000 00:01 8 /memfd:memory-backend-memfd (deleted)\n"
#define MEMFD(start, end, offset, ino) start "-" end " rw-s " offset " 00:01 " ino " /memfd:memory-backend-memfd (deleted)\n"

static void test_scan(void) {
        libvirt_ram_vma v;

        /* Neither shared anonymous memory, SysV, a device nor a private
         * memfd is guest RAM one could share. */
        g_assert_cmpint(scan_text(LIBS, NULL), ==, -ENOENT);
        g_assert_cmpint(scan_text(LIBS MEMFD("7f1000000000", "7f10c0000000", "00000000", "7"), &v), ==, 0);
        g_assert_cmphex(v.end - v.start, ==, (guint64) BIG_RAM_MIB << 20);
        /* Split VMAs of one mapping are one; a guard page between is not. */
        g_assert_cmpint(scan_text(MEMFD("7f1000000000", "7f1040000000", "00000000", "7")
                                          MEMFD("7f1040000000", "7f10c0000000", "40000000", "7"), &v), ==, 0);
        g_assert_cmphex(v.end - v.start, ==, (guint64) BIG_RAM_MIB << 20);
        g_assert_cmpint(scan_text(MEMFD("7f1000000000", "7f1040000000", "00000000", "7")
                                          MEMFD("7f1040001000", "7f10c0001000", "40000000", "7"), NULL), ==, 0);
        /* Two memfd backends (NUMA cells): refused, not guessed. */
        g_assert_cmpint(scan_text(MEMFD("7f1000000000", "7f1040000000", "00000000", "7")
                                          MEMFD("7f2000000000", "7f2040000000", "00000000", "8"), NULL), ==,
                        -ENOTUNIQ);
        /* NUMA cells over files: no pc.ram, only ram-nodeN. */
        g_assert_cmpint(scan_text("7f00-8f00 rw-s 00000000 00:29 20 /var/lib/libvirt/qemu/ram/1-v/ram-node0\n"
                                  "9f00-af00 rw-s 00000000 00:29 21 /var/lib/libvirt/qemu/ram/1-v/ram-node1\n",
                                  NULL), ==, -ENOTUNIQ);
        /* pc.ram beside another shared file (a shared-memory device). */
        g_assert_cmpint(scan_text("7f00-8f00 rw-s 00000000 00:29 20 /dev/shm/ivshmem\n"
                                  "9f00-af00 rw-s 00000000 00:29 21 /var/lib/libvirt/qemu/ram/1-v/pc.ram (deleted)\n",
                                  &v), ==, 0);
        g_assert_cmpuint(v.ino, ==, 21);
        /* Not a backend's name: "xpc.ram", and a window at an offset. */
        g_assert_cmpint(scan_text("7f00-8f00 rw-s 00000000 00:29 20 /tmp/xpc.ram\n", NULL), ==, -ENOTUNIQ);
        g_assert_cmpint(scan_text("7f00-8f00 rw-s 00001000 00:29 20 /tmp/pc.ram\n", NULL), ==, -ENOENT);
        /* An offset that would wrap. */
        g_assert_cmpint(scan_text("7f00-8f00 rw-s ffffffffffffff00 00:29 20 /tmp/pc.ram\n", NULL), ==, -EBADMSG);
        g_assert_cmpint(scan_text("garbage\n", NULL), ==, -EBADMSG);
}

static void test_cmdline(void) {
        static const char uuid[] = "e35dcde6-7395-4b24-9f09-57df7c9d8d64";
        static const char good[] = "qemu\0-name\0guest=a\0-uuid\0E35DCDE6-7395-4b24-9f09-57df7c9d8d64\0-m\0128";

        g_assert_true(libvirt_ram_cmdline_has_uuid(good, sizeof good, uuid));
        /* Cut short: the uuid's NUL is missing. */
        g_assert_false(libvirt_ram_cmdline_has_uuid(good, 60, uuid));
        g_assert_false(libvirt_ram_cmdline_has_uuid("qemu\0-uuid", 11, uuid));
        g_assert_false(libvirt_ram_cmdline_has_uuid("qemu\0-uuid\0e35dcde6-7395-4b24-9f09-57df7c9d8d640", 52, uuid));
        g_assert_false(libvirt_ram_cmdline_has_uuid("qemu\0--uuid\0e35dcde6-7395-4b24-9f09-57df7c9d8d64", 53, uuid));
        g_assert_false(libvirt_ram_cmdline_has_uuid("qemu\0-uuid=e35dcde6-7395-4b24-9f09-57df7c9d8d64", 48, uuid));
        g_assert_false(libvirt_ram_cmdline_has_uuid("", 0, uuid));
}

/* The user QEMU runs as: the domain's DAC label, else libvirt's default
 * for the domain's type; numbers and names; what names nobody. */
static void test_seclabel(void) {
        static const char caps[] = "<capabilities><host><secmodel><model>selinux</model></secmodel>"
                                   "<secmodel><model>dac</model><doi>0</doi><baselabel type='kvm'>+1:+1</baselabel>"
                                   "<baselabel type='qemu'>+107:+107</baselabel></secmodel></host></capabilities>";
        static const struct {
                const char *domain;
                int r;
                uid_t uid;
        } cases[] = {
                { "<domain type='qemu'><seclabel type='dynamic' model='selinux'><label>u:r:t:s0</label></seclabel>"
                  "<seclabel type='dynamic' model='dac' relabel='yes'><label>+64055:+64055</label>"
                  "<imagelabel>+64055:+64055</imagelabel></seclabel></domain>", 0, 64055 },
                { "<domain type='qemu'><seclabel type='static' model='dac'><label>nobody:nogroup</label>"
                  "</seclabel></domain>", 0, 65534 },
                { "<domain type='qemu'><seclabel type='static' model='dac'><label>4242</label></seclabel></domain>",
                  0, 4242 },
                /* No label of its own: the default of its type. */
                { "<domain type='qemu'><seclabel type='none' model='dac'/></domain>", 0, 107 },
                { "<domain type='kvm'/>", 0, 1 },
                { "<domain type='xen'/>", -ENOENT, 0 },
                { "<domain type='qemu'><seclabel model='dac'><label>+4294967295</label></seclabel></domain>",
                  -EBADMSG, 0 },
                { "<domain type='qemu'><seclabel model='dac'><label>no-such-user:x</label></seclabel></domain>",
                  -EBADMSG, 0 },
                { "<domain type='qemu'><seclabel model='dac'><label>:+1</label></seclabel></domain>", -EBADMSG, 0 },
                { "<domain type='qemu'><seclabel model='dac'><label>+</label></seclabel></domain>", -EBADMSG, 0 },
                /* An external entity is not fetched: a label that names
                 * nobody. */
                { "<!DOCTYPE domain [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><domain type='qemu'><seclabel "
                  "model='dac'><label>&e;</label></seclabel></domain>", -EBADMSG, 0 },
                { "<capabilities/>", -EBADMSG, 0 },
                { "<domain", -EBADMSG, 0 },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                char msg[LIBVIRT_SECLABEL_MESSAGE_MAX] = "";
                uid_t uid = 12345;

                g_test_message("%s", cases[i].domain);
                g_assert_cmpint(libvirt_seclabel_qemu_uid(cases[i].domain, caps, &uid, msg, sizeof msg), ==,
                                cases[i].r);
                if (cases[i].r == 0)
                        g_assert_cmpuint(uid, ==, cases[i].uid);
                else
                        g_assert_cmpstr(msg, !=, "");
        }
        /* Without capabilities, only the domain's own label. */
        char msg[LIBVIRT_SECLABEL_MESSAGE_MAX];
        uid_t uid;
        g_assert_cmpint(libvirt_seclabel_qemu_uid(cases[3].domain, NULL, &uid, msg, sizeof msg), ==, -ENOENT);
}

/* Helper --reopen-rw FD, run as nobody: reads FD, then tries to reopen it
 * for writing. Exits with the errno of the reopen (0: it could). */
static _Noreturn void reopen_rw(int fd) {
        char path[64], c;
        int rw;

        if (pread(fd, &c, 1, 0) != 1)
                _exit(HELPER_CANNOT_READ);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        rw = open(path, O_RDWR | O_CLOEXEC);
        _exit(rw >= 0 ? 0 : errno);
}

/* What nobody gets when it receives fd (inherited under its number). */
static int reopen_as_nobody(int fd) {
        g_autofree char *setpriv = g_find_program_in_path("setpriv");
        g_autofree char *fd_arg = g_strdup_printf("%d", fd);
        const char *argv[] = { setpriv, AS_NOBODY, self, "--reopen-rw", fd_arg, NULL };

        g_assert_nonnull(setpriv);
        return vt_wait_exit(vt_spawn_with_fd(argv, fd));
}

static uid_t qemu_uid(void) {
        struct passwd *pw = getpwnam(QEMU_USER);

        g_assert_nonnull(pw);
        return pw->pw_uid;
}

static char *domain_uuid(virDomainPtr dom) {
        char uuid[VIR_UUID_STRING_BUFLEN];

        g_assert_cmpint(virDomainGetUUIDString(dom, uuid), ==, 0);
        return g_strdup(uuid);
}

/* Whether the RAM holds needle, read through fd in blocks. */
static bool ram_contains(int fd, uint64_t size, const char *needle) {
        const size_t block = 1 << 20, k = strlen(needle);
        g_autofree char *buf = g_malloc(block + k);

        for (uint64_t off = 0; off < size; off += block) {
                ssize_t n = pread(fd, buf, block + k, (off_t) off);
                g_assert_cmpint(n, >, 0);
                if (memmem(buf, (size_t) n, needle, k))
                        return true;
        }
        return false;
}

/* The 8 bytes at gpa as the guest sees them, through QEMU's monitor. */
static guint64 guest_read_u64(virDomainPtr dom, guint64 gpa) {
        g_autofree char *cmd = g_strdup_printf("xp /1gx 0x%" G_GINT64_MODIFIER "x", gpa);
        char *out = NULL, *colon;
        guint64 v;

        g_assert_cmpint(virDomainQemuMonitorCommand(dom, cmd, &out, VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP), ==, 0);
        colon = strchr(out, ':');
        g_assert_nonnull(colon);
        v = g_ascii_strtoull(colon + 1, NULL, 16);
        free(out);
        return v;
}

/* Written through the rw fd with the guest paused, seen through the ro
 * fd and by the guest, then put back. Offset 1 MiB: RAM at its own GPA. */
static void assert_write_seen(virDomainPtr dom, const libvirt_ram *r) {
        const guint64 pattern = 0x76d5169a11e2a3b4, offset = 1 << 20;
        guint64 orig, seen;

        g_assert_cmpint(virDomainSuspend(dom), ==, 0);
        g_assert_cmpint(pread(r->ro_fd, &orig, sizeof orig, offset), ==, sizeof orig);
        g_assert_cmpint(pwrite(r->rw_fd, &pattern, sizeof pattern, offset), ==, sizeof pattern);
        g_assert_cmpint(pread(r->ro_fd, &seen, sizeof seen, offset), ==, sizeof seen);
        g_assert_cmphex(seen, ==, pattern);
        g_assert_cmphex(guest_read_u64(dom, offset), ==, pattern);
        g_assert_cmpint(pwrite(r->rw_fd, &orig, sizeof orig, offset), ==, sizeof orig);
        g_assert_cmpint(virDomainResume(dom), ==, 0);
}

/* The ro fd: no writes through it, and none through a reopen by nobody. */
static void assert_read_only(const libvirt_ram *r) {
        struct stat st;
        char path[64];
        int rw;

        vt_assert_read_only_fd(r->ro_fd);
        g_assert_cmpint(fstat(r->ro_fd, &st), ==, 0);
        g_assert_cmpuint(st.st_mode & 0022, ==, 0);
        g_assert_cmpuint(st.st_uid, ==, qemu_uid());
        g_assert_cmpint(reopen_as_nobody(r->ro_fd), ==, EACCES);
        /* Root may, as the header says. */
        snprintf(path, sizeof path, "/proc/self/fd/%d", r->ro_fd);
        rw = open(path, O_RDWR | O_CLOEXEC);
        g_assert_cmpint(rw, >=, 0);
        close(rw);
}

/* A monitor over libvirt's passthrough, as the libvirt backend will have
 * one: each command answered through virDomainQemuMonitorCommand(), its
 * reply held until the test's "loop" (map_run) hands it over, never from
 * inside execute. */
typedef struct Pending {
        qmp_monitor_reply_fn fn;
        void *userdata;
        json_object *answer; /* the whole reply */
} Pending;

typedef struct MapQuery {
        virDomainPtr dom;
        GQueue pending;
        bool done;
        int error;
        vmsig_gpa_range *ranges;
        size_t n;
} MapQuery;

static int passthrough_execute(void *data, const char *command, json_object *arguments, qmp_monitor_reply_fn fn,
                               void *userdata) {
        MapQuery *m = data;
        json_object *cmd = json_object_new_object();
        char *out = NULL;
        Pending *p;

        json_object_object_add(cmd, "execute", json_object_new_string(command));
        if (arguments)
                json_object_object_add(cmd, "arguments", arguments);
        g_assert_cmpint(virDomainQemuMonitorCommand(m->dom, json_object_to_json_string(cmd), &out, 0), ==, 0);
        json_object_put(cmd);
        p = g_new0(Pending, 1);
        *p = (Pending) { fn, userdata, json_tokener_parse(out) };
        g_assert_nonnull(p->answer);
        free(out);
        g_queue_push_tail(&m->pending, p);
        return 0;
}

static void on_map(int error, const char *message, vmsig_gpa_range *ranges, size_t n, void *userdata) {
        MapQuery *m = userdata;

        if (error < 0)
                g_test_message("map: %s", message);
        m->done = true;
        m->error = error;
        m->ranges = ranges;
        m->n = n;
}

/* The GPA map of the RAM r, asked through the passthrough. */
static void map_run(virDomainPtr dom, const libvirt_ram *r, MapQuery *m) {
        qmp_monitor monitor = { passthrough_execute, m };
        qmp_ram_target target = { .name = r->name, .dev = r->dev, .ino = r->ino, .size = r->size, .memfd = r->memfd };

        *m = (MapQuery) { .dom = dom };
        g_queue_init(&m->pending);
        g_assert_cmpint(qmp_ram_map_query(&monitor, &target, on_map, m), ==, 0);
        g_assert_false(m->done);
        for (Pending *p; (p = g_queue_pop_head(&m->pending));) {
                json_object *ret = NULL;
                qmp_reply reply = { .error = -EIO, .message = "QEMU refused" };

                if (json_object_object_get_ex(p->answer, "return", &ret))
                        reply = (qmp_reply) { .result = ret };
                p->fn(&reply, p->userdata);
                json_object_put(p->answer);
                g_free(p);
        }
        g_assert_true(m->done);
}

static void assert_host_ram(const char *name, const libvirt_ram *r, vmsig_gpa_range *ranges, size_t n);

/* Where the RAM sits for the guest: at its own address below 2 GiB (but
 * for holes, such as the VGA window at 0xa0000), and a q35 guest of 3 GiB
 * has its last GiB at 4 GiB, at offset 2 GiB. */
static void assert_map(virDomainPtr dom, const libvirt_ram *r, unsigned ram_mib, const char *name) {
        const vmsig_gpa_range *last;
        MapQuery m;

        map_run(dom, r, &m);
        g_assert_cmpint(m.error, ==, 0);
        g_assert_cmpuint(m.n, >=, 1);
        for (size_t i = 0; i < m.n; i++) {
                g_test_message("map: GPA 0x%" G_GINT64_MODIFIER "x, 0x%" G_GINT64_MODIFIER "x bytes at offset 0x%"
                               G_GINT64_MODIFIER "x", m.ranges[i].gpa, m.ranges[i].size, m.ranges[i].offset);
                if (m.ranges[i].gpa < 2 * GIB)
                        g_assert_cmpuint(m.ranges[i].gpa, ==, m.ranges[i].offset);
        }
        g_assert_cmpuint(m.ranges[0].gpa, ==, 0);
        last = &m.ranges[m.n - 1];
        g_assert_cmpuint(last->offset + last->size, ==, r->size);
        if (ram_mib > 2048) {
                g_assert_cmpuint(last->gpa, ==, 4 * GIB);
                g_assert_cmpuint(last->offset, ==, 2 * GIB);
        }
        assert_host_ram(name, r, m.ranges, m.n);
}

/* host-ram.h from ready fds, as the libvirt backend feeds it: a memctx
 * adapter around it, the datum published with the map, the same QEMU's
 * fds again keep the epoch, another QEMU's start the next. */
static int ram_attach(void *data, vmsig_endpoint *ep) {
        return host_ram_attach(data, ep);
}

static void ram_detach(void *data, vmsig_endpoint *ep) {
        host_ram_detach(data);
}

static void ram_free(void *data) {
}

static const vmsig_memctx_ops ram_ops = {
        .base = { .attach = ram_attach, .detach = ram_detach, .free = ram_free },
};

static uint64_t sync_fds(sd_event *event, vmsig_core *core, vmsig_endpoint *ep, host_ram *ram, pid_t pid,
                         const libvirt_ram *r) {
        const vmsig_memctx *m;

        g_assert_cmpint(host_ram_sync_fds(ram, pid, fcntl(r->ro_fd, F_DUPFD_CLOEXEC, 3),
                                          fcntl(r->rw_fd, F_DUPFD_CLOEXEC, 3)), ==, 0);
        vt_event_run_pending(event);
        m = vmsig_memctx_get(core, vmsig_endpoint_get_id(ep));
        g_assert_nonnull(m);
        g_assert_cmpuint(m->ram_size, ==, r->size);
        return m->epoch;
}

static void assert_host_ram(const char *name, const libvirt_ram *r, vmsig_gpa_range *ranges, size_t n) {
        vmsig_endpoint_spec es;
        vmsig_endpoint *ep;
        vmsig_core *core;
        sd_event *event;
        host_ram ram;
        uint64_t epoch;

        vt_core_start(&event, &core);
        host_ram_init(&ram, name);
        host_ram_set_ranges(&ram, ranges, n);
        host_endpoint_spec_init(&es, name, SD_ID128_NULL, VMSIG_STATE_RUNNING);
        es.adapters[VMSIG_ADAPTER_MEMCTX] = (vmsig_adapter) { &ram_ops.base, &ram };
        g_assert_cmpint(vmsig_core_attach_endpoint(core, &es, &ep), ==, 0);
        epoch = sync_fds(event, core, ep, &ram, r->pid, r);
        g_assert_cmpuint(vmsig_memctx_get(core, vmsig_endpoint_get_id(ep))->n_ranges, ==, n);
        g_assert_cmpuint(sync_fds(event, core, ep, &ram, r->pid, r), ==, epoch);
        g_assert_cmpuint(sync_fds(event, core, ep, &ram, r->pid + 1, r), >, epoch);
        g_assert_cmpint(vmsig_core_detach_endpoint(core, ep), ==, 0);
        vt_event_run_pending(event);
        host_ram_done(&ram);
        vt_core_stop(event, core);
}

/* A running domain's RAM, found from its uuid; checked as above. */
static void check_domain(LibvirtHarness *h, virDomainPtr dom, const char *name, unsigned ram_mib, bool memfd) {
        g_autofree char *uuid = domain_uuid(dom);
        char msg[LIBVIRT_RAM_MESSAGE_MAX] = "";
        libvirt_ram r;
        pid_t pid = 0;
        int pidfd = -1;

        g_assert_cmpint(libvirt_ram_find_qemu(uuid, (uid_t) -1, &pid, &pidfd, msg, sizeof msg), ==, 0);
        g_assert_cmpint(pid, ==, libvirt_harness_domain_pid(h, name));
        if (libvirt_ram_open(pidfd, pid, &r, msg, sizeof msg) < 0)
                g_error("%s: %s", name, msg);
        g_test_message("%s: %s, mode %04o", name, r.name, (unsigned) r.mode);
        g_assert_cmpint(r.pid, ==, pid);
        g_assert_cmpuint(r.size, ==, (guint64) ram_mib << 20);
        g_assert_cmpint(r.memfd, ==, memfd);
        g_assert_cmpuint(r.mode, ==, memfd ? 0744 : 0644);
        g_assert_cmpint(r.rw_fd, >=, 0);
        libvirt_harness_wait_guest(h, name, BOOT_TIMEOUT_MS);
        g_assert_true(ram_contains(r.ro_fd, r.size, LINUX_GUEST_MARKER));
        assert_write_seen(dom, &r);
        assert_map(dom, &r, ram_mib, name);
        assert_read_only(&r);
        libvirt_ram_done(&r);
        close(pidfd);
}

/* A domain of that backing and size, started and checked. */
static void run_backing(const char *name, LibvirtRam ram, unsigned ram_mib) {
        g_autoptr(LibvirtHarness) h = NULL;
        virDomainPtr dom;

        if (!(h = libvirt_harness_new_started()))
                return;
        dom = libvirt_harness_start_domain(h, name, ram, ram_mib);
        check_domain(h, dom, name, ram_mib, ram == LIBVIRT_RAM_MEMFD);
        virDomainFree(dom);
}

static void test_file_backing(void) {
        run_backing("ram-file", LIBVIRT_RAM_FILE, RAM_MIB);
}

/* A guest of 3 GiB, over its PCI hole: one memfd mapping all the same. */
static void test_memfd_backing(void) {
        run_backing("ram-memfd", LIBVIRT_RAM_MEMFD, BIG_RAM_MIB);
}

/* The harness's domain without its <memoryBacking>: private RAM. */
static virDomainPtr start_private_domain(LibvirtHarness *h, const char *name) {
        g_autofree char *xml = libvirt_harness_domain_xml(h, name, LIBVIRT_RAM_MEMFD, RAM_MIB);
        char *start = strstr(xml, "  <memoryBacking>"), *end = start ? strstr(start, "\n") : NULL;
        virDomainPtr dom;

        g_assert_nonnull(end);
        memmove(start, end + 1, strlen(end + 1) + 1);
        dom = virDomainDefineXML(h->conn, xml);
        g_assert_nonnull(dom);
        g_assert_cmpint(virDomainCreate(dom), ==, 0);
        return dom;
}

/* The map computed from a domain's live XML (libvirt-xml.h), for the RAM
 * r of QEMU: 0 and the ranges, or the refusal and its reason. */
static int xml_map(virDomainPtr dom, const libvirt_ram *r, vmsig_gpa_range *ranges, size_t *n, char *msg,
                   size_t size) {
        g_autofree char *xml = virDomainGetXMLDesc(dom, 0);

        g_assert_nonnull(xml);
        return libvirt_xml_ram_layout(xml, strlen(xml), r->size, ranges, n, msg, size);
}

static void assert_same_ranges(const vmsig_gpa_range *a, size_t n_a, const vmsig_gpa_range *b, size_t n_b) {
        for (size_t i = 0; i < n_a; i++)
                g_test_message("QEMU: GPA 0x%" G_GINT64_MODIFIER "x, 0x%" G_GINT64_MODIFIER "x bytes at 0x%"
                               G_GINT64_MODIFIER "x", a[i].gpa, a[i].size, a[i].offset);
        g_assert_cmpuint(n_a, ==, n_b);
        g_assert_cmpmem(a, n_a * sizeof *a, b, n_b * sizeof *b);
}

/* The RAM of a running domain, opened. */
static void open_domain_ram(virDomainPtr dom, libvirt_ram *r) {
        g_autofree char *uuid = domain_uuid(dom);
        char msg[LIBVIRT_RAM_MESSAGE_MAX] = "";
        int pidfd = -1;
        pid_t pid;

        if (libvirt_ram_find_qemu(uuid, (uid_t) -1, &pid, &pidfd, msg, sizeof msg) < 0 ||
            libvirt_ram_open(pidfd, pid, r, msg, sizeof msg) < 0)
                g_error("%s", msg);
        close(pidfd);
}

/* The map QEMU tells through the monitor equals the one computed from the
 * machine type, for pc and q35 below and above their splits. */
static void assert_layout_matches(virDomainPtr dom, const libvirt_ram *r) {
        vmsig_gpa_range computed[QEMU_RAM_LAYOUT_MAX_RANGES];
        char msg[LIBVIRT_RAM_MESSAGE_MAX] = "";
        size_t n = 0;
        MapQuery m;

        map_run(dom, r, &m);
        g_assert_cmpint(m.error, ==, 0);
        if (xml_map(dom, r, computed, &n, msg, sizeof msg) < 0)
                g_error("%s", msg);
        assert_same_ranges(m.ranges, m.n, computed, n);
        free(m.ranges);
}

static void test_layout(void) {
        static const struct {
                const char *machine;
                unsigned mib, n_ranges;
        } cases[] = {
                { "q35", 1024, 1 }, { "q35", 3072, 2 }, { "q35", 4096, 2 },
                { "pc", 1024, 1 },  { "pc", 3072, 1 },  { "pc", 4096, 2 },
        };
        g_autoptr(LibvirtHarness) h = NULL;

        if (!(h = libvirt_harness_new_started()))
                return;
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *name = g_strdup_printf("layout-%s-%u", cases[i].machine, cases[i].mib);
                virDomainPtr dom = libvirt_harness_start_paused(h, name, cases[i].machine, cases[i].mib, NULL);
                libvirt_ram r;

                /* Before the firmware ran (the BIOS areas are ROM still). */
                open_domain_ram(dom, &r);
                g_assert_cmpuint(r.size, ==, (guint64) cases[i].mib << 20);
                assert_layout_matches(dom, &r);
                /* And once it has: the same map. */
                if (i == 1) {
                        g_assert_cmpint(virDomainResume(dom), ==, 0);
                        libvirt_harness_wait_guest(h, name, BOOT_TIMEOUT_MS);
                        assert_layout_matches(dom, &r);
                }
                libvirt_ram_done(&r);
                g_assert_cmpint(virDomainDestroy(dom), ==, 0);
                virDomainFree(dom);
        }
}

/* A domain whose split QEMU's command line moves: the map QEMU tells is
 * not the machine type's, and the XML's is refused, saying why. */
static void test_layout_moved(void) {
        g_autoptr(LibvirtHarness) h = NULL;
        vmsig_gpa_range computed[QEMU_RAM_LAYOUT_MAX_RANGES];
        char msg[LIBVIRT_RAM_MESSAGE_MAX] = "";
        size_t n = 0;
        virDomainPtr dom;
        libvirt_ram r;
        MapQuery m;

        if (!(h = libvirt_harness_new_started()))
                return;
        dom = libvirt_harness_start_paused(h, "layout-moved", "q35", 3072,
                                           "<qemu:commandline><qemu:arg value='-machine'/>"
                                           "<qemu:arg value='max-ram-below-4g=1G'/></qemu:commandline>");
        open_domain_ram(dom, &r);
        map_run(dom, &r, &m);
        g_assert_cmpint(m.error, ==, 0);
        g_assert_cmpuint(m.n, ==, 2);
        g_assert_cmphex(m.ranges[0].size, ==, GIB);
        g_assert_cmphex(m.ranges[1].offset, ==, GIB);
        free(m.ranges);
        g_assert_cmpint(xml_map(dom, &r, computed, &n, msg, sizeof msg), ==, -EOPNOTSUPP);
        g_test_message("%s", msg);
        g_assert_nonnull(strstr(msg, "'-machine' may change where QEMU puts the RAM"));
        libvirt_ram_done(&r);
        virDomainFree(dom);
}

/* libvirt-xml.h on XML as libvirt writes it, and on what it never should. */
#define XML_HEAD "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>x</name>"
#define XML_OS(machine) "<os><type arch='x86_64' machine='" machine "'>hvm</type></os>"

static int xml_layout(const char *xml, uint64_t ram, vmsig_gpa_range *r, size_t *n, char *msg) {
        return libvirt_xml_ram_layout(xml, strlen(xml), ram, r, n, msg, LIBVIRT_RAM_MESSAGE_MAX);
}

static void assert_xml_refused(const char *xml, uint64_t ram, int error, const char *why) {
        vmsig_gpa_range r[QEMU_RAM_LAYOUT_MAX_RANGES] = { { 7, 7, 7 } };
        char msg[LIBVIRT_RAM_MESSAGE_MAX] = "";
        size_t n = 77;

        g_assert_cmpint(xml_layout(xml, ram, r, &n, msg), ==, error);
        if (!strstr(msg, why))
                g_error("'%s' does not say '%s'", msg, why);
        g_assert_cmpuint(n, ==, 77);
        g_assert_cmpuint(r[0].gpa, ==, 7);
}

static void test_xml_layout(void) {
        vmsig_gpa_range r[QEMU_RAM_LAYOUT_MAX_RANGES];
        char msg[LIBVIRT_RAM_MESSAGE_MAX] = "";
        size_t n = 0;

        /* libvirt's live XML: KiB; other units as libvirt takes them. */
        g_assert_cmpint(xml_layout(XML_HEAD "<memory unit='KiB'>3145728</memory>" XML_OS("pc-q35-7.2") "</domain>",
                                   3 * GIB, r, &n, msg), ==, 0);
        g_assert_cmpuint(n, ==, 2);
        g_assert_cmphex(r[1].gpa, ==, 4 * GIB);
        g_assert_cmphex(r[1].offset, ==, 2 * GIB);
        g_assert_cmpint(xml_layout(XML_HEAD "<memory unit='G'>4</memory><maxMemory slots='2' unit='GiB'>8</maxMemory>"
                                   XML_OS("pc-i440fx-7.2") "</domain>", 4 * GIB, r, &n, msg), ==, 0);
        g_assert_cmphex(r[0].size, ==, 3 * GIB);
        g_assert_cmpint(xml_layout(XML_HEAD "<memory>1048576</memory>" XML_OS("pc-i440fx-1.7")
                                   "<qemu:commandline><qemu:arg value='-cpu'/></qemu:commandline></domain>", GIB, r,
                                   &n, msg), ==, 0);
        g_assert_cmpuint(n, ==, 1);

        assert_xml_refused("<domain", GIB, -EBADMSG, "no domain XML");
        assert_xml_refused("<vm/>", GIB, -EBADMSG, "no domain XML");
        assert_xml_refused(XML_HEAD "<memory>1048576</memory></domain>", GIB, -EOPNOTSUPP, "not a PC guest");
        assert_xml_refused(XML_HEAD "<memory>1048576</memory><os><type arch='aarch64' machine='virt'>hvm</type></os>"
                           "</domain>", GIB, -EOPNOTSUPP, "'aarch64'");
        assert_xml_refused(XML_HEAD "<memory>1048576</memory><os><type arch='x86_64'>hvm</type></os></domain>", GIB,
                           -EOPNOTSUPP, "names no machine type");
        assert_xml_refused(XML_HEAD "<memory>1048576</memory>" XML_OS("q35") "</domain>", GIB, -EOPNOTSUPP,
                           "'q35' is not one");
        assert_xml_refused(XML_HEAD "<memory>2097152</memory>" XML_OS("pc-q35-7.2") "</domain>", GIB, -EOPNOTSUPP,
                           "some RAM is elsewhere");
        assert_xml_refused(XML_HEAD XML_OS("pc-q35-7.2") "</domain>", GIB, -EOPNOTSUPP, "some RAM is elsewhere");
        assert_xml_refused(XML_HEAD "<memory unit='KB'>1048576</memory>" XML_OS("pc-q35-7.2") "</domain>", GIB,
                           -EOPNOTSUPP, "some RAM is elsewhere");
        assert_xml_refused(XML_HEAD "<memory unit='pages'>1</memory>" XML_OS("pc-q35-7.2") "</domain>", GIB, -EBADMSG,
                           "not a size");
        assert_xml_refused(XML_HEAD "<memory>-1</memory>" XML_OS("pc-q35-7.2") "</domain>", GIB, -EBADMSG,
                           "not a size");
        assert_xml_refused(XML_HEAD "<memory unit='TiB'>99999999999</memory>" XML_OS("pc-q35-7.2") "</domain>", GIB,
                           -EBADMSG, "not a size");
        assert_xml_refused(XML_HEAD "<memory>1048576</memory><maxMemory unit='TiB'>1</maxMemory>"
                           XML_OS("pc-q35-7.2") "</domain>", GIB, -EOPNOTSUPP, "at 1 TiB");
        assert_xml_refused(XML_HEAD "<memory>1048576</memory>" XML_OS("pc-q35-7.2") "<qemu:commandline>"
                           "<qemu:arg value='-global'/><qemu:arg value='pc-q35-7.2-machine.max-ram-below-4g=1G'/>"
                           "</qemu:commandline></domain>", GIB, -EOPNOTSUPP, "max-ram-below-4g");
        assert_xml_refused(XML_HEAD "<memory>1048576</memory>" XML_OS("pc-q35-7.2") "<qemu:commandline>"
                           "<qemu:arg value='-M'/><qemu:arg value='pc'/></qemu:commandline></domain>", GIB,
                           -EOPNOTSUPP, "'-M'");
        assert_xml_refused(XML_HEAD "<memory>1048576</memory>" XML_OS("pc-q35-7.2") "<qemu:commandline>"
                           "<qemu:arg value='--machine'/><qemu:arg value='pc'/></qemu:commandline></domain>", GIB,
                           -EOPNOTSUPP, "'--machine'");
}

/* Errors: no shared RAM, the QEMU gone, a uuid of nobody, claimants. */
static void test_errors(void) {
        g_autoptr(LibvirtHarness) h = NULL;
        g_autofree char *uuid = NULL;
        char msg[LIBVIRT_RAM_MESSAGE_MAX] = "";
        virDomainPtr dom;
        libvirt_ram r;
        pid_t pid = 0, fake;
        int pidfd = -1, other = -1;

        if (!(h = libvirt_harness_new_started()))
                return;
        dom = start_private_domain(h, "ram-private");
        uuid = domain_uuid(dom);

        /* Not a uuid; a uuid of no domain; one of another user's. */
        g_assert_cmpint(libvirt_ram_find_qemu("ram-private", (uid_t) -1, &pid, &pidfd, msg, sizeof msg), ==, -EINVAL);
        g_assert_cmpint(libvirt_ram_find_qemu("00000000-0000-0000-0000-000000000001", (uid_t) -1, &pid, &pidfd, msg,
                                              sizeof msg), ==, -ESRCH);
        g_test_message("%s", msg);
        g_assert_cmpint(libvirt_ram_find_qemu(uuid, 0, &pid, &pidfd, msg, sizeof msg), ==, -ESRCH);

        /* Someone else claims the uuid: refused, unless the uid tells. */
        fake = libvirt_harness_claim_uuid(uuid, NULL);
        /* Until sh's fork for sleep has exec'd: till then two processes
         * claim the uuid (-ENOTUNIQ). */
        for (gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
             libvirt_ram_find_qemu(uuid, 0, &pid, &other, msg, sizeof msg) != 0;)
                g_assert_cmpint(g_get_monotonic_time(), <, end);
        g_assert_cmpint(pid, ==, fake);
        close(other);
        g_assert_cmpint(libvirt_ram_find_qemu(uuid, (uid_t) -1, &pid, &pidfd, msg, sizeof msg), ==, -ENOTUNIQ);
        g_test_message("%s", msg);
        libvirt_harness_end_claim(fake);

        /* No shared RAM: its own error, naming the XML to add. */
        g_assert_cmpint(libvirt_ram_find_qemu(uuid, qemu_uid(), &pid, &pidfd, msg, sizeof msg), ==, 0);
        g_assert_cmpint(libvirt_ram_open(pidfd, pid, &r, msg, sizeof msg), ==, -ENOENT);
        g_test_message("%s", msg);
        g_assert_nonnull(strstr(msg, LIBVIRT_RAM_SHARED_XML));

        /* Destroyed: the process held by the pidfd is gone, and the uuid
         * names nothing any more. */
        g_assert_cmpint(virDomainDestroy(dom), ==, 0);
        g_assert_cmpint(libvirt_ram_open(pidfd, pid, &r, msg, sizeof msg), ==, -ESRCH);
        g_test_message("%s", msg);
        g_assert_cmpint(libvirt_ram_find_qemu(uuid, (uid_t) -1, &pid, &other, msg, sizeof msg), ==, -ESRCH);
        close(pidfd);
        virDomainFree(dom);
}

int main(int argc, char **argv) {
        if (argc == 3 && g_str_equal(argv[1], "--reopen-rw"))
                reopen_rw(atoi(argv[2]));
        self = argv[0];
        /* Before GLib can start a thread: see libvirt-harness.h. */
        libvirt_harness_enter_namespace();
        g_test_init(&argc, &argv, NULL);
        VT_TESTS("/libvirt-ram/", test_parse_maps_line, test_scan, test_cmdline, test_seclabel, test_file_backing,
                 test_memfd_backing, test_errors, test_layout, test_layout_moved, test_xml_layout);
        return g_test_run();
}
