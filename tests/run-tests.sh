#!/bin/sh
# SPDX-License-Identifier: MIT
# Run every test binary given (or every executable in a directory) and count
# the results.  A test exits 0 when it passes, 4 when it skips (it prints
# "SKIP: reason" first), anything else when it fails.  Plain POSIX sh, so the
# same script runs on the host and inside the busybox initramfs of the rig.
#
# usage: run-tests.sh [-t SECONDS] [-l LABEL] DIR|TEST...

timeout_s=300
label=""
while [ $# -gt 0 ]; do
	case "$1" in
	-t) timeout_s=$2; shift 2 ;;
	-l) label="$2: "; shift 2 ;;
	*) break ;;
	esac
done

# A directory stands for every executable in it.
for arg in "$@"; do
	shift
	if [ -d "$arg" ]; then
		set -- "$@" $(find "$arg" -maxdepth 1 -type f -perm -u+x | sort)
	else
		set -- "$@" "$arg"
	fi
done

passed=0
failed=0
skipped=0
log=$(mktemp /tmp/kf-test.XXXXXX)
for t in "$@"; do
	name=$(basename "$t")
	start=$(date +%s)
	timeout "$timeout_s" "$t" >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	case $rc in
	0)
		passed=$((passed + 1))
		echo "PASS $name (${secs}s)" ;;
	4)
		skipped=$((skipped + 1))
		reason=$(grep -m1 '^SKIP' "$log" | sed 's/^SKIP:* *//')
		echo "SKIP $name: ${reason:-no reason given}" ;;
	*)
		failed=$((failed + 1))
		[ $rc -eq 124 ] || [ $rc -eq 143 ] && echo "  (timed out after ${timeout_s}s)" >>"$log"
		echo "FAIL $name (exit $rc, ${secs}s)"
		sed 's/^/  | /' "$log" | tail -n 40 ;;
	esac
done
rm -f "$log"
echo "${label}$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
