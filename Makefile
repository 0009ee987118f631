# Two entry points a new user needs: `make demo` and `make test`.
# Both create .venv on first use and install the package (building the C core) into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all venv native clean bench fuzz asan

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py native/_build.py $(wildcard native/src/*.c native/src/*.h)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,m68k,bench]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m a2065 demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m '' $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m a2065 bench

asan:
	sh tools/build_asan.sh --run

fuzz:
	sh native/fuzz/run.sh 60

clean:
	rm -rf $(VENV) build *.egg-info native/_native*.so native/_native.c
