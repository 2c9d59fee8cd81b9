"""Guard against a silent fallback to the pure-Python twins (yarl's test_quoting_c_loaded).

A build that should have compiled modules but lost one (a compiler error swallowed by an
optional extension, a stale .so for another Python) would still pass every other test, only
slower.  Each check runs in a fresh interpreter so that the environment variable is read at
import time, as in production, whatever this process has already imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from certstream._fast import MODULES, NO_EXTENSIONS

# Facade module -> the _fast twin it selects.
FACADES = {
    "certstream.core.leaves": "_leaf",
    "certstream.core.tiles": "_leaf",
    "certstream.core.dedup": "_dedup",
    "certstream.core.frames": "_frames",
    "certstream.core.messages": "_json",
}

_PROBE = """
import importlib, json, sys
import certstream._fast as fast
out = {"modules": {}, "facades": {}}
for name in fast.MODULES:
    mod = fast.load(name)
    out["modules"][name] = [mod.__name__, getattr(mod, "__file__", "") or ""]
for facade in sys.argv[1:]:
    importlib.import_module(facade)
out["compiled"] = dict(fast.COMPILED)
print(json.dumps(out))
"""


def _probe(no_extensions: bool) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("CERTSTREAM_NO_EXTENSIONS", None)
    if no_extensions:
        env["CERTSTREAM_NO_EXTENSIONS"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *FACADES],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.skipif(NO_EXTENSIONS, reason="CERTSTREAM_NO_EXTENSIONS is set")
@pytest.mark.parametrize("name", MODULES)
def test_compiled_module_is_loaded(name: str) -> None:
    got = _probe(no_extensions=False)
    mod_name, mod_file = got["modules"][name]
    assert mod_name == f"certstream._fast.{name}", f"{name} fell back to {mod_name}"
    assert str(mod_file).endswith((".so", ".pyd")), f"{name} loaded from {mod_file}"
    assert got["compiled"][name] is True


@pytest.mark.skipif(NO_EXTENSIONS, reason="CERTSTREAM_NO_EXTENSIONS is set")
def test_facades_use_the_compiled_twins() -> None:
    got = _probe(no_extensions=False)
    for name in set(FACADES.values()):
        assert got["compiled"][name] is True, name
    # The facades hand out the compiled functions themselves.
    code = (
        "from certstream.core import leaves, tiles, dedup, frames\n"
        "print(leaves.decode_entry.__module__, tiles.parse_data_tile.__module__,"
        " dedup.DedupRing.__module__, frames.ws_frame.__module__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CERTSTREAM_NO_EXTENSIONS"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert out == [
        "certstream._fast._leaf",
        "certstream._fast._leaf",
        "certstream._fast._dedup",
        "certstream._fast._frames",
    ]


def test_no_extensions_selects_the_pure_twins() -> None:
    got = _probe(no_extensions=True)
    for name in MODULES:
        mod_name, mod_file = got["modules"][name]
        assert mod_name == f"certstream._fast.{name}_py"
        assert str(mod_file).endswith(".py")
    for name in set(FACADES.values()):
        assert got["compiled"][name] is False, name
