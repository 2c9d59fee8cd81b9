"""A replay CT log: serves recorded entries as RFC 6962 and static-ct-api logs, with faults.

The ingest is tested against this server instead of real logs.  It is a real HTTP/1.1 server
on 127.0.0.1 (keep-alive, Content-Length, gzip when asked) so that the ingest's own HTTP
client, timeouts and retries are exercised, not a mock of them.

* RFC 6962 logs follow the Trillian CTFE rules for get-entries (400 below the first index,
  for start > end and for start >= tree_size; end truncated to the tree and to the batch cap)
  and answer get-sth with a head signed by a test key over the Merkle root of the entries
  served (for a sparse log that root is made up, but it is consistent between calls).
* Static-ct-api logs serve a signed checkpoint, data tiles, hash tiles at every level and
  issuers, all built from TileLeaf bytes, so any size can be served; the real Navigli tiles
  are loaded the same way, and the rebuilt tiles equal the recorded ones byte for byte.
* ``grow`` makes more entries visible (the tree grows); ``inject`` queues faults that the
  next matching requests of one log get; ``requests`` lists what each log served.
* ``hold``/``release`` pause a log's data requests, to force an order between logs.

Used in-process (``ReplayServer(...).start()`` runs it in a thread) or as a subprocess::

    python -m conformance.replay --port P --rfc6962 /a/=entries.json:1000 \\
        --static /t/=tiles_dir --control

which prints one JSON line (url, and per log its kind, key, log_id, origin) when ready and
is then driven over ``/_control/...`` (see ``_control``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import hashlib
import json
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, overload
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from certstream.core.checkpoint import sign_checkpoint
from certstream.core.sth import sign_sth
from certstream.core.tiles import tile_path
from certstream.demo.synth import (
    MerkleFrontier,
    merkle_root,
    split_tile_leaves,
    tile_leaves_from_entries,
)
from certstream.demo.synth import leaf_hash as te_leaf_hash
from conformance.synth import TestSigner, make_test_signer, signer_from_key

__all__ = ["FAULT_KINDS", "ReplayServer", "main", "tile_path"]

#: Faults of the transport or status: any request of the log can get them.
TRANSPORT_FAULTS = frozenset({"429", "500", "timeout", "reset", "truncate"})
#: Faults of a get-entries body: only a get-entries request that would succeed gets them.
ENTRIES_FAULTS = frozenset({"bad_json", "bad_base64", "short", "empty", "garbage_entry"})
#: Faults of a static-ct-api log's tiles: a partial data tile gone (404); a data tile with
#: a byte changed inside its first leaf's certificate (its hash no longer matches) or with
#: the length of the certificate of the leaf in its middle overrunning the tile (the
#: lengths no longer add up); a hash tile with a byte changed.
TILE_FAULTS = frozenset({"partial_404", "tile_corrupt", "tile_garble", "hash_corrupt"})
FAULT_KINDS = TRANSPORT_FAULTS | ENTRIES_FAULTS | TILE_FAULTS
_HASH_TILE_FAULTS = frozenset({"hash_corrupt"})
_DATA_TILE_FAULTS = frozenset({"tile_corrupt", "tile_garble"})

_TILE_RE = re.compile(r"^tile/(data|[0-5])/((?:x\d{3}/)*\d{3})(?:\.p/([1-9]\d{0,2}))?$")
_ISSUER_RE = re.compile(r"^issuer/([0-9a-f]{64})$")


def _parse_tile_index(text: str) -> int:
    return int(text.replace("x", "").replace("/", ""))


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Fault:
    kind: str
    remaining: int
    match: str | None


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


class _Log:
    """What both log kinds share: visibility, the fault queue, the request record."""

    kind = ""

    def __init__(self, path: str, total: int, visible: int | None, signer: TestSigner) -> None:
        self.path = path
        self.total = total
        self.visible = total if visible is None else visible
        if not 0 <= self.visible <= total:
            raise ValueError(f"visible={visible} outside 0..{total}")
        self.signer = signer
        self.lock = threading.Lock()
        self.faults: list[_Fault] = []
        self.served: list[tuple[str, str]] = []
        self.open = threading.Event()
        self.open.set()
        self._frontier = MerkleFrontier()

    def root_at(self, hashes: Sequence[bytes], size: int) -> bytes:
        """Merkle root of the first ``size`` hashes; sizes only grow, so extend a frontier."""
        if size < self._frontier.size:
            return merkle_root(hashes[:size])
        while self._frontier.size < size:
            self._frontier.append(hashes[self._frontier.size])
        return self._frontier.root()

    def take_fault(self, kinds: frozenset[str], target: str) -> str | None:
        """Consume one pending fault of ``kinds`` whose match filter fits ``target``."""
        with self.lock:
            for fault in self.faults:
                if fault.kind in kinds and (fault.match is None or fault.match in target):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                    return fault.kind
        return None

    def grow(self, n: int) -> None:
        with self.lock:
            if n < 0 or self.visible + n > self.total:
                raise ValueError(f"cannot grow {self.path} by {n}: {self.visible}/{self.total}")
            self.visible += n

    def respond(self, rel: str, query: str, target: str) -> _Response:
        raise NotImplementedError

    def is_data_request(self, rel: str) -> bool:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.signer.key_b64, "log_id": self.signer.log_id_b64}


def _error(status: int, text: str) -> _Response:
    return _Response(status, text.encode() + b"\n", "text/plain; charset=utf-8")


def _json(obj: object) -> _Response:
    return _Response(200, json.dumps(obj, separators=(",", ":")).encode())


class _LeafHashes(Sequence[bytes]):
    """Leaf hashes of get-entries entries, computed in order on first use and kept."""

    def __init__(self, entries: Sequence[Mapping[str, str]]) -> None:
        self.entries = entries
        self._done: list[bytes] = []

    def __len__(self) -> int:
        return len(self.entries)

    @overload
    def __getitem__(self, k: int) -> bytes: ...
    @overload
    def __getitem__(self, k: slice) -> list[bytes]: ...

    def __getitem__(self, k: int | slice) -> bytes | list[bytes]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        while len(self._done) <= k:
            leaf = base64.b64decode(self.entries[len(self._done)]["leaf_input"])
            self._done.append(hashlib.sha256(b"\x00" + leaf).digest())
        return self._done[k]


class _Rfc6962Log(_Log):
    kind = "rfc6962"

    def __init__(
        self,
        path: str,
        entries: Sequence[Mapping[str, str]],
        *,
        first_index: int,
        visible: int | None,
        max_batch: int,
        signer: TestSigner,
    ) -> None:
        super().__init__(path, len(entries), visible, signer)
        if first_index < 0 or max_batch < 1:
            raise ValueError("first_index must be >= 0 and max_batch >= 1")
        # A list is copied; any other sequence (a UniqueEntryLog of a long run) is read as
        # it is served, and its leaf hashes are computed as the tree grows.
        self.entries: Sequence[Mapping[str, str]] = (
            [{"leaf_input": e["leaf_input"], "extra_data": e["extra_data"]} for e in entries]
            if isinstance(entries, list) else entries
        )
        self.first_index = first_index
        self.max_batch = max_batch
        self.garbage: set[int] = set()
        self._hashes = _LeafHashes(self.entries)
        self._sth: dict[int, dict[str, object]] = {}
        #: Served instead of the real head while set (see ``ReplayServer.set_sth``).
        self.sth_override: dict[str, object] | None = None

    def is_data_request(self, rel: str) -> bool:
        return rel == "ct/v1/get-entries"

    def sth(self) -> dict[str, object]:
        with self.lock:
            if self.sth_override is not None:
                return self.sth_override
            size = self.visible
            cached = self._sth.get(size)
            if cached is None:
                root = self.root_at(self._hashes, size)
                cached = sign_sth(self.first_index + size, _now_ms(), root, self.signer.key)
                self._sth[size] = cached
            return cached

    def respond(self, rel: str, query: str, target: str) -> _Response:
        if rel == "ct/v1/get-sth":
            return _json(self.sth())
        if rel == "ct/v1/get-roots":
            return _json({"certificates": []})
        if rel == "ct/v1/get-entries":
            return self._get_entries(query, target)
        return _error(404, "not found")

    def _get_entries(self, query: str, target: str) -> _Response:
        params = parse_qs(query, keep_blank_values=True)
        try:
            (start_s,), (end_s,) = params["start"], params["end"]
            start, end = int(start_s), int(end_s)
        except (KeyError, ValueError):
            return _error(400, "start and end must each be given once, as integers")
        with self.lock:
            tree_size = self.first_index + self.visible
        if start < 0 or end < 0 or start > end:
            return _error(400, f"invalid range start={start} end={end}")
        if start < self.first_index:
            return _error(400, f"start={start} is before the first index {self.first_index}")
        if start >= tree_size:
            return _error(400, f"need tree size: {start} >= {tree_size}")
        end = min(end, tree_size - 1, start + self.max_batch - 1)
        fault = self.take_fault(ENTRIES_FAULTS, target)
        if fault == "bad_json":
            return _Response(200, b'{"entries":[{"leaf_input":"AAAA","extra_')
        if fault == "empty":
            return _json({"entries": []})
        if fault == "short" and end > start:
            end = start + (end - start + 1) // 2 - 1
        if fault == "garbage_entry":
            with self.lock:
                self.garbage.add(start)
        with self.lock:
            garbage = set(self.garbage)
        out = []
        for index in range(start, end + 1):
            entry = dict(self.entries[index - self.first_index])
            if index in garbage:
                # Valid base64 of bytes no leaf decoder accepts (version 0xff): permanent for
                # this index, as a log that stored a bad leaf serves it forever.
                junk = b"\xff\xfe" + hashlib.sha256(b"garbage %d" % index).digest()
                entry["leaf_input"] = base64.b64encode(junk).decode("ascii")
            out.append(entry)
        if fault == "bad_base64" and out:
            out[0]["leaf_input"] = "%%not*base64%%"
        return _json({"entries": out})


class _StaticLog(_Log):
    kind = "static"

    def __init__(
        self,
        path: str,
        leaves: Sequence[bytes],
        *,
        origin: str,
        issuers: Mapping[bytes, bytes],
        visible: int | None,
        signer: TestSigner,
    ) -> None:
        super().__init__(path, len(leaves), visible, signer)
        self.origin = origin
        self.leaves = list(leaves)
        hashes = []
        self.offsets = [0]  # where each leaf starts in the concatenation, and the end
        for leaf in self.leaves:
            self.offsets.append(self.offsets[-1] + len(leaf))
            parts = split_tile_leaves(leaf, unknown_as=0)
            if len(parts) != 1:
                raise ValueError("each leaf must be exactly one TileLeaf")
            hashes.append(te_leaf_hash(parts[0][1]))
        self.hashes = hashes
        self.issuers = {fp.hex(): der for fp, der in issuers.items()}
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._checkpoints: dict[int, bytes] = {}

    def info(self) -> dict[str, Any]:
        return {**super().info(), "origin": self.origin}

    def is_data_request(self, rel: str) -> bool:
        return rel.startswith("tile/")

    def node(self, level: int, index: int) -> bytes:
        """Root of the full subtree of 256**level leaves starting at leaf index*256**level."""
        if level == 0:
            return self.hashes[index]
        key = (level, index)
        cached = self._nodes.get(key)
        if cached is None:
            cached = merkle_root([self.node(level - 1, index * 256 + j) for j in range(256)])
            self._nodes[key] = cached
        return cached

    def checkpoint(self) -> bytes:
        with self.lock:
            size = self.visible
            body = self._checkpoints.get(size)
            if body is None:
                root = self.root_at(self.hashes, size)
                body = sign_checkpoint(self.origin, size, root, self.signer.key, _now_ms())
                self._checkpoints[size] = body
            return body

    def _damage(self, body: bytes, first: int, width: int, fault: str | None) -> bytes:
        """A data tile with a ``tile_corrupt`` or ``tile_garble`` fault applied."""
        if fault == "tile_corrupt":  # byte 60 lies in the first leaf's certificate or TBS
            return body[:60] + bytes([body[60] ^ 0xFF]) + body[61:]
        if fault == "tile_garble":
            mid = first + width // 2
            at = self.offsets[mid] - self.offsets[first]
            precert = body[at + 9] == 1
            at += 10 + (32 if precert else 0)  # the certificate's (or TBS's) uint24 length
            return body[:at] + b"\xff\xff\xff" + body[at + 3 :]
        return body

    def respond(self, rel: str, query: str, target: str) -> _Response:
        if rel == "checkpoint":
            return _Response(
                200, self.checkpoint(), "text/plain; charset=utf-8", [("Cache-Control", "no-store")]
            )
        m = _ISSUER_RE.match(rel)
        if m:
            der = self.issuers.get(m.group(1))
            if der is None:
                return _error(404, "no such issuer")
            return _Response(
                200,
                der,
                "application/pkix-cert",
                [("Cache-Control", "public, max-age=604800, immutable")],
            )
        m = _TILE_RE.match(rel)
        if not m:
            return _error(404, "not found")
        level_s, index_s, width_s = m.groups()
        index = _parse_tile_index(index_s)
        width = int(width_s) if width_s else 256
        if width > 255 and width_s:
            return _error(404, "bad partial width")
        level = 0 if level_s == "data" else int(level_s)
        with self.lock:
            size = self.visible
        if (index * 256 + width) * 256**level > size:
            return _error(404, "tile beyond the tree")
        if level_s != "data":
            kinds = _HASH_TILE_FAULTS
        else:
            kinds = _DATA_TILE_FAULTS | ({"partial_404"} if width_s else set())
        fault = self.take_fault(kinds, target)
        if fault == "partial_404":
            return _error(404, "partial tile gone (injected)")
        if level_s == "data":
            body = b"".join(self.leaves[index * 256 : index * 256 + width])
            body = self._damage(body, index * 256, width, fault)
        else:
            body = b"".join(self.node(level, index * 256 + j) for j in range(width))
            if fault == "hash_corrupt":
                body = bytes([body[0] ^ 0xFF]) + body[1:]
        return _Response(
            200,
            body,
            "application/octet-stream",
            [("Cache-Control", "public, max-age=604800, immutable")],
        )


def _wants_gzip(header: str | None) -> bool:
    for token in (header or "").split(","):
        name, _, params = token.strip().partition(";")
        if name.strip().lower() == "gzip":
            q = params.strip().replace(" ", "")
            return q not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120  # idle keep-alive connections must not pin threads forever

    def do_GET(self) -> None:
        self.server.replay.handle(self, "GET")

    def do_POST(self) -> None:
        self.server.replay.handle(self, "POST")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests assert on requests(), not on stderr noise


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], replay: ReplayServer) -> None:
        self.replay = replay
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conns_lock:
            self.conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (a server under test being stopped) is not
        # the log's error; anything else still gets the standard traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ReplayServer:
    """A fake CT log server; see the module docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        hold_seconds: float = 5.0,
        control: bool = False,
    ) -> None:
        self._httpd = _Server((host, port), self)
        bound = self._httpd.server_address
        self.host: str = host
        self.port: int = int(bound[1])
        self.url = f"http://{self.host}:{self.port}"
        #: How long a "timeout" fault holds the response before closing: longer than the
        #: client's timeout under test.
        self.hold_seconds = hold_seconds
        self.control = control
        self._logs: dict[str, _Log] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- setup ------------------------------------------------------------------------

    def _add(self, log: _Log) -> None:
        if not (log.path.startswith("/") and log.path.endswith("/")):
            raise ValueError(f"log path must start and end with '/': {log.path!r}")
        if log.path in self._logs:
            raise ValueError(f"log path already used: {log.path!r}")
        self._logs[log.path] = log

    def add_rfc6962_log(  # noqa: PLR0917 - the positional order is the documented contract
        self,
        path: str,
        entries: Sequence[Mapping[str, str]],
        first_index: int = 0,
        visible: int | None = None,
        max_batch: int = 32,
        signer: TestSigner | None = None,
    ) -> None:
        """Serve ``entries`` (get-entries dicts) at ``path``; entry k has first_index+k."""
        self._add(
            _Rfc6962Log(
                path,
                entries,
                first_index=first_index,
                visible=visible,
                max_batch=max_batch,
                signer=signer or make_test_signer(),
            )
        )

    def add_static_log(  # noqa: PLR0917 - the positional order is the documented contract
        self,
        path: str,
        leaves: Sequence[bytes] | Path,
        origin: str | None = None,
        signer: TestSigner | ec.EllipticCurvePrivateKey | None = None,
        issuers: Mapping[bytes, bytes] | None = None,
        visible: int | None = None,
    ) -> None:
        """Serve a static-ct-api log from TileLeaf bytes or from a recorded tiles directory.

        ``origin`` defaults to the log URL without scheme and trailing slash; ``signer``
        to ``make_test_signer()``.  A tiles directory contributes its ``issuer/`` files.
        """
        all_issuers: dict[bytes, bytes] = {}
        if isinstance(leaves, Path):
            leaves, dir_issuers = load_tiles_dir(leaves)
            all_issuers.update(dir_issuers)
        all_issuers.update(issuers or {})
        if signer is None:
            signer = make_test_signer()
        elif isinstance(signer, ec.EllipticCurvePrivateKey):
            signer = signer_from_key(signer)
        if origin is None:
            origin = f"{self.host}:{self.port}{path.rstrip('/')}"
        self._add(
            _StaticLog(
                path, leaves, origin=origin, issuers=all_issuers, visible=visible, signer=signer
            )
        )

    # --- control ----------------------------------------------------------------------

    def _log(self, path: str) -> _Log:
        try:
            return self._logs[path]
        except KeyError:
            raise ValueError(f"no log at {path!r}") from None

    def grow(self, path: str, n: int) -> None:
        """Make ``n`` more entries of the log visible."""
        self._log(path).grow(n)

    def inject(self, path: str, kind: str, count: int = 1, match: str | None = None) -> None:
        """The next ``count`` matching requests of the log get fault ``kind``.

        ``match``, if given, restricts the fault to requests whose path+query contains it
        (e.g. ``"get-sth"`` or ``"tile/data"``).
        """
        log = self._log(path)
        allowed = TRANSPORT_FAULTS | (ENTRIES_FAULTS if log.kind == "rfc6962" else TILE_FAULTS)
        if kind not in allowed:
            raise ValueError(f"fault {kind!r} does not apply to a {log.kind} log")
        if count < 1:
            raise ValueError("count must be >= 1")
        with log.lock:
            log.faults.append(_Fault(kind, count, match))

    def requests(self, path: str) -> list[tuple[str, str]]:
        """(method, path+query) of every request the log received, in order."""
        log = self._log(path)
        with log.lock:
            return list(log.served)

    def garbage(self, path: str) -> list[int]:
        """Indices that the log now serves as garbage (``garbage_entry`` faults)."""
        log = self._log(path)
        if not isinstance(log, _Rfc6962Log):
            return []
        with log.lock:
            return sorted(log.garbage)

    def tree_size(self, path: str) -> int:
        log = self._log(path)
        first = log.first_index if isinstance(log, _Rfc6962Log) else 0
        return first + log.visible

    def set_sth(self, path: str, sth: Mapping[str, object] | None) -> None:
        """Answer get-sth of an RFC 6962 log with ``sth`` (e.g. signed by another key, or
        another root for a size already served) until set back to None."""
        log = self._log(path)
        if not isinstance(log, _Rfc6962Log):
            raise ValueError(f"{path!r} is not an RFC 6962 log")
        with log.lock:
            log.sth_override = None if sth is None else dict(sth)

    def hold(self, path: str) -> None:
        """Pause the log's data requests (get-entries, tiles) until ``release``."""
        self._log(path).open.clear()

    def release(self, path: str) -> None:
        self._log(path).open.set()

    def log_info(self) -> dict[str, dict[str, Any]]:
        """Per log path: kind, base64 key and log_id, and (static) origin."""
        return {path: log.info() for path, log in self._logs.items()}

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="replay-ct-log",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for log in self._logs.values():
            log.open.set()
        self._httpd.shutdown()
        with self._httpd.conns_lock:
            conns = list(self._httpd.conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- request handling -------------------------------------------------------------

    def handle(self, req: _Handler, method: str) -> None:
        # Drain a request body (we never need one) so the next keep-alive request parses.
        length = req.headers.get("Content-Length", "0")
        if length.isdigit() and int(length) > 0:
            req.rfile.read(int(length))
        split = urlsplit(req.path)
        if split.path.startswith("/_control/"):
            resp = self._control(method, split.path, split.query)
            self._send(req, resp, None)
            return
        log = self._route(split.path)
        if log is None:
            self._send(req, _error(404, "no log here"), None)
            return
        with log.lock:
            log.served.append((method, req.path))
        rel = split.path[len(log.path) :]
        if method != "GET":
            self._send(req, _error(405, "method not allowed"), None)
            return
        if log.is_data_request(rel):
            while not log.open.wait(0.1):
                if self._stopping.is_set():
                    break
        fault = log.take_fault(TRANSPORT_FAULTS, req.path)
        if fault == "429":
            self._send(
                req, _Response(429, b"rate limited\n", "text/plain", [("Retry-After", "1")]), None
            )
            return
        if fault == "500":
            self._send(req, _error(500, "internal error (injected)"), None)
            return
        if fault == "timeout":
            self._stopping.wait(self.hold_seconds)
            self._abort(req, rst=False)
            return
        self._send(req, log.respond(rel, split.query, req.path), fault)

    def _route(self, path: str) -> _Log | None:
        best: _Log | None = None
        for prefix, log in self._logs.items():
            if path.startswith(prefix) and (best is None or len(prefix) > len(best.path)):
                best = log
        return best

    def _send(self, req: _Handler, resp: _Response, fault: str | None) -> None:
        body = resp.body
        headers = list(resp.headers)
        if resp.status == 200 and body and _wants_gzip(req.headers.get("Accept-Encoding")):
            body = gzip.compress(body, mtime=0)
            headers.append(("Content-Encoding", "gzip"))
        length = len(body) + (100 if fault == "truncate" else 0)
        req.send_response(resp.status)
        req.send_header("Content-Type", resp.content_type)
        req.send_header("Content-Length", str(length))
        for name, value in headers:
            req.send_header(name, value)
        if fault in ("truncate", "reset"):
            req.send_header("Connection", "close")
        req.end_headers()
        if fault == "reset":
            req.wfile.write(body[: len(body) // 2])
            req.wfile.flush()
            self._abort(req, rst=True)
            return
        req.wfile.write(body)
        req.wfile.flush()
        if fault == "truncate":
            req.close_connection = True

    @staticmethod
    def _abort(req: _Handler, *, rst: bool) -> None:
        """Close the client's socket now: with RST (SO_LINGER 0) or an ordinary FIN."""
        req.close_connection = True
        conn = req.connection
        try:
            if rst:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                conn.shutdown(socket.SHUT_RDWR)
            req.rfile.close()  # drop makefile's reference so close() really closes the fd
            conn.close()
        except OSError:
            pass

    def _control(self, method: str, path: str, query: str) -> _Response:
        if not self.control:
            return _error(404, "control endpoints are off (--control)")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        actions: dict[tuple[str, str], Callable[[], object]] = {
            ("POST", "/_control/grow"): lambda: self.grow(params["log"], int(params["n"])),
            ("POST", "/_control/inject"): lambda: self.inject(
                params["log"], params["kind"], int(params.get("count", "1")), params.get("match")
            ),
            ("POST", "/_control/hold"): lambda: self.hold(params["log"]),
            ("POST", "/_control/release"): lambda: self.release(params["log"]),
            ("GET", "/_control/requests"): lambda: [list(r) for r in self.requests(params["log"])],
            ("GET", "/_control/garbage"): lambda: self.garbage(params["log"]),
            ("GET", "/_control/logs"): self.log_info,
        }
        action = actions.get((method, path))
        if action is None:
            return _error(404, "unknown control action")
        try:
            result = action()
        except (KeyError, ValueError) as exc:
            return _error(400, f"bad control request: {exc}")
        return _json({"ok": True} if result is None else result)


def load_tiles_dir(root: Path) -> tuple[list[bytes], dict[bytes, bytes]]:
    """Read a monitoring-prefix directory: TileLeafs of its data tiles, and its issuers.

    Full tiles are read from 0 up to the first missing one; then the widest partial tile
    after them, if any.
    """
    leaves: list[bytes] = []
    n = 0
    data = root / "tile" / "data"
    while (data / tile_path(n)).is_file():
        leaves.extend(leaf for leaf, _ in split_tile_leaves((data / tile_path(n)).read_bytes()))
        n += 1
    partial_dir = data / (tile_path(n) + ".p")
    if partial_dir.is_dir():
        widths = sorted(int(p.name) for p in partial_dir.iterdir() if p.name.isdigit())
        if widths:
            body = (partial_dir / str(widths[-1])).read_bytes()
            leaves.extend(leaf for leaf, _ in split_tile_leaves(body))
    issuers: dict[bytes, bytes] = {}
    issuer_dir = root / "issuer"
    if issuer_dir.is_dir():
        for f in issuer_dir.iterdir():
            issuers[bytes.fromhex(f.name)] = f.read_bytes()
    return leaves, issuers


def _load_entries(path: Path) -> list[dict[str, str]]:
    entries = json.loads(path.read_text())["entries"]
    return [{"leaf_input": e["leaf_input"], "extra_data": e["extra_data"]} for e in entries]


def _pairs(values: Sequence[str] | None, flag: str) -> list[tuple[str, str]]:
    out = []
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{flag} expects PATH=VALUE, got {item!r}")
        out.append((key, value))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m conformance.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument(
        "--rfc6962",
        action="append",
        metavar="PATH=FILE[:FIRST_INDEX]",
        help="serve a get-entries JSON file as an RFC 6962 log",
    )
    ap.add_argument(
        "--static",
        action="append",
        metavar="PATH=DIR_OR_FILE",
        help="serve a tiles directory, or a get-entries JSON file converted to "
        "tiles, as a static-ct-api log",
    )
    ap.add_argument(
        "--origin",
        action="append",
        metavar="PATH=ORIGIN",
        help="checkpoint origin of a static log (default: URL without scheme)",
    )
    ap.add_argument(
        "--visible",
        action="append",
        metavar="PATH=N",
        help="entries visible at start (default all)",
    )
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--hold-seconds", type=float, default=5.0)
    ap.add_argument("--signer-seed", type=int, default=0)
    ap.add_argument("--control", action="store_true", help="enable /_control/ endpoints")
    args = ap.parse_args(argv)

    server = ReplayServer(
        args.host, args.port, hold_seconds=args.hold_seconds, control=args.control
    )
    signer = make_test_signer(args.signer_seed)
    visible = {k: int(v) for k, v in _pairs(args.visible, "--visible")}
    origins = dict(_pairs(args.origin, "--origin"))
    for path, spec in _pairs(args.rfc6962, "--rfc6962"):
        file, sep, first = spec.rpartition(":")
        if not sep or not first.isdigit():
            file, first = spec, "0"
        server.add_rfc6962_log(
            path, _load_entries(Path(file)), int(first), visible.get(path), args.max_batch, signer
        )
    for path, spec in _pairs(args.static, "--static"):
        src = Path(spec)
        if src.is_dir():
            server.add_static_log(path, src, origins.get(path), signer, None, visible.get(path))
        else:
            leaves, issuers = tile_leaves_from_entries(_load_entries(src))
            server.add_static_log(
                path, leaves, origins.get(path), signer, issuers, visible.get(path)
            )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    server.start()
    print(json.dumps({"url": server.url, "logs": server.log_info()}), flush=True)
    done.wait()
    server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
