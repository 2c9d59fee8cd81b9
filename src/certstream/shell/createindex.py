"""``certstream create-index``: certstream-server-go's ``ct_index.json`` holding each log's
current tree size, so that a server started with it (ours or Go's, recovery on) begins every
log at its current end instead of at 0.

The logs are those the server would follow: the configured ones and, when log lists are
configured, the ones they select (fetched and checked as the ingest does).  Each log's head
is read once (RFC 6962 ``get-sth``, static-ct ``checkpoint``; signatures are not checked,
only the size is used, as in Go).  A log that does not answer is reported and left out of
the file (it would then start at 0), and the exit status is 1; the file is written either
way, atomically, like Go's but never half written.
"""

from __future__ import annotations

import json
import os
import sys

from gevent.pool import Pool

from certstream.config import Settings
from certstream.core.checkpoint import parse_checkpoint
from certstream.core.ctindex import format_index, index_key
from certstream.core.logspec import LogSpec
from certstream.core.sth import parse_sth
from certstream.errors import CertstreamError
from certstream.shell.atomicfile import atomic_write
from certstream.shell.httpclient import HTTPClient, HTTPError
from certstream.shell.logselect import fetch_log_list, select_specs, specs_from_settings

__all__ = ["create_index", "tree_size"]

#: Heads read at once (one request per log).
CONCURRENCY = 16


def tree_size(http: HTTPClient, spec: LogSpec) -> int:
    """The log's current tree size (raises ``HTTPError`` or ``CertstreamError``)."""
    if spec.kind == "static":
        return parse_checkpoint(http.get(spec.url + "checkpoint").body).size
    try:
        doc = json.loads(http.get(spec.url + "ct/v1/get-sth").body)
    except ValueError as exc:
        raise CertstreamError(f"get-sth: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CertstreamError("get-sth: not a JSON object")
    return parse_sth(doc).tree_size


def _specs(http: HTTPClient, settings: Settings) -> tuple[list[LogSpec], list[str]]:
    specs = {spec.key: spec for spec in specs_from_settings(settings)}
    problems: list[str] = []
    lists = {}
    for url in settings.ct_log.log_list_urls:
        try:
            lists[url] = fetch_log_list(http, url)
        except (HTTPError, CertstreamError, ValueError) as exc:
            problems.append(f"log list {url}: {exc}")
    if lists:
        for spec in select_specs(lists, settings):
            specs.setdefault(spec.key, spec)  # a configured log keeps its configuration
    return list(specs.values()), problems


def create_index(settings: Settings, out: str, *, force: bool) -> int:
    """Write the file; the exit status (0, or 1 when it exists without ``force`` or when a
    log or a list did not answer)."""
    path = os.path.abspath(out)
    if os.path.exists(path) and not force:
        print(f"Output file '{path}' already exists. Use --force to override it.")
        return 1
    ct = settings.ct_log
    http = HTTPClient(ct.user_agent, float(ct.request_timeout_secs), ct.max_body_bytes)
    try:
        specs, problems = _specs(http, settings)
        sizes: dict[str, int] = {}

        def read(spec: LogSpec) -> None:
            try:
                sizes[index_key(spec.url)] = tree_size(http, spec)
            except (HTTPError, CertstreamError) as exc:
                problems.append(f"log {spec.name} ({spec.url}): {exc}; it has no entry and "
                                "would start at 0")

        Pool(CONCURRENCY).map(read, specs)
    finally:
        http.close()
    for key, size in sorted(sizes.items()):
        print(f"{key}: {size}")
    try:
        atomic_write(path, format_index(sizes), prefix=".ct_index-")
    except OSError as exc:
        print(f"cannot write {path}: {exc}", file=sys.stderr)
        return 1
    print(f"Index file saved to {path} ({len(sizes)} logs)")
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0
