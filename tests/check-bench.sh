#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# `make bench` on the build CI just made, as the README's "Building by hand"
# runs it (issue 18.16): it exits 0, every section of bench/run.sh runs or
# says why it is skipped, and nothing fails to connect or to load. Short
# parameters: this checks that the benchmarks work, not what they measure
# (that is bench/RESULTS.md's business, on a quiet machine). Prints TAP.
#   VMSIG_BUILDDIR  the build tree (default: .)
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VMSIG_BUILDDIR:-.}
# shellcheck source=tests/tap.sh
. "$top/tests/tap.sh"
log=$(mktemp "${TMPDIR:-/tmp}/vmsig-check-bench.XXXXXX")
trap 'rm -f "$log"' EXIT

BENCH_CALLS=500 BENCH_RUNS=1 BENCH_IDLE_SECONDS=1 BENCH_FIRST_SAMPLES=10 BENCH_LEASE_CYCLES=100 \
        BENCH_LOAD_CALLS=2000 BENCH_FRAMES=20 BENCH_FRAMES_QEMU=10 BENCH_QMP_SAMPLES=5 BENCH_QMP_CYCLES=50 \
        BENCH_QMP_CALLS=50 BENCH_BOOTSTRAP_RUNS=2 BENCH_BOOTSTRAP_QEMU_RUNS=1 BENCH_BOOTSTRAP_LINUX_RUNS=1 \
        BENCH_FLOODS_SECONDS=1 BENCH_FLOODS_LOAD_CALLS=2000 make -C "$build" bench >"$log" 2>&1
status=$?
tap_result "make bench exits 0" $status "$([ $status -eq 0 ] || tail -40 "$log")"

# Each section prints "== NAME: what it measures" first, and a part it
# skips says why under it (the armed build's QEMU parts, in a plain one).
missing=""
for section in bus core idle scale auth private memctx lease memwrite detect qmp load frames bootstrap floods; do
        grep -q "^== $section: " "$log" || missing="$missing $section"
done
tap_empty "every section of bench/run.sh ran or said why not" "${missing:+missing:$missing}"
tap_empty "nothing failed to connect or to start" \
        "$(grep -iE 'cannot connect|did not come up|No such file or directory' "$log")"
tap_empty "vmsigd loaded the frames plugin of this build" "$(grep -E 'Cannot load|running without frames' "$log")"
tap_done
