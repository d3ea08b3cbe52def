#!/bin/sh
# SPDX-License-Identifier: MIT
# Post-copy migration at the speed of the link: kvmfault migrate local at
# several guest memory sizes, over TLS and plain TCP, with the loopback
# link measured in the same run (--link-test).  The guest (2 vCPUs) fills
# its memory with non-zero data, then stays mostly idle (--idle-us 1000:
# each vCPU writes one page a millisecond, which also makes the demand
# faults whose latency the table shows).  Pure post-copy (--precopy 0).
#
#   bench/migrate.sh [SIZES]     default "256M 1G 4G"
#
# STREAMS (default "0 2") lists the push stream counts to run each size
# and channel with (--streams; 0: the push shares the main connection),
# so that the rows compare within one run.
#
# Prints one row per size and channel (with each side's peak resident set:
# guest memory once each), also as CSV in $OUT/migrate.csv
# (OUT defaults to bench/out).  The ratio is the migration time (SETUP
# to every page at the destination) over guest memory / raw loopback
# bandwidth.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
bin=${KVMFAULT:-$here/../build/bin/kvmfault}
sizes=${1:-256M 1G 4G}
streams_list=${STREAMS:-0 2}
mkdir -p "$out"
csv=$out/migrate.csv
[ -x "$bin" ] || { echo "bench/migrate.sh: $bin missing: run make" >&2; exit 2; }

field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
# The largest p50 / p99 over the vCPUs' fault latencies.
lat() { grep -o "\"$1\": [0-9.]*" | sed 's/.*: //' | sort -n | tail -n 1; }

echo "size,channel,streams,link_raw_mbps,link_plain_mbps,link_tls_mbps,migration_ms,ratio,downtime_ms,demand_faults,p50_us,p99_us,source_rss_mib,dest_rss_mib" >"$csv"
printf '%-6s %-6s %7s %9s %9s %9s %12s %6s %9s %7s %8s %8s %9s %9s\n' size channel streams "raw MB/s" "plain" "TLS" "migration ms" ratio "down ms" faults "p50 us" "p99 us" "src MiB" "dst MiB"
for size in $sizes; do
	case $size in
	*G) mib=$(( ${size%G} * 1024 )) ;;
	*M) mib=${size%M} ;;
	*) echo "bench/migrate.sh: size '$size': use M or G" >&2; exit 2 ;;
	esac
	pages=$(( mib * 256 / 2 ))
	for channel in tls plain; do
	for streams in $streams_list; do
		flag=; [ "$channel" = plain ] && flag=--plain
		json=$("$bin" migrate local --vcpus 2 --pages "$pages" --precopy 0 --run-ms 0 \
			--idle-us 1000 --link-test --json --quiet --streams "$streams" $flag)
		echo "$json" | grep -q '"ok": true' || { echo "bench/migrate.sh: $size $channel $streams streams failed: $json" >&2; exit 1; }
		link=$(echo "$json" | grep -o '"link_mbps": {[^}]*}')
		raw=$(echo "$link" | field raw)
		plain=$(echo "$link" | field plain)
		tls=$(echo "$link" | field tls)
		mig=$(echo "$json" | field migration_ms)
		bytes=$(echo "$json" | field guest_bytes)
		down=$(echo "$json" | field downtime_ms)
		faults=$(echo "$json" | grep -o '"demand": [0-9]*' | sed 's/.*: //')
		p50=$(echo "$json" | lat p50)
		p99=$(echo "$json" | lat p99)
		src_rss=$(echo "$json" | field source_max_rss_mib)
		dst_rss=$(echo "$json" | field dest_max_rss_mib)
		ratio=$(awk -v m="$mig" -v b="$bytes" -v r="$raw" 'BEGIN { printf "%.2f", m / (b / (r * 1e6) * 1e3) }')
		printf '%-6s %-6s %7s %9s %9s %9s %12s %6s %9s %7s %8s %8s %9s %9s\n' "$size" "$channel" "$streams" "$raw" "$plain" "$tls" "$mig" "$ratio" "$down" "$faults" "$p50" "$p99" "$src_rss" "$dst_rss"
		echo "$size,$channel,$streams,$raw,$plain,$tls,$mig,$ratio,$down,$faults,$p50,$p99,$src_rss,$dst_rss" >>"$csv"
	done
	done
done
