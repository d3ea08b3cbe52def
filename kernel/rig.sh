#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# QEMU rig: boot the patched kernel (kernel/build.sh) under
# qemu-system-x86_64 -accel tcg -cpu max (AMD SVM with nested paging, so KVM
# runs inside) and run tests there.
#
#   rig.sh tests DIR   pack the static executables of DIR into a busybox
#                      initramfs, boot once per vCPU count in $RIG_SMP, run
#                      them with tests/run-tests.sh; the last line is
#                      "rig: N passed, N failed, N skipped" (sums over all
#                      boots; a boot that hung or died, and a serial log with
#                      a kernel warning, BUG, lockdep, KASAN or UBSAN report,
#                      each count as one more failure) and the exit status is
#                      non-zero if anything failed.
#
# Serial logs stay in $KVMFAULT_CACHE/rig/ for reading.  RIG_TIMEOUT (a
# boot) and TEST_TIMEOUT (a test) default to 900 s and 300 s times the
# machine's time scale (rig-common.sh).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${KVMFAULT_CACHE:-/var/tmp/kvmfault}
RIG_SMP=${RIG_SMP:-2 4}
RIG_MEM=${RIG_MEM:-2G}
# shellcheck source=rig-common.sh
. "$here/rig-common.sh"

die() { echo "rig: error: $*" >&2; exit 2; }

# RIG_KERNEL_DIR: boot that bzImage instead (check-series.sh uses it).
kdir=${RIG_KERNEL_DIR:-$("$here/build.sh" --print-dir)} || exit 2
[ -f "$kdir/.done" ] || die "no kernel built for the current inputs: run 'make -C kernel' first"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: make -C kernel deps"
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing: make -C kernel deps (busybox-static)"
file -L "$BUSYBOX" 2>/dev/null | grep -q 'dynamically linked' &&
	die "$BUSYBOX is dynamically linked: install busybox-static"

# boot SMP INITRD LOG APPEND...: one boot of the rig kernel.
boot() {
	local smp=$1 initrd=$2 log=$3
	shift 3
	rig_boot "$kdir" "$smp" "$initrd" "$log" "$RIG_TIMEOUT" loglevel=7 "$@"
}

cmd_tests() {
	local dir=$1
	[ -d "$dir" ] || die "TESTS_DIR $dir is not a directory"
	local rigdir=${RIG_LOG_DIR:-$CACHE/rig-${KBASE:-6.12}$( [ "${KFLAVOR:-rig}" = rig ] || echo "-$KFLAVOR")}
	mkdir -p "$rigdir"
	local st=$rigdir/initramfs
	rm -rf "$st" "$rigdir"/serial-smp*.log
	mkdir -p "$st/tests"
	local n=0 f
	for f in "$dir"/*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		if file -L "$f" | grep -q 'dynamically linked'; then
			die "$f is dynamically linked; the rig needs static executables (VARIANT=static)"
		fi
		cp "$f" "$st/tests/"
		n=$((n + 1))
	done
	[ $n -gt 0 ] || die "no executables in $dir"
	make_initrd "$st" "$rigdir/initrd.gz"
	echo "rig: kernel $kdir/bzImage, $n test programs from $dir"
	# Timeouts grow with how slow the machine is now (calibrated).
	local scale
	scale=$(rig_time_scale)
	RIG_TIMEOUT=${RIG_TIMEOUT:-$(scaled 900 "$scale")}
	TEST_TIMEOUT=${TEST_TIMEOUT:-$(scaled 300 "$scale")}
	echo "rig: time scale $scale${KVMFAULT_QEMU_CPUS:+ (QEMU on host CPUs $KVMFAULT_QEMU_CPUS)}: ${TEST_TIMEOUT}s a test, ${RIG_TIMEOUT}s a boot"

	local tp=0 tf=0 ts=0 tr=0 bad=0 smp log counts rc start secs
	local rig_swap_disk=$rigdir/swap.img
	# shellcheck disable=SC2064 # the path now: rigdir is local
	trap "rm -f '$rig_swap_disk'" EXIT
	for smp in $RIG_SMP; do
		log=$rigdir/serial-smp$smp.log
		start=$(date +%s)
		boot "$smp" "$rigdir/initrd.gz" "$log" "kf.mode=tests kf.timeout=$TEST_TIMEOUT"
		rc=$?
		secs=$(( $(date +%s) - start ))
		sed -n '/^KF-BEGIN/,/^KF-END/p' "$log" | grep -a -v '^KF-' | sed "s/^/[smp$smp] /"
		counts=$(grep -a '^KF-COUNTS' "$log" | tail -n 1)
		# A boot without results counts as one failure.
		if [ $rc -eq 124 ]; then
			echo "rig: smp$smp: FAIL: guest timed out after ${RIG_TIMEOUT}s, running $(grep -a '^KF-RUN ' "$log" | tail -n 1 | cut -d' ' -f2) (serial log $log)"
			tail -n 20 "$log" | sed 's/^/  | /'
			bad=1
			tf=$((tf + 1))
		elif [ -z "$counts" ]; then
			echo "rig: smp$smp: FAIL: guest died before reporting results (qemu exit $rc, serial log $log)"
			tail -n 30 "$log" | sed 's/^/  | /'
			bad=1
			tf=$((tf + 1))
		else
			# "KF-COUNTS guest: 5 passed, 0 failed, 1 skipped"
			set -- $(echo "$counts" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped.*/\1 \2 \3/')
			tp=$((tp + $1)); tf=$((tf + $2)); ts=$((ts + $3))
			tr=$((tr + $(sed -n 's/^guest: reruns \([0-9]*\).*/\1/p' "$log" | tail -n 1 | grep . || echo 0)))
			echo "rig: smp$smp: $1 passed, $2 failed, $3 skipped in ${secs}s (serial log $log)"
		fi
		# A kernel splat counts as one failure.
		rig_check_splat "$log" || { bad=1; tf=$((tf + 1)); }
	done
	echo "rig: serial logs: $(ls "$rigdir"/serial-smp*.log | tr '\n' ' ')"
	echo "rig: reruns $tr"
	echo "rig: $tp passed, $tf failed, $ts skipped"
	[ $tf -eq 0 ] && [ $bad -eq 0 ]
}

case "${1:-}" in
tests) shift; cmd_tests "${1:?usage: rig.sh tests DIR}" ;;
*) echo "usage: rig.sh tests DIR" >&2; exit 2 ;;
esac
