#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The QEMU phase: unchanged QEMU (Debian's qemu-system-x86, with its shared
# libraries and firmware packed into the rig's initramfs) runs a Linux guest
# with -accel kvm inside the rig, on the patched kernel and on the unpatched
# kernel of the same base and config (the control): a boot with a memory
# check, and QEMU's own post-copy live migration between two QEMU processes
# over loopback, the guest verifying its memory at the destination
# (qemu/run.sh).  Then the same post-copy with our patched QEMU
# (../qemu/build.sh), whose destination vCPUs fetch missing pages
# themselves where the kernel has exit-on-missing.  The series must not
# change the outcome: every test passes on the patched kernel; a test that
# fails on both is reported as a property of the rig, a test that fails on
# ours only is a regression.
#
# The guest kernel is the unpatched kernel of the base, the same in every run.
#
# usage: qemu.sh          KBASE=6.12 (default) or 6.1
# env:   KVMFAULT_CACHE, KVMFAULT_QEMU_CPUS, KVMFAULT_TIME_SCALE, QEMU_BIN,
#        QEMU_ONLY (patched or control: one kernel only; bench)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${KVMFAULT_CACHE:-/var/tmp/kvmfault}
BASE=${KBASE:-6.12}
export KBASE=$BASE
QEMU_BIN=${QEMU_BIN:-/usr/bin/qemu-system-x86_64}
# shellcheck source=rig-common.sh
. "$here/rig-common.sh"

die() { echo "qemu: error: $*" >&2; exit 2; }

[ -x "$QEMU_BIN" ] || die "$QEMU_BIN missing: apt-get install qemu-system-x86"
# firmware NAME: where Debian keeps QEMU's firmware file NAME.
firmware() {
	local d
	for d in /usr/share/qemu /usr/share/seabios; do
		[ -r "$d/$1" ] && { echo "$d/$1"; return 0; }
	done
	return 1
}
FIRMWARE="bios-256k.bin linuxboot_dma.bin kvmvapic.bin"
for f in $FIRMWARE; do
	firmware "$f" >/dev/null || die "QEMU firmware $f missing: apt-get install qemu-system-x86 seabios"
done
command -v gcc >/dev/null || die "gcc missing"

# The patched QEMU (qemu/build.sh: Debian's source with qemu/patches/),
# built once per input hash.
kfqemu=$("$here/../qemu/build.sh" | tail -n 1) || die "cannot build the patched QEMU"
[ -x "$kfqemu/qemu-system-x86_64" ] || die "no patched QEMU in $kfqemu"

kdir=$("$here/build.sh" --print-dir)
[ -f "$kdir/.done" ] || die "no patched $BASE kernel built for the current inputs: make -C kernel KBASE=$BASE"
ckdir=$(KFLAVOR=base KSERIES=/dev/null "$here/build.sh" | tail -n 1) ||
	die "cannot build the unpatched $BASE kernel"

work=$CACHE/qemu-$BASE
st=$work/initramfs
rm -rf "$work"
mkdir -p "$st/qemu/data" "$st/qemu/kf" "$st/lib64" "$st/lib/x86_64-linux-gnu" "$work/guest/bin" "$work/guest/proc"

# Both QEMUs, the libraries they load and the firmware of the pc machine.
cp "$QEMU_BIN" "$st/qemu/qemu-system-x86_64"
cp "$kfqemu/qemu-system-x86_64" "$st/qemu/kf/"
ldd "$QEMU_BIN" "$kfqemu/qemu-system-x86_64" | awk '$3 ~ /^\// { print $3 }' | sort -u |
while read -r lib; do
	cp -L "$lib" "$st/lib/x86_64-linux-gnu/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$st/lib64/"
for f in $FIRMWARE; do
	cp -L "$(firmware "$f")" "$st/qemu/data/"
done

# The guest: the unpatched kernel and a busybox initramfs with memcheck.
gcc -static -O2 -Wall -Werror -o "$work/guest/bin/memcheck" "$here/qemu/memcheck.c" ||
	die "cannot build memcheck"
gcc -static -O2 -Wall -Werror -o "$st/qemu/hmp" "$here/qemu/hmp.c" ||
	die "cannot build hmp"
gcc -static -O2 -Wall -Werror -o "$st/qemu/kvmcap" "$here/qemu/kvmcap.c" ||
	die "cannot build kvmcap"
cp "$BUSYBOX" "$work/guest/bin/busybox"
ln -sf busybox "$work/guest/bin/sh"
cp "$here/qemu/guest-init" "$work/guest/init"
chmod +x "$work/guest/init"
(cd "$work/guest" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$st/qemu/guest.gz"
cp "$ckdir/bzImage" "$st/qemu/bzImage"
cp "$here/qemu/run.sh" "$st/qemu/run.sh"
chmod +x "$st/qemu/run.sh"
make_initrd "$st" "$work/initrd.gz"

scale=$(rig_time_scale)
T=$(scaled 300 "$scale")
BOOT_T=$(scaled 1200 "$scale")
echo "qemu: $("$QEMU_BIN" --version | head -n 1) in the rig; guest kernel $(basename "$ckdir"); time scale $scale: ${T}s a step"

# run_on KDIR NAME: boot KDIR with the QEMU tests; their KF-QEMU lines go
# to $work/NAME.results.
run_on() {
	local kd=$1 name=$2 log=$work/$2.serial start rc
	start=$(date +%s)
	rig_boot "$kd" 2 "$work/initrd.gz" "$log" "$BOOT_T" loglevel=4 "kf.mode=${MODE:-qemu}" "kf.timeout=$T"
	rc=$?
	grep -a '^KF-QEMU \|^KF-QEMU-BENCH ' "$log" >"$work/$name.results"
	sed -n '/^KF-QEMU-BEGIN/,/^KF-QEMU-END/p' "$log" | grep -a -v '^KF-QEMU-' | sed "s/^/[$name] /"
	echo "qemu: $name: $(wc -l <"$work/$name.results") results in $(( $(date +%s) - start ))s (qemu rc $rc, serial log $log)"
	rig_check_splat "$log" || echo "KF-QEMU kernel fail splat" >>"$work/$name.results"
}

# QEMU_ONLY=patched or control runs one kernel once (a look at a failure);
# QEMU_ONLY=bench runs stock against patched post-copy on the patched
# kernel (bench/qemu-postcopy-eom.sh prints the table).
case "${QEMU_ONLY:-}" in
patched) run_on "$kdir" patched; exit 0 ;;
control) run_on "$ckdir" control; exit 0 ;;
bench) MODE=qemu-bench BOOT_T=$((BOOT_T * 3)) run_on "$kdir" bench
       echo "qemu: bench results in $work/bench.results"; exit 0 ;;
esac

# The verdict is statistical (as for the selftests): a test that fails is
# rerun on both kernels, up to QEMU_RERUNS rounds.  It passes if it passed on
# the patched kernel in some round; it is a regression only if it failed on
# the patched kernel every time and passed on the control every time.
TESTS="boot postcopy postcopy-eom"
RERUNS=${QEMU_RERUNS:-2}
# outcomes NAME TEST: the results of TEST in every run of NAME, e.g. "fail pass".
outcomes() {
	cat "$work/$1".results* 2>/dev/null | awk -v t="$2" '$2 == t { printf "%s ", $3 }'
}
unresolved() {
	local t
	for t in $TESTS; do
		case " $(outcomes patched "$t") " in *" pass "*) ;; *) echo "$t" ;; esac
		case " $(outcomes control "$t") " in *" pass "*) ;; *) echo "$t" ;; esac
	done
}
run_on "$kdir" patched
run_on "$ckdir" control
round=0
while [ -n "$(unresolved)" ] && [ "$round" -lt "$RERUNS" ]; do
	round=$((round + 1))
	echo "qemu: rerun $round of $RERUNS for: $(unresolved | sort -u | tr '\n' ' ')"
	mv "$work/patched.results" "$work/patched.results.$round"
	mv "$work/control.results" "$work/control.results.$round"
	run_on "$kdir" patched
	run_on "$ckdir" control
done

pass=0 fail=0
for t in $TESTS; do
	ours=$(outcomes patched "$t")
	ctl=$(outcomes control "$t")
	last=$(cat "$work"/patched.results* | awk -v t="$t" '$2 == t && $3 == "pass"' | tail -n 1 | cut -d' ' -f4-)
	case " $ours " in
	*" pass "*)
		note=""
		case " $ours " in *" fail "*) note=" (failed, then passed on a rerun: $ours)" ;; esac
		case " $ctl " in *" pass "*) ;; *) note="$note; the control never passed (${ctl:-no result})" ;; esac
		echo "PASS qemu/$t: $last$note"
		pass=$((pass + 1)) ;;
	*)
		case " $ctl " in
		*" fail "*|"  ") echo "FAIL qemu/$t: fails on the patched kernel (${ours:-no result}) and on the control (${ctl:-no result}): a property of the rig, still a failure" ;;
		*) echo "FAIL qemu/$t: REGRESSION: ${ours:-no result} on the patched kernel, ${ctl} on the control" ;;
		esac
		fail=$((fail + 1)) ;;
	esac
done
if cat "$work"/patched.results* | grep -q '^KF-QEMU kernel fail'; then
	echo "FAIL qemu/kernel: the patched kernel splat (serial logs in $work)"
	fail=$((fail + 1))
fi
echo "qemu: reruns $round"
echo "qemu: $pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
