#!/bin/sh
# SPDX-License-Identifier: MIT
# Reproduce the figures of docs/results.md.
#   bench/run.sh host   host KVM (stock kernel): uffd backends vs the raw loop
#   bench/run.sh rig    inside the QEMU rig (patched kernel): exit vs uffd
# Outputs go to bench/out/ (CSV, JSON, PNG) unless OUT is set.
set -e
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
bin=${BENCH:-$here/../build/bin/kvmfault-bench}

case "${1:-host}" in
host)
	"$bin" -v 1,2 -b 64M -m uffd-missing,uffd-minor -u shared,per-vcpu -r 7 \
		-o "$out/host-read.csv" -j "$out/host-read.json" -p "$out/host-read.png"
	"$bin" -v 1,2 -b 64M -m uffd-missing,uffd-minor -u per-vcpu -a write -r 5 \
		-o "$out/host-write.csv"
	;;
rig)
	# inside the QEMU rig: see bench/rig-bench.sh (no gnuplot there)
	"$here/rig-bench.sh" -v 1,2,4 -b 4M -m exit,uffd-missing,uffd-minor -r 3 \
		| tee "$out/rig-read.txt"
	;;
*)
	echo "usage: $0 host|rig" >&2
	exit 2
	;;
esac
