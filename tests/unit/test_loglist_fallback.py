"""Without network the ingest follows the Google log list packaged with certstream.

A server started on an air-gapped machine (or before DNS works) should still know which logs
it is meant to follow, so that ``/health/deep`` can report them unreachable instead of
reporting an empty, "healthy" deployment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from certstream.config import load_settings
from certstream.core import loglist
from certstream.shell import ingest as ingest_mod
from certstream.shell import logselect
from certstream.shell.feed import FeedPublisher
from certstream.shell.httpclient import HTTPConnectionError


def test_packaged_list_is_googles_and_verifies() -> None:
    body, sig = loglist.packaged_google_list()
    assert loglist.verify_google_list(body, sig)
    assert not loglist.verify_google_list(body.replace(b"usable", b"usablE", 1), sig)
    source, logs = logselect.packaged_log_list()
    assert source == "google" and len(logs) > 20


def _ingest(tmp_path: Path, urls: str) -> ingest_mod.Ingest:
    settings = load_settings(
        env={
            "CERTSTREAM_CT_LOG_LOG_LIST_URLS": urls,
            "CERTSTREAM_CT_LOG_STATE_FILE": str(tmp_path / "state.json"),
        },
        path=str(tmp_path / "none.yaml"),
    )
    return ingest_mod.Ingest(settings, FeedPublisher(str(tmp_path / "feed.sock")))


def _unreachable(http: object, url: str) -> object:
    raise HTTPConnectionError(f"connect {url}: [Errno -2] Name or service not known")


def test_unreachable_google_list_falls_back_to_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "none.yaml").write_text("{}\n")
    ing = _ingest(tmp_path, loglist.GOOGLE_LOG_LIST_URL)
    monkeypatch.setattr(ingest_mod, "fetch_log_list", _unreachable)
    monkeypatch.setattr(ing, "reconcile", lambda: None)  # no followers in a unit test
    ing.refresh_log_lists()
    expected = logselect.select_specs(
        {loglist.GOOGLE_LOG_LIST_URL: logselect.packaged_log_list()}, ing.settings
    )
    assert ing.discovered == expected and len(expected) > 10
    assert ing._packaged == {loglist.GOOGLE_LOG_LIST_URL}

    # Once the live list arrives it replaces the snapshot.
    live = ("google", logselect.packaged_log_list()[1][:3])
    monkeypatch.setattr(ingest_mod, "fetch_log_list", lambda http, url: live)
    ing.refresh_log_lists()
    assert not ing._packaged
    assert len(ing.discovered) <= 3


def test_other_unreachable_lists_have_no_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "none.yaml").write_text("{}\n")
    ing = _ingest(tmp_path, "https://valid.apple.com/ct/log_list/current_log_list.json")
    monkeypatch.setattr(ingest_mod, "fetch_log_list", _unreachable)
    monkeypatch.setattr(ing, "reconcile", lambda: None)
    ing.refresh_log_lists()
    assert ing.discovered == [] and not ing._packaged
