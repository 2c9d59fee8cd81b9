"""Certificate fields from DER: ``parse_certificate`` and ``parse_tbs``.

The work is done by the lenient DER walker in ``certstream._fast``: the compiled ``_der``
when it is built and allowed, else its pure-Python twin ``_der_py`` (the yarl ``_quoting``
pattern).  mypy reads the pure twin, so both must keep the same API.  Which one loaded is
recorded in ``certstream._fast.COMPILED["_der"]`` so that a test can catch a silent fallback.

Both functions raise ``DecodeError`` only when the outer SEQUENCE cannot be read; anything
wrong below that is listed in ``CertInfo.problems`` and the rest is still filled in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certstream._fast import COMPILED, NO_EXTENSIONS

__all__ = ["parse_certificate", "parse_tbs"]

if TYPE_CHECKING or NO_EXTENSIONS:
    from certstream._fast._der_py import parse_certificate, parse_tbs

    COMPILED["_der"] = False
else:
    try:
        from certstream._fast._der import parse_certificate, parse_tbs

        COMPILED["_der"] = True
    except ImportError:  # no compiler at build time: the twin has the same API
        from certstream._fast._der_py import parse_certificate, parse_tbs

        COMPILED["_der"] = False
