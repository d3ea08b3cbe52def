#!/bin/sh
# SPDX-License-Identifier: MIT
# Build each libFuzzer harness with clang (-fsanitize=fuzzer,address,undefined)
# and run it for SECONDS seconds (default 30) from a small seed corpus.
# Prints "fuzz: N passed, N failed, N skipped" (a harness a test) and exits
# non-zero when a harness crashes or fails to build.
# Needs clang and libclang-rt (Debian: clang-14 libclang-rt-14-dev), and
# libxxhash-dev.
set -eu
SECONDS_EACH=${1:-30}
cd "$(dirname "$0")/.."
OUT=${FUZZ_OUT:-build/fuzz}
CLANG=${CLANG:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$CLANG" ]; then
	echo "fuzz/run.sh: clang not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
	exit 2
fi
mkdir -p "$OUT"
LIBSRC=$(ls lib/*.c lib/x86/*.c)
CFLAGS="-Wno-gnu-variable-sized-type-not-at-end -g -O1 -std=gnu11 -D_GNU_SOURCE -Iinclude -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"

# Seeds: a real stream and a real snapshot, made by the seed generator.
"$CLANG" -Wno-gnu-variable-sized-type-not-at-end -g -O1 -std=gnu11 -D_GNU_SOURCE -Iinclude -pthread -o "$OUT/seeds" \
	fuzz/seeds.c $LIBSRC -lxxhash -lssl -lcrypto -lm
rm -rf "$OUT/corpus-mig" "$OUT/corpus-snap"
mkdir -p "$OUT/corpus-mig" "$OUT/corpus-snap"
"$OUT/seeds" "$OUT/corpus-mig" "$OUT/corpus-snap"

passed=0
failed=0
for h in mig snap; do
	if ! "$CLANG" $CFLAGS -o "$OUT/${h}_fuzz" "fuzz/${h}_fuzz.c" $LIBSRC -lxxhash -lssl -lcrypto -lm; then
		echo "FAIL ${h}_fuzz: does not build"
		failed=$((failed + 1))
		continue
	fi
	echo "fuzzing ${h}_fuzz for ${SECONDS_EACH}s"
	if ! "$OUT/${h}_fuzz" -max_total_time="$SECONDS_EACH" -max_len=65536 \
		-rss_limit_mb=2048 -artifact_prefix="$OUT/${h}-" -print_final_stats=1 \
		"$OUT/corpus-$h" >"$OUT/${h}.log" 2>&1; then
		echo "FAIL: ${h}_fuzz found a crash; see $OUT/${h}.log and $OUT/${h}-*" >&2
		tail -40 "$OUT/${h}.log" >&2
		echo "FAIL ${h}_fuzz"
		failed=$((failed + 1))
	else
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/${h}.log")
		echo "PASS ${h}_fuzz: ${runs:-?} inputs, no crash"
		passed=$((passed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed, 0 skipped"
[ $failed -eq 0 ]
