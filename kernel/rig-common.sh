# SPDX-License-Identifier: GPL-2.0
#
# Shared by rig.sh and selftests.sh (sourced, bash): how a rig guest is
# booted, how long it may take, and what in its serial log is a failure.
#
# env: KVMFAULT_QEMU_CPUS  host CPU list (taskset -c) for QEMU, e.g. "0" to
#                          give the rig guests fewer host CPUs (stress mode)
#      KVMFAULT_TIME_SCALE if set, the time scale as is (else measured)
#      KARCH               x86_64 (the default) or arm64: which rig
#      BUSYBOX             static busybox for the initramfs (on arm64, an
#                          arm64 one; scripts/deps.sh --rig fetches it)

rig_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KARCH=${KARCH:-x86_64}
if [ "$KARCH" = arm64 ]; then
	BUSYBOX=${BUSYBOX:-${KVMFAULT_CACHE:-/var/tmp/kvmfault}/busybox-arm64/busybox}
	RIG_QEMU=qemu-system-aarch64
else
	BUSYBOX=${BUSYBOX:-/bin/busybox}
	RIG_QEMU=qemu-system-x86_64
fi

# rig_requirements: what a boot needs that is missing, as an error message;
# nothing when all is there.
rig_requirements() {
	if ! command -v "$RIG_QEMU" >/dev/null; then
		echo "$RIG_QEMU missing: scripts/deps.sh --rig"
	elif [ ! -x "$BUSYBOX" ]; then
		echo "$BUSYBOX missing: scripts/deps.sh --rig (busybox-static${KARCH/x86_64/})"
	elif file -L "$BUSYBOX" 2>/dev/null | grep -q 'dynamically linked'; then
		echo "$BUSYBOX is dynamically linked: install busybox-static"
	fi
}

# rig_qemu_cmd KDIR SMP INITRD APPEND [QEMU ARGS...]: the QEMU command line
# of one rig boot, in the array rig_cmd.  x86: AMD SVM with nested paging
# (KVM runs inside); arm64: the virt board at EL2 with a GICv3 and MTE.
# Both on the software CPU, the serial console on stdio.
rig_qemu_cmd() {
	local kd=$1 smp=$2 initrd=$3 append=$4
	shift 4
	if [ "$KARCH" = arm64 ]; then
		# pauth-impdef: QEMU's own pointer authentication algorithm,
		# much faster in software than the architected QARMA.
		rig_cmd=("$RIG_QEMU" -M virt,virtualization=on,mte=on,gic-version=3
			-cpu max,pauth-impdef=on -kernel "$kd/Image"
			-append "console=ttyAMA0 rdinit=/init panic=-1 oops=panic $append")
	else
		rig_cmd=("$RIG_QEMU" -cpu max -kernel "$kd/bzImage"
			-append "console=ttyS0 rdinit=/init panic=-1 oops=panic $append")
	fi
	rig_cmd+=(-accel tcg -m "${RIG_MEM:-2G}" -smp "$smp" -nographic -no-reboot -nodefaults
		-serial stdio -display none -initrd "$initrd" "$@")
}

# Kernel messages that fail a run: printk lines (they carry a [time] prefix
# with PRINTK_TIME) announcing a warning, BUG (KASAN reports are "BUG:
# KASAN: ..."), oops, lockdep report, UBSAN, RCU stall or hung task.  Not
# the boot banners of the debug options ("RCU lockdep checking is enabled").
SPLAT_RE='^\[ *[0-9]+\.[0-9]+\] (.*(WARNING:|BUG:|BUG kernel|kernel BUG|Oops|general protection fault|Kernel panic|cut here|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|lockdep is turned off|DEBUG_LOCKS_WARN_ON|bad unlock balance|held lock freed|UBSAN:|self-detected stall|rcu_.* detected stalls|blocked for more than|soft lockup|hard LOCKUP))'

# The reports of CPUs or tasks that stopped making progress.
STALL_RE='(self-detected stall|rcu_.* detected stalls|blocked for more than|soft lockup|hard LOCKUP)'

# rig_check_splat LOG [hung]: 1, after printing them, when LOG has kernel
# splats.  With "hung" (a boot the rig stopped as hung, whose test it
# reruns), the stall reports are that hang's own symptom: printed, not
# counted; the rerun judges the hang.  Every other splat counts.
rig_check_splat() {
	local log=$1 hits
	hits=$(grep -a -E "$SPLAT_RE" "$log")
	if [ "${2:-}" = hung ] && [ -n "$hits" ]; then
		if ! echo "$hits" | grep -a -q -v -E "$STALL_RE"; then
			echo "rig: stall reports of the hung boot in $log (not counted: the rerun judges the hang):" >&2
			echo "$hits" | head -n 5 | sed 's/^/  ~ /' >&2
			return 0
		fi
	fi
	if [ -n "$hits" ]; then
		echo "rig: kernel splat in $log:" >&2
		grep -a -E -A 12 "$SPLAT_RE" "$log" | head -n 60 | sed 's/^/  ! /' >&2
		return 1
	fi
	return 0
}

# rig_boot KDIR SMP INITRD LOG SECONDS APPEND...: one boot of the kernel of
# KDIR under QEMU's software CPU (rig_qemu_cmd), the serial console in LOG,
# killed after SECONDS.  With rig_swap_disk set (a variable of the caller, rig.sh), that
# file (created anew, sparse, 0600: guest memory goes there; removed after
# the boot) is the guest's virtio disk /dev/vda, which the initramfs turns
# into swap.  With rig_idle_secs set (the caller's too), a console silent
# for that long is a hung guest: QEMU is stopped then, not at SECONDS.
# Returns QEMU's status, 124 on timeout or a hung guest.
rig_boot() {
	local kd=$1 smp=$2 initrd=$3 log=$4 secs=$5 disk=() rc qpid
	shift 5
	if [ -n "${rig_swap_disk:-}" ]; then
		rm -f "$rig_swap_disk"
		(umask 077 && truncate -s 256M "$rig_swap_disk") || return 1
		disk=(-drive "file=$rig_swap_disk,format=raw,if=virtio")
	fi
	rig_qemu_cmd "$kd" "$smp" "$initrd" "$*" "${disk[@]}"
	timeout --foreground -k 10 "$secs" $(rig_qemu_prefix) "${rig_cmd[@]}" \
		</dev/null >"$log" 2>&1 &
	qpid=$!
	if [ -n "${rig_idle_secs:-}" ] && ! rig_watch_idle "$qpid" "$log" "$rig_idle_secs"; then
		wait "$qpid"
		rc=124
	else
		wait "$qpid"
		rc=$?
	fi
	[ -z "${rig_swap_disk:-}" ] || rm -f "$rig_swap_disk"
	return $rc
}

# rig_watch_idle PID LOG SECONDS: until PID ends, 0; 1 after stopping it
# when LOG did not grow for SECONDS.
rig_watch_idle() {
	local pid=$1 log=$2 idle_max=$3 idle=0 size last=-1
	while kill -0 "$pid" 2>/dev/null; do
		sleep 5
		size=$(stat -c %s "$log" 2>/dev/null || echo 0)
		if [ "$size" = "$last" ]; then
			idle=$((idle + 5))
		else
			idle=0
			last=$size
		fi
		if [ "$idle" -ge "$idle_max" ]; then
			echo "rig: no console output for ${idle}s: the guest hangs; stopping it" >>"$log"
			kill -TERM "$pid" 2>/dev/null
			return 1
		fi
	done
	return 0
}

# The command prefix that runs QEMU on the rig's host CPUs.
rig_qemu_prefix() {
	if [ -n "${KVMFAULT_QEMU_CPUS:-}" ]; then
		echo "taskset -c $KVMFAULT_QEMU_CPUS"
	fi
}

# How many host CPUs a CPU list such as "0", "0-1" or "0,2" names.
rig_count_cpus() {
	echo "$1" | tr ',' '\n' | awk -F- '{ n += (NF == 2 ? $2 - $1 + 1 : 1) } END { print n }'
}

# The factor by which the rig's timeouts grow on this machine now: the
# calibration loop on the CPUs QEMU will get, times how much fewer host
# CPUs those are than the machine has (TCG runs a thread per guest CPU).
rig_time_scale() {
	local cpus=${KVMFAULT_QEMU_CPUS:-} scale share
	scale=$("$rig_here/../scripts/calibrate.sh" "$cpus")
	case $scale in
	[0-9]*) ;;
	*) echo "rig: scripts/calibrate.sh gave no time scale ('$scale')" >&2; exit 2 ;;
	esac
	if [ -n "$cpus" ] && [ -z "${KVMFAULT_TIME_SCALE:-}" ]; then
		share=$(rig_count_cpus "$cpus")
		scale=$(awk -v s="$scale" -v n="$(nproc)" -v c="$share" \
			'BEGIN { f = c > 0 && n > c ? n / c : 1; printf "%.1f\n", s * f }')
	fi
	echo "$scale"
}

# scaled SECONDS SCALE: SECONDS times SCALE, rounded up to a whole second.
scaled() {
	awk -v s="$1" -v f="$2" 'BEGIN { t = s * f; printf "%d\n", (t == int(t) ? t : int(t) + 1) }'
}

# make_initrd STAGING OUT: busybox + /init + whatever STAGING holds.
make_initrd() {
	local st=$1 out=$2
	mkdir -p "$st/bin" "$st/dev" "$st/proc" "$st/sys" "$st/tmp" "$st/sbin"
	cp "$BUSYBOX" "$st/bin/busybox"
	ln -sf busybox "$st/bin/sh"
	cp "$rig_here/initramfs/init" "$st/init"
	cp "$rig_here/../tests/run-tests.sh" "$st/bin/run-tests.sh"
	chmod +x "$st/init" "$st/bin/run-tests.sh"
	(cd "$st" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$out"
}
