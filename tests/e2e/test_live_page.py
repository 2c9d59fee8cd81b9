"""The live page in a real headless Chromium, against a real HTTP/SSE server replaying live40.

Chromium is Debian's package (``make test`` installs it when it can), driven by Playwright's
Python API with ``executable_path``: no browser is downloaded.  The test
skips, saying why, when either is missing.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api
from tests.support.live_page import LivePageServer, page_bytes

pytestmark = pytest.mark.slow

ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


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


def test_page_is_package_data_and_self_contained() -> None:
    html = page_bytes("live.html").decode()
    assert "EventSource" in html and "/sse" in html
    # Nothing loaded from elsewhere: no absolute URLs in src/href, no imports.
    for needle in ('src="http', "href=\"http", "@import", "//fonts.", "cdn"):
        assert needle not in html
    assert page_bytes("favicon.svg").startswith(b"<svg")


def test_live_page_shows_every_certificate_resumes_and_filters(browser: Any) -> None:
    with LivePageServer(interval=0.08, drop_after=12) as server:
        want = [m["data"]["leaf_cert"]["fingerprint"] for m in server.messages]
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        page.goto(server.url)
        page.wait_for_function("n => document.querySelectorAll('#certs li').length >= n",
                               arg=len(want), timeout=30_000)
        rows = _rows(page)
        assert sorted(rows) == sorted(want)  # every certificate, once: resumed, not replayed
        assert rows[0] == want[-1]  # newest on top
        # The first connection was cut after 12 events: the browser came back with
        # Last-Event-ID 11 and the page says so.
        assert ("/sse", "11") in server.requests
        assert (page.text_content("#resume") or "").strip() == "resumed after #11"
        assert page.inner_text("#status") == "live"
        page.wait_for_function(
            "() => document.querySelectorAll('#logs li').length === 2", timeout=15_000)
        assert "healthy" in page.inner_text("#health")
        page.wait_for_function("() => document.getElementById('rate').textContent !== '0'",
                               timeout=5_000)
        shot = _shot(page, "live-page.png")
        assert shot.stat().st_size > 10_000

        # Typing a filter narrows the list: the server filters, the page shows what comes.
        globs = ["*.myfritz.net", "*workday*", "*.AWS.dev"]
        expect = sorted(
            m["data"]["leaf_cert"]["fingerprint"] for m in server.messages
            if any(fnmatch.fnmatchcase(d.lower(), g.lower())
                   for g in globs for d in m["data"]["leaf_cert"]["all_domains"])
        )
        assert 0 < len(expect) < len(want)
        page.fill("#filter", " ".join(globs))
        page.wait_for_function(_SAME_ROWS, arg=expect, timeout=30_000)
        page.wait_for_timeout(800)  # nothing else may follow
        assert sorted(_rows(page)) == expect
        assert "domain=*.myfritz.net" in page.inner_text("#query")
        assert "domain=" in page.url  # shareable: the filter is in the address
        assert any("domain=*workday*" in path for path, _ in server.requests)
        _shot(page, "live-page-filtered.png")

        # A bad filter is explained, not silently empty.
        page.fill("#filter", "domain_re=(unclosed")
        page.wait_for_function(
            "() => document.getElementById('query').className === 'error'", timeout=10_000)
        assert "RE2 refuses" in page.inner_text("#query")
        refused = [e for e in errors if "400" in e or "text/event-stream" in e]
        assert errors == refused, errors  # only the refused filter's own request complained


def test_a_filter_in_the_address_is_applied_at_load(browser: Any) -> None:
    with LivePageServer(interval=0.02) as server:
        page = browser.new_page()
        page.goto(server.url + "?issuer=let%27s%20encrypt")
        expect = sorted(
            m["data"]["leaf_cert"]["fingerprint"] for m in server.messages
            if "let's encrypt" in m["data"]["leaf_cert"]["issuer"]["aggregated"].lower()
        )
        page.wait_for_function(_SAME_ROWS, arg=expect, timeout=30_000)
        page.wait_for_timeout(400)
        assert sorted(_rows(page)) == expect
        assert page.input_value("#filter") == 'issuer="let\'s encrypt"'


def test_screenshot_dir_is_ignored_by_git() -> None:
    gitignore = Path(__file__).resolve().parents[2] / ".gitignore"
    assert "tests/e2e/artifacts/" in gitignore.read_text()
