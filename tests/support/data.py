"""Recorded data the tests share: where it lies in the repository, the Go server's golden
frames, the live40 entries."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "conformance" / "data" / "golden" / "go" / "live40"


def golden_payloads(stream: str) -> list[bytes]:
    """The exact text-frame payloads certstream-server-go sent for the live40 set."""
    path = GOLDEN / f"{stream}.jsonl"
    return [json.loads(line).encode("utf-8") for line in path.read_text().splitlines() if line]


CT_FIXTURES = ROOT / "tests" / "fixtures" / "ct"
NAVIGLI = CT_FIXTURES / "static-ct" / "navigli2025h2"
INPUTS = ROOT / "conformance" / "data" / "inputs"
LIVE40 = INPUTS / "live40"


def live40_entries(*names: str) -> list[dict[str, str]]:
    """The recorded get-entries of live40 logs (e.g. ``argon2026h2.get-entries.json``), in
    the order named."""
    out: list[dict[str, str]] = []
    for name in names:
        out += json.loads((LIVE40 / name).read_text())["entries"]
    return out


def base_entries() -> list[dict[str, str]]:
    """The live40 entries of Argon2026h2 and Nimbus2026, from which tests synthesise logs."""
    return live40_entries("argon2026h2.get-entries.json", "nimbus2026.get-entries.json")
