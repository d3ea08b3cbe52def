#!/bin/sh
# SPDX-License-Identifier: MIT
# make check's time budget (scripts/budget.sh) with the cache's builds
# stubbed: a phase whose builds are kept always runs, a cold one runs while
# its estimate fits, and the estimate grows with how slowly this run built
# its first kernel.  The slow case is the cold run of 2026-12-07 (session
# 17, with other work beside it): its x86 kernels took 634 and 728 s where
# the estimates assume about 320, so a cold debug phase begun at 70
# minutes, estimated to end at 81, would have ended past 90.
set -u
cd "$(dirname "$0")/../.." || exit 1
. scripts/budget.sh

tmp=$(mktemp -d /tmp/kf-budget-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failed=0
primary=6.12
arm64_pages=64k
budget=5100

fail() {
	echo "FAIL $1"
	failed=$((failed + 1))
}

# expect_scale NAME WANT BUILDS-FILE-CONTENT
expect_scale() {
	printf '%s' "$3" >"$tmp/builds"
	got=$(budget_build_scale "$tmp/builds")
	[ "$got" = "$2" ] || fail "$1: scale $got, expected $2"
}

expect_scale "no build yet" 1 ""
expect_scale "an incremental build" 1 "kernel: built in 59s
"
expect_scale "the first build counts" 1.98 "kernel: built in 634s
kernel: built in 728s
"
expect_scale "other lines" 1.50 "kernel: building bzImage
kernel: built in 480s
"
[ "$(budget_build_scale "$tmp/no-such-file")" = 1 ] || fail "a missing file: scale 1"

# Nothing is in the cache.
build_kept() { return 1; }

# expect_budget NAME PHASE USED-SECONDS BUILDS-CONTENT WANT(fits|over)
expect_budget() {
	printf '%s' "$4" >"$tmp/builds"
	check_start=$(( $(date +%s) - $3 ))
	why=$(over_budget "$2" "$tmp/builds")
	case $5 in
	fits) [ -z "$why" ] || fail "$1: skipped ($why)" ;;
	over) [ -n "$why" ] || fail "$1: not skipped" ;;
	esac
}

fast="kernel: built in 323s
"
slow="kernel: built in 634s
"
# debug-6.12 cold: 640 s on the reference machine.
expect_budget "debug at 70 min, reference speed" debug-6.12 4200 "$fast" fits
expect_budget "debug at 70 min, twice as slow" debug-6.12 4200 "$slow" over
expect_budget "debug at 20 min, twice as slow" debug-6.12 1200 "$slow" fits
expect_budget "debug at 80 min" debug-6.12 4800 "$fast" over
# rig-arm64 cold: two kernels and the tests, 840 s.
expect_budget "rig-arm64 at 70 min" rig-arm64 4200 "$fast" fits
expect_budget "rig-arm64 at 70 min, twice as slow" rig-arm64 4200 "$slow" over
budget=0
expect_budget "no budget" rig-arm64 6000 "$slow" fits
budget=5100

# Everything kept: no phase is ever skipped.
build_kept() { return 0; }
expect_budget "debug kept, at 84 min" debug-6.12 5040 "$slow" fits
expect_budget "QEMU kept, at 84 min" qemu-6.12 5040 "$slow" fits

if [ "$failed" -eq 0 ]; then
	echo "PASS: the budget skips what would not fit, scaled by this run's build speed"
	exit 0
fi
exit 1
