#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The public API of librehome, read from the installed headers.

public-symbols.py INCLUDE_DIR prints, one per line and sorted, every function
declared in INCLUDE_DIR/rehome/*.h (but payload.h, librehome-payload's): each `rh_name(` outside comments and
preprocessor lines. This list, not a copy of it, is what tests/abi/check-abi.sh
compares librehome's dynamic symbol table and src/lib/librehome.sym with.
A `static inline` function would be compiled into the caller, not exported;
the headers have none, and one added later fails the check until it is
listed here as an exception.
"""
import glob
import os
import re
import sys


def public_names(include_dir):
    names = set()
    headers = sorted(glob.glob(os.path.join(include_dir, "rehome", "*.h")))
    if not headers:
        sys.exit(f"public-symbols: no headers in {include_dir}/rehome")
    for path in headers:
        # payload.h is the guest applications' API (rh_payload_wait), built as
        # its own libc-only library librehome-payload, not part of librehome.
        if os.path.basename(path) == "payload.h":
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        # Preprocessor lines, with their continuations (macros are not symbols).
        text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
        for m in re.finditer(r"\b(rh_[A-Za-z0-9_]+)\s*\(", text):
            names.add(m.group(1))
    return sorted(names)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: public-symbols.py INCLUDE_DIR")
    print("\n".join(public_names(sys.argv[1])))
