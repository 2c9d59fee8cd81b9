"""Accelerators, each compiled module beside a pure-Python twin, and the one switch between them.

The yarl/multidict pattern: ``_x.pyx`` is compiled by ``setup.py`` when Cython and a compiler
are present; ``_x_py.py`` is the reference implementation and the source of types for mypy.
This module is the only place that chooses: the rest of the package imports the names from
here (``from certstream._fast import parse_certificate``), never from a twin.

* ``CERTSTREAM_NO_EXTENSIONS=1`` (or a non-CPython interpreter) selects the pure twins.
* A twin is loaded on the first use of one of its names (PEP 562), so a process imports only
  the twins it uses: a worker needs ``_frames`` alone, and the certificate parser's module
  has no business in it.
* Whether each compiled module loaded is recorded in ``COMPILED`` so that a test can fail on
  a silent fallback.
* For mypy (``TYPE_CHECKING``) every name is the pure twin's: both twins keep that API.

The twins import only from the core's floor (``core.model``, ``core.oids``, ``core.names``,
``core.jsontext``, ``core.extformat``, ``core.profiles``) and from each other, never a module
that imports this one.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from certstream._fast._dedup_py import DedupRing
    from certstream._fast._der_py import parse_certificate, parse_tbs
    from certstream._fast._frames_py import (
        join_ws_frames,
        sse_comment,
        sse_event,
        ws_close_frame,
        ws_compressed_frame,
        ws_frame,
        ws_ping_frame,
        ws_pong_frame,
    )
    from certstream._fast._heap_py import malloc_trim
    from certstream._fast._json_py import CertWriter
    from certstream._fast._leaf_py import (
        BadLeaf,
        TileLeaf,
        TileRead,
        b64decode,
        decode_entry,
        decode_get_entries_fast,
        parse_data_tile,
        read_data_tile,
    )

__all__ = [
    "COMPILED",
    "MODULES",
    "NO_EXTENSIONS",
    "BadLeaf",
    "CertWriter",
    "DedupRing",
    "TileLeaf",
    "TileRead",
    "b64decode",
    "decode_entry",
    "decode_get_entries_fast",
    "join_ws_frames",
    "load",
    "malloc_trim",
    "parse_certificate",
    "parse_data_tile",
    "parse_tbs",
    "read_data_tile",
    "sse_comment",
    "sse_event",
    "ws_close_frame",
    "ws_compressed_frame",
    "ws_frame",
    "ws_ping_frame",
    "ws_pong_frame",
]

NO_EXTENSIONS = bool(os.environ.get("CERTSTREAM_NO_EXTENSIONS")) or (
    sys.implementation.name != "cpython"
)

#: The accelerated modules, by base name (``_der`` is ``_der.pyx`` / ``_der_py.py``).
MODULES = ("_der", "_leaf", "_dedup", "_frames", "_json", "_heap")

#: base name -> True when the compiled module is the one in use (set when it is loaded).
COMPILED: dict[str, bool] = {}

# What the package takes from each twin (the names above, by the module that defines them).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "_der": ("parse_certificate", "parse_tbs"),
    "_leaf": ("BadLeaf", "TileLeaf", "TileRead", "b64decode", "decode_entry",
              "decode_get_entries_fast", "parse_data_tile", "read_data_tile"),
    "_dedup": ("DedupRing",),
    "_frames": ("join_ws_frames", "sse_comment", "sse_event", "ws_close_frame",
                "ws_compressed_frame", "ws_frame", "ws_ping_frame", "ws_pong_frame"),
    "_json": ("CertWriter",),
    "_heap": ("malloc_trim",),
}
_SOURCE = {name: base for base, names in _EXPORTS.items() for name in names}


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


if not TYPE_CHECKING:  # mypy reads the imports above; a module __getattr__ would hide typos

    def __getattr__(name: str) -> Any:
        base = _SOURCE.get(name)
        if base is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        mod = load(base)
        namespace = globals()
        for export in _EXPORTS[base]:  # bind all of this twin's names: one load per twin
            namespace[export] = getattr(mod, export)
        return namespace[name]
