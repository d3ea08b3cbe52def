#!/bin/sh
# SPDX-License-Identifier: MIT
# libkvmfault.so exports exactly the documented API: the symbols that
# `nm -D --defined-only` lists are those of lib/kvmfault.api, no more
# (an internal function leaking out) and no fewer (an API function hidden
# by -fvisibility=hidden or missing from the version script).
# The static library's objects, built with -fvisibility=hidden, must give
# default visibility to exactly the same symbols: a function declared
# between KF_API_BEGIN and KF_API_END but missing from the list fails too.
# usage: api_symbols.sh [LIBRARY.so [LIBRARY.a]]   (default build/)
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
lib=${1:-$here/build/libkvmfault.so}
archive=${2:-${lib%.so}.a}
list=$here/lib/kvmfault.api

if ! command -v nm >/dev/null || ! command -v readelf >/dev/null; then
	echo "SKIP: nm or readelf is not installed (binutils)"
	exit 4
fi
for f in "$lib" "$archive"; do
	if [ ! -f "$f" ]; then
		echo "FAIL: $f is missing: build it with make"
		exit 1
	fi
done
tmp=$(mktemp -d /tmp/kf-api.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

grep '^kf_' "$list" | sort >"$tmp/want"
# "ADDR TYPE NAME[@@VERSION]"; the version node itself is an absolute (A)
# symbol, not API.
nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' |
	sort >"$tmp/have"
if [ ! -s "$tmp/want" ]; then
	echo "FAIL: $list lists no symbols"
	exit 1
fi
extra=$(comm -13 "$tmp/want" "$tmp/have")
missing=$(comm -23 "$tmp/want" "$tmp/have")
if [ -n "$extra" ] || [ -n "$missing" ]; then
	[ -n "$extra" ] && printf 'exported but not in lib/kvmfault.api:\n%s\n' "$extra"
	[ -n "$missing" ] && printf 'in lib/kvmfault.api but not exported:\n%s\n' "$missing"
	echo "FAIL: the exports of $lib differ from the documented API"
	exit 1
fi
# Every symbol has the library's version.
unversioned=$(nm -D --defined-only "$lib" | awk '$2 != "A" && $3 !~ /@@KVMFAULT_0$/ { print $3 }')
if [ -n "$unversioned" ]; then
	printf 'FAIL: exported without the KVMFAULT_0 version:\n%s\n' "$unversioned"
	exit 1
fi
# Defined symbols of default visibility in the archive's objects.
readelf -sW "$archive" |
	awk '$5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" { print $8 }' |
	sort -u >"$tmp/visible"
extra=$(comm -13 "$tmp/want" "$tmp/visible")
missing=$(comm -23 "$tmp/want" "$tmp/visible")
if [ -n "$extra" ] || [ -n "$missing" ]; then
	[ -n "$extra" ] && printf 'declared as API (KF_API_BEGIN) but not in lib/kvmfault.api:\n%s\n' "$extra"
	[ -n "$missing" ] && printf 'in lib/kvmfault.api but hidden in %s:\n%s\n' "$archive" "$missing"
	echo "FAIL: the visible symbols of $archive differ from the documented API"
	exit 1
fi
echo "PASS: $(wc -l <"$tmp/want") symbols, exactly lib/kvmfault.api"
