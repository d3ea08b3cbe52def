#!/bin/sh
# SPDX-License-Identifier: MIT
# Reproduce the figures of docs/results.md.
#   bench/run.sh host   host KVM (stock kernel): uffd backends vs the raw loop
#   bench/run.sh pin    host, 1 and 2 vCPUs, without and with --pin
#   bench/run.sh remote host, the remote page source (loopback page server)
#   bench/run.sh rig    inside the QEMU rig (patched kernel): exit vs uffd
# Outputs go to bench/out/ (CSV, JSON, PNG) unless OUT is set.
set -e
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
# KVMFAULT: the kvmfault tool to run (default build/bin/kvmfault)
bin=${KVMFAULT:-$here/../build/bin/kvmfault}

case "${1:-host}" in
host)
	"$bin" bench -v 1,2 -b 64M -m uffd-missing,uffd-minor -u shared,per-vcpu -r 7 \
		-o "$out/host-read.csv" -j "$out/host-read.json" -p "$out/host-read.png"
	"$bin" bench -v 1,2 -b 64M -m uffd-missing,uffd-minor -u per-vcpu -a write -r 5 \
		-o "$out/host-write.csv"
	;;
pin)
	# the 1- and 2-vCPU host rows without and with --pin, back to back
	for pin in nopin pin; do
		flag=; [ "$pin" = pin ] && flag=--pin
		"$bin" bench -v 1,2 -b 16M -m uffd-missing,uffd-minor -u shared,per-vcpu -r 5 $flag \
			-o "$out/host-read-$pin.csv"
	done | tee "$out/host-pin.txt"
	;;
remote)
	"$bin" bench -s remote -v 1,2 -b 16M -m uffd-missing,uffd-minor -u shared -r 5 \
		-o "$out/host-remote.csv" | tee "$out/host-remote.txt"
	;;
rig)
	# inside the QEMU rig: see bench/rig-bench.sh (no gnuplot there)
	"$here/rig-bench.sh" -v 1,2,4 -b 4M -m exit,uffd-missing,uffd-minor -r 3 \
		| tee "$out/rig-read.txt"
	;;
*)
	echo "usage: $0 host|pin|remote|rig" >&2
	exit 2
	;;
esac
