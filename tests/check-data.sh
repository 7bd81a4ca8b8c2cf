#!/bin/sh
# The shipped data files are valid: config against its schema, XML well
# formed, the daemon accepts the default config, and the unit passes
# systemd-analyze verify and scores at most 1.5 in its security check.
# Prints TAP.
srcdir="${VMSIG_SRCDIR:-$(dirname "$0")/..}"
builddir="${VMSIG_BUILDDIR:-.}"
# shellcheck source=tests/tap.sh
. "$(dirname "$0")/tap.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$(xmllint --noout --relaxng "$srcdir/data/vmsigd.conf.rng" "$srcdir/data/vmsigd.conf" 2>&1)
tap_result "data/vmsigd.conf matches data/vmsigd.conf.rng" $? "$out"

out=$(xmllint --noout --relaxng "$srcdir/data/vm.rng" "$srcdir/tests/data/vms/win10.xml" "$srcdir/tests/data/vms/minimal.xml" 2>&1)
tap_result "the example trigger files match data/vm.rng" $? "$out"

out=$(xmllint --noout "$srcdir/data/org.vmsig.conf" "$srcdir"/dbus/*.xml "$srcdir/polkit/org.vmsig.policy" 2>&1)
tap_result "bus policy, interface XML and polkit policy are well formed" $? "$out"

out=$("$builddir/vmsigd" --check-config "$srcdir/data/vmsigd.conf" 2>&1)
tap_result "vmsigd --check-config accepts the shipped config" $? "$out"

# The unit's ExecStart must exist for verify; point it at the built daemon.
sed -e "s|@libexecdir@|$(cd "$builddir" && pwd)|g" "$srcdir/data/vmsigd.service.in" > "$tmp/vmsigd.service"
if have systemd-analyze; then
        out=$(systemd-analyze verify --man=no "$tmp/vmsigd.service" 2>&1)
        st=$?
        [ -n "$out" ] && st=1
        tap_result "systemd-analyze verify is clean for vmsigd.service" $st "$out"
        out=$(systemd-analyze security --offline=yes --no-pager --threshold=15 "$tmp/vmsigd.service" 2>&1)
        st=$?
        tap_result "vmsigd.service security exposure <= 1.5" $st "$(echo "$out" | grep -E 'Overall exposure')"
else
        tap_unavailable "systemd-analyze verify" "systemd-analyze is not installed (apt-get install systemd)"
        tap_unavailable "vmsigd.service security exposure" "systemd-analyze is not installed"
fi

tap_done
