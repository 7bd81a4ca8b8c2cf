#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/run.sh: the vmsig benchmarks. Run from the build directory, as
# `make bench` does; the source directory is found from this script.
#
#   1. bus    D-Bus round trips against vmsigd and bench/echo-service on a
#             private system bus           target: vmsigd/echo time <= 1.15
#   2. core   in-process events/s, core vs a bare sd-event loop
#                                          target: core/bare >= 0.5
#   3. idle   syscalls that return in vmsigd over 10 s with 16 idle stub VMs
#                                          target: 0
#   4. scale  attach and detach of 256 stub endpoints
#                                          target: attach < 1 s
#
# Environment: BENCH_CALLS (20000), BENCH_RUNS (3), BENCH_IDLE_SECONDS (10),
# BENCH_ONLY="bus core idle scale" to run a subset, BENCH_STRICT=1 to exit 1
# when a target is missed (otherwise only errors make it fail).
set -eu

srcdir=$(cd "$(dirname "$0")/.." && pwd)
calls=${BENCH_CALLS:-20000}
runs=${BENCH_RUNS:-3}
idle_seconds=${BENCH_IDLE_SECONDS:-10}
only=${BENCH_ONLY:-bus core idle scale}

for p in vmsigd bench/echo-service bench/bench-bus bench/bench-core bench/bench-scale; do
        if [ ! -x "$p" ]; then
                echo "run.sh: ./$p is missing; run me from the build directory after 'make bench'." >&2
                exit 2
        fi
done
DBUS_DAEMON=${DBUS_DAEMON:-dbus-daemon}

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/vmsig-bench.XXXXXX")
bus_pid=
vmsigd_pid=
echo_pid=
strace_pid=

stop() {
        # stop PID: SIGTERM, then SIGKILL after 5 s.
        [ -n "$1" ] || return 0
        kill "$1" 2>/dev/null || return 0
        i=0
        while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do
                sleep 0.1
                i=$((i + 1))
        done
        kill -9 "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
}

# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
        status=$?
        trap - EXIT INT TERM HUP
        stop "$strace_pid"
        stop "$echo_pid"
        stop "$vmsigd_pid"
        stop "$bus_pid"
        rm -rf "$tmpdir"
        exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

results="$tmpdir/results"
: >"$results"

wants() {
        case " $only " in *" $1 "*) return 0 ;; esac
        return 1
}

# --- the private system bus, vmsigd and the echo service ---------------------
start_services() {
        cat >"$tmpdir/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$tmpdir/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <!-- The default-deny policy of /usr/share/dbus-1/system.conf. -->
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
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <!-- The echo service, with the same kind of holes as org.vmsig. -->
  <policy user="root">
    <allow own="org.vmsig.BenchEcho"/>
    <allow send_destination="org.vmsig.BenchEcho"/>
    <allow receive_sender="org.vmsig.BenchEcho"/>
  </policy>
  <include>$srcdir/data/org.vmsig.conf</include>
</busconfig>
EOF
        {
                echo '<vmsigd>'
                echo '  <log level="warning"/>'
                echo "  <private-socket path=\"$tmpdir/private\"/>"
                echo '  <stub-vm name="alpha" ram-size="4M"/>'
                for i in 01 02 03 04 05 06 07 08 09 10 11 12 13 14 15; do
                        echo "  <stub-vm name=\"vm$i\" ram-size=\"4M\"/>"
                done
                echo '</vmsigd>'
        } >"$tmpdir/vmsigd.conf"

        "$DBUS_DAEMON" --config-file="$tmpdir/bus.conf" --nofork --print-address=3 3>"$tmpdir/bus.address" \
                2>"$tmpdir/dbus-daemon.log" &
        bus_pid=$!
        i=0
        while [ ! -s "$tmpdir/bus.address" ]; do
                if [ $i -ge 100 ] || ! kill -0 "$bus_pid" 2>/dev/null; then
                        echo "run.sh: dbus-daemon did not start:" >&2
                        cat "$tmpdir/dbus-daemon.log" >&2
                        exit 1
                fi
                sleep 0.05
                i=$((i + 1))
        done
        DBUS_SYSTEM_BUS_ADDRESS="unix:path=$tmpdir/system_bus_socket"
        export DBUS_SYSTEM_BUS_ADDRESS

        ./vmsigd --config "$tmpdir/vmsigd.conf" 2>"$tmpdir/vmsigd.log" &
        vmsigd_pid=$!
        bench/echo-service 2>"$tmpdir/echo-service.log" &
        echo_pid=$!
        if ! bench/bench-bus --wait org.vmsig --timeout 10 || ! bench/bench-bus --wait org.vmsig.BenchEcho --timeout 10
        then
                echo "run.sh: the services did not come up:" >&2
                cat "$tmpdir/vmsigd.log" "$tmpdir/echo-service.log" >&2
                exit 1
        fi
}

stop_services() {
        stop "$echo_pid"
        echo_pid=
        stop "$vmsigd_pid"
        vmsigd_pid=
        stop "$bus_pid"
        bus_pid=
        if [ -s "$tmpdir/vmsigd.log" ]; then
                echo "vmsigd logged $(wc -l <"$tmpdir/vmsigd.log") lines at level warning or above, starting with:"
                head -5 "$tmpdir/vmsigd.log" | sed 's/^/  /'
        fi
}

# run_tool NAME PROGRAM ARGS...: show PROGRAM's report, keep its "@" lines.
run_tool() {
        name=$1
        shift
        if ! "$@" >"$tmpdir/$name.out" 2>"$tmpdir/$name.err"; then
                grep -v '^@' "$tmpdir/$name.out" || true
                echo "run.sh: $* failed:" >&2
                cat "$tmpdir/$name.err" >&2
                exit 1
        fi
        grep -v '^@' "$tmpdir/$name.out" || true
        grep '^@' "$tmpdir/$name.out" >>"$results" || true
}

# --- 3. idle -------------------------------------------------------------------
run_idle() {
        echo "== idle: wakeups of vmsigd with 16 idle stub VMs over ${idle_seconds} s"
        if ! command -v strace >/dev/null 2>&1; then
                echo "  strace is not installed; skipped"
                echo "@ idle skipped" >>"$results"
                return 0
        fi
        sleep 2 # let start-up settle: the roster went out, clients came and went
        strace -f -p "$vmsigd_pid" -o "$tmpdir/strace.out" \
                -e trace=epoll_wait,epoll_pwait,epoll_pwait2,poll,ppoll,select,nanosleep,clock_nanosleep,timerfd_settime \
                2>"$tmpdir/strace.log" &
        strace_pid=$!
        sleep "$idle_seconds"
        stop "$strace_pid"
        strace_pid=
        if ! grep -q attached "$tmpdir/strace.log"; then
                echo "run.sh: strace could not attach to vmsigd:" >&2
                cat "$tmpdir/strace.log" >&2
                exit 1
        fi
        # A returned call is a line with its result ("= N"); the call that
        # was in progress when strace attached or detached has none
        # ("<unfinished ...>", "<detached ...>", "= ?").
        wakeups=$(grep -E '= -?[0-9]' "$tmpdir/strace.out" | grep -cv -- '<unfinished' || true)
        echo "  returned wait/timer syscalls: $wakeups"
        if [ "$wakeups" -gt 0 ]; then
                sed 's/^/    /' "$tmpdir/strace.out" | head -20
        fi
        echo "@ idle wakeups=$wakeups" >>"$results"
}

# --- 1. bus --------------------------------------------------------------------
run_bus() {
        echo "== bus: sequential round trips, vmsigd vs echo-service on the same private bus"
        run_tool bus bench/bench-bus --calls "$calls" --runs "$runs" --warmup 2000
}

# --- 2. core -------------------------------------------------------------------
run_core() {
        echo "== core: in-process publish -> delivery, libvmsig-core vs a bare sd-event loop"
        run_tool core bench/bench-core --runs 5
}

# --- 4. scale ------------------------------------------------------------------
run_scale() {
        echo "== scale: 256 stub endpoints attached to one core, then detached"
        run_tool scale bench/bench-scale --endpoints 256 --ram-size 1048576
}

echo "vmsig benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r)"
if wants bus || wants idle; then
        start_services
        if wants idle; then run_idle; fi
        if wants bus; then run_bus; fi
        stop_services
fi
if wants core; then run_core; fi
if wants scale; then run_scale; fi

# --- summary -------------------------------------------------------------------
echo
echo "== summary"
awk '
function field(name,   i, kv) {
        for (i = 3; i <= NF; i++) {
                split($i, kv, "=")
                if (kv[1] == name)
                        return kv[2]
        }
        return ""
}
function report(what, value, target, ok) {
        printf "  %-34s %-12s %-12s %s\n", what, value, target, ok ? "PASS" : "FAIL"
        if (!ok)
                failed++
}
BEGIN { printf "  %-34s %-12s %-12s %s\n", "measure", "result", "target", "" }
$1 != "@" { next }
$2 ~ /^bus-/ {
        r = field("ratio")
        report(substr($2, 5) " vmsigd/echo time", r, "<= 1.15", r + 0 <= 1.15)
}
$2 ~ /^core-/ {
        r = field("ratio")
        split($2, p, "-")
        report("core/bare " p[2] " " p[3], r, ">= 0.5", r + 0 >= 0.5)
}
$2 == "idle" && $3 == "skipped" { printf "  %-34s %-12s %-12s %s\n", "idle wakeups in " secs " s", "-", "0", "SKIPPED" }
$2 == "idle" && $3 != "skipped" {
        w = field("wakeups")
        report("idle wakeups in " secs " s", w, "0", w + 0 == 0)
}
$2 == "scale" {
        a = field("attach_ms")
        report("attach " field("endpoints") " endpoints (ms)", a, "< 1000", a + 0 < 1000)
        printf "  %-34s %-12s %-12s %s\n", "  with dispatch (ms)", field("attach_dispatch_ms"), "", ""
        printf "  %-34s %-12s %-12s %s\n", "  RSS per endpoint (KiB)", field("rss_per_ep_kib"), "", ""
        printf "  %-34s %-12s %-12s %s\n", "  fds per endpoint", field("fds_per_ep"), "", ""
        printf "  %-34s %-12s %-12s %s\n", "  detach all (ms)", field("detach_ms"), "", ""
        printf "  %-34s %-12s %-12s %s\n", "  detach + dispatch + reap (ms)", field("detach_reap_ms"), "", ""
}
END {
        printf "  %d target%s missed\n", failed, failed == 1 ? "" : "s"
        exit (failed > 0 ? 1 : 0)
}' secs="$idle_seconds" "$results" && missed=0 || missed=1

if [ "$missed" = 1 ] && [ "${BENCH_STRICT:-0}" = 1 ]; then
        exit 1
fi
exit 0
