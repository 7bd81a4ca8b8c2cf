#!/bin/sh
# The manual pages render without a single warning (man-db and groff -ww),
# fit in 80 columns, and keep up with the sources: org.vmsig.5 names every
# method, property and signal of dbus/*.xml, every org.vmsig.Error.* of
# src/bus/bus-errors.h and every polkit action (and nothing names an action
# the policy lacks); vmsigd.conf.5 names every
# element and attribute of data/vmsigd.conf.rng; vmsigd.8 every long option
# of src/daemon/vmsigd.c. Prints TAP.
srcdir="${VMSIG_SRCDIR:-$(dirname "$0")/..}"
pages="man/vmsigd.8 man/vmsigctl.1 man/vmsigd.conf.5 man/org.vmsig.5"
# shellcheck source=tests/tap.sh
. "$(dirname "$0")/tap.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- rendering ---------------------------------------------------------------
# man-db as a reader would run it (its seccomp sandbox off: containers may
# refuse it), then groff with all its warnings, more than man-db asks for.
# Without man-db groff alone checks, but CI must have both:
# apt-get install man-db groff-base.
for page in $pages; do
        file="$srcdir/$page"
        if [ ! -f "$file" ]; then
                tap_result "$page exists" 1 "$file is missing"
                continue
        fi
        if have man; then
                LC_ALL=C.UTF-8 MANWIDTH=80 MAN_DISABLE_SECCOMP=1 man --warnings -l -E UTF-8 "$file" \
                        >"$tmp/out" 2>"$tmp/err"
                st=$?
                [ -s "$tmp/err" ] && st=1
                tap_result "$page renders with man without warnings" $st "$(cat "$tmp/err")"
                wide=$(awk 'length > 80 { printf "line %d: %d columns\n", NR, length }' "$tmp/out")
                tap_empty "$page fits in 80 columns" "$wide"
        else
                tap_unavailable "$page renders with man without warnings" "man is not installed (apt-get install man-db)"
        fi
        if have groff; then
                LC_ALL=C.UTF-8 groff -man -ww -z -t "$file" >/dev/null 2>"$tmp/err"
                st=$?
                [ -s "$tmp/err" ] && st=1
                tap_result "$page renders with groff -man -ww without warnings" $st "$(cat "$tmp/err")"
        else
                tap_unavailable "$page renders with groff -man -ww without warnings" \
                        "groff is not installed (apt-get install groff-base)"
        fi
done

# --- mentions ------------------------------------------------------------------
# The page text with font changes and escapes taken out, so that names can
# be matched as words.
plain() {
        sed -e 's/\\f\[[^]]*\]//g' -e 's/\\f([A-Za-z][A-Za-z]//g' -e 's/\\f[A-Za-z1-4]//g' \
            -e 's/\\-/-/g' -e 's/\\&//g' -e 's/\\c$//' -e 's/\\(aq/'"'"'/g' -e 's/\\(dq/"/g' \
            -e 's/\\~/ /g' -e 's/\\e/\\/g' "$1"
}

# mentions DESCRIPTION PAGE PREFIX NAMES: every one of NAMES (one a line),
# prefixed with PREFIX, occurs in PAGE as a word.
mentions() {
        if [ ! -f "$srcdir/$2" ]; then
                tap_result "$1" 1 "$2 is missing"
                return
        fi
        if [ -z "$4" ]; then
                tap_result "$1" 1 "found no names to look for: did the source change its format?"
                return
        fi
        plain "$srcdir/$2" >"$tmp/plain"
        missing=$(echo "$4" | sort -u | while read -r name; do
                grep -qwF -e "$3$name" "$tmp/plain" || echo "$3$name"
        done)
        count=$(echo "$4" | sort -u | wc -l)
        if [ -z "$missing" ]; then
                tap_result "$1 ($count names)" 0 ""
        else
                tap_result "$1 ($count names)" 1 "not mentioned: $(echo "$missing" | tr '\n' ' ')"
        fi
}

names=$(cat "$srcdir"/dbus/*.xml | grep -oE '<(method|property|signal) name="[^"]+"' | sed -E 's/.*name="([^"]+)"/\1/')
mentions "org.vmsig.5 names every method, property and signal of dbus/*.xml" man/org.vmsig.5 "" "$names"

names=$(grep -oE '"org\.vmsig\.Error\.[A-Za-z]+"' "$srcdir/src/bus/bus-errors.h" | tr -d '"')
mentions "org.vmsig.5 names every error of src/bus/bus-errors.h" man/org.vmsig.5 "" "$names"

names=$(grep -oE '<action id="[^"]+"' "$srcdir/polkit/org.vmsig.policy" | sed -E 's/.*id="([^"]+)"/\1/')
mentions "org.vmsig.5 names every polkit action of polkit/org.vmsig.policy" man/org.vmsig.5 "" "$names"

# And the other way round: an action that is gone (org.vmsig.roster) is named
# nowhere an admin or a client reads, nor by the code that checks or reports
# actions. Files named org.vmsig.* are not actions.
# shellcheck disable=SC2086 # $pages is a list of files
stale=$(cd "$srcdir" && sed 's/\\-/-/g' $pages README.md dbus/*.xml polkit/50-vmsig.rules src/bus/bus-auth.c \
        src/ctl/*.c | grep -oE 'org\.vmsig\.[a-z][a-z-]*' | sort -u | while read -r name; do
        case "$name" in org.vmsig.conf | org.vmsig.policy | org.vmsig.service) continue ;; esac
        echo "$names" | grep -qxF "$name" || echo "$name"
done)
tap_empty "the pages, README, interfaces, example rules and sources name only actions of the policy" "$stale"

names=$(grep -oE '<(element|attribute) name="[^"]+"' "$srcdir/data/vmsigd.conf.rng" | sed -E 's/.*name="([^"]+)"/\1/')
mentions "vmsigd.conf.5 names every element and attribute of data/vmsigd.conf.rng" man/vmsigd.conf.5 "" "$names"

names=$(grep -oE '\{ "[a-z-]+", (no|required|optional)_argument' "$srcdir/src/daemon/vmsigd.c" | sed -E 's/\{ "([^"]+)".*/\1/')
mentions "vmsigd.8 names every long option of src/daemon/vmsigd.c" man/vmsigd.8 "--" "$names"

tap_done
