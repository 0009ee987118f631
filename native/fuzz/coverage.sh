#!/bin/sh
# Line/branch coverage of native/src/a2065net.c reached by a fuzz corpus (llvm-cov report).
#   native/fuzz/coverage.sh [corpus dirs...]   (default: native/fuzz/build/corpus native/fuzz/corpus)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${BUILD:-$HERE/build}/coverage
mkdir -p "$OUT"
[ $# -gt 0 ] || set -- "${BUILD:-$HERE/build}/corpus" "$HERE/corpus"
${CC:-clang} -g -O1 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
  -I"$ROOT/native/src" "$HERE/fuzz_segment.c" "$ROOT/native/src/a2065net.c" -o "$OUT/fuzz_segment_cov"
rm -f "$OUT/cov.profraw"
LLVM_PROFILE_FILE="$OUT/cov.profraw" "$OUT/fuzz_segment_cov" -runs=0 "$@" >/dev/null 2>&1
llvm-profdata merge -sparse "$OUT/cov.profraw" -o "$OUT/cov.profdata"
llvm-cov report "$OUT/fuzz_segment_cov" -instr-profile="$OUT/cov.profdata" "$ROOT/native/src/a2065net.c"
echo "uncovered lines: llvm-cov show $OUT/fuzz_segment_cov -instr-profile=$OUT/cov.profdata $ROOT/native/src/a2065net.c | grep -E '^ +[0-9]+\\| +0\\|'"
