#!/bin/sh
# SPDX-License-Identifier: MIT
#
# guest/build-image.sh BUILD_DIR
#
# Builds the rehome guest image from real parts and caches it under
# guest/out/ (gitignored):
#   - Debian's kernel, resolved through the linux-image-amd64 metapackage
#     (its dependency names the exact linux-image-<abi>-amd64 package), fetched
#     with `apt-get download` and unpacked with `dpkg -x` (nothing is installed
#     into the host's /boot),
#   - the virtio network modules of that kernel, in load order,
#   - busybox-static as the whole userland, guest/init as PID 1,
#   packed as a newc initramfs with GNU cpio --reproducible (same inputs, same
#   bytes; busybox cpio is the fallback),
#   - rehome-agent.static from BUILD_DIR/src/agent/ (or $REHOME_AGENT).
# The image directory is named by a hash of every input (kernel package and
# version, agent, busybox, init, this script), so a rebuild with the same
# inputs is a no-op. guest/out/current points at the latest image;
# guest/out/current/image.json describes it (read by `rehome template create`).
#
# Environment: REHOME_AGENT=PATH (agent binary), REHOME_KERNEL_PKG=NAME (pin a
# kernel package instead of the metapackage's), REHOME_GUEST_OUT=DIR.
set -eu

die() { echo "build-image: $*" >&2; exit 1; }
say() { echo "build-image: $*" >&2; }

[ $# -eq 1 ] || die "usage: guest/build-image.sh BUILD_DIR"
BUILD=$1
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${REHOME_GUEST_OUT:-$HERE/out}
CACHE=$OUT/cache
AGENT=${REHOME_AGENT:-$BUILD/src/agent/rehome-agent.static}
# The payload waiter for guest apps and tests (optional: older build dirs lack it).
PAYLOAD_WAIT=${REHOME_PAYLOAD_WAIT:-$BUILD/src/payload/rehome-payload-wait.static}
# Installed (rehome image build): the static tool lies beside this script.
[ -n "${REHOME_PAYLOAD_WAIT:-}" ] || [ -f "$PAYLOAD_WAIT" ] || PAYLOAD_WAIT=$HERE/rehome-payload-wait.static
BUSYBOX=/bin/busybox
# shellcheck source=guest/lib-kernel.sh
. "$HERE/lib-kernel.sh"

[ -f "$AGENT" ] || die "no agent binary at $AGENT: build it first (ninja -C $BUILD; needs musl-tools) or set REHOME_AGENT"
[ -x "$BUSYBOX" ] || die "no $BUSYBOX: apt-get install busybox-static"
# A static binary has no PT_INTERP: the image has no libc or dynamic loader.
file_is_static() { ! readelf -l "$1" 2>/dev/null | grep -q INTERP; }
file_is_static "$AGENT" || die "$AGENT is dynamically linked; the guest has no libc (use rehome-agent.static)"
command -v dpkg >/dev/null || die "no dpkg"
command -v apt-get >/dev/null || die "no apt-get"

mkdir -p "$CACHE"

# --- resolve the kernel package (guest/lib-kernel.sh) ------------------------
kernel_resolve

# --- cache key ----------------------------------------------------------------
AGENT_SHA=$(sha "$AGENT")
PAYLOAD_WAIT_SHA=none
[ -x "$PAYLOAD_WAIT" ] && file_is_static "$PAYLOAD_WAIT" && PAYLOAD_WAIT_SHA=$(sha "$PAYLOAD_WAIT")
KEY=$( { echo "$KPKG $KVER_PKG"; echo "$AGENT_SHA"; [ "$PAYLOAD_WAIT_SHA" = none ] || echo "$PAYLOAD_WAIT_SHA"; sha "$BUSYBOX"; sha "$HERE/init"; sha "$0"; sha "$HERE/lib-kernel.sh"; } |
        sha256sum | cut -c1-16)
IMG=$OUT/img-$KEY

print_summary() {
        echo "kernel: $KPKG $KVER_PKG ($KREL)"
        echo "modules: $(cat "$IMG/modules.txt" | tr '\n' ' ')"
        echo "agent: $AGENT sha256=$AGENT_SHA"
        echo "initrd: sha256=$(sha "$IMG/initrd.img")"
        echo "image: $IMG"
}

if [ -f "$IMG/image.json" ]; then
        ln -sfn "img-$KEY" "$OUT/current"
        say "cached image up to date"
        print_summary
        exit 0
fi

say "building image $KEY"
WORK=$(mktemp -d "$OUT/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

# --- kernel + modules ----------------------------------------------------------
dpkg -x "$DEB" "$WORK/kernel"
VMLINUZ="$WORK/kernel/boot/vmlinuz-$KREL"
[ -f "$VMLINUZ" ] || die "$DEB has no boot/vmlinuz-$KREL"
MODDIR="$WORK/kernel/lib/modules/$KREL"
[ -d "$MODDIR" ] || die "$DEB has no lib/modules/$KREL"

ROOT=$WORK/root
mkdir -p "$ROOT/bin" "$ROOT/sbin" "$ROOT/lib/modules" "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" \
        "$ROOT/tmp" "$ROOT/run" "$ROOT/etc"
kernel_modules "$MODDIR" "$ROOT/lib/modules" "$WORK/modules.txt"
cp "$WORK/modules.txt" "$ROOT/lib/modules/order"

# --- userland -----------------------------------------------------------------
cp "$BUSYBOX" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
cp "$AGENT" "$ROOT/sbin/rehome-agent"
chmod 0755 "$ROOT/sbin/rehome-agent"
if [ "$PAYLOAD_WAIT_SHA" != none ]; then
        cp "$PAYLOAD_WAIT" "$ROOT/sbin/rehome-payload-wait"
        chmod 0755 "$ROOT/sbin/rehome-payload-wait"
fi
cp "$HERE/init" "$ROOT/init"
chmod 0755 "$ROOT/init"
echo "rehome-guest" > "$ROOT/etc/hostname"

# --- pack (newc; busybox cpio creates newc) -------------------------------------
# Reproducible: fixed mtimes, sorted names, no name/time in the gzip header.
find "$ROOT" -exec touch -h -d @0 {} +
# GNU cpio --reproducible also renumbers inodes; busybox cpio (fallback) cannot.
if cpio --help 2>/dev/null | grep -q -- --reproducible; then
        (cd "$ROOT" && find . | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --quiet) |
                gzip -n -1 > "$WORK/initrd.img"
else
        say "GNU cpio not found: packing with busybox cpio (not byte-reproducible; apt-get install cpio)"
        (cd "$ROOT" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) |
                gzip -n -1 > "$WORK/initrd.img"
fi

mkdir -p "$WORK/img"
cp "$VMLINUZ" "$WORK/img/vmlinuz"
mv "$WORK/initrd.img" "$WORK/img/initrd.img"
INITRD_SHA=$(sha "$WORK/img/initrd.img")
mv "$WORK/modules.txt" "$WORK/img/modules.txt"
mods_json=$(awk 'BEGIN { printf "[" } { printf "%s\"%s\"", (NR > 1 ? "," : ""), $1 } END { printf "]" }' "$WORK/img/modules.txt")
cat > "$WORK/img/image.json" <<EOF
{
  "key": "$KEY",
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "kernel_package": "$KPKG",
  "kernel_package_version": "$KVER_PKG",
  "kernel_release": "$KREL",
  "modules": $mods_json,
  "agent_sha256": "$AGENT_SHA",
  "initrd_sha256": "$INITRD_SHA",
  "busybox_sha256": "$(sha "$BUSYBOX")"
}
EOF
rm -rf "$IMG"
mv "$WORK/img" "$IMG"
ln -sfn "img-$KEY" "$OUT/current"
# Keep the last few images: templates made from an older one still boot their
# clones with its kernel and initrd. The downloaded packages stay cached.
ls -1dt "$OUT"/img-* 2>/dev/null | grep -v '/img-systemd-' | tail -n +5 | while read -r old; do
        [ "$old" = "$IMG" ] || rm -rf "$old"
done
say "built $(du -h "$IMG/initrd.img" | cut -f1) initrd"
print_summary
