#!/bin/sh
# SPDX-License-Identifier: MIT
# run-tests.sh -r: a test that fails once and then passes counts as passed,
# with its first failure printed and "reruns 1" before the counts line; a
# test that always fails still fails; a test that timed out shows its
# threads and is rerun too;
# without -r nothing is rerun; -a announces each test as it starts.
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/kf-rerun.XXXXXX)
trap 'rm -rf "$dir"' EXIT
printf '#!/bin/sh\nif [ -e %s/ran ]; then echo second; exit 0; fi\ntouch %s/ran; echo first-failure; exit 1\n' "$dir" "$dir" >"$dir/flaky"
printf '#!/bin/sh\necho always; exit 1\n' >"$dir/broken"
chmod +x "$dir/flaky" "$dir/broken"
fail() { echo "FAIL: $*"; echo "$out"; exit 1; }

out=$(sh "$here/run-tests.sh" -r 1 -l t "$dir/flaky" "$dir/broken")
[ $? -ne 0 ] || fail "a test that always fails did not fail the run"
echo "$out" | grep -q '^PASS flaky .*on rerun 1' || fail "flaky not passed on rerun"
echo "$out" | grep -q '^  ! first-failure' || fail "the first failure is not shown"
echo "$out" | grep -q '^FAIL broken' || fail "broken not failed"
[ "$(echo "$out" | tail -n 2 | head -n 1)" = "t: reruns 2" ] || fail "reruns line"
[ "$(echo "$out" | tail -n 1)" = "t: 1 passed, 1 failed, 0 skipped" ] || fail "counts line"

rm -f "$dir/ran"
out=$(sh "$here/run-tests.sh" -l t "$dir/flaky")
[ "$(echo "$out" | tail -n 1)" = "t: 0 passed, 1 failed, 0 skipped" ] || fail "rerun without -r"
echo "$out" | grep -q reruns && fail "a reruns line without -r"
printf '#!/bin/sh\nsleep 5\n' >"$dir/slow"
chmod +x "$dir/slow"
out=$(sh "$here/run-tests.sh" -t 1 -l t "$dir/slow")
[ "$(echo "$out" | tail -n 1)" = "t: 0 passed, 1 failed, 0 skipped" ] || fail "a hung test did not fail"
echo "$out" | grep -q "timed out after 1s; its threads:" || fail "timeout not reported"
echo "$out" | grep -q "^  | thread [0-9]* .*state" || fail "no thread states of the hung test"
# A test that hangs once and then passes: rerun, counted, first run shown.
printf '#!/bin/sh\nif [ -e %s/hung ]; then exit 0; fi\ntouch %s/hung; sleep 5\n' "$dir" "$dir" >"$dir/hangs-once"
chmod +x "$dir/hangs-once"
out=$(sh "$here/run-tests.sh" -t 1 -r 1 -l t "$dir/hangs-once")
echo "$out" | grep -q '^PASS hangs-once .*on rerun 1' || fail "a test that hung once was not rerun"
echo "$out" | grep -q '^  ! (timed out after 1s' || fail "the first run's timeout is not shown"
[ "$(echo "$out" | tail -n 2 | head -n 1)" = "t: reruns 1" ] || fail "reruns line after a timeout"
out=$(sh "$here/run-tests.sh" -a "$dir/announced" -l t "$dir/broken" "$dir/slow" 2>&1)
[ "$(cat "$dir/announced" | tr '\n' ' ')" = "KF-RUN broken KF-RUN slow " ] ||
	fail "-a: announced '$(cat "$dir/announced")'"
echo "PASS: run-tests.sh -r reruns failures and timeouts and reports them, a hang shows its threads; -a announces tests"
