#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the rig kernel of one base: linux-source-$KBASE + the series in
# kernel/patches/$KBASE/, configured from tinyconfig + kernel/rig.config +
# kernel/rig-$KBASE.config (if present) + optional extra fragments.
#
# Layout under $KVMFAULT_CACHE (outside the repository checkout):
#   src-$KBASE/   pristine source as a git tree (tag "base"), reused forever;
#               for each build it is reset to "base" and the series applied
#               (git only rewrites the files that differ, so the object
#               directory rebuilds incrementally)
#   obj-$KBASE-$CONF/  kbuild object directory (O=), one per base and config
#               (CONF hashes the fragments): the patched kernel, the
#               unpatched control and each step of check-series share it,
#               so switching between them rebuilds only what differs
#   kernel-$KBASE-$FLAVOR-$KEY/  finished build: bzImage, config, headers/
#               (headers_install); KEY is a hash of every input (tarball,
#               patches, fragments, this script)
#   current-$KBASE-$FLAVOR -> kernel-$KBASE-$FLAVOR-$KEY
#
# A build whose key already exists is reused as is.
#
# usage: build.sh [--print-dir | --print-fragments | --print-obj | --apply-only]
#   env: KVMFAULT_CACHE, KBASE (6.12 or 6.1; default 6.12), LINUX_TARBALL
#        (default /usr/src/linux-source-$KBASE.tar.xz), KFLAVOR (name of
#        the build flavour), KFRAGMENTS (extra fragment files), KSERIES
#        (series file; /dev/null for an unpatched control kernel), JOBS
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${KVMFAULT_CACHE:-/var/tmp/kvmfault}
BASE=${KBASE:?KBASE: the kernel base, 6.12 or 6.1}
TARBALL=${LINUX_TARBALL:-/usr/src/linux-source-$BASE.tar.xz}
FLAVOR=${KFLAVOR:-rig}
JOBS=${JOBS:-$(nproc)}
SERIES_DIR=$here/patches/$BASE

log() { echo "kernel: $*" >&2; }
die() { echo "kernel: error: $*" >&2; exit 1; }

[ -n "${KSERIES:-}" ] || [ -d "$SERIES_DIR" ] ||
	die "no series for base '$BASE' (kernel/patches/$BASE/): KBASE is one of $(cd "$here/patches" && echo */ | tr -d /)"
# The fragments: common, then the base's own, then the flavour's extras.
FRAGMENTS="$here/rig.config"
[ -r "$here/rig-$BASE.config" ] && FRAGMENTS="$FRAGMENTS $here/rig-$BASE.config"
FRAGMENTS="$FRAGMENTS ${KFRAGMENTS:-}"
# shellcheck disable=SC2086
obj=$CACHE/obj-$BASE-$(cat $FRAGMENTS | sha256sum | cut -c1-8)
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


if [ -f "$out/.done" ]; then
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
# Every option the fragments ask for must have survived olddefconfig.
missing=0
for f in $FRAGMENTS; do
	while IFS= read -r line; do
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

log "building bzImage (-j$JOBS) in $obj"
start=$(date +%s)
if ! make -s -j"$JOBS" O="$obj" bzImage >"$CACHE/build-$BASE.log" 2>&1; then
	tail -n 40 "$CACHE/build-$BASE.log" >&2
	die "kernel build failed (full log: $CACHE/build-$BASE.log)"
fi
grep -E 'warning:' "$CACHE/build-$BASE.log" >&2 || true
log "built in $(( $(date +%s) - start ))s"

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$obj/arch/x86/boot/bzImage" "$obj/.config" "$out.tmp/"
make -s O="$obj" INSTALL_HDR_PATH="$out.tmp/headers" headers_install >/dev/null
git -C "$src" rev-parse HEAD >/dev/null
printf '%s\n' "${patches[@]##*/}" >"$out.tmp/series"
touch "$out.tmp/.done"
rm -rf "$out"
mv "$out.tmp" "$out"
ln -sfn "$(basename "$out")" "$CACHE/current-$BASE-$FLAVOR"
log "kernel ready: $out/bzImage"
echo "$out"
