"""pytest fixtures that tests of more than one tier use (``tests/conftest.py`` registers
this module as a plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance.replay import ReplayServer
from tests.support.net import short_tmpdir


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    """A replay CT log for the test to fill and start; stopped afterwards."""
    # A "timeout" fault holds its answer 2 s, past the ingest's 1 s request timeout.
    srv = ReplayServer(hold_seconds=2.0)
    yield srv
    srv.stop()


@pytest.fixture
def tmp_short() -> Iterator[Path]:
    """A temporary directory short enough to hold a Unix socket (see ``short_tmpdir``)."""
    with short_tmpdir("cs-test-") as path:
        yield path
