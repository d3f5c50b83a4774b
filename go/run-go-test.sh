#!/bin/sh
# SPDX-License-Identifier: MIT
# meson test 'go': vet, build (the example too) and `go test` the Go
# package against this build's librehome, found through the build dir's
# meson-uninstalled pkg-config file. Only the standard library: no module
# download (GOPROXY=off, GOFLAGS=-mod=mod with a go.mod that requires
# nothing). Skips (77) with the reason when Go is absent.
set -eu
BUILD=${1:?build dir}
SRC=${2:?go source dir}
GO=${GO:-$(command -v go || true)}
if [ -z "$GO" ]; then
        echo "SKIP: no Go toolchain (apt-get install golang-go; it is in the Makefile's CHECK_PACKAGES)"
        exit 77
fi
export PKG_CONFIG_PATH="$BUILD/meson-uninstalled${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$BUILD/src/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=1
export GOCACHE="$BUILD/go/cache" GOPATH="$BUILD/go/path"
cd "$SRC"
echo "go: $("$GO" version); librehome: $(pkg-config --modversion rehome) from $BUILD"
"$GO" vet ./...
"$GO" build -o "$BUILD/go/rehome-example" ./rehome/example
"$GO" test -count=1 -v ./...
