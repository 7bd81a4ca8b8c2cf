# shellcheck shell=sh
# TAP for the shell checks (tests/check-*.sh): source it, report each check
# with tap_result, tap_empty or tap_skip, end with tap_done. The plan comes
# last, so a check need not count its checks ahead.

tap_n=0
tap_failed=0

# tap_diag TEXT: TEXT as diagnostics, every line of it.
tap_diag() {
        [ -n "$1" ] && printf '%s\n' "$1" | sed 's/^/# /'
        return 0
}

# tap_result DESCRIPTION STATUS [OUTPUT]: ok if STATUS is 0; OUTPUT, if
# any, follows as diagnostics either way.
tap_result() {
        tap_n=$((tap_n + 1))
        if [ "$2" -eq 0 ]; then
                echo "ok $tap_n - $1"
        else
                echo "not ok $tap_n - $1"
                tap_failed=1
        fi
        tap_diag "${3:-}"
}

# tap_empty DESCRIPTION OUTPUT: ok if OUTPUT (what went wrong) is empty.
tap_empty() {
        if [ -z "$2" ]; then
                tap_result "$1" 0
        else
                tap_result "$1" 1 "$2"
        fi
}

# tap_skip DESCRIPTION REASON
tap_skip() {
        tap_n=$((tap_n + 1))
        echo "ok $tap_n - $1 # SKIP $2"
}

# tap_unavailable DESCRIPTION REASON: what cannot be checked here is
# skipped, except under CI=true, where nothing may be.
tap_unavailable() {
        if [ "${CI:-}" = true ]; then
                tap_result "$1 (CI must not skip it)" 1 "$2"
        else
                tap_skip "$1" "$2"
        fi
}

# tap_skip_all REASON: the whole script is skipped; exits.
tap_skip_all() {
        echo "1..0 # SKIP $1"
        exit 0
}

# tap_done: the plan; exits 1 if a check failed.
tap_done() {
        echo "1..$tap_n"
        exit $tap_failed
}

# have COMMAND: whether it is installed.
have() {
        command -v "$1" >/dev/null 2>&1
}
