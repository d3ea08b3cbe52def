#!/bin/bash
# SPDX-License-Identifier: MIT
# The rig's kernel splat check (kernel/rig-common.sh) on scripted serial
# logs: every splat of a boot that ended normally counts; in a boot the rig
# stopped as hung, the stall reports are the hang's own symptom and do not
# count (the rerun judges the hang), but any other splat still does.  The
# first case is the hang of 2026-12-07's cold run (rig-6.1,
# migrate_postcopy): one CPU of the guest stopped, the other reported RCU
# stalls until the rig stopped it, and the rerun passed, yet the stall
# reports failed the run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../kernel/rig-common.sh
. "$here/../../kernel/rig-common.sh"

tmp=$(mktemp -d /tmp/kf-splat-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failed=0

stall='[   71.057578] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:
[   71.057578] rcu: 	0-...0: (2 ticks this GP) idle=d794/1/0x4000000000000000
[  134.093577] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:'
warn='[   12.000000] WARNING: CPU: 1 PID: 77 at arch/x86/kvm/mmu/mmu.c:3333 kvm_mmu_page_fault+0x1/0x2'
clean='KF-RUN migrate_postcopy
PASS migrate_postcopy (7s)'

# expect NAME WANT(0 clean, 1 splat) MODE LOG
expect() {
	local name=$1 want=$2 mode=$3 got
	printf '%s\n' "$4" >"$tmp/log"
	rig_check_splat "$tmp/log" "$mode" 2>/dev/null
	got=$?
	if [ "$got" -ne "$want" ]; then
		echo "FAIL $name: rig_check_splat returned $got, expected $want"
		failed=$((failed + 1))
	fi
}

expect "a clean boot" 0 "" "$clean"
expect "a stall in a boot that ended normally counts" 1 "" "$clean
$stall"
expect "a WARNING counts" 1 "" "$warn"
expect "the stall reports of a hung boot do not count" 0 hung "$stall"
expect "a WARNING in a hung boot still counts" 1 hung "$stall
$warn"
expect "a soft lockup in a hung boot is a stall report" 0 hung \
	'[  300.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [kf:88]'

if [ "$failed" -ne 0 ]; then
	echo "FAIL: $failed splat case(s) wrong"
	exit 1
fi
echo "PASS: splats count, except a hung boot's stall reports"
