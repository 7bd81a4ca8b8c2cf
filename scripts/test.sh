#!/bin/sh
# Install dependencies, build, run the whole test suite, print
# "N passed, N failed[, N skipped]" from the automake test logs.
#   scripts/test.sh [--sanitizers] [--valgrind] [--armed] [--libvirt] [--builddir DIR]
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
builddir="$top/_build"
configure_args=""
make_vars=""
# The libvirt backend's tests, and the client they run as nobody.
libvirt_tests="tests/test-libvirt-event tests/test-libvirt-harness tests/test-libvirt-backend"
libvirt_tests="$libvirt_tests tests/test-bus-libvirt tests/test-libvirt-ram"
while [ $# -gt 0 ]; do
        case "$1" in
        --sanitizers) builddir="$top/_build-asan"; configure_args="--enable-sanitizers" ;;
        --valgrind) make_vars="VMSIG_VALGRIND=1" ;;
        # The real hypervisor backends: QEMU over QMP, and libvirt.
        --armed) builddir="$top/_build-armed"; configure_args="--enable-qmp --enable-libvirt" ;;
        # The libvirt backend without the QMP one (it shares only QEMU's
        # monitor code with it): that it builds, and its tests alone.
        --libvirt)
                builddir="$top/_build-libvirt"
                configure_args="--enable-libvirt"
                make_vars="TESTS=\"$libvirt_tests\" check_PROGRAMS=\"$libvirt_tests tests/vmsig-test-client\""
                ;;
        --builddir) builddir=$2; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
        esac
        shift
done
. "$top/scripts/deps.sh"
# shellcheck disable=SC2086
"$top/scripts/build.sh" "$builddir" $configure_args
cd "$builddir"
set +e
eval "make -j\"\$(nproc)\" check $make_vars" >/dev/null 2>&1
status=$?
set -e
[ $status -eq 0 ] || cat test-suite.log
"$top/scripts/summary.sh" "$builddir/tests"
exit $status
