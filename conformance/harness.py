"""Run any certstream server against a recorded set and collect what it sends.

``capture`` does one run: it serves the set's logs from the replay CT log (``replay.py``),
holding back every data request; writes the config file for the server (``serverconfig``);
starts the server command in a working directory of its own; waits until the port answers;
connects one client per stream and transport (``clients``), and one more per stream,
transport and filter query (``RunOptions.filters``, judged with ``filterref``); lets a moment
pass so the server knows its clients, then opens the logs; collects until every stream has
the expected number of frames and the server has gone quiet (or nothing came for ``idle``
seconds, or the ``timeout`` passed); and stops everything it started, whatever happens.  A
server that cannot be run raises ``HarnessError`` with why.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conformance import compare
from conformance.clients import (
    SSE_TARGETS,
    WS_PATHS,
    ClientError,
    SSEReader,
    StreamReader,
    WSReader,
)
from conformance.filterref import with_query
from conformance.replay import ReplayServer, load_tiles_dir
from conformance.serverconfig import ServedLog, write_config

__all__ = ["Capture", "HarnessError", "RunOptions", "capture", "served_logs", "set_names"]

TRANSPORTS = ("ws", "sse")
HOST = "127.0.0.1"


class HarnessError(Exception):
    """The server could not be run (exit status 2 of the command line)."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    server_cmd: str
    root: Path = compare.DATA
    config_style: str = "certstream"
    config_template: Path | None = None
    transports: tuple[str, ...] = ("ws",)
    settle: float = 1.0  # seconds between the clients' handshakes and opening the logs
    quiet: float = 1.0  # once every stream has its expected frames: this long without one
    idle: float = 10.0  # give up waiting this long after the last frame (or the start)
    timeout: float = 120.0  # the longest a collection may take
    startup: float = 60.0  # the longest the server may take to answer on its port
    keep: Path | None = None  # keep the server's working directory here
    #: Filter query strings: each gets a client per stream and transport of its own.
    filters: tuple[str, ...] = ()


@dataclass(slots=True)
class Capture:
    """What one run collected: per (transport, stream) the frame texts in arrival order."""

    base_url: str
    frames: dict[tuple[str, str], list[str]]
    server_log: str
    notes: list[str] = field(default_factory=list)  # streams the server ended, and so on
    #: Per filter query, what its clients collected, keyed as ``frames``.
    filtered: dict[str, dict[tuple[str, str], list[str]]] = field(default_factory=dict)

    def of_filter(self, query: str) -> Capture:
        """What the clients of filter ``query`` collected, as a capture of its own."""
        return Capture(self.base_url, self.filtered[query], self.server_log, self.notes)


def set_names(root: Path, peer: str) -> list[str]:
    """The sets under ``root`` that ``peer`` has goldens for and whose inputs exist."""
    golden = root / "golden" / peer
    if not golden.is_dir():
        return []
    return sorted(
        p.name
        for p in golden.iterdir()
        if (p / "meta.json").is_file() and (root / "inputs" / p.name / "manifest.json").is_file()
    )


def _add_logs(replay: ReplayServer, root: Path, set_name: str) -> None:
    folder = root / "inputs" / set_name
    for log in compare.manifest(set_name, root)["logs"]:
        if log["kind"] == "static":
            leaves, issuers = load_tiles_dir(folder / log["tiles"])
            replay.add_static_log(log["path"], leaves, None, None, issuers)
        else:
            body = json.loads((folder / log["entries"]).read_text())
            replay.add_rfc6962_log(log["path"], body["entries"], int(log["first_index"]))


def served_logs(replay: ReplayServer, root: Path, set_name: str) -> list[ServedLog]:
    """The set's logs as the replay serves them (URL, key, origin)."""
    info = replay.log_info()
    return [
        ServedLog(
            name=log["name"],
            url=replay.url + log["path"],
            kind="static" if log["kind"] == "static" else "rfc6962",
            first_index=int(log.get("first_index", 0)),
            operator=log.get("operator") or "Conformance",
            key=info[log["path"]]["key"],
            origin=info[log["path"]].get("origin", ""),
        )
        for log in compare.manifest(set_name, root)["logs"]
    ]


def capture(
    options: RunOptions,
    set_name: str,
    expected: int,
    peer: str,
    filtered: dict[str, int] | None = None,
) -> Capture:
    """One run of the server against ``set_name``; ``expected`` frames per stream, and
    ``filtered[query]`` per stream of each filter in ``options.filters``."""
    filtered = filtered or {}
    replay = ReplayServer(HOST, 0)
    try:
        _add_logs(replay, options.root, set_name)
    except (OSError, ValueError, KeyError) as exc:
        raise HarnessError(f"cannot load set {set_name!r} from {options.root}: {exc}") from exc
    paths = list(replay.log_info())
    for path in paths:
        replay.hold(path)
    replay.start()
    try:
        with _workdir(options.keep) as workdir:
            port = _free_port()
            template = options.config_template
            name = "config" + (template.suffix if template is not None else ".yaml")
            config = write_config(
                options.config_style,
                workdir / name,
                port,
                served_logs(replay, options.root, set_name),
                peer=peer,
                template=template,
            )
            argv = _command(options.server_cmd, config, port)
            with _server(argv, workdir, port, options.startup) as log_path:
                readers = _connect(port, options.transports)
                by_filter: dict[str, dict[tuple[str, str], StreamReader]] = {}
                try:
                    for query in options.filters:
                        by_filter[query] = _connect(port, options.transports, query)
                    time.sleep(options.settle)
                    for path in paths:
                        replay.release(path)
                    waiting = [(r, expected) for r in readers.values()]
                    waiting += [(r, filtered.get(q, 0)) for q, rs in by_filter.items()
                                for r in rs.values()]
                    notes = _collect(readers, waiting, options)
                finally:
                    for reader in _all_readers(readers, by_filter):
                        reader.close()
                frames = {key: list(reader.frames) for key, reader in readers.items()}
                frames_of = {q: {key: list(r.frames) for key, r in rs.items()}
                             for q, rs in by_filter.items()}
            return Capture(replay.url, frames, log_path.read_text(errors="replace"), notes,
                           frames_of)
    finally:
        replay.stop()


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    path = Path(tempfile.mkdtemp(prefix="certstream-conformance-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _command(template: str, config: Path, port: int) -> list[str]:
    text = template.replace("{config}", shlex.quote(str(config))).replace("{port}", str(port))
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise HarnessError(f"cannot parse --server-cmd {template!r}: {exc}") from exc
    if not argv:
        raise HarnessError("--server-cmd is empty")
    return argv


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join("    " + line for line in text) or "    (no output)"


@contextlib.contextmanager
def _server(argv: list[str], workdir: Path, port: int, startup: float) -> Iterator[Path]:
    """The server command in its own session (so its whole process tree can be stopped),
    output to ``server.log``; yields once the port accepts connections."""
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(
                argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as exc:
            raise HarnessError(f"cannot start {argv[0]!r}: {exc}") from exc
    try:
        deadline = time.monotonic() + startup
        while not _accepts(port):
            code = proc.poll()
            if code is not None:
                raise HarnessError(
                    f"the server exited with status {code} before it listened on port {port}; "
                    f"its last output:\n{_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"the server did not listen on port {port} within {startup:.0f} s; "
                    f"its last output:\n{_tail(log_path)}"
                )
            time.sleep(0.1)
        yield log_path
    finally:
        _stop(proc)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """TERM the server's process group (it may have children), then KILL what is left."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; children of a server that forked may still hold the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def _all_readers(
    readers: dict[tuple[str, str], StreamReader],
    by_filter: dict[str, dict[tuple[str, str], StreamReader]],
) -> list[StreamReader]:
    return [*readers.values(), *(r for rs in by_filter.values() for r in rs.values())]


def _connect(
    port: int, transports: tuple[str, ...], query: str = ""
) -> dict[tuple[str, str], StreamReader]:
    readers: dict[tuple[str, str], StreamReader] = {}
    try:
        for transport in transports:
            targets = WS_PATHS if transport == "ws" else SSE_TARGETS
            kind = WSReader if transport == "ws" else SSEReader
            for stream, target in targets.items():
                path = with_query(target, query) if query else target
                readers[(transport, stream)] = kind(HOST, port, path, timeout=10.0)
    except ClientError as exc:
        for reader in readers.values():
            reader.close()
        raise HarnessError(str(exc)) from exc
    return readers


def _collect(
    readers: dict[tuple[str, str], StreamReader],
    waiting: list[tuple[StreamReader, int]],
    options: RunOptions,
) -> list[str]:
    """Until every reader of ``waiting`` has its expected frames and all have been quiet
    (see the module docstring); the notes name the unfiltered streams the server ended."""
    start = time.monotonic()
    while True:
        time.sleep(0.05)
        now = time.monotonic()
        last = max([start, *(r.last_frame for r, _ in waiting)])
        complete = all(r.count() >= n for r, n in waiting)
        if complete and now - last >= options.quiet:
            break
        if now - last >= options.idle or now - start >= options.timeout:
            break
        if all(r.closed_why for r, _ in waiting):
            break
    return [
        f"{transport} {stream}: {reader.closed_why}"
        for (transport, stream), reader in readers.items()
        if reader.closed_why
    ]
