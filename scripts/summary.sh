#!/bin/sh
# summary.sh BUILDDIR...: count the TAP results automake recorded in the
# .trs files and print "N passed, N failed[, N skipped]".
find "$@" -name '*.trs' -exec cat {} + 2>/dev/null | awk '
        /^:test-result: (PASS|XFAIL)/ { p++ }
        /^:test-result: (FAIL|XPASS|ERROR)/ { f++ }
        /^:test-result: SKIP/ { s++ }
        END {
                line = sprintf("%d passed, %d failed", p, f)
                if (s) line = line sprintf(", %d skipped", s)
                print line
        }'
