"""Certificate fields from DER: ``parse_certificate`` and ``parse_tbs``.

The work is done by the lenient DER walker of ``certstream._fast`` (the compiled ``_der`` or
its pure twin ``_der_py``; the switch there chooses).

Both functions raise ``DecodeError`` only when the outer SEQUENCE cannot be read; anything
wrong below that is listed in ``CertInfo.problems`` and the rest is still filled in.
"""

from __future__ import annotations

from certstream._fast import parse_certificate, parse_tbs

__all__ = ["parse_certificate", "parse_tbs"]
