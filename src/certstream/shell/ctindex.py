"""certstream-server-go's ``ct_index.json`` in the ingest: read once at start to place the
logs our state file does not know yet, then kept current from the state file, so that a
user can switch back to Go and resume where we stopped.

The state file stays the truth (``certstream.shell.state``): a log it knows ignores
ct_index.json.  The file is rewritten (atomically, like the state file) after each state
flush that changed something and at shutdown, with every entry it held at start and the
position of every log the state file knows, in Go's format (``certstream.core.ctindex``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from certstream.core.ctindex import format_index, index_key, index_value, parse_index
from certstream.errors import DecodeError
from certstream.shell.atomicfile import atomic_write
from certstream.shell.state import LogPosition

__all__ = ["CtIndexFile"]

log = logging.getLogger("certstream.ingest")


class CtIndexFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self.entries: dict[str, int] = {}
        self._written: bytes | None = None

    def load(self) -> dict[str, int]:
        """Read the file.  Missing: no entries (it is written at the first flush, as Go
        creates it).  Unreadable: logged, no entries, and left as it is until a flush
        writes a good one, so that a typo costs a restart from 0, not the file."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            log.info("ct_index file %s does not exist yet; logs without a saved position "
                     "start at 0", self.path)
            return {}
        except OSError as exc:
            log.error("cannot read ct_index file %s: %s", self.path, exc)
            return {}
        try:
            self.entries = parse_index(data)
        except DecodeError as exc:
            log.error("ignoring unreadable ct_index file %s: %s", self.path, exc)
            return {}
        self._written = data
        log.info("ct_index file %s: %d logs", self.path, len(self.entries))
        return dict(self.entries)

    def resume_index(self, url: str) -> int | None:
        """The saved index of the log at ``url``, if the file had one."""
        return self.entries.get(index_key(url))

    def update(self, positions: Mapping[str, LogPosition]) -> bool:
        """Write the file with ``positions`` (the state file's, by log key) over the
        entries read at start.  True if it was written; an unchanged file is not."""
        entries = dict(self.entries)
        for key, position in positions.items():
            entries[index_key(key)] = index_value(position.next_index)
        data = format_index(entries)
        if data == self._written:
            return False
        try:
            atomic_write(self.path, data, prefix=".ct_index-")
        except OSError as exc:
            log.error("cannot write ct_index file %s: %s", self.path, exc)
            return False
        self._written = data
        return True
