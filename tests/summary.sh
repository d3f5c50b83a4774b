#!/bin/sh
# SPDX-License-Identifier: MIT
# One closing line for a whole `make check`: count meson's per-test results
# over the given testlog.json files (unit, integration, sanitizer runs) and
# print "N passed, N failed, N skipped". Exit 1 if any test failed or timed out.
passed=0 failed=0 skipped=0
for log in "$@"; do
        [ -f "$log" ] || continue
        p=$(grep -c '"result": "OK"' "$log")
        f=$(grep -c '"result": "\(FAIL\|TIMEOUT\|ERROR\|UNEXPECTEDPASS\)"' "$log")
        s=$(grep -c '"result": "\(SKIP\|EXPECTEDFAIL\)"' "$log")
        passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
done
echo "check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
