#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `meson install` into a staging directory, then build two consumers the way
# a user would: a C program through pkg-config (linked against the shared
# and the static library) and a C++ translation unit including every public
# header. The C program round-trips a request through a mailbox page.
# Then the install layout (docs/INSTALL.md): the static guest agent under
# lib/rehome/guest with a unit and an OpenRC script that point at it, the
# image builder beside it, man pages, completion, LICENSE and docs, no
# source or build path in an installed binary, and `rehome image build`
# from the installed files (when a kernel package is cached: SOURCE/guest/
# out/cache or $REHOME_KERNEL_CACHE; no download here).
# No pipefail: `producer | grep -q` must not fail when grep stops reading early.
set -eu
BUILD=${1:?build dir}
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
dest=$(mktemp -d /tmp/rehome-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
command -v cc >/dev/null && command -v pkg-config >/dev/null || { echo "SKIP: no cc/pkg-config"; exit 77; }
meson install -C "$BUILD" --destdir "$dest" --quiet >/dev/null
pc=$(dirname "$(find "$dest" -name rehome.pc | head -1)")
[ -n "$pc" ] || { echo "not ok - no rehome.pc installed"; exit 1; }
export PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$dest
for h in error.h mailbox.h layout.h patch.h request.h; do
        [ -f "$(find "$dest" -path "*/include/rehome/$h" | head -1)" ] || { echo "not ok - $h not installed"; exit 1; }
done
cat > "$dest/consumer.c" <<'C'
#include <rehome/mailbox.h>
#include <rehome/request.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
        static uint8_t page[RH_MAILBOX_SIZE];
        struct rh_request req = { .seq = 1, .nonce = 42, .n_ifaces = 1, .n_addrs = 1 }, out;
        struct rh_arm arm = { .gpa = 0x1000 };
        struct rh_error err = { 0 };
        req.ifaces[0].match = RH_MATCH_NAME;
        strcpy(req.ifaces[0].name, "eth0");
        req.addrs[0] = (struct rh_addr){ .family = 4, .prefix = 24, .addr = { 10, 0, 0, 5 } };
        rh_mailbox_arm_write(page, &arm);
        if (rh_mailbox_write_request(page, &req, &err) < 0 ||
            rh_mailbox_read_request(page, &out, NULL, NULL, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
        }
        char *json = rh_request_to_json(&out, 0);
        printf("%s\n", json);
        return out.nonce == 42 && out.addrs[0].addr[3] == 5 ? 0 : 1;
}
C
cc -o "$dest/consumer" "$dest/consumer.c" $(pkg-config --cflags --libs rehome)
LD_LIBRARY_PATH=$(pkg-config --variable=libdir rehome) "$dest/consumer" | grep -q '"address":"10.0.0.5/24"' \
        && echo "ok - C consumer (shared library via pkg-config)" || { echo "not ok - C consumer"; exit 1; }
cc -o "$dest/consumer-static" "$dest/consumer.c" $(pkg-config --cflags rehome) \
        "$(pkg-config --variable=libdir rehome)/librehome.a" $(pkg-config --libs jansson)
"$dest/consumer-static" >/dev/null && echo "ok - C consumer (static library)" || { echo "not ok - static consumer"; exit 1; }
if command -v c++ >/dev/null; then
        printf '#include <rehome/error.h>\n#include <rehome/mailbox.h>\n#include <rehome/layout.h>\n#include <rehome/patch.h>\n#include <rehome/request.h>\nint main() { return rh_crc32c(0, "123456789", 9) == 0xe3069283u ? 0 : 1; }\n' > "$dest/consumer.cpp"
        c++ -std=c++17 -Wall -Werror -o "$dest/consumer-cxx" "$dest/consumer.cpp" $(pkg-config --cflags --libs rehome)
        LD_LIBRARY_PATH=$(pkg-config --variable=libdir rehome) "$dest/consumer-cxx" && echo "ok - C++ consumer" || { echo "not ok - C++ consumer"; exit 1; }
fi
pass=2 fail=0
command -v c++ >/dev/null && pass=3
ok() { echo "ok - $*"; pass=$((pass + 1)); }
notok() { echo "not ok - $*"; fail=$((fail + 1)); }
prefix=$(meson introspect --buildoptions "$BUILD" | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
root=$dest$prefix
guest=$root/lib/rehome/guest
agent=$guest/rehome-agent
if [ -x "$agent" ] && ! readelf -l "$agent" | grep -q INTERP; then
        ok "static agent at $prefix/lib/rehome/guest/rehome-agent"
else
        notok "no static agent at $prefix/lib/rehome/guest/rehome-agent"
fi
[ -z "$(find "$dest" -path '*/sbin/*' -o -name 'rehome-agent.static' | head -n 1)" ] &&
        ok "nothing in sbin, no rehome-agent.static" || notok "a host sbin agent or rehome-agent.static is installed"
grep -qx "ExecStart=$prefix/lib/rehome/guest/rehome-agent" "$guest/rehome-agent.service" 2>/dev/null &&
        ok "systemd unit runs $prefix/lib/rehome/guest/rehome-agent" || notok "systemd unit ExecStart"
grep -qx "command=\"$prefix/lib/rehome/guest/rehome-agent\"" "$guest/rehome-agent.openrc" 2>/dev/null &&
        ok "OpenRC script runs the installed agent" || notok "OpenRC command"
[ -x "$guest/build-image.sh" ] && [ -f "$guest/init" ] && ok "image builder and init installed" || notok "image builder"
for f in share/man/man1/rehome.1 share/man/man8/rehome-agent.8 share/man/man3/librehome.3 \
        share/bash-completion/completions/rehome share/zsh/vendor-completions/_rehome \
        share/doc/rehome/LICENSE share/doc/rehome/README.md share/doc/rehome/ABI.md share/doc/rehome/MAILBOX.md; do
        [ -s "$root/$f" ] || { notok "$f not installed"; continue; }
done
[ "$fail" -eq 0 ] && ok "man pages, completion, LICENSE, docs installed"
if command -v man >/dev/null; then
        MANPAGER=cat man -l "$root/share/man/man1/rehome.1" 2>/dev/null | grep -q 'rehome fork' &&
                ok "man -l rehome.1 renders the verbs" || notok "man -l rehome.1"
fi
bash -n "$root/share/bash-completion/completions/rehome" && ok "bash completion parses" || notok "bash completion"
if command -v zsh >/dev/null; then
        zsh -n "$root/share/zsh/vendor-completions/_rehome" && ok "zsh completion parses" || notok "zsh completion"
fi
# No path of the source or build tree in an installed binary (debug info
# aside: DW_AT_comp_dir names the build directory; packages strip it). An
# assert()'s __FILE__ is the source path relative to the build directory
# ("../../src/vmm/armed.c" when the build is outside the tree): a message,
# not a path the binary opens, so only absolute occurrences count.
srcreal=$(cd "$SRC" && pwd -P) buildreal=$(cd "$BUILD" && pwd -P)
leaks=""
for b in "$root/bin/rehome" "$agent" $(find "$dest" -name 'librehome.so*' -type f); do
        objcopy --strip-debug "$b" "$dest/nodebug"
        strings "$dest/nodebug" | grep -qE -e "(^|[^.])$srcreal" -e "(^|[^.])$buildreal" && leaks="$leaks $b"
done
[ -z "$leaks" ] && ok "no source/build path in installed binaries" || notok "build path baked into:$leaks"
"$root/bin/rehome" template --help | grep -q 'default $REHOME_IMAGE or /var/lib/rehome/images/current' &&
        ok "default image /var/lib/rehome/images/current" || notok "default image path"
"$root/bin/rehome" --version | grep -qx "rehome [0-9.]*" && ok "rehome --version" || notok "rehome --version"
# rehome image build from the installed files, into a staging images dir.
cache=${REHOME_KERNEL_CACHE:-$SRC/guest/out/cache}
deb=$(ls -1 "$cache"/linux-image-*-amd64_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "$deb" ] && [ -x /bin/busybox ] && command -v cpio >/dev/null; then
        mkdir -p "$dest/images/cache"
        ln "$deb" "$dest/images/cache/" 2>/dev/null || cp "$deb" "$dest/images/cache/"
        if REHOME_KERNEL_PKG=$(basename "$deb" | cut -d_ -f1) "$root/bin/rehome" --json image build --out "$dest/images" \
                --agent "$agent" --builder "$guest/build-image.sh" > "$dest/image.json.out" 2> "$dest/image.log" &&
                python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["current"].endswith("/current") else 1)' "$dest/image.json.out" &&
                grep -q "\"agent_sha256\": \"$(sha256sum "$agent" | cut -d' ' -f1)\"" "$dest/images/current/image.json"; then
                ok "rehome image build: images/current from the installed agent"
        else
                tail -n 5 "$dest/image.log"; notok "rehome image build"
        fi
else
        echo "# skipped rehome image build: no cached kernel package in $cache (or no busybox/cpio)"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
