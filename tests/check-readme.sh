#!/bin/sh
# The README's examples, run as written against the demo (issue 18): every
# ```sh block of README.md is run, in order, with sh -e, in a scratch
# directory whose scripts/ is the tree's, after the demo was started from
# this build (the first of the README's two commands), in a shell pointed
# at the demo as the first steps say. A block this test
# does not run is named below, by its first line, with the reason: a new
# block is either run or named here. Prints TAP.
top="${VMSIG_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}"
build="${VMSIG_BUILDDIR:-$top/_build}"
# shellcheck source=tests/tap.sh
. "$(dirname "$0")/tap.sh"

# first line of the block|why it is not run here
not_run='./scripts/demo.sh     # install what is missing|this test starts the demo itself (without building or installing again); scripts/test.sh is .ci/run'"'"'s first step
qemu-system-x86_64 -machine q35,accel=kvm -m 4G \|needs KVM and a 4 GiB guest; the armed suite starts QEMU with these memory-backend-file and -qmp options
./autogen.sh|.ci/run does each of these, out of tree: scripts/test.sh (make check), --sanitizers, --valgrind, make distcheck, and --enable-fuzzers through scripts/fuzz.sh; make bench runs in .ci/run with short parameters (tests/check-bench.sh); its full figures take 8 minutes and are run by hand (bench/RESULTS.md)
dpkg-buildpackage -us -uc -b          # runs make check; DEB_BUILD_OPTIONS=nocheck skips it|tests/check-deb.sh (in .ci/run) builds, installs and checks the package'

if [ ! -x "$build/vmsigctl" ]; then
        tap_unavailable "the README's examples" "no vmsigctl in $build"
        tap_done
fi
have busctl || tap_unavailable "busctl" "busctl is missing (package systemd)"
have dbus-daemon || tap_unavailable "dbus-daemon" "dbus-daemon is missing"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/vmsig-readme.XXXXXX")
export VMSIG_DEMO_DIR="$scratch/demo" VMSIG_DEMO_BUILDDIR="$build"
trap '"$top/scripts/demo.sh" stop >/dev/null 2>&1; rm -rf "$scratch"' EXIT
mkdir -p "$scratch/work"
ln -s "$top/scripts" "$scratch/work/scripts"

out=$(cd "$scratch/work" && ./scripts/demo.sh 2>&1)
tap_result "the demo starts (scripts/demo.sh)" $? "$(printf '%s\n' "$out" | tail -5)"

# The blocks, one file each: blockN.sh, with blockN.line its README line.
awk -v dir="$scratch" '
        /^```sh$/ { n++; inb = 1; f = dir "/block" n ".sh"; print NR > (dir "/block" n ".line"); next }
        /^```/ { inb = 0; next }
        inb { print > f }
' "$top/README.md"

for f in $(ls "$scratch"/block*.sh | sort -V); do
        line=$(cat "${f%.sh}.line")
        first=$(head -n 1 "$f")
        why=$(printf '%s\n' "$not_run" | while IFS='|' read -r start reason; do
                case "$first" in "$start"*) echo "$reason"; break ;; esac
        done)
        if [ -n "$why" ]; then
                tap_skip "README.md:$line: $first" "$why"
                continue
        fi
        # In the reader's shell, which the first steps pointed at the demo.
        out=$(cd "$scratch/work" && { echo 'eval "$(./scripts/demo.sh env)"'; cat "$f"; } | sh -e 2>&1)
        tap_result "README.md:$line runs as written: $first" $? "$out"
done
[ -f "$scratch/work/alpha.png" ]
tap_result "the screenshot example wrote alpha.png" $? ""
tap_done
