# certstream: a newcomer needs `make demo` (no internet), `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

export CERTSTREAM_REQUIRE_EXTENSIONS ?= 1

.PHONY: install install-test clients run demo test test-pure lint typecheck bench conformance clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel "Cython>=3.0"

$(STAMP): $(PY) pyproject.toml setup.py $(wildcard src/certstream/_fast/*.pyx)
	$(PIP) install -q --no-build-isolation -e .
	touch $@

# The PyPI client library is also named "certstream", so the real clients (the ones the
# README shows and the tests drive) live in a venv of their own and run as subprocesses.
CLIENTS := $(VENV)/clients
CSTAMP  := $(CLIENTS)/.installed
$(CSTAMP): $(PY)
	$(PYTHON) -m venv $(CLIENTS)
	$(CLIENTS)/bin/pip install -q "certstream>=1.12" "websocket-client>=1.8"
	touch $@

$(TSTAMP): $(STAMP) $(CSTAMP)
	$(PIP) install -q --no-build-isolation -e ".[test]"
	touch $@

install: $(STAMP)   ## venv + package with its Cython extensions built

clients: $(CSTAMP)  ## the PyPI certstream client, in .venv/clients

run: install clients  ## follow the public CT logs and serve on :8080 (default config)
	$(VENV)/bin/certstream

demo: install clients ## no internet needed: serve the packaged recorded CT entries on :8080
	$(VENV)/bin/certstream --demo

test: $(TSTAMP)     ## the whole suite: lint, types, unit, conformance, both _fast twins
	$(VENV)/bin/ruff check src tests conformance bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -q
	CERTSTREAM_NO_EXTENSIONS=1 $(PY) -m pytest -q -m "not slow" tests conformance

test-pure: $(TSTAMP)
	CERTSTREAM_NO_EXTENSIONS=1 $(PY) -m pytest -q

conformance: $(TSTAMP)  ## print the per-peer, per-set, per-stream match table
	$(PY) -m conformance.compare

bench: $(TSTAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build src/*.egg-info src/certstream/_fast/*.c src/certstream/_fast/*.so
