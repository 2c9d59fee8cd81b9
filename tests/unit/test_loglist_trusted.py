"""Logs of every trusted list: Google's and Apple's recorded lists combined, each log judged
by the list that names it under one states rule, and followed once."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from certstream.config import CtLogSettings, Settings
from certstream.core.loglist import LogInfo, parse_log_list, select_logs
from certstream.shell.logselect import select_specs

LISTS = Path(__file__).resolve().parents[1] / "fixtures" / "ct" / "loglists"
GOOGLE_PATH = LISTS / "google_log_list_v3_85.92.json"
APPLE_PATH = LISTS / "apple_current_log_list_v511.json"
GOOGLE = parse_log_list(GOOGLE_PATH.read_bytes(), "google")
APPLE = parse_log_list(APPLE_PATH.read_bytes(), "apple")
# Apple's list carries no timestamp: judge both as of Google's.
NOW = datetime.fromisoformat(json.loads(GOOGLE_PATH.read_bytes())["log_list_timestamp"]
                             ).timestamp()
ALLOWED = ("usable", "qualified", "readonly")


def _raw_logs(path: Path) -> list[tuple[str, dict[str, Any]]]:
    doc = json.loads(path.read_bytes())
    return [(op["name"], log) for op in doc["operators"]
            for field in ("logs", "tiled_logs") for log in op.get(field, [])]


def _eligible_ids(path: Path, states: tuple[str, ...]) -> set[str]:
    """The rule as written, from the raw JSON: a state asked for (never retired or
    rejected), no test/monitoring log type, a shard not ended over 400 days ago."""
    out = set()
    for _op, log in _raw_logs(path):
        state = next(iter(log.get("state") or {"": None}))
        end = (log.get("temporal_interval") or {}).get("end_exclusive")
        current = end is None or datetime.fromisoformat(end).timestamp() >= NOW - 400 * 86400
        if state in states and state not in ("retired", "rejected") and current \
                and log.get("log_type") not in ("test", "monitoring_only"):
            out.add(log["log_id"])
    return out


def _by_name(logs: list[LogInfo], text: str) -> list[LogInfo]:
    return [log for log in logs if text in log.description]


def test_apple_only_static_logs_of_an_operator_google_lists_are_followed() -> None:
    assert any(log.operator == "Cloudflare" for log in GOOGLE)  # Google names Cloudflare
    google_ids = {log.log_id for log in GOOGLE}
    raio = [log for log in _by_name(APPLE, "'Raio") if log.log_id not in google_ids]
    assert len(raio) == 5  # only Apple's list carries the Raio logs
    selected = select_logs(GOOGLE, APPLE, ALLOWED, NOW)
    followed = _by_name(selected, "'Raio")
    assert sorted(log.description for log in followed) == [
        "Cloudflare 'Raio2026h1a' log", "Cloudflare 'Raio2026h2a' log",
        "Cloudflare 'Raio2027h1a' log", "Cloudflare 'Raio2027h2a' log",
    ]  # Raio2025h2b is rejected in Apple's list
    for log in followed:
        assert (log.kind, log.source, log.operator, log.state) == (
            "static", "apple", "Cloudflare", "usable")
    # As follower specs: the monitoring prefix to read, the submission URL's origin.
    specs = {s.name: s for s in select_specs(
        {"g": ("google", list(GOOGLE)), "a": ("apple", list(APPLE))}, Settings(), NOW)}
    spec = specs["Cloudflare 'Raio2026h1a' log"]
    assert (spec.kind, spec.url, spec.origin) == (
        "static", "https://raio2026h1a.ct.cloudflare.com/", "ct.cloudflare.com/logs/raio2026h1a")
    assert spec.spki is not None
    # static_ct_enabled: false leaves them out, as any static log.
    off = dataclasses.replace(Settings(), ct_log=CtLogSettings(static_ct_enabled=False))
    assert not [s for s in select_specs({"a": ("apple", list(APPLE))}, off, NOW)
                if "Raio" in s.name]


def test_the_states_rule_applies_to_both_lists() -> None:
    for states in (ALLOWED, ("usable",), ("usable", "qualified", "readonly", "pending")):
        selected = select_logs(GOOGLE, APPLE, states, NOW)
        expected = _eligible_ids(GOOGLE_PATH, states) | _eligible_ids(APPLE_PATH, states)
        assert {log.log_id for log in selected} == expected, states
        assert all(log.state in states for log in selected)
        # Each list alone follows the same rule.
        for logs, path in ((GOOGLE, GOOGLE_PATH), (APPLE, APPLE_PATH)):
            assert {log.log_id for log in select_logs(logs, None, states, NOW)} == \
                _eligible_ids(path, states)
            assert {log.log_id for log in select_logs(None, logs, states, NOW)} == \
                _eligible_ids(path, states)
    # Retired or rejected in a list is never followed from that list, whatever is asked.
    forced = select_logs(None, APPLE, ("rejected", "retired", *ALLOWED), NOW)
    assert not [log for log in forced if log.state in ("rejected", "retired")]


def test_each_list_judges_the_logs_it_names() -> None:
    # Oak2026H1: retired in Google's list, readonly (with its final tree head) in Apple's.
    (oak_google,) = _by_name(GOOGLE, "Oak2026h1")
    (oak_apple,) = _by_name(APPLE, "Oak2026H1")
    assert (oak_google.state, oak_apple.state) == ("retired", "readonly")
    (oak,) = _by_name(select_logs(GOOGLE, APPLE, ALLOWED, NOW), "Oak2026H1")
    assert oak.source == "apple" and oak.final_tree_size == 598614696
    assert not _by_name(select_logs(GOOGLE, APPLE, ("usable", "qualified"), NOW), "Oak2026")
    # Luoshu2027: usable in Google's list, pending in Apple's: followed as Google lists it,
    # and only as Apple lists it when pending is what is asked for.
    (luoshu,) = _by_name(select_logs(GOOGLE, APPLE, ALLOWED, NOW), "Luoshu2027")
    assert (luoshu.source, luoshu.state) == ("google", "usable")
    (pending,) = _by_name(select_logs(GOOGLE, APPLE, ("pending",), NOW), "Luoshu2027")
    assert (pending.source, pending.state) == ("apple", "pending")


def test_a_log_in_both_lists_is_followed_once_as_google_lists_it() -> None:
    selected = select_logs(GOOGLE, APPLE, ALLOWED, NOW)
    assert len({log.log_id for log in selected}) == len(selected)
    google_ok = {log.log_id for log in select_logs(GOOGLE, None, ALLOWED, NOW)}
    in_both = google_ok & {log.log_id for log in APPLE}
    assert len(in_both) > 20
    assert all(log.source == "google" for log in selected if log.log_id in in_both)
    # Apple's list adds exactly the logs Google's list does not make eligible.
    from_apple = {log.log_id for log in selected if log.source == "apple"}
    assert from_apple == _eligible_ids(APPLE_PATH, ALLOWED) - google_ok
