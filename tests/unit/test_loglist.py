"""Log lists: Google's signature, parsing both shapes, and the selection rule.

Expected selections are derived here from the raw JSON with the rule as written in the
protocol notes (states, log_type, stale shards), and cross-checked with counts documented
for the fixtures.  How Google's and Apple's lists combine: tests/unit/test_loglist_trusted.py.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.support.data import CT_FIXTURES

from certstream.core.loglist import (
    LogInfo,
    google_pubkey_pem,
    parse_log_list,
    select_logs,
    verify_google_list,
)
from certstream.errors import DecodeError

LISTS = CT_FIXTURES / "loglists"
GOOGLE = LISTS / "google_log_list_v3_85.92.json"
ALL_LOGS = LISTS / "google_all_logs_list_v3_89.25.json"
APPLE = LISTS / "apple_current_log_list_v511.json"
DAY = 86400.0


def _raw(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_bytes())
    return doc


def _raw_logs(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(operator, log object) of every RFC 6962 and tiled log in a list file."""
    return [
        (op["name"], log)
        for op in _raw(path)["operators"]
        for field in ("logs", "tiled_logs")
        for log in op.get(field, [])
    ]


def _list_time(path: Path) -> float:
    return datetime.fromisoformat(_raw(path)["log_list_timestamp"]).timestamp()


def _state(log: dict[str, Any]) -> str:
    return str(next(iter(log.get("state", {"": None}))))


def _current(log: dict[str, Any], now: float) -> bool:
    end = log.get("temporal_interval", {}).get("end_exclusive")
    return end is None or datetime.fromisoformat(end).timestamp() > now - 400 * DAY


# --- signature -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [GOOGLE, ALL_LOGS])
def test_google_signature_verifies_with_packaged_key(path: Path) -> None:
    body = path.read_bytes()
    sig = path.with_suffix(".sig").read_bytes()
    assert verify_google_list(body, sig)
    assert verify_google_list(body, sig, (LISTS / "google_log_list_pubkey.pem").read_bytes())


@pytest.mark.parametrize("where", [0, 300, -2])
def test_google_signature_fails_for_one_changed_byte(where: int) -> None:
    body = bytearray(GOOGLE.read_bytes())
    sig = GOOGLE.with_suffix(".sig").read_bytes()
    body[where] ^= 0x01
    assert not verify_google_list(bytes(body), sig)
    bad_sig = bytearray(sig)
    bad_sig[where] ^= 0x01
    assert not verify_google_list(GOOGLE.read_bytes(), bytes(bad_sig))


def test_google_signature_fails_with_another_key_or_a_bad_one() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body, sig = GOOGLE.read_bytes(), GOOGLE.with_suffix(".sig").read_bytes()
    assert not verify_google_list(body, sig, pem)
    assert not verify_google_list(body, sig, b"not a pem")
    assert google_pubkey_pem() == (LISTS / "google_log_list_pubkey.pem").read_bytes()


# --- parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "source"), [(GOOGLE, "google"), (ALL_LOGS, "google"),
                                              (APPLE, "apple")])  # fmt: skip
def test_every_log_parses(path: Path, source: str) -> None:
    logs = parse_log_list(path.read_bytes(), source)
    raw = _raw_logs(path)
    assert len(logs) == len(raw) and logs.skipped == 0
    assert logs.version == str(_raw(path)["version"])
    for log, (operator, obj) in zip(logs, raw, strict=True):
        assert log.operator == operator and log.source == source
        assert log.log_id == obj["log_id"] and log.key == obj["key"]
        assert log.url.endswith("/") and log.url.startswith("https://")
        assert log.kind == ("rfc6962" if "url" in obj else "static")
        assert log.state == _state(obj)


def test_documented_shape_of_the_chrome_list() -> None:
    logs = parse_log_list(GOOGLE.read_bytes(), "google")
    # SOURCES.md: 35 RFC 6962 logs and 21 tiled logs, the tiled ones all usable.
    assert sum(log.kind == "rfc6962" for log in logs) == 35
    tiled = [log for log in logs if log.kind == "static"]
    assert len(tiled) == 21 and {log.state for log in tiled} == {"usable"}


def test_static_origin_comes_from_the_submission_url() -> None:
    logs = {log.description: log for log in parse_log_list(ALL_LOGS.read_bytes(), "google")}
    parcel = logs["Google 'ParcelYard2026h2' log"]
    assert parcel.origin == "parcelyard2026h2.prod.certificate.transparency.goog"
    assert parcel.url.startswith("https://storage.googleapis.com/")
    sycamore = logs["Let's Encrypt 'Sycamore2026h2'"]
    assert sycamore.origin == "log.sycamore.ct.letsencrypt.org/2026h2"
    assert sycamore.url == "https://mon.sycamore.ct.letsencrypt.org/2026h2/"


def test_readonly_final_tree_size_and_temporal_end() -> None:
    logs = parse_log_list(ALL_LOGS.read_bytes(), "google")
    raw = {obj["log_id"]: obj for _, obj in _raw_logs(ALL_LOGS)}
    readonly = [log for log in logs if log.state == "readonly"]
    assert readonly
    for log in readonly:
        head = raw[log.log_id]["state"]["readonly"]["final_tree_head"]
        assert log.final_tree_size == head["tree_size"]
    sharded = [log for log in logs if log.temporal_end is not None]
    assert sharded
    for log in sharded:
        end = raw[log.log_id]["temporal_interval"]["end_exclusive"]
        assert log.temporal_end == datetime.fromisoformat(end).timestamp()


def test_malformed_entries_are_skipped_and_counted() -> None:
    good = _raw_logs(GOOGLE)[0][1]
    other = _raw_logs(GOOGLE)[1][1]
    no_key = {k: v for k, v in good.items() if k != "key"}
    wrong_id = {**good, "log_id": other["log_id"]}
    no_url = {k: v for k, v in good.items() if k != "url"}
    two_states = {**good, "state": {"usable": {}, "retired": {}}}
    bad_b64 = {**good, "key": "***"}
    doc = {
        "operators": [
            {"name": "Op", "logs": [good, no_key, wrong_id, no_url, two_states, bad_b64]},
            {"name": "Old"},  # no tiled_logs, no logs: fine, nothing to skip
            "not an operator",
        ]
    }
    logs = parse_log_list(json.dumps(doc).encode(), "google")
    assert [log.log_id for log in logs] == [good["log_id"]]
    assert logs.skipped == 6


@pytest.mark.parametrize("body", [b"", b"[]", b"{", b'{"operators": 3}', b"\xff"])
def test_not_a_log_list(body: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_log_list(body, "google")


# --- selection -----------------------------------------------------------------------

ALLOWED = ("usable", "qualified", "readonly")


@pytest.mark.parametrize("path", [GOOGLE, ALL_LOGS])
def test_selection_follows_the_states_rule(path: Path) -> None:
    now = _list_time(path)
    selected = select_logs(parse_log_list(path.read_bytes(), "google"), None, ALLOWED, now)
    expected = {
        obj["log_id"]
        for _, obj in _raw_logs(path)
        if _state(obj) in ALLOWED and "log_type" not in obj and _current(obj, now)
    }
    assert {log.log_id for log in selected} == expected
    assert len(selected) == len(expected)  # one per log_id
    assert all(log.state in ALLOWED for log in selected)
    assert all(log.log_type == "" for log in selected)


def test_all_logs_list_exercises_every_exclusion() -> None:
    path = ALL_LOGS
    now = _list_time(path)
    logs = parse_log_list(path.read_bytes(), "google")
    chosen = {log.log_id for log in select_logs(logs, None, ALLOWED, now)}
    by_reason = {
        "retired/rejected": [x for x in logs if x.state in ("retired", "rejected")],
        "pending": [x for x in logs if x.state == "pending"],
        "no state": [x for x in logs if x.state == ""],
        "test/monitoring": [x for x in logs if x.log_type in ("test", "monitoring_only")],
    }
    for reason, excluded in by_reason.items():
        assert excluded, reason  # the fixture really has such logs
        assert not {x.log_id for x in excluded} & chosen, reason
    # pending joins only when asked for
    with_pending = select_logs(logs, None, (*ALLOWED, "pending"), now)
    assert {x.log_id for x in by_reason["pending"] if not x.log_type} <= {
        x.log_id for x in with_pending
    }
    # retired and rejected never, whatever the caller passes
    forced = select_logs(logs, None, ("retired", "rejected", *ALLOWED), now)
    assert not {x.log_id for x in by_reason["retired/rejected"]} & {x.log_id for x in forced}


def test_stale_shards_are_skipped() -> None:
    logs = parse_log_list(GOOGLE.read_bytes(), "google")
    now = _list_time(GOOGLE)
    current = select_logs(logs, None, ALLOWED, now)
    later = select_logs(logs, None, ALLOWED, now + 3 * 365 * DAY)
    assert len(later) < len(current)
    for log in current:
        if log not in later:
            assert log.temporal_end is not None
            assert log.temporal_end < now + 3 * 365 * DAY - 400 * DAY
    # A shard that ended 399 days ago is still followed; 401 days ago, not.
    shard = next(log for log in current if log.temporal_end is not None)
    assert shard.temporal_end is not None
    end = shard.temporal_end
    assert shard in select_logs([shard], None, ALLOWED, end + 399 * DAY)
    assert shard not in select_logs([shard], None, ALLOWED, end + 401 * DAY)


def test_loginfo_key_der_roundtrip() -> None:
    log: LogInfo = parse_log_list(GOOGLE.read_bytes(), "google")[0]
    assert base64.b64encode(log.key_der).decode() == log.key
