"""Waiting in tests: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import time
from typing import Any


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
