"""Helpers shared by every test tier; each kind exists once, here.

* :mod:`.wait`: :func:`wait_until`, the one way to wait for a condition.
* :mod:`.net`: :func:`free_port`, :func:`accepts`, :func:`sockets_on_port`,
  :func:`short_tmpdir` (for Unix socket paths).
* :mod:`.procs`: processes as /proc shows them (children, the ingest, alive, environment).
* :mod:`.feed`: :class:`FakeFeed`, the ingest side of the feed socket, driven by the test
  and speaking the real feed codec.
* :mod:`.wsframes`: the WebSocket frame reader (:func:`read_frames`) and writer
  (:func:`encode_frame`).
* :mod:`.clients`: :func:`http_get`, :class:`RawWS` (a blocking WebSocket client that returns
  frames as raw bytes, so tests can check byte-exact payloads, opcodes and close codes) and
  :class:`SSEClient`.
* :mod:`.server`: :func:`run_server`, the one server launcher: the real ``certstream``
  command (or gunicorn) on a free port with a temporary config (no log lists, so nothing
  goes to the network), fed by a :class:`FakeFeed` or by its own ingest.
* :mod:`.pipeline`: the ingest's ``Pipeline`` in-process around a :class:`FakeFeed`.
* :mod:`.fixtures`: the ``replay`` CT log and ``tmp_short`` fixtures (a plugin of
  ``tests/conftest.py``); :mod:`.twins`: both implementations of a ``_fast`` module.
* :mod:`.keys`: a key's SPKI, a self-signed certificate for a local TLS server.
* :mod:`.rfc6962`, :mod:`.figures`: structures written from the RFC, benchmark figure lines.
* :mod:`.data`: where recorded data lies; :func:`golden_payloads`, real payloads (the Go
  server's frames) from the conformance data.
"""

from tests.support.clients import RawWS, SSEClient, http_get
from tests.support.data import GOLDEN, ROOT, golden_payloads
from tests.support.feed import DOMAINS, FULL, LITE, FakeFeed
from tests.support.net import accepts, free_port, short_tmpdir, sockets_on_port
from tests.support.server import Server, run_server
from tests.support.wait import wait_until
from tests.support.wsframes import close_info, encode_frame, read_frames

__all__ = [
    "DOMAINS",
    "FULL",
    "GOLDEN",
    "LITE",
    "ROOT",
    "FakeFeed",
    "RawWS",
    "SSEClient",
    "Server",
    "accepts",
    "close_info",
    "encode_frame",
    "free_port",
    "golden_payloads",
    "http_get",
    "read_frames",
    "run_server",
    "short_tmpdir",
    "sockets_on_port",
    "wait_until",
]
