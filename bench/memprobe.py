"""``python -m bench.memprobe EXPERIMENT ...``: one memory measurement in a fresh interpreter.

Run by ``bench.memparts``; prints one JSON object.  This module imports nothing heavy at the
top, so the "before" reading is a bare interpreter plus this file.

``imports [--block=PKG,...] [--stub] MODULE ...``
    RSS, private dirty pages and ``sys.modules`` before and after importing the modules.
    ``--block`` makes the named packages import as free stand-ins (submodules need naming
    too), so the difference to the same import without it is what they really cost there.
    ``--stub`` first puts an empty ``certstream`` package in ``sys.modules`` (only its path
    and ``__version__``): what a process would pay if ``certstream/__init__`` did not import
    the whole sans-IO core, a prototype measured without changing the package.
``dedup CAPACITY``
    The dedup ring of that capacity: RSS and traced bytes after construction and after
    ``CAPACITY`` and ``2 * CAPACITY`` distinct keys (full, then evicting).
``builder N``
    ``N`` unique live40 entries through ``MessageBuilder("go")`` for every stream: payload
    sizes per stream, and what the builder keeps afterwards (its chain caches).
``idle greenlet|watcher N``
    N idle socket pairs under gevent, each waited on by a greenlet blocked in ``recv`` (what
    the worker does per TLS client) or by a read watcher with a callback and no greenlet
    (per plain client, ``shell.reader``): RSS per connection of each.
``loglist``
    The Google log list packaged with certstream, parsed as the ingest does when it cannot
    fetch one: bytes of the file and of the parsed logs kept (the body is read first).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

_KEYS = ("Rss", "Pss", "Private_Dirty", "Anonymous")


def rollup() -> dict[str, int]:
    """This process's smaps_rollup, bytes."""
    out = {}
    with open("/proc/self/smaps_rollup", encoding="ascii") as f:
        for line in f.read().splitlines()[1:]:
            key, _, rest = line.partition(":")
            if key in _KEYS:
                out[key] = int(rest.split()[0]) * 1024
    return out


def stub_package() -> None:
    import types  # noqa: PLC0415 - the probe keeps its own imports out of the baseline

    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.join(os.path.dirname(here), "src", "certstream")
    mod = types.ModuleType("certstream")
    mod.__path__ = [src]
    mod.__version__ = "0"  # type: ignore[attr-defined]
    sys.modules["certstream"] = mod


class _Anything:
    """Stands in for anything a blocked module is asked for, at import time."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Anything:
        return _Anything()

    def __getattr__(self, name: str) -> _Anything:
        return _Anything()

    def __mro_entries__(self, bases: tuple[object, ...]) -> tuple[type, ...]:
        return (object,)


def _stand_in(name: str) -> Any:
    import types  # noqa: PLC0415

    mod = types.ModuleType(name)
    mod.__path__ = []
    mod.__getattr__ = lambda attr: _Anything()  # type: ignore[method-assign]
    return mod


_spec_from_loader: Any = None


class _BlockedFinder:
    """Finds a stand-in for every submodule of a blocked package, whichever is imported
    (``prometheus_client.registry`` as much as ``prometheus_client``)."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self.prefixes = prefixes

    def find_spec(self, fullname: str, path: object, target: object = None) -> Any:
        if not fullname.startswith(self.prefixes):
            return None
        return _spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Any:
        return _stand_in(spec.name)

    def exec_module(self, module: Any) -> None:
        pass


def block(names: str) -> None:
    """Make each named package (and its submodules) import as a stand-in that costs nothing:
    what a process would save if it did not import them (its marginal cost)."""
    global _spec_from_loader
    from importlib.util import spec_from_loader  # noqa: PLC0415 - before the finder is in place

    _spec_from_loader = spec_from_loader
    packages = tuple(names.split(","))
    for name in packages:
        sys.modules[name] = _stand_in(name)
    sys.meta_path.insert(0, _BlockedFinder(tuple(p + "." for p in packages)))


def imports(args: list[str]) -> dict[str, Any]:
    import importlib  # noqa: PLC0415

    blocked = ""
    while args and args[0].startswith("--block="):
        blocked = args[0].split("=", 1)[1]
        args = args[1:]
    stub = args[:1] == ["--stub"]
    mods = args[1:] if stub else args
    n0, r0 = len(sys.modules), rollup()
    if stub:
        stub_package()
    if blocked:
        block(blocked)
    for name in mods:
        importlib.import_module(name)
    r1 = rollup()
    return {
        "rss_before": r0["Rss"],
        "rss": r1["Rss"],
        "rss_delta": r1["Rss"] - r0["Rss"],
        "private_dirty_delta": r1["Private_Dirty"] - r0["Private_Dirty"],
        "modules_delta": len(sys.modules) - n0,
        "certstream_modules": sorted(m for m in sys.modules if m.startswith("certstream")),
    }


def dedup(args: list[str]) -> dict[str, Any]:
    import tracemalloc  # noqa: PLC0415

    from certstream import _fast  # noqa: PLC0415
    from certstream.core.dedup import DedupRing  # noqa: PLC0415

    capacity = int(args[0])
    keys = [i.to_bytes(8, "big") * 4 for i in range(2 * capacity)]  # before the baseline
    tracemalloc.start()
    t0, r0 = tracemalloc.get_traced_memory()[0], rollup()
    ring = DedupRing(capacity, 900.0)
    t1, r1 = tracemalloc.get_traced_memory()[0], rollup()
    for i in range(capacity):
        ring.add(keys[i], float(i))
    r2 = rollup()
    for i in range(capacity, 2 * capacity):
        ring.add(keys[i], float(i))
    t3, r3 = tracemalloc.get_traced_memory()[0], rollup()
    return {
        "compiled": _fast.COMPILED.get("_dedup", False),
        "capacity": capacity,
        "len": len(ring),
        "traced_built": t1 - t0,
        "traced_full": t3 - t0,
        "rss_built": r1["Rss"] - r0["Rss"],
        "rss_full": r2["Rss"] - r0["Rss"],
        "rss_evicting": r3["Rss"] - r0["Rss"],
    }


def builder(args: list[str]) -> dict[str, Any]:
    import tracemalloc  # noqa: PLC0415

    from conformance.synth import unique_entries  # noqa: PLC0415

    from bench.ingest import load_base  # noqa: PLC0415
    from certstream.core.leaves import decode_get_entries  # noqa: PLC0415
    from certstream.core.messages import STREAM_ALL, MessageBuilder  # noqa: PLC0415
    from certstream.core.model import LogSource  # noqa: PLC0415

    n = int(args[0])
    raw = unique_entries(load_base(), n, seed=7)
    entries, _errors = decode_get_entries(json.dumps({"entries": raw}).encode(), 0)
    source = LogSource("Bench", "https://ct.example/bench/", "rfc6962", "Bench")
    tracemalloc.start()
    t0 = tracemalloc.get_traced_memory()[0]
    b = MessageBuilder("go")
    sizes = {"lite": 0, "full": 0, "domains": 0}
    frames = {"lite": 0, "full": 0, "domains": 0}
    for i, entry in enumerate(entries):
        p = b.build(entry, source, 1.0e9 + i, STREAM_ALL)
        for name in sizes:
            payload = getattr(p, name)
            sizes[name] += len(payload)
            frames[name] += sys.getsizeof(payload)  # a ring slot: the payload, once
        del p
    kept = tracemalloc.get_traced_memory()[0] - t0
    # The caches' own estimates of what they keep (DER + text + a fixed overhead per entry).
    cache = b._chain_cache
    chains = b._chains
    return {
        "entries": n,
        "payload_avg": {k: v / n for k, v in sizes.items()},
        "slot_bytes_avg": {k: v / n for k, v in frames.items()},
        "builder_kept_traced": kept,
        "chain_cache": [len(cache), cache.max_entries, cache.nbytes, cache.max_bytes],
        "chains": [len(chains), chains.max_entries, chains.nbytes, chains.max_bytes],
    }


def loglist_probe(args: list[str]) -> dict[str, Any]:
    import tracemalloc  # noqa: PLC0415

    from certstream.core import loglist  # noqa: PLC0415

    body, _sig = loglist.packaged_google_list()
    loglist.parse_log_list(body, "google")  # once untraced: lazy imports are not the list
    tracemalloc.start()
    t0, r0 = tracemalloc.get_traced_memory()[0], rollup()
    logs = loglist.parse_log_list(body, "google")
    t1, r1 = tracemalloc.get_traced_memory()[0], rollup()
    return {
        "file_bytes": len(body),
        "logs": len(logs),
        "traced_parsed": t1 - t0,
        "rss_delta": r1["Rss"] - r0["Rss"],
    }


def idle(args: list[str]) -> dict[str, Any]:
    """RSS per idle connection for two ways of waiting for a client to speak."""
    from gevent import monkey  # noqa: PLC0415

    monkey.patch_all()
    import resource  # noqa: PLC0415
    import socket  # noqa: PLC0415

    import gevent  # noqa: PLC0415
    from gevent.pool import Pool  # noqa: PLC0415

    model, n = args[0], int(args[1])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pairs = [socket.socketpair() for _ in range(n)]
    gevent.sleep(0.1)
    r0 = rollup()

    def read_until_closed(sock: socket.socket) -> None:  # conn.py, per TLS client
        while sock.recv(65536):
            pass

    def on_readable(sock: socket.socket) -> None:
        sock.recv(65536)

    keep: list[Any] = []
    if model == "greenlet":
        pool = Pool()
        keep.extend(pool.spawn(read_until_closed, a) for a, _b in pairs)
    else:
        loop = gevent.get_hub().loop
        for a, _b in pairs:
            watcher = loop.io(a.fileno(), 1)
            watcher.start(on_readable, a)
            keep.append(watcher)
    gevent.sleep(0.5)
    r1 = rollup()
    return {"model": model, "connections": n, "per_connection": (r1["Rss"] - r0["Rss"]) / n}


EXPERIMENTS = {
    "imports": imports,
    "dedup": dedup,
    "builder": builder,
    "loglist": loglist_probe,
    "idle": idle,
}


def main(argv: list[str]) -> None:
    print(json.dumps(EXPERIMENTS[argv[0]](argv[1:])))


if __name__ == "__main__":
    main(sys.argv[1:])
