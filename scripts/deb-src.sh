#!/bin/sh
# SPDX-License-Identifier: MIT
# Give apt a deb-src entry for each Debian archive (*.debian.org) it fetches
# binaries from, so that `apt-get source` works (QEMU's source for the
# rig).  Does nothing when apt has a Debian deb-src entry already.  As root.
set -eu
name=/etc/apt/sources.list.d/kvmfault-deb-src
archive='://[a-z0-9.-]*debian\.org/'
sources=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
lists="/etc/apt/sources.list $(ls /etc/apt/sources.list.d/*.list 2>/dev/null || true)"

# deb822 stanzas of Debian archives whose Types include WHAT (deb, deb-src).
stanzas() {
	[ -n "$sources" ] || return 0
	# shellcheck disable=SC2086
	awk -v what="$1" -v archive="$archive" 'BEGIN { RS = ""; ORS = "\n\n" }
		$0 ~ archive && match($0, /Types:[^\n]*/) &&
		(" " substr($0, RSTART + 6, RLENGTH - 6) " ") ~ (" " what " ") &&
		$0 !~ /Enabled: *no/' $sources
}

# shellcheck disable=SC2086
if [ -n "$(stanzas deb-src)" ] ||
	grep -qsE "^deb-src .*$archive" $lists; then
	exit 0
fi
[ "$(id -u)" = 0 ] || { echo "deb-src.sh: adding a deb-src entry needs root" >&2; exit 1; }
stanzas deb | awk 'BEGIN { RS = ""; ORS = "\n\n" } { sub(/Types:[^\n]*/, "Types: deb-src"); print }' >"$name.sources.tmp"
# shellcheck disable=SC2086
grep -hsE "^deb .*$archive" $lists | sed 's/^deb /deb-src /' >"$name.list.tmp" || true
added=""
for f in "$name.sources" "$name.list"; do
	if [ -s "$f.tmp" ]; then
		chmod 0644 "$f.tmp"
		mv "$f.tmp" "$f"
		added="$added $f"
	else
		rm -f "$f.tmp"
	fi
done
if [ -z "$added" ]; then
	echo "deb-src.sh: apt fetches from no Debian archive (*.debian.org): add a deb-src entry by hand" >&2
	exit 1
fi
echo "deb-src.sh: added$added; apt-get update" >&2
apt-get update -q >/dev/null
