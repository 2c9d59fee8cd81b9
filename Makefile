# certstream: a newcomer needs `make demo` (no internet), `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

export CERTSTREAM_REQUIRE_EXTENSIONS ?= 1

.PHONY: install install-test clients run demo test test-unit test-pure lint typecheck bench conformance clean chromium redis

# The package is built without isolation, against this venv, so the venv holds the build
# requirements: the same as [build-system] requires in pyproject.toml (setuptools >= 77 for
# the license expression; Cython only builds the accelerators, the package runs without it).
BUILD_REQS := "setuptools>=77" "Cython>=3.0"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml setup.py $(wildcard src/certstream/_fast/*.pyx)
	$(PIP) install -q $(BUILD_REQS)
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
	@# node's ws client (permessage-deflate test); without node or npm that test skips
	-command -v npm >/dev/null 2>&1 && npm install --silent --no-audit --no-fund \
	  --prefix $(VENV)/node "ws@^8"
	touch $@

install: $(STAMP)   ## venv + package with its Cython extensions built

clients: $(CSTAMP)  ## the PyPI certstream client, in .venv/clients

run: install clients  ## follow the public CT logs and serve on :8080 (default config)
	$(VENV)/bin/certstream

demo: install clients ## no internet needed: serve the packaged recorded CT entries on :8080
	$(VENV)/bin/certstream --demo

test: $(TSTAMP) chromium redis  ## the whole suite: lint, types, unit, conformance, both _fast twins
	$(VENV)/bin/ruff check src tests conformance bench soak
	$(VENV)/bin/mypy
	$(PY) -m pytest -q
	CERTSTREAM_NO_EXTENSIONS=1 $(PY) -m pytest -q -m "not slow" tests conformance

# The live page test drives the system's chromium (Debian's package) through Playwright's
# executable_path, never a browser Playwright downloads; installed when we are root and it
# is missing, else that test skips and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
	    >/dev/null 2>&1 || echo "chromium not installed: the live page test will skip"; }

# The broker tests (role: ingest / edge) start a real redis-server (Debian's package) on a
# free loopback port; installed when we are root and it is missing, else they skip and say
# why.  The tests never use a Redis the package itself may start (they start their own).
redis:
	@command -v redis-server >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server) \
	    >/dev/null 2>&1 || echo "redis-server not installed: the broker tests will skip"; }

test-unit: $(TSTAMP)  ## the unit tier alone (no sockets, greenlets or processes): ~20 s
	$(PY) -m pytest -q -m "not slow" tests/unit

test-pure: $(TSTAMP)
	CERTSTREAM_NO_EXTENSIONS=1 $(PY) -m pytest -q

conformance: $(TSTAMP)  ## print the per-peer, per-set, per-stream match table
	$(PY) -m conformance.compare

bench: $(TSTAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build src/*.egg-info src/certstream/_fast/*.c src/certstream/_fast/*.so
