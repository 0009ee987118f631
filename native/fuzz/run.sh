#!/bin/sh
# Build and run the libFuzzer target for a2065_segment.
#   native/fuzz/run.sh [seconds]          (default 60)
# Environment: BUILD (build dir, default native/fuzz/build, git-ignored), MAX_LEN (default 16384),
#   JOBS (parallel fuzzing jobs, default 1), CC (default clang).
# Seeds: native/fuzz/corpus/ (made by native/fuzz/seeds.py from fixtures/captures/); it is only
# read. New coverage goes to $BUILD/corpus. A crash leaves $BUILD/crash-*: copy it to
# fixtures/regressions/segment-<what>.bin (tests/test_native_fuzz.py replays that directory).
set -eu
SECONDS_TO_RUN=${1:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$HERE/build}
CC=${CC:-clang}
mkdir -p "$BUILD/corpus"
BIN="$BUILD/fuzz_segment"
PAR=""
# -jobs runs fuzzers as child processes that log to fuzz-N.log in the current directory: only on request
if [ "${JOBS:-1}" -gt 1 ]; then PAR="-jobs=$JOBS -workers=$JOBS"; cd "$BUILD"; fi
if [ ! -x "$BIN" ] || [ "$HERE/fuzz_segment.c" -nt "$BIN" ] || [ "$ROOT/native/src/a2065net.c" -nt "$BIN" ] \
   || [ "$ROOT/native/src/a2065net.h" -nt "$BIN" ]; then
  "$CC" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$ROOT/native/src" "$HERE/fuzz_segment.c" "$ROOT/native/src/a2065net.c" -o "$BIN.tmp"
  mv "$BIN.tmp" "$BIN"
fi
exec "$BIN" -max_total_time="$SECONDS_TO_RUN" -max_len="${MAX_LEN:-16384}" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 $PAR \
  -artifact_prefix="$BUILD/" "$BUILD/corpus" "$HERE/corpus"
