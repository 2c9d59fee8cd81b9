"""Every vendored certificate gives a frame in every profile, or a counted DecodeError.

The certificates under tests/fixtures/ct/certs/ (real ones, pyca's real and deliberately
broken ones) are each wrapped as an x509 log entry, with the next certificate of the corpus
as a one-element chain so chain objects are exercised too.  Every precert of the
navigli2025h2 tiles (1034 real Let's Encrypt staging precertificates) goes through the tile
decoder and its issuers.  Each frame must satisfy what clients rely on (reference:
clients.md section 6, items 3 and 4): one JSON object per payload, valid UTF-8, a string
``message_type``, ``data.cert_index`` an int, the ``leaf_cert`` keys a strict client
requires, ``all_domains`` a list of strings, integer dates.  No exception other than
DecodeError may escape the builder, and each DecodeError is counted by it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import pytest
from tests.support.data import CT_FIXTURES, NAVIGLI

from certstream.core.messages import STREAM_ALL, MessageBuilder
from certstream.core.model import X509_ENTRY, LogEntry, LogSource
from certstream.core.profiles import PROFILES
from certstream.core.tiles import TILE_WIDTH, parse_data_tile
from certstream.errors import DecodeError

CERTS = CT_FIXTURES / "certs"
# "X509 CERTIFICATE" is the old label one pyca fixture uses.
_PEM = re.compile(
    rb"-----BEGIN (?:X509 )?CERTIFICATE-----(.+?)-----END (?:X509 )?CERTIFICATE", re.S
)

RFC_SOURCE = LogSource(name="Fixture log", url="https://ct.example.test/fixture/")
STATIC_SOURCE = LogSource(
    name="Navigli2025h2", url="https://navigli2025h2.skylight.geomys.org/", kind="static"
)

LEAF_KEYS = {
    "all_domains",
    "extensions",
    "fingerprint",
    "issuer",
    "subject",
    "serial_number",
    "signature_algorithm",
    "not_before",
    "not_after",
}
NAME_KEYS = {
    "go": {"C", "CN", "L", "O", "OU", "ST", "aggregated", "email_address"},
    "calidog": {"C", "CN", "L", "O", "OU", "ST", "aggregated", "emailAddress"},
}


def corpus_certificates() -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for path in sorted(CERTS.rglob("*")):
        if path.suffix == ".der":
            out.append((str(path.relative_to(CERTS)), path.read_bytes()))
        elif path.suffix == ".pem":
            blocks = _PEM.findall(path.read_bytes())
            for i, block in enumerate(blocks):
                der = base64.b64decode(b"".join(block.split()))
                out.append((f"{path.relative_to(CERTS)}#{i}", der))
    return out


def corpus_entries() -> list[tuple[str, LogEntry]]:
    certs = corpus_certificates()
    entries = []
    for i, (name, der) in enumerate(certs):
        chain_cert = certs[(i + 1) % len(certs)][1]
        entry = LogEntry(
            index=i,
            timestamp=1_700_000_000_000 + i,
            entry_type=X509_ENTRY,
            cert_der=der,
            tbs_der=None,
            issuer_key_hash=None,
            chain=(chain_cert,),
            merkle_leaf=b"",
        )
        entries.append((name, entry))
    return entries


def navigli_entries() -> Iterator[LogEntry]:
    issuers = {bytes.fromhex(p.name): p.read_bytes() for p in (NAVIGLI / "issuer").iterdir()}
    tiles = [(n, NAVIGLI / "tile" / "data" / f"{n:03d}", TILE_WIDTH) for n in range(4)]
    tiles.append((3, NAVIGLI / "tile" / "data" / "003.p" / "10", 10))
    for n, path, count in tiles:
        for leaf in parse_data_tile(path.read_bytes(), n * TILE_WIDTH, count):
            yield leaf.to_entry(issuers)


def check_frame(profile: str, payload: bytes | None, *, domains: bool = False) -> object:
    assert payload is not None
    message = json.loads(payload.decode("utf-8"))  # strict UTF-8, one JSON value
    assert isinstance(message, dict)
    assert isinstance(message["message_type"], str)
    if domains:
        assert message["message_type"] == "dns_entries"
        assert all(isinstance(d, str) for d in message["data"])
        return message["data"]
    assert message["message_type"] == "certificate_update"
    data = message["data"]
    assert type(data["cert_index"]) is int
    assert isinstance(data["cert_link"], str)
    assert isinstance(data["seen"], float | int)
    assert isinstance(data["source"]["name"], str)
    assert isinstance(data["source"]["url"], str)
    assert data["update_type"] in ("X509LogEntry", "PrecertLogEntry")
    leaf = data["leaf_cert"]
    assert leaf.keys() >= LEAF_KEYS
    assert isinstance(leaf["all_domains"], list)
    assert all(isinstance(d, str) for d in leaf["all_domains"])
    assert isinstance(leaf["extensions"], dict)
    assert all(isinstance(v, str | bool | list) for v in leaf["extensions"].values())
    assert isinstance(leaf["serial_number"], str)
    assert isinstance(leaf["signature_algorithm"], str)
    assert type(leaf["not_before"]) is int
    if profile == "calidog":
        assert type(leaf["not_after"]) is int or leaf["not_after"] == "no_expiration"
    else:
        assert type(leaf["not_after"]) is int
    for cert in [leaf, *data.get("chain", [])]:
        for name in ("subject", "issuer"):
            obj = cert[name]
            assert isinstance(obj, dict)
            assert isinstance(obj["aggregated"], str)
            if profile in NAME_KEYS:  # go and calidog send all keys, null when absent
                assert set(obj) == NAME_KEYS[profile]
            assert all(v is None or isinstance(v, str) for v in obj.values())
    return leaf["all_domains"]


def build_all(builder: MessageBuilder, entry: LogEntry, source: LogSource) -> bool:
    """Build and check one entry; False when the builder refused it with a DecodeError."""
    profile = builder.profile.name
    try:
        out = builder.build(entry, source, 1712345678.123456, STREAM_ALL)
    except DecodeError:
        return False
    lite_domains = check_frame(profile, out.lite)
    assert check_frame(profile, out.full) == lite_domains
    assert check_frame(profile, out.domains, domains=True) == lite_domains
    return True


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_corpus_certificates_give_frames_or_counted_decode_errors(profile: str) -> None:
    entries = corpus_entries()
    files = [p for p in CERTS.rglob("*") if p.suffix in (".der", ".pem")]
    assert len(entries) == len(files) > 50  # one certificate per file
    builder = MessageBuilder(profile)
    refused = [name for name, entry in entries if not build_all(builder, entry, RFC_SOURCE)]
    assert builder.decode_error_count == len(refused)
    # Only certificates whose outer structure is broken may be refused; the real ones never.
    assert not [name for name in refused if name.startswith("real/")], refused
    assert len(refused) <= len(entries) // 10, refused


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_navigli_tile_precerts_give_frames(profile: str) -> None:
    builder = MessageBuilder(profile)
    count = 0
    for entry in navigli_entries():
        assert entry.is_precert
        assert entry.chain, "the tiles name issuers for every entry"
        assert build_all(builder, entry, STATIC_SOURCE), entry.index
        count += 1
    assert count == 1034
    assert builder.decode_error_count == 0
    # A handful of intermediates issue every entry: the chain cache is what serves them.
    assert builder.chain_cache_misses <= 5
    assert builder.chain_cache_hits > 1000
