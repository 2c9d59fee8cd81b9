"""Shared test fixtures: both implementations of every ``certstream._fast`` module.

As in multidict's conftest, a test that takes ``fast_impl`` (or one of the per-module
fixtures built on it) runs once with the compiled module (id ``c``) and once with the pure
twin (id ``py``).  The ``c`` run is skipped when ``CERTSTREAM_NO_EXTENSIONS`` is set or with
``--no-c-extensions``; a compiled module that should be there but is not is skipped here and
caught by ``tests/e2e/test_fast_loaded.py``, which fails loudly.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from tests.support.twins import load_twin

from certstream._fast import NO_EXTENSIONS

# Fixtures more than one tier uses (a replay CT log, a short temporary directory).
pytest_plugins = ["tests.support.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-c-extensions",
        action="store_true",
        default=False,
        help="skip the tests of the compiled certstream._fast modules",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "c_extension: runs against a compiled _fast module")


@pytest.fixture(
    scope="session",
    params=[pytest.param("c", marks=pytest.mark.c_extension), "py"],
)
def fast_impl(request: pytest.FixtureRequest) -> str:
    impl: str = request.param
    if impl == "c":
        if NO_EXTENSIONS:
            pytest.skip("CERTSTREAM_NO_EXTENSIONS is set")
        if request.config.getoption("--no-c-extensions"):
            pytest.skip("--no-c-extensions")
    return impl


@pytest.fixture
def leaf_mod(fast_impl: str) -> ModuleType:
    return load_twin("_leaf", fast_impl)


@pytest.fixture
def dedup_mod(fast_impl: str) -> ModuleType:
    return load_twin("_dedup", fast_impl)


@pytest.fixture
def frames_mod(fast_impl: str) -> ModuleType:
    return load_twin("_frames", fast_impl)
