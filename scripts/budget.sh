# SPDX-License-Identifier: MIT
# The time budget of scripts/check.sh (sourced).  CI stops a run at 90
# minutes, and on a cold cache the builds take much of that (on the machine
# the estimates below were measured on, 2026-12-07: 5 to 6 minutes an x86
# kernel, 7 the debug kernel, 3 the patched QEMU, 3 to 4 an arm64 kernel,
# each with the phase's own tests after it; a machine of the same kind, or
# a loaded one, can take up to twice as long).  So before a phase that
# still has to build its debug kernel, QEMU or arm64 kernels, the run
# estimates when that phase would end, and past the budget it skips the
# phase and says why; the next run keeps this run's builds and runs it.  A
# phase whose builds are in the cache always runs.  The estimates grow with
# how much slower than that machine this one built its first kernel in this
# run.
#
# Uses the caller's budget (seconds; 0: none), check_start (date +%s when
# the run began), primary (the primary kernel base) and arm64_pages (the
# arm64 page sizes of rig-arm64's extra passes).

# The x86 rig kernel's cold build where the estimates were measured, in
# seconds (298 to 323).
budget_reference_build=320

# build_kept SCRIPT [VAR=VALUE...]: whether SCRIPT (kernel/build.sh or
# qemu/build.sh), in that environment, has its build in the cache.
build_kept() {
	local script=$1
	shift
	[ -f "$(env "$@" "$script" --print-dir 2>/dev/null)/.done" ]
}

# budget_build_scale BUILDS: how many times slower this machine builds than
# the reference, from the first "kernel: built in Ns" line of the file
# BUILDS; never below 1, and 1 without a build to go by.
budget_build_scale() {
	awk -v ref="$budget_reference_build" '
		/^kernel: built in [0-9]+s$/ && !secs { secs = $4 + 0 }
		END { f = secs / ref; if (f > 1) printf "%.2f\n", f; else print 1 }' "$1" 2>/dev/null ||
		echo 1
}

# Seconds that PHASE would take to build what the cache lacks and then run,
# on the reference machine; 0 if it builds nothing.
phase_cold_estimate() {
	local base=${1#*-} s=0 size
	case $1 in
	debug-*)
		build_kept kernel/build.sh KBASE="$base" KFLAVOR=debug \
			KFRAGMENTS="$(pwd)/kernel/debug.config" || s=$((430 + 210)) ;;
	qemu-*)
		build_kept qemu/build.sh || s=$((240 + 70)) ;;
	rig-arm64)
		build_kept kernel/build.sh KBASE="$primary" KARCH=arm64 || s=$((s + 210))
		for size in $arm64_pages; do
			build_kept kernel/build.sh KBASE="$primary" KARCH=arm64 KFLAVOR="arm64-$size" \
				KFRAGMENTS="$(pwd)/kernel/arm64-$size.config" || s=$((s + 210))
		done
		[ "$s" -eq 0 ] || s=$((s + 420)) ;;
	esac
	echo "$s"
}

# over_budget PHASE BUILDS: why PHASE does not fit in what is left of the
# budget, with the estimate scaled by budget_build_scale BUILDS; nothing if
# it fits.
over_budget() {
	local need scale used speed
	[ "$budget" -gt 0 ] || return 0
	need=$(phase_cold_estimate "$1")
	[ "$need" -gt 0 ] || return 0
	scale=$(budget_build_scale "$2")
	need=$(awk -v n="$need" -v f="$scale" 'BEGIN { printf "%d\n", n * f + 0.5 }')
	used=$(( $(date +%s) - check_start ))
	[ $((used + need)) -gt "$budget" ] || return 0
	speed=
	[ "$scale" = 1 ] || speed=" on this machine, whose first kernel build of this run took $scale times as long as the estimates assume"
	echo "what it builds is not in the cache yet: building it and running the phase (about $(( (need + 59) / 60 )) minutes$speed) would take this run past its time budget ($((used / 60)) of $((budget / 60)) minutes used); the next run keeps this run's builds and runs it (KVMFAULT_BUDGET=0: no budget)"
}
