#!/bin/sh
# SPDX-License-Identifier: MIT
#
# guest/build-systemd-image.sh BUILD_DIR
#
# Builds a second rehome guest image, a real systemd guest, and caches it
# under guest/out/ like guest/build-image.sh does for the busybox one:
#   - Debian bookworm from deb.debian.org with debootstrap --variant=minbase
#     plus systemd, systemd-sysv, udev, dbus, systemd-resolved, iproute2,
#     iputils-ping (its .debs cached in guest/out/cache/debootstrap),
#   - systemd-networkd managing eth0 statically: rehome-netconfig.service
#     writes /etc/systemd/network/10-eth0.network from the kernel command
#     line `rehome template create` gives every image (rehome.ip=,
#     rehome.gw=, rehome.hostname=) before networkd starts, with DNS= the
#     gateway; systemd-resolved owns /etc/resolv.conf (its stub symlink),
#   - rehome-agent as a systemd unit (guest/rehome-agent.service.in, ordered
#     last, extra arguments from rehome.agent= like guest/init),
#   - a root shell on ttyS0 (rehome-console.service) for `rehome clone console`,
#   - the Debian kernel and virtio modules of guest/build-image.sh (shared
#     through guest/lib-kernel.sh).
# The whole root file system is the initramfs (no disk): `rehome template
# create` boots kernel + initrd only, the snapshot then holds the root file
# system in guest RAM, and every clone shares those pages copy-on-write with
# the template like the rest of its memory; a shared read-only disk would
# need a second device in every clone and an overlay for /etc and /var.
# Kept small for TCG: no docs, man pages, locales, apt lists or udev hwdb;
# timers and units a microVM does not need are masked. Guest RAM must hold
# the unpacked root: make templates of it with --mem 768M or more.
#
# The image directory is named by a hash of every input (kernel, agent,
# debootstrap package set, this script, lib-kernel.sh, the unit), so a
# rebuild with the same inputs is a no-op. guest/out/systemd-current points
# at the latest; its image.json is what `rehome template create --image DIR`
# reads.
#
# Environment: REHOME_AGENT=PATH, REHOME_KERNEL_PKG=NAME, REHOME_GUEST_OUT=DIR,
# REHOME_DEBIAN_MIRROR=URL (default http://deb.debian.org/debian).
set -eu

die() { echo "build-systemd-image: $*" >&2; exit 1; }
say() { echo "build-systemd-image: $*" >&2; }

[ $# -eq 1 ] || die "usage: guest/build-systemd-image.sh BUILD_DIR"
BUILD=$1
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${REHOME_GUEST_OUT:-$HERE/out}
CACHE=$OUT/cache
AGENT=${REHOME_AGENT:-$BUILD/src/agent/rehome-agent.static}
MIRROR=${REHOME_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
PACKAGES="systemd,systemd-sysv,udev,dbus,systemd-resolved,iproute2,iputils-ping,kmod"
# shellcheck source=guest/lib-kernel.sh
. "$HERE/lib-kernel.sh"

[ "$(id -u)" = 0 ] || die "needs root (debootstrap)"
command -v debootstrap >/dev/null || die "no debootstrap: apt-get install debootstrap"
[ -f "$AGENT" ] || die "no agent binary at $AGENT: build it first (ninja -C $BUILD) or set REHOME_AGENT"
readelf -l "$AGENT" 2>/dev/null | grep -q INTERP && die "$AGENT is dynamically linked (use rehome-agent.static)"
command -v zstd >/dev/null || die "no zstd"
command -v depmod >/dev/null || die "no depmod (apt-get install kmod)"
mkdir -p "$CACHE/debootstrap"

kernel_resolve

AGENT_SHA=$(sha "$AGENT")
KEY=$( { echo "$KPKG $KVER_PKG"; echo "$AGENT_SHA"; echo "$SUITE $MIRROR $PACKAGES"; sha "$0";
         sha "$HERE/lib-kernel.sh"; sha "$HERE/rehome-agent.service.in"; } | sha256sum | cut -c1-16)
IMG=$OUT/img-systemd-$KEY

print_summary() {
        echo "kernel: $KPKG $KVER_PKG ($KREL)"
        echo "debian: $SUITE, $(cat "$IMG/packages.txt" | wc -l) packages"
        echo "agent: $AGENT sha256=$AGENT_SHA"
        echo "initrd: $(du -h "$IMG/initrd.img" | cut -f1) sha256=$(sha "$IMG/initrd.img")"
        echo "image: $IMG"
}

if [ -f "$IMG/image.json" ]; then
        ln -sfn "img-systemd-$KEY" "$OUT/systemd-current"
        say "cached image up to date"
        print_summary
        exit 0
fi

say "building image systemd-$KEY (debootstrap $SUITE minbase + $PACKAGES)"
WORK=$(mktemp -d "$OUT/.work-systemd.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
ROOT=$WORK/root

debootstrap --variant=minbase --cache-dir="$CACHE/debootstrap" --include="$PACKAGES" \
        "$SUITE" "$ROOT" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 ||
        { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
chroot "$ROOT" dpkg-query -W -f '${Package} ${Version}\n' > "$WORK/packages.txt"

# --- kernel modules: udev loads virtio_net by modalias ------------------------
dpkg -x "$DEB" "$WORK/kernel"
VMLINUZ="$WORK/kernel/boot/vmlinuz-$KREL"
[ -f "$VMLINUZ" ] || die "$DEB has no boot/vmlinuz-$KREL"
kernel_modules "$WORK/kernel/lib/modules/$KREL" "$ROOT/lib/modules/$KREL/kernel/rehome" "$WORK/modules.txt"
for f in modules.builtin modules.builtin.modinfo modules.order; do
        [ -f "$WORK/kernel/lib/modules/$KREL/$f" ] && cp "$WORK/kernel/lib/modules/$KREL/$f" "$ROOT/lib/modules/$KREL/"
done
depmod -b "$ROOT" "$KREL"
mkdir -p "$ROOT/etc/modules-load.d"
cp "$WORK/modules.txt" "$ROOT/etc/modules-load.d/rehome-virtio.conf"

# --- configuration -------------------------------------------------------------
echo rehome-systemd > "$ROOT/etc/hostname"
cat > "$ROOT/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	rehome-systemd
::1	localhost ip6-localhost ip6-loopback
EOF
: > "$ROOT/etc/fstab"
# A machine id of its own (systemd would otherwise treat the boot as a first
# boot); clones get fresh ones from the agent.
tr -d '-' < /proc/sys/kernel/random/uuid > "$ROOT/etc/machine-id"
# eth0 keeps its kernel name: no predictable-name policy (systemd.link(5)).
mkdir -p "$ROOT/etc/systemd/network"
ln -sfn /dev/null "$ROOT/etc/systemd/network/99-default.link"

mkdir -p "$ROOT/usr/lib/rehome"
cat > "$ROOT/usr/lib/rehome/netconfig" <<'EOF'
#!/bin/sh
# The template's static network configuration for systemd-networkd, from the
# kernel command line `rehome template create` gives (rehome.ip=A/P,
# rehome.gw=G, rehome.hostname=N): what an administrator would have written.
ip= gw= host=
for w in $(cat /proc/cmdline); do
        case "$w" in
        rehome.ip=*) ip=${w#rehome.ip=} ;;
        rehome.gw=*) gw=${w#rehome.gw=} ;;
        rehome.hostname=*) host=${w#rehome.hostname=} ;;
        esac
done
if [ -n "$host" ]; then
        echo "$host" > /etc/hostname
        hostname "$host"
        sed -i "s/^127\.0\.1\.1[[:space:]].*/127.0.1.1\t$host/" /etc/hosts
fi
[ -n "$ip" ] || exit 0
{
        printf '[Match]\nName=eth0\n\n[Network]\nAddress=%s\n' "$ip"
        [ -n "$gw" ] && printf 'Gateway=%s\nDNS=%s\n' "$gw" "$gw"
} > /etc/systemd/network/10-eth0.network
EOF
chmod 755 "$ROOT/usr/lib/rehome/netconfig"
cat > "$ROOT/etc/systemd/system/rehome-netconfig.service" <<'EOF'
[Unit]
Description=rehome template: static networkd configuration from the kernel command line
DefaultDependencies=no
Before=systemd-networkd.service network-pre.target systemd-hostnamed.service
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/lib/rehome/netconfig
RemainAfterExit=yes

[Install]
WantedBy=sysinit.target
EOF
cat > "$ROOT/etc/systemd/system/rehome-console.service" <<'EOF'
[Unit]
Description=root shell on ttyS0 (test and demo image; a production guest has a getty or nothing)
After=systemd-user-sessions.service

[Service]
ExecStart=/bin/bash -i
StandardInput=tty-force
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TTYReset=yes
Environment=TERM=dumb PS1=#\x20
Restart=always
RestartSec=0

[Install]
WantedBy=multi-user.target
EOF
install -m 0755 "$AGENT" "$ROOT/usr/sbin/rehome-agent"
# rehome.agent=ARG,ARG (template create --agent-args), as guest/init reads it.
cat > "$ROOT/usr/lib/rehome/agent-start" <<'EOF'
#!/bin/sh
args=
for w in $(cat /proc/cmdline); do
        case "$w" in
        rehome.agent=*) args=$(echo "${w#rehome.agent=}" | tr ',' ' ') ;;
        esac
done
# shellcheck disable=SC2086
exec /usr/sbin/rehome-agent $args
EOF
chmod 755 "$ROOT/usr/lib/rehome/agent-start"
# The unit as shipped arms before network-pre.target (a guest that boots to
# serve). A template image snapshots as soon as the agent arms, so here it
# arms last: after networkd, resolved, D-Bus and multi-user.target, and the
# snapshot (and every clone) holds a settled system.
sed -e '/^Before=network-pre.target/d' -e '/^Wants=network-pre.target/d' \
        -e 's/^After=systemd-modules-load.service$/After=systemd-modules-load.service systemd-networkd.service systemd-resolved.service dbus.service rehome-console.service multi-user.target/' \
        -e 's/^WantedBy=sysinit.target$/WantedBy=multi-user.target/' \
        -e 's|^ExecStart=@REHOME_AGENT@$|ExecStart=/usr/lib/rehome/agent-start|' \
        -e 's|@DOCDIR@|/usr/share/doc/rehome|g' -e 's|@REHOME_GUEST_DIR@|/usr/lib/rehome|g' \
        -e 's|@REHOME_AGENT@|/usr/sbin/rehome-agent|g' \
        "$HERE/rehome-agent.service.in" > "$ROOT/etc/systemd/system/rehome-agent.service"
grep -q '^After=.*multi-user.target' "$ROOT/etc/systemd/system/rehome-agent.service" &&
        grep -q '^ExecStart=/usr/lib/rehome/agent-start$' "$ROOT/etc/systemd/system/rehome-agent.service" ||
        die "guest/rehome-agent.service.in changed: its After= line was not found"
chroot "$ROOT" systemctl enable -q rehome-agent.service rehome-netconfig.service rehome-console.service \
        systemd-networkd.service systemd-resolved.service
# Not in a microVM: the getty the console unit replaces, timers, apt, the
# remount of a root that is already the initramfs, waiting for "online".
chroot "$ROOT" systemctl mask -q serial-getty@ttyS0.service getty@tty1.service apt-daily.timer \
        apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \
        systemd-tmpfiles-clean.timer systemd-remount-fs.service systemd-networkd-wait-online.service \
        systemd-firstboot.service systemd-journal-flush.service systemd-update-utmp.service \
        systemd-update-utmp-runlevel.service systemd-pstore.service
[ -L "$ROOT/etc/resolv.conf" ] || ln -sfn ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
ln -sfn /lib/systemd/systemd "$ROOT/init"

# --- trim --------------------------------------------------------------------
rm -rf "$ROOT/usr/share/doc" "$ROOT/usr/share/man" "$ROOT/usr/share/info" "$ROOT/usr/share/locale" \
        "$ROOT/var/cache/apt" "$ROOT/var/lib/apt/lists" "$ROOT/var/log"/* \
        "$ROOT/usr/lib/udev/hwdb.d" "$ROOT/etc/udev/hwdb.bin" "$ROOT/usr/lib/udev/hwdb.bin" \
        "$ROOT/usr/share/zoneinfo" "$ROOT/usr/share/common-licenses" "$ROOT/usr/share/bash-completion"
mkdir -p "$ROOT/var/cache/apt/archives/partial" "$ROOT/var/lib/apt/lists/partial"

# --- pack: newc, fixed mtimes and order, zstd (the Debian kernel has RD_ZSTD) --
find "$ROOT" -exec touch -h -d @0 {} +
(cd "$ROOT" && find . | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --quiet) |
        zstd -q -T0 -10 > "$WORK/initrd.img"

mkdir -p "$WORK/img"
cp "$VMLINUZ" "$WORK/img/vmlinuz"
mv "$WORK/initrd.img" "$WORK/img/initrd.img"
mv "$WORK/modules.txt" "$WORK/img/modules.txt"
mv "$WORK/packages.txt" "$WORK/img/packages.txt"
ROOT_KB=$(du -sk "$ROOT" | cut -f1)
mods_json=$(awk 'BEGIN { printf "[" } { printf "%s\"%s\"", (NR > 1 ? "," : ""), $1 } END { printf "]" }' "$WORK/img/modules.txt")
cat > "$WORK/img/image.json" <<EOF
{
  "key": "systemd-$KEY",
  "flavour": "systemd",
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "kernel_package": "$KPKG",
  "kernel_package_version": "$KVER_PKG",
  "kernel_release": "$KREL",
  "modules": $mods_json,
  "agent_sha256": "$AGENT_SHA",
  "initrd_sha256": "$(sha "$WORK/img/initrd.img")",
  "debian_suite": "$SUITE",
  "root_kib": $ROOT_KB,
  "min_mem_mib": 768
}
EOF
rm -rf "$IMG"
mv "$WORK/img" "$IMG"
ln -sfn "img-systemd-$KEY" "$OUT/systemd-current"
ls -1dt "$OUT"/img-systemd-* 2>/dev/null | tail -n +4 | while read -r old; do
        [ "$old" = "$IMG" ] || rm -rf "$old"
done
say "built: root $((ROOT_KB / 1024)) MiB unpacked"
print_summary
