#!/bin/sh
# Install what building and testing vmsig needs on Debian 12, if missing.
# Sourced by demo.sh and test.sh; safe to run again.
set -e
# libpng-dev: libvmsig-vgpu, the guest display as frames (configure
# --enable-vgpu, on by default when libpng is there).
# linux-image-cloud-amd64, busybox-static, cpio: a real Linux guest for the
# bootstrap's tests (Debian's kernel and an initramfs built at test time).
# libvirt-dev: the libvirt backend (configure --enable-libvirt, in the armed
# build); libvirt-daemon-system, libvirt-daemon-driver-qemu, libvirt-clients:
# the private libvirtd its tests start (its packages start nothing).
# mmdebstrap, e2fsprogs: the image of the Debian guest with systemd as PID 1
# (tests/systemd-guest-image.sh).
VMSIG_DEPS="build-essential autoconf automake libtool autoconf-archive pkg-config
libsystemd-dev libxml2-dev libxml2-utils libglib2.0-dev libglib2.0-bin libdbus-1-dev
dbus-daemon systemd polkitd pkexec valgrind strace util-linux
libjson-c-dev qemu-system-x86 clang libpng-dev
debhelper dpkg-dev lintian bash-completion man-db groff-base dbus
linux-image-cloud-amd64 busybox-static cpio
libvirt-dev libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
mmdebstrap e2fsprogs"

missing=""
for p in $VMSIG_DEPS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
        if [ "$(id -u)" -ne 0 ]; then
                echo "Missing packages:$missing (run as root to install them)" >&2
                exit 1
        fi
        echo "Installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
