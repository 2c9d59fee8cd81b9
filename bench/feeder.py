"""A stand-in ingest for the fan-out benchmarks: publishes ready payloads at a set rate.

Fan-out is measured without CT decoding in the loop: this process owns the feed socket
(``certstream.shell.feed.FeedPublisher``, the real publisher), and the real gunicorn workers
subscribe to it exactly as they do to the real ingest.  It runs on the load generator's core.

Payloads are the live40 entries built once by the real message builder (``go`` profile) with a
placeholder ``seen``; each publish swaps in the current time, so a client can compute the
latency from publish to receipt out of the frame itself (the sink reads ``"seen":``).  The
entries are published in ticks of 10 ms, as the real ingest publishes each get-entries batch.

With ``--broker URL`` it publishes to Redis instead, through the real ``BrokerPublisher`` of
a leading ingest (it takes the lease), for edges (``role: edge``) to read: ``bench.broker``.

Control: one command per line on stdin, one answer line on stdout.
    W               -> "want=MASK"      the streams some worker subscribes to
    S RATE SECONDS  -> "done N"         publish RATE entries/s for SECONDS
    B N             -> "done N"         publish N entries at once (clients fall behind)
    Q               quit
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.os

from certstream.core import messages
from certstream.core.leaves import decode_get_entries
from certstream.core.model import LogSource
from certstream.core.streams import FILTER_FIELDS as FIELDS
from certstream.core.streams import STREAM_DOMAINS as DOMAINS
from certstream.core.streams import STREAM_FULL as FULL
from certstream.core.streams import STREAM_LITE as LITE
from certstream.shell.feed import FeedPublisher

LIVE40 = Path(__file__).resolve().parent.parent / "conformance" / "data" / "inputs" / "live40"
SEEN_MARK = b"1234567890.125"  # a placeholder "seen" that no real field holds
TICK = 0.01


@dataclass(frozen=True, slots=True)
class Payloads:
    lite: bytes | None
    full: bytes | None
    domains: bytes | None
    fields: bytes | None = None
    seen: int = 0  # the seen the payloads show, in microseconds (the record's stamp)


Template = tuple[bytes, bytes, bytes, bytes]


def templates() -> list[Template]:
    """(lite, full, domains, filter field) of each live40 entry, with SEEN_MARK where the
    time goes."""
    try:
        return _built() or [synthetic()]
    except Exception as exc:  # a builder bug must not take the fan-out figures with it
        print(
            f"feeder: the real builder failed ({exc!r}); using a synthetic payload", file=sys.stderr
        )
        return [synthetic()]


def _built() -> list[Template]:
    manifest = json.loads((LIVE40 / "manifest.json").read_text())
    out = []
    every = messages.STREAM_LITE | messages.STREAM_FULL | messages.STREAM_DOMAINS | FIELDS
    builder = messages.MessageBuilder("go")
    for log in manifest["logs"]:
        body = (LIVE40 / log["entries"]).read_bytes()
        source = LogSource(name=log["name"], url=log["real_log_url"])
        entries, _ = decode_get_entries(body, log["first_index"])
        for e in entries:
            p = builder.build(e, source, float(SEEN_MARK), every)
            if p.lite and SEEN_MARK in p.lite:
                out.append((p.lite, p.full or b"", p.domains or b"", p.fields or b""))
    return out


def synthetic() -> Template:
    """A lite-sized message, for when the real builder fails."""
    pad = "x" * 1500
    lite = b'{"data":{"pad":"%s","seen":%s},"message_type":"certificate_update"}\n' % (
        pad.encode(),
        SEEN_MARK,
    )
    return (lite, lite, b'{"data":["example.com"],"message_type":"dns_entries"}',
            b"\0\0example.com")


def broker_publisher(url: str) -> Any:
    """A leading ingest's publisher on ``url`` (the process is monkey-patched by then)."""
    from certstream.config import BrokerSettings  # noqa: PLC0415 - broker mode only
    from certstream.shell.brokerpub import BrokerPublisher, load_takeover  # noqa: PLC0415
    from certstream.shell.lease import Lease  # noqa: PLC0415
    from certstream.shell.redisconn import Keys, connect  # noqa: PLC0415

    settings = BrokerSettings(url=url, retention=20000, lease_ms=600_000)
    client, keys = connect(url), Keys(settings.key_prefix)
    lease = Lease(client, keys, settings.lease_ms)
    if not lease.try_acquire():
        raise RuntimeError("the bench feeder could not take the lease")
    return BrokerPublisher(client, keys, lease, settings, load_takeover(client, keys))


class Feeder:
    def __init__(self, path: str, broker: str | None = None) -> None:
        self.pub: Any = (broker_publisher(broker) if broker else
                         FeedPublisher(path, max_pending_bytes=512 * 1024 * 1024))
        self.pub.start()
        self.tpl = templates()
        self.index = 0

    def _items(self, n: int) -> list[tuple[str, int, Payloads]]:
        want = self.pub.wanted()
        ms = int(time.time() * 1000)
        seen = b"%d.%03d" % divmod(ms, 1000)
        items = []
        for _ in range(n):
            lite, full, domains, fields = self.tpl[self.index % len(self.tpl)]
            items.append(
                (
                    "bench",
                    self.index,
                    Payloads(
                        lite.replace(SEEN_MARK, seen) if want & LITE else None,
                        full.replace(SEEN_MARK, seen) if want & FULL else None,
                        domains if want & DOMAINS else None,
                        fields if want & FIELDS else None,
                        ms * 1000,
                    ),
                )
            )
            self.index += 1
        return items

    def steady(self, rate: float, seconds: float) -> int:
        start = time.monotonic()
        sent = 0
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= seconds:
                break
            due = int(rate * elapsed) - sent
            if due > 0:
                self.pub.publish(self._items(due))
                sent += due
            gevent.sleep(TICK)
        return sent

    def burst(self, n: int) -> int:
        sent = 0
        while sent < n:
            k = min(256, n - sent)
            self.pub.publish(self._items(k))
            sent += k
            gevent.sleep(0)  # let the publisher's writer greenlets run
        return sent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.feeder")
    ap.add_argument("--socket", default="")
    ap.add_argument("--broker", help="publish to this Redis (broker.url) instead")
    args = ap.parse_args(argv)
    if args.broker:
        from gevent import monkey  # noqa: PLC0415 - redis-py's sockets must cooperate

        monkey.patch_all()
    feeder = Feeder(args.socket, args.broker)
    gevent.os.make_nonblocking(0)
    buf = b""
    print(f"ready templates={len(feeder.tpl)} bytes={len(feeder.tpl[0][0])}", flush=True)
    while True:
        data = gevent.os.nb_read(0, 4096)
        if not data:
            break
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            cmd = line.decode().split()
            if not cmd:
                continue
            if cmd[0] == "Q":
                feeder.pub.close()
                return
            if cmd[0] == "W":
                print(f"want={feeder.pub.wanted()}", flush=True)
            elif cmd[0] == "S":
                print(f"done {feeder.steady(float(cmd[1]), float(cmd[2]))}", flush=True)
            elif cmd[0] == "B":
                print(f"done {feeder.burst(int(cmd[1]))}", flush=True)
            else:
                print(f"error unknown command {cmd[0]!r}", flush=True)
    feeder.pub.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
