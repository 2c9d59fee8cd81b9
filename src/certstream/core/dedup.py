"""The dedup ring, from ``certstream._fast._dedup`` (compiled) or its pure-Python twin.

See ``certstream._fast._dedup_py`` for the algorithm.  ``DedupRingPy`` is always the pure
one, for tests and for comparing the two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certstream._fast import COMPILED, NO_EXTENSIONS
from certstream._fast._dedup_py import DedupRing as DedupRingPy

if TYPE_CHECKING or NO_EXTENSIONS:
    from certstream._fast._dedup_py import DedupRing

    COMPILED["_dedup"] = False
else:
    try:
        from certstream._fast._dedup import DedupRing
    except ImportError:
        from certstream._fast._dedup_py import DedupRing

        COMPILED["_dedup"] = False
    else:
        COMPILED["_dedup"] = True

__all__ = ["DedupRing", "DedupRingPy"]
