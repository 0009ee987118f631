"""setuptools entry: the cffi API-mode build of native/ happens here at install time."""
from setuptools import setup

setup(cffi_modules=["native/_build.py:ffibuilder"])
