#!/bin/bash
# SPDX-License-Identifier: MIT
# QEMU post-copy on the patched 6.12 kernel inside the rig, side by side in
# one rig run: Debian's QEMU (the vCPUs wait in userfaultfd) against our
# patched QEMU (qemu/patches/: the vCPUs fetch missing pages themselves
# with exit-on-missing), the same Linux guest (512 MiB, one memcheck a vCPU
# writing and verifying 256 MiB in all) with 1, 2 and 4 vCPUs (requested
# pages queue behind the pre-copy stream: no postcopy-preempt, see
# kernel/qemu/run.sh).
#
#   bench/qemu-eom.sh
#
# Prints a table and the ratios patched / stock, and writes
# bench/out/qemu-eom.csv and .json.  Each row: QEMU's total time and
# downtime (source), blocktime (destination, postcopy-blocktime: all
# vCPUs blocked at once, and the set of the per-vCPU values as HMP prints
# it: sorted, equal ones merged), the source's count of page requests, and
# the latency of the faults that waited for a page, from the request to the
# page's placement, taken from QEMU's own trace (stock: every userfault the
# fault thread requested, the vCPUs' and QEMU's own, timed from the fault
# thread's request, so without the time the fault sat in userfaultfd;
# patched: the vCPUs' exit-on-missing requests).
# ok=1: the guest verified its memory at the destination.  The rig is a
# software CPU running KVM inside: absolute times are slow; compare the
# ratios within the run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${KVMFAULT_CACHE:-/var/tmp/kvmfault}
out=$here/bench/out
mkdir -p "$out"

make -s -C "$here/kernel" kernel KBASE=6.12 >/dev/null
log=$cache/qemu-eom.log
QEMU_ONLY=bench KBASE=6.12 "$here/kernel/qemu.sh" >"$log" 2>&1 || {
	tail -n 20 "$log" >&2
	echo "bench/qemu-eom.sh: the rig run failed (log: $log)" >&2
	exit 1
}
results=$cache/qemu-6.12/bench.results
[ -s "$results" ] || { echo "bench/qemu-eom.sh: no results in $results" >&2; exit 1; }

# KF-QEMU-BENCH key=value ... -> CSV with a fixed column order.
cols="smp preempt qemu mib ok total_ms downtime_ms blocktime_ms vcpu_blocktime_set_ms page_requests faults p50_us p99_us"
awk -v cols="$cols" '
BEGIN { n = split(cols, c, " "); for (i = 1; i <= n; i++) printf "%s%s", c[i], i < n ? "," : "\n" }
{
	sub(/\r$/, "")
	delete v
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	for (i = 1; i <= n; i++) { x = v[c[i]]; gsub(",", ";", x); printf "%s%s", x == "" ? "-" : x, i < n ? "," : "\n" }
}' "$results" >"$out/qemu-eom.csv"

column -s, -t "$out/qemu-eom.csv"
echo
echo "patched / stock (below 1: the patched QEMU is faster):"
printf "%-5s %-8s %-6s %-9s %-10s %-6s %-6s\n" vcpus preempt total downtime blocktime p50 p99
# Columns: 1 smp, 2 preempt, 3 qemu, 6 total, 7 downtime, 8 blocktime,
# 12 p50, 13 p99.
awk -F, 'NR > 1 { k = $1 " " $2; for (i = 6; i <= 13; i++) val[$3, k, i] = $i; keys[k] = 1 }
function r(a, b) { return (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) ? sprintf("%.2f", a / b) : "-" }
END {
	for (k in keys) {
		split(k, kk, " ")
		printf "%-5s %-8s %-6s %-9s %-10s %-6s %-6s\n", kk[1], kk[2], r(val["eom", k, 6], val["stock", k, 6]),
			r(val["eom", k, 7], val["stock", k, 7]), r(val["eom", k, 8], val["stock", k, 8]),
			r(val["eom", k, 12], val["stock", k, 12]), r(val["eom", k, 13], val["stock", k, 13])
	}
}' "$out/qemu-eom.csv" | sort -k2,2 -k1,1n
awk -F, 'NR == 1 { n = split($0, h, ","); print "["; next }
{ printf "%s  {", (NR > 2 ? ",\n" : ""); for (i = 1; i <= n; i++) printf "\"%s\": \"%s\"%s", h[i], $i, (i < n ? ", " : ""); printf "}" }
END { print "\n]" }' "$out/qemu-eom.csv" >"$out/qemu-eom.json"
echo "(bench/out/qemu-eom.csv, .json; rig log $log)"
