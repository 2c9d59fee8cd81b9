"""Which CT logs the ingest follows: those the config names, and those the fetched (or
packaged) log lists select, each as a follower's ``LogSpec``.

The lists are parsed, verified and filtered by ``certstream.core.loglist``; this module
fetches them over HTTP and turns their entries and the config's into specs.
``certstream.shell.ingest`` follows what it returns (and refreshes the lists);
``certstream create-index`` reads the same logs' heads.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from certstream.config import Settings
from certstream.core import loglist
from certstream.core.logspec import LogSpec, log_key
from certstream.errors import DecodeError
from certstream.shell.httpclient import HTTPClient

__all__ = ["fetch_log_list", "packaged_log_list", "select_specs", "specs_from_settings"]

# The ingest's logger, as before these had a module of their own.
log = logging.getLogger("certstream.ingest")


def _spki(b64: str | None, name: str) -> bytes | None:
    if not b64:
        return None
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        log.warning(
            "log %s: key is not base64; its tree heads and checkpoints cannot be verified", name
        )
        return None


def specs_from_settings(settings: Settings) -> list[LogSpec]:
    """The logs named in the config (``custom_logs`` and ``static_logs``)."""
    ct = settings.ct_log
    specs: list[LogSpec] = []
    if ct.rfc6962_enabled:
        for c in settings.custom_logs:
            url = log_key(c.url)
            specs.append(
                LogSpec(
                    url, c.name, url, "rfc6962", c.operator, c.start_index,
                    spki=_spki(c.key, c.name),
                )
            )
    if ct.static_ct_enabled:
        for s in settings.static_logs:
            url = log_key(s.url)
            specs.append(
                LogSpec(
                    url, s.name, url, "static", s.operator, s.start_index,
                    spki=_spki(s.key, s.name), origin=s.log_origin,
                )
            )
    return specs


def _is_apple(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "apple.com" or host.endswith(".apple.com")


def fetch_log_list(http: HTTPClient, url: str) -> tuple[str, list[loglist.LogInfo]]:
    """Fetch and parse one log list: ``("apple" | "google", logs)``.

    Apple's list has no signature file (TLS only); every other list is taken to be in
    Google's format and must come with a valid ``.sig`` beside it.  Raises on any failure.
    """
    body = http.get(url).body
    if _is_apple(url):
        return "apple", list(loglist.parse_log_list(body, "apple"))
    sig_url = (url[: -len(".json")] if url.endswith(".json") else url) + ".sig"
    sig = http.get(sig_url).body
    if not loglist.verify_google_list(body, sig):
        raise DecodeError(f"log list {url}: signature does not verify")
    return "google", list(loglist.parse_log_list(body, "google"))


def packaged_log_list() -> tuple[str, list[loglist.LogInfo]]:
    """Google's list as packaged with certstream (signature checked like a fetched one)."""
    body, sig = loglist.packaged_google_list()
    if not loglist.verify_google_list(body, sig):
        raise DecodeError("the packaged Google log list does not verify")
    return "google", list(loglist.parse_log_list(body, "google"))


def select_specs(
    lists: Mapping[str, tuple[str, list[loglist.LogInfo]]], settings: Settings,
    now: float | None = None,
) -> list[LogSpec]:
    """The logs the fetched lists (by URL) select at ``now`` (default: the time), as
    follower specs."""
    ct = settings.ct_log
    google = [i for src, infos in lists.values() if src == "google" for i in infos]
    apple = [i for src, infos in lists.values() if src == "apple" for i in infos]
    have_google = any(src == "google" for src, _ in lists.values())
    have_apple = any(src == "apple" for src, _ in lists.values())
    infos = loglist.select_logs(
        google if have_google else None, apple if have_apple else None, ct.states,
        time.time() if now is None else now,
    )
    specs: list[LogSpec] = []
    for info in infos:
        kind = "static" if info.kind == "static" else "rfc6962"
        if (kind == "static" and not ct.static_ct_enabled) or (
            kind == "rfc6962" and not ct.rfc6962_enabled
        ):
            continue
        stop_at = info.final_tree_size if info.state == "readonly" else None
        url = log_key(info.url)
        specs.append(
            LogSpec(
                url, info.description or url, url, kind, info.operator, None, stop_at,
                spki=_spki(info.key, info.description), origin=info.origin,
            )
        )
    return specs
