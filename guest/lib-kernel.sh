# SPDX-License-Identifier: MIT
#
# guest/lib-kernel.sh: sourced by guest/build-image.sh (busybox image) and
# guest/build-systemd-image.sh (Debian systemd image), so both boot the same
# Debian kernel from the same cache:
#   kernel_resolve    sets KPKG, KVER_PKG, DEB (the cached .deb, downloaded
#                     with `apt-get download` when missing) and KREL; offline,
#                     the newest kernel already in $CACHE
#   kernel_modules MODDIR DEST ORDER
#                     copies the virtio network modules ($MODULES) of the
#                     unpacked kernel's MODDIR into DEST/NAME.ko
#                     (decompressed), their load order into ORDER
#   sha FILE          its sha256
# Needs: CACHE, die(), say(); REHOME_KERNEL_PKG pins a kernel package.

MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"

sha() { sha256sum "$1" | cut -c1-64; }

resolve_kernel() {
        apt-cache depends linux-image-amd64 2>/dev/null |
                awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

kernel_resolve() {
        KPKG=${REHOME_KERNEL_PKG:-}
        if [ -z "$KPKG" ]; then
                KPKG=$(resolve_kernel || true)
                if [ -z "$KPKG" ]; then
                        say "apt has no linux-image-amd64 yet: running apt-get update"
                        apt-get update -qq >&2 || true
                        KPKG=$(resolve_kernel || true)
                fi
        fi
        if [ -z "$KPKG" ]; then
                # Offline: fall back to the newest kernel already in the cache.
                DEB=$(ls -1 "$CACHE"/linux-image-*-amd64_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
                [ -n "$DEB" ] || die "cannot resolve linux-image-amd64 (apt-cache depends) and no cached kernel in $CACHE"
                KPKG=$(basename "$DEB" | cut -d_ -f1)
                KVER_PKG=$(basename "$DEB" | cut -d_ -f2)
                say "offline: using cached $KPKG $KVER_PKG"
        else
                KVER_PKG=$(apt-cache show --no-all-versions "$KPKG" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
                [ -n "$KVER_PKG" ] || die "apt-cache show $KPKG gave no version"
                DEB=$(ls -1 "$CACHE/${KPKG}_"*"$(echo "$KVER_PKG" | sed 's/:/%3a/')"_amd64.deb 2>/dev/null | head -n 1 || true)
                if [ -z "$DEB" ]; then
                        say "downloading $KPKG $KVER_PKG (apt-get download)"
                        # apt's progress bar on a terminal; -q (no progress) into a log or a pipe.
                        APT_Q=-q
                        [ -t 2 ] && APT_Q=
                        (cd "$CACHE" && apt-get download $APT_Q "$KPKG=$KVER_PKG" >&2 2>/dev/null) ||
                                (cd "$CACHE" && apt-get download -q "$KPKG=$KVER_PKG" >&2) ||
                                die "apt-get download $KPKG=$KVER_PKG failed"
                        DEB=$(ls -1 "$CACHE/${KPKG}_"*_amd64.deb | sort -V | tail -n 1)
                fi
        fi
        KREL=${KPKG#linux-image-}            # e.g. 6.1.0-56-amd64
}

kernel_modules() {
        _moddir=$1 _dest=$2 _order=$3
        mkdir -p "$_dest"
        : > "$_order"
        for m in $MODULES; do
                f=$(find "$_moddir" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -n 1)
                if [ -z "$f" ]; then
                        # Built into the kernel? Then there is nothing to load.
                        if grep -q "/$m.ko\$" "$_moddir/modules.builtin" 2>/dev/null; then
                                say "module $m is built in"
                                continue
                        fi
                        die "module $m not found in $KPKG"
                fi
                case "$f" in
                *.ko.xz) xz -dc "$f" > "$_dest/$m.ko" ;;
                *.ko.zst) zstd -qdc "$f" > "$_dest/$m.ko" ;;
                *.ko.gz) gzip -dc "$f" > "$_dest/$m.ko" ;;
                *) cp "$f" "$_dest/$m.ko" ;;
                esac
                echo "$m" >> "$_order"
        done
}
