#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck disable=SC2317 # run_each and the EXIT trap call functions by name
# bench/run.sh: the vmsig benchmarks. Run from the build directory, as
# `make bench` does; the source directory is found from this script.
#
# The sections, in BENCH_ONLY's names: bus core idle scale auth private
# memctx lease memwrite detect qmp load frames bootstrap floods. What each
# measures, against what baseline and target, is in bench/RESULTS.md and
# the comment at the top of its program; the summary at the end prints
# every target with its verdict. qmp, and the QEMU cases of frames and
# bootstrap, need the armed build and QEMU (skipped otherwise); frames
# needs libvmsig-vgpu; auth and floods run a real polkitd.
#
# Environment: BENCH_CALLS (20000), BENCH_RUNS (3), BENCH_IDLE_SECONDS (10),
# BENCH_FIRST_SAMPLES (200), BENCH_LEASE_CYCLES (5000), BENCH_QMP_SAMPLES
# (50), BENCH_QMP_CYCLES (1000), BENCH_QMP_CALLS (1000), VMSIG_QEMU (the QEMU
# binary, default qemu-system-x86_64), BENCH_LOAD_CALLS (200000),
# BENCH_FRAMES (300), BENCH_FRAMES_QEMU (100), BENCH_BOOTSTRAP_RUNS (20),
# BENCH_BOOTSTRAP_QEMU_RUNS (10), BENCH_BOOTSTRAP_LINUX_RUNS (3),
# BENCH_FLOODS_SECONDS (6, per flood), BENCH_FLOODS_LOAD_CALLS (40000),
# BENCH_ONLY="bus core idle scale auth private memctx lease memwrite detect
# qmp load frames bootstrap floods" to run a subset,
# BENCH_STRICT=1 to exit 1 when a target is missed (otherwise only errors
# make it fail).
#
# The auth benchmarks need root (polkitd drops to its own user), setpriv,
# and org.vmsig's actions in polkit's actions directory: the source tree's
# polkit/org.vmsig.policy is copied there if no such file exists, and removed
# again at exit. A different file of that name makes them refuse to run.
set -eu

srcdir=$(cd "$(dirname "$0")/.." && pwd)
calls=${BENCH_CALLS:-20000}
runs=${BENCH_RUNS:-3}
idle_seconds=${BENCH_IDLE_SECONDS:-10}
first_samples=${BENCH_FIRST_SAMPLES:-200}
lease_cycles=${BENCH_LEASE_CYCLES:-5000}
qmp_samples=${BENCH_QMP_SAMPLES:-50}
qmp_cycles=${BENCH_QMP_CYCLES:-1000}
qmp_calls=${BENCH_QMP_CALLS:-1000}
load_calls=${BENCH_LOAD_CALLS:-200000}
frames=${BENCH_FRAMES:-300}
frames_qemu=${BENCH_FRAMES_QEMU:-100}
bootstrap_runs=${BENCH_BOOTSTRAP_RUNS:-20}
bootstrap_qemu_runs=${BENCH_BOOTSTRAP_QEMU_RUNS:-10}
bootstrap_linux_runs=${BENCH_BOOTSTRAP_LINUX_RUNS:-3}
floods_seconds=${BENCH_FLOODS_SECONDS:-6}
floods_load_calls=${BENCH_FLOODS_LOAD_CALLS:-40000}
only=${BENCH_ONLY:-bus core idle scale auth private memctx lease memwrite detect qmp load frames bootstrap floods}
# Every vmsigd of the run (its own, bench-load's, bench-bootstrap's) loads
# the frames plugin of this build, when built with it, not an installed one
# that may be missing or older (vmsigd(8), VMSIG_VGPU_LIBRARY).
if [ -e "$PWD/.libs/libvmsig-vgpu.so.0" ]; then
        VMSIG_VGPU_LIBRARY="$PWD/.libs/libvmsig-vgpu.so.0"
        export VMSIG_VGPU_LIBRARY
fi

# need PROGRAM...: exit 2 unless the build directory has them all.
need() {
        for p in "$@"; do
                if [ ! -x "$p" ]; then
                        echo "run.sh: ./$p is missing; run me from the build directory after 'make bench'." >&2
                        exit 2
                fi
        done
}
need vmsigd bench/echo-service bench/bench-calls bench/bench-core bench/bench-detect
qemu=${VMSIG_QEMU:-qemu-system-x86_64}
DBUS_DAEMON=${DBUS_DAEMON:-dbus-daemon}
POLKITD=${POLKITD:-/usr/lib/polkit-1/polkitd}
POLKIT_ACTIONS_DIR=${POLKIT_ACTIONS_DIR:-/usr/share/polkit-1/actions}

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/vmsig-bench.XXXXXX")
# Others may pass through (nobody's client reaches the bus socket), not list.
chmod 0711 "$tmpdir"
bus_pid=
vmsigd_pid=
echo_pid=
strace_pid=
polkitd_pid=
policy_src="$srcdir/polkit/org.vmsig.policy"
policy_dst="$POLKIT_ACTIONS_DIR/org.vmsig.policy"
policy_installed=

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

cleanup() {
        status=$?
        trap - EXIT INT TERM HUP
        stop "$strace_pid"
        stop "$polkitd_pid"
        remove_policy
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

# --- org.vmsig's polkit actions ------------------------------------------------
# install_policy: make polkit/org.vmsig.policy visible to polkitd. An
# identical file is used as it is (and left alone); a different one is not
# ours to replace. The copy appears under its name at once (ln), so that
# polkitd never reads half a file, and so that a file someone else put
# there meanwhile is never overwritten.
install_policy() {
        if [ ! -d "$POLKIT_ACTIONS_DIR" ]; then
                echo "  $POLKIT_ACTIONS_DIR does not exist (is polkitd installed?)"
                return 1
        fi
        if [ ! -e "$policy_dst" ]; then
                tmp=$(mktemp "$POLKIT_ACTIONS_DIR/.org.vmsig.policy.XXXXXX")
                if cat "$policy_src" >"$tmp" && chmod 0644 "$tmp" && ln "$tmp" "$policy_dst" 2>/dev/null; then
                        policy_installed=1
                        rm -f "$tmp"
                        echo "  installed $policy_dst for this run (removed at exit)"
                        return 0
                fi
                rm -f "$tmp"
        fi
        if cmp -s "$policy_src" "$policy_dst"; then
                echo "  using the $policy_dst already installed (identical to polkit/org.vmsig.policy)"
                return 0
        fi
        echo "  refusing: $policy_dst exists and differs from polkit/org.vmsig.policy"
        return 1
}

# remove_policy: only our own copy, and only while it is still ours.
remove_policy() {
        [ -n "$policy_installed" ] || return 0
        if cmp -s "$policy_src" "$policy_dst"; then
                rm -f "$policy_dst"
        fi
        policy_installed=
}

start_polkitd() {
        if [ ! -x "$POLKITD" ]; then
                echo "  $POLKITD is not installed (apt-get install polkitd)"
                return 1
        fi
        if ! command -v setpriv >/dev/null 2>&1; then
                echo "  setpriv is not installed"
                return 1
        fi
        if [ "$(id -u)" != 0 ]; then
                echo "  not root: polkitd and the private socket need root"
                return 1
        fi
        install_policy || return 1
        # It drops to its own user, and finds the bus through
        # DBUS_SYSTEM_BUS_ADDRESS.
        "$POLKITD" --no-debug >"$tmpdir/polkitd.log" 2>&1 &
        polkitd_pid=$!
        if ! bench/bench-calls --wait-action org.vmsig.admin --timeout 15; then
                echo "run.sh: polkitd did not come up with org.vmsig's actions:" >&2
                cat "$tmpdir/polkitd.log" >&2
                exit 1
        fi
}

stop_polkitd() {
        stop "$polkitd_pid"
        polkitd_pid=
        remove_policy
}

# --- the private system bus, vmsigd and the echo service ---------------------
# vmsigd_conf LINE...: vmsigd's configuration, warnings logged, and LINEs.
vmsigd_conf() {
        {
                echo '<vmsigd>'
                echo '  <log level="warning"/>'
                for line in "$@"; do
                        echo "  $line"
                done
                echo '</vmsigd>'
        } >"$tmpdir/vmsigd.conf"
}

# start_services [qmp]: vmsigd with the stub VMs, or (qmp) with no stub VM and
# discovery on $tmpdir/vms.d.
start_services() {
        # The default-deny policy of /usr/share/dbus-1/system.conf, ours, the
        # echo service's and polkitd's, as bench-load and bench-bootstrap have
        # them on their own buses.
        bench/bench-calls --bus-config "$tmpdir" --srcdir "$srcdir" >"$tmpdir/bus.conf"
        # Audit records on stderr, one line each: run_auth counts the polkit
        # checks in them.
        audit='<audit target="stderr"/>'
        case "${1:-}" in
        qmp)
                mkdir -p "$tmpdir/vms.d"
                vmsigd_conf "$audit" "<discovery trigger-dir=\"$tmpdir/vms.d\"/>"
                ;;
        frames)
                # One stub VM to look at, frames at the highest rate, from
                # the library just built.
                vmsigd_conf '<frames rate="60"/>' '<stub-vm name="screen" ram-size="4M"/>'
                ;;
        floods)
                # A quota of pending calls small enough to flood past, and a
                # stub whose pause and resume take time.
                vmsigd_conf "$audit" '<admission max-pending-calls="8"/>' '<stub-vm name="alpha" ram-size="4M"/>' \
                        '<stub-vm name="slow" ram-size="4M" latency-ms="20"/>'
                ;;
        *)
                # 16 VMs of 4 MiB and, for memctx's read bandwidth, one of
                # 256 MiB (a sparse memfd until memctx-read reads it).
                set -- '<stub-vm name="alpha" ram-size="4M"/>'
                for i in 01 02 03 04 05 06 07 08 09 10 11 12 13 14 15; do
                        set -- "$@" "<stub-vm name=\"vm$i\" ram-size=\"4M\"/>"
                done
                vmsigd_conf "$audit" "$@" '<stub-vm name="big" ram-size="256M"/>'
                ;;
        esac

        # A bus.address of an earlier start would pass for this one's.
        rm -f "$tmpdir/bus.address"
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

        ./vmsigd --config "$tmpdir/vmsigd.conf" --private-socket="$tmpdir/private" 2>"$tmpdir/vmsigd.log" &
        vmsigd_pid=$!
        bench/echo-service --private-socket="$tmpdir/echo-private" 2>"$tmpdir/echo-service.log" &
        echo_pid=$!
        if ! bench/bench-calls --wait org.vmsig --timeout 10 || ! bench/bench-calls --wait org.vmsig.BenchEcho --timeout 10
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
        audit_records=$(grep -c '^vmsig-audit: ' "$tmpdir/vmsigd.log" || true)
        echo "vmsigd wrote $audit_records audit records"
        if grep -qv '^vmsig-audit: ' "$tmpdir/vmsigd.log"; then
                echo "vmsigd logged $(grep -cv '^vmsig-audit: ' "$tmpdir/vmsigd.log") lines at level warning or above, starting with:"
                grep -v '^vmsig-audit: ' "$tmpdir/vmsigd.log" | head -5 | sed 's/^/  /'
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

# skip NAME WHY: say why NAME is skipped, and note it for the summary.
skip() {
        echo "  $2"
        echo "@ $1 skipped" >>"$results"
}

# polkit_checks: how many decisions about nobody vmsigd has audited (each
# polkit check leaves one; public reads leave none).
polkit_checks() {
        grep -c '^vmsig-audit: uid=65534 ' "$tmpdir/vmsigd.log" || true
}

# --- 3. idle -------------------------------------------------------------------
run_idle() {
        echo "== idle: wakeups of vmsigd with 17 idle stub VMs (16 of 4 MiB, 1 of 256 MiB) over ${idle_seconds} s"
        if ! command -v strace >/dev/null 2>&1; then
                skip idle "strace is not installed; skipped"
                return 0
        fi
        # Let start-up settle: the roster went out, clients came and went,
        # and the heap was trimmed once, 3 s after that work (memory-trim.c).
        sleep 4
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
        run_tool bus bench/bench-calls --calls "$calls" --runs "$runs" --warmup 2000 bus
}

# --- 2. core -------------------------------------------------------------------
run_core() {
        echo "== core: in-process publish -> delivery, libvmsig-core vs a bare sd-event loop"
        run_tool core bench/bench-core --runs 5
}

# --- 4. scale ------------------------------------------------------------------
run_scale() {
        echo "== scale: 256 stub endpoints attached to one core, then detached"
        run_tool scale bench/bench-calls --endpoints 256 --ram-size 1048576 scale
}

# --- 5. auth ----------------------------------------------------------------------
run_auth() {
        echo "== auth: a non-root caller (nobody) with a real polkitd on the private bus"
        if ! start_polkitd; then
                skip auth skipped
                return 0
        fi
        # nobody cannot be expected to reach the build directory.
        cp bench/bench-calls "$tmpdir/bench-calls"
        chmod 0755 "$tmpdir/bench-calls"
        as_nobody="setpriv --reuid=nobody --regid=nogroup --clear-groups"

        before=$(polkit_checks)
        # shellcheck disable=SC2086 # as_nobody is a command line
        run_tool auth-steady $as_nobody "$tmpdir/bench-calls" --calls "$calls" --runs "$runs" --warmup 2000 \
                auth-steady
        after=$(polkit_checks)
        checks=$((after - before))
        echo "  steady  polkit checks audited for the $((calls * runs + 2001)) GetEndpoint calls on that connection: $checks"
        echo "@ auth-checks checks=$checks" >>"$results"

        before=$after
        # shellcheck disable=SC2086
        run_tool auth-first $as_nobody "$tmpdir/bench-calls" --samples "$first_samples" --runs "$runs" \
                --warmup 20 auth-first
        after=$(polkit_checks)
        echo "  first   polkit checks audited: $((after - before)) for $((first_samples * runs + 20)) new connections"
        stop_polkitd
}

# --- 6. private ------------------------------------------------------------------
run_private() {
        echo "== private: vmsigd over its private socket (p2p) vs through dbus-daemon, as root"
        run_tool private bench/bench-calls --socket "$tmpdir/private" --echo-socket "$tmpdir/echo-private" \
                --calls "$calls" --runs "$runs" --warmup 2000 private
}

# --- 7. memctx -------------------------------------------------------------------
run_memctx() {
        echo "== memctx: SubscribeMemctx vs an fd-returning echo method, and reading the RAM fd, as root"
        run_tool memctx bench/bench-calls --calls "$calls" --runs "$runs" --warmup 2000 \
                --ram-endpoint big --fresh 5 --passes 15 memctx
}

# --- 8. lease --------------------------------------------------------------------
run_lease() {
        echo "== lease: AcquireLease(\"power\", {}) + Release() cycles, through the bus and p2p, as root"
        run_tool lease bench/bench-calls --socket "$tmpdir/private" --calls "$lease_cycles" --runs "$runs" --warmup 500 \
                lease
}

echo "vmsig benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r)"
# --- 9. memwrite and 10. detect --------------------------------------------------------
run_memwrite() {
        echo "== memwrite: MemWrite vs Echo round trips, and MemWriteBatch vs pwrite() to a memfd, as root"
        run_tool memwrite bench/bench-calls --endpoint alpha --calls "$calls" --runs "$runs" --warmup 2000 memwrite
}

run_detect() {
        echo "== detect: the DTB detector on synthetic guests (low stub; full scan vs a plain read pass)"
        run_tool detect bench/bench-detect
}

# --- 11. qmp ---------------------------------------------------------------------
# Its own vmsigd: no stub VM, discovery on $tmpdir/vms.d. bench-qmp starts
# QEMU in $tmpdir/qemu and writes the trigger file.
run_qmp() {
        echo "== qmp: vmsigd against a real QEMU (TCG): discovery, Pause+Resume, InjectInput, vs direct QMP, as root"
        if [ ! -x bench/bench-qmp ]; then
                skip qmp "vmsigd is not armed (configure --enable-qmp builds the QMP backend and bench-qmp); skipped"
                return 0
        fi
        if ! command -v "$qemu" >/dev/null 2>&1; then
                skip qmp "$qemu is not installed (apt-get install qemu-system-x86); skipped"
                return 0
        fi
        start_services qmp
        run_tool qmp bench/bench-qmp --trigger-dir "$tmpdir/vms.d" --dir "$tmpdir/qemu" --samples "$qmp_samples" \
                --cycles "$qmp_cycles" --calls "$qmp_calls" --runs "$runs"
        stop_services
}

# --- 12. load --------------------------------------------------------------------
# bench-load starts a bus and a vmsigd of its own (its stub VMs, its trigger
# directory), so it runs apart from the others. A violation (lost, reordered
# or wrong data, a leak, a crash) is an error, not a missed target.
run_load() {
        echo "== load: 200 clients, fake QEMUs through the trigger directory, faults and bad input, as root"
        need bench/bench-load
        run_tool load bench/bench-load --srcdir "$srcdir" --vmsigd ./vmsigd --calls "$load_calls"
}

# --- 13. frames ------------------------------------------------------------------
run_frames() {
        echo "== frames: libvmsig-vgpu in process, GetFrame through vmsigd vs EchoFd, and (armed) a real QEMU"
        if [ ! -x bench/bench-frames ]; then
                skip frames "no libvmsig-vgpu in this build (libpng missing?); skipped"
                return 0
        fi
        run_tool frames-stub bench/bench-frames --case stub --frames "$frames"
        run_tool frames-stub-big bench/bench-frames --case stub --width 1920 --height 1080 --frames "$frames"
        start_services frames
        run_tool frames-bus bench/bench-calls --endpoint screen --calls "$calls" --runs "$runs" --warmup 2000 frames-bus
        stop_services
        if [ ! -x bench/bench-qmp ]; then
                echo "  QEMU part: not the armed build (configure --enable-qmp); skipped"
        elif ! command -v "$qemu" >/dev/null 2>&1; then
                echo "  QEMU part: $qemu is not installed; skipped"
        else
                run_tool frames-qemu bench/bench-frames --case qemu --frames "$frames_qemu" --runs "$runs" --seconds 5
        fi
}

# --- 14. bootstrap ---------------------------------------------------------------
# bench-bootstrap starts its own buses and vmsigds: two side by side for
# the CPU baseline, which the services above cannot give. It skips the
# QEMU and Linux parts itself where the build is not armed or QEMU or the
# kernel is missing.
run_bootstrap() {
        echo "== bootstrap: structures in place (or a real kernel up) -> BootstrapState ready, and vmsigd's CPU while it waits"
        need bench/bench-bootstrap
        run_tool bootstrap bench/bench-bootstrap --srcdir "$srcdir" --vmsigd ./vmsigd --runs "$bootstrap_runs" \
                --qemu-runs "$bootstrap_qemu_runs" --linux-runs "$bootstrap_linux_runs"
}

# --- 15. floods ------------------------------------------------------------------
# A vmsigd of its own (start_services floods) and polkitd on its bus.
# bench-floods makes nobody's processes itself (fork, then the credentials
# setpriv would set), and runs bench-load, which starts a bus and vmsigd of
# its own, for the load case.
run_floods() {
        echo "== floods: root's calls while others flood vmsigd, its memory after, MemWriteBatch vs EchoBatch, as root"
        need bench/bench-floods bench/bench-load
        start_services floods
        if ! start_polkitd; then
                echo "  the polkit case is skipped"
        fi
        run_tool floods bench/bench-floods --seconds "$floods_seconds" --log "$tmpdir/vmsigd.log" \
                --private-socket "$tmpdir/private" --bench-load bench/bench-load --srcdir "$srcdir" --vmsigd ./vmsigd \
                --load-calls "$floods_load_calls"
        stop_polkitd
        stop_services
}

# run_each SECTION...: run_SECTION for those BENCH_ONLY names, in order.
run_each() {
        for section in "$@"; do
                if wants "$section"; then "run_$section"; fi
        done
}

# Those on the services started here; then those that start their own or
# need none.
if wants idle || wants bus || wants private || wants memctx || wants lease || wants memwrite || wants auth; then
        start_services
        run_each idle bus private memctx lease memwrite auth
        stop_services
fi
run_each core scale detect qmp load frames bootstrap floods

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
function show(what, value, target, verdict) {
        printf "  %-34s %-12s %-12s %s\n", what, value, target, verdict
}
function report(what, value, target, ok) {
        show(what, value, target, ok ? "PASS" : "FAIL")
        if (!ok)
                failed++
}
# report against a limit (a string, printed as it is)
function atmost(what, v, lim) { report(what, v, "<= " lim, v + 0 <= lim + 0) }
function atleast(what, v, lim) { report(what, v, ">= " lim, v + 0 >= lim + 0) }
function below(what, v, lim) { report(what, v, "< " lim, v + 0 < lim + 0) }
function exactly(what, v, lim) { report(what, v, lim, v + 0 == lim + 0) }
function same(what, a, b) { report(what, a "/" b, "equal", a == b) }
BEGIN { show("measure", "result", "target", "") }
$1 != "@" { next }
$2 ~ /^bus-/ { atmost(substr($2, 5) " vmsigd/echo time", field("ratio"), "1.15") }
$2 ~ /^core-/ {
        split($2, p, "-")
        atleast("core/bare " p[2] " " p[3], field("ratio"), "0.5")
}
$2 == "idle" && $3 == "skipped" { show("idle wakeups in " secs " s", "-", "0", "SKIPPED") }
$2 == "idle" && $3 != "skipped" { exactly("idle wakeups in " secs " s", field("wakeups"), "0") }
$2 == "auth-steady" {
        atmost("auth: public GetEndpoint, nobody", field("ratio"), "1.15")
        show("  first call on the connection (ms)", field("first_ms"), "")
}
$2 == "auth-checks" { exactly("auth: polkit checks, public reads", field("checks"), "0") }
$2 == "auth-first" {
        show("auth: first call adds (ms)", field("added_ms"), "(report)")
        show("  connect + GetEndpoint (ms)", field("vmsigd_ms"), "")
        show("  connect + Echo (ms)", field("echo_ms"), "")
        show("  a polkit check alone (ms)", field("polkit_ms"), "")
}
$2 == "auth" && $3 == "skipped" {
        show("auth", "-", "", "SKIPPED")
        failed++
}
$2 ~ /^private-/ && field("reference") == "1" {
        show("private: echo p2p/bus rate", field("ratio"), "(reference)")
        next
}
$2 ~ /^private-/ { atleast("private: " substr($2, 9) " p2p/bus rate", field("ratio"), "1.8") }
$2 == "memctx-subscribe" { atmost("memctx: Subscribe vmsigd/echo time", field("ratio"), "1.2") }
$2 ~ /^memctx-read-/ {
        atleast("memctx: read " substr($2, 13) " recv/baseline", field("ratio"), "0.95")
        show("  received fd (GB/s)", field("received_gbps"), "")
}
$2 == "lease" {
        show("lease: cycles/s through the bus", field("bus_cps"), "(report)")
        show("lease: cycles/s p2p", field("p2p_cps"), "(report)")
}
$2 == "memwrite-call" { atmost("memwrite: MemWrite vmsigd/echo time", field("ratio"), "1.2") }
$2 == "memwrite-batch" {
        show("memwrite: batch MiB/s", field("vmsigd_mbps"), "(report)")
        show("  pwrite baseline MiB/s", field("baseline_mbps"), "")
}
$2 == "detect-low-stub" { below("detect: low stub, 4 GiB (max ms)", field("max_ms"), "10") }
$2 ~ /^detect-scan-/ { atmost("detect: " substr($2, 13) " scan/read pass", field("ratio"), "2") }
$2 == "qmp" && $3 == "skipped" { show("qmp (armed build, QEMU)", "-", "", "SKIPPED") }
$2 == "qmp-discovery" {
        below("qmp: trigger -> EndpointAdded (ms)", field("median_ms"), "5")
        show("  p90 / p99 (ms)", field("p90_ms") " / " field("p99_ms"), "")
        show("  inotify watcher baseline (ms)", field("baseline_ms"), "")
        show("  vmsigd/baseline", field("ratio"), "(report)")
}
$2 == "qmp-lifecycle" {
        atmost("qmp: Pause+Resume vmsigd/direct", field("ratio"), "1.5")
        show("  us per cycle, vmsigd / direct", field("vmsigd_us") " / " field("direct_us"), "")
}
$2 ~ /^qmp-input-/ {
        show("qmp: input " substr($2, 11) " events/s", field("vmsigd_eps"), "(report)")
        show("  direct events/s; vmsigd/direct", field("direct_eps") "; " field("ratio"), "")
}
$2 == "scale" {
        below("attach " field("endpoints") " endpoints (ms)", field("attach_ms"), "1000")
        show("  with dispatch (ms)", field("attach_dispatch_ms"), "")
        show("  RSS per endpoint (KiB)", field("rss_per_ep_kib"), "")
        show("  fds per endpoint", field("fds_per_ep"), "")
        show("  detach all (ms)", field("detach_ms"), "")
        show("  detach + dispatch + reap (ms)", field("detach_reap_ms"), "")
}
$2 == "load" {
        show("load: calls/s, " field("clients") " clients", field("cps"), "(report)")
        show("  p50 / p99 (ms)", field("p50_ms") " / " field("p99_ms"), "")
        show("  CPU us/call, vmsigd / dbus-daemon", field("vmsigd_cpu_us") " / " field("bus_cpu_us"), "")
}
$2 == "frames" && $3 == "skipped" { show("frames (libvmsig-vgpu)", "-", "", "SKIPPED") }
$2 ~ /^frames-stub-/ {
        show("frames: stub " substr($2, 13) " p50/p99 ms", field("p50_ms") " / " field("p99_ms"), "(report)")
        show("  captures/s; CPU us/capture", field("fps") "; " field("cpu_us"), "")
}
$2 == "frames-bus" { atmost("frames: GetFrame vmsigd/echo time", field("ratio"), "1.2") }
$2 == "frames-qemu" {
        show("frames: QEMU library/direct fps", field("ratio"), "(report)")
        show("  fps library / direct", field("library_fps") " / " field("direct_fps"), "")
        show("  bench CPU us/frame lib / direct", field("library_self_cpu_us") " / " field("direct_self_cpu_us"), "")
        show("  QEMU CPU us/frame lib / direct", field("library_qemu_cpu_us") " / " field("direct_qemu_cpu_us"), "")
}
$2 == "frames-qemu-vgpu" {
        show("frames: QEMU vgpu at 60 captures/s", field("captures_per_s"), "(report)")
        show("  p50 / p99 latency (ms)", field("p50_ms") " / " field("p99_ms"), "")
}
$2 == "bootstrap-stub" {
        below("bootstrap: stub -> ready (ms)", field("median_ms"), "1000")
        show("  p90 (ms); baseline (ms); ratio", field("p90_ms") "; " field("baseline_ms") "; " field("ratio"), "")
}
$2 ~ /^bootstrap-cpu-/ {
        below("bootstrap: CPU " substr($2, 15) " (% core)", field("pct"), "1")
        show("  baseline (% core)", field("baseline_pct"), "")
}
$2 == "bootstrap-cpu-nosystem" {
        show("  backoff at its cap (% core)", field("steady_pct"), "(report)")
}
$2 ~ /^bootstrap-(qemu|linux)$/ && $3 == "skipped" {
        show("bootstrap: " substr($2, 11) " (armed, QEMU)", "-", "", "SKIPPED")
}
$2 == "bootstrap-qemu" && $3 != "skipped" {
        below("bootstrap: QEMU long mode -> ready", field("median_ms"), "1000")
        show("  p90 (ms); baseline (ms); ratio", field("p90_ms") "; " field("baseline_ms") "; " field("ratio"), "")
}
$2 == "bootstrap-linux" && $3 != "skipped" {
        below("bootstrap: Linux tables -> ready", field("median_ms"), "1000")
        show("  cont -> ready (ms)", field("from_cont_ms"), "(report)")
        show("  baseline (ms); ratio", field("baseline_ms") "; " field("ratio"), "")
}
$2 ~ /^floods-/ && $3 == "skipped" {
        show("floods: " substr($2, 8), "-", "", "SKIPPED")
        failed++
        next
}
$2 == "floods-idle" {
        show("floods: idle root p99 (ms)", field("p99_ms"), "(baseline)")
}
$2 ~ /^floods-/ && field("rss_ratio") != "" {
        q = field("p99_ms")
        if (field("control") == "1")
                show("floods: " substr($2, 8) " root p99 (ms)", q, "(control)")
        else
                report("floods: " substr($2, 8) " root p99 (ms)", q, "< 20", q + 0 < 20 && field("failures") + 0 == 0)
        show("  ratio to the idle p99", field("ratio"), "(report)")
        if (field("p2p_p99_ms") != "")
                show("  private socket p99 (ms)", field("p2p_p99_ms"), "(report)")
        atmost("  RSS after/before (anon+file)", field("rss_ratio"), "1.05")
        same("  fds after/before", field("fd_after"), field("fd_before"))
        if (field("unexpected") + 0 > 0)
                report("  unexpected replies to the flood", field("unexpected"), "0", 0)
}
$2 == "floods-batch-after" {
        show("floods: batch ratio after floods", field("ratio"), "(report)")
        show("  MiB/s vmsigd / echo", field("vmsigd_mbps") " / " field("echo_mbps"), "")
}
$2 == "floods-batch" {
        atleast("floods: MemWriteBatch/EchoBatch MiB/s", field("ratio"), "0.5")
        show("  MiB/s vmsigd / echo", field("vmsigd_mbps") " / " field("echo_mbps"), "")
}
$2 == "load-resources" {
        exactly("load: violations (lost data)", field("violations"), "0")
        same("load: vmsigd fds after/before", field("fd_after"), field("fd_base"))
        atmost("load: RSS after/base, no guest RAM", field("rss_ratio"), "1.10")
}
END {
        printf "  %d target%s missed\n", failed, failed == 1 ? "" : "s"
        exit (failed > 0 ? 1 : 0)
}' secs="$idle_seconds" "$results" && missed=0 || missed=1

if [ "$missed" = 1 ] && [ "${BENCH_STRICT:-0}" = 1 ]; then
        exit 1
fi
exit 0
