"""Accelerators: each compiled module beside a pure-Python twin with the same API.

The yarl/multidict pattern: ``_x.pyx`` is compiled by ``setup.py`` when Cython and a compiler
are present; ``_x_py.py`` is the reference implementation and the source of types for mypy.
``CERTSTREAM_NO_EXTENSIONS=1`` (or a non-CPython interpreter) selects the twins.  Whether the
compiled modules loaded is recorded in ``COMPILED`` so that a test can fail on a silent
fallback.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

NO_EXTENSIONS = bool(os.environ.get("CERTSTREAM_NO_EXTENSIONS")) or (
    sys.implementation.name != "cpython"
)

#: The accelerated modules, by base name (``_der`` is ``_der.pyx`` / ``_der_py.py``).
MODULES = ("_der", "_leaf", "_dedup", "_frames", "_json")

#: base name -> True when the compiled module is the one in use.
COMPILED: dict[str, bool] = {}


def load(name: str) -> ModuleType:
    """Return the compiled module ``name`` if allowed and importable, else its pure twin."""
    if not NO_EXTENSIONS:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ImportError:
            pass
        else:
            COMPILED[name] = True
            return mod
    COMPILED[name] = False
    return importlib.import_module(f"{__name__}.{name}_py")
