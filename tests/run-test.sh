#!/bin/sh
# LOG_COMPILER for every test: GTest programs speak TAP with --tap, shell
# checks speak it natively. With VMSIG_VALGRIND=1 the test program and the
# vmsigd it starts run under valgrind; definite leaks and errors fail.
test="$1"
shift
case "$test" in
*.sh) exec "${SHELL:-/bin/sh}" "$test" "$@" ;;
esac

if [ "${VMSIG_VALGRIND:-0}" = 1 ]; then
        vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
        vg="$vg --show-leak-kinds=definite --suppressions=$VMSIG_SRCDIR/tests/glib.supp"
        VMSIG_DAEMON_WRAPPER="$vg --track-fds=yes --log-file=${TMPDIR:-/tmp}/vmsigd-valgrind.%p.log"
        export VMSIG_DAEMON_WRAPPER
        exec $vg "$test" --tap "$@"
fi
exec "$test" --tap "$@"
