"""Recorded data the tests share: the repository root and the Go server's golden frames."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "conformance" / "data" / "golden" / "go" / "live40"


def golden_payloads(stream: str) -> list[bytes]:
    """The exact text-frame payloads certstream-server-go sent for the live40 set."""
    path = GOLDEN / f"{stream}.jsonl"
    return [json.loads(line).encode("utf-8") for line in path.read_text().splitlines() if line]
