#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The QEMU phase inside the rig (kernel/qemu.sh packs this, Debian's QEMU
# with its libraries and firmware, a guest kernel and a guest initramfs
# into /qemu): unchanged QEMU with -accel kvm on the kernel under test.
#
#   boot      a guest boots and memcheck writes and verifies its memory;
#   postcopy  QEMU's own post-copy live migration between two QEMU
#             processes over loopback while memcheck runs; the guest goes
#             on verifying its memory at the destination.
#
# One "KF-QEMU NAME pass|fail key=value..." line a test.
# usage: run.sh [TIMEOUT_SECONDS]
T=${1:-300}
Q="/qemu/qemu-system-x86_64 -accel kvm -cpu host -m 192M -smp 1 -nodefaults
   -display none -no-reboot -L /qemu/data -kernel /qemu/bzImage
   -initrd /qemu/guest.gz"
APPEND="console=ttyS0 rdinit=/init panic=-1 loglevel=4"
HMP=/qemu/hmp

now() { date +%s; }

# wait_for FILE PATTERN SECONDS: 0 once FILE has a line matching PATTERN.
wait_for() {
	local end=$(( $(now) + $3 ))
	while [ "$(now)" -lt "$end" ]; do
		grep -q "$2" "$1" 2>/dev/null && return 0
		grep -q "MEMCHECK FAIL" "$1" 2>/dev/null && return 1
		sleep 1
	done
	return 1
}

rounds_in() { grep -c "MEMCHECK ROUND" "$1" 2>/dev/null; }

show() { echo "--- $1"; tail -n 8 "$1" | sed 's/^/  | /'; }

test_boot() {
	local s=$(now) rc
	timeout "$T" $Q -serial file:/tmp/boot.log \
		-append "$APPEND kf.mib=32 kf.rounds=3" >/tmp/boot.qemu 2>&1
	rc=$?
	if grep -q "MEMCHECK DONE 3" /tmp/boot.log && grep -q "GUEST-RC 0" /tmp/boot.log; then
		echo "KF-QEMU boot pass secs=$(( $(now) - s ))"
	else
		echo "KF-QEMU boot fail qemu_rc=$rc secs=$(( $(now) - s ))"
		show /tmp/boot.log; show /tmp/boot.qemu
	fi
}

migrate_info() { $HMP /tmp/src.sock "info migrate"; }

test_postcopy() {
	local s=$(now) status="" info end before after total downtime
	rm -f /tmp/src.sock /tmp/dst.sock /tmp/src.log /tmp/dst.log
	$Q -serial file:/tmp/dst.log -monitor unix:/tmp/dst.sock,server=on,wait=off \
		-incoming tcp:127.0.0.1:4444 -append "$APPEND" >/tmp/dst.qemu 2>&1 &
	local dst=$!
	$Q -serial file:/tmp/src.log -monitor unix:/tmp/src.sock,server=on,wait=off \
		-append "$APPEND kf.mib=64 kf.rounds=1000000" >/tmp/src.qemu 2>&1 &
	local src=$!
	if ! wait_for /tmp/src.log "MEMCHECK ROUND 1 OK" "$T"; then
		echo "KF-QEMU postcopy fail stage=source-guest secs=$(( $(now) - s ))"
		show /tmp/src.log; show /tmp/src.qemu
		kill -9 $src $dst 2>/dev/null
		return
	fi
	$HMP /tmp/dst.sock "migrate_set_capability postcopy-ram on" >/dev/null &&
	$HMP /tmp/src.sock "migrate_set_capability postcopy-ram on" >/dev/null &&
	$HMP /tmp/src.sock "migrate -d tcp:127.0.0.1:4444" >/dev/null
	before=$(rounds_in /tmp/src.log)
	sleep 1
	$HMP /tmp/src.sock "migrate_start_postcopy" >/dev/null
	end=$(( $(now) + T ))
	while [ "$(now)" -lt "$end" ]; do
		info=$(migrate_info)
		status=$(echo "$info" | sed -n 's/^Migration status: *//p' | tr -d '\r')
		case "$status" in completed|failed|cancelled) break ;; esac
		sleep 1
	done
	total=$(echo "$info" | sed -n 's/^total time: *\([0-9]*\).*/\1/p')
	downtime=$(echo "$info" | sed -n 's/^downtime: *\([0-9]*\).*/\1/p')
	# The guest goes on at the destination: three more rounds, verified.
	after=0
	if [ "$status" = completed ]; then
		end=$(( $(now) + T ))
		while [ "$(now)" -lt "$end" ]; do
			after=$(rounds_in /tmp/dst.log)
			[ "${after:-0}" -ge 3 ] && break
			grep -q "MEMCHECK FAIL" /tmp/dst.log && break
			sleep 1
		done
	fi
	$HMP /tmp/dst.sock quit >/dev/null 2>&1
	kill -9 $src $dst 2>/dev/null
	wait 2>/dev/null
	if [ "$status" = completed ] && [ "${after:-0}" -ge 3 ] &&
	   ! grep -q "MEMCHECK FAIL" /tmp/src.log /tmp/dst.log; then
		echo "KF-QEMU postcopy pass total_ms=${total:-?} downtime_ms=${downtime:-?} rounds_before=$before rounds_after=$after secs=$(( $(now) - s ))"
	else
		echo "KF-QEMU postcopy fail status=${status:-none} rounds_after=$after secs=$(( $(now) - s ))"
		echo "$info" | sed 's/^/  | /' | head -n 20
		show /tmp/src.log; show /tmp/dst.log; show /tmp/src.qemu; show /tmp/dst.qemu
	fi
}

echo "KF-QEMU-BEGIN $(/qemu/qemu-system-x86_64 --version | head -n 1)"
test_boot
test_postcopy
echo "KF-QEMU-END"
