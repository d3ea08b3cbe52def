#!/bin/sh
# SPDX-License-Identifier: MIT
# Run kvmfault bench inside the QEMU rig (patched kernel, exit backend).
# usage: bench/rig-bench.sh [kvmfault bench options]
# The rig runs every executable it is given as a test, without arguments,
# so the static bench travels inside a small self-extracting script that
# passes the options.  Needs: make VARIANT=static tools; a rig kernel
# (make -C kernel, or RIG_KERNEL_DIR=...).  RIG_SMP picks the guest CPUs.
# KARCH=arm64 runs the arm64 build (make CROSS_COMPILE=aarch64-linux-gnu-
# VARIANT=static tools) in the arm64 rig.
set -e
here=$(cd "$(dirname "$0")" && pwd)
if [ "${KARCH:-}" = arm64 ]; then
	bin=$here/../build/arm64/static/bin/kvmfault
	build="make CROSS_COMPILE=aarch64-linux-gnu- VARIANT=static tools"
else
	bin=$here/../build/static/bin/kvmfault
	build="make VARIANT=static tools"
fi
[ -x "$bin" ] || { echo "build it first: $build" >&2; exit 2; }
dir=$(mktemp -d /tmp/kf-rig-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
args="${*:--v 1,2,4 -b 4M -m exit,uffd-missing,uffd-minor -r 3}"
{
	echo '#!/bin/sh'
	echo 'n=$(grep -an "^__BIN__$" "$0" | cut -d: -f1)'
	echo 'tail -n +$((n + 1)) "$0" > /tmp/kvmfault && chmod +x /tmp/kvmfault'
	echo "/tmp/kvmfault bench $args > /tmp/bench.out 2>&1; rc=\$?"
	echo 'sed "s/^/KFB /" /tmp/bench.out > /dev/console; exit $rc'
	echo '__BIN__'
	cat "$bin"
} > "$dir/bench"
chmod +x "$dir/bench"
logs=${RIG_LOG_DIR:-/tmp/kf-rig-bench-logs}
RIG_LOG_DIR=$logs RIG_SMP=${RIG_SMP:-4} RIG_TIMEOUT=${RIG_TIMEOUT:-1800} \
	"$here/../kernel/rig.sh" tests "$dir" | grep -v '^\[smp[0-9]*\] \[ '
# the bench's own output, from the serial logs
grep -a -h '^KFB ' "$logs"/serial-smp*.log | sed 's/^KFB //'
