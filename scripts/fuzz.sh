#!/bin/sh
# fuzz.sh [--runs N | SECONDS] [NAME...]: build the libFuzzer harnesses of
# tests/ with clang (ASan and UBSan, nothing recovers; configure
# --enable-fuzzers in $FUZZ_BUILDDIR, default _build-fuzz) and fuzz each from
# its seed corpus tests/data/fuzz-NAME, for N runs or SECONDS seconds each
# (default: 60 s). NAME is detect, detect-linux, config, discovery, memwrite,
# bus, qmp, hmp or libvirt-ram; without one, all of them (qmp and hmp need
# json-c). Exits non-zero on a crash, a leak, a hang or a broken check; the
# input that did it is kept as fuzz-NAME-crash-* (or -leak-, -timeout-) in
# $FUZZ_ARTIFACTS (default: the current directory), replay it with the standalone
# tests/fuzz-NAME of a build. Prints one summary line per harness; with
# --tap (first), as TAP, one test a harness, for CI's summary.
# FUZZ_VERBOSE=1 keeps the harness's own stderr (daemon logs, the failed
# check) in the output.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
limit="-max_total_time=60"
tap=
if [ "${1:-}" = --tap ]; then
        tap=1
        shift
fi
case "${1:-}" in
--runs) limit="-runs=$2"; shift 2 ;;
[0-9]*) limit="-max_total_time=$1"; shift ;;
esac
artifacts=$(cd "${FUZZ_ARTIFACTS:-.}" && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/vmsig-fuzz.XXXXXX")
trap 'rm -rf "$out"' EXIT
trap 'exit 1' HUP INT TERM

# The harnesses are Makefile.am's tests/fuzz-NAME, built as libFuzzer
# programs by a build configured with --enable-fuzzers (clang, ASan, UBSan,
# configure.ac's warnings): the sources and libraries of each are listed
# there only. That build is kept in $FUZZ_BUILDDIR (default _build-fuzz)
# and reused, reconfigured only when its options change.
builddir=${FUZZ_BUILDDIR:-$top/_build-fuzz}
all="detect detect-linux config discovery memwrite bus qmp hmp libvirt-ram"

have_qmp() {
        pkg-config --exists json-c
}

# Whether NAME is left out here: qmp and hmp without json-c.
without_json_c() {
        { [ "$1" = qmp ] || [ "$1" = hmp ]; } && ! have_qmp
}

# one_of WORD LIST: whether WORD is one of the words of LIST.
one_of() {
        case " $2 " in
        *" $1 "*) return 0 ;;
        esac
        return 1
}

# Configures (unless done with these options) and builds the tree; one
# that does not build leaves its harnesses to fail alone, below.
setup() {
        args="--enable-fuzzers CC=clang"
        # qmp and hmp are built only with the QEMU backend (json-c).
        if have_qmp; then
                args="$args --enable-qmp"
        fi
        # Other options, another build: make does not see changed flags.
        if [ "$(cat "$builddir/fuzz-configure-args" 2>/dev/null)" != "$args" ]; then
                find "$builddir" -mindepth 1 -maxdepth 1 ! -name fuzz.lock -exec rm -rf {} +
                echo "$args" >"$builddir/fuzz-configure-args"
        fi
        # shellcheck disable=SC2086 # the arguments are words
        "$top/scripts/build.sh" "$builddir" $args ||
                echo "fuzz.sh: the build in $builddir failed; each harness is built on its own below" >&2
}

build() {
        make -C "$builddir" -j"$(nproc)" "tests/fuzz-$1" >/dev/null
}

# report OK LINE: a harness's line, as it is or as the next TAP test.
n=0
report() {
        n=$((n + 1))
        if [ -z "$tap" ]; then
                echo "$2"
        elif [ "$1" = skip ]; then
                echo "ok $n - $2 # SKIP"
        else
                echo "$([ "$1" = yes ] || echo "not ")ok $n - $2"
        fi
}

# "NAME SECONDS RUNS cov ft corpus RESULT" from libFuzzer's last status line
# and final stats; SECONDS as it took, corpus loading included.
summary() {
        awk -v name="$1" -v secs="$2" -v result="$3" '
                / cov: / { for (i = 1; i < NF; i++) { if ($i == "cov:") cov = $(i + 1); if ($i == "ft:") ft = $(i + 1);
                                                      if ($i == "corp:") corp = $(i + 1) } }
                /^stat::number_of_executed_units:/ { runs = $2 }
                END { printf "fuzz-%s: %s s, %s runs, cov %s, ft %s, corpus %s: %s\n", name, secs, runs, cov, ft, corp, result }' "$4"
}

run() {
        log="$out/fuzz-$1.log"
        mkdir -p "$out/corpus-$1"
        mask="-close_fd_mask=2"
        [ "${FUZZ_VERBOSE:-0}" = 1 ] && mask=
        start=$(date +%s)
        # New inputs go into the first directory; the seeds stay as they are.
        # The harnesses' scratch files go with $out, whatever happens.
        # shellcheck disable=SC2086 # no mask is no argument
        if TMPDIR="$out" "$builddir/tests/fuzz-$1" "$limit" -timeout=30 -print_final_stats=1 $mask -artifact_prefix="$artifacts/fuzz-$1-" \
                "$out/corpus-$1" "$top/tests/data/fuzz-$1" >"$log" 2>&1; then
                result=ok
        else
                result=FAILED
                grep -E '^(==|SUMMARY|artifact_prefix|.*check failed)' "$log" | head -20 >&2 || true
        fi
        line=$(summary "$1" $(($(date +%s) - start)) "$result" "$log")
        [ "$result" = ok ] && report yes "$line" && return
        report no "$line"
        return 1
}

names=${*:-$all}
for name in $names; do
        if ! one_of "$name" "$all"; then
                echo "fuzz.sh: no harness named $name" >&2
                exit 2
        fi
done
# Runs at once (bench/RESULTS.md has two) share the build: one builds at a
# time, then they fuzz side by side. One that does not build fails alone:
# the others still run.
mkdir -p "$builddir"
exec 9>"$builddir/fuzz.lock"
flock 9
setup
unbuilt=
for name in $names; do
        without_json_c "$name" || build "$name" || unbuilt="$unbuilt $name"
done
exec 9>&-
status=0
for name in $names; do
        if without_json_c "$name"; then
                # CI installs json-c (scripts/deps.sh): there a missing one
                # is a broken setup, not a harness to leave out.
                if [ "${CI:-}" = true ]; then
                        report no "fuzz-$name: json-c is not installed (apt-get install libjson-c-dev): FAILED"
                        status=1
                else
                        report skip "fuzz-$name: skipped, json-c is not installed"
                fi
        elif one_of "$name" "$unbuilt"; then
                report no "fuzz-$name: does not build: FAILED"
                status=1
        else
                run "$name" || status=1
        fi
done
[ -z "$tap" ] || echo "1..$n"
exit $status
