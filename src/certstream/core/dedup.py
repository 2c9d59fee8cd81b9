"""The dedup ring: ``DedupRing`` from ``certstream._fast`` (compiled ``_dedup`` or its twin).

See ``certstream._fast._dedup_py`` for the algorithm.
"""

from __future__ import annotations

from certstream._fast import DedupRing

__all__ = ["DedupRing"]
