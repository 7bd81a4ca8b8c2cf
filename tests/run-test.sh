#!/bin/sh
# LOG_COMPILER for every test: GTest programs speak TAP with --tap, shell
# checks speak it natively. With VMSIG_VALGRIND=1 the test program and every
# vmsigd it starts run under valgrind: definite leaks and memory errors fail
# the test, and so does any fd vmsigd opened and left open at exit.
test="$1"
shift
case "$test" in
*.sh) exec "${SHELL:-/bin/sh}" "$test" "$@" ;;
esac

if [ "${VMSIG_VALGRIND:-0}" != 1 ]; then
        exec "$test" --tap "$@"
fi

vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
vg="$vg --show-leak-kinds=definite --suppressions=$VMSIG_SRCDIR/tests/glib.supp"
logs=$(mktemp -d "${TMPDIR:-/tmp}/vmsig-valgrind.XXXXXX")
trap 'rm -rf "$logs"' EXIT
VMSIG_DAEMON_WRAPPER="$vg --track-fds=yes --log-file=$logs/vmsigd.%p.log"
export VMSIG_DAEMON_WRAPPER
$vg "$test" --tap "$@"
status=$?

# An fd listed at exit that valgrind does not mark as inherited was opened
# by vmsigd and never closed.
leaks=$(cat "$logs"/vmsigd.*.log 2>/dev/null | awk '
        /== Open / { open = $0; next }
        open != "" { if ($0 !~ /<inherited from parent>/) print open; open = "" }')
if [ -n "$leaks" ]; then
        echo "# vmsigd left file descriptors open:"
        echo "$leaks" | sed 's/^/#   /'
        [ $status -eq 0 ] && status=1
fi
exit $status
