"""The real server following the live40 set from the replay CT log, with the logs held back
until the test's clients are connected: :func:`live40_server`; and :func:`judge_ws`, the
conformance comparison of what clients received with the Go server's golden frames."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance import compare
from conformance.harness import Capture
from conformance.replay import ReplayServer
from conformance.verdict import SetVerdict, judge
from tests.support.server import Server, deep_merge, run_server

__all__ = ["Live40", "judge_ws", "live40_server"]


@dataclass
class Live40:
    """A running server on the live40 replay: ``open()`` lets the logs serve their entries
    (``more`` extra entries per log after them, if the replay was given some)."""

    server: Server
    replay: ReplayServer
    logs: list[dict[str, Any]]
    served: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The replay's base URL: the golden frames' log URLs are rewritten to it."""
        return self.replay.url

    def open(self, entries: int | None = None) -> None:
        """Make the first ``entries`` entries of each log visible (all of live40's by
        default)."""
        for log in self.logs:
            want = int(log["count"]) if entries is None else entries
            have = self.served.get(log["path"], 0)
            if want > have:
                self.replay.grow(log["path"], want - have)
                self.served[log["path"]] = want


@contextlib.contextmanager
def live40_server(config: Mapping[str, Any] | None = None,
                  more: Mapping[str, Sequence[dict[str, str]]] | None = None,
                  **run: Any) -> Iterator[Live40]:
    """The ``certstream`` command (ingest and workers) following live40's two logs from the
    replay CT log, nothing visible yet; ``more`` appends entries to a log (by its path).
    ``config`` goes over the test's settings; ``run`` to :func:`run_server`."""
    manifest = compare.manifest("live40")
    replay = ReplayServer()
    for log in manifest["logs"]:
        entries = json.loads((compare.INPUTS / "live40" / log["entries"]).read_text())["entries"]
        entries += list((more or {}).get(log["path"], ()))
        replay.add_rfc6962_log(log["path"], entries, log["first_index"], visible=0)
    replay.start()
    settings: dict[str, Any] = {
        "ct_log": {"poll_interval_ms": 200},
        "custom_logs": [
            {"name": log["name"], "url": replay.url + log["path"],
             "start_index": log["first_index"], "operator": log["operator"]}
            for log in manifest["logs"]
        ],
    }
    try:
        with run_server(deep_merge(settings, config or {}), ingest=True, **run) as server:
            yield Live40(server, replay, manifest["logs"])
    finally:
        replay.stop()


def judge_ws(base_url: str, frames: Mapping[str, list[str]]) -> SetVerdict:
    """What WebSocket clients received, by stream (lite, full, domains), against the Go
    server's live40 goldens, as ``python -m conformance run`` judges it."""
    cap = Capture(base_url, {("ws", stream): list(texts) for stream, texts in frames.items()},
                  "")
    return judge("go", "live40", cap)
