"""cffi API-mode build of the C core as ``native._native``.

Used by setup.py (``cffi_modules=["native/_build.py:ffibuilder"]``) for ``pip install [-e] .`` and
``python3 setup.py build_ext --inplace``; ``python3 native/_build.py [outdir]`` compiles directly.
Extra flags: ``A2065_CFLAGS`` / ``A2065_LDFLAGS`` (tools/build_asan.sh uses them for sanitizers).
"""
import os
import re
import shlex
import shutil
import sysconfig

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "src")


def _require_compiler():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    exe = shlex.split(cc)[0] if cc.strip() else "cc"
    for cand in (exe, "cc", "gcc", "clang"):
        if shutil.which(cand):
            return
    raise RuntimeError(
        f"a2065: no C compiler found (looked for {exe!r}, cc, gcc, clang); the native core "
        "(native/src/a2065net.c) needs one: apt-get install build-essential "
        "(or set A2065_NATIVE=python at run time to use the slow pure-Python oracle)"
    )


def _cdef():
    with open(os.path.join(SRC, "a2065net.h")) as fh:
        text = fh.read()
    m = re.search(r"/\* CDEF-BEGIN \*/(.*)/\* CDEF-END \*/", text, re.S)
    body = m.group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)  # comments out
    return body


_require_compiler()

def make_builder(absolute_paths=False):
    """The FFI builder. setuptools wants a source path relative to the project root (where
    setup.py runs); ffibuilder.compile() changes directory, so direct builds use absolute paths."""
    src = os.path.join(SRC, "a2065net.c")
    builder = FFI()
    builder.cdef(_cdef())
    builder.set_source(
        "native._native",
        '#include "a2065net.h"',
        sources=[src if absolute_paths else os.path.relpath(src)],
        include_dirs=[SRC],
        extra_compile_args=["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
        + shlex.split(os.environ.get("A2065_CFLAGS", "")),
        extra_link_args=shlex.split(os.environ.get("A2065_LDFLAGS", "")),
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    import sys

    make_builder(absolute_paths=True).compile(tmpdir=sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(HERE),
                       verbose=True)
