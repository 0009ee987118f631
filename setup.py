"""setuptools entry: the cffi API-mode build of native/ happens here at install time.

``native/_build.py`` is the build script of that extension: it runs at build time only, so it is
left out of the installed package.
"""
from setuptools import setup
from setuptools.command.build_py import build_py

BUILD_ONLY_MODULES = {("native", "_build")}


class BuildPyWithoutBuildScripts(build_py):
    def find_package_modules(self, package, package_dir):
        return [m for m in super().find_package_modules(package, package_dir)
                if (m[0], m[1]) not in BUILD_ONLY_MODULES]


setup(cffi_modules=["native/_build.py:ffibuilder"], cmdclass={"build_py": BuildPyWithoutBuildScripts})
