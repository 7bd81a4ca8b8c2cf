/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The package as deployed (issue 19): the vmsig .deb installed with apt in
 * the systemd guest of tests/systemd-guest.h, where vmsigd runs under its
 * own unit, D-Bus activated, in its sandbox, with logind and polkit as on a
 * real host. One boot; the tests run in order on it, each building on the
 * ones before: install and activation, the armed path against a QEMU that
 * runs in the guest under its own user, libvirt domains (libvirtd under
 * systemd, memfd and file RAM) without memctx under the shipped unit and
 * with it under the package's drop-in, polkit in a seat session, a
 * seatless one and through the example rules, reload, restart under a
 * lease, stop, the journal's audit records, purge.
 *
 * The packages come from VMSIG_DEB (vmsig_VERSION_ARCH.deb; libvmsig-vgpu0
 * of the same version is taken from its directory): .ci/run passes the ones
 * tests/check-deb.sh built. Without it the test is skipped, except under
 * CI=true, where it fails. The packages and tests/deb-systemd-guest.sh (the
 * shell functions used in the guest) go in on the guest's second disk.
 */
#include <stdio.h>
#include <string.h>
#include <glib/gstdio.h>

#include "systemd-guest.h"

#define BOOT_TIMEOUT_MS 150000
#define POWEROFF_TIMEOUT_MS 60000
#define GUEST_LIB "deb-systemd-guest.sh"
#define CLIENT "vmsig-test-client"
/* Every command that uses the functions starts with this. */
#define LIB ". /mnt/debs/" GUEST_LIB "; "
#define VM "testvm"
#define LV_VM "lvmemfd"
#define LV_FILE_VM "lvfile"
#define MAX_EXPOSURE 1.0
/* The administrator polkit asks for (Debian's rules: the group sudo). */
#define ADMIN "vmsigadm"
#define PASSWORD "vmsig-guest-password"

static SystemdGuest *guest;
/* When the libvirt steps began: what they add to the test is shown. */
static int64_t libvirt_t0;

static bool missing(const char *why);

/* Under CI, a guest that did not boot fails every step after the boot's. */
static bool have_guest(void) {
        return guest ? true : missing("the guest did not boot");
}

/* The command's output; on another status, that and vmsigd's journal. */
static char *run(const char *cmd, int expected) {
        g_autofree char *out = NULL, *journal = NULL;
        int status = guest_run(guest, cmd, &out);

        if (status == expected)
                return g_steal_pointer(&out);
        (void) guest_run(guest, "journalctl -u vmsigd --no-pager | tail -40", &journal);
        g_error("'%s' exited with %d, not %d:\n%s\nvmsigd's journal ends in:\n%s", cmd, status, expected, out,
                journal);
}
#define RUN(cmd) g_free(run((cmd), 0))

static void contains(const char *cmd, int expected, const char *needle) {
        g_autofree char *out = run(cmd, expected);

        systemd_guest_assert_contains(out, needle);
}

/* --- the packages on the second disk, the boot -------------------------- */

static bool missing(const char *why) {
        if (g_strcmp0(g_getenv("CI"), "true") == 0)
                g_error("%s; CI must not skip the package's test under systemd", why);
        g_test_skip(why);
        return false;
}

static void copy_into(const char *src, const char *dir) {
        g_autofree char *base = g_path_get_basename(src), *dst = g_build_filename(dir, base, NULL);
        g_autofree char *text = NULL;
        g_autoptr(GError) error = NULL;
        gsize len;

        if (!g_file_get_contents(src, &text, &len, &error) || !g_file_set_contents(dst, text, len, &error))
                g_error("copying %s: %s", src, error->message);
}

/* A world-readable directory (the tester reads the functions too) with
 * vmsig's and libvmsig-vgpu0's .deb, the guest's functions and the test
 * client (it probes a memctx fd as nobody; the guest has its libraries). */
static char *data_dir(const char *deb) {
        g_autoptr(GError) error = NULL;
        g_autofree char *debdir = g_path_get_dirname(deb), *base = g_path_get_basename(deb);
        g_autofree char *lib = NULL, *libdeb = NULL, *client = NULL;
        g_auto(GStrv) parts = NULL;
        char *dir = g_dir_make_tmp("vmsig-debs-XXXXXX", &error);

        g_assert_no_error(error);
        g_assert_cmpint(g_chmod(dir, 0755), ==, 0);
        /* vmsig_VERSION_ARCH.deb -> libvmsig-vgpu0_VERSION_ARCH.deb */
        parts = g_strsplit(base, "_", 2);
        g_assert_cmpstr(parts[0], ==, "vmsig");
        g_assert_nonnull(parts[1]);
        libdeb = g_strdup_printf("%s/libvmsig-vgpu0_%s", debdir, parts[1]);
        lib = g_build_filename(g_getenv("VMSIG_SRCDIR"), "tests", GUEST_LIB, NULL);
        client = g_build_filename(g_getenv("VMSIG_BUILDDIR"), "tests", CLIENT, NULL);
        copy_into(deb, dir);
        copy_into(libdeb, dir);
        copy_into(lib, dir);
        copy_into(client, dir);
        g_autofree char *copy = g_build_filename(dir, CLIENT, NULL);
        g_assert_cmpint(g_chmod(copy, 0755), ==, 0);
        return dir;
}

static void rm_rf(const char *dir) {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;

        while (d && (name = g_dir_read_name(d))) {
                g_autofree char *path = g_build_filename(dir, name, NULL);
                (void) g_unlink(path);
        }
        (void) g_rmdir(dir);
}

static void test_boot(void) {
        const char *deb = g_getenv("VMSIG_DEB");
        g_autofree char *dir = NULL;
        int64_t t0 = g_get_monotonic_time();

        if (!deb || !*deb)
                (void) missing("VMSIG_DEB does not name the vmsig .deb (tests/check-deb.sh builds it)");
        else if (!g_file_test(deb, G_FILE_TEST_IS_REGULAR))
                g_error("VMSIG_DEB=%s does not exist", deb);
        if (!deb || !*deb || !systemd_guest_available())
                return;
        dir = data_dir(deb);
        guest = systemd_guest_new(dir);
        rm_rf(dir);
        systemd_guest_start(guest, BOOT_TIMEOUT_MS);
        g_test_message("the shell answered %.1f s after QEMU's start", systemd_guest_boot_ms(guest) / 1000.0);
        (void) guest_run(guest, "systemctl is-system-running --wait", NULL);
        RUN("mkdir -p /mnt/debs && mount -o ro /dev/vdb /mnt/debs");
        g_test_message("ready in %.1f s", (double) (g_get_monotonic_time() - t0) / G_USEC_PER_SEC);
}

/* --- install, activation, the sandbox's score ---------------------------- */

static void test_install(void) {
        g_autofree char *out = NULL;

        if (!have_guest())
                return;
        /* Offline: the image holds every dependency, and has no lists. */
        out = run("DEBIAN_FRONTEND=noninteractive apt-get install -q -y "
                  "/mnt/debs/vmsig_*.deb /mnt/debs/libvmsig-vgpu0_*.deb",
                  0);
        g_test_message("%s", out);
        RUN("dpkg -L vmsig libvmsig-vgpu0 >/var/tmp/files");
        /* Not enabled and not started by the postinst: activation starts it. */
        contains("systemctl is-active vmsigd", 3, "inactive");
        contains("systemctl is-enabled vmsigd", 1, "disabled");
}

static void test_activation(void) {
        g_autofree char *pid = NULL, *main_pid = NULL;

        if (!have_guest())
                return;
        contains("busctl call org.vmsig /org/vmsig org.freedesktop.DBus.Properties Get ss org.vmsig.Manager Version",
                 0, "v s \"");
        contains("systemctl is-active vmsigd", 0, "active");
        contains("systemctl status --no-pager vmsigd", 0, "Active: active (running)");
        /* The bus name belongs to the unit's main process. */
        pid = run("busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus "
                  "GetConnectionUnixProcessID s org.vmsig | cut -d' ' -f2",
                  0);
        main_pid = run("systemctl show -p MainPID --value vmsigd", 0);
        g_assert_cmpstr(g_strstrip(pid), ==, g_strstrip(main_pid));
}

/* What systemd-analyze security says of the unit as it is now. */
static double unit_exposure(void) {
        g_autofree char *out = run("systemd-analyze security --no-pager vmsigd.service", 0);
        const char *level = strstr(out, "Overall exposure level for vmsigd.service: ");
        double exposure;

        if (!level || sscanf(strchr(level, ':') + 1, "%lf", &exposure) != 1)
                g_error("no exposure level in:\n%s", out);
        return exposure;
}

static void test_security(void) {
        double exposure;

        if (!have_guest())
                return;
        exposure = unit_exposure();
        g_test_message("systemd-analyze security: %.1f", exposure);
        if (exposure > MAX_EXPOSURE) {
                g_autofree char *out = run("systemd-analyze security --no-pager vmsigd.service", 0);
                g_error("the installed unit's exposure is %.1f, more than %.1f:\n%s", exposure, MAX_EXPOSURE, out);
        }
}

/* The sysusers group (empty), the tmpfiles directories, the conffile. */
static void test_files(void) {
        if (!have_guest())
                return;
        contains("getent group vmsig", 0, "vmsig:x:");
        contains("stat -c '%U %G %a %F' /run/vmsig/vms.d", 0, "root root 755 directory");
        contains("dpkg-query -W -f='${Conffiles}' vmsig", 0, "/etc/vmsig/vmsigd.conf ");
        RUN("/usr/libexec/vmsigd --check-config /etc/vmsig/vmsigd.conf");
}

/* --- the armed path: a QEMU of another user, through the trigger file ---- */

static void test_vm(void) {
        g_autofree char *out = NULL;

        if (!have_guest())
                return;
        out = run(LIB "start_vm", 0);
        g_test_message("%s", out);
        /* Nobody but QEMU's user may enter its directories. */
        systemd_guest_assert_contains(out, "drwx------ 2 qemuuser qemuuser");
        systemd_guest_assert_contains(out, "-rw------- 1 qemuuser qemuuser 134217728");
        RUN(LIB "announce_vm");
        out = run(LIB "wait_endpoint", 0);
        g_test_message("%s", out);
        systemd_guest_assert_contains(out, "running");
}

static void test_memctx(void) {
        g_autofree char *out = NULL;

        if (!have_guest())
                return;
        /* dump-memctx subscribes to the memory context and shows it. */
        out = run("vmsigctl dump-memctx " VM, 0);
        g_test_message("%s", out);
}

static void test_memwrite(void) {
        g_autofree char *out = NULL;

        if (!have_guest())
                return;
        RUN("vmsigctl memwrite " VM " 0x600 c0ffee42");
        /* In QEMU's RAM file: vmsigd wrote through its own mapping. */
        out = run(LIB "ram_bytes 0x600 4", 0);
        g_assert_cmpstr(out, ==, "c0ffee42");
}

static void test_lifecycle(void) {
        if (!have_guest())
                return;
        RUN("vmsigctl pause " VM);
        contains("vmsigctl status " VM, 0, "paused");
        RUN("vmsigctl resume " VM);
        contains("vmsigctl status " VM, 0, "running");
}

/* --- a libvirt domain, as the package's configuration attaches it --------- */

/* Under the shipped unit the domains are endpoints without memctx, and
 * vmsigd's log names the capability it lacks, as does SubscribeMemctx's
 * RamUnavailable (through vmsigctl, and by name through the test client). */
static void test_libvirt_shipped(void) {
        g_autofree char *out = NULL;

        if (!have_guest())
                return;
        libvirt_t0 = g_get_monotonic_time();
        out = run(LIB "start_libvirt_vm", 0);
        g_test_message("%s", out);
        g_free(out);
        out = run(LIB "wait_lv_endpoint " LV_VM, 0);
        g_test_message("%s", out);
        systemd_guest_assert_contains(out, "Backend: libvirt");
        systemd_guest_assert_contains(out, "State: paused");
        g_assert_null(strstr(out, "memctx"));
        g_free(out);
        out = run(LIB "wait_lv_endpoint " LV_FILE_VM, 0);
        g_assert_null(strstr(out, "memctx"));
        contains("journalctl -u vmsigd --no-pager | grep \"'" LV_VM "' has no memory context\"", 0, "CAP_SYS_PTRACE");
        /* The memory calls say so too, not "no memory context yet". */
        g_free(out);
        out = run("vmsigctl dump-memctx " LV_VM, 1);
        systemd_guest_assert_contains(out, "CAP_SYS_PTRACE");
        systemd_guest_assert_contains(out, "vmsigd-libvirt-memctx.conf");
        contains("/mnt/debs/" CLIENT " --probe-memctx /org/vmsig/endpoint/" LV_VM " org.freedesktop.DBus.Peer Ping; true",
                 0, "subscribe-error org.vmsig.Error.RamUnavailable");
}

/* A write into the domain's RAM that QEMU sees, and none for nobody,
 * who may receive the fd. */
static void check_libvirt_ram(const char *name) {
        g_autofree char *cmd = g_strdup_printf("vmsigctl memwrite %s 0x600 c0ffee42", name);
        g_autofree char *read_back = g_strdup_printf(LIB "lv_ram_bytes %s 0x600 4", name);
        g_autofree char *probe = g_strdup_printf(LIB "lv_probe_as_nobody %s", name);
        g_autofree char *out = NULL;

        RUN(cmd);
        out = run(read_back, 0);
        g_assert_cmpstr(out, ==, "c0ffee42");
        g_free(out);
        out = run(probe, 0);
        g_test_message("%s: %s", name, out);
        systemd_guest_assert_contains(out, "subscribed epoch");
        systemd_guest_assert_contains(out, "reopen-rw EACCES\n");
        systemd_guest_assert_contains(out, "mmap-write EACCES\n");
        systemd_guest_assert_contains(out, "write EBADF\n");
        systemd_guest_assert_contains(out, "read OK ");
}

/* With the package's drop-in: the memctx of both. */
static void test_libvirt_memctx(void) {
        g_autofree char *out = NULL;
        double exposure;

        if (!have_guest())
                return;
        RUN("mkdir -p /etc/systemd/system/vmsigd.service.d && cp /usr/share/doc/vmsig/examples/"
            "vmsigd-libvirt-memctx.conf /etc/systemd/system/vmsigd.service.d/libvirt-memctx.conf && "
            "systemctl daemon-reload && systemctl restart vmsigd");
        out = run(LIB "wait_lv_endpoint " LV_VM " memctx", 0);
        g_test_message("%s", out);
        g_free(out);
        out = run(LIB "wait_lv_endpoint " LV_FILE_VM " memctx", 0);
        g_free(out);
        /* The memfd (0777) lost write for group and others; the file
         * (0644) needed no change. */
        out = run(LIB "lv_ram_modes", 0);
        g_assert_cmpstr(out, ==, "memfd 744\nfile 644 libvirt-qemu\n");
        check_libvirt_ram(LV_VM);
        check_libvirt_ram(LV_FILE_VM);
        exposure = unit_exposure();
        g_test_message("systemd-analyze security with the drop-in: %.1f", exposure);
}

/* The domains' end detaches them; the unit is the shipped one again. */
static void test_libvirt_stop(void) {
        if (!have_guest())
                return;
        RUN("for d in " LV_VM " " LV_FILE_VM "; do virsh -q destroy $d && virsh -q undefine $d || exit; done");
        RUN(LIB "wait_for 120 sh -c '! vmsigctl status " LV_VM " && ! vmsigctl status " LV_FILE_VM "'");
        RUN("rm /etc/systemd/system/vmsigd.service.d/libvirt-memctx.conf && systemctl daemon-reload && "
            "systemctl restart vmsigd");
        RUN(LIB "wait_endpoint");
        g_test_message("the libvirt steps took %.1f s",
                       (double) (g_get_monotonic_time() - libvirt_t0) / G_USEC_PER_SEC);
}

/* --- polkit with logind ---------------------------------------------------- */

/* Debian's polkit asks for a member of the group sudo: one with a password.
 * The tester's tty1 login is a local session on seat0, active. */
static void test_polkit_seat(void) {
        g_autofree char *out = NULL;

        if (!have_guest())
                return;
        RUN("useradd --create-home --groups sudo " ADMIN " && echo '" ADMIN ":" PASSWORD "' | chpasswd");
        /* The autologin may still be on its way. */
        RUN(LIB "wait_for 120 sh -c 'loginctl show-seat seat0 -p ActiveSession --value | grep -q .'");
        out = run("as-seat-user '" LIB "session_props'", 0);
        systemd_guest_assert_contains(out, "Name=tester\n");
        systemd_guest_assert_contains(out, "Seat=seat0\n");
        systemd_guest_assert_contains(out, "Active=yes\n");
        /* vmsigctl on a terminal starts pkttyagent, which asks for the
         * administrator's password (auth_admin_keep). */
        out = run("as-seat-user '" LIB "with_password " PASSWORD " vmsigctl pause " VM "'", 0);
        g_test_message("%s", out);
        systemd_guest_assert_contains(out, "AUTHENTICATING FOR org.vmsig.");
        systemd_guest_assert_contains(out, "Password:");
        contains("vmsigctl status " VM, 0, "paused");
        RUN("vmsigctl resume " VM);
}

/* The same user in a login session without a seat (as over ssh). */
static void test_polkit_seatless(void) {
        g_autofree char *out = NULL;
        int status;

        if (!have_guest())
                return;
        out = run(LIB "seatless sh -c '" LIB "session_props'", 0);
        systemd_guest_assert_contains(out, "Name=tester\n");
        systemd_guest_assert_contains(out, "Seat=\n");
        /* Without an agent the denial says which action it needed. */
        status = guest_run(guest, LIB "seatless vmsigctl --no-ask-password pause " VM, &out);
        g_assert_cmpint(status, !=, 0);
        systemd_guest_assert_contains(out, "Interactive authentication is required for org.vmsig.");
        contains("vmsigctl status " VM, 0, "running");
        /* With one, on its terminal, the administrator's password does it. */
        g_free(out);
        out = run(LIB "seatless sh -c '" LIB "with_password " PASSWORD " vmsigctl pause " VM "'", 0);
        systemd_guest_assert_contains(out, "AUTHENTICATING FOR org.vmsig.");
        contains("vmsigctl status " VM, 0, "paused");
        RUN("vmsigctl resume " VM);
}

/* A member of the group vmsig, with the package's example rules in
 * place, needs no password (in a new seatless session: nothing kept). */
static void test_polkit_group(void) {
        if (!have_guest())
                return;
        RUN("usermod --append --groups vmsig tester && "
            "install -m 644 /usr/share/doc/vmsig/examples/50-vmsig.rules /etc/polkit-1/rules.d/");
        /* polkitd picks the rules up on its own, soon after. */
        RUN(LIB "wait_for 60 seatless vmsigctl --no-ask-password pause " VM);
        contains("vmsigctl status " VM, 0, "paused");
        RUN(LIB "seatless vmsigctl --no-ask-password resume " VM);
        contains("vmsigctl status " VM, 0, "running");
}

/* --- service management ---------------------------------------------------- */

/* A stub VM added to the configuration appears on reload, in the same
 * process. */
static void test_reload(void) {
        g_autofree char *pid = NULL, *pid_after = NULL, *out = NULL;

        if (!have_guest())
                return;
        pid = run("systemctl show -p MainPID --value vmsigd", 0);
        out = run("vmsigctl --no-legend list", 0);
        g_assert_null(strstr(out, "alpha"));
        RUN("sed -i 's|</vmsigd>|<stub-vm name=\"alpha\" ram-size=\"1M\"/></vmsigd>|' /etc/vmsig/vmsigd.conf");
        /* The reload returns once vmsigd has reloaded (Manager.Reload()). */
        RUN("systemctl reload vmsigd");
        contains("vmsigctl --no-legend list", 0, "alpha");
        pid_after = run("systemctl show -p MainPID --value vmsigd", 0);
        g_assert_cmpstr(pid, ==, pid_after);
        /* A file that does not load fails the reload and changes nothing. */
        RUN("cp /etc/vmsig/vmsigd.conf /var/tmp/vmsigd.conf && echo '<vmsigd><bogus/></vmsigd>' >/etc/vmsig/vmsigd.conf");
        g_free(out);
        out = run("systemctl reload vmsigd", 1);
        g_free(out);
        out = run("journalctl -u vmsigd --no-pager | tail -4", 0);
        g_test_message("%s", out);
        systemd_guest_assert_contains(out, "/etc/vmsig/vmsigd.conf:1");
        contains("vmsigctl --no-legend list", 0, "alpha");
        RUN("mv /var/tmp/vmsigd.conf /etc/vmsig/vmsigd.conf && systemctl reload vmsigd");
}

/* A lease holder sees its lease end when vmsigd restarts, and can take it
 * again from the new one. */
static void test_restart(void) {
        g_autofree char *out = NULL;

        if (!have_guest())
                return;
        RUN(LIB "hold_lease 1");
        RUN("systemctl restart vmsigd");
        out = run(LIB "lease_gone 1", 0);
        g_test_message("%s", out);
        systemd_guest_assert_contains(out, "lease of '" VM "'");
        RUN(LIB "wait_endpoint");
        RUN(LIB "hold_lease 2");
        RUN("kill -INT $(cat /var/tmp/lease2.pid)");
        RUN(LIB "lease_gone 2");
}

/* vmsigd ends with success, removes its socket and leaves the VM running. */
static void test_stop(void) {
        g_autofree char *out = NULL;

        if (!have_guest())
                return;
        RUN("systemctl stop vmsigd");
        out = run("systemctl show -p Result -p ActiveState -p ExecMainStatus vmsigd", 0);
        systemd_guest_assert_contains(out, "Result=success\n");
        systemd_guest_assert_contains(out, "ActiveState=inactive\n");
        systemd_guest_assert_contains(out, "ExecMainStatus=0\n");
        RUN("test ! -e /run/vmsig/private");
        contains("systemctl is-active " VM, 0, "active");
}

/* --- audit and removal ----------------------------------------------------- */

static void test_journal(void) {
        g_autofree char *out = NULL;

        if (!have_guest())
                return;
        out = run("journalctl --no-pager -o verbose VMSIG_ACTION=org.vmsig.lifecycle", 0);
        systemd_guest_assert_contains(out, "VMSIG_ACTION=org.vmsig.lifecycle\n");
        systemd_guest_assert_contains(out, "VMSIG_ENDPOINT=" VM "\n");
        systemd_guest_assert_contains(out, "VMSIG_RESULT=");
        systemd_guest_assert_contains(out, "VMSIG_SENDER=:");
        /* root's calls and the tester's. */
        systemd_guest_assert_contains(out, "VMSIG_UID=0\n");
        systemd_guest_assert_contains(out, "VMSIG_UID=1000\n");
}

/* Nothing of the package is left: its files, directories, unit and bus
 * name. The group vmsig stays: Debian leaves system groups behind, since
 * files may still belong to them. */
static void test_purge(void) {
        g_autofree char *out = NULL;

        if (!have_guest())
                return;
        /* What the VM's starter and the administrator put there goes first. */
        RUN("systemctl stop " VM " && rm /run/vmsig/vms.d/" VM ".xml /etc/polkit-1/rules.d/50-vmsig.rules");
        out = run("DEBIAN_FRONTEND=noninteractive apt-get purge -q -y vmsig libvmsig-vgpu0", 0);
        g_test_message("%s", out);
        g_free(out);
        out = run("while read -r f; do if [ ! -d \"$f\" ] && { [ -e \"$f\" ] || [ -L \"$f\" ]; }; then "
                  "echo \"$f\"; fi; done </var/tmp/files; "
                  "for d in /etc/vmsig /run/vmsig /usr/share/vmsig /usr/share/doc/vmsig "
                  "/usr/share/doc/libvmsig-vgpu0; do [ -e $d ] && echo $d; done; true",
                  0);
        g_assert_cmpstr(out, ==, "");
        contains("dpkg -s vmsig", 1, "is not installed");
        contains("systemctl cat vmsigd.service", 1, "No files found");
        RUN("! pidof vmsigd");
        RUN(LIB "wait_for 20 sh -c '! busctl list --activatable | grep -q org.vmsig'");
        contains("getent group vmsig", 0, "vmsig:x:");
}

static void test_poweroff(void) {
        if (!have_guest())
                return;
        if (!systemd_guest_poweroff(guest, POWEROFF_TIMEOUT_MS)) {
                g_autofree char *tail = systemd_guest_console_tail(guest, 4000);
                g_error("the guest did not power off in %d ms; the console ended in:\n%s", POWEROFF_TIMEOUT_MS,
                        tail);
        }
}

int main(int argc, char *argv[]) {
        int r;

        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/deb-systemd/boot", test_boot);
        g_test_add_func("/deb-systemd/install", test_install);
        g_test_add_func("/deb-systemd/activation", test_activation);
        g_test_add_func("/deb-systemd/security", test_security);
        g_test_add_func("/deb-systemd/files", test_files);
        g_test_add_func("/deb-systemd/vm", test_vm);
        g_test_add_func("/deb-systemd/memctx", test_memctx);
        g_test_add_func("/deb-systemd/memwrite", test_memwrite);
        g_test_add_func("/deb-systemd/lifecycle", test_lifecycle);
        g_test_add_func("/deb-systemd/libvirt-shipped", test_libvirt_shipped);
        g_test_add_func("/deb-systemd/libvirt-memctx", test_libvirt_memctx);
        g_test_add_func("/deb-systemd/libvirt-stop", test_libvirt_stop);
        g_test_add_func("/deb-systemd/polkit-seat", test_polkit_seat);
        g_test_add_func("/deb-systemd/polkit-seatless", test_polkit_seatless);
        g_test_add_func("/deb-systemd/polkit-group", test_polkit_group);
        g_test_add_func("/deb-systemd/reload", test_reload);
        g_test_add_func("/deb-systemd/restart", test_restart);
        g_test_add_func("/deb-systemd/stop", test_stop);
        g_test_add_func("/deb-systemd/journal", test_journal);
        g_test_add_func("/deb-systemd/purge", test_purge);
        g_test_add_func("/deb-systemd/poweroff", test_poweroff);
        r = g_test_run();
        g_clear_pointer(&guest, systemd_guest_free);
        return r;
}
