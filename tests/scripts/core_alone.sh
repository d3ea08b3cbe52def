#!/bin/sh
# SPDX-License-Identifier: MIT
# The core stands alone: the exit decoder, the fault engine, the page
# sources, userfaultfd and KVM helpers, errors and statistics reference
# nothing of the VM layer (kf_vm, kf_vcpu, the program image, the arch
# hooks), and examples/minimal-vmm links and runs with those objects only.
# usage: core_alone.sh [BUILD]   (default build)
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
cc=${CC:-cc}
core="engine exit error hash kvm mte pagesrc stats uffd"
objs=""
for o in $core; do
	f=$build/obj/lib/$o.o
	if [ ! -f "$f" ]; then
		echo "FAIL: $f is missing: build with make"
		exit 1
	fi
	objs="$objs $f"
done
ex=$build/obj/examples/minimal-vmm.o
if [ ! -f "$ex" ]; then
	echo "FAIL: $ex is missing: build with make"
	exit 1
fi
if ! command -v nm >/dev/null; then
	echo "SKIP: nm is not installed (binutils)"
	exit 4
fi
leaks=$(nm -u $objs | awk '$2 ~ /^kf_(vm|vcpu|arch|image|workload|test)_/ { print $2 }' | sort -u)
if [ -n "$leaks" ]; then
	printf 'FAIL: the core uses the VM layer or the harness:\n%s\n' "$leaks"
	exit 1
fi
tmp=$(mktemp -d /tmp/kf-core.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if ! $cc -pie -pthread -o "$tmp/vmm" "$ex" $objs -lxxhash -lssl -lcrypto >"$tmp/ld.log" 2>&1; then
	echo "FAIL: minimal-vmm does not link with the core objects alone:"
	tail -n 20 "$tmp/ld.log"
	exit 1
fi
"$tmp/vmm" >"$tmp/run.log" 2>&1
rc=$?
case $rc in
0) echo "PASS: the core ($core) links and runs minimal-vmm without the VM layer" ;;
4) echo "SKIP: the core links without the VM layer, but minimal-vmm cannot run here: $(sed -n 's/^SKIP: //p' "$tmp/run.log" | head -n 1)" ;;
*) echo "FAIL: minimal-vmm built from the core alone failed (exit $rc):"; tail -n 20 "$tmp/run.log" ;;
esac
exit $rc
