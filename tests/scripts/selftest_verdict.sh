#!/bin/bash
# SPDX-License-Identifier: MIT
# The selftests regression verdict (kernel/verdict.sh) on scripted outcomes:
# a failure that does not repeat, or that the unpatched kernel shares, is
# not a regression; one that fails here and passes on the control in every
# round is.  The first case is rseq_test under load (issue 14): a single
# control run that passed made it a "regression".
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../kernel/verdict.sh
. "$here/../../kernel/verdict.sh"

tmp=$(mktemp -d /tmp/kf-verdict-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failed=0

# OUTCOMES: "TEST:ROUND:OURS:CONTROL ..." for verdict_rerun to replay.
verdict_rerun() {
	local round=$1 ours_out=$2 ctl_out=$3 t o
	shift 3
	: >"$ours_out"
	: >"$ctl_out"
	for t in "$@"; do
		for o in $OUTCOMES; do
			IFS=: read -r name r ours ctl <<<"$o"
			[ "$name" = "$t" ] && [ "$r" = "$round" ] || continue
			echo "$t $ours" >>"$ours_out"
			echo "$t $ctl" >>"$ctl_out"
		done
	done
}

# expect NAME REGRESSIONS RERUNS OUTCOMES CANDIDATE...
expect() {
	local name=$1 want_reg=$2 want_reruns=$3 out
	OUTCOMES=$4
	shift 4
	printf '%s timeout\n' "$@" >"$tmp/first"
	out=$(verdict_run "$tmp/first" "rseq_test" "$@"; echo "RESULT $verdict_regressions $verdict_reruns")
	set -- $(echo "$out" | sed -n 's/^RESULT //p')
	if [ "$1" = "$want_reg" ] && [ "$2" = "$want_reruns" ]; then
		echo "ok: $name"
	else
		echo "FAIL: $name: expected $want_reg regression(s) after $want_reruns rerun(s), got $1 after $2"
		echo "$out" | sed 's/^/  | /'
		failed=$((failed + 1))
	fi
}

ST_RERUNS=3
expect "passes here on a rerun: timing, one round" 0 1 \
	"rseq_test:1:pass:pass" rseq_test
expect "times out on both kernels: not ours" 0 1 \
	"rseq_test:1:timeout:timeout" rseq_test
expect "fails here, passes on the control, every round: regression" 1 3 \
	"t1:1:fail:pass t1:2:fail:pass t1:3:fail:pass" t1
expect "control fails in the last round: not a regression" 0 3 \
	"t1:1:fail:pass t1:2:fail:pass t1:3:fail:timeout" t1
expect "two candidates, one explained in round 1" 1 4 \
	"a:1:fail:pass a:2:fail:pass a:3:fail:pass b:1:pass:pass" a b
expect "a test the guest never ran again counts against us only with a passing control" 0 1 \
	"t1:1:hang:hang" t1
ST_RERUNS=1
expect "one round allowed: consistent within it" 1 1 \
	"t1:1:fail:pass" t1

if [ "$failed" -ne 0 ]; then
	echo "FAIL: $failed verdict case(s) wrong"
	exit 1
fi
echo "PASS: the regression verdict reruns and classifies as documented"
