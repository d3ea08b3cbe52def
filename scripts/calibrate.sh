#!/bin/sh
# SPDX-License-Identifier: MIT
# How slow is this machine right now?  Prints a time scale factor (">= 1",
# one decimal): the time a fixed single-threaded loop takes now, divided by
# the time it takes on an idle machine of this project's kind.  Phases
# multiply their per-test timeouts by it, so that a loaded or slow machine
# gets longer timeouts instead of false failures.
#
#   calibrate.sh [CPUS]   CPUS: run the loop pinned to that CPU list (the
#                         CPUs a QEMU rig guest is given), as taskset -c
#
# KVMFAULT_TIME_SCALE, when set, is printed as is (no measurement).
set -u

if [ -n "${KVMFAULT_TIME_SCALE:-}" ]; then
	echo "$KVMFAULT_TIME_SCALE"
	exit 0
fi

# Milliseconds of the loop on an idle 2-core machine of this kind.
REFERENCE_MS=200
pin=""
[ -n "${1:-}" ] && command -v taskset >/dev/null && pin="taskset -c $1"

loop_ms() {
	s=$(date +%s%N)
	$pin awk 'BEGIN { s = 0; for (i = 0; i < 2000000; i++) s += i % 7; print s }' >/dev/null
	e=$(date +%s%N)
	echo $(( (e - s) / 1000000 ))
}

# The median of three: the load on a shared machine comes and goes.
best=$( (loop_ms; loop_ms; loop_ms) | sort -n | sed -n 2p)
awk -v t="$best" -v r="$REFERENCE_MS" 'BEGIN {
	f = t / r; if (f < 1) f = 1; if (f > 20) f = 20
	printf "%.1f\n", f }'
