#!/bin/sh
# fuzz.sh [SECONDS]: fuzz the DTB detector with libFuzzer (clang, ASan and
# UBSan) for a bounded time, starting from the seed corpus. Exits non-zero
# on a crash, a leak or a detector invariant broken (see tests/fuzz-detect.c).
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE \
        -I"$top/src/shared" -I"$top/src/core" -I"$top/src/endpoint" -I"$top/src/memctx" \
        "$top/tests/fuzz-detect.c" "$top/src/memctx/detect.c" "$top/src/memctx/memwrite.c" -o "$out/fuzz-detect"
mkdir -p "$out/corpus"
cp "$top"/tests/data/fuzz-detect/* "$out/corpus/"
"$out/fuzz-detect" -max_total_time="$seconds" -print_final_stats=1 "$out/corpus" 2>&1 | tail -5
