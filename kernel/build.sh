#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the rig kernel of one base: linux-source-$KBASE + the series in
# kernel/patches/$KBASE/, configured from tinyconfig + kernel/rig.config +
# kernel/rig-$KBASE.config (if present) + optional extra fragments; for
# KARCH=arm64, cross-compiled from tinyconfig + kernel/rig-arm64.config.
#
# Layout under $KVMFAULT_CACHE (outside the repository checkout):
#   src-$KBASE/   pristine source as a git tree (tag "base"), reused forever;
#               for each build it is reset to "base" and the series applied
#               (git only rewrites the files that differ, so the object
#               directory rebuilds incrementally)
#   obj-$KBASE[-arm64]-$CONF/  kbuild object directory (O=), one per base,
#               architecture and config
#               (CONF hashes the fragments): the patched kernel, the
#               unpatched control and each step of check-series share it,
#               so switching between them rebuilds only what differs
#   kernel-$KBASE-$FLAVOR-$KEY/  finished build: bzImage (arm64: Image),
#               config, headers/
#               (headers_install); KEY is a hash of every input (tarball,
#               patches, fragments, this script)
#   current-$KBASE-$FLAVOR -> kernel-$KBASE-$FLAVOR-$KEY
#
# A build whose key already exists is reused as is.
#
# usage: build.sh [--print-dir | --print-fragments | --print-obj | --apply-only]
#   env: KVMFAULT_CACHE, KBASE (6.12 or 6.1; default 6.12), LINUX_TARBALL
#        (default /usr/src/linux-source-$KBASE.tar.xz), KFLAVOR (name of
#        the build flavour; default "rig", on arm64 "arm64"), KFRAGMENTS
#        (extra fragment files), KSERIES (series file; /dev/null for an
#        unpatched control kernel), KARCH (x86_64, the default, or arm64),
#        JOBS
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${KVMFAULT_CACHE:-/var/tmp/kvmfault}
BASE=${KBASE:?KBASE: the kernel base, 6.12 or 6.1}
TARBALL=${LINUX_TARBALL:-/usr/src/linux-source-$BASE.tar.xz}
KARCH=${KARCH:-x86_64}
case $KARCH in
x86_64) FLAVOR=${KFLAVOR:-rig} image=arch/x86/boot/bzImage ;;
arm64) FLAVOR=${KFLAVOR:-arm64} image=arch/arm64/boot/Image
	export ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- ;;
*) echo "kernel: error: KARCH is x86_64 or arm64, not '$KARCH'" >&2; exit 1 ;;
esac
JOBS=${JOBS:-$(nproc)}
SERIES_DIR=$here/patches/$BASE

log() { echo "kernel: $*" >&2; }
die() { echo "kernel: error: $*" >&2; exit 1; }

[ -n "${KSERIES:-}" ] || [ -d "$SERIES_DIR" ] ||
	die "no series for base '$BASE' (kernel/patches/$BASE/): KBASE is one of $(cd "$here/patches" && echo */ | tr -d /)"
# The fragments: common, then the base's own, then the flavour's extras.
if [ "$KARCH" = arm64 ]; then
	FRAGMENTS="$here/rig-arm64.config"
	command -v aarch64-linux-gnu-gcc >/dev/null ||
		die "aarch64-linux-gnu-gcc missing: make -C kernel deps (gcc-aarch64-linux-gnu)"
else
	FRAGMENTS="$here/rig.config"
	[ -r "$here/rig-$BASE.config" ] && FRAGMENTS="$FRAGMENTS $here/rig-$BASE.config"
fi
FRAGMENTS="$FRAGMENTS ${KFRAGMENTS:-}"
# shellcheck disable=SC2086
obj=$CACHE/obj-$BASE$([ "$KARCH" = x86_64 ] || echo "-$KARCH")-$(cat $FRAGMENTS | sha256sum | cut -c1-8)
case "${1:-}" in
--print-fragments) echo "$FRAGMENTS"; exit 0 ;;
--print-obj) echo "$obj"; exit 0 ;;
esac

[ -r "$TARBALL" ] || die "$TARBALL missing: run 'make -C kernel deps' (apt-get install linux-source-$BASE)"
# KSERIES: another series file, e.g. /dev/null for an unpatched control
# kernel (use it with its own KFLAVOR, e.g. "base").
SERIES_FILE=${KSERIES:-$SERIES_DIR/series}
[ -r "$SERIES_FILE" ] || die "$SERIES_FILE missing"

patches=()
while read -r p; do
	case "$p" in ''|'#'*) continue ;; esac
	[ -r "$SERIES_DIR/$p" ] || die "$SERIES_FILE lists $p, but $SERIES_DIR/$p does not exist"
	patches+=("$SERIES_DIR/$p")
done <"$SERIES_FILE"

# The key covers everything the kernel image depends on.
key=$( {
	stat -c '%n %s %Y' "$TARBALL"
	echo "base $BASE flavor $FLAVOR"
	[ "$KARCH" = x86_64 ] || echo "arch $KARCH"
	echo "series ${#patches[@]}"
	for f in "${patches[@]}" $FRAGMENTS "$here/build.sh"; do
		echo "== $(basename "$f")"; cat "$f"
	done
} | sha256sum | cut -c1-16)
out=$CACHE/kernel-$BASE-$FLAVOR-$key

if [ "${1:-}" = --print-dir ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$CACHE"
# One build at a time per cache (CI jobs or engineers sharing the machine).
exec 9>"$CACHE/.lock"
flock 9


# --apply-only always resets the source tree to this series (selftests.sh
# builds the selftests of exactly the kernel it tests from it).
if [ -f "$out/.done" ] && [ "${1:-}" != --apply-only ]; then
	log "reusing cached build $out (inputs unchanged)"
	ln -sfn "$(basename "$out")" "$CACHE/current-$BASE-$FLAVOR"
	echo "$out"
	exit 0
fi

# --- pristine source tree, extracted once -------------------------------
src=$CACHE/src-$BASE
srcid=$(stat -c '%s %Y' "$TARBALL")
if [ ! -f "$src/.kvmfault-base" ] || [ "$(cat "$src/.kvmfault-base")" != "$srcid" ]; then
	log "extracting $TARBALL into $src"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	tar -C "$src.tmp" -xf "$TARBALL"
	top=$(find "$src.tmp" -mindepth 1 -maxdepth 1 -type d | head -n1)
	mv "$top" "$src"
	rmdir "$src.tmp"
	log "recording the pristine tree (git, tag base)"
	(
		cd "$src"
		git init -q .
		git config user.name "kvmfault developers"
		git config user.email developers@kvmfault.invalid
		git config gc.auto 0
		# Debian's top-level .gitignore ignores everything: force.
		git add -f -A .
		git commit -q -m "pristine $(basename "$TARBALL")"
		git tag base
	)
	echo "$srcid" >"$src/.kvmfault-base"
fi

# --- apply the series -----------------------------------------------------
cd "$src"
git reset -q --hard base
git clean -q -fdx -e .kvmfault-base
n=0
for p in "${patches[@]}"; do
	n=$((n + 1))
	if ! git apply --index --whitespace=nowarn "$p" 2>"$CACHE/apply.err"; then
		cat "$CACHE/apply.err" >&2
		die "patch $n ($(basename "$p")) does not apply to $(basename "$TARBALL"); the tree is left at $src"
	fi
	log "applied $(basename "$p")"
done
if [ "${1:-}" = --apply-only ]; then
	exit 0
fi

# --- configure and build --------------------------------------------------
mkdir -p "$obj"
log "configuring: tinyconfig + $(for f in $FRAGMENTS; do basename "$f"; done | tr '\n' ' ')"
make -s O="$obj" tinyconfig >/dev/null
# shellcheck disable=SC2086
scripts/kconfig/merge_config.sh -m -O "$obj" "$obj/.config" $FRAGMENTS >"$CACHE/merge.log" 2>&1 ||
	{ cat "$CACHE/merge.log" >&2; die "merge_config failed"; }
make -s O="$obj" olddefconfig 2>>"$CACHE/merge.log"
# Every option the fragments ask for must have survived olddefconfig, the
# last fragment's word for an option standing (as in merge_config.sh).
# set_later OPT FRAGMENT...: whether a fragment after this one sets OPT.
set_later() {
	local opt=$1
	shift
	[ $# -gt 0 ] && grep -qE "^($opt=|# $opt is not set)" "$@" </dev/null
}
missing=0
n=0
for f in $FRAGMENTS; do
	n=$((n + 1))
	# shellcheck disable=SC2086
	later=$(echo $FRAGMENTS | cut -s -d' ' -f$((n + 1))-)
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*|"# CONFIG_"*" is not set")
			opt=${line#\# }; opt=${opt%%[= ]*}
			# shellcheck disable=SC2086
			set_later "$opt" $later && continue ;;
		esac
		case "$line" in
		CONFIG_*=n) opt=${line%%=*}
			if grep -q "^$opt=" "$obj/.config"; then log "config: $opt should be off"; missing=1; fi ;;
		CONFIG_*=*) grep -qx "$line" "$obj/.config" && continue
			opt=${line%%=*}
			# An option the series adds does not exist without it
			# (the unpatched control, a bisection step).
			if ! grep -rqxE --include='Kconfig*' "(menu)?config ${opt#CONFIG_}" .; then
				log "config: $opt is not in this tree (added by the series?): skipped"
				continue
			fi
			log "config: $line did not stick"; missing=1 ;;
		"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}
			if grep -q "^$opt=" "$obj/.config"; then log "config: $opt should be off"; missing=1; fi ;;
		esac
	done <"$f"
done
[ $missing -eq 0 ] || die "the config fragment does not apply cleanly (see above)"

log "building ${image##*/} for $KARCH (-j$JOBS) in $obj"
start=$(date +%s)
blog=$CACHE/build-$BASE$([ "$KARCH" = x86_64 ] || echo "-$KARCH").log
if ! make -s -j"$JOBS" O="$obj" "${image##*/}" >"$blog" 2>&1; then
	tail -n 40 "$blog" >&2
	die "kernel build failed (full log: $blog)"
fi
grep -E 'warning:' "$blog" >&2 || true
log "built in $(( $(date +%s) - start ))s"

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$obj/$image" "$obj/.config" "$out.tmp/"
make -s O="$obj" INSTALL_HDR_PATH="$out.tmp/headers" headers_install >/dev/null
git -C "$src" rev-parse HEAD >/dev/null
printf '%s\n' "${patches[@]##*/}" >"$out.tmp/series"
touch "$out.tmp/.done"
rm -rf "$out"
mv "$out.tmp" "$out"
ln -sfn "$(basename "$out")" "$CACHE/current-$BASE-$FLAVOR"
log "kernel ready: $out/${image##*/}"
echo "$out"
