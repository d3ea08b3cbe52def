# SPDX-License-Identifier: GPL-2.0
#
# The regression verdict of selftests.sh (sourced, bash): statistical, never
# one sample.  A candidate (a test that passes in the baseline and did not
# pass on the first run here) is rerun, round after round, on this kernel
# and on the control (the same kernel without the series), until it is
# explained or ST_RERUNS rounds have run.  It is a regression only if it
# failed here and passed on the control in every round.
#
# verdict_run FIRST_RESULTS TIMING_KNOWN CANDIDATE...
#   FIRST_RESULTS  results file of the first run ("NAME RESULT ...")
#   TIMING_KNOWN   space separated tests the baseline calls timing-sensitive
#   The caller defines  verdict_rerun ROUND OURS_OUT CONTROL_OUT TEST...,
#   which runs the TESTs once on each kernel and writes both results files.
#   Sets verdict_regressions and verdict_reruns (test runs on our kernel).

# result_of FILE TEST: the result column of TEST in FILE.
result_of() { awk -v t="$2" '$1 == t {print $2}' "$1" 2>/dev/null; }

verdict_run() {
	local first=$1 timing_known=$2 dir t ours ctl round=0
	shift 2
	local -a candidates=("$@") pending=("$@") next
	local -A history=() why=()

	dir=$(mktemp -d /tmp/kf-verdict.XXXXXX)
	verdict_reruns=0
	while [ ${#pending[@]} -gt 0 ] && [ "$round" -lt "${ST_RERUNS:-3}" ]; do
		round=$((round + 1))
		verdict_reruns=$((verdict_reruns + ${#pending[@]}))
		verdict_rerun "$round" "$dir/ours-$round" "$dir/control-$round" "${pending[@]}"
		next=()
		for t in "${pending[@]}"; do
			ours=$(result_of "$dir/ours-$round" "$t")
			ctl=$(result_of "$dir/control-$round" "$t")
			history[$t]="${history[$t]:-} round $round: here ${ours:-none}, control ${ctl:-none};"
			if [ "$ours" = pass ]; then
				why[$t]="timing-sensitive: passes here on a rerun"
			elif [ "$ctl" != pass ]; then
				why[$t]="fails on the unpatched rig kernel too (${ctl:-none})"
			else
				next+=("$t")
			fi
		done
		pending=("${next[@]}")
	done
	rm -rf "$dir"

	verdict_regressions=0
	for t in "${candidates[@]}"; do
		if [ -z "${why[$t]:-}" ]; then
			verdict_regressions=$((verdict_regressions + 1))
			echo "  REGRESSION $t: first run $(result_of "$first" "$t");${history[$t]:-} fails here every time, passes on the control every time"
			continue
		fi
		echo "  not a regression: $t: ${why[$t]} (first run $(result_of "$first" "$t");${history[$t]})"
		case " $timing_known " in
		*" $t "*) ;;
		*) echo "    ($t is not in the baseline's timing-sensitive list: add it there with this evidence)" ;;
		esac
	done
}
