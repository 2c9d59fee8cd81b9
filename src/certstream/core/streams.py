"""The stream types: each one's bit and name, the one definition every layer uses.

A stream type is a bit so that a set of them is a mask: what a request asks the message
builder for, what a worker tells the ingest it wants (the feed's WANT), which payloads an
ENTRY record carries, and which rings of the hub have subscribers.
"""

from __future__ import annotations

__all__ = [
    "FILTER_FIELDS",
    "STREAMS",
    "STREAM_ALL",
    "STREAM_DOMAINS",
    "STREAM_FULL",
    "STREAM_LITE",
    "STREAM_NAMES",
]

#: ``/`` and ``/sse``: one certificate_update per certificate, without the DER.
STREAM_LITE = 1
#: ``/full-stream``: with the DER of the leaf and the chain.
STREAM_FULL = 2
#: ``/domains-only``: the certificate's names only.
STREAM_DOMAINS = 4
STREAM_ALL = STREAM_LITE | STREAM_FULL | STREAM_DOMAINS
#: Not a stream: the bit that asks the message builder for an entry's filter field (what
#: server-side filters match, ``core.filterfields.encode_match_fields``), that a worker with
#: filtered clients sets in its feed WANT, and that marks an ENTRY record carrying the field.
#: Nothing is built for it while no worker has a filtered client.
FILTER_FIELDS = 16

#: Every stream type, in payload order: the order of ``Payloads``' fields and of the
#: payloads in a feed ENTRY record.
STREAMS = (STREAM_LITE, STREAM_FULL, STREAM_DOMAINS)

#: The name of each stream type in metrics labels, ``/health/deep`` and the logs.
STREAM_NAMES = {STREAM_LITE: "lite", STREAM_FULL: "full", STREAM_DOMAINS: "domains"}
