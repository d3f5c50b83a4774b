# SPDX-License-Identifier: MIT
# The README's two commands: `make demo` and `make check`. Both install what
# they need with apt-get on a fresh Debian 12 machine (as root).

BUILD      ?= build
BUILD_SAN  ?= build-asan
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 20
FUZZ_RUNS    ?= 10000000

# Debian packages the build and the demo need (make demo installs only these).
DEB_PACKAGES = meson ninja-build pkg-config gcc libc6-dev libjansson-dev libcmocka-dev \
	musl-tools linux-libc-dev scdoc \
	qemu-system-x86 busybox-static cpio iproute2 nftables kmod \
	dpkg-dev ca-certificates

# What `make deb` needs on top: debian/control's Build-Depends and the tools.
DEB_BUILD_PACKAGES = debhelper fakeroot musl-dev python3 lintian man-db

.PHONY: all deps build check check-unit check-asan check-fuzz check-deb fuzz-long demo guest guest-systemd deb clean

all: build

# Install only what is missing; apt-get update only when something is.
# What only the tests need on top: the fork IPAM tests call Debian's CNI
# host-local; the systemd guest is built with debootstrap; meson test 'go'
# builds and tests go/rehome with Debian's Go; fuzzing needs clang and its
# libFuzzer runtime; bench plots gnuplot and its DHCP baseline runs dnsmasq; the
# package check builds the .debs.
CHECK_PACKAGES = containernetworking-plugins debootstrap golang-go dnsmasq-base clang libclang-rt-14-dev llvm gnuplot-nox \
	$(DEB_BUILD_PACKAGES)

deps:
	@missing=""; for p in $(DEB_PACKAGES) $(EXTRA_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing" >&2; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >&2; \
	fi

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The guest image: Debian kernel + virtio modules + busybox + rehome-agent.
guest: build
	guest/build-image.sh $(BUILD)

# The systemd guest image (tests/integration/test-systemd-guest.sh): Debian
# bookworm by debootstrap, systemd-networkd + resolved + rehome-agent.service.
guest-systemd: EXTRA_PACKAGES += debootstrap
guest-systemd: build
	guest/build-systemd-image.sh $(BUILD)

# Every test: unit, integration (root, netns, QEMU), sanitizers, bounded fuzzing.
check: EXTRA_PACKAGES = $(CHECK_PACKAGES)
# (meson test includes the abi and man-help suites; check-deb builds and
# installs the packages.)
check: build guest guest-systemd
	@rc=0; \
	meson test -C $(BUILD) --print-errorlogs --num-processes 2 || rc=1; \
	$(MAKE) check-asan check-fuzz check-deb || rc=1; \
	tests/summary.sh $(BUILD)/meson-logs/testlog.json $(BUILD_SAN)/meson-logs/testlog.json || rc=1; \
	exit $$rc

check-unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

check-asan: EXTRA_PACKAGES = $(CHECK_PACKAGES)
check-asan: deps
	[ -f $(BUILD_SAN)/build.ninja ] || meson setup $(BUILD_SAN) -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C $(BUILD_SAN)
	meson test -C $(BUILD_SAN) --suite unit --print-errorlogs

$(BUILD_FUZZ)/build.ninja:
	CC=clang meson setup $(BUILD_FUZZ) -Dfuzz=true -Dtests=false

# Every fuzz target (tests/fuzz/fuzz-*.c) for FUZZ_SECONDS each.
check-fuzz: EXTRA_PACKAGES = $(CHECK_PACKAGES)
check-fuzz: deps $(BUILD_FUZZ)/build.ninja
	ninja -C $(BUILD_FUZZ)
	tests/fuzz/run.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

# Not part of check: every fuzz target for FUZZ_RUNS executions, one at a
# time at the lowest priority (docs/BENCHMARKS.md, "Fuzzing").
fuzz-long: EXTRA_PACKAGES = $(CHECK_PACKAGES)
fuzz-long: deps $(BUILD_FUZZ)/build.ninja
	nice -n 19 ninja -C $(BUILD_FUZZ)
	@echo "fuzz-long: $(FUZZ_RUNS) executions per target, $$(date -u '+%Y-%m-%d %H:%M UTC'), $$(nproc) CPUs, load $$(cut -d' ' -f1-3 /proc/loadavg)"
	nice -n 19 tests/fuzz/run.sh --runs $(FUZZ_RUNS) $(BUILD_FUZZ)

# The in-tree binary boots the in-tree image (an installed rehome defaults
# to /var/lib/rehome/images/current, made by `rehome image build`).
demo: build guest
	REHOME_IMAGE=$(CURDIR)/guest/out/current $(BUILD)/src/cli/rehome demo

# Debian packages (rehome, librehome0, librehome-dev, rehome-agent-static)
# from a copy of this tree in $(BUILD_DEB), where the .debs land.
BUILD_DEB ?= build-deb
DEB_VERSION = $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null || echo 0)
deb: EXTRA_PACKAGES = $(DEB_BUILD_PACKAGES)
deb: deps
	rm -rf $(BUILD_DEB)
	mkdir -p $(BUILD_DEB)/rehome-$(DEB_VERSION)
	tar -C . --exclude=./.git --exclude='./build*' --exclude=./guest/out --exclude=./bench/results -cf - . | \
		tar -C $(BUILD_DEB)/rehome-$(DEB_VERSION) -xf -
	cd $(BUILD_DEB)/rehome-$(DEB_VERSION) && dpkg-buildpackage -us -uc -b
	@ls -1 $(BUILD_DEB)/*.deb

# The packages installed into a fresh root: rehome --version, rehome doctor
# --json, the pkg-config consumer, man rehome; lintian (tests/deb/check-deb.sh).
check-deb: deb
	tests/deb/check-deb.sh $(BUILD_DEB)

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ) $(BUILD_DEB)
