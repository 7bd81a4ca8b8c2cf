#!/bin/sh
# The bounded load of issue 8: bench/bench-load --quick (200 clients, 64
# fake QEMUs through the trigger directory, faults and bad input, 20000
# calls) against this build's vmsigd, on a private bus it starts itself.
# Needs root. Prints TAP.
srcdir="${VMSIG_SRCDIR:-$(dirname "$0")/..}"
builddir="${VMSIG_BUILDDIR:-.}"
# shellcheck source=tests/tap.sh
. "$(dirname "$0")/tap.sh"

[ "$(id -u)" = 0 ] || tap_skip_all "bench-load needs root"
out=$("$builddir/bench/bench-load" --quick --srcdir "$srcdir" --vmsigd "$builddir/vmsigd" 2>&1)
status=$?
tap_diag "$(echo "$out" | grep -v '^@')"
tap_result "bench-load --quick: vmsigd survived, fds and RSS back, nothing lost or reordered (status $status)" $status
# Every subscriber checked the Sequence of every endpoint signal it got; the
# order check must not pass for want of signals.
sequenced=$(echo "$out" | sed -n 's/^@ load-subscribers .* sequenced=\([0-9]*\) .*/\1/p' | tail -n 1)
[ "${sequenced:-0}" -gt 0 ]
tap_result "subscribers checked ${sequenced:-no} sequence numbers, none missing or out of order" $?
tap_done
