#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs every libFuzzer target of BUILD_DIR (configured with CC=clang
# -Dfuzz=true), one at a time, over a temporary copy of its seed corpus
# (tests/fuzz/corpus/<target>/), so the tree is never modified, with the
# dictionary tests/fuzz/<target>.dict when there is one. The targets
# are the fuzz-*.c files next to this script, so a new one is run (or, if
# tests/fuzz/meson.build does not build it, reported missing) without
# editing this list.
#
#     tests/fuzz/run.sh BUILD_DIR SECONDS        each target for SECONDS (make check-fuzz)
#     tests/fuzz/run.sh --runs N BUILD_DIR       each target for N executions (make fuzz-long)
#
# Prints one line per target: executions, crashes, seconds, corpus growth,
# coverage. Fails if any target crashes, leaks, times out or is missing; the
# crashing input and the log are kept in BUILD_DIR/fuzz-artifacts/.
set -eu

usage() {
        echo "usage: $0 BUILD_DIR SECONDS | $0 --runs N BUILD_DIR" >&2
        exit 2
}
if [ $# -eq 3 ] && [ "$1" = --runs ]; then
        runs=$2
        build=$3
        seconds=""
        bound="-runs=$runs"
        limit=$runs
elif [ $# -eq 2 ]; then
        build=$1
        seconds=$2
        runs=""
        bound="-max_total_time=$seconds"
        limit=$seconds
else
        usage
fi
case $limit in
''|*[!0-9]*|0) echo "$0: SECONDS or N must be a positive integer, not '$limit'" >&2; exit 2 ;;
esac
srcdir=$(cd "$(dirname "$0")" && pwd)
targets=$(cd "$srcdir" && ls fuzz-*.c | sed 's/^fuzz-//; s/\.c$//')

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rehome-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
artifacts=$build/fuzz-artifacts
failed=""

# Every target must be there before any runs.
for t in $targets; do
        if [ ! -x "$build/tests/fuzz/fuzz-$t" ]; then
                echo "fuzz: $build/tests/fuzz/fuzz-$t is missing (configure with CC=clang meson setup" \
                     "$build -Dfuzz=true; every tests/fuzz/fuzz-*.c needs an executable in tests/fuzz/meson.build)" >&2
                exit 1
        fi
        if [ ! -d "$srcdir/corpus/$t" ]; then
                echo "fuzz: no seed corpus $srcdir/corpus/$t/" >&2
                exit 1
        fi
done

for t in $targets; do
        exe=$build/tests/fuzz/fuzz-$t
        mkdir -p "$tmp/$t/corpus" "$tmp/$t/artifacts"
        cp "$srcdir/corpus/$t"/* "$tmp/$t/corpus/"
        seeds=$(ls "$tmp/$t/corpus" | wc -l)
        # -max_len: a control byte plus a whole page. -timeout: one input may
        # take at most 10 s (a hang is a failure). Leaks are failures too.
        dict=""
        [ ! -f "$srcdir/$t.dict" ] || dict="-dict=$srcdir/$t.dict"
        start=$(date +%s)
        # shellcheck disable=SC2086 # $dict is empty or one word
        if "$exe" "$bound" $dict -max_len=4097 -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$tmp/$t/artifacts/" \
                "$tmp/$t/corpus" >"$tmp/$t/log" 2>&1; then
                rc=0
        else
                rc=$?
        fi
        elapsed=$(($(date +%s) - start))
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$t/log")
        if [ $rc -eq 0 ] && [ -n "$runs" ] && [ "${execs:-0}" -lt "$runs" ]; then
                echo "fuzz-$t: stopped after ${execs:-?} of $runs executions" >&2
                rc=1
        fi
        if [ $rc -eq 0 ]; then
                cov=$(grep -o 'cov: [0-9]*' "$tmp/$t/log" | tail -n 1)
                echo "fuzz-$t: ok, ${execs:-?} executions, 0 crashes, ${elapsed}s," \
                     "$seeds seeds -> $(ls "$tmp/$t/corpus" | wc -l) corpus entries, ${cov:-cov: ?}," \
                     "load $(cut -d' ' -f1 /proc/loadavg)"
        else
                # libFuzzer stops at the first crash: there is one input to look at.
                mkdir -p "$artifacts"
                cp "$tmp/$t/log" "$artifacts/fuzz-$t.log"
                cp "$tmp/$t/artifacts"/* "$artifacts/" 2>/dev/null || true
                echo "fuzz-$t: FAILED after ${execs:-?} executions, ${elapsed}s (exit $rc);" \
                     "log and crashing input in $artifacts/:" >&2
                grep -E '^(==[0-9]+==ERROR|SUMMARY|.*check failed)' "$tmp/$t/log" | head -n 5 >&2 || true
                ls "$artifacts" >&2
                failed="$failed $t"
        fi
done

if [ -n "$failed" ]; then
        echo "fuzz: failed:$failed" >&2
        exit 1
fi
