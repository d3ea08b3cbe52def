#!/bin/sh
# SPDX-License-Identifier: MIT
# Run every test binary given (or every executable in a directory) and count
# the results.  A test exits 0 when it passes, 4 when it skips (it prints
# "SKIP: reason" first), anything else when it fails.  Plain POSIX sh, so the
# same script runs on the host and inside the busybox initramfs of the rig.
#
# -r N reruns a failed test up to N times (the QEMU rig uses 1: its software
# CPU has rare faults of its own); a test that timed out is not rerun.  A test that then passes counts as passed,
# but the first failure's output is printed, and "LABEL: reruns K" comes
# before the counts line, which stays the last line.
#
# -a FILE writes "KF-RUN NAME" to FILE as each test starts (the rig passes
# its console, so a guest that hangs names the test it was running).
#
# usage: run-tests.sh [-t SECONDS] [-l LABEL] [-r N] [-a FILE] DIR|TEST...

timeout_s=300
label=""
reruns_max=0
announce=""
while [ $# -gt 0 ]; do
	case "$1" in
	-t) timeout_s=$2; shift 2 ;;
	-l) label="$2: "; shift 2 ;;
	-r) reruns_max=$2; shift 2 ;;
	-a) announce=$2; shift 2 ;;
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
reruns=0
log=$(mktemp /tmp/kf-test.XXXXXX)
first=$log.first
for t in "$@"; do
	name=$(basename "$t")
	[ -n "$announce" ] && echo "KF-RUN $name" >>"$announce"
	start=$(date +%s)
	timeout "$timeout_s" "$t" >"$log" 2>&1
	rc=$?
	n=0
	# A test that timed out (124, or 143/137 when killed) is not rerun:
	# it already took its whole time, and the rig's boot has a limit too.
	while [ $rc -ne 0 ] && [ $rc -ne 4 ] && [ $rc -ne 124 ] && [ $rc -ne 143 ] &&
		[ $rc -ne 137 ] && [ $n -lt "$reruns_max" ]; do
		n=$((n + 1))
		[ $n -eq 1 ] && { echo "(exit $rc)"; tail -n 20 "$log"; } >"$first"
		timeout "$timeout_s" "$t" >"$log" 2>&1
		rc=$?
	done
	secs=$(( $(date +%s) - start ))
	reruns=$((reruns + n))
	if [ $n -gt 0 ] && [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		echo "PASS $name (${secs}s, on rerun $n; the first run failed:)"
		sed 's/^/  ! /' "$first"
		continue
	fi
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
rm -f "$log" "$first"
[ "$reruns_max" -gt 0 ] && echo "${label}reruns $reruns"
echo "${label}$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
