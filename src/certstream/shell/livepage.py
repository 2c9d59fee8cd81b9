"""The live page and its favicon: package data, read once when a worker starts.

``certstream/data/live.html`` is one self-contained file (vanilla JS and CSS, nothing loaded
from elsewhere).  It follows the lite stream over SSE with the server-side filter typed in
its filter box, and polls ``/health/deep`` for the logs and their health.  What it must know
of this server (which SSE path carries a certificate stream, whether ``/health/deep`` is
there) is written into its ``server-config`` JSON block here, once, from the route table, so
that the page never asks for an endpoint that is switched off.
"""

from __future__ import annotations

import json
from importlib import resources

from certstream.core.routes import RouteTable
from certstream.core.streams import STREAM_FULL, STREAM_LITE

__all__ = ["favicon", "live_page", "package_data"]

# The page's default configuration block, as the file ships it.
_CONFIG_OPEN = b'<script id="server-config" type="application/json">'
_CONFIG_CLOSE = b"</script>"


def package_data(name: str) -> bytes:
    """A file of ``certstream/data``, as installed."""
    return resources.files("certstream").joinpath("data", name).read_bytes()


def page_config(routes: RouteTable) -> dict[str, str | None]:
    """What the page needs to know of this server: the SSE target of a stream with
    certificates in it (lite, else full; ``None`` without SSE) and the health endpoint."""
    sse: str | None = None
    if routes.sse:
        if routes.stream_enabled(STREAM_LITE):
            sse = "/sse"
        elif routes.stream_enabled(STREAM_FULL):
            sse = "/sse?stream=full"
    return {"sse": sse, "health": "/health/deep" if routes.health else None}


def live_page(routes: RouteTable) -> bytes:
    """The page, with this server's configuration block."""
    html = package_data("live.html")
    start = html.find(_CONFIG_OPEN)
    end = html.find(_CONFIG_CLOSE, start)
    if start < 0 or end < 0:
        raise ValueError("live.html has no server-config block")
    # "</" cannot occur in the JSON below (paths only), so it cannot end the script early.
    config = json.dumps(page_config(routes), separators=(",", ":")).encode()
    return html[: start + len(_CONFIG_OPEN)] + config + html[end:]


def favicon() -> bytes:
    return package_data("favicon.svg")
