#!/bin/sh
# SPDX-License-Identifier: MIT
# Build rehome-agent.static with musl-gcc: a stripped static binary with no
# runtime dependencies, for any Linux guest (glibc or musl).
#
# musl-gcc searches only musl's own include directory, so the kernel UAPI
# headers (linux/, asm/, asm-generic/) are made visible through a folder of
# symlinks created in the build directory.
#
# Usage: build-static.sh MUSL_GCC STRIP OUTPUT INCDIR -- CFLAGS... -- SOURCES...
set -eu
musl_gcc=$1 strip=$2 out=$3 kinc=$4
shift 4
[ "$1" = "--" ] && shift
cflags=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do cflags="$cflags $1"; shift; done
[ "${1:-}" = "--" ] && shift

mkdir -p "$kinc"
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
for d in linux asm-generic; do
        ln -sfn "/usr/include/$d" "$kinc/$d"
done
if [ -d "/usr/include/$multiarch/asm" ]; then
        ln -sfn "/usr/include/$multiarch/asm" "$kinc/asm"
else
        ln -sfn /usr/include/asm "$kinc/asm"
fi

# shellcheck disable=SC2086
"$musl_gcc" -static -Os -std=gnu17 -D_GNU_SOURCE -ffunction-sections -fdata-sections \
        -fno-asynchronous-unwind-tables -fno-strict-aliasing -Wall -Wextra -Werror \
        -Wno-unused-parameter -Wno-missing-field-initializers \
        -isystem "$kinc" $cflags -Wl,--gc-sections -o "$out.tmp" "$@"
"$strip" --strip-all "$out.tmp"
mv "$out.tmp" "$out"
