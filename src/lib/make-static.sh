#!/bin/sh
# SPDX-License-Identifier: MIT
# make-static.sh LD OBJCOPY AR INTERNAL.a OUT.a WORKDIR
#
# The installed librehome.a: every object of INTERNAL.a linked into one
# relocatable object (ld -r), whose hidden symbols (everything but the
# public rh_* API, see src/lib/librehome.sym) become local (objcopy
# --localize-hidden). A program that defines its own read_full() or
# now_ns() then links against it statically without a duplicate symbol.
set -eu
[ $# -eq 6 ] || { echo "usage: make-static.sh LD OBJCOPY AR INTERNAL.a OUT.a WORKDIR" >&2; exit 2; }
LD=$1 OBJCOPY=$2 AR=$3 IN=$4 OUT=$5 WORK=$6
mkdir -p "$WORK"
"$LD" -r --whole-archive "$IN" -o "$WORK/librehome.o"
"$OBJCOPY" --localize-hidden "$WORK/librehome.o"
rm -f "$OUT"
"$AR" rcsD "$OUT" "$WORK/librehome.o"
