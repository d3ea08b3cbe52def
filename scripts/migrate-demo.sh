#!/bin/sh
# SPDX-License-Identifier: MIT
# The `make run` demo: a guest migrates post-copy from one process to
# another on this machine over loopback TCP, and the numbers are printed.
#
# The source process runs the workload (every vCPU writes its working set and
# keeps a checksum of each page inside the guest), waits for the destination,
# runs one pre-copy round, stops the vCPUs and sends their state; the
# destination resumes at once with guest memory missing, pages it in on
# demand while the source pushes the rest, and then the guest re-checks every
# page inside the guest.  Exit status 0 means every page was right.  The
# channel is TLS 1.3 with a pre-shared key made for this run (mode 0600, in
# a private temporary directory, removed at the end).
#
# Environment: KF_DEMO_VCPUS (4), KF_DEMO_PAGES (2048 pages of 4 KiB per
# vCPU), KF_DEMO_PRECOPY (1), KF_DEMO_BACKEND (auto), BUILD (build).
set -eu
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/bin/kvmfault
VCPUS=${KF_DEMO_VCPUS:-4}
PAGES=${KF_DEMO_PAGES:-2048}
PRECOPY=${KF_DEMO_PRECOPY:-1}
BACKEND=${KF_DEMO_BACKEND:-auto}

if [ ! -x "$BIN" ]; then
	echo "migrate-demo: $BIN is missing; run make first" >&2
	exit 1
fi
tmp=$(mktemp -d)
src_pid=
cleanup() {
	[ -n "$src_pid" ] && kill "$src_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

chmod 700 "$tmp"
"$BIN" migrate keygen "$tmp/key.psk" demo >/dev/null
echo "== post-copy live migration: $VCPUS vCPUs x $PAGES pages, $PRECOPY pre-copy round(s), TLS over loopback TCP"
"$BIN" migrate source --listen 127.0.0.1:0 --port-file "$tmp/port" --vcpus "$VCPUS" \
	--pages "$PAGES" --precopy "$PRECOPY" --psk "$tmp/key.psk" \
	>"$tmp/source.out" 2>"$tmp/source.err" &
src_pid=$!
i=0
while [ ! -s "$tmp/port" ]; do
	i=$((i + 1))
	if [ $i -gt 600 ] || ! kill -0 "$src_pid" 2>/dev/null; then
		echo "migrate-demo: the source did not start" >&2
		cat "$tmp/source.err" >&2
		exit 1
	fi
	sleep 0.05
done
port=$(cat "$tmp/port")
echo "   source: process $src_pid listening on 127.0.0.1:$port"
echo "   destination: this shell's child, connecting"
status=0
"$BIN" migrate dest --connect "127.0.0.1:$port" --backend "$BACKEND" --psk "$tmp/key.psk" || status=$?
src_status=0
wait "$src_pid" || src_status=$?
src_pid=
cat "$tmp/source.out"
if [ "$status" -ne 0 ] || [ "$src_status" -ne 0 ]; then
	echo "== migration FAILED (destination $status, source $src_status)" >&2
	cat "$tmp/source.err" >&2
	exit 1
fi
echo "== migration succeeded: the guest verified every page at the destination"
