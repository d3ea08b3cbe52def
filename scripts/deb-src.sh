#!/bin/sh
# SPDX-License-Identifier: MIT
# Give apt a deb-src entry for each Debian archive it fetches binaries
# from, so that `apt-get source` works (QEMU's source for the rig).  Does
# nothing when one is there already.  As root.
set -eu
list=/etc/apt/sources.list.d/kvmfault-deb-src.sources
apt_files="/etc/apt/sources.list $(ls /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"

# shellcheck disable=SC2086
if grep -qsE '^(deb-src |Types:.*deb-src)' $apt_files; then
	exit 0
fi
[ "$(id -u)" = 0 ] || { echo "deb-src.sh: adding a deb-src entry needs root" >&2; exit 1; }
tmp=$list.tmp
: >"$tmp"
# deb822 files: the Debian stanzas again, as deb-src.
for f in /etc/apt/sources.list.d/*.sources; do
	[ -r "$f" ] || continue
	awk 'BEGIN { RS = ""; ORS = "\n\n" }
	     /URIs:[^\n]*debian/ && /Types:[^\n]*deb/ {
		sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f" >>"$tmp"
done
# One-line entries go to a one-line file of their own.
if grep -qs '^deb .*debian' /etc/apt/sources.list; then
	sed -n 's/^deb \(.*debian.*\)/deb-src \1/p' /etc/apt/sources.list >"${list%.sources}.list"
fi
if [ ! -s "$tmp" ] && [ ! -s "${list%.sources}.list" ]; then
	rm -f "$tmp"
	echo "deb-src.sh: no Debian archive in apt's sources to add a deb-src entry for" >&2
	exit 1
fi
chmod 0644 "$tmp"
if [ -s "$tmp" ]; then mv "$tmp" "$list"; else rm -f "$tmp"; fi
echo "deb-src.sh: added $list; apt-get update" >&2
apt-get update -q >/dev/null
