#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian packages kvmfault needs, and say what is missing.
#   deps.sh         build and host tests
#   deps.sh --rig   also the QEMU rigs (kernel source, QEMU, busybox; for
#                   arm64 the cross compiler, QEMU's arm64 system, the
#                   arm64 libraries the static tests link, and an arm64
#                   static busybox, fetched as a Debian package)
#   deps.sh --all   also the fuzzers and plots
#   (the rig list has what qemu/build.sh needs to build QEMU from source)
set -u

base="gcc make libc6-dev libxxhash-dev libssl-dev pkgconf"
rig="linux-source-6.12 linux-source-6.1 qemu-system-x86 busybox-static rsync bc flex bison libelf-dev libssl-dev cpio xz-utils
     dpkg-dev meson ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev python3-venv
     gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-system-arm file"
extra="clang libclang-rt-14-dev gnuplot-nox"

want=$base
case "${1:-}" in
--rig) want="$base $rig" ;;
--all) want="$base $rig $extra" ;;
esac

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "kvmfault: missing packages:$missing" >&2
		echo "kvmfault: not root, cannot install them: run as root, or: apt-get install$missing" >&2
		exit 1
	fi
	echo "kvmfault: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null &&
		apt-get install -y -q --no-install-recommends $missing >/dev/null || {
		echo "kvmfault: apt-get install$missing failed" >&2
		exit 1
	}
fi

# Debian's arm64 packages, as a foreign architecture.
arm64_arch() {
	dpkg --print-foreign-architectures | grep -qx arm64 || {
		dpkg --add-architecture arm64 && apt-get update -q >/dev/null
	}
}

# The libraries the arm64 static tests link (make CROSS_COMPILE=...).
arm64_libs() {
	libs="libssl-dev:arm64 libxxhash-dev:arm64"
	missing=""
	for p in $libs; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "kvmfault: missing arm64 packages:$missing; as root, scripts/deps.sh --rig installs them" >&2
		return 1
	fi
	echo "kvmfault: installing:$missing"
	arm64_arch && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends $missing >/dev/null || {
		echo "kvmfault: apt-get install$missing failed" >&2
		return 1
	}
}

# The arm64 rig's initramfs needs busybox built for arm64: Debian's
# busybox-static of that architecture, unpacked into the cache (it is not
# installed: it would replace this machine's own busybox).
arm64_busybox() {
	cache=${KVMFAULT_CACHE:-/var/tmp/kvmfault}
	dest=$cache/busybox-arm64/busybox
	[ -x "$dest" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "kvmfault: $dest missing; as root, scripts/deps.sh --rig fetches it" >&2
		return 1
	fi
	echo "kvmfault: fetching busybox-static:arm64 into $dest"
	tmp=$(mktemp -d /tmp/kf-busybox.XXXXXX) && chmod 755 "$tmp" || return 1
	arm64_arch || return 1
	if (cd "$tmp" && apt-get download -q busybox-static:arm64 >/dev/null) &&
		dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$tmp/root" &&
		mkdir -p "$(dirname "$dest")" &&
		cp "$tmp/root/bin/busybox" "$dest.tmp" && mv "$dest.tmp" "$dest"; then
		rm -rf "$tmp"
		return 0
	fi
	rm -rf "$tmp"
	echo "kvmfault: could not fetch busybox-static:arm64 (apt-get download)" >&2
	return 1
}
case "${1:-}" in
--rig|--all)
	arm64_busybox || echo "kvmfault: the arm64 rig will SKIP" >&2
	arm64_libs || echo "kvmfault: the arm64 rig will SKIP kvmfault's own tests" >&2 ;;
esac

exit 0
