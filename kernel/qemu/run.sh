#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The QEMU phase inside the rig (kernel/qemu.sh packs this, Debian's QEMU
# with its libraries and firmware, our patched QEMU (qemu/build.sh), a guest
# kernel and a guest initramfs into /qemu), with -accel kvm on the kernel
# under test:
#
#   boot          unchanged QEMU: a guest boots and memcheck writes and
#                 verifies its memory;
#   postcopy      unchanged QEMU's own post-copy live migration between two
#                 QEMU processes over loopback while memcheck runs; the
#                 guest goes on verifying its memory at the destination;
#   postcopy-eom  the same with the patched QEMU (qemu/patches/): on a
#                 kernel with KVM_CAP_EXIT_ON_MISSING the destination's
#                 vCPUs must fetch missing pages themselves (its trace
#                 says so), on any other kernel it must behave as stock.
#
# One "KF-QEMU NAME pass|fail key=value..." line a test.
#
# With "-bench": stock against patched post-copy of the same guest with 1,
# 2 and 4 vCPUs, one "KF-QEMU-BENCH key=value..." line a run: total time,
# downtime, blocktime (all vCPUs and each), and the latency of the faults
# that waited for a page, from request to placement (from QEMU's trace).
# usage: run.sh [TIMEOUT_SECONDS] [-bench]
T=${1:-300}
STOCK=/qemu/qemu-system-x86_64
PATCHED=/qemu/kf/qemu-system-x86_64
OPTS="-accel kvm -cpu host -m 192M -smp 1 -nodefaults
   -display none -no-reboot -L /qemu/data -kernel /qemu/bzImage
   -initrd /qemu/guest.gz"
Q="$STOCK $OPTS"
APPEND="console=ttyS0 rdinit=/init panic=-1 loglevel=4"
SMP=1
PREEMPT=off
HMP=/qemu/hmp
ENOTSUP=95
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

migrate_info() { $HMP /tmp/$1.sock "info migrate"; }
field() { echo "$1" | sed -n "s/^$2: *\([0-9]*\).*/\1/p" | head -n 1; }

# run_postcopy QEMU [DESTINATION OPTIONS]: post-copy from a QEMU to a
# QEMU (both the binary QEMU) with the guest's memory verified on both.
# Sets status, after, info and dinfo for the caller's verdict.
run_postcopy() {
	local bin=$1 end before total downtime blocktime vcpu_blocktime requests
	shift
	s=$(now)
	status="" after=0 info="" dinfo="" result=""
	rm -f /tmp/src.sock /tmp/dst.sock /tmp/src.log /tmp/dst.log /tmp/dst.qemu /tmp/src.qemu
	$bin $OPTS -serial file:/tmp/dst.log -monitor unix:/tmp/dst.sock,server=on,wait=off \
		-incoming tcp:127.0.0.1:4444 -append "$APPEND" "$@" >/tmp/dst.qemu 2>&1 &
	local dst=$!
	$bin $OPTS -serial file:/tmp/src.log -monitor unix:/tmp/src.sock,server=on,wait=off \
		-append "$APPEND kf.mib=${MIB:-64} kf.rounds=1000000" >/tmp/src.qemu 2>&1 &
	local src=$!
	if ! wait_for /tmp/src.log "MEMCHECK ROUND 1 OK" "$T"; then
		status=source-guest-failed
		result="status=$status"
		kill -9 $src $dst 2>/dev/null
		wait 2>/dev/null
		return
	fi
	$HMP /tmp/dst.sock "migrate_set_capability postcopy-ram on" >/dev/null &&
	$HMP /tmp/dst.sock "migrate_set_capability postcopy-blocktime on" >/dev/null &&
	$HMP /tmp/dst.sock "migrate_set_capability postcopy-preempt $PREEMPT" >/dev/null &&
	$HMP /tmp/src.sock "migrate_set_capability postcopy-preempt $PREEMPT" >/dev/null &&
	$HMP /tmp/src.sock "migrate_set_capability postcopy-ram on" >/dev/null &&
	$HMP /tmp/src.sock "migrate -d tcp:127.0.0.1:4444" >/dev/null
	before=$(rounds_in /tmp/src.log)
	sleep 1
	$HMP /tmp/src.sock "migrate_start_postcopy" >/dev/null
	end=$(( $(now) + T ))
	while [ "$(now)" -lt "$end" ]; do
		info=$(migrate_info src)
		status=$(echo "$info" | sed -n 's/^Migration status: *//p' | tr -d '\r')
		case "$status" in completed|failed|cancelled) break ;; esac
		sleep 1
	done
	# The guest goes on at the destination: three more rounds of each
	# memcheck (one a vCPU), verified.
	if [ "$status" = completed ]; then
		end=$(( $(now) + T ))
		while [ "$(now)" -lt "$end" ]; do
			after=$(rounds_in /tmp/dst.log)
			[ "${after:-0}" -ge $((3 * SMP)) ] && break
			grep -q "MEMCHECK FAIL" /tmp/dst.log && break
			sleep 1
		done
	fi
	dinfo=$(migrate_info dst | tr -d '\r')
	$HMP /tmp/dst.sock quit >/dev/null 2>&1
	kill -9 $src $dst 2>/dev/null
	wait 2>/dev/null
	total=$(field "$info" "total time")
	downtime=$(field "$info" "downtime")
	blocktime=$(field "$dinfo" "postcopy blocktime")
	# HMP prints the per-vCPU list as a set (sorted, equal values merged).
	vcpu_blocktime=$(echo "$dinfo" | sed -n 's/^postcopy vcpu blocktime: *//p' | tr -d ' []')
	requests=$(field "$info" "postcopy request count")
	result="total_ms=${total:-?} downtime_ms=${downtime:-?} blocktime_ms=${blocktime:-?} vcpu_blocktime_set_ms=${vcpu_blocktime:-?} page_requests=${requests:-?} rounds_before=$before rounds_after=$after"
}

postcopy_ok() {
	[ "$status" = completed ] && [ "${after:-0}" -ge $((3 * SMP)) ] &&
		! grep -q "MEMCHECK FAIL" /tmp/src.log /tmp/dst.log
}

postcopy_failure() {
	echo "KF-QEMU $1 fail status=${status:-none} rounds_after=$after secs=$(( $(now) - s ))"
	echo "$info" | sed 's/^/  | /' | head -n 20
	show /tmp/src.log; show /tmp/dst.log; show /tmp/src.qemu; show /tmp/dst.qemu
}

test_postcopy() {
	run_postcopy "$STOCK"
	if postcopy_ok; then
		echo "KF-QEMU postcopy pass $result secs=$(( $(now) - s ))"
	else
		postcopy_failure postcopy
	fi
}

# eom_switch_ret ON: the destination's return value for turning
# exit-on-missing on (1) or off (0), from its trace.
eom_switch_ret() {
	sed -n "s/.*postcopy_exit_on_missing on=$1 ret=\(-*[0-9]*\).*/\1/p" /tmp/dst.qemu | head -n 1
}

# The patched QEMU: where the kernel has exit-on-missing (capability 512)
# the destination turns it on and its vCPUs fetch pages themselves; where
# it has not, QEMU is told so (ENOTSUP) and post-copy runs as stock.
test_postcopy_eom() {
	local cap on off faults want
	if [ ! -x "$PATCHED" ]; then
		echo "KF-QEMU postcopy-eom fail reason=no-patched-qemu-packed"
		return
	fi
	cap=$(/qemu/kvmcap 512)
	run_postcopy "$PATCHED" \
		-trace postcopy_exit_on_missing -trace postcopy_vcpu_missing_page
	on=$(eom_switch_ret 1)
	off=$(eom_switch_ret 0)
	faults=$(grep -c "postcopy_vcpu_missing_page" /tmp/dst.qemu)
	if [ "${cap:-0}" -gt 0 ]; then
		want="exit-on-missing on (ret=0), vCPU page requests > 0, off at the end (ret=0)"
		[ "$on" = 0 ] && [ "$faults" -gt 0 ] && [ "$off" = 0 ] && want=""
	else
		want="exit-on-missing refused (ret=-$ENOTSUP) and no vCPU faults"
		[ "$on" = "-$ENOTSUP" ] && [ "$faults" -eq 0 ] && want=""
	fi
	if postcopy_ok && [ -z "$want" ]; then
		echo "KF-QEMU postcopy-eom pass cap512=$cap eom_ret=${on:-none} vcpu_requests=$faults $result secs=$(( $(now) - s ))"
	elif postcopy_ok; then
		echo "KF-QEMU postcopy-eom fail cap512=$cap expected $want, got on ret=${on:-none} vcpu_requests=$faults off ret=${off:-none}"
		show /tmp/dst.qemu
	else
		postcopy_failure postcopy-eom
	fi
}

# fault_latency TRACE REQUEST_EVENT: "faults=N p50_us=N p99_us=N" of the
# faults in TRACE (QEMU's log backend with timestamps, "pid@sec.usec:event
# ... 0xADDR", lines of several threads put in time order first): from the
# first request of a page to its placement (postcopy_place_page[_zero]).
fault_latency() {
	grep '^[0-9]*@' "$1" | sort -t@ -k2,2n | awk -v req="$2" '
	function t(s) { sub(/^[0-9]*@/, "", s); sub(/:.*/, "", s); return s + 0 }
	function page(s) {
		if (!match(s, /(HVA|host)=0x[0-9a-f]+/)) return ""
		s = substr(s, RSTART, RLENGTH); sub(/^HVA/, "host", s); return s
	}
	$0 ~ ":" req " " { p = page($0); if (p != "" && !(p in asked)) asked[p] = t($1); next }
	/:postcopy_place_page(_zero)? / { p = page($0); if (p in asked) { print int((t($1) - asked[p]) * 1e6); delete asked[p] } }' |
	sort -n | awk '{ v[NR] = $1 }
	END {
		if (!NR) { print "faults=0 p50_us=- p99_us=-"; exit }
		printf "faults=%d p50_us=%d p99_us=%d\n", NR, v[int((NR - 1) * 0.5) + 1], v[int((NR - 1) * 0.99) + 1]
	}'
}

bench() {
	local smp qemu bin req ok
	# A bigger guest than the tests': 512 MiB, 256 of them written.
	# PREEMPT stays off: with postcopy-preempt on, QEMU 7.2's first
	# migration in the rig did not complete within the 300 s a step.
	MIB=256
	for smp in 1 2 4; do
		SMP=$smp
		OPTS=$(echo "$OPTS" | sed "s/-smp [0-9]*/-smp $smp/; s/-m [0-9]*M/-m 512M/")
		for qemu in stock eom; do
			case $qemu in
			stock) bin=$STOCK req=postcopy_ram_fault_thread_request ;;
			eom) bin=$PATCHED req=postcopy_vcpu_missing_page ;;
			esac
			run_postcopy "$bin" -msg timestamp=on -trace "$req" \
				-trace postcopy_place_page -trace postcopy_place_page_zero
			ok=0
			postcopy_ok && ok=1
			[ "$ok" = 1 ] || { show /tmp/src.log; show /tmp/dst.qemu; }
			echo "KF-QEMU-BENCH smp=$smp preempt=$PREEMPT qemu=$qemu mib=$MIB ok=$ok $result $(fault_latency /tmp/dst.qemu "$req")"
		done
	done
}

echo "KF-QEMU-BEGIN $(/qemu/qemu-system-x86_64 --version | head -n 1)"
if [ "${2:-}" = -bench ]; then
	bench
	echo "KF-QEMU-END"
	exit 0
fi
test_boot
test_postcopy
test_postcopy_eom
echo "KF-QEMU-END"
