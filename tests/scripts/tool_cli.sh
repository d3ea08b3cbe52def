#!/bin/sh
# SPDX-License-Identifier: MIT
# The kvmfault tool's command line: one dispatcher, help for every
# command, and numbers parsed strictly: a bad number is an error with a
# message and exit status 2, never a silent zero.  None of this needs KVM
# (options are checked before the guest starts).
# usage: tool_cli.sh [KVMFAULT]   (default build/bin/kvmfault)
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$here/build/bin/kvmfault}
if [ ! -x "$bin" ]; then
	echo "FAIL: $bin is missing: build it with make"
	exit 1
fi
out=$(mktemp /tmp/kf-cli.XXXXXX)
trap 'rm -f "$out"' EXIT
failed=0

# expect STATUS NEEDLE ARGS...: exit status STATUS, output containing NEEDLE
expect() {
	want=$1 needle=$2
	shift 2
	"$bin" "$@" >"$out" 2>&1
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "FAIL: kvmfault $*: exit $rc, expected $want"
		sed 's/^/  | /' "$out" | head -n 5
		failed=$((failed + 1))
	elif ! grep -qF -- "$needle" "$out"; then
		echo "FAIL: kvmfault $*: no '$needle' in:"
		sed 's/^/  | /' "$out" | head -n 5
		failed=$((failed + 1))
	fi
}

# Help: for the tool, through help CMD and CMD --help, on stdout, status 0.
expect 0 "commands:" --help
expect 0 "commands:" help
for cmd in run bench migrate snapshot restore; do
	expect 0 "usage: kvmfault $cmd" help "$cmd"
	expect 0 "usage: kvmfault $cmd" "$cmd" --help
done
expect 2 "no command 'nosuch'" nosuch
expect 2 "no command 'nosuch'" help nosuch
expect 2 "usage: kvmfault COMMAND"

# Bad numbers: a message naming the option and the text, status 2.
expect 2 "bad -v 'abc'" run -v abc
expect 2 "bad -v '0': expected a number from 1 to 64" run -v 0
expect 2 "bad -m '16M'" run -m 16M
expect 2 "bad -m '99999999999999999999'" run -m 99999999999999999999
expect 2 "bad -m ' 4'" run -m " 4"
expect 2 "bad -m ''" run -m ""
expect 2 "bad vCPU count (-v) 'two'" bench -v 1,two
expect 2 "bad -b '12Q'" bench -b 12Q
expect 2 "bad -b '-1M'" bench -b -1M
expect 2 "bad -t '3x'" bench -t 3x
expect 2 "bad -r '0'" bench -r 0
expect 2 "bad --pages '-5'" migrate local --pages -5
expect 2 "bad --vcpus '1.5'" migrate local --vcpus 1.5
expect 2 "bad --timeout '10s'" migrate local --timeout 10s
expect 2 "bad --vcpus '2a'" snapshot save /tmp/kf-cli-none --vcpus 2a
expect 2 "bad --run-ms 'x'" restore /tmp/kf-cli-none --run-ms x
KF_MIGRATE_PAGES=zz expect 2 "bad KF_MIGRATE_PAGES 'zz'" migrate local
# The channel: a key or an explicit --plain, plain TCP on loopback only.
expect 2 "no key: --psk FILE" migrate source --listen 127.0.0.1:0
expect 2 "no key: --psk FILE" migrate dest --connect 127.0.0.1:1
expect 2 "not loopback" migrate source --listen 0.0.0.0:0 --plain
expect 2 "not loopback" migrate dest --connect 192.0.2.1:7777 --plain
expect 2 "exclude each other" migrate local --plain --psk /nonexistent
keydir=$(mktemp -d /tmp/kf-cli-key.XXXXXX)
expect 0 "a new key in" migrate keygen "$keydir/k.psk"
[ "$(stat -c %a "$keydir/k.psk")" = 600 ] || { echo "FAIL: keygen made mode $(stat -c %a "$keydir/k.psk")"; failed=$((failed + 1)); }
expect 1 "File exists" migrate keygen "$keydir/k.psk"
chmod 644 "$keydir/k.psk"
expect 2 "chmod 600" migrate dest --connect 127.0.0.1:1 --psk "$keydir/k.psk"
expect 2 "exclude each other" migrate local --psk "$keydir/k.psk" --x509 "$keydir"
expect 2 "bad --streams '9'" migrate local --streams 9
expect 0 "a throwaway CA" migrate certgen "$keydir/x509"
[ "$(stat -c %a "$keydir/x509/server-key.pem")" = 600 ] || { echo "FAIL: certgen made a key of mode $(stat -c %a "$keydir/x509/server-key.pem")"; failed=$((failed + 1)); }
expect 1 "not replacing credentials" migrate certgen "$keydir/x509"
chmod 640 "$keydir/x509/client-key.pem"
expect 2 "chmod 600" migrate dest --connect 127.0.0.1:1 --x509 "$keydir/x509"
expect 2 "X.509 private key" migrate source --listen 127.0.0.1:0 --x509 "$keydir/none"
rm -rf "$keydir"
# Working sets: mode ws needs one; a missing one fails with its name.
expect 2 "needs --ws WSFILE" restore /tmp/kf-cli-none --mode ws

if [ "$failed" -ne 0 ]; then
	echo "FAIL: $failed command line check(s) failed"
	exit 1
fi
echo "PASS: help for every command; bad numbers fail with a message"
