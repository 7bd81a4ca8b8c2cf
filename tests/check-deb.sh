#!/bin/sh
# The Debian package (debian/, the armed build): build it with
# dpkg-buildpackage, check it with lintian, install it with dpkg -i, find
# every file it claims and the key files where they belong, start the
# installed vmsigd on a private system bus made of the installed bus policy
# and activation file (directly, then by D-Bus activation), and purge it
# again, leaving nothing behind. Prints TAP.
#
# It installs and removes a package on this machine, so it is not part of
# make check: CI runs it (.ci/run). It needs root and refuses to touch a
# vmsig that was installed before.
#
#   tests/check-deb.sh [PACKAGE.deb]
#
# With PACKAGE.deb (or VMSIG_DEB=PACKAGE.deb) that package is checked;
# otherwise one is built from a copy of the source tree (its files known to
# git, as they are in the work tree) in a temporary directory, since
# dpkg-buildpackage writes next to the source directory. DEB_BUILD_OPTIONS
# is passed on (nocheck skips make check in the build).
srcdir="${VMSIG_SRCDIR:-$(dirname "$0")/..}"
srcdir=$(cd "$srcdir" && pwd)
deb="${1:-${VMSIG_DEB:-}}"
n=0
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmsig-deb.XXXXXX")
# Unprivileged users (lintian, a caller on the bus) work in here too.
chmod 755 "$tmp"
installed=""
bus_pid=""
daemon_pid=""

result() { # result DESCRIPTION STATUS OUTPUT
        n=$((n + 1))
        if [ "$2" -eq 0 ]; then
                echo "ok $n - $1"
        else
                echo "not ok $n - $1"
                fail=1
        fi
        [ -n "$3" ] && echo "$3" | sed 's/^/# /'
}
skip() {
        n=$((n + 1))
        echo "ok $n - $1 # SKIP $2"
}
have() {
        command -v "$1" >/dev/null 2>&1
}
# missing TOOL PACKAGE: fails under CI, where nothing may be skipped.
missing() {
        if [ "${CI:-}" = true ]; then
                result "$1 is installed (CI must not skip these checks)" 1 "apt-get install $2"
        else
                skip "$1" "$1 is not installed (apt-get install $2)"
        fi
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
        [ -n "$installed" ] && dpkg --purge vmsig >/dev/null 2>&1
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

finish() {
        echo "1..$n"
        exit $fail
}

if [ "$(id -u)" -ne 0 ]; then
        if [ "${CI:-}" = true ]; then
                result "running as root (CI must not skip the package checks)" 1 ""
        else
                skip "the Debian package" "installing a package needs root"
        fi
        finish
fi

# --- build ---------------------------------------------------------------------
if [ -z "$deb" ]; then
        if ! have dpkg-buildpackage || ! have dh || ! have git; then
                missing "dpkg-buildpackage, dh and git" "dpkg-dev debhelper git"
                finish
        fi
        if ! git -C "$srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1 || [ ! -d "$srcdir/debian" ]; then
                result "$srcdir is a git checkout with debian/ (or name a built package)" 1 ""
                finish
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
        result "dpkg-buildpackage -us -uc -b builds the package" $st "$out"
        [ $st -eq 0 ] || finish
        deb=$(ls "$tmp"/build/vmsig_*.deb)
        lintian_target=$(ls "$tmp"/build/vmsig_*.changes)
else
        deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
        if [ ! -f "$deb" ]; then
                result "the package $deb exists" 1 ""
                finish
        fi
        cp "$deb" "$tmp/"
        deb="$tmp/$(basename "$deb")"
        lintian_target=$deb
fi
chmod -R a+rX "$tmp"

version=$(dpkg-deb -f "$deb" Version)
depends=$(dpkg-deb -f "$deb" Depends)
out="Version: $version
Depends: $depends"
st=1
[ "$(dpkg-deb -f "$deb" Package)" = vmsig ] && echo "$depends" | grep -q libjson-c && st=0
result "the package is vmsig, the armed build (depends on json-c)" $st "$out"

# --- lintian -------------------------------------------------------------------
# As nobody: lintian warns about running as root.
if have lintian; then
        mkdir "$tmp/home"
        chown nobody "$tmp/home"
        out=$(cd "$tmp" && setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$tmp/home" \
                lintian --fail-on error,warning --display-info "$lintian_target" 2>&1)
        st=$?
        result "lintian $(basename "$lintian_target"): no errors, no warnings" $st "$out"
else
        missing "lintian" "lintian"
fi

# --- install -------------------------------------------------------------------
status=$(dpkg-query -W -f='${db:Status-Status}' vmsig 2>/dev/null)
if [ -n "$status" ] && [ "$status" != not-installed ]; then
        result "vmsig is not installed before the test (it would be replaced and purged)" 1 \
                "its status is $status: dpkg --purge vmsig first, or run this on a throwaway machine"
        finish
fi
out=$(dpkg -i "$deb" 2>&1)
st=$?
installed=yes
result "dpkg -i installs the package" $st "$out"
[ $st -eq 0 ] || finish

# Every path in the package is on disk, and dpkg says it owns it.
# (Regular files and links in "files": directories like /lib may be shared
# or, with merged /usr, symlinks.)
dpkg-deb -c "$deb" | awk '{ p = $6; sub(/^\./, "", p); if (p != "/") print p }' | sed 's|/$||' >"$tmp/contents"
dpkg-deb -c "$deb" | awk '!/^d/ { p = $6; sub(/^\./, "", p); print p }' >"$tmp/files"
dpkg -L vmsig | grep -v '^/\.$' >"$tmp/owned"
missing_files=$(while read -r f; do [ -e "$f" ] || [ -L "$f" ] || echo "$f"; done <"$tmp/contents")
LC_ALL=C sort -u "$tmp/contents" >"$tmp/contents.sorted"
unowned=$(LC_ALL=C sort -u "$tmp/owned" | LC_ALL=C comm -23 "$tmp/contents.sorted" -)
st=0
[ -n "$missing_files$unowned" ] && st=1
out=""
[ -n "$missing_files" ] && out="missing: $missing_files"
[ -n "$unowned" ] && out="$out
not in dpkg -L: $unowned"
result "every path of the package exists where it claims ($(wc -l <"$tmp/contents") paths)" $st "$out"

# The key files, where the Makefile and Debian put them. The unit goes where
# systemd's pkg-config says (/lib/systemd/system on Debian 12).
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null)
if [ -z "$unitdir" ]; then
        unitdir=/lib/systemd/system
        [ -e /usr/lib/systemd/system/vmsigd.service ] && unitdir=/usr/lib/systemd/system
fi
while read -r test path what; do
        st=1
        test "$test" "$path" && grep -qxF "$path" "$tmp/owned" && st=0
        result "$what: $path" $st ""
done <<EOF
-x /usr/bin/vmsigctl vmsigctl
-x /usr/libexec/vmsigd vmsigd
-f $unitdir/vmsigd.service the systemd unit
-f /usr/share/dbus-1/system.d/org.vmsig.conf the system bus policy
-f /usr/share/dbus-1/system-services/org.vmsig.service the D-Bus activation file
-f /usr/share/dbus-1/interfaces/org.vmsig.Manager.xml interface XML
-f /usr/share/dbus-1/interfaces/org.vmsig.Endpoint.xml interface XML
-f /usr/share/dbus-1/interfaces/org.vmsig.Lease.xml interface XML
-f /usr/share/polkit-1/actions/org.vmsig.policy the polkit actions
-f /usr/share/doc/vmsig/examples/50-vmsig.rules the example polkit rules
-f /usr/lib/tmpfiles.d/vmsig.conf the tmpfiles entry
-f /etc/vmsig/vmsigd.conf the default configuration
-f /usr/share/vmsig/schemas/vmsigd.conf.rng the configuration schema
-f /usr/share/vmsig/schemas/vm.rng the trigger file schema
-f /usr/share/man/man1/vmsigctl.1.gz a manual page
-f /usr/share/man/man8/vmsigd.8.gz a manual page
-f /usr/share/man/man5/vmsigd.conf.5.gz a manual page
-f /usr/share/man/man5/org.vmsig.5.gz a manual page
-f /usr/share/bash-completion/completions/vmsigctl the bash completion
-f /usr/share/doc/vmsig/copyright the copyright file
EOF

conffiles=$(dpkg-query -W -f='${Conffiles}\n' vmsig)
st=1
echo "$conffiles" | grep -q '^ */etc/vmsig/vmsigd.conf ' && st=0
result "/etc/vmsig/vmsigd.conf is a conffile" $st "$conffiles"

service=/usr/share/dbus-1/system-services/org.vmsig.service
st=1
grep -qx 'Name=org.vmsig' $service && grep -qx 'Exec=/usr/libexec/vmsigd' $service &&
        grep -qx 'SystemdService=vmsigd.service' $service && st=0
result "the activation file names org.vmsig, Exec=/usr/libexec/vmsigd and SystemdService=vmsigd.service" $st \
        "$(grep -v '^#' $service)"

st=1
grep -qx 'ExecStart=/usr/libexec/vmsigd' "$unitdir/vmsigd.service" && grep -qx 'BusName=org.vmsig' "$unitdir/vmsigd.service" &&
        st=0
result "the unit starts /usr/libexec/vmsigd as org.vmsig" $st "$(grep -E '^(ExecStart|BusName)=' "$unitdir/vmsigd.service")"
if have systemd-analyze; then
        out=$(systemd-analyze verify --man=no "$unitdir/vmsigd.service" 2>&1)
        st=$?
        [ -n "$out" ] && st=1
        result "systemd-analyze verify is clean for the installed unit" $st "$out"
else
        missing "systemd-analyze" "systemd"
fi

# The postinst applies the tmpfiles entry (systemd-tmpfiles works without
# systemd running).
if have systemd-tmpfiles; then
        st=1
        [ -d /run/vmsig/vms.d ] && st=0
        result "the postinst created /run/vmsig/vms.d" $st "$(ls -ld /run/vmsig /run/vmsig/vms.d 2>&1)"
else
        missing "systemd-tmpfiles" "systemd"
fi

out=$(/usr/libexec/vmsigd --check-config /etc/vmsig/vmsigd.conf 2>&1)
result "vmsigd --check-config /etc/vmsig/vmsigd.conf passes" $? "$out"
if have xmllint; then
        out=$(xmllint --noout --relaxng /usr/share/vmsig/schemas/vmsigd.conf.rng /etc/vmsig/vmsigd.conf 2>&1)
        result "/etc/vmsig/vmsigd.conf matches the installed schema" $? "$out"
else
        missing "xmllint" "libxml2-utils"
fi
out=$(/usr/libexec/vmsigd --version 2>&1)
st=1
[ "$out" = "vmsigd $version" ] && st=0
result "vmsigd --version is the package's version ($version)" $st "$out"

if have man; then
        out=$(MAN_DISABLE_SECCOMP=1 man -w vmsigctl vmsigd vmsigd.conf org.vmsig 2>&1)
        result "man finds vmsigctl(1), vmsigd(8), vmsigd.conf(5) and org.vmsig(5)" $? "$out"
else
        missing "man" "man-db"
fi
out=$(bash -c '. /usr/share/bash-completion/completions/vmsigctl && complete -p vmsigctl' 2>&1)
result "the bash completion registers for vmsigctl" $? "$out"

# --- a private system bus from the installed files ---------------------------
# The policy part is /usr/share/dbus-1/system.conf's (as in tests/harness.c);
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
  <auth>EXTERNAL</auth>
  <servicedir>/usr/share/dbus-1/system-services</servicedir>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
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
        result "dbus-daemon starts with the installed policy and service directories" $st "$([ $st -ne 0 ] && echo "$out")"
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
# bus_checks HOW: what a started vmsigd must answer.
bus_checks() {
        out=$(busctl --system --no-pager introspect org.vmsig /org/vmsig 2>&1)
        st=1
        echo "$out" | grep -q '^org\.vmsig\.Manager  *interface' && st=0
        result "$1: /org/vmsig introspects with org.vmsig.Manager" $st "$([ $st -ne 0 ] && echo "$out")"
        out=$(busctl --system get-property org.vmsig /org/vmsig org.vmsig.Manager Version 2>&1)
        st=1
        [ "$out" = "s \"$version\"" ] && st=0
        result "$1: Manager.Version is $version" $st "$out"
}

if [ -n "$bus_pid" ]; then
        # The installed configuration (its compiled-in path: no --config)
        # defines no VMs, and nothing is in the trigger directory. The
        # private socket goes to our directory, not to the machine's
        # /run/vmsig.
        /usr/libexec/vmsigd --private-socket="$tmp/run/private" >"$tmp/vmsigd.log" 2>&1 &
        daemon_pid=$!
        wait_for_name
        st=$?
        result "the installed vmsigd, started with the installed config, owns org.vmsig" $st \
                "$([ $st -ne 0 ] && cat "$tmp/vmsigd.log")"
        if [ $st -eq 0 ]; then
                bus_checks "started directly"
                out=$(busctl --system call org.vmsig /org/vmsig org.vmsig.Manager ListEndpoints 2>&1)
                st=1
                [ "$out" = "a(suso) 0" ] && st=0
                result "ListEndpoints: the installed config conjures up no VMs" $st "$out"
                # The installed bus policy lets everyone call the Manager.
                out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups \
                        busctl --system get-property org.vmsig /org/vmsig org.vmsig.Manager EndpointCount 2>&1)
                st=1
                [ "$out" = "u 0" ] && st=0
                result "nobody may read Manager.EndpointCount through the installed bus policy" $st "$out"
                out=$(/usr/bin/vmsigctl --no-legend list 2>&1)
                result "the installed vmsigctl lists the endpoints" $? "$out"
        fi
        kill -TERM "$daemon_pid" 2>/dev/null
        wait "$daemon_pid"
        st=$?
        daemon_pid=""
        result "vmsigd exits 0 on SIGTERM" $st "$([ $st -ne 0 ] && cat "$tmp/vmsigd.log")"

        # D-Bus activation: a call to the absent org.vmsig makes dbus-daemon
        # run Exec= of the installed activation file (the private socket
        # then is the config's /run/vmsig/private; vmsigd removes it at exit).
        out=$(busctl --system call org.vmsig /org/vmsig org.freedesktop.DBus.Peer Ping 2>&1)
        st=$?
        daemon_pid=$(busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                GetConnectionUnixProcessID s org.vmsig 2>/dev/null | awk '{ print $2 }')
        result "a call activates vmsigd through the installed activation file" $st "$out"
        if [ $st -eq 0 ] && [ -n "$daemon_pid" ]; then
                exe=$(readlink "/proc/$daemon_pid/exe")
                st=1
                [ "$exe" = /usr/libexec/vmsigd ] && st=0
                result "the activated org.vmsig is /usr/libexec/vmsigd" $st "pid $daemon_pid: $exe"
                bus_checks "activated"
        fi
        stop_pid "$daemon_pid"
        daemon_pid=""
        stop_pid "$bus_pid"
        bus_pid=""
fi

# --- purge ---------------------------------------------------------------------
out=$(dpkg --purge vmsig 2>&1)
st=$?
[ $st -eq 0 ] && installed=""
result "dpkg --purge removes the package" $st "$out"
# Directories are shared with other packages; the package's own must go.
left=$(
        while read -r f; do
                if [ -e "$f" ] || [ -L "$f" ]; then
                        echo "$f"
                fi
        done <"$tmp/files"
        for d in /etc/vmsig /usr/share/vmsig /usr/share/doc/vmsig /run/vmsig; do
                [ -e "$d" ] && echo "$d"
        done
)
st=0
[ -n "$left" ] && st=1
result "after the purge nothing of the package is left (files, /etc/vmsig, /run/vmsig)" $st "$left"
status=$(dpkg-query -W -f='${db:Status-Status}' vmsig 2>/dev/null)
st=0
[ -n "$status" ] && [ "$status" != not-installed ] && st=1
result "dpkg knows vmsig no more" $st "$([ $st -ne 0 ] && echo "status: $status")"

finish
