#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# QEMU rig: boot the patched kernel (kernel/build.sh) under
# qemu-system-x86_64 -accel tcg -cpu max (AMD SVM with nested paging, so KVM
# runs inside) and run tests there; with KARCH=arm64, the arm64 kernel under
# qemu-system-aarch64 -M virt,virtualization=on (rig-common.sh).
#
#   rig.sh tests DIR   pack the static executables of DIR into a busybox
#                      initramfs, boot once per vCPU count in $RIG_SMP, run
#                      them with tests/run-tests.sh; the last line is
#                      "rig: N passed, N failed, N skipped" (sums over all
#                      boots; a serial log with a kernel warning, BUG,
#                      lockdep, KASAN or UBSAN report counts as one more
#                      failure) and the exit status is non-zero if anything
#                      failed.  A guest that hangs or dies in a test (QEMU's
#                      software CPU has rare faults of its own) is booted
#                      again from that test, which counts as a rerun; a
#                      test that takes the guest down twice fails, and the
#                      next boot goes on after it.
#
#   rig.sh demo BIN    `make run` where the host has no KVM: one boot runs
#                      scripts/migrate-demo.sh with BIN (a static kvmfault)
#                      inside the guest, prints what it printed and exits
#                      with its status (1 also for a guest that stopped
#                      before the demo ended, or a kernel splat)
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

# RIG_KERNEL_DIR: boot that kernel instead (check-series.sh uses it).
kdir=${RIG_KERNEL_DIR:-$("$here/build.sh" --print-dir)} || exit 2
[ -f "$kdir/.done" ] || die "no kernel built for the current inputs: run 'make -C kernel' first"
why=$(rig_requirements)
[ -z "$why" ] || die "$why"

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
	echo "rig: $KARCH kernel $kdir, $n test programs from $dir"
	# Timeouts grow with how slow the machine is now (calibrated).
	local scale
	scale=$(rig_time_scale)
	RIG_TIMEOUT=${RIG_TIMEOUT:-$(scaled 900 "$scale")}
	TEST_TIMEOUT=${TEST_TIMEOUT:-$(scaled 300 "$scale")}
	echo "rig: time scale $scale${KVMFAULT_QEMU_CPUS:+ (QEMU on host CPUs $KVMFAULT_QEMU_CPUS)}: ${TEST_TIMEOUT}s a test, ${RIG_TIMEOUT}s a boot"

	local tp=0 tf=0 ts=0 tr=0 bad=0 smp log counts rc start secs
	local first boots hung rerun_of idx
	# The x86 rig only: the arm64 kernel has no virtio disk.
	local rig_swap_disk=
	[ "$KARCH" = arm64 ] || rig_swap_disk=$rigdir/swap.img
	# The console falls silent only when the guest hangs: its own watchdog
	# reports a stuck test after TEST_TIMEOUT.
	local rig_idle_secs=$((TEST_TIMEOUT + 120))
	# The guest's order of the tests (its busybox sort, byte order).
	local names
	names=$(cd "$st/tests" && ls | LC_ALL=C sort)
	# shellcheck disable=SC2064 # the path now: rigdir is local
	[ -z "$rig_swap_disk" ] || trap "rm -f '$rig_swap_disk'" EXIT
	for smp in $RIG_SMP; do
		first=0 boots=0 rerun_of=
		while :; do
			log=$rigdir/serial-smp$smp.log
			[ $boots -gt 0 ] && log=$rigdir/serial-smp$smp-boot$((boots + 1)).log
			boots=$((boots + 1))
			start=$(date +%s)
			boot "$smp" "$rigdir/initrd.gz" "$log" \
				"kf.mode=tests kf.timeout=$TEST_TIMEOUT kf.start=$first"
			rc=$?
			secs=$(( $(date +%s) - start ))
			sed -n '/^KF-BEGIN/,/^KF-END/p' "$log" | grep -a -v '^KF-' | sed "s/^/[smp$smp] /"
			counts=$(grep -a '^KF-COUNTS' "$log" | tail -n 1)
			# A kernel splat counts as one failure (in a hung boot, not
			# the hang's stall reports: see rig_check_splat).
			rig_check_splat "$log" "$([ $rc -eq 124 ] && [ -z "$counts" ] && echo hung)" ||
				{ bad=1; tf=$((tf + 1)); }
			if [ -n "$counts" ]; then
				# "KF-COUNTS guest: 5 passed, 0 failed, 1 skipped"
				set -- $(echo "$counts" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped.*/\1 \2 \3/')
				tp=$((tp + $1)); tf=$((tf + $2)); ts=$((ts + $3))
				tr=$((tr + $(sed -n 's/^guest: reruns \([0-9]*\).*/\1/p' "$log" | tail -n 1 | grep . || echo 0)))
				echo "rig: smp$smp: $1 passed, $2 failed, $3 skipped in ${secs}s (serial log $log)"
				break
			fi
			# Hung or died in a test: what finished counts; boot again.
			hung=$(grep -a '^KF-RUN ' "$log" | tail -n 1 | tr -d '\r' | cut -d' ' -f2)
			if [ $rc -eq 124 ]; then
				echo "rig: smp$smp: the guest hung (no console output for ${rig_idle_secs}s, or ${RIG_TIMEOUT}s in all), running ${hung:-no test yet} (serial log $log)"
			else
				echo "rig: smp$smp: the guest died (qemu exit $rc), running ${hung:-no test yet} (serial log $log)"
			fi
			tail -n 20 "$log" | sed 's/^/  | /'
			tp=$((tp + $(sed -n '/^KF-BEGIN/,$p' "$log" | grep -a -c '^PASS ')))
			tf=$((tf + $(sed -n '/^KF-BEGIN/,$p' "$log" | grep -a -c '^FAIL ')))
			ts=$((ts + $(sed -n '/^KF-BEGIN/,$p' "$log" | grep -a -c '^SKIP ')))
			idx=$(echo "$names" | grep -n -x -F "$hung" | cut -d: -f1)
			if [ -z "$hung" ] || [ -z "$idx" ] || [ $boots -ge 4 ]; then
				echo "rig: smp$smp: FAIL: no test to resume from (${boots} boots)"
				bad=1; tf=$((tf + 1))
				break
			fi
			if [ "$hung" = "$rerun_of" ]; then
				echo "FAIL $hung: the guest hung or died in it twice"
				tf=$((tf + 1))
				first=$idx rerun_of=
			else
				echo "rig: smp$smp: booting again from $hung (a rerun)"
				tr=$((tr + 1))
				first=$((idx - 1)) rerun_of=$hung
			fi
			[ "$first" -lt "$(echo "$names" | wc -l)" ] || break
		done
	done
	echo "rig: serial logs: $(ls "$rigdir"/serial-smp*.log | tr '\n' ' ')"
	echo "rig: reruns $tr"
	echo "rig: $tp passed, $tf failed, $ts skipped"
	[ $tf -eq 0 ] && [ $bad -eq 0 ]
}

cmd_demo() {
	local bin=$1 rigdir=${RIG_LOG_DIR:-$CACHE/demo-${KBASE:-6.12}} st log rc status
	[ -f "$bin" ] && [ -x "$bin" ] || die "$bin is not an executable"
	if file -L "$bin" | grep -q 'dynamically linked'; then
		die "$bin is dynamically linked; the rig needs a static kvmfault (make VARIANT=static tools)"
	fi
	mkdir -p "$rigdir"
	st=$rigdir/initramfs
	rm -rf "$st"
	mkdir -p "$st/demo/build/bin" "$st/demo/scripts"
	cp "$bin" "$st/demo/build/bin/kvmfault"
	cp "$here/../scripts/migrate-demo.sh" "$st/demo/scripts/"
	make_initrd "$st" "$rigdir/initrd.gz"
	RIG_TIMEOUT=${RIG_TIMEOUT:-$(scaled 900 "$(rig_time_scale)")}
	log=$rigdir/serial.log
	echo "rig: booting $kdir under QEMU's software CPU, 2 vCPUs, KVM inside (serial log $log)"
	# The demo's own lines only: the kernel's stay in the serial log.
	rig_boot "$kdir" 2 "$rigdir/initrd.gz" "$log" "$RIG_TIMEOUT" loglevel=4 kf.mode=demo
	rc=$?
	echo "rig: what the demo printed (its times are those of KVM nested under QEMU's software CPU, far slower than on hardware):"
	sed -n '/^KF-BEGIN/,/^KF-END/p' "$log" | grep -a -v '^KF-' | tr -d '\r'
	status=$(grep -a '^KF-RC ' "$log" | tail -n 1 | tr -d '\r' | cut -d' ' -f2)
	if [ -z "$status" ]; then
		echo "rig: the guest stopped before the demo ended (QEMU's status $rc); the end of $log:" >&2
		tail -n 20 "$log" | sed 's/^/  | /' >&2
		exit 1
	fi
	rig_check_splat "$log" || exit 1
	exit "$status"
}

case "${1:-}" in
tests) shift; cmd_tests "${1:?usage: rig.sh tests DIR}" ;;
demo) shift; cmd_demo "${1:?usage: rig.sh demo BIN}" ;;
*) echo "usage: rig.sh tests DIR | rig.sh demo BIN" >&2; exit 2 ;;
esac
