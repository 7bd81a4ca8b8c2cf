#!/bin/sh
# embed-file.sh SYMBOL INPUT OUTPUT: turn INPUT into a C source defining
#   const char SYMBOL[];  (NUL-terminated)  and  const unsigned SYMBOL_len;
# so that a data file ships inside the binary without a runtime lookup.
set -e
sym=$1
in=$2
out=$3
{
        echo "/* Generated from $(basename "$in") by embed-file.sh; do not edit. */"
        echo "extern const char ${sym}[];"
        echo "extern const unsigned ${sym}_len;"
        echo "const char ${sym}[] = {"
        od -An -v -tu1 "$in" | awk '{ for (i = 1; i <= NF; i++) printf "%s,", $i; printf "\n" }'
        echo "0 };"
        echo "const unsigned ${sym}_len = sizeof(${sym}) - 1;"
} > "$out.tmp"
mv -f "$out.tmp" "$out"
