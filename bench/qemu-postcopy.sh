#!/bin/bash
# SPDX-License-Identifier: MIT
# QEMU's post-copy, for the side-by-side of bench/migrate.sh: two
# qemu-system-x86_64 processes (TCG) on this machine, the guest (a rig
# kernel and a busybox initramfs) fills SIZE of its memory with non-zero
# data in a tmpfs file and then idles; the source migrates to the
# destination over loopback TCP with postcopy-ram and switches to
# post-copy at once (migrate-start-postcopy); QEMU's own total-time and
# downtime are reported.
#
#   bench/qemu-postcopy.sh [SIZES]      default "256M 1G"
#
# Needs a rig kernel (make -C kernel, cached under $KVMFAULT_CACHE) and
# busybox-static; QMP is spoken through bash's /dev/tcp.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KVMFAULT_CACHE:-/var/tmp/kvmfault}
sizes=${1:-256M 1G}
busybox=${BUSYBOX:-/bin/busybox}
kernel=$(ls -d "$cache"/kernel-6.12-rig-*/bzImage 2>/dev/null | head -n 1 || true)
[ -n "$kernel" ] || { echo "SKIP: no rig kernel in $cache: make -C kernel KBASE=6.12" >&2; exit 4; }
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 missing" >&2; exit 4; }
file -L "$busybox" | grep -q 'statically linked' || { echo "SKIP: $busybox is not static (busybox-static)" >&2; exit 4; }

tmp=$(mktemp -d /tmp/kf-qemu-pc.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/root/bin" "$tmp/root/proc" "$tmp/root/fill"
cp "$busybox" "$tmp/root/bin/busybox"
cat >"$tmp/root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mib=$(sed -n 's/.*kf.fill=\([0-9]*\).*/\1/p' /proc/cmdline)
mount -t tmpfs -o size=$((mib + 16))m tmpfs /fill
yes kvmfault-guest-memory | head -c $((mib * 1048576)) >/fill/data || echo "KF-FILL-FAILED"
# The size from stat: busybox's wc counts in 32 bits (4 GiB is 0 to it).
echo "KF-FILL-SIZE $(stat -c %s /fill/data)"
echo "KF-FILLED $mib"
while :; do sleep 1000; done
EOF
chmod +x "$tmp/root/init"
(cd "$tmp/root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$tmp/initrd.gz"

free_port() { echo $((20000 + RANDOM % 20000)); }

# qmp FD JSON: send one command, print the reply (skipping events).
qmp() {
	local fd=$1 line
	echo "$2" >&"$fd"
	while IFS= read -r -t 60 line <&"$fd"; do
		case $line in *'"event"'*) continue ;; esac
		echo "$line"
		return 0
	done
	echo "qemu-postcopy: no QMP reply to $2" >&2
	return 1
}

qmp_open() {	# qmp_open PORT -> fd in $qfd
	local port=$1 i
	for i in $(seq 1 100); do
		if exec {qfd}<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
			read -r -t 10 _ <&"$qfd"	# greeting
			qmp "$qfd" '{"execute": "qmp_capabilities"}' >/dev/null
			return 0
		fi
		sleep 0.1
	done
	echo "qemu-postcopy: no QMP on port $port" >&2
	return 1
}

num() { sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p"; }

printf '%-6s %14s %12s %14s\n' size "QEMU total ms" "downtime ms" "postcopy reqs"
for size in $sizes; do
	case $size in
	*G) mib=$(( ${size%G} * 1024 )) ;;
	*M) mib=${size%M} ;;
	*) echo "qemu-postcopy: size '$size': use M or G" >&2; exit 2 ;;
	esac
	mem=$(( mib + 384 ))
	qs=$(free_port); qd=$(free_port); mp=$(free_port)
	rm -f "$tmp/src.log" "$tmp/dst.log"	# the last size's KF-FILLED
	common=(-accel tcg -cpu max -m "${mem}M" -smp 1 -nodefaults -display none
		-no-reboot -kernel "$kernel" -initrd "$tmp/initrd.gz"
		-append "console=ttyS0 rdinit=/init panic=-1 kf.fill=$mib")
	qemu-system-x86_64 "${common[@]}" -serial "file:$tmp/src.log" \
		-qmp "tcp:127.0.0.1:$qs,server=on,wait=off" &
	pids+=($!)
	qemu-system-x86_64 "${common[@]}" -serial "file:$tmp/dst.log" \
		-qmp "tcp:127.0.0.1:$qd,server=on,wait=off" -incoming "tcp:127.0.0.1:$mp" &
	pids+=($!)
	# TCG fills about 6 MiB/s here: wait 5 minutes a GiB, 10 at least.
	for i in $(seq 1 $(( mib * 600 / 1024 > 1200 ? mib * 600 / 1024 : 1200 ))); do
		grep -q KF-FILLED "$tmp/src.log" 2>/dev/null && break
		sleep 0.5
	done
	grep -a "KF-FILL" "$tmp/src.log" >&2 || true
	grep -q KF-FILLED "$tmp/src.log" || { echo "qemu-postcopy: the guest did not fill its memory" >&2; tail -5 "$tmp/src.log" >&2; exit 1; }
	grep -aq "KF-FILL-SIZE $((mib * 1048576))" "$tmp/src.log" || { echo "qemu-postcopy: the guest filled less than $size" >&2; exit 1; }
	qmp_open "$qs"; src=$qfd
	qmp_open "$qd"; dst=$qfd
	for fd in $src $dst; do
		qmp "$fd" '{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "postcopy-ram", "state": true}]}}' >/dev/null
	done
	qmp "$src" "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:$mp\"}}" >/dev/null
	qmp "$src" '{"execute": "migrate-start-postcopy"}' >/dev/null
	status=
	for i in $(seq 1 6000); do
		reply=$(qmp "$src" '{"execute": "query-migrate"}')
		status=$(echo "$reply" | sed -n 's/.*"status": "\([a-z-]*\)".*/\1/p')
		[ "$status" = completed ] || [ "$status" = failed ] && break
		sleep 0.05
	done
	[ "$status" = completed ] || { echo "qemu-postcopy: migration $status: $reply" >&2; exit 1; }
	total=$(echo "$reply" | num total-time)
	down=$(echo "$reply" | num downtime)
	reqs=$(echo "$reply" | num postcopy-requests)
	printf '%-6s %14s %12s %14s\n' "$size" "$total" "$down" "${reqs:--}"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pids=()
	exec {src}>&- {dst}>&-
done
