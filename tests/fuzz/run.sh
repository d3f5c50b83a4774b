#!/bin/sh
# SPDX-License-Identifier: MIT
# Bounded fuzzing for CI: run every libFuzzer target of BUILD_DIR (configured
# with CC=clang -Dfuzz=true) for SECONDS each, over a temporary copy of its
# seed corpus (tests/fuzz/corpus/<target>/), so the tree is never modified.
# Fails if any target crashes, leaks, times out or is missing; the crashing
# input and the log are kept in BUILD_DIR/fuzz-artifacts/.
#
#     tests/fuzz/run.sh BUILD_DIR SECONDS
set -eu

if [ $# -ne 2 ]; then
        echo "usage: $0 BUILD_DIR SECONDS" >&2
        exit 2
fi
build=$1
seconds=$2
case $seconds in
''|*[!0-9]*) echo "$0: SECONDS must be a positive integer, not '$seconds'" >&2; exit 2 ;;
esac
srcdir=$(cd "$(dirname "$0")" && pwd)
targets="request-decode mailbox-read v1-decode layout agent-parse"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rehome-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
artifacts=$build/fuzz-artifacts
failed=""

for t in $targets; do
        exe=$build/tests/fuzz/fuzz-$t
        if [ ! -x "$exe" ]; then
                echo "fuzz: $exe is missing (configure with CC=clang meson setup $build -Dfuzz=true)" >&2
                exit 1
        fi
        mkdir -p "$tmp/$t/corpus" "$tmp/$t/artifacts"
        cp "$srcdir/corpus/$t"/* "$tmp/$t/corpus/"
        seeds=$(ls "$tmp/$t/corpus" | wc -l)
        # -max_len: a control byte plus a whole page. -timeout: one input may
        # take at most 10 s (a hang is a failure). Leaks are failures too.
        if "$exe" -max_total_time="$seconds" -max_len=4097 -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$tmp/$t/artifacts/" \
                "$tmp/$t/corpus" >"$tmp/$t/log" 2>&1; then
                runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$t/log")
                cov=$(grep -o 'cov: [0-9]*' "$tmp/$t/log" | tail -n 1)
                echo "fuzz-$t: ok, ${runs:-?} inputs in ${seconds}s, $seeds seeds -> $(ls "$tmp/$t/corpus" | wc -l) corpus entries, ${cov:-cov: ?}"
        else
                mkdir -p "$artifacts"
                cp "$tmp/$t/log" "$artifacts/fuzz-$t.log"
                cp "$tmp/$t/artifacts"/* "$artifacts/" 2>/dev/null || true
                echo "fuzz-$t: FAILED; log and crashing input in $artifacts/:" >&2
                grep -E '^(==[0-9]+==ERROR|SUMMARY|.*check failed)' "$tmp/$t/log" | head -n 5 >&2 || true
                ls "$artifacts" >&2
                failed="$failed $t"
        fi
done

if [ -n "$failed" ]; then
        echo "fuzz: failed:$failed" >&2
        exit 1
fi
