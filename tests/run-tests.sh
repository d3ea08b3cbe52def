#!/bin/sh
# SPDX-License-Identifier: MIT
# Run every test binary given (or every executable in a directory) and count
# the results.  A test exits 0 when it passes, 4 when it skips (it prints
# "SKIP: reason" first), anything else when it fails.  Plain POSIX sh, so the
# same script runs on the host and inside the busybox initramfs of the rig.
#
# -r N reruns a failed test up to N times (the QEMU rig uses 1: its software
# CPU has rare faults of its own), also one that timed out.  A test that
# then passes counts as passed, but the first failure's output is printed,
# and "LABEL: reruns K" comes before the counts line, which stays the last
# line.  A test that times out first has the state of each of its threads
# (name, state, kernel wait channel and stack where readable) added to its
# output, so that a hang says where it hung.
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

# thread_states PID: one line a thread of PID, and its kernel stack.
thread_states() {
	for task in /proc/"$1"/task/*; do
		[ -d "$task" ] || continue
		echo "thread $(basename "$task") $(cat "$task/comm" 2>/dev/null)" \
			"state $(sed -n 's/^State:[[:space:]]*//p' "$task/status" 2>/dev/null)" \
			"wchan $(cat "$task/wchan" 2>/dev/null)"
		sed 's/^/    /' "$task/stack" 2>/dev/null
	done
}

# run_one TEST: run it into $log with the timeout; its exit status (124
# when it timed out).
run_one() {
	"$1" >"$log" 2>&1 &
	pid=$!
	(
		i=0
		while [ $i -lt "$timeout_s" ] && kill -0 "$pid" 2>/dev/null; do
			sleep 1
			i=$((i + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "(timed out after ${timeout_s}s; its threads:)" >"$log.hung"
			thread_states "$pid" >>"$log.hung"
			kill -TERM "$pid" 2>/dev/null
			sleep 2
			kill -KILL "$pid" 2>/dev/null
		fi
	) &
	watcher=$!
	wait "$pid" 2>/dev/null
	rc=$?
	# Done in time: the watcher goes (a dump it began still counts).
	[ -e "$log.hung" ] || kill "$watcher" 2>/dev/null
	wait "$watcher" 2>/dev/null
	if [ -e "$log.hung" ]; then
		cat "$log.hung" >>"$log"
		rm -f "$log.hung"
		rc=124
	fi
	return $rc
}

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
	run_one "$t"
	rc=$?
	n=0
	while [ $rc -ne 0 ] && [ $rc -ne 4 ] && [ $n -lt "$reruns_max" ]; do
		n=$((n + 1))
		[ $n -eq 1 ] && { echo "(exit $rc)"; tail -n 40 "$log"; } >"$first"
		run_one "$t"
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
		echo "FAIL $name (exit $rc, ${secs}s)"
		sed 's/^/  | /' "$log" | tail -n 40 ;;
	esac
done
rm -f "$log" "$first" "$log.hung"
[ "$reruns_max" -gt 0 ] && echo "${label}reruns $reruns"
echo "${label}$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
