"""The sans-IO core must not pull in I/O: import it in a fresh interpreter and look.

``tests/unit/test_layering.py`` reads the core's own import statements; this catches what it
cannot see, I/O modules pulled in by the packages the core imports. A test in-process would be
fooled by whatever other tests already imported, so each check runs a new interpreter (as
multidict's circular-import test does).
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import certstream._fast
import certstream.core

FORBIDDEN = ("gevent", "socket", "ssl", "select", "selectors", "asyncio")


def _modules(pkg: object) -> list[str]:
    path = pkg.__path__  # type: ignore[attr-defined]
    prefix = pkg.__name__ + "."  # type: ignore[attr-defined]
    return [m.name for m in pkgutil.iter_modules(path, prefix)]


CORE_MODULES = _modules(certstream.core) + _modules(certstream._fast)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_no_io(module: str) -> None:
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        f"bad = sorted(m for m in {FORBIDDEN!r} if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out == "", f"{module} imports I/O modules: {out}"


def test_core_has_modules() -> None:
    # Guards the parametrization above against silently testing nothing.
    assert "certstream.core.model" in CORE_MODULES
