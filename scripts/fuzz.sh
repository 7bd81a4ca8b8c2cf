#!/bin/sh
# fuzz.sh [--runs N | SECONDS] [NAME...]: build the libFuzzer harnesses of
# tests/ with clang (ASan and UBSan, nothing recovers) and fuzz each from
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
names=${*:-detect detect-linux config discovery memwrite bus qmp hmp libvirt-ram}
artifacts=$(cd "${FUZZ_ARTIFACTS:-.}" && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/vmsig-fuzz-build.XXXXXX")
trap 'rm -rf "$out"' EXIT
trap 'exit 1' HUP INT TERM

cc="clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -std=gnu11 -D_GNU_SOURCE"
# configure.ac's warnings: the fuzz builds stay clang-clean.
cc="$cc -Wall -Wextra -Werror -Wno-unused-parameter -Wmissing-prototypes -Wstrict-prototypes -Wshadow -Wformat=2"
printf '#define PACKAGE_VERSION "fuzz"\n' >"$out/config.h"
# With libpng, the bus harness has frames too (libvmsig-vgpu).
if pkg-config --exists libpng; then
        printf '#define VMSIG_HAVE_VGPU 1\n' >>"$out/config.h"
        vgpu_sources="$top/src/vgpu/*.c"
        vgpu_libs="libpng"
fi
cc="$cc -Wnull-dereference -include $out/config.h -I$top/tests"
for d in shared core endpoint memctx bus daemon discovery host host/stub host/qmp host/libvirt vgpu; do
        cc="$cc -I$top/src/$d"
done
core="$top/src/shared/log.c $top/src/shared/hashmap.c $top/src/shared/fd-util.c $top/src/core/*.c $top/src/endpoint/*.c $top/src/memctx/*.c"

have_qmp() {
        pkg-config --exists json-c
}

# Sources and libraries of a harness, on one line each.
sources() {
        case $1 in
        detect) echo "$top/src/memctx/detect.c $top/src/memctx/guest-memory.c $top/src/shared/fd-util.c" ;;
        detect-linux) echo "$top/tests/fuzz-util.c $top/src/memctx/detect-linux.c" \
                "$top/src/memctx/detect.c $top/src/memctx/guest-memory.c $top/src/shared/fd-util.c" ;;
        memwrite) echo "$top/tests/fuzz-util.c $top/src/memctx/memwrite.c $top/src/memctx/guest-memory.c" ;;
        config) echo "$top/tests/fuzz-util.c $top/src/shared/xml-problem.c $top/src/daemon/config-file.c $out/config-schema.c $core" ;;
        discovery) echo "$top/tests/fuzz-util.c $top/src/shared/xml-problem.c $top/src/discovery/*.c $out/vm-schema.c $core" ;;
        bus) echo "$top/tests/fuzz-util.c $top/src/bus/*.c $top/src/host/host-common.c $top/src/host/stub/stub.c" \
                "${vgpu_sources:-} $core" ;;
        qmp) echo "$top/tests/fuzz-util.c $top/src/host/host-common.c $top/src/host/host-ram.c $top/src/host/inode-watch.c $top/src/host/qmp/*.c" \
                "$top/src/shared/keys.c $core" ;;
        hmp) echo "$top/tests/fuzz-util.c $top/src/host/qmp/qmp-hmp.c" ;;
        libvirt-ram) echo "$top/tests/fuzz-util.c $top/src/host/libvirt/libvirt-ram.c $top/src/shared/fd-util.c" \
                "$top/src/host/libvirt/libvirt-xml.c $top/src/host/libvirt/libvirt-seclabel.c $top/src/host/qemu-ram-layout.c" ;;
        *) return 1 ;;
        esac
}

libs() {
        case $1 in
        detect | detect-linux | memwrite) ;;
        config | discovery) pkg-config --cflags --libs libsystemd libxml-2.0 ;;
        libvirt-ram) pkg-config --cflags --libs libxml-2.0 ;;
        bus) pkg-config --cflags --libs libsystemd ${vgpu_libs:-} ;;
        qmp) pkg-config --cflags --libs libsystemd json-c ;;
        hmp) pkg-config --cflags --libs json-c ;;
        esac
}

build() {
        # shellcheck disable=SC2046 # word splitting of the lists is meant
        $cc "$top/tests/fuzz-$1.c" $(sources "$1") $(libs "$1") -o "$out/fuzz-$1"
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
        if TMPDIR="$out" "$out/fuzz-$1" "$limit" -timeout=30 -print_final_stats=1 $mask -artifact_prefix="$artifacts/fuzz-$1-" \
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

"$top/build-aux/embed-file.sh" vmsig_config_schema "$top/data/vmsigd.conf.rng" "$out/config-schema.c"
"$top/build-aux/embed-file.sh" vmsig_vm_schema "$top/data/vm.rng" "$out/vm-schema.c"
status=0
for name in $names; do
        if { [ "$name" = qmp ] || [ "$name" = hmp ]; } && ! have_qmp; then
                # CI installs json-c (scripts/deps.sh): there a missing one
                # is a broken setup, not a harness to leave out.
                if [ "${CI:-}" = true ]; then
                        report no "fuzz-$name: json-c is not installed (apt-get install libjson-c-dev): FAILED"
                        status=1
                else
                        report skip "fuzz-$name: skipped, json-c is not installed"
                fi
                continue
        fi
        if ! sources "$name" >/dev/null; then
                echo "fuzz.sh: no harness named $name" >&2
                exit 2
        fi
        # One that does not build fails alone: the others still run.
        if ! build "$name"; then
                report no "fuzz-$name: does not build: FAILED"
                status=1
                continue
        fi
        run "$name" || status=1
done
[ -z "$tap" ] || echo "1..$n"
exit $status
