"""What to follow and how: a log's ``LogSpec``, the followers' ``FollowerSettings``, and the
index a log starts at.

Plain values, next to the planners of ``certstream.core.follow`` that use them; the shell's
followers (``certstream.shell.follow_*``) drive both with real HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from certstream.core.model import LogSource

__all__ = ["CtLogOptions", "FollowerSettings", "LogSpec", "log_key", "start_position"]


@dataclass(frozen=True, slots=True)
class LogSpec:
    """What to follow.  ``key`` names the log on the feed and in the state file."""

    key: str
    name: str
    url: str  # RFC 6962: log URL; static: monitoring prefix; ends with "/"
    kind: str = "rfc6962"  # "rfc6962" | "static"
    operator: str = ""
    start_index: int | None = None
    stop_at: int | None = None  # readonly logs: the final tree size
    spki: bytes | None = None  # the log key: checks the checkpoint or the STH signature
    origin: str | None = None  # static: checkpoint origin

    @property
    def source(self) -> LogSource:
        return LogSource(self.name, self.url, self.kind, self.operator)

    @property
    def budget_name(self) -> str:
        """The politeness budget this log draws on: its operator's, else its host's (the
        host is who we would overload)."""
        return self.operator or (urlsplit(self.url).hostname or self.url)


class CtLogOptions(Protocol):
    """The ``ct_log`` settings a follower reads (``certstream.config.CtLogSettings``)."""

    @property
    def batch_size(self) -> int: ...
    @property
    def fetch_concurrency(self) -> int: ...
    @property
    def poll_interval_ms(self) -> int: ...
    @property
    def retry_initial_delay_ms(self) -> int: ...
    @property
    def retry_max_delay_ms(self) -> int: ...
    @property
    def healthy_threshold(self) -> int: ...
    @property
    def unhealthy_threshold(self) -> int: ...
    @property
    def start_overlap_leaves(self) -> int: ...
    @property
    def static_ct_checkpoint_signature(self) -> str: ...
    @property
    def sth_signature(self) -> str: ...
    @property
    def max_body_bytes(self) -> int: ...
    @property
    def ct_index_file(self) -> str: ...


@dataclass(frozen=True, slots=True)
class FollowerSettings:
    """The ``ct_log`` settings a follower uses, in seconds where the config has ms.

    Built with :meth:`from_ct_log`: the defaults are the config's, written once there.
    """

    batch_size: int
    fetch_concurrency: int
    poll_interval: float
    retry_initial: float
    retry_max: float
    healthy_threshold: int
    unhealthy_threshold: int
    start_overlap: int
    checkpoint_signature: str  # off | warn | enforce (static-ct checkpoints)
    sth_signature: str  # off | warn | enforce (RFC 6962 get-sth)
    max_body_bytes: int
    recovery: bool  # a ct_index.json is in use: logs it does not name start at 0

    @classmethod
    def from_ct_log(cls, ct: CtLogOptions) -> FollowerSettings:
        return cls(
            batch_size=ct.batch_size,
            fetch_concurrency=ct.fetch_concurrency,
            poll_interval=ct.poll_interval_ms / 1000.0,
            retry_initial=ct.retry_initial_delay_ms / 1000.0,
            retry_max=ct.retry_max_delay_ms / 1000.0,
            healthy_threshold=ct.healthy_threshold,
            unhealthy_threshold=ct.unhealthy_threshold,
            start_overlap=ct.start_overlap_leaves,
            checkpoint_signature=ct.static_ct_checkpoint_signature,
            sth_signature=ct.sth_signature,
            max_body_bytes=ct.max_body_bytes,
            recovery=bool(ct.ct_index_file),
        )


def log_key(url: str) -> str:
    """The feed/state key of a log: its URL with exactly one trailing slash."""
    return url.rstrip("/") + "/"


def start_position(
    head: int, *, saved_next: int | None, start_index: int | None, overlap: int,
    resume_index: int | None = None, recovery: bool = False,
) -> int:
    """Where a log starts, first rule that applies:

    1. its saved position (the state file, ``saved_next``): from then on the truth;
    2. certstream-server-go's ``ct_index.json`` (``resume_index``): *at* the saved index,
       never after it, for both kinds of log (Go resumes a tiled log one later, which loses
       an entry when the index came from ``create-index``; see ``certstream.core.ctindex``);
    3. the configured start index;
    4. with Go's recovery on (``recovery``) and no saved index: 0, as Go does;
    5. ``overlap`` entries before the current ``head`` (never below 0).
    """
    if saved_next is not None:
        return saved_next
    if resume_index is not None:
        return resume_index
    if start_index is not None:
        return start_index
    if recovery:
        return 0
    return max(0, head - overlap)
