#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-abi.sh SOURCE_ROOT BUILD_DIR
#
# librehome exports exactly its public API, in the built tree and once
# installed: the names of every function declared in include/rehome/*.h
# (tests/abi/public-symbols.py, generated from the headers each run) must be
#  1. the global names of src/lib/librehome.sym,
#  2. the defined dynamic symbols of librehome.so (nm -D --defined-only), each
#     bound to a version node of librehome.sym (LIBREHOME_0.1, ...),
#  3. the defined global symbols of librehome.a (nm -g --defined-only),
# for the build tree's files and for those `meson install` puts in a staging
# root; the installed librehome.so's SONAME is librehome.so.0. Last, a program
# with its own read_full() and now_ns() (internal names of the library) links
# against the installed librehome.a and librehome.so and runs.
set -eu
SRC=${1:?source root}
BUILD=${2:?build dir}
command -v nm >/dev/null && command -v readelf >/dev/null || { echo "SKIP: no binutils"; exit 77; }
work=$(mktemp -d /tmp/rehome-abi.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
notok() { echo "not ok - $*"; fail=$((fail + 1)); }

python3 "$SRC/tests/abi/public-symbols.py" "$SRC/include" > "$work/headers"
[ -s "$work/headers" ] || { echo "not ok - no public names in the headers"; exit 1; }
echo "# $(wc -l < "$work/headers") public functions in include/rehome/*.h"

# The version nodes and global names of the version script.
sed 's|/\*.*\*/||; /\/\*/,/\*\//d' "$SRC/src/lib/librehome.sym" > "$work/sym"
grep -oE '^LIBREHOME_[0-9.]+' "$work/sym" | sort -u > "$work/nodes"
awk '/global:/ { g = 1; next } /local:/ { g = 0 } g { gsub(/[ \t;]/, ""); if ($0 != "") print }' "$work/sym" |
        sort > "$work/symnames"

same() { # same NAME FILE: FILE lists exactly the header names
        if diff -u "$work/headers" "$2" > "$work/diff"; then
                ok "$1"
        else
                notok "$1 (- only in the headers, + only in $1):"
                sed -n '3,$p' "$work/diff" | grep '^[-+]' | sed 's/^/#   /'
        fi
}

same "librehome.sym" "$work/symnames"

check_so() { # check_so LABEL PATH
        local so=$2
        [ -f "$so" ] || { notok "$1: $so missing"; return; }
        nm -D --defined-only "$so" | awk '$2 != "A" { print $3 }' > "$work/dyn"
        sed 's/@.*//' "$work/dyn" | sort > "$work/dynnames"
        same "$1 dynamic symbols" "$work/dynnames"
        # Every export bound to a node of the script (rh_x@@LIBREHOME_0.1).
        local unversioned
        unversioned=$(grep -vE "@@?($(paste -sd'|' "$work/nodes"))\$" "$work/dyn" || true)
        [ -z "$unversioned" ] && ok "$1: every symbol versioned ($(paste -sd' ' "$work/nodes"))" ||
                notok "$1: unversioned or foreign version: $unversioned"
}
check_a() { # check_a LABEL PATH
        [ -f "$2" ] || { notok "$1: $2 missing"; return; }
        nm -g --defined-only "$2" | awk 'NF == 3 { print $3 }' | sort > "$work/static"
        same "$1 global symbols" "$work/static"
}

check_so "built librehome.so" "$BUILD/src/lib/librehome.so"
check_a "built librehome.a" "$BUILD/src/lib/librehome.a"

meson install -C "$BUILD" --destdir "$work/root" --quiet > "$work/install.log" 2>&1 ||
        { cat "$work/install.log"; echo "not ok - meson install"; exit 1; }
so=$(find "$work/root" -name 'librehome.so.0' | head -n 1)
a=$(find "$work/root" -name 'librehome.a' | head -n 1)
check_so "installed librehome.so" "$(readlink -f "${so:-/nonexistent}")"
check_a "installed librehome.a" "${a:-/nonexistent}"
soname=$(readelf -d "${so:-/dev/null}" 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = librehome.so.0 ] && ok "SONAME $soname" || notok "SONAME '$soname' (expected librehome.so.0)"

# The issue's case: an application with its own read_full links statically
# and dynamically, and its read_full is the one it calls.
if command -v cc >/dev/null && [ -n "$a" ]; then
        libdir=$(dirname "$a")
        cat > "$work/app.c" <<'C'
#include <stdio.h>
#include <stddef.h>
#include <sys/types.h>
#include <rehome/mailbox.h>
ssize_t read_full(int fd, void *buf, size_t len);
ssize_t read_full(int fd, void *buf, size_t len) { (void)fd; (void)buf; return (ssize_t)len + 1000; }
unsigned long long now_ns(void);
unsigned long long now_ns(void) { return 7; }
int main(void)
{
        char b[4];
        if (read_full(0, b, 4) != 1004 || now_ns() != 7)
                return 2;
        return rh_crc32c(0, "123456789", 9) == 0xe3069283u ? 0 : 1;
}
C
        inc=$(dirname "$(dirname "$(find "$work/root" -path '*/include/rehome/mailbox.h' | head -n 1)")")
        if cc -Wall -Werror -I"$inc" -o "$work/app-static" "$work/app.c" "$a" $(pkg-config --libs jansson) 2> "$work/cc.log" &&
                "$work/app-static"; then
                ok "static link of a program defining read_full/now_ns"
        else
                cat "$work/cc.log"; notok "static link of a program defining read_full/now_ns"
        fi
        if cc -Wall -Werror -I"$inc" -o "$work/app-shared" "$work/app.c" -L"$libdir" -lrehome 2> "$work/cc.log" &&
                LD_LIBRARY_PATH=$libdir "$work/app-shared"; then
                ok "dynamic link of a program defining read_full/now_ns"
        else
                cat "$work/cc.log"; notok "dynamic link of a program defining read_full/now_ns"
        fi
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
