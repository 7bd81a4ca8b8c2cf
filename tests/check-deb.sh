#!/bin/sh
# The Debian packages (debian/, the armed build): vmsig, the shared library
# libvmsig-vgpu0 that vmsigd loads for screen frames, and libvmsig-vgpu-dev.
# Build them with dpkg-buildpackage, check them with lintian, install them
# with dpkg -i, find every file they claim and the key files where they
# belong (the library usable through pkg-config), start the installed
# vmsigd on a private system bus made of the installed bus policy and
# activation file (directly, loading the installed library, then by D-Bus
# activation, then without the library, which vmsig only recommends), and
# purge them again, leaving nothing behind. Prints TAP.
#
# It installs and removes packages on this machine, so it is not part of
# make check: CI runs it (.ci/run). It needs root and refuses to touch a
# vmsig that was installed before.
#
#   tests/check-deb.sh [vmsig_VERSION_ARCH.deb]
#
# With the vmsig .deb (or VMSIG_DEB=...) those packages are checked: the
# library's two are taken from the same directory, of the same version and
# architecture. Otherwise they are built from a copy of the source tree (its
# files known to git, as they are in the work tree) in a temporary
# directory, since dpkg-buildpackage writes next to the source directory.
# DEB_BUILD_OPTIONS is passed on (nocheck skips make check in the build);
# VMSIG_DEB_KEEP=DIR keeps the packages it built there.
srcdir="${VMSIG_SRCDIR:-$(dirname "$0")/..}"
srcdir=$(cd "$srcdir" && pwd)
deb="${1:-${VMSIG_DEB:-}}"
# shellcheck source=tests/tap.sh
. "$(dirname "$0")/tap.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmsig-deb.XXXXXX")
# Unprivileged users (lintian, a caller on the bus) work in here too.
chmod 755 "$tmp"
# Removal order: what depends on the library first.
packages="libvmsig-vgpu-dev libvmsig-vgpu0 vmsig"
installed=""
bus_pid=""
daemon_pid=""

# missing TOOL PACKAGE: fails under CI, where nothing may be skipped.
missing() {
        tap_unavailable "$1" "$1 is not installed (apt-get install $2)"
}
stop_pid() { # stop_pid PID: SIGTERM, then wait up to 5 s, then SIGKILL
        [ -n "$1" ] || return 0
        kill -TERM "$1" 2>/dev/null || return 0
        i=0
        while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do
                sleep 0.1
                i=$((i + 1))
        done
        kill -KILL "$1" 2>/dev/null
        return 0
}
# shellcheck disable=SC2317 # run by the trap
cleanup() {
        stop_pid "$daemon_pid"
        stop_pid "$bus_pid"
        # shellcheck disable=SC2086 # the list of names
        [ -n "$installed" ] && dpkg --purge $packages >/dev/null 2>&1
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if [ "$(id -u)" -ne 0 ]; then
        tap_unavailable "the Debian package" "installing a package needs root"
        tap_done
fi

# --- build ---------------------------------------------------------------------
if [ -z "$deb" ]; then
        if ! have dpkg-buildpackage || ! have dh || ! have git; then
                missing "dpkg-buildpackage, dh and git" "dpkg-dev debhelper git"
                tap_done
        fi
        if ! git -C "$srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1 || [ ! -d "$srcdir/debian" ]; then
                tap_result "$srcdir is a git checkout with debian/ (or name a built package)" 1 ""
                tap_done
        fi
        # A clean copy: no build directories, no generated configure.
        mkdir "$tmp/build" "$tmp/build/vmsig"
        (cd "$srcdir" && git ls-files -z --cached --others --exclude-standard |
                tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$tmp/build/vmsig"
        case " ${DEB_BUILD_OPTIONS:-} " in
        *" parallel="*) ;;
        *) DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} parallel=$(nproc)" ;;
        esac
        export DEB_BUILD_OPTIONS
        start=$(date +%s)
        (cd "$tmp/build/vmsig" && dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1
        st=$?
        out="DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS, $(($(date +%s) - start)) s"
        [ $st -ne 0 ] && out="$out
$(tail -40 "$tmp/build.log")"
        tap_result "dpkg-buildpackage -us -uc -b builds the package" $st "$out"
        [ $st -eq 0 ] || tap_done
        deb=$(ls "$tmp"/build/vmsig_*.deb)
        debdir="$tmp/build"
        # VMSIG_DEB_KEEP=DIR keeps the built packages for the stage after
        # this one (tests/test-deb-systemd, which installs them under
        # systemd): the temporary directory goes at exit.
        if [ -n "${VMSIG_DEB_KEEP:-}" ]; then
                mkdir -p "$VMSIG_DEB_KEEP" && rm -f "$VMSIG_DEB_KEEP"/*.deb &&
                        cp "$tmp"/build/*.deb "$VMSIG_DEB_KEEP/"
                tap_result "the packages are kept in $VMSIG_DEB_KEEP" $? ""
        fi
        lintian_target=$(ls "$tmp"/build/vmsig_*.changes)
else
        deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
        if [ ! -f "$deb" ]; then
                tap_result "the package $deb exists" 1 ""
                tap_done
        fi
        debdir=$(dirname "$deb")
        lintian_target=""
fi

# ctl DEB FIELD: a field of a package's control file.
ctl() {
        dpkg-deb -f "$1" "$2"
}
version=$(ctl "$deb" Version)
arch=$(ctl "$deb" Architecture)
libdeb="$debdir/libvmsig-vgpu0_${version}_$arch.deb"
devdeb="$debdir/libvmsig-vgpu-dev_${version}_$arch.deb"
st=0
[ -f "$libdeb" ] && [ -f "$devdeb" ] || st=1
tap_result "the library's packages are next to vmsig's: $(basename "$libdeb"), $(basename "$devdeb")" $st \
        "$([ $st -ne 0 ] && ls "$debdir")"
[ $st -eq 0 ] || tap_done
if [ -z "$lintian_target" ]; then
        cp "$deb" "$libdeb" "$devdeb" "$tmp/"
        deb="$tmp/$(basename "$deb")"
        libdeb="$tmp/$(basename "$libdeb")"
        devdeb="$tmp/$(basename "$devdeb")"
        lintian_target="$deb $libdeb $devdeb"
fi
chmod -R a+rX "$tmp"

depends=$(ctl "$deb" Depends)
recommends=$(ctl "$deb" Recommends)
out="Version: $version
Depends: $depends
Recommends: $recommends"
st=1
[ "$(ctl "$deb" Package)" = vmsig ] && echo "$depends" | grep -q libjson-c && st=0
tap_result "the package is vmsig, the armed build (depends on json-c)" $st "$out"
# vmsigctl screenshot links libpng; vmsigd only loads the library, and runs
# without it.
st=1
echo "$depends" | grep -q libpng && echo "$recommends" | grep -qF "libvmsig-vgpu0 (= $version)" &&
        ! echo "$depends" | grep -q libvmsig-vgpu && st=0
tap_result "vmsig depends on libpng (vmsigctl screenshot) and recommends libvmsig-vgpu0 (= $version)" $st "$out"

out="$(ctl "$libdeb" Package), Section: $(ctl "$libdeb" Section), Multi-Arch: $(ctl "$libdeb" Multi-Arch)"
st=1
[ "$out" = "libvmsig-vgpu0, Section: libs, Multi-Arch: same" ] && st=0
tap_result "the library's package is libvmsig-vgpu0, Section libs, Multi-Arch: same" $st "$out"
symbols=$(dpkg-deb --ctrl-tarfile "$libdeb" | tar -xOf - ./symbols 2>&1)
st=1
echo "$symbols" | grep -q '^libvmsig-vgpu\.so\.0 libvmsig-vgpu0 ' && echo "$symbols" | grep -q '^ vmsig_vgpu_new@Base ' &&
        ! echo "$symbols" | grep -q 'vmsig_core_' && st=0
tap_result "libvmsig-vgpu0 has a symbols file: the vmsig_vgpu_* of libvmsig-vgpu.so.0, not the core API it takes from vmsigd" \
        $st "$symbols"

depends=$(ctl "$devdeb" Depends)
out="$(ctl "$devdeb" Package), Section: $(ctl "$devdeb" Section)
Depends: $depends"
st=1
[ "$(ctl "$devdeb" Package)/$(ctl "$devdeb" Section)" = libvmsig-vgpu-dev/libdevel ] &&
        echo "$depends" | grep -qF "libvmsig-vgpu0 (= $version)" && echo "$depends" | grep -q libsystemd-dev && st=0
tap_result "libvmsig-vgpu-dev, Section libdevel, depends on libvmsig-vgpu0 (= $version) and libsystemd-dev" $st "$out"

# --- lintian -------------------------------------------------------------------
# As nobody: lintian warns about running as root.
if have lintian; then
        mkdir "$tmp/home"
        chown nobody "$tmp/home"
        # shellcheck disable=SC2086 # the .changes, or the three packages
        out=$(cd "$tmp" && setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$tmp/home" \
                lintian --fail-on error,warning --display-info $lintian_target 2>&1)
        st=$?
        names=$(for f in $lintian_target; do basename "$f"; done | tr '\n' ' ')
        tap_result "lintian ${names% }: no errors, no warnings" $st "$out"
else
        missing "lintian" "lintian"
fi

# --- install -------------------------------------------------------------------
# status PACKAGE: dpkg's status of it (empty or not-installed: absent).
status() {
        dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null
}
for p in $packages; do
        s=$(status "$p")
        if [ -n "$s" ] && [ "$s" != not-installed ]; then
                tap_result "$p is not installed before the test (it would be replaced and purged)" 1 \
                        "its status is $s: dpkg --purge $packages first, or run this on a throwaway machine"
                tap_done
        fi
done
out=$(dpkg -i "$deb" "$libdeb" "$devdeb" 2>&1)
st=$?
installed=yes
tap_result "dpkg -i installs vmsig, libvmsig-vgpu0 and libvmsig-vgpu-dev" $st "$out"
[ $st -eq 0 ] || tap_done

# Every path in each package is on disk, and dpkg says that package owns
# it. (Regular files and links in "files": directories like /lib may be
# shared or, with merged /usr, symlinks.) "owned" lists "PATH PACKAGE".
: >"$tmp/files"
: >"$tmp/owned"
for f in "$deb" "$libdeb" "$devdeb"; do
        p=$(ctl "$f" Package)
        dpkg-deb -c "$f" | awk '{ p = $6; sub(/^\./, "", p); if (p != "/") print p }' | sed 's|/$||' >"$tmp/contents"
        dpkg-deb -c "$f" | awk '!/^d/ { p = $6; sub(/^\./, "", p); print p }' >>"$tmp/files"
        dpkg -L "$p" | grep -v '^/\.$' >"$tmp/owned.$p"
        sed "s|\$| $p|" "$tmp/owned.$p" >>"$tmp/owned"
        missing_files=$(while read -r path; do [ -e "$path" ] || [ -L "$path" ] || echo "$path"; done <"$tmp/contents")
        LC_ALL=C sort -u "$tmp/contents" >"$tmp/contents.sorted"
        unowned=$(LC_ALL=C sort -u "$tmp/owned.$p" | LC_ALL=C comm -23 "$tmp/contents.sorted" -)
        st=0
        [ -n "$missing_files$unowned" ] && st=1
        out=""
        [ -n "$missing_files" ] && out="missing: $missing_files"
        [ -n "$unowned" ] && out="$out
not in dpkg -L $p: $unowned"
        tap_result "every path of $p exists where it claims ($(wc -l <"$tmp/contents") paths)" $st "$out"
done

# The library goes to the multiarch directory of the packages' architecture.
if have dpkg-architecture; then
        libdir=/usr/lib/$(dpkg-architecture -a "$arch" -qDEB_HOST_MULTIARCH 2>/dev/null)
else
        missing "dpkg-architecture" "dpkg-dev"
        libdir=$(pkg-config --variable=libdir libvmsig-vgpu 2>/dev/null)
fi

# The key files, where the Makefile and Debian put them. The unit goes where
# systemd's pkg-config says (/lib/systemd/system on Debian 12).
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null)
if [ -z "$unitdir" ]; then
        unitdir=/lib/systemd/system
        [ -e /usr/lib/systemd/system/vmsigd.service ] && unitdir=/usr/lib/systemd/system
fi
# A link (-h) must lead to a file too.
while read -r test path pkg what; do
        st=1
        test "$test" "$path" && test -e "$path" && grep -qxF "$path $pkg" "$tmp/owned" && st=0
        tap_result "$what ($pkg): $path" $st ""
done <<EOF
-x /usr/bin/vmsigctl vmsig vmsigctl
-x /usr/libexec/vmsigd vmsig vmsigd
-f $unitdir/vmsigd.service vmsig the systemd unit
-f /usr/share/dbus-1/system.d/org.vmsig.conf vmsig the system bus policy
-f /usr/share/dbus-1/system-services/org.vmsig.service vmsig the D-Bus activation file
-f /usr/share/dbus-1/interfaces/org.vmsig.Manager.xml vmsig interface XML
-f /usr/share/dbus-1/interfaces/org.vmsig.Endpoint.xml vmsig interface XML
-f /usr/share/dbus-1/interfaces/org.vmsig.Lease.xml vmsig interface XML
-f /usr/share/polkit-1/actions/org.vmsig.policy vmsig the polkit actions
-f /usr/share/doc/vmsig/examples/50-vmsig.rules vmsig the example polkit rules
-f /usr/share/doc/vmsig/examples/vmsigd-libvirt-memctx.conf vmsig the unit drop-in for the memctx of libvirt domains
-f /usr/lib/tmpfiles.d/vmsig.conf vmsig the tmpfiles entry
-f /usr/lib/sysusers.d/vmsig.conf vmsig the sysusers entry (the group vmsig)
-f /etc/vmsig/vmsigd.conf vmsig the default configuration
-f /usr/share/vmsig/schemas/vmsigd.conf.rng vmsig the configuration schema
-f /usr/share/vmsig/schemas/vm.rng vmsig the trigger file schema
-f /usr/share/man/man1/vmsigctl.1.gz vmsig a manual page
-f /usr/share/man/man8/vmsigd.8.gz vmsig a manual page
-f /usr/share/man/man5/vmsigd.conf.5.gz vmsig a manual page
-f /usr/share/man/man5/org.vmsig.5.gz vmsig a manual page
-f /usr/share/bash-completion/completions/vmsigctl vmsig the bash completion
-f /usr/share/doc/vmsig/copyright vmsig the copyright file
-f $libdir/libvmsig-vgpu.so.0.0.0 libvmsig-vgpu0 the shared library
-h $libdir/libvmsig-vgpu.so.0 libvmsig-vgpu0 the link named by the SONAME, which vmsigd loads
-f /usr/share/doc/libvmsig-vgpu0/copyright libvmsig-vgpu0 the copyright file
-h $libdir/libvmsig-vgpu.so libvmsig-vgpu-dev the link for the linker
-f /usr/include/vmsig/vmsig-vgpu.h libvmsig-vgpu-dev a header
-f /usr/include/vmsig/vmsig-core.h libvmsig-vgpu-dev a header
-f /usr/include/vmsig/vmsig-endpoint.h libvmsig-vgpu-dev a header
-f $libdir/pkgconfig/libvmsig-vgpu.pc libvmsig-vgpu-dev the pkg-config file
-f /usr/share/doc/libvmsig-vgpu-dev/copyright libvmsig-vgpu-dev the copyright file
EOF

la=$(grep '\.la ' "$tmp/owned")
st=0
[ -n "$la" ] && st=1
tap_result "no libtool .la file is shipped" $st "$la"

# The library's trigger ran ldconfig. (With merged /usr the cache may name
# it through /lib.)
out=$(ldconfig -p | grep libvmsig-vgpu)
cached=$(echo "$out" | sed -n 's/^[[:space:]]*libvmsig-vgpu\.so\.0 (.*) => //p')
st=1
[ -n "$cached" ] && [ "$(readlink -f "$cached")" = "$(readlink -f "$libdir/libvmsig-vgpu.so.0")" ] && st=0
tap_result "ldconfig's cache has $libdir/libvmsig-vgpu.so.0" $st "$out"

# Built against the installed headers and library through pkg-config: a
# shared object, as a plugin library is (a program could not link it alone:
# the core API the library uses comes from vmsigd).
if have pkg-config; then
        out=$(pkg-config --cflags --libs libvmsig-vgpu 2>&1)
        st=$?
        flags=$out
        { echo "$out" | grep -q -- '-I/usr/include/vmsig' && echo "$out" | grep -q -- '-lvmsig-vgpu'; } || st=1
        [ "$(pkg-config --variable=libdir libvmsig-vgpu 2>&1)" = "$libdir" ] || st=1
        tap_result "pkg-config --cflags --libs libvmsig-vgpu: -I/usr/include/vmsig -lvmsig-vgpu, libdir $libdir" $st "$out"
        if have cc; then
                cat >"$tmp/probe.c" <<EOF
#include <vmsig-vgpu.h>

uint32_t probe_kind(vmsig_vgpu *v);
uint32_t probe_kind(vmsig_vgpu *v) {
        return vmsig_vgpu_kind(v);
}
EOF
                # shellcheck disable=SC2086 # the flags are words
                out=$(cc -Wall -Wextra -Werror -std=gnu11 -shared -fPIC -o "$tmp/probe.so" "$tmp/probe.c" $flags 2>&1)
                st=$?
                if [ $st -eq 0 ] && have readelf; then
                        needed=$(readelf -d "$tmp/probe.so" | grep NEEDED)
                        echo "$needed" | grep -qF '[libvmsig-vgpu.so.0]' || st=1
                        out="$out$needed"
                fi
                tap_result "a shared object calling vmsig_vgpu_kind() builds with the installed header and .pc, needing libvmsig-vgpu.so.0" \
                        $st "$out"
        else
                missing "cc" "gcc"
        fi
else
        missing "pkg-config" "pkgconf"
fi

policy=/usr/share/polkit-1/actions/org.vmsig.policy
st=1
grep -q '<action id="org\.vmsig\.frames">' $policy && st=0
tap_result "the installed polkit policy has the action org.vmsig.frames" $st "$([ $st -ne 0 ] && grep '<action id=' $policy)"
out=$(/usr/bin/vmsigctl --help 2>&1)
st=1
echo "$out" | grep -q '^ *screenshot ' && st=0
tap_result "vmsigctl --help lists the screenshot command" $st "$([ $st -ne 0 ] && echo "$out")"

conffiles=$(dpkg-query -W -f='${Conffiles}\n' vmsig)
st=1
echo "$conffiles" | grep -q '^ */etc/vmsig/vmsigd.conf ' && st=0
tap_result "/etc/vmsig/vmsigd.conf is a conffile" $st "$conffiles"

service=/usr/share/dbus-1/system-services/org.vmsig.service
st=1
grep -qx 'Name=org.vmsig' $service && grep -qx 'Exec=/usr/libexec/vmsigd' $service &&
        grep -qx 'SystemdService=vmsigd.service' $service && st=0
tap_result "the activation file names org.vmsig, Exec=/usr/libexec/vmsigd and SystemdService=vmsigd.service" $st \
        "$(grep -v '^#' $service)"

st=1
grep -qx 'ExecStart=/usr/libexec/vmsigd' "$unitdir/vmsigd.service" && grep -qx 'BusName=org.vmsig' "$unitdir/vmsigd.service" &&
        st=0
tap_result "the unit starts /usr/libexec/vmsigd as org.vmsig" $st "$(grep -E '^(ExecStart|BusName)=' "$unitdir/vmsigd.service")"
if have systemd-analyze; then
        out=$(systemd-analyze verify --man=no "$unitdir/vmsigd.service" 2>&1)
        st=$?
        [ -n "$out" ] && st=1
        tap_result "systemd-analyze verify is clean for the installed unit" $st "$out"
else
        missing "systemd-analyze" "systemd"
fi

# The postinst applies the tmpfiles entry (systemd-tmpfiles works without
# systemd running).
if have systemd-tmpfiles; then
        st=1
        [ -d /run/vmsig/vms.d ] && st=0
        tap_result "the postinst created /run/vmsig/vms.d" $st "$(ls -ld /run/vmsig /run/vmsig/vms.d 2>&1)"
else
        missing "systemd-tmpfiles" "systemd"
fi

# The postinst applies the sysusers entry: the group the example rules
# trust exists, empty (Debian leaves a package's group behind on purge).
if have systemd-sysusers; then
        st=1
        members=$(getent group vmsig | cut -d: -f4)
        getent group vmsig >/dev/null && [ -z "$members" ] && st=0
        tap_result "the postinst created the group vmsig, empty" $st "$(getent group vmsig 2>&1)"
else
        missing "systemd-sysusers" "systemd"
fi

out=$(/usr/libexec/vmsigd --check-config /etc/vmsig/vmsigd.conf 2>&1)
tap_result "vmsigd --check-config /etc/vmsig/vmsigd.conf passes" $? "$out"
if have xmllint; then
        out=$(xmllint --noout --relaxng /usr/share/vmsig/schemas/vmsigd.conf.rng /etc/vmsig/vmsigd.conf 2>&1)
        tap_result "/etc/vmsig/vmsigd.conf matches the installed schema" $? "$out"
else
        missing "xmllint" "libxml2-utils"
fi
out=$(/usr/libexec/vmsigd --version 2>&1)
st=1
[ "$out" = "vmsigd $version" ] && st=0
tap_result "vmsigd --version is the package's version ($version)" $st "$out"

if have man; then
        out=$(MAN_DISABLE_SECCOMP=1 man -w vmsigctl vmsigd vmsigd.conf org.vmsig 2>&1)
        tap_result "man finds vmsigctl(1), vmsigd(8), vmsigd.conf(5) and org.vmsig(5)" $? "$out"
else
        missing "man" "man-db"
fi
out=$(bash -c '. /usr/share/bash-completion/completions/vmsigctl && complete -p vmsigctl' 2>&1)
tap_result "the bash completion registers for vmsigctl" $? "$out"

# --- a private system bus from the installed files ---------------------------
# The policy part is /usr/share/dbus-1/system.conf's (tests/system-bus-policy.conf);
# <includedir> brings in the installed org.vmsig.conf, <servicedir> the
# installed activation file. No <servicehelper>: dbus-daemon then runs Exec=
# itself (the setuid helper would read the real system.conf), and without
# --systemd-activation it ignores SystemdService=.
mkdir "$tmp/run"
chmod 755 "$tmp/run"
cat >"$tmp/run/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$tmp/run/system_bus_socket</listen>
  <servicedir>/usr/share/dbus-1/system-services</servicedir>
  <include>$srcdir/tests/system-bus-policy.conf</include>
  <includedir>/usr/share/dbus-1/system.d</includedir>
</busconfig>
EOF

if ! have dbus-daemon || ! have busctl; then
        missing "dbus-daemon and busctl" "dbus-daemon systemd"
else
        # Exported first: the activated vmsigd inherits it from dbus-daemon.
        DBUS_SYSTEM_BUS_ADDRESS="unix:path=$tmp/run/system_bus_socket"
        export DBUS_SYSTEM_BUS_ADDRESS
        out=$(dbus-daemon --config-file="$tmp/run/bus.conf" --fork --print-pid 2>&1)
        st=$?
        bus_pid=$(echo "$out" | head -1)
        tap_result "dbus-daemon starts with the installed policy and service directories" $st "$([ $st -ne 0 ] && echo "$out")"
fi

# wait_for_name: up to 10 s for org.vmsig on the bus.
wait_for_name() {
        i=0
        until busctl --system status org.vmsig >/dev/null 2>&1; do
                i=$((i + 1))
                [ $i -gt 100 ] && return 1
                sleep 0.1
        done
}
# loaded_library HOW PID [LOG]: vmsigd mapped the installed libvmsig-vgpu
# and logged (at debug level) that it loaded it, and nothing about running
# without frames.
loaded_library() {
        st=1
        grep -qF "$libdir/libvmsig-vgpu.so.0.0.0" "/proc/$2/maps" && st=0
        if [ -n "${3:-}" ]; then
                grep -qF "Loaded $libdir/libvmsig-vgpu.so.0:" "$3" && ! grep -q 'running without frames' "$3" || st=1
        fi
        tap_result "$1: vmsigd loaded $libdir/libvmsig-vgpu.so.0" $st \
                "$([ $st -ne 0 ] && { [ -n "${3:-}" ] && cat "$3"; grep libvmsig "/proc/$2/maps"; })"
}
# bus_checks HOW: what a started vmsigd must answer.
bus_checks() {
        out=$(busctl --system --no-pager introspect org.vmsig /org/vmsig 2>&1)
        st=1
        echo "$out" | grep -q '^org\.vmsig\.Manager  *interface' && st=0
        tap_result "$1: /org/vmsig introspects with org.vmsig.Manager" $st "$([ $st -ne 0 ] && echo "$out")"
        out=$(busctl --system get-property org.vmsig /org/vmsig org.vmsig.Manager Version 2>&1)
        st=1
        [ "$out" = "s \"$version\"" ] && st=0
        tap_result "$1: Manager.Version is $version" $st "$out"
}

if [ -n "$bus_pid" ]; then
        # The installed configuration (its compiled-in path: no --config)
        # defines no VMs, and nothing is in the trigger directory. The
        # private socket goes to our directory, not to the machine's
        # /run/vmsig. At debug level vmsigd says which library it loaded;
        # VMSIG_VGPU_LIBRARY would name another one.
        env -u VMSIG_VGPU_LIBRARY /usr/libexec/vmsigd --private-socket="$tmp/run/private" --log-level=debug \
                >"$tmp/vmsigd.log" 2>&1 &
        daemon_pid=$!
        wait_for_name
        st=$?
        tap_result "the installed vmsigd, started with the installed config, owns org.vmsig" $st \
                "$([ $st -ne 0 ] && cat "$tmp/vmsigd.log")"
        if [ $st -eq 0 ]; then
                loaded_library "started directly" "$daemon_pid" "$tmp/vmsigd.log"
                bus_checks "started directly"
                out=$(busctl --system call org.vmsig /org/vmsig org.vmsig.Manager ListEndpoints 2>&1)
                st=1
                [ "$out" = "a(suso) 0" ] && st=0
                tap_result "ListEndpoints: the installed config conjures up no VMs" $st "$out"
                # The installed bus policy lets everyone call the Manager.
                out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups \
                        busctl --system get-property org.vmsig /org/vmsig org.vmsig.Manager EndpointCount 2>&1)
                st=1
                [ "$out" = "u 0" ] && st=0
                tap_result "nobody may read Manager.EndpointCount through the installed bus policy" $st "$out"
                out=$(/usr/bin/vmsigctl --no-legend list 2>&1)
                tap_result "the installed vmsigctl lists the endpoints" $? "$out"
        fi
        kill -TERM "$daemon_pid" 2>/dev/null
        wait "$daemon_pid"
        st=$?
        daemon_pid=""
        tap_result "vmsigd exits 0 on SIGTERM" $st "$([ $st -ne 0 ] && cat "$tmp/vmsigd.log")"

        # D-Bus activation: a call to the absent org.vmsig makes dbus-daemon
        # run Exec= of the installed activation file (the private socket
        # then is the config's /run/vmsig/private; vmsigd removes it at exit).
        out=$(busctl --system call org.vmsig /org/vmsig org.freedesktop.DBus.Peer Ping 2>&1)
        st=$?
        daemon_pid=$(busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                GetConnectionUnixProcessID s org.vmsig 2>/dev/null | awk '{ print $2 }')
        tap_result "a call activates vmsigd through the installed activation file" $st "$out"
        if [ $st -eq 0 ] && [ -n "$daemon_pid" ]; then
                exe=$(readlink "/proc/$daemon_pid/exe")
                st=1
                [ "$exe" = /usr/libexec/vmsigd ] && st=0
                tap_result "the activated org.vmsig is /usr/libexec/vmsigd" $st "pid $daemon_pid: $exe"
                loaded_library "activated" "$daemon_pid"
                bus_checks "activated"
        fi
        stop_pid "$daemon_pid"
        daemon_pid=""

        # vmsig only recommends the library: without it vmsigd says so and
        # serves the bus all the same.
        out=$(dpkg -r libvmsig-vgpu-dev libvmsig-vgpu0 2>&1)
        st=$?
        tap_result "dpkg -r removes libvmsig-vgpu-dev and libvmsig-vgpu0, vmsig stays" $st "$out"
        env -u VMSIG_VGPU_LIBRARY /usr/libexec/vmsigd --private-socket="$tmp/run/private" \
                >"$tmp/vmsigd-nolib.log" 2>&1 &
        daemon_pid=$!
        wait_for_name
        st=$?
        grep -qF "Cannot load $libdir/libvmsig-vgpu.so.0, running without frames" "$tmp/vmsigd-nolib.log" || st=1
        tap_result "without libvmsig-vgpu0 vmsigd warns that it runs without frames, and owns org.vmsig" $st \
                "$(cat "$tmp/vmsigd-nolib.log")"
        [ $st -eq 0 ] && bus_checks "without the library"
        stop_pid "$daemon_pid"
        daemon_pid=""
        stop_pid "$bus_pid"
        bus_pid=""
fi

# --- purge ---------------------------------------------------------------------
# shellcheck disable=SC2086 # the list of names
out=$(dpkg --purge $packages 2>&1)
st=$?
[ $st -eq 0 ] && installed=""
tap_result "dpkg --purge removes the packages" $st "$out"
# Directories are shared with other packages; the packages' own must go.
left=$(
        while read -r f; do
                if [ -e "$f" ] || [ -L "$f" ]; then
                        echo "$f"
                fi
        done <"$tmp/files"
        for d in /etc/vmsig /usr/share/vmsig /usr/share/doc/vmsig /run/vmsig /usr/include/vmsig \
                /usr/share/doc/libvmsig-vgpu0 /usr/share/doc/libvmsig-vgpu-dev; do
                [ -e "$d" ] && echo "$d"
        done
        ldconfig -p | grep libvmsig-vgpu
)
st=0
[ -n "$left" ] && st=1
tap_result "after the purge nothing of the packages is left (files, /etc/vmsig, /run/vmsig, /usr/include/vmsig, ldconfig's cache)" \
        $st "$left"
known=$(for p in $packages; do
        s=$(status "$p")
        [ -n "$s" ] && [ "$s" != not-installed ] && echo "$p: $s"
done)
st=0
[ -n "$known" ] && st=1
tap_result "dpkg knows none of the packages any more" $st "$known"

tap_done
