"""The live page in a real headless Chromium, served by the real server (ingest, workers)
following the live40 set from the replay CT log.

Chromium is Debian's package (``make test`` installs it when it can), driven by Playwright's
Python API with ``executable_path``: no browser is downloaded.  The tests skip, saying why,
when either is missing.  Screenshots go to ``tests/e2e/artifacts/`` (ignored by git).

When its worker restarts, the page's ``EventSource`` reconnects with the ``Last-Event-ID``
of the last certificate it showed, the server resumes from there, and the page says so:
nothing shown twice, nothing missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conformance import compare
from conformance.filterref import FilterQuery
from conformance.synth import unique_entries
from playwright import sync_api
from tests.support.clients import SSEClient
from tests.support.data import golden_payloads
from tests.support.live40 import Live40, live40_server

from certstream.core.leaves import decode_get_entries
from certstream.core.messages import STREAM_LITE, MessageBuilder
from certstream.core.model import LogSource
from certstream.shell.livepage import package_data

pytestmark = pytest.mark.slow

ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LIVE40 = [json.loads(p) for p in golden_payloads("lite")]
GLOBS = ("*.myfritz.net", "*workday*", "*.AWS.dev")
#: Per log, 20 entries after live40's: the same certificates with fresh serials, so they are
#: new to the dedup ring and carry the same names.
COPIES = 20


def _chromium() -> str | None:
    for candidate in (os.environ.get("CERTSTREAM_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    exe = _chromium()
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium, as root)")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=exe, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _rows(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("#certs li", "els => els.map(e => e.dataset.fp)"))


_SAME_ROWS = """want => {
  const got = [...document.querySelectorAll('#certs li')].map(e => e.dataset.fp).sort();
  return got.length === want.length && got.every((fp, i) => fp === want[i]);
}"""


def _shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=False)
    return path


def _watch_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _copies() -> dict[str, list[dict[str, str]]]:
    out = {}
    for log in compare.manifest("live40")["logs"]:
        body = json.loads((compare.INPUTS / "live40" / log["entries"]).read_text())
        out[log["path"]] = unique_entries(body["entries"], COPIES, seed=16)
    return out


def _copy_messages(live: Live40, copies: dict[str, list[dict[str, str]]]) -> list[dict[str, Any]]:
    """The lite messages of the copies, as the server builds them (the fingerprints are the
    copies' own; the names are live40's)."""
    builder = MessageBuilder("go")
    out = []
    for log in live.logs:
        source = LogSource(name=log["name"], url=live.url + log["path"])
        body = json.dumps({"entries": copies[log["path"]]}).encode()
        entries, errors = decode_get_entries(body, int(log["first_index"]) + int(log["count"]))
        assert not errors
        for entry in entries:
            payload = builder.build(entry, source, 0.0, STREAM_LITE).lite
            assert payload is not None
            out.append(json.loads(payload))
    return out


def _fingerprint(data: bytes) -> str:
    return str(json.loads(data)["data"]["leaf_cert"]["fingerprint"])


def _fingerprints(messages: list[dict[str, Any]], query: str | None = None) -> list[str]:
    keep = FilterQuery.parse(query).matches if query else (lambda _m: True)
    return sorted(m["data"]["leaf_cert"]["fingerprint"] for m in messages if keep(m))


def _live(page: Any) -> None:
    """Until the page's EventSource is open, then a moment for the worker to tell the
    ingest what it wants."""
    page.wait_for_function("() => document.getElementById('status').textContent === 'live'",
                           timeout=15_000)
    time.sleep(1.0)


def test_page_is_package_data_and_self_contained() -> None:
    html = package_data("live.html").decode()
    assert "EventSource" in html and "server-config" in html
    # Nothing loaded from elsewhere: no absolute URLs in src/href, no imports.
    for needle in ('src="http', "href=\"http", "@import", "//fonts.", "cdn", "/api/"):
        assert needle not in html
    assert package_data("favicon.svg").startswith(b"<svg")


def test_the_live_page_shows_every_certificate_and_filters_on_the_server(browser: Any) -> None:
    copies = _copies()
    with live40_server(more=copies) as live:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors = _watch_errors(page)
        page.goto(f"http://127.0.0.1:{live.server.port}/")
        _live(page)
        live.open()
        opened = time.monotonic()
        want = sorted(m["data"]["leaf_cert"]["fingerprint"] for m in LIVE40)
        page.wait_for_function(_SAME_ROWS, arg=want, timeout=30_000)
        assert time.monotonic() - opened < 30
        rows = _rows(page)
        assert sorted(rows) == want  # every certificate of live40, once
        newest = {m["data"]["leaf_cert"]["fingerprint"] for m in LIVE40[19::20]}
        assert rows[0] in newest  # newest on top: the last entry of one of the two logs
        assert page.inner_text("#status") == "live"
        assert page.inner_text("#total") == "40"
        page.wait_for_function("() => document.getElementById('rate').textContent !== '0.0'",
                               timeout=5_000)  # entries per second, over the last 5 s
        shot = _shot(page, "live-page.png")
        assert shot.stat().st_size > 10_000
        page.wait_for_function(
            "() => document.querySelectorAll('#logs li').length === 2", timeout=15_000)
        # /health/deep lists the logs and their health (polled every 10 s).
        page.wait_for_function(
            "() => document.getElementById('health').textContent.includes('2 healthy')",
            timeout=15_000)
        assert "of 2 logs" in page.inner_text("#health")

        # Typing a filter narrows the list: the server filters what comes next.
        query = "&".join("domain=" + g for g in GLOBS)
        expect = _fingerprints(_copy_messages(live, copies), query)
        assert 0 < len(expect) < 2 * COPIES
        page.fill("#filter", " ".join(GLOBS))
        page.wait_for_function("() => document.querySelectorAll('#certs li').length === 0",
                               timeout=5_000)
        _live(page)
        assert "domain=*.myfritz.net" in page.inner_text("#query")
        assert "domain=" in page.url  # shareable: the filter is in the address
        live.open(int(live.logs[0]["count"]) + COPIES)
        page.wait_for_function(_SAME_ROWS, arg=expect, timeout=30_000)
        page.wait_for_timeout(800)  # nothing else may follow
        assert sorted(_rows(page)) == expect
        assert page.inner_text("#total") == str(len(expect))
        _shot(page, "live-page-filtered.png")
        assert errors == [], errors

        # A bad filter is explained, not silently empty.
        page.fill("#filter", "domain_re=(unclosed")
        page.wait_for_function(
            "() => document.getElementById('query').className === 'error'", timeout=10_000)
        assert "RE2 refuses" in page.inner_text("#query")
        refused = [e for e in errors if "400" in e or "text/event-stream" in e]
        assert refused and errors == refused, errors  # only the refused filter complained


def test_a_filter_in_the_address_is_applied_at_load(browser: Any) -> None:
    query = "issuer=let%27s%20encrypt"
    with live40_server() as live:
        page = browser.new_page()
        errors = _watch_errors(page)
        page.goto(f"http://127.0.0.1:{live.server.port}/?{query}")
        assert page.input_value("#filter") == 'issuer="let\'s encrypt"'
        _live(page)
        live.open()
        expect = _fingerprints(LIVE40, query)
        assert 0 < len(expect) < len(LIVE40)
        page.wait_for_function(_SAME_ROWS, arg=expect, timeout=30_000)
        page.wait_for_timeout(800)
        assert sorted(_rows(page)) == expect
        assert errors == [], errors


def test_the_page_resumes_after_its_worker_restarts(browser: Any) -> None:
    with live40_server() as live:
        port = live.server.port
        page = browser.new_page()
        errors = _watch_errors(page)
        page.goto(f"http://127.0.0.1:{port}/")
        _live(page)
        watcher = SSEClient(port, "/sse", timeout=15)  # sees the ids the page sees
        live.open(10)
        first = [watcher.next_event() for _ in range(20)]
        assert all(e is not None for e in first)
        want_first = sorted(_fingerprint(e[1]) for e in first if e is not None)
        page.wait_for_function(_SAME_ROWS, arg=want_first, timeout=30_000)
        last_id = first[-1][0] if first[-1] is not None else None
        # The worker is replaced (as on a crash or max_requests): the stream ends, the
        # browser comes back with Last-Event-ID, to a worker that started after it.
        (worker,) = live.server.worker_pids()
        os.kill(worker, signal.SIGTERM)
        page.wait_for_function(
            "() => document.getElementById('resume').textContent.startsWith('resumed')",
            timeout=30_000)
        assert (page.text_content("#resume") or "").strip() == f"resumed after #{last_id}"
        assert page.inner_text("#status") == "live"
        assert worker not in live.server.worker_pids()
        live.open()
        want = sorted(m["data"]["leaf_cert"]["fingerprint"] for m in LIVE40)
        page.wait_for_function(_SAME_ROWS, arg=want, timeout=30_000)
        page.wait_for_timeout(800)  # nothing else may follow
        assert sorted(_rows(page)) == want  # every certificate once: none twice, none lost
        assert page.inner_text("#total") == "40"
        watcher.close()
        assert errors == [], errors


def test_screenshot_dir_is_ignored_by_git() -> None:
    gitignore = Path(__file__).resolve().parents[2] / ".gitignore"
    assert "tests/e2e/artifacts/" in gitignore.read_text()
