"""Sans-IO health of one log, from the outcomes of its recent requests.

* ``starting``: no request to the log has completed yet (it is not known to be healthy).
* ``healthy``: the last request succeeded and we were not recovering.
* ``degraded``: some consecutive failures (fewer than ``unhealthy_threshold``), or an
  unhealthy log that has started to succeed again but not yet ``healthy_threshold`` times
  in a row.
* ``unhealthy``: ``unhealthy_threshold`` or more consecutive failures.

The log is never given up: the follower keeps retrying with backoff, and the status comes
back to healthy by itself.  Time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEGRADED", "HEALTHY", "STARTING", "UNHEALTHY", "HealthSnapshot", "HealthTracker"]

STARTING = "starting"
HEALTHY = "healthy"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    status: str
    consecutive_failures: int
    errors: int
    last_success: float | None
    last_error: str


class HealthTracker:
    def __init__(self, healthy_threshold: int = 2, unhealthy_threshold: int = 5) -> None:
        self.healthy_threshold = max(1, healthy_threshold)
        self.unhealthy_threshold = max(1, unhealthy_threshold)
        self.status = STARTING
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.errors = 0
        #: Errors by kind ("timeout", "http_429", "bad_json", ...), for metrics.
        self.errors_by_kind: dict[str, int] = {}
        self.last_success: float | None = None
        self.last_error = ""

    def success(self, now: float) -> str:
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        self.last_success = now
        # Coming back needs healthy_threshold successes in a row: one lucky answer from a
        # flapping log should not flip it to healthy.  A log's first answer is enough.
        if self.status not in (HEALTHY, STARTING) and \
                self.consecutive_successes < self.healthy_threshold:
            self.status = DEGRADED
        else:
            self.status = HEALTHY
        return self.status

    def failure(self, kind: str, detail: str = "") -> str:
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        self.errors += 1
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
        self.last_error = f"{kind}: {detail}" if detail else kind
        if self.consecutive_failures >= self.unhealthy_threshold:
            self.status = UNHEALTHY
        else:
            self.status = DEGRADED
        return self.status

    def snapshot(self) -> HealthSnapshot:
        return HealthSnapshot(
            self.status, self.consecutive_failures, self.errors, self.last_success,
            self.last_error,
        )
