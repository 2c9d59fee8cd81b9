"""The operators' politeness budget, shared by every follower of the ingest: waits out the
delay that ``certstream.core.backoff.OperatorBudgets`` computes."""

from __future__ import annotations

import time
from collections.abc import Mapping

import gevent

from certstream.core.backoff import OperatorBudgets
from certstream.core.logspec import LogSpec

__all__ = ["Politeness"]


class Politeness:
    """Per-operator token buckets shared by all logs of an operator (else of a host)."""

    def __init__(self, default_interval: float, per_operator: Mapping[str, float]) -> None:
        self.budgets = OperatorBudgets(default_interval, per_operator)

    @staticmethod
    def bucket_name(spec: LogSpec) -> str:
        return spec.budget_name

    def wait(self, spec: LogSpec) -> None:
        delay = self.budgets.reserve(spec.budget_name, time.monotonic())
        if delay > 0:
            gevent.sleep(delay)
