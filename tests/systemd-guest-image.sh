#!/bin/sh
# The disk image of a Debian 12 guest with systemd as PID 1, for the tests
# that run the installed package under systemd (tests/systemd-guest.h):
#
#   tests/systemd-guest-image.sh BUILDDIR
#
# builds BUILDDIR/tests/systemd-guest/root.img (ext4, booted as /dev/vda)
# with mmdebstrap and mke2fs -d, and only if it is missing or its recipe
# changed: the recipe's hash (this script and the Depends of the vmsig
# package in debian/control) is kept in root.img.stamp next to it. The
# image holds the package's runtime dependencies but not the package: a
# test carries its .deb in on a second disk, and every boot starts from the
# same image (QEMU's snapshot=on).
#
# In the guest:
#  - a root shell on ttyS1 (vmsig-test-shell.service), no login, its
#    prompts and echo off: the test's command channel;
#  - an autologin of the user "tester" on tty1: a session on seat0, the
#    only kind in which polkit's allow_active holds. Its login shell runs
#    the commands root hands it with "as-seat-user CMD", in that session;
#  - QEMU with its firmware, for a VM started in the guest as libvirt
#    would, under a user of its own, and libvirt itself, enabled as its
#    package enables it (its sockets, and libvirt-guests.service, which
#    starts libvirtd at boot);
#  - no network, a fixed machine-id (no first-boot setup), root=/dev/vda.
#
# mmdebstrap takes the configured apt sources, so the first build needs
# them (about 20-60 s); a cached run only hashes. Needs root (the tree's
# owners and setuid bits go into the image as they are). Concurrent callers
# wait for each other (flock).
set -eu

if [ $# -ne 1 ]; then
        echo "usage: $0 BUILDDIR" >&2
        exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
srcdir="${VMSIG_SRCDIR:-$here/..}"
out="$1/tests/systemd-guest"
img="$out/root.img"
suite=bookworm
# What systemd, the system bus, logind and polkit need, and the user
# session's PAM; passwd for useradd.
base="systemd,systemd-sysv,dbus,polkitd,pkexec,libpam-systemd,udev,kmod,passwd"
# A VM in the guest (TCG, firmware only: qemu-system-x86 brings SeaBIOS),
# started by hand or by libvirt: its daemon under systemd (socket
# activation, the user libvirt-qemu, Debian's qemu.conf), as vmsig's
# default configuration expects it (<libvirt uri="qemu:///system">).
vm="qemu-system-x86,libvirt-daemon-system,libvirt-daemon-driver-qemu,libvirt-clients"
# ${shlibs:Depends} of the vmsig package, which debian/control cannot
# spell: the libraries vmsigd and vmsigctl of the armed build link, and
# libvmsig-vgpu0's libpng (vmsig recommends it).
shlibs="libsystemd0,libxml2,libjson-c5,libvirt0,libpng16-16"

# The Depends field of the vmsig package: its literal entries, the first
# alternative of each, without versions and substitution variables.
control_depends() {
        awk '/^Package: /{p = ($2 == "vmsig")} p && /^[A-Za-z-]+:/{f = ($1 == "Depends:")} p && f' \
                "$srcdir/debian/control" |
                sed -e 's/^Depends://' -e 's/#.*//' | tr ',' '\n' |
                sed -e 's/|.*//' -e 's/(.*)//' -e 's/\[.*\]//' -e 's/[[:space:]]//g' |
                grep -v -e '^$' -e '^\${' | paste -sd, -
}

command -v mmdebstrap >/dev/null || { echo "mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
command -v mke2fs >/dev/null || { echo "mke2fs is missing (apt-get install e2fsprogs)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "building the image needs root" >&2; exit 1; }

depends=$(control_depends)
packages="$base,$vm,$shlibs${depends:+,$depends}"
recipe=$( { cat "$0"; echo "$packages"; } | sha256sum | cut -d' ' -f1)

mkdir -p "$out"
exec 9>"$out/lock"
flock 9
if [ -f "$img" ] && [ "$(cat "$img.stamp" 2>/dev/null)" = "$recipe" ]; then
        exit 0
fi
rm -f "$img" "$img.stamp"
tree=$(mktemp -d "$out/tree.XXXXXX")
trap 'rm -rf "$tree" "$img.tmp"' EXIT
echo "building $img: $packages" >&2
start=$(date +%s)
mmdebstrap --quiet --variant=minbase --include="$packages" "$suite" "$tree"

echo vmsig-guest >"$tree/etc/hostname"
# A fixed id: with "uninitialized" every boot would be a first boot.
echo 5c0ffee0d15ea5e0b0a7ab1e5e1f7e57 >"$tree/etc/machine-id"
echo "/dev/vda / ext4 rw,relatime 0 1" >"$tree/etc/fstab"
chroot "$tree" useradd --create-home --shell /bin/bash tester

cat >"$tree/etc/systemd/system/vmsig-test-shell.service" <<'EOF'
[Unit]
Description=Root shell on ttyS1 for the tests
DefaultDependencies=no
After=systemd-remount-fs.service
Before=shutdown.target
Conflicts=shutdown.target

[Service]
# No prompts (stderr goes nowhere, the test redirects each command's) and
# no echo or CR: what comes back is the commands' output.
ExecStart=/bin/sh -c 'stty -echo -onlcr; exec /bin/sh'
StandardInput=tty-force
StandardOutput=tty
StandardError=null
# Plain output: no colours, pagers or terminal queries on a serial line.
Environment=TERM=dumb SYSTEMD_COLORS=0 SYSTEMD_PAGER=cat PAGER=cat
TTYPath=/dev/ttyS1
TTYReset=yes
# A shell ignores SIGTERM: without this, poweroff waits 90 s for it.
KillSignal=SIGHUP
Restart=always

[Install]
WantedBy=sysinit.target
EOF
mkdir -p "$tree/etc/systemd/system/getty@tty1.service.d"
cat >"$tree/etc/systemd/system/getty@tty1.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin tester --noclear %I $TERM
EOF
# The tester's tty1 login runs a loop that executes, in that session, the
# command files root drops into /run/vmsig-seat (as-seat-user, below).
cat >"$tree/home/tester/.bash_profile" <<'EOF'
[ "$(tty)" = /dev/tty1 ] && exec /usr/local/lib/vmsig-test/seat-loop
EOF
mkdir -p "$tree/usr/local/lib/vmsig-test"
cat >"$tree/usr/local/lib/vmsig-test/seat-loop" <<'EOF'
#!/bin/sh
# N.cmd -> N.out (stdout and stderr) and N.rc (the exit status, last).
dir=/run/vmsig-seat
while :; do
        for c in "$dir"/*.cmd; do
                [ -f "$c" ] || continue
                n=${c%.cmd}
                mv "$c" "$n.run"
                sh "$n.run" >"$n.out" 2>&1 </dev/null
                echo $? >"$n.rc.tmp"
                mv "$n.rc.tmp" "$n.rc"
        done
        sleep 0.2
done
EOF
cat >"$tree/usr/local/bin/as-seat-user" <<'EOF'
#!/bin/sh
# as-seat-user CMD: runs CMD as tester in the tty1 session (on seat0),
# prints its output and exits with its status.
dir=/run/vmsig-seat
mkdir -p "$dir" && chown tester "$dir" && chmod 700 "$dir"
n="$dir/$$"
printf '%s\n' "$1" >"$n.tmp"
chown tester "$n.tmp"
mv "$n.tmp" "$n.cmd"
while [ ! -f "$n.rc" ]; do sleep 0.2; done
cat "$n.out"
rc=$(cat "$n.rc")
rm -f "$n.run" "$n.out" "$n.rc"
exit "$rc"
EOF
chmod 755 "$tree/usr/local/lib/vmsig-test/seat-loop" "$tree/usr/local/bin/as-seat-user"
chroot "$tree" chown tester:tester /home/tester/.bash_profile
systemctl --root="$tree" enable vmsig-test-shell.service getty@tty1.service >/dev/null 2>&1
# Nothing to wait for without a network.
systemctl --root="$tree" mask systemd-networkd-wait-online.service >/dev/null 2>&1
rm -rf "$tree/var/cache/apt/archives"/*.deb "$tree/var/lib/apt/lists"/*_Packages

mke2fs -q -d "$tree" -t ext4 -L vmsig-guest "$img.tmp" 1G
mv "$img.tmp" "$img"
echo "$recipe" >"$img.stamp"
echo "built $img in $(($(date +%s) - start)) s" >&2
