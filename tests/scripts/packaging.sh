#!/bin/sh
# SPDX-License-Identifier: MIT
# The installed library as a VMM would use it: make install into a
# DESTDIR, then build examples/minimal-vmm against it with nothing but
# `pkg-config --cflags --libs kvmfault` (PKG_CONFIG_PATH and
# PKG_CONFIG_SYSROOT_DIR into the DESTDIR), once with the shared library
# and once with the static one, and run both.  Every installed header
# must compile on its own, and the harness's (test.h) is not installed.  The builds must work
# everywhere; the runs skip where the example skips (no usable KVM).
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CC:-cc}
for t in make pkg-config "$cc" readelf; do
	command -v "$t" >/dev/null || {
		echo "SKIP: $t is not installed (apt-get install pkgconf binutils gcc make)"
		exit 4
	}
done
tmp=$(mktemp -d /tmp/kf-pkg.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=/opt/kvmfault
dest=$tmp/dest

if ! make -s -C "$here" install DESTDIR="$dest" PREFIX="$prefix" >"$tmp/install.log" 2>&1; then
	echo "FAIL: make install DESTDIR=$dest failed:"
	tail -n 20 "$tmp/install.log"
	exit 1
fi
export PKG_CONFIG_PATH="$dest$prefix/lib/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$dest"
export PKG_CONFIG_LIBDIR="$PKG_CONFIG_PATH"
if ! cflags=$(pkg-config --cflags kvmfault) || ! libs=$(pkg-config --libs kvmfault) ||
	! static_libs=$(pkg-config --libs --static kvmfault); then
	echo "FAIL: pkg-config does not find kvmfault in $PKG_CONFIG_PATH"
	exit 1
fi
case "$cflags" in
*"$dest$prefix/include"*) ;;
*) echo "FAIL: pkg-config --cflags gave '$cflags', not the DESTDIR's include"; exit 1 ;;
esac
# Only the public headers are installed: the test harness is no API.
if [ -e "$dest$prefix/include/kvmfault/test.h" ]; then
	echo "FAIL: the test harness header test.h is installed"
	exit 1
fi
# Every installed header compiles on its own, in plain C11.
for h in "$dest$prefix"/include/kvmfault/*.h "$dest$prefix"/include/kvmfault/*/*.h; do
	name=${h#"$dest$prefix/include/"}
	printf '#include <%s>\nint main(void) { return 0; }\n' "$name" >"$tmp/h.c"
	if ! $cc -std=c11 -Wall -Werror -fsyntax-only $cflags "$tmp/h.c" >"$tmp/cc.log" 2>&1; then
		echo "FAIL: the installed <$name> does not compile on its own:"
		tail -n 10 "$tmp/cc.log"
		exit 1
	fi
done
src=$here/examples/minimal-vmm.c
# Shared: the program needs the library by its soname from the DESTDIR.
if ! $cc -std=gnu11 -Wall -Werror -O2 -fPIE -pie $cflags -o "$tmp/vmm-shared" "$src" $libs \
	>"$tmp/cc.log" 2>&1; then
	echo "FAIL: the example does not build against the shared library:"
	tail -n 20 "$tmp/cc.log"
	exit 1
fi
soname=$(sed -n 's/^SOVERSION := //p' "$here/Makefile")
if ! readelf -d "$tmp/vmm-shared" | grep NEEDED | grep -qF "[libkvmfault.so.$soname]"; then
	echo "FAIL: the shared build does not link libkvmfault.so.$soname"
	exit 1
fi
# Static: the same flags with libkvmfault.a (and its private libraries).
static_libs=$(echo "$static_libs" | sed 's/-lkvmfault/-Wl,-Bstatic -lkvmfault -Wl,-Bdynamic/')
if ! $cc -std=gnu11 -Wall -Werror -O2 -fPIE -pie $cflags -o "$tmp/vmm-static" "$src" $static_libs \
	>"$tmp/cc.log" 2>&1; then
	echo "FAIL: the example does not build against the static library:"
	tail -n 20 "$tmp/cc.log"
	exit 1
fi
if readelf -d "$tmp/vmm-static" | grep -q 'NEEDED.*libkvmfault'; then
	echo "FAIL: the static build still needs libkvmfault.so"
	exit 1
fi
for kind in shared static; do
	LD_LIBRARY_PATH="$dest$prefix/lib" "$tmp/vmm-$kind" >"$tmp/run.log" 2>&1
	rc=$?
	case $rc in
	0) ;;
	4)
		echo "SKIP: the packaged example builds (shared and static) but cannot run here: $(sed -n 's/^SKIP: //p' "$tmp/run.log" | head -n 1)"
		exit 4 ;;
	*)
		echo "FAIL: the $kind build of the example failed (exit $rc):"
		tail -n 20 "$tmp/run.log"
		exit 1 ;;
	esac
done
echo "PASS: installed into a DESTDIR, the example builds with pkg-config against libkvmfault.so and libkvmfault.a and runs"
