#!/bin/sh
# SPDX-License-Identifier: MIT
# libkvmfault.so exports exactly the documented API: the symbols that
# `nm -D --defined-only` lists are those of lib/kvmfault.api, no more
# (an internal function leaking out) and no fewer (an API function hidden
# by -fvisibility=hidden or missing from the version script).
# usage: api_symbols.sh [LIBRARY]   (default build/libkvmfault.so)
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
lib=${1:-$here/build/libkvmfault.so}
list=$here/lib/kvmfault.api

if ! command -v nm >/dev/null; then
	echo "SKIP: nm is not installed (binutils)"
	exit 4
fi
if [ ! -f "$lib" ]; then
	echo "FAIL: $lib is missing: build it with make"
	exit 1
fi
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
echo "PASS: $(wc -l <"$tmp/want") symbols, exactly lib/kvmfault.api"
