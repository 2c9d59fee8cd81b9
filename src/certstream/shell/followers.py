"""Log followers: one greenlet per CT log, driving the sans-IO planners with real HTTP.

Data flows one way: a follower fetches and decodes, then hands entries in index order to
the ``Pipeline`` (``certstream.shell.pipeline``), which dedups, builds payloads for the
streams some worker wants, publishes them on the feed and only then advances the log's
resume position.

This module picks the follower for a log; the kinds live beside it, named for what they
hold: ``follow_base`` (``LogFollower``: backoff, health, pacing, and the failure policy),
``follow_rfc6962`` (get-sth and get-entries) and ``follow_static`` (checkpoint and tiles).
Keeping the subclasses out of the base's module is what lets this one import all three
without a cycle; the pipeline knows a follower only as a protocol, so it imports none of them.
"""

from __future__ import annotations

from certstream.core.logspec import FollowerSettings, LogSpec
from certstream.shell.follow_base import LogFollower
from certstream.shell.follow_rfc6962 import Rfc6962Follower
from certstream.shell.follow_static import StaticFollower
from certstream.shell.httpclient import HTTPClient
from certstream.shell.issuers import IssuerCache
from certstream.shell.pipeline import Pipeline
from certstream.shell.politeness import Politeness

__all__ = [
    "LogFollower",
    "Rfc6962Follower",
    "StaticFollower",
    "make_follower",
]


def make_follower(
    spec: LogSpec,
    cfg: FollowerSettings,
    *,
    http: HTTPClient,
    pipeline: Pipeline,
    politeness: Politeness,
    issuers: IssuerCache,
    saved_next: int | None = None,
    resume_index: int | None = None,
) -> LogFollower:
    if spec.kind == "static":
        return StaticFollower(
            spec, cfg, http=http, pipeline=pipeline, politeness=politeness,
            saved_next=saved_next, resume_index=resume_index, issuers=issuers,
        )
    return Rfc6962Follower(
        spec, cfg, http=http, pipeline=pipeline, politeness=politeness, saved_next=saved_next,
        resume_index=resume_index,
    )
