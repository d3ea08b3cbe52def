#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build the patched QEMU for the rig: Debian's source of the installed
# qemu-system-x86 (apt-get source; a deb-src entry is added when the
# machine has none) with the series in qemu/patches/VERSION/ on top,
# x86_64-softmmu with KVM only (no TCG, no tools, no docs), trace events on
# the log backend so that the rig can see which fault path ran.
#
# Layout under $KVMFAULT_CACHE (outside the checkout):
#   qemu-dl/VERSION/     the source package files of each version
#   qemu-src-VERSION/    the unpacked source as a git tree (tag "base")
#   qemu-obj-VERSION-C/  the object directory of each configuration C
#   qemu-VERSION-KEY/    the finished build: qemu-system-x86_64, .done;
#                        KEY hashes every input (package version, patches,
#                        this script), so a build is made once per input
#
# usage: build.sh [--print-dir]     prints the build's directory last
# env:   KVMFAULT_CACHE, JOBS, QEMU_PACKAGE_VERSION (default: installed)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${KVMFAULT_CACHE:-/var/tmp/kvmfault}
JOBS=${JOBS:-$(nproc)}
BUILD_DEPS="dpkg-dev meson ninja-build pkgconf libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev python3-venv"
CONFIGURE="--target-list=x86_64-softmmu --without-default-features --enable-kvm
	--disable-tcg --disable-docs --disable-tools --disable-werror
	--enable-trace-backends=log --enable-fdt=system"

log() { echo "qemu-build: $*" >&2; }
die() { echo "qemu-build: error: $*" >&2; exit 1; }

version=${QEMU_PACKAGE_VERSION:-$(dpkg-query -W -f '${db:Status-Status} ${source:Version}' qemu-system-x86 2>/dev/null |
	sed -n 's/^installed //p')}
[ -n "$version" ] || die "qemu-system-x86 is not installed: apt-get install qemu-system-x86"
# 1:7.2+dfsg-7+deb12u18 -> 7.2
upstream=${version#*:}
upstream=${upstream%%[+~-]*}
# The version in paths: no ':' (make and ninja take it for a separator).
vtag=$(echo "$version" | tr ':' '_')
series_dir=$here/patches/$upstream
[ -r "$series_dir/series" ] ||
	die "no QEMU series for $upstream (qemu/patches/$upstream/series); have: $(cd "$here/patches" && echo */ | tr -d /)"
patches=()
while read -r p; do
	case "$p" in ''|'#'*) continue ;; esac
	[ -r "$series_dir/$p" ] || die "series lists $p, which is missing"
	patches+=("$series_dir/$p")
done <"$series_dir/series"

key=$( {
	echo "qemu $version"
	echo "$CONFIGURE"
	for f in "${patches[@]}" "$here/build.sh"; do
		echo "== $(basename "$f")"; cat "$f"
	done
} | sha256sum | cut -c1-16)
out=$CACHE/qemu-$upstream-$key
if [ "${1:-}" = --print-dir ]; then
	echo "$out"
	exit 0
fi
if [ -f "$out/.done" ]; then
	log "reusing $out"
	echo "$out"
	exit 0
fi

missing=""
for p in $BUILD_DEPS; do
	dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] || die "missing packages:$missing (make -C kernel deps installs them)"

# The source package, once per version.
dl=$CACHE/qemu-dl/$vtag
if [ ! -f "$dl/.done" ]; then
	"$here/../scripts/deb-src.sh" ||
		die "cannot add a deb-src entry for apt-get source"
	rm -rf "$dl"
	mkdir -p "$dl"
	log "apt-get source qemu=$version"
	(cd "$dl" && apt-get source -q --download-only "qemu=$version" >apt.log 2>&1) ||
		die "apt-get source qemu=$version failed ($dl/apt.log; is that version still in the archive? QEMU_PACKAGE_VERSION picks another)"
	touch "$dl/.done"
fi

# One build at a time: the source tree and the object directory are shared.
mkdir -p "$CACHE"
exec 9>"$CACHE/qemu-build.lock"
flock 9

# The source as a git tree (tag "base"), reset and patched for each build:
# git rewrites only the files that differ, so the object directory (one
# per version and configuration) rebuilds only what the patches change.
# It belongs to this script: change the series in a clone of it.
src=$CACHE/qemu-src-$vtag
if [ ! -f "$src/.git/kvmfault-base" ]; then
	rm -rf "$src"
	log "unpacking the source of $version"
	dpkg-source -q --no-copy -x "$dl"/qemu_*.dsc "$src" >"$dl/unpack.log" 2>&1 ||
		die "dpkg-source -x failed: $dl/unpack.log"
	git -C "$src" init -q
	git -C "$src" add -A -f
	git -C "$src" -c user.name=kvmfault -c user.email=kvmfault@localhost \
		commit -q -m "Debian QEMU $version" || die "git commit of the source failed"
	git -C "$src" tag -f base >/dev/null
	touch "$src/.git/kvmfault-base"
fi
log "applying ${#patches[@]} patches"
git -C "$src" reset -q --hard base
git -C "$src" clean -q -fdx
for p in "${patches[@]}"; do
	git -C "$src" apply --whitespace=nowarn "$p" ||
		die "$(basename "$p") does not apply to $version"
done
obj=$CACHE/qemu-obj-$vtag-$(echo "$CONFIGURE" | sha256sum | cut -c1-8)
mkdir -p "$obj"
start=$(date +%s)
if [ ! -f "$obj/build.ninja" ]; then
	log "configuring x86_64-softmmu"
	# shellcheck disable=SC2086
	(cd "$obj" && "$src/configure" $CONFIGURE >configure.log 2>&1) ||
		die "configure failed: $obj/configure.log"
fi
log "building qemu-system-x86_64 (-j$JOBS) in $obj"
(cd "$obj" && make -j"$JOBS" qemu-system-x86_64 >build.log 2>&1) ||
	die "build failed: $obj/build.log"
rm -rf "$out"
mkdir -p "$out"
strip -o "$out/qemu-system-x86_64" "$obj/qemu-system-x86_64"
printf '%s\n' "${patches[@]##*/}" >"$out/series"
touch "$out/.done"
log "built $out in $(( $(date +%s) - start ))s"
echo "$out"
