#!/bin/sh
# SPDX-License-Identifier: MIT
# Every test of kvmfault, in phases; the last line sums them all:
#   host    the tests on this machine's own KVM
#   asan    the same tests built with AddressSanitizer and UBSan
#   fuzz    the stream and snapshot parsers under libFuzzer, bounded
#   rig     the patched kernel under QEMU with the tests inside (2 and 4
#           vCPUs), after its UAPI values are compared with ours
#   series  each patch applied in turn: checkpatch, build, the kernel_* tests
#   selftests  the kernel's own KVM selftests on the patched kernel, compared
#           with the unpatched kernel: a regression fails; tests that skip,
#           or fail on the unpatched kernel too, count as skipped
#   debug   the rig's tests again (2 vCPUs) on the patched kernel built with
#           lockdep, KASAN, DEBUG_VM and sleep-in-atomic checks
#           (kernel/debug.config): any report in the serial log fails
#   qemu    unchanged QEMU (Debian's, -accel kvm) inside the rig on the
#           patched kernel and on the unpatched control of the same base: a
#           Linux guest boots and verifies its memory, and QEMU's own
#           post-copy migration between two QEMUs keeps it intact
#   rig-arm64  the primary base's series on arm64: the kernel cross-built and
#           booted under qemu-system-aarch64 (virt board at EL2, KVM inside);
#           kvmfault's tests cross-built for arm64 and run inside (summary
#           rig-arm64), then the arm64 KVM selftests, the series' own among
#           them, compared with the unpatched arm64 kernel as in selftests
#           (summary selftests-arm64); and the tests that take the host's
#           page size from the host on a kernel with 64 KiB pages
#           (summary rig-arm64-64k) and, in a full run, 16 KiB pages
#           (rig-arm64-16k; a SKIP by default, for the cold time budget)
# The kernel phases run once per base (kernel/patches/BASE/series: 6.12,
# then 6.1), as rig-6.12, rig-6.1 and so on; by default every base gets
# rig, series and qemu, and the primary base (the newest) also selftests and
# debug: the backport's selftests (about 13 minutes) and its debug kernel
# would take a cold run past its time budget, so they are a SKIP there
# unless asked for.
# KVMFAULT_PHASES="host asan" limits the phases ("rig" is every base's rig,
# "rig-6.1" one base's); KVMFAULT_FULL=1 runs every phase of every base;
# KVMFAULT_BASES="6.1" limits the bases; KVMFAULT_FUZZ_SECONDS sets the
# fuzzing time a harness; KVMFAULT_ARM64_PAGES="16k 64k" sets the host page
# sizes of rig-arm64's extra passes (default 64k; a full run both).
#
# Timeouts follow the machine: each phase measures how slow the machine is
# at its start (scripts/calibrate.sh) and scales its per-test timeouts.
# KVMFAULT_STRESS=1 runs everything with a CPU hog on every core and gives
# the rig guests one host CPU (KVMFAULT_QEMU_CPUS=0): it must pass as well.
# The summary lists each phase's time, and the reruns a phase needed.
set -u
cd "$(dirname "$0")/.." || exit 1

# The kernel bases with a series, newest first.
bases=${KVMFAULT_BASES:-$(for d in kernel/patches/*/series; do
	[ -r "$d" ] && basename "$(dirname "$d")"; done | sort -rV | tr '\n' ' ')}
primary=${bases%% *}
default_phases="host asan fuzz rig series selftests-$primary debug-$primary qemu rig-arm64"
arm64_pages=${KVMFAULT_ARM64_PAGES:-64k}
if [ "${KVMFAULT_FULL:-0}" = 1 ]; then
	default_phases="host asan fuzz rig series selftests debug qemu rig-arm64"
	arm64_pages=${KVMFAULT_ARM64_PAGES:-16k 64k}
fi
phases=""
for p in ${KVMFAULT_PHASES:-$default_phases}; do
	case $p in
	rig|series|selftests|debug|qemu) for b in $bases; do phases="$phases $p-$b"; done ;;
	*) phases="$phases $p" ;;
	esac
done
# The backports' selftests and debug kernels left out of a default run,
# said as such.
not_run=""
if [ -z "${KVMFAULT_PHASES:-}" ] && [ "${KVMFAULT_FULL:-0}" != 1 ]; then
	for b in $bases; do
		[ "$b" = "$primary" ] || not_run="$not_run selftests-$b debug-$b"
	done
fi
jobs=$(nproc 2>/dev/null || echo 2)
log=$(mktemp /tmp/kf-check.XXXXXX)
times=$log.times
: >"$times"
# The kernel builds' times (kernel/build.sh's "kernel: built in Ns").
builds=$log.builds
: >"$builds"
hogs=""
stress=""
cleanup() {
	[ -n "$hogs" ] && kill $hogs 2>/dev/null
	rm -f "$log" "$times" "$builds"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

note() { printf '\n=== %s\n' "$*"; }

# A phase's summary line is "LABEL: N passed, N failed, N skipped".
run_phase() {
	label=$1
	shift
	"$@" 2>&1 | tee -a "$log.$label"
	if ! grep -q "^$label: [0-9]* passed, [0-9]* failed, [0-9]* skipped" "$log.$label"; then
		echo "$label: 0 passed, 1 failed, 0 skipped" | tee -a "$log.$label"
		echo "  ($label ended without its summary line)"
	fi
	grep "^$label: [0-9]* passed" "$log.$label" | tail -n 1 >>"$log"
	grep -a '^kernel: built in [0-9]*s$' "$log.$label" >>"$builds"
	reruns=$(sed -n "s/^$label: reruns \([0-9]*\).*/\1/p" "$log.$label" | tail -n 1)
	[ -n "$reruns" ] && [ "$reruns" -gt 0 ] && echo "$label reruns $reruns" >>"$times"
	rm -f "$log.$label"
}

# host_timeout: seconds a host test may take, 300 times the time scale.
host_timeout() {
	scale=$(scripts/calibrate.sh)
	case $scale in
	[0-9]*) ;;
	*) echo "check: scripts/calibrate.sh gave no time scale ('$scale')" >&2; exit 2 ;;
	esac
	t=$(awk -v f="$scale" 'BEGIN { printf "%d\n", 300 * f + 0.999 }')
	echo "(time scale $scale: ${t}s a test)" >&2
	echo "$t"
}

# relabel FROM TO: a kernel script's summary and reruns lines ("FROM: N
# passed, ..." and "FROM: reruns N") renamed to phase TO.
relabel() {
	sed -u -e "s/^$1: \([0-9]* passed,\)/$2: \1/" -e "s/^$1: reruns /$2: reruns /"
}

# The rig of base $1: the UAPI check, then our tests inside QEMU.
rig_phase() {
	make -s -C kernel check KBASE="$1" TESTS_DIR="$(pwd)/build/static/tests" 2>&1 |
		relabel rig "rig-$1"
}

# The rig of base $1 on its debug kernel: one boot with 2 vCPUs.
debug_phase() {
	make -s -C kernel rig KBASE="$1" KFLAVOR=debug RIG_SMP=2 \
		TESTS_DIR="$(pwd)/build/static/tests" 2>&1 | relabel rig "debug-$1"
}

# The series check of base $1: one test a patch when it passes, a failure
# otherwise.
series_phase() {
	if make -s -C kernel check-series KBASE="$1" TESTS_DIR="$(pwd)/build/static/tests"; then
		echo "series-$1: $(grep -c '^[^#]' "kernel/patches/$1/series") passed, 0 failed, 0 skipped"
	else
		echo "series-$1: 0 passed, 1 failed, 0 skipped"
	fi
}

# The selftests of base $1 (on architecture $2, default x86_64) as phase
# $3 (default selftests-$1): passed, regressions as failed, everything else
# skipped.
selftests_phase() {
	label=${3:-selftests-$1}
	out=$(mktemp /tmp/kf-selftests.XXXXXX)
	make -s -C kernel selftests KBASE="$1" KARCH="${2:-x86_64}" >"$out" 2>&1
	rc=$?
	cat "$out"
	line=$(grep -a "^selftests: total" "$out" | tail -n 1)
	reruns=$(sed -n 's/^selftests: reruns \([0-9]*\).*/\1/p' "$out" | tail -n 1)
	rm -f "$out"
	total=$(echo "$line" | sed -n 's/.*total \([0-9]*\);.*/\1/p')
	pass=$(echo "$line" | sed -n 's/.*[ ;]pass \([0-9]*\).*/\1/p')
	regr=$(echo "$line" | sed -n 's/.*regressions \([0-9]*\).*/\1/p')
	if [ -z "$total" ] || [ -z "$regr" ]; then
		echo "$label: 0 passed, 1 failed, 0 skipped"
		return
	fi
	[ $rc -ne 0 ] && [ "$regr" -eq 0 ] && regr=1
	pass=${pass:-0}
	echo "$label: reruns ${reruns:-0}"
	echo "$label: $pass passed, $regr failed, $((total - pass)) skipped"
}

# Unchanged QEMU in the rig of base $1.
qemu_phase() {
	make -s -C kernel qemu KBASE="$1" 2>&1 | relabel qemu "qemu-$1"
}

# Why the QEMU rig cannot run here; nothing when it can.
rig_missing() {
	if [ ! -f kernel/Makefile ]; then
		echo "kernel/Makefile is missing"
	elif ! command -v qemu-system-x86_64 >/dev/null; then
		echo "qemu-system-x86_64 is not installed (run as root so that make check installs qemu-system-x86)"
	fi
}

# kvmfault's tests, cross-built for arm64, in the arm64 rig (one boot).
rig_arm64_phase() {
	make -s -j"$jobs" CROSS_COMPILE=aarch64-linux-gnu- VARIANT=static tests tools >/dev/null 2>&1 || {
		echo "rig-arm64: the arm64 build failed:"
		make -s CROSS_COMPILE=aarch64-linux-gnu- VARIANT=static tests tools 2>&1 |
			grep -v "statically linked applications" | tail -n 20
		echo "rig-arm64: 0 passed, 1 failed, 0 skipped"
		return
	}
	make -s -C kernel rig KBASE="$primary" KARCH=arm64 RIG_SMP=2 \
		TESTS_DIR="$(pwd)/build/arm64/static/tests" 2>&1 | relabel rig rig-arm64
}

# kvmfault's tests whose assertions follow the host's page size, for the
# arm64 rig with 16 and 64 KiB pages (kernel/arm64-16k.config,
# kernel/arm64-64k.config).  The others assert 4 KiB host pages (exit sizes,
# per-page statistics, region sizes): kernel_eom*, kernel_memfault,
# kernel_swap, memory_fault_host, engine_core, engine_uffd,
# engine_concurrency, engine_hugepage, hot_path, poison, private_mem*,
# syscall_errors, vcpu_stop_join.
arm64_pages_tests="engine_errors engine_exit engine_lifecycle
	engine_races exit_decode format_version guest_assert guest_basic
	guest_exception ipa_size kernel_caps lib_errors migrate_channel
	migrate_faults migrate_postcopy migrate_tags mte snapshot_atomic
	snapshot_restore vcpu_state vcpu_threads vm_memslots vm_region_rollback"

# Those tests in the arm64 rig on a kernel with $1 pages (16k or 64k; one
# boot).
rig_arm64_pages_phase() {
	local label=rig-arm64-$1 dir t
	make -s -j"$jobs" CROSS_COMPILE=aarch64-linux-gnu- VARIANT=static tests >/dev/null 2>&1 || {
		echo "$label: the arm64 build failed (see rig-arm64)"
		echo "$label: 0 passed, 1 failed, 0 skipped"
		return
	}
	dir=$(pwd)/build/arm64/static/tests-$1
	rm -rf "$dir" && mkdir -p "$dir" || return
	for t in $arm64_pages_tests; do
		cp "build/arm64/static/tests/$t" "$dir/" || return
	done
	make -s -C kernel rig KBASE="$primary" KARCH=arm64 KFLAVOR="arm64-$1" \
		KFRAGMENTS="$(pwd)/kernel/arm64-$1.config" RIG_SMP=2 \
		TESTS_DIR="$dir" 2>&1 | relabel rig "$label"
}

# Why the arm64 rig cannot run here; nothing when it can.
arm64_missing() {
	if ! command -v qemu-system-aarch64 >/dev/null; then
		echo "qemu-system-aarch64 is not installed (run as root so that make check installs qemu-system-arm)"
	elif ! command -v aarch64-linux-gnu-gcc >/dev/null; then
		echo "aarch64-linux-gnu-gcc is not installed (run as root so that make check installs gcc-aarch64-linux-gnu)"
	elif [ ! -r /usr/aarch64-linux-gnu/include/stdio.h ]; then
		echo "the arm64 C library headers are not installed (run as root so that make check installs libc6-dev-arm64-cross)"
	elif [ ! -x "${KVMFAULT_CACHE:-/var/tmp/kvmfault}/busybox-arm64/busybox" ]; then
		echo "no arm64 busybox (run as root so that scripts/deps.sh --rig fetches busybox-static:arm64)"
	elif [ ! -r "kernel/selftests-baseline-$primary-arm64.txt" ]; then
		echo "no baseline of the unpatched arm64 kernel (make -C kernel selftests-baseline KBASE=$primary KARCH=arm64)"
	fi
}

# Why kvmfault's own tests cannot be built for arm64; nothing when they can.
arm64_libs_missing() {
	for p in libssl-dev:arm64 libxxhash-dev:arm64; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			echo "$p is not installed (run as root so that scripts/deps.sh --rig installs it)"
	done | head -n 1
}

skip_phase() {
	echo "SKIP $1: $2"
	echo "$1: 0 passed, 0 failed, 1 skipped" >>"$log"
}

# rig-arm64 and its 16k and 64k passes, for one reason.
skip_arm64_rigs() {
	local size
	skip_phase rig-arm64 "$1"
	for size in 16k 64k; do
		skip_phase "rig-arm64-$size" "$1"
	done
}

# PHASE not run at all, for reason $2: every summary it would have given
# (rig-arm64: also its page-size passes and the arm64 selftests).
skip_whole_phase() {
	case $1 in
	rig-arm64) skip_arm64_rigs "$2"; skip_phase selftests-arm64 "$2" ;;
	*) skip_phase "$1" "$2" ;;
	esac
}

deps_flag=""
case " $phases " in *" rig"*|*" series-"*|*" selftests-"*|*" debug-"*|*" fuzz "*|*" qemu-"*) deps_flag=--all ;; esac
scripts/deps.sh $deps_flag || echo "kvmfault: continuing without the missing packages"
if [ ! -e /dev/kvm ]; then
	echo "kvmfault: /dev/kvm is missing: this machine has no KVM; tests that need it will SKIP" >&2
elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "kvmfault: /dev/kvm is not accessible to $(id -un): run as root; tests that need it will SKIP" >&2
fi

for phase in $phases; do
	case $phase in
	host|asan|fuzz|rig-arm64) ;;
	rig-*|series-*|selftests-*|debug-*|qemu-*)
		[ -r "kernel/patches/${phase#*-}/series" ] || {
			echo "unknown kernel base in '$phase' (bases: $bases)" >&2
			exit 2
		} ;;
	*) echo "unknown phase '$phase' (phases: host asan fuzz rig series selftests debug qemu rig-arm64, rig-BASE ...)" >&2
	   exit 2 ;;
	esac
done

if [ "${KVMFAULT_STRESS:-0}" = 1 ]; then
	# Busy loops at normal priority, one per core; the rig guests get
	# one host CPU.  Timeouts grow with the calibration under this load.
	for _ in $(seq "$jobs"); do
		sh -c 'while :; do :; done' &
		hogs="$hogs $!"
	done
	export KVMFAULT_QEMU_CPUS=${KVMFAULT_QEMU_CPUS:-0}
	stress=" (stress mode)"
	note "stress: $jobs CPU hogs (pids$hogs), QEMU on host CPU(s) $KVMFAULT_QEMU_CPUS"
fi

# The time budget (scripts/budget.sh): KVMFAULT_BUDGET seconds (default
# 5100), 0 for none.
budget=${KVMFAULT_BUDGET:-5100}
# shellcheck source=budget.sh
. scripts/budget.sh

# One phase: its tests, its summary line in $log.
do_phase() {
	phase=$1
	case $phase in
	host)
		note "host: tests on this machine's KVM"
		make -s -j"$jobs" all || { echo "host: 0 passed, 1 failed, 0 skipped" >>"$log"; return; }
		run_phase host tests/run-tests.sh -t "$(host_timeout)" -l host build/tests tests/scripts ;;
	asan)
		note "asan: the tests with AddressSanitizer and UBSan"
		make -s -j"$jobs" VARIANT=asan tests || { echo "asan: 0 passed, 1 failed, 0 skipped" >>"$log"; return; }
		ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
			run_phase asan tests/run-tests.sh -t "$(host_timeout)" -l asan build/asan/tests ;;
	fuzz)
		note "fuzz: parsers under libFuzzer"
		if [ ! -x fuzz/run.sh ]; then
			skip_phase fuzz "no fuzz harnesses in this tree"
		elif ! command -v clang >/dev/null; then
			skip_phase fuzz "clang is not installed (apt-get install clang libclang-rt-14-dev)"
		else
			run_phase fuzz fuzz/run.sh "${KVMFAULT_FUZZ_SECONDS:-30}"
		fi ;;
	rig-arm64)
		note "rig-arm64: the patched $primary kernel on arm64 under QEMU: kvmfault's tests, then the KVM selftests against the unpatched kernel's"
		why=$(arm64_missing)
		if [ -n "$why" ]; then
			skip_whole_phase rig-arm64 "$why"
			return
		fi
		why=$(arm64_libs_missing)
		if [ -n "$why" ]; then
			skip_arm64_rigs "$why"
		else
			run_phase rig-arm64 rig_arm64_phase
			for size in 16k 64k; do
				case " $arm64_pages " in
				*" $size "*) run_phase "rig-arm64-$size" rig_arm64_pages_phase "$size" ;;
				*) skip_phase "rig-arm64-$size" "a kernel with $size pages is not in the default run (time budget); KVMFAULT_ARM64_PAGES=\"16k 64k\" or KVMFAULT_FULL=1 runs it" ;;
				esac
			done
		fi
		run_phase selftests-arm64 selftests_phase "$primary" arm64 selftests-arm64 ;;
	rig-*|series-*|selftests-*|debug-*|qemu-*)
		base=${phase#*-}
		case $phase in
		qemu-*) note "$phase: unchanged QEMU in the rig on the patched $base kernel and its control" ;;
		rig-*) note "$phase: the patched $base kernel under QEMU" ;;
		series-*) note "$phase: each patch of the $base series on its own" ;;
		selftests-*) note "$phase: the KVM selftests of $base on the patched kernel" ;;
		debug-*) note "$phase: the patched $base kernel with lockdep and KASAN under QEMU" ;;
		esac
		why=$(rig_missing)
		case $phase in
		selftests-*) [ -r "kernel/selftests-baseline-$base.txt" ] ||
			why="no baseline of the unpatched $base kernel yet (make -C kernel selftests-baseline KBASE=$base)" ;;
		esac
		if [ -n "$why" ]; then
			skip_phase "$phase" "$why"
			return
		fi
		make -s -j"$jobs" VARIANT=static tests tools ||
			{ echo "$phase: 0 passed, 1 failed, 0 skipped" >>"$log"; return; }
		case $phase in
		rig-*) run_phase "$phase" rig_phase "$base" ;;
		series-*) run_phase "$phase" series_phase "$base" ;;
		selftests-*) run_phase "$phase" selftests_phase "$base" ;;
		debug-*) run_phase "$phase" debug_phase "$base" ;;
		qemu-*) run_phase "$phase" qemu_phase "$base" ;;
		esac ;;
	esac
}

check_start=$(date +%s)
for phase in $phases; do
	phase_start=$(date +%s)
	why=$(over_budget "$phase" "$builds")
	if [ -n "$why" ]; then
		note "$phase"
		skip_whole_phase "$phase" "$why"
		continue
	fi
	do_phase "$phase"
	echo "$phase $(( $(date +%s) - phase_start ))s" >>"$times"
done
for phase in $not_run; do
	note "$phase"
	skip_phase "$phase" "a backport's ${phase%-*} phase is not in the default run (time budget); KVMFAULT_PHASES=$phase or KVMFAULT_FULL=1 runs it"
done

note "summary"
cat "$log"
echo "phase times: $(awk '$2 != "reruns" { printf "%s%s %s", sep, $1, $2; sep = ", " }' "$times"), total $(( $(date +%s) - check_start ))s$(awk '$2 == "reruns" { printf "; %s needed %s rerun(s)", $1, $3 }' "$times")$stress"
awk '{ p += $2; f += $4; s += $6 } END {
	printf "%d passed, %d failed, %d skipped\n", p, f, s; exit f > 0 }' "$log"
