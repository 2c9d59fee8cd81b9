"""The two implementations of a ``certstream._fast`` module, by name, for tests that run
against both (the ``fast_impl`` fixtures in ``tests/conftest.py``)."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest


def load_twin(name: str, impl: str) -> ModuleType:
    """``certstream._fast.<name>`` for ``c``, ``certstream._fast.<name>_py`` for ``py``."""
    suffix = "" if impl == "c" else "_py"
    try:
        return importlib.import_module(f"certstream._fast.{name}{suffix}")
    except ImportError as exc:
        pytest.skip(f"compiled {name} is not built: {exc}")
