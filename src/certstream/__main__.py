"""``python -m certstream``: the same as the ``certstream`` command."""

from __future__ import annotations

from certstream.cli import main

raise SystemExit(main())
