#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Regression run: build the KVM selftests that ship in the same source
# (tools/testing/selftests/kvm, static, against the patched kernel's
# headers), run them in the QEMU rig on the patched kernel, and compare with
# kernel/selftests-baseline.txt (the unpatched kernel).
#
# The guest runs the tests in the baseline's order, one line per result on
# the serial console.  If the guest dies or stops making progress (a hard
# lockup), the test that was running is recorded as "hang" and the run
# resumes with the next test in a fresh boot.
#
# The verdict is statistical, never one sample: a test that passes in the
# baseline and not here is a candidate.  Candidates are rerun, round after
# round, on this kernel and on the same kernel without the series (the
# control), interleaved, up to ST_RERUNS rounds.  A candidate that passes
# here in some round, or fails on the control in some round, is timing-
# sensitive or a property of the rig, and is reported as such; it is a
# regression (exit status 1) only if it failed here every time and passed
# on the control every time.  The baseline lists the tests known to be
# timing-sensitive under the software CPU, with the evidence.
#
# usage: selftests.sh             compare the patched kernel with the baseline
#        selftests.sh --baseline  run every selftest of the architecture on
#                                 the unpatched kernel and write the
#                                 baseline of KBASE (and KARCH)
#
# With KARCH=arm64 the arm64 selftests, cross-compiled, run on the arm64 rig
# kernel, against selftests-baseline-KBASE-arm64.txt.
#
# env: KVMFAULT_CACHE, KBASE (6.12 or 6.1), KARCH (x86_64 or arm64),
#      ST_TIMEOUT (per test, 120 s times the time scale; arm64: 300 s),
#      ST_STALL (seconds without serial output before the guest counts as
#      dead, 300 times the time scale), ST_SMP (2), ST_RERUNS (3),
#      ST_ONLY (space separated test names, for a partial run), ST_ALL=1
#      (every test, without the time budget's arguments and
#      exclusions; for a baseline and a comparison alike), ST_SHADOW=0
#      (x86: no second boot with shadow paging for the series' own test),
#      KVMFAULT_QEMU_CPUS, KVMFAULT_TIME_SCALE (rig-common.sh)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${KVMFAULT_CACHE:-/var/tmp/kvmfault}
ST_SMP=${ST_SMP:-2}
ST_RERUNS=${ST_RERUNS:-3}
BASE=${KBASE:?KBASE: the kernel base, 6.12 or 6.1}
KARCH=${KARCH:-x86_64}
case $KARCH in
x86_64) arch_suffix= mkarch=x86_64 control_flavor=base cross=() ;;
arm64) arch_suffix=-arm64 mkarch=aarch64 control_flavor=arm64-base
	cross=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-) ;;
*) echo "selftests: error: KARCH is x86_64 or arm64, not '$KARCH'" >&2; exit 2 ;;
esac
baseline=$here/selftests-baseline-$BASE$arch_suffix.txt
# Tests the rig runs with arguments, or not at all, to fit its time budget
# under QEMU's software CPU (both kernels alike; the baseline says so).
# Excluded: tests that outlast their timeout on the unpatched kernel too, so
# that their result says nothing, and tests of what the series does not
# touch.  Shrunk: tests of memory faults whose default size only costs time.
declare -A st_args=() st_excluded=()
if [ "$KARCH" = arm64 ] && [ "${ST_ALL:-0}" != 1 ]; then
	# Every guest mode the CPU supports (seven with -cpu max) takes
	# longer than the timeout: run the default one, 4K pages, 40-bit IPA.
	st_args[aarch64/page_fault_test]="-m 6"
	# 1 GiB a vCPU by default: 130-200 s each under the software CPU.
	st_args[demand_paging_test]="-b 128M"
	st_args[memslot_modification_stress_test]="-b 128M"
	st_excluded=(
		[dirty_log_test]="longer than its timeout (300 s) under the software CPU"
		[kvm_page_table_test]="longer than its timeout (300 s) under the software CPU"
		[dirty_log_perf_test]="a benchmark, 165 s under the software CPU"
		[memslot_perf_test]="a benchmark, 203 s under the software CPU"
		[rseq_test]="tests rseq, not memory; 106 s under the software CPU"
	)
elif [ "$KARCH/$BASE" = x86_64/6.12 ] && [ "${ST_ALL:-0}" != 1 ]; then
	# 32 iterations of each log mode outlast the timeout (stopped at
	# iteration 19 of the first mode on both kernels); 4 took 74 s, and
	# it asks for more than 2.
	st_args[dirty_log_test]="-i 3"
	st_excluded=(
		[hardware_disable_test]="creates and kills VMs for a fixed count, not memory faults; longer than its timeout (305 s) on both kernels"
		[memslot_perf_test]="a benchmark whose own alarm fires under the software CPU; longer than its timeout (278 s) on both kernels"
		[rseq_test]="tests rseq, not memory; 71-279 s under the software CPU"
	)
fi
mode=compare
if [ "${1:-}" = --baseline ]; then
	mode=baseline
	# The unpatched kernel of the same config.
	export KFLAVOR=$control_flavor KSERIES=/dev/null
fi
# shellcheck source=rig-common.sh
. "$here/rig-common.sh"
# shellcheck source=verdict.sh
. "$here/verdict.sh"

die() { echo "selftests: error: $*" >&2; exit 2; }

if [ "$mode" = baseline ]; then
	kdir=$("$here/build.sh" | tail -n 1) || die "cannot build the unpatched $BASE kernel"
else
	kdir=${RIG_KERNEL_DIR:-$("$here/build.sh" --print-dir)}
	[ -r "$baseline" ] || die "no baseline for $BASE $KARCH ($baseline): make -C kernel selftests-baseline KBASE=$BASE KARCH=$KARCH"
fi
[ -f "$kdir/.done" ] || die "no kernel built for the current inputs: make -C kernel"
src=$CACHE/src-$BASE
[ -d "$src/tools/testing/selftests/kvm" ] || die "$src missing: make -C kernel"

work=$CACHE/selftests-$BASE-${KFLAVOR:-rig}$arch_suffix
out=$work/build
mkdir -p "$work" "$out"

# --- build, from the source of the kernel under test ------------------------
# The series adds and changes selftests: put the source tree in the state of
# this kernel (the series, or none for the baseline), whatever built last.
"$here/build.sh" --apply-only >/dev/null 2>&1 ||
	die "cannot put $src in the state of the kernel under test"
echo "selftests: building tools/testing/selftests/kvm (static) against $kdir/headers"
start=$(date +%s)
# A test whose source no longer compiles must not run as its last build:
# drop the binaries (the objects stay for an incremental build; make
# relinks what still builds), so that it counts as not built.
find "$out" -type f -perm -u+x -delete 2>/dev/null
make -k -j"$(nproc)" -C "$src/tools/testing/selftests/kvm" OUTPUT="$out" "${cross[@]}" \
	INSTALL_HDR_PATH="$kdir/headers" KHDR_INCLUDES="-isystem $kdir/headers/include" \
	EXTRA_CFLAGS=-static >"$work/build.log" 2>&1
# 6.1's steal_time.c includes <asm/kvm.h> without <linux/stddef.h>, which
# the installed 6.1 headers need for __DECLARE_FLEX_ARRAY: build it with
# the header forced in (a build fix only, the test is unchanged).
if [ "$BASE" = 6.1 ]; then
	make -C "$src/tools/testing/selftests/kvm" OUTPUT="$out" \
		INSTALL_HDR_PATH="$kdir/headers" KHDR_INCLUDES="-isystem $kdir/headers/include" \
		EXTRA_CFLAGS="-static -include $kdir/headers/include/linux/stddef.h" \
		"$out/steal_time" >>"$work/build.log" 2>&1
fi
echo "selftests: build took $(( $(date +%s) - start ))s (log $work/build.log)"

# --- the list: the baseline's order, or the Makefile's tests -------------
# arch_tests: TEST_GEN_PROGS_<arch> and TEST_PROGS_<arch>, in order.
arch_tests() {
	sed -n -E "s/^TEST_(GEN_)?PROGS_$mkarch[[:space:]]*\\+?=[[:space:]]*([^[:space:]]+).*/\\2/p" \
		"$src/tools/testing/selftests/kvm/Makefile"
}
tests=()
while read -r name _; do
	case "$name" in ''|'#'*|TEST) continue ;; esac
	if [ -n "${ST_ONLY:-}" ] && ! echo " $ST_ONLY " | grep -q " $name "; then
		continue
	fi
	[ -n "${st_excluded[$name]:-}" ] && continue
	tests+=("$name")
done < <(if [ "$mode" = baseline ]; then arch_tests; else cat "$baseline"; fi)
# Tests the series adds (in the Makefile, not in the baseline) run too:
# they have no unpatched result, so they must simply pass.
added=()
if [ "$mode" = compare ]; then
	for t in $(arch_tests); do
		[ -n "$(result_of "$baseline" "$t")" ] && continue
		[ -n "${st_excluded[$t]:-}" ] && continue
		if [ -n "${ST_ONLY:-}" ] && ! echo " $ST_ONLY " | grep -q " $t "; then
			continue
		fi
		added+=("$t")
		tests+=("$t")
	done
fi

st=$work/initramfs
rm -rf "$st"
mkdir -p "$st/selftests/$mkarch" "$st/bin"
: >"$st/selftests/list"
notbuilt=()
for t in "${tests[@]}"; do
	if [ -x "$out/$t" ]; then
		cp "$out/$t" "$st/selftests/$t"
	elif [ -x "$src/tools/testing/selftests/kvm/$t" ] && [ "${t%.sh}" != "$t" ]; then
		cp "$src/tools/testing/selftests/kvm/$t" "$st/selftests/$t"
	else
		notbuilt+=("$t")
		continue
	fi
	echo "$t ${st_args[$t]:-}" >>"$st/selftests/list"
done
# x86_64/nx_huge_pages_test.sh is a bash script; busybox has no "bash"
# applet, its sh runs it.
printf '#!/bin/sh\nexec /bin/sh "$@"\n' >"$st/bin/bash"
# ... and it calls sudo; the guest runs everything as root.
printf '#!/bin/sh\nexec "$@"\n' >"$st/bin/sudo"
chmod +x "$st/bin/bash" "$st/bin/sudo"
make_initrd "$st" "$work/initrd.gz"
nlist=$(wc -l <"$st/selftests/list")
echo "selftests: ${#tests[@]} tests in the baseline, $nlist built, ${#notbuilt[@]} did not build: ${notbuilt[*]:-none}"
for t in "${!st_excluded[@]}"; do
	echo "selftests: not run: $t: ${st_excluded[$t]} (ST_ALL=1 runs it)"
done
for t in "${!st_args[@]}"; do
	echo "selftests: $t runs with '${st_args[$t]}' (ST_ALL=1: without)"
done

# --- run, resuming after a dead guest ----------------------------------------
scale=$(rig_time_scale)
# arm64 runs a whole software CPU per vCPU at EL2 and EL1: slower tests.
ST_TIMEOUT=${ST_TIMEOUT:-$(scaled "$([ "$KARCH" = arm64 ] && echo 300 || echo 120)" "$scale")}
ST_STALL=${ST_STALL:-$(scaled 300 "$scale")}
echo "selftests: time scale $scale${KVMFAULT_QEMU_CPUS:+ (QEMU on host CPUs $KVMFAULT_QEMU_CPUS)}: ${ST_TIMEOUT}s a test, ${ST_STALL}s of silence is a dead guest"

# run_list KDIR INITRD LIST RESULTS LOGPREFIX [APPEND]: run the tests of LIST
# (the /selftests/list packed in INITRD) on the kernel of KDIR, with APPEND on
# its command line, append to RESULTS.
run_list() {
local kdir=$1 initrd=$2 list=$3 results=$4 prefix=$5 append=${6:-}
local nlist start_idx boot run_start log qpid last stalled shown n size
local done_idx began hung_idx hung lastk
nlist=$(wc -l <"$list")
: >"$results"
rm -f "$work/serial-$prefix"*.log
start_idx=0
boot=0
run_start=$(date +%s)
while [ "$start_idx" -lt "$nlist" ]; do
	boot=$((boot + 1))
	log=$work/serial-$prefix$boot.log
	RIG_MEM=2G rig_qemu_cmd "$kdir" "$ST_SMP" "$initrd" \
		"kf.mode=selftests kf.start=$start_idx kf.timeout=$ST_TIMEOUT${append:+ $append}"
	timeout --foreground -k 10 $(( nlist * (ST_TIMEOUT + 30) + 120 )) \
		$(rig_qemu_prefix) "${rig_cmd[@]}" </dev/null >"$log" 2>&1 &
	qpid=$!
	last=0
	stalled=0
	shown=0
	while kill -0 "$qpid" 2>/dev/null; do
		sleep 5
		n=$(grep -a -c '^KF-ST-END ' "$log")
		if [ "$n" -gt "$shown" ]; then
			grep -a '^KF-ST-END ' "$log" | sed -n "$((shown + 1)),${n}p" |
				cut -c1-140 | sed 's/^KF-ST-END /selftests: ... /'
			shown=$n
		fi
		size=$(stat -c %s "$log")
		if [ "$size" != "$last" ]; then
			last=$size
			stalled=0
		else
			stalled=$((stalled + 5))
			if [ "$stalled" -ge "$ST_STALL" ]; then
				echo "selftests: boot $boot: no serial output for ${ST_STALL}s, killing the guest"
				kill "$qpid" 2>/dev/null
				sleep 2
				kill -9 "$qpid" 2>/dev/null
				break
			fi
		fi
	done
	wait "$qpid" 2>/dev/null
	# Results of this boot.
	grep -a '^KF-ST-END ' "$log" | while read -r _ idx name rc secs note; do
		rc=${rc#rc=}
		secs=${secs#secs=}
		note=${note#note=}
		case "$rc" in
		0) res=pass ;;
		4) res=skip ;;
		124|143) res=timeout ;;
		*) res=fail ;;
		esac
		printf '%-46s %-8s %4s %6s  %s\n' "$name" "$res" "$rc" "$secs" "$note" >>"$results"
	done
	done_idx=$(grep -a '^KF-ST-END ' "$log" | tail -n 1 | awk '{print $2}')
	done_idx=${done_idx:-$start_idx}
	if grep -aq '^KF-ST-DONE' "$log"; then
		start_idx=$nlist
	else
		# The guest died in the test that began last (or, if none began
		# after the last result, in the next one: never loop).
		began=$(grep -a '^KF-ST-BEGIN ' "$log" | tail -n 1 | awk '{print $2}')
		hung_idx=$((done_idx + 1))
		if [ -n "$began" ] && [ "$began" -gt "$done_idx" ]; then
			hung_idx=$began
		fi
		hung=$(sed -n "${hung_idx}p" "$list" | awk '{print $1}')
		lastk=$(grep -a -E '^\[ *[0-9.]+\]' "$log" | tail -n 1 | cut -c1-100)
		printf '%-46s %-8s %4s %6s  %s\n' "$hung" hang -1 - "guest died; last kernel line: $lastk" >>"$results"
		echo "selftests: $hung: guest died or hung (serial log $log); resuming after it"
		start_idx=$hung_idx
	fi
done
echo "selftests: $boot boot(s), $(( $(date +%s) - run_start ))s"
}

results=$work/results.txt
rm -f "$work"/serial-*.log
run_list "$kdir" "$work/initrd.gz" "$st/selftests/list" "$results" ""

echo "selftests: results:"
sed 's/^/  /' "$results"

if [ "$mode" = baseline ]; then
	counts=$(awk '{print $2}' "$results" | sort | uniq -c | awk '{printf "%s %s, ", $2, $1}')
	{
		echo "# Per-test results of the KVM selftests of $(basename "$(readlink -f "$src")") on the"
		echo "# UNPATCHED $KARCH rig kernel (KSERIES=/dev/null, rig config), QEMU TCG -cpu max"
		echo "# -smp $ST_SMP -m 2G, ${ST_TIMEOUT}s per test, written by"
		echo "# 'kernel/selftests.sh --baseline' (KBASE=$BASE KARCH=$KARCH) on $(date -u +%Y-%m-%d)."
		echo "# kernel/selftests.sh reruns a test that passes here and does not pass on"
		echo "# the patched kernel (see verdict.sh)."
		for t in "${!st_excluded[@]}"; do
			echo "# not run: $t: ${st_excluded[$t]}"
		done
		for t in "${!st_args[@]}"; do
			echo "# arguments: $t ${st_args[$t]}"
		done
		printf '%-46s %-8s %4s %6s  %s\n' TEST RESULT RC SECS NOTE
		cat "$results"
		echo "# counts: total $(wc -l <"$results"); ${counts%, }; not built ${#notbuilt[@]}: ${notbuilt[*]:-none}"
	} >"$baseline"
	echo "selftests: wrote $baseline"
	exit 0
fi

# --- compare with the baseline -----------------------------------------------
regressions=0
added_failed=0
candidates=()
fixed=""
echo "selftests: comparison with $(basename "$baseline") (unpatched kernel):"
for t in "${tests[@]}"; do
	base=$(result_of "$baseline" "$t")
	ours=$(result_of "$results" "$t")
	ours=${ours:-notbuilt}
	if [ -z "$base" ]; then
		echo "  added by the series: $t: $ours"
		[ "$ours" = pass ] || added_failed=$((added_failed + 1))
	elif [ "$base" = pass ] && [ "$ours" != pass ]; then
		regressions=$((regressions + 1))
		candidates+=("$t")
		echo "  vs baseline: $t: baseline pass, here $ours: $(awk -v t="$t" '$1 == t {$1=$2=$3=$4=""; print}' "$results" | sed 's/^ *//')"
	elif [ "$base" != pass ] && [ "$ours" = pass ]; then
		fixed="$fixed $t($base)"
	fi
done
[ -n "$fixed" ] && echo "  pass here, not in the baseline (rig config, e.g. THP/HUGETLBFS/RSEQ):$fixed"

# --- the verdict: rerun the candidates here and on the control ----------
# Tests the baseline classifies as timing-sensitive ("# timing: NAME: why").
timing_known=$(sed -n 's/^# timing: \([^:]*\):.*/\1/p' "$baseline" | tr '\n' ' ')
for t in $timing_known; do
	ours=$(result_of "$results" "$t")
	[ -n "$ours" ] && echo "  timing-sensitive (baseline): $t: here $ours"
done

# verdict_rerun ROUND OURS_OUT CONTROL_OUT TEST...: one round on each kernel.
verdict_rerun() {
	local round=$1 ours_out=$2 ctl_out=$3 t
	shift 3
	: >"$st/selftests/list"
	for t in "$@"; do
		[ -e "$st/selftests/$t" ] && echo "$t ${st_args[$t]:-}" >>"$st/selftests/list"
	done
	make_initrd "$st" "$work/initrd-rerun.gz"
	run_list "$kdir" "$work/initrd-rerun.gz" "$st/selftests/list" "$ours_out" "rerun$round-"
	run_list "$ckdir" "$work/initrd-rerun.gz" "$st/selftests/list" "$ctl_out" "control$round-"
}

reruns=0
if [ "$regressions" -gt 0 ] && [ "${ST_CONTROL:-1}" != 0 ] && [ -z "${KSERIES:-}" ]; then
	echo "selftests: $regressions candidate(s); rerunning them here and on the unpatched rig kernel (control), up to $ST_RERUNS rounds"
	ckdir=$(KFLAVOR=$control_flavor KSERIES=/dev/null "$here/build.sh" | tail -n 1) ||
		die "cannot build the control kernel"
	verdict_run "$results" "$timing_known" "${candidates[@]}"
	regressions=$verdict_regressions
	reruns=$verdict_reruns
fi

# --- shadow paging ------------------------------------------------------------
# The rig's CPU has nested paging, so KVM's own walk of guest page tables
# (shadow paging), which the series changes, runs only with kvm_amd.npt=0:
# one more boot runs the series' own test so.  The
# guest prints the parameter; a boot that did not take it fails the run.
shadow_failed=0
if [ "$mode" = compare ] && [ "$KARCH" = x86_64 ] && [ "${ST_SHADOW:-1}" != 0 ]; then
	: >"$st/selftests/list"
	# Only if this run built and packed it (ST_ONLY already applied).
	for t in x86_64/memory_fault_exits_test; do
		[ -e "$st/selftests/$t" ] && echo "$t ${st_args[$t]:-}" >>"$st/selftests/list"
	done
	if [ -s "$st/selftests/list" ]; then
		make_initrd "$st" "$work/initrd-shadow.gz"
		echo "selftests: shadow paging (kvm_amd.npt=0): $(awk '{print $1}' "$st/selftests/list" | tr '\n' ' ')"
		run_list "$kdir" "$work/initrd-shadow.gz" "$st/selftests/list" \
			"$work/results-shadow.txt" shadow- kvm_amd.npt=0
		if ! grep -a -q '^KF-PARAM npt=\(N\|0\)' "$work"/serial-shadow-*.log; then
			echo "selftests: shadow paging: the guest did not run with kvm_amd.npt=0 ($(grep -a -h '^KF-PARAM' "$work"/serial-shadow-*.log | head -n 1))"
			shadow_failed=1
		fi
		while read -r name res _; do
			echo "  shadow paging: $name: $res"
			[ "$res" = pass ] || shadow_failed=$((shadow_failed + 1))
		done <"$work/results-shadow.txt"
	fi
fi

# --- kernel splats, per test, on this kernel (first run and reruns) -------
splats=0
for log in "$work"/serial-[0-9]*.log "$work"/serial-rerun*.log "$work"/serial-shadow-*.log; do
	[ -f "$log" ] || continue
	if grep -a -E "$SPLAT_RE" "$log" >/dev/null; then
		splats=1
		echo "selftests: kernel splat in $log:"
		awk '/^KF-ST-BEGIN/ {t=$3} /^\[ *[0-9.]+\]/ {print t ": " $0}' "$log" |
			grep -a -E -A 8 "${SPLAT_RE#^}" |
			head -n 40 | sed 's/^/  ! /'
	fi
done
counts=$(awk '{print $2}' "$results" | sort | uniq -c | awk '{printf "%s %s, ", $2, $1}')
# A test the series adds and that does not pass counts as a regression, on
# either MMU.
regressions=$((regressions + added_failed + shadow_failed))
echo "selftests: results in $results"
echo "selftests: reruns $reruns"
echo "selftests: total $(wc -l <"$results"); ${counts%, }; not built ${#notbuilt[@]}; regressions $regressions"
[ "$regressions" -eq 0 ] && [ "$splats" -eq 0 ]
