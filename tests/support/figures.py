"""How a benchmark prints a figure (``bench.common.Figure.line``), as the tests read it back."""

from __future__ import annotations

import re

FIGURE_LINE = re.compile(
    r"^FIGURE (?P<name>.+?) = (?P<value>[0-9.,]+) (?P<unit>\S.*?)  \[(?P<target>[^\]]*)\]"
    r"  (?P<verdict>MET|MISSED|info)"
)
