#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Prove the series bisectable: starting from the pristine source, apply one
# patch at a time and after each
#   - check the patch's From:/Signed-off-by: (the team identity),
#   - run scripts/checkpatch.pl --strict on it (no error, warning or check;
#     only the MAINTAINERS question for a new selftest file and the lookup
#     of a Fixes: commit in history the tarball lacks are ignored),
#   - build bzImage with the rig config (no compiler warning),
#   - install the UAPI headers and compile <linux/kvm.h> on its own,
#   - if TESTS_DIR is set: boot that kernel in the rig (2 vCPUs) and run
#     the series' tests (TESTS_DIR/kernel_*), which must not fail (they
#     skip what the kernel lacks).
# After the last patch, compare include/kvmfault/uapi.h with the headers.
#
# The verdict is a function of its inputs (the source tarball, the patches,
# the config, these scripts and the tests), so a pass is kept in the cache
# under a hash of all of them and not redone while they stay the same.
# Each step's kernel image is kept too, under a hash of the tree, the config
# and its patches, so a change to the tests alone builds nothing.
#
# usage: check-series.sh   env: KVMFAULT_CACHE, KBASE, TESTS_DIR, JOBS,
#                          KVMFAULT_SERIES_RECHECK=1 (ignore a kept pass)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
self=$here/$(basename "$0")
CACHE=${KVMFAULT_CACHE:-/var/tmp/kvmfault}
JOBS=${JOBS:-$(nproc)}
IDENTITY='kvmfault developers <developers@kvmfault.invalid>'

die() { echo "check-series: FAIL: $*" >&2; exit 1; }
say() { echo "check-series: $*"; }

BASE=${KBASE:?KBASE: the kernel base, 6.12 or 6.1}
series_dir=$here/patches/$BASE

# The inputs of the verdict: build.sh's key (tarball, patches, config,
# build.sh) and everything that builds, boots and judges each step.
verdict_key=$( {
	basename "$("$here/build.sh" --print-dir)"
	cat "$self" "$here/rig.sh" "$here/rig-common.sh" "$here/uapi-check.sh" \
		"$here/initramfs/init" "$here/../tests/run-tests.sh" \
		"$here/../include/kvmfault/uapi.h"
	if [ -n "${TESTS_DIR:-}" ]; then
		echo "tests"
		cat "$TESTS_DIR"/kernel_*
	fi
} | sha256sum | cut -c1-16)
verdict=$CACHE/series-verdict-$BASE-$verdict_key
if [ -r "$verdict" ] && [ "${KVMFAULT_SERIES_RECHECK:-0}" != 1 ]; then
	say "$(cat "$verdict")"
	say "kept pass for unchanged inputs ($verdict, $(date -r "$verdict" '+%F %T')); KVMFAULT_SERIES_RECHECK=1 redoes it"
	exit 0
fi

# Make sure the pristine tree exists (build.sh extracts it) and take the
# same lock as build.sh: both use $CACHE/src-$BASE.
"$here/build.sh" --apply-only >/dev/null
fragments=$(KFRAGMENTS='' "$here/build.sh" --print-fragments)
obj=$(KFRAGMENTS='' "$here/build.sh" --print-obj)
exec 9>"$CACHE/.lock"
flock 9

src=$CACHE/src-$BASE
work=$CACHE/series-check-$BASE
rm -rf "$work"
mkdir -p "$obj" "$work"

patches=()
while read -r p; do
	case "$p" in ''|'#'*) continue ;; esac
	patches+=("$series_dir/$p")
done <"$series_dir/series"

cd "$src"
git reset -q --hard base
git clean -q -fdx -e .kvmfault-base
make -s O="$obj" tinyconfig >/dev/null
# shellcheck disable=SC2086
scripts/kconfig/merge_config.sh -m -O "$obj" "$obj/.config" $fragments >/dev/null 2>&1
make -s O="$obj" olddefconfig 2>/dev/null

# A step's kernel image is a function of the pristine tree, the config and
# patches 1..N alone: it is kept under a hash of those, so that a change to
# the tests boots the kept images instead of building each step again.
step_key() {
	{
		git -C "$src" rev-parse base
		# shellcheck disable=SC2086
		cat $fragments "$self"
		gcc --version | head -n 1
		cat "${patches[@]:0:$1}"
	} | sha256sum | cut -c1-16
}
kept_images=()

n=0
total_start=$(date +%s)
for p in "${patches[@]}"; do
	n=$((n + 1))
	name=$(basename "$p")
	say "[$BASE $n/${#patches[@]}] $name"

	grep -qx "From: $IDENTITY" "$p" || die "$name: From: is not '$IDENTITY'"
	grep -qx "Signed-off-by: $IDENTITY" "$p" || die "$name: no 'Signed-off-by: $IDENTITY'"

	git apply --index "$p" 2>"$work/apply.err" ||
		{ cat "$work/apply.err" >&2; die "$name does not apply on top of patches 1..$((n - 1))"; }

	# FILE_PATH_CHANGES asks whether MAINTAINERS needs updating for a new
	# file; a new KVM selftest is covered by the KVM entry already.
	# UNKNOWN_COMMIT_ID: the tree is a release tarball without upstream's
	# history, so checkpatch cannot look up the commit a Fixes: tag names
	# (it still checks the tag's form).
	if ! scripts/checkpatch.pl --strict --no-tree -q \
		--ignore FILE_PATH_CHANGES,UNKNOWN_COMMIT_ID \
		"$p" >"$work/checkpatch-$n.txt" 2>&1; then
		cat "$work/checkpatch-$n.txt" >&2
		die "$name: checkpatch.pl --strict is not clean"
	fi
	if [ -s "$work/checkpatch-$n.txt" ]; then
		cat "$work/checkpatch-$n.txt" >&2
		die "$name: checkpatch.pl --strict reported something"
	fi
	say "  checkpatch --strict: clean"

	image=$CACHE/series-image-$BASE-$(step_key "$n")
	kept_images+=("$image")
	if [ -r "$image" ]; then
		say "  build: ok (kept image of patches 1..$n)"
	else
		start=$(date +%s)
		if ! make -j"$JOBS" O="$obj" bzImage >"$work/build-$n.log" 2>&1; then
			grep -E 'error|Error' "$work/build-$n.log" | head -n 30 >&2
			die "$name: the kernel does not build with patches 1..$n (log $work/build-$n.log)"
		fi
		if grep -E ': warning:' "$work/build-$n.log" >&2; then
			die "$name: compiler warnings with patches 1..$n"
		fi
		cp "$obj/arch/x86/boot/bzImage" "$image.tmp" && mv "$image.tmp" "$image"
		say "  build: ok ($(( $(date +%s) - start ))s)"
	fi

	rm -rf "$work/hdr"
	make -s O="$obj" INSTALL_HDR_PATH="$work/hdr" headers_install >/dev/null
	printf '#include <linux/kvm.h>\nint main(void) { return sizeof(struct kvm_run) > 0 ? 0 : 1; }\n' >"$work/hdr.c"
	gcc -std=gnu11 -Wall -Werror -I"$work/hdr/include" -fsyntax-only "$work/hdr.c" ||
		die "$name: the installed <linux/kvm.h> does not compile"
	say "  headers_install + <linux/kvm.h>: ok"

	if [ -n "${TESTS_DIR:-}" ]; then
		# The series' own tests (tests/kernel_*); the full suite runs
		# on the final kernel in "make -C kernel rig".
		if [ ! -d "$work/tests" ]; then
			mkdir -p "$work/tests"
			cp "$TESTS_DIR"/kernel_* "$work/tests/" 2>/dev/null ||
				die "no kernel_* tests in $TESTS_DIR"
		fi
		kdir=$work/kernel-$n
		mkdir -p "$kdir"
		cp "$image" "$kdir/bzImage"
		touch "$kdir/.done"
		if ! RIG_KERNEL_DIR="$kdir" RIG_SMP=2 RIG_LOG_DIR="$work/rig-$n" \
			"$here/rig.sh" tests "$work/tests" >"$work/rig-$n.txt" 2>&1; then
			cat "$work/rig-$n.txt" >&2
			die "$name: the rig tests fail with patches 1..$n"
		fi
		say "  rig (2 vCPUs): $(tail -n 1 "$work/rig-$n.txt")"
	fi
done

"$here/uapi-check.sh" "$work/hdr/include" "$here/../include/kvmfault/uapi.h"
# Images of other versions of the series are not kept.
for f in "$CACHE/series-image-$BASE-"*; do
	case " ${kept_images[*]} " in *" $f "*) ;; *) rm -f "$f" ;; esac
done
result="OK: $BASE: ${#patches[@]} patches, each applies, passes checkpatch --strict and builds$( [ -n "${TESTS_DIR:-}" ] && echo ' and passes the rig tests') ($(( $(date +%s) - total_start ))s)"
say "$result"
echo "$result" >"$verdict.tmp" && mv "$verdict.tmp" "$verdict"
