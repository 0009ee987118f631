#!/bin/sh
# Build the native core with AddressSanitizer + UndefinedBehaviorSanitizer into a separate
# directory (the installed/in-place extension is untouched), and optionally run the C-vs-oracle
# differential tests against that build.
#
#   sh tools/build_asan.sh [OUTDIR]          build only (default build/asan); prints the .so path
#   sh tools/build_asan.sh --run [OUTDIR]    build, then run tests/test_native_differential.py
#                                            (A2065_ASAN_K="expr": only tests matching -k expr)
#
# How the sanitized build is used: A2065_NATIVE_LIB=<.so> makes `import native` load it instead
# of native/_native*.so; libasan must be the first library in the process, hence LD_PRELOAD;
# PYTHONMALLOC=malloc gives every Python buffer ASan red zones; leak checking is off (CPython
# keeps its memory at exit). UBSan findings abort (-fno-sanitize-recover). pytest runs with
# --capture=sys so a sanitizer report (written to fd 2) reaches the terminal before the abort.
set -eu
cd "$(dirname "$0")/.."
RUN=0
if [ "${1:-}" = "--run" ]; then RUN=1; shift; fi
OUT="${1:-build/asan}"
CC_BIN="${CC:-gcc}"
# The interpreter with the project's dependencies (cffi, pytest): $PYTHON, else the project's .venv
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
LIBASAN="$($CC_BIN -print-file-name=libasan.so)"
case "$LIBASAN" in
  /*) ;;
  *) echo "build_asan.sh: no libasan for $CC_BIN (apt-get install gcc / libasan8)" >&2; exit 77 ;;
esac
mkdir -p "$OUT"
A2065_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g" \
A2065_LDFLAGS="-fsanitize=address,undefined" \
  "$PYTHON" native/_build.py "$OUT" >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log" >&2; exit 1; }
SO="$(ls "$OUT"/native/_native*.so | head -n 1)"
echo "sanitized build: $SO"
[ "$RUN" = 1 ] || exit 0
export A2065_NATIVE_LIB="$SO"
export LD_PRELOAD="$LIBASAN"
export PYTHONMALLOC=malloc
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
"$PYTHON" -c 'import native; assert native.IMPLEMENTATION == "c", native.IMPLEMENTATION; print("loaded", native._ext.__file__, native.impl_info())'
# A2065_ASAN_K: a pytest -k expression to run a subset (the pytest wrapper test does)
if [ -n "${A2065_ASAN_K:-}" ]; then set -- -k "$A2065_ASAN_K"; else set --; fi
exec "$PYTHON" -m pytest -q -p no:cacheprovider --capture=sys -x tests/test_native_differential.py "$@"
