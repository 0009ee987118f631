# Two entry points a new user needs: `make demo` and `make test`.
# Both create .venv on first use and install the package (building the C core) into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all venv native clean bench fuzz asan wheel bare-test

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py native/_build.py $(wildcard native/src/*.c native/src/*.h)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# machine68k builds from source; if it cannot here, install the rest: the 68000 tests skip and say so
	$(PY) -m pip install -q -e '.[test,m68k,bench]' || { \
	    echo "make: installing without machine68k (the 68000 tests will skip: pip install machine68k)" >&2; \
	    $(PY) -m pip install -q -e '.[test,bench]'; }
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m a2065 demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m '' $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m a2065 bench

asan: $(STAMP)
	PYTHON=$(PY) sh tools/build_asan.sh --run

# The installable product: dist/a2065-*.whl (and the sdist), as `pip install` would build them.
wheel: $(STAMP)
	$(PY) -m pip wheel --no-deps -w dist .

# The suite as on a fresh Debian machine with only build-essential python3-dev python3-venv
# (root; optional packages hidden in a private mount namespace): as root, then as nobody.
bare-test:
	bash tools/bare_machine.sh
	bash tools/bare_machine.sh --user 65534

fuzz:
	sh native/fuzz/run.sh 60

clean:
	rm -rf $(VENV) build dist *.egg-info native/_native*.so native/_native.c
