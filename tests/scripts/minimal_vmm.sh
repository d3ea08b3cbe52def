#!/bin/sh
# SPDX-License-Identifier: MIT
# examples/minimal-vmm as built by make: a position independent VMM with
# its own KVM ioctls that restores its guest lazily through the core
# alone.  It passes (0), fails, or skips (4, "SKIP: reason") where this
# machine has no usable KVM or userfaultfd; this script says the same.
# usage: minimal_vmm.sh [PROGRAM]   (default build/examples/minimal-vmm)
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
prog=${1:-$here/build/examples/minimal-vmm}
if [ ! -x "$prog" ]; then
	echo "FAIL: $prog is missing: build it with make"
	exit 1
fi
if command -v readelf >/dev/null &&
	! readelf -h "$prog" | grep -q 'Type:.*DYN'; then
	echo "FAIL: $prog is not position independent"
	exit 1
fi
"$prog"
