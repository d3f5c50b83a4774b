#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-deb.sh DEB_DIR
#
# The Debian packages `make deb` built in DEB_DIR, installed the way dpkg
# installs them into a fresh, empty root (dpkg --root with its own database,
# so nothing touches this host's): each package holds what it should
# (rehome: the CLI, man page, completion; librehome0: only the shared
# library; librehome-dev: headers, librehome.so, librehome.a, rehome.pc,
# librehome(3); rehome-agent-static: the static agent, its unit and OpenRC
# script, the image builder, rehome-agent(8)); then, from that root,
# `rehome --version`, `rehome doctor --json` (one JSON document, exit 0 or 1),
# a C consumer built through pkg-config against the installed headers and
# library, `man` rendering rehome(1), and `rehome image build` + `rehome demo`
# with the packaged binaries (when root and QEMU are there). Last, lintian: no error, and
# every warning is one that debian/README.source explains.
# No pipefail: `producer | grep -q` must not fail when grep stops reading early.
set -eu
DIR=${1:?directory of the .debs}
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
notok() { echo "not ok - $*"; fail=$((fail + 1)); }
for t in dpkg dpkg-deb cc pkg-config python3; do
        command -v "$t" >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
shopt -s nullglob
debs=("$DIR"/rehome_*.deb "$DIR"/librehome0_*.deb "$DIR"/librehome-dev_*.deb "$DIR"/rehome-agent-static_*.deb)
[ ${#debs[@]} -eq 4 ] || { echo "not ok - expected 4 packages in $DIR, found: ${debs[*]:-none}"; exit 1; }
root=$(mktemp -d /tmp/rehome-deb-root.XXXXXX)
trap '[ -n "${KEEP_ROOT:-}" ] || rm -rf "$root"' EXIT
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)

# What each package ships.
has() { # has PKG PATH-REGEX...
        local pkg=$1 list
        shift
        list=$(dpkg-deb -c "$DIR/${pkg}"_*.deb | awk '{ print $6 }' | sed 's|^\./|/|')
        for re in "$@"; do
                grep -qE "^$re\$" <<< "$list" || { notok "$pkg lacks $re"; return; }
        done
        ok "$pkg ships $*"
}
has rehome /usr/bin/rehome /usr/share/man/man1/rehome.1.gz /usr/share/bash-completion/completions/rehome \
        /usr/share/zsh/vendor-completions/_rehome "/usr/share/doc/rehome/ABI.md(.gz)?"
has librehome0 "/usr/lib/$arch/librehome.so.0" "/usr/lib/$arch/librehome.so.0.1.0"
has librehome-dev /usr/include/rehome/patch.h /usr/include/rehome/payload.h "/usr/lib/$arch/librehome.so" \
        "/usr/lib/$arch/librehome.a" "/usr/lib/$arch/librehome-payload.a" \
        "/usr/lib/$arch/pkgconfig/rehome.pc" /usr/share/man/man3/librehome.3.gz
has rehome-agent-static /usr/lib/rehome/guest/rehome-agent /usr/lib/rehome/guest/rehome-agent.service \
        /usr/lib/rehome/guest/rehome-agent.openrc /usr/lib/rehome/guest/build-image.sh /usr/lib/rehome/guest/lib-kernel.sh \
        /usr/lib/rehome/guest/rehome-payload-wait.static /usr/share/man/man8/rehome-agent.8.gz
dpkg-deb -c "$DIR"/librehome0_*.deb | awk '{ print $6 }' | grep -qE 'include|\.a$|pkgconfig' &&
        notok "librehome0 ships development files" || ok "librehome0 ships no development files"
dpkg-deb -f "$DIR"/librehome-dev_*.deb Depends | grep -q 'librehome0 (= ' &&
        ok "librehome-dev depends on the same librehome0" || notok "librehome-dev Depends"
for d in "${debs[@]}"; do dpkg-deb -c "$d"; done | awk '{ print $6 }' | grep -q '/sbin/' && notok "something in sbin" || ok "nothing in sbin"

# A fresh root with its own dpkg database.
mkdir -p "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/triggers"
: > "$root/var/lib/dpkg/status"
: > "$root/var/lib/dpkg/available"
# --force-depends: the root has no libc or jansson package of its own (the
# host's libraries serve at run time); --force-script-chrootless: it has no
# shell to chroot into. Nothing is written outside $root.
if dpkg --root="$root" --force-depends --force-script-chrootless --force-not-root --log=/dev/null \
        -i "${debs[@]}" > "$root.log" 2>&1; then
        ok "dpkg --root installs the 4 packages"
else
        cat "$root.log"; notok "dpkg --root -i"
fi
rm -f "$root.log"
st=$(dpkg --root="$root" -l 'rehome' 'librehome0' 'librehome-dev' 'rehome-agent-static' 2>/dev/null | grep -c '^ii' || true)
[ "$st" = 4 ] && ok "dpkg in the root lists 4 packages installed" || notok "dpkg -l in the root: $st installed"

export LD_LIBRARY_PATH=$root/usr/lib/$arch
v=$("$root/usr/bin/rehome" --version 2>&1 || true)
[ "$v" = "rehome $(dpkg-deb -f "$DIR"/rehome_*.deb Version | sed 's/-[^-]*$//')" ] && ok "rehome --version: $v" ||
        notok "rehome --version: '$v'"
set +e
"$root/usr/bin/rehome" doctor --json > "$root/doctor.json" 2> "$root/doctor.err"
rc=$?
set -e
if [ "$rc" -le 1 ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$root/doctor.json" 2>/dev/null; then
        ok "rehome doctor --json: one JSON document (exit $rc)"
else
        head -c 400 "$root/doctor.json"; cat "$root/doctor.err"; notok "rehome doctor --json (exit $rc)"
fi
grep -q '/var/lib/rehome/images/current' "$root/doctor.json" && ok "doctor looks for /var/lib/rehome/images/current" ||
        notok "doctor does not name /var/lib/rehome/images/current"

# The pkg-config consumer, against the root's headers and libraries only.
cat > "$root/consumer.c" <<'C'
#include <rehome/mailbox.h>
#include <rehome/patch.h>
#include <rehome/request.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
        static uint8_t page[RH_MAILBOX_SIZE];
        struct rh_request req = RH_REQUEST_INIT, out;
        struct rh_arm arm = { .gpa = 0x1000 };
        struct rh_error err = { 0 };
        req.seq = 3;
        req.nonce = 9;
        req.n_ifaces = 1;
        req.ifaces[0].match = RH_MATCH_NAME;
        strcpy(req.ifaces[0].name, "eth0");
        rh_mailbox_arm_write(page, &arm);
        if (rh_mailbox_write_request(page, &req, &err) < 0 || rh_mailbox_read_request(page, &out, NULL, NULL, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
        }
        printf("seq=%u nonce=%llu\n", out.seq, (unsigned long long)out.nonce);
        return out.seq == 3 && out.nonce == 9 && out.size == sizeof(out) ? 0 : 1;
}
C
export PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$root/usr/lib/$arch/pkgconfig:/usr/lib/$arch/pkgconfig:/usr/share/pkgconfig
if cc -Wall -Werror -o "$root/consumer" "$root/consumer.c" $(pkg-config --cflags --libs rehome) 2> "$root/cc.log" &&
        [ "$("$root/consumer")" = "seq=3 nonce=9" ] &&
        ldd "$root/consumer" | grep -q "$root/usr/lib/$arch/librehome.so.0"; then
        ok "pkg-config consumer builds and runs against the root's librehome.so.0"
else
        cat "$root/cc.log"; notok "pkg-config consumer"
fi
if command -v man >/dev/null; then
        MANPAGER=cat man -l "$root/usr/share/man/man1/rehome.1.gz" 2>/dev/null | grep -q 'rehome image' &&
                ok "man rehome (the root's rehome.1.gz) renders" || notok "man rehome"
fi

# The demo from the packages: `rehome image build` with the packaged agent
# and builder (offline: the kernel package `make guest` cached), then
# `rehome demo --count 1` on that image, in a state directory (and so a
# network namespace) of its own. Root, QEMU and /dev/net/tun, else skipped.
cache=${REHOME_KERNEL_CACHE:-$(dirname "$0")/../../guest/out/cache}
kdeb=$(ls -1 "$cache"/linux-image-*-amd64_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
if [ "$(id -u)" = 0 ] && [ -n "$kdeb" ] && command -v qemu-system-x86_64 >/dev/null && [ -c /dev/net/tun ] &&
        [ -x /bin/busybox ] && command -v cpio >/dev/null; then
        g=$root/usr/lib/rehome/guest
        mkdir -p "$root/images/cache"
        ln "$kdeb" "$root/images/cache/" 2>/dev/null || cp "$kdeb" "$root/images/cache/"
        if REHOME_KERNEL_PKG=$(basename "$kdeb" | cut -d_ -f1) "$root/usr/bin/rehome" image build --out "$root/images" \
                --agent "$g/rehome-agent" --builder "$g/build-image.sh" > "$root/image.log" 2>&1; then
                ok "rehome image build (packaged agent and builder)"
                set +e
                "$root/usr/bin/rehome" --state-dir "$root/state" demo --count 1 --image "$root/images/current" > "$root/demo.log" 2>&1
                rc=$?
                set -e
                [ "$rc" = 0 ] && grep -q 'ICMP ok' "$root/demo.log" && ok "rehome demo from the packages (1 clone, ARP + ICMP)" ||
                        { tail -n 20 "$root/demo.log"; notok "rehome demo from the packages (exit $rc)"; }
                "$root/usr/bin/rehome" --state-dir "$root/state" template rm demo > /dev/null 2>&1 || true
                "$root/usr/bin/rehome" --state-dir "$root/state" net down > /dev/null 2>&1 || true
        else
                tail -n 10 "$root/image.log"; notok "rehome image build"
        fi
else
        echo "# skipped the demo from the packages: needs root, QEMU, /dev/net/tun, busybox, cpio and a cached kernel in $cache"
fi

# lintian: errors fail; each warning must be explained in debian/README.source.
if command -v lintian >/dev/null; then
        readme=$(dirname "$0")/../../debian/README.source
        lintian --tag-display-limit 0 "${debs[@]}" > "$root/lintian.txt" 2>&1 || true
        errors=$(grep -c '^E:' "$root/lintian.txt" || true)
        unexplained=""
        for tag in $(grep '^W:' "$root/lintian.txt" | awk '{ print $3 }' | sort -u); do
                grep -qw -- "$tag" "$readme" 2>/dev/null || unexplained="$unexplained $tag"
        done
        sed 's/^/# /' "$root/lintian.txt"
        [ "$errors" = 0 ] && ok "lintian: no errors" || notok "lintian: $errors errors"
        [ -z "$unexplained" ] && ok "lintian: every warning explained in debian/README.source" ||
                notok "lintian warnings not explained in debian/README.source:$unexplained"
else
        echo "# lintian not installed: skipped"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
