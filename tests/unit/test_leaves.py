"""RFC 6962 get-entries decoding, on the recorded real entries and on broken variants."""

from __future__ import annotations

import base64
import hashlib
import json
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.support.data import INPUTS, ROOT

from certstream._fast._leaf_py import decode_entry as decode_entry_py
from certstream.core import leaves
from certstream.core.model import PRECERT_ENTRY, X509_ENTRY, LogEntry
from certstream.errors import DecodeError

POISON_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.3")


def _recorded(set_name: str) -> list[tuple[int, bytes, bytes]]:
    """(index, leaf_input, extra_data) of every entry of a conformance input set."""
    base = INPUTS / set_name
    manifest = json.loads((base / "manifest.json").read_text())
    out = []
    for log in manifest["logs"]:
        doc = json.loads((base / log["entries"]).read_text())
        for i, item in enumerate(doc["entries"]):
            out.append(
                (
                    log["first_index"] + i,
                    base64.b64decode(item["leaf_input"]),
                    base64.b64decode(item["extra_data"]),
                )
            )
    return out


LIVE40 = _recorded("live40")
SYNTH11 = _recorded("synth11")


def _spki(der: bytes) -> bytes:
    return (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _as_certificate(tbs: bytes, signed: bytes) -> x509.Certificate:
    """Wrap a bare TBSCertificate with the signature fields of ``signed`` so that
    ``cryptography`` will parse it (it cannot load a TBS alone)."""
    outer = x509.load_der_x509_certificate(signed)
    tail = signed[len(signed) - _outer_tail_len(signed, outer) :]
    body = tbs + tail
    return x509.load_der_x509_certificate(b"\x30" + _der_len(len(body)) + body)


def _outer_tail_len(signed: bytes, cert: x509.Certificate) -> int:
    # Certificate = SEQUENCE { tbs, signatureAlgorithm, signature }: what follows the TBS.
    tbs = cert.tbs_certificate_bytes
    start = signed.index(tbs)
    return len(signed) - start - len(tbs)


def test_fixture_sets_are_what_the_manifest_says() -> None:
    assert len(LIVE40) == 40
    assert len(SYNTH11) == 11


# One real chain certificate has a zero serial, which cryptography warns about.
@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
@pytest.mark.parametrize("set_name", ["live40", "synth11"])
def test_every_recorded_entry_decodes(leaf_mod: ModuleType, set_name: str) -> None:
    entries = [leaf_mod.decode_entry(i, li, ed) for i, li, ed in _recorded(set_name)]
    for (index, leaf_input, _), entry in zip(_recorded(set_name), entries, strict=True):
        assert isinstance(entry, LogEntry)
        assert entry.index == index
        assert entry.merkle_leaf == leaf_input
        assert entry.leaf_hash() == hashlib.sha256(b"\x00" + leaf_input).digest()
        # The timestamp is the 8 bytes after version and leaf_type.
        assert entry.timestamp == int.from_bytes(leaf_input[2:10], "big")
        cert = x509.load_der_x509_certificate(entry.cert_der)
        for issuer_der in entry.chain:
            x509.load_der_x509_certificate(issuer_der)
        if entry.chain:
            # The chain is in order: chain[0] issued the leaf (or the pre-certificate).
            first = x509.load_der_x509_certificate(entry.chain[0])
            assert cert.issuer == first.subject
        if entry.entry_type == X509_ENTRY:
            assert entry.tbs_der is None
            assert entry.issuer_key_hash is None
        else:
            assert entry.entry_type == PRECERT_ENTRY
            assert cert.extensions.get_extension_for_oid(POISON_OID).critical
            # tbs_der is the leaf's TBS: the pre-certificate's TBS with the poison removed.
            assert entry.tbs_der is not None
            leaf = _as_certificate(entry.tbs_der, entry.cert_der)
            assert leaf.serial_number == cert.serial_number
            assert leaf.subject == cert.subject
            assert [x.oid for x in leaf.extensions] == [
                x.oid for x in cert.extensions if x.oid != POISON_OID
            ]


def test_live40_counts_and_precert_issuer_key_hash(leaf_mod: ModuleType) -> None:
    entries = [leaf_mod.decode_entry(i, li, ed) for i, li, ed in LIVE40]
    assert sum(e.entry_type == X509_ENTRY for e in entries) == 26
    precerts = [e for e in entries if e.is_precert]
    assert len(precerts) == 14
    for e in precerts:
        assert e.chain, "a precert entry must carry its issuer"
        assert e.issuer_key_hash == hashlib.sha256(_spki(e.chain[0])).digest()


def test_twins_agree_on_recorded_entries(leaf_mod: ModuleType) -> None:
    for index, li, ed in LIVE40 + SYNTH11:
        assert leaf_mod.decode_entry(index, li, ed) == decode_entry_py(index, li, ed)


def test_bytes_like_input_gives_bytes_fields(leaf_mod: ModuleType) -> None:
    index, li, ed = LIVE40[0]
    entry = leaf_mod.decode_entry(index, bytearray(li), memoryview(ed))
    assert entry == leaf_mod.decode_entry(index, li, ed)
    assert type(entry.cert_der) is bytes
    assert type(entry.merkle_leaf) is bytes


# --- broken leaves -------------------------------------------------------------------------

X509_SAMPLE = next(r for r in LIVE40 if r[1][11] == X509_ENTRY)
PRECERT_SAMPLE = next(r for r in LIVE40 if r[1][11] == PRECERT_ENTRY)


def _u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def _expect(
    leaf_mod: ModuleType, leaf_input: bytes, extra_data: bytes, *needles: str, index: int = 77
) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        leaf_mod.decode_entry(index, leaf_input, extra_data)
    err = info.value
    assert err.index == index
    for needle in needles:
        assert needle in str(err)
    # The compiled and pure twins must say the same thing.
    with pytest.raises(DecodeError) as again:
        decode_entry_py(index, leaf_input, extra_data)
    assert str(again.value) == str(err)
    return err


def test_unknown_version_leaf_type_and_entry_type(leaf_mod: ModuleType) -> None:
    _, li, ed = X509_SAMPLE
    _expect(leaf_mod, b"\x01" + li[1:], ed, "unknown version 1")
    _expect(leaf_mod, li[:1] + b"\x07" + li[2:], ed, "unknown leaf_type 7")
    _expect(leaf_mod, li[:10] + b"\x00\x02" + li[12:], ed, "unknown entry_type 2")
    _expect(leaf_mod, li[:10] + b"\x01\x00" + li[12:], ed, "unknown entry_type 256")


def test_truncated_leaf_input_at_every_length(leaf_mod: ModuleType) -> None:
    for sample in (X509_SAMPLE, PRECERT_SAMPLE):
        _, li, ed = sample
        # Every proper prefix fails, and says why (truncated or overrun).
        for cut in [*range(0, 50), len(li) - 3, len(li) - 2, len(li) - 1]:
            err = _expect(leaf_mod, li[:cut], ed)
            assert any(w in str(err) for w in ("truncated", "overruns")), str(err)


def test_trailing_bytes_are_an_error(leaf_mod: ModuleType) -> None:
    _, li, ed = X509_SAMPLE
    _expect(leaf_mod, li + b"\x00", ed, "leaf_input: 1 trailing bytes")
    _expect(leaf_mod, li, ed + b"\x00\x00", "extra_data: 2 trailing bytes")
    _, li, ed = PRECERT_SAMPLE
    _expect(leaf_mod, li + b"xyz", ed, "leaf_input: 3 trailing bytes")
    _expect(leaf_mod, li, ed + b"\x00", "extra_data: 1 trailing bytes")


def test_extensions_are_consumed_not_assumed_empty(leaf_mod: ModuleType) -> None:
    index, li, ed = X509_SAMPLE
    assert li.endswith(b"\x00\x00")
    with_ext = li[:-2] + b"\x00\x03abc"
    entry = leaf_mod.decode_entry(index, with_ext, ed)
    assert entry.merkle_leaf == with_ext
    assert entry.cert_der == leaf_mod.decode_entry(index, li, ed).cert_der
    _expect(leaf_mod, li[:-2] + b"\x00\x04abc", ed, "extensions length 4 overruns")


def test_certificate_length_overrun_and_empty(leaf_mod: ModuleType) -> None:
    _, li, ed = X509_SAMPLE
    n = int.from_bytes(li[12:15], "big")
    _expect(leaf_mod, li[:12] + _u24(n + 5) + li[15:], ed, "certificate: length", "overruns")
    _expect(leaf_mod, li[:12] + _u24(0) + b"\x00\x00", ed, "certificate: empty")


def test_chain_lengths_must_add_up(leaf_mod: ModuleType) -> None:
    index, li, ed = X509_SAMPLE
    total = int.from_bytes(ed[:3], "big")
    assert total == len(ed) - 3 and total > 0
    _expect(leaf_mod, li, _u24(total + 1) + ed[3:], "certificate_chain: length", "overruns")
    # A total shorter than the certificates it holds cuts the last one.
    _expect(leaf_mod, li, _u24(total - 1) + ed[3:-1], "certificate_chain[", "overruns")
    _expect(leaf_mod, li, b"", "certificate_chain: length truncated")
    # An empty chain is allowed (roots are logged with none).
    assert leaf_mod.decode_entry(index, li, _u24(0)).chain == ()


def test_precert_extra_data(leaf_mod: ModuleType) -> None:
    index, li, ed = PRECERT_SAMPLE
    entry = leaf_mod.decode_entry(index, li, ed)
    pre_len = int.from_bytes(ed[:3], "big")
    assert entry.cert_der == ed[3 : 3 + pre_len]
    _expect(leaf_mod, li, ed[: 3 + pre_len], "precertificate_chain: length truncated")
    _expect(leaf_mod, li, _u24(len(ed)) + ed[3:], "pre_certificate: length", "overruns")
    # An x509 extra_data under a precert leaf does not parse as a PrecertChainEntry.
    with pytest.raises(DecodeError):
        leaf_mod.decode_entry(index, li, X509_SAMPLE[2])


def test_non_bytes_index_error_is_ours(leaf_mod: ModuleType) -> None:
    with pytest.raises(DecodeError):
        leaf_mod.decode_entry(1, b"", b"")


# --- get-entries JSON ----------------------------------------------------------------------


def _body(items: list[Any]) -> bytes:
    return json.dumps({"entries": items}).encode()


def _item(li: bytes, ed: bytes) -> dict[str, str]:
    b64 = base64.b64encode
    return {"leaf_input": b64(li).decode(), "extra_data": b64(ed).decode()}


def test_decode_get_entries_recorded_files() -> None:
    for name, start in (("argon2026h2", 1111014090), ("nimbus2026", 4354630040)):
        body = (INPUTS / "live40" / f"{name}.get-entries.json").read_bytes()
        entries, errors = leaves.decode_get_entries(body, start)
        assert errors == []
        assert [e.index for e in entries] == list(range(start, start + 20))


def test_one_bad_entry_is_reported_alone() -> None:
    items: list[Any] = [_item(li, ed) for _, li, ed in LIVE40[:6]]
    items[1]["leaf_input"] = "AAA*"  # bad base64
    items[2] = ["not", "an", "object"]
    del items[3]["extra_data"]
    items[4]["leaf_input"] = base64.b64encode(b"\x00\x00" + b"\x00" * 8 + b"\x00\x09").decode()
    entries, errors = leaves.decode_get_entries(_body(items), 500)
    assert [e.index for e in entries] == [500, 505]
    assert [e.index for e in errors] == [501, 502, 503, 504]
    assert "base64" in str(errors[0])
    assert "not a JSON object" in str(errors[1])
    assert "extra_data is not a string" in str(errors[2])
    assert "unknown entry_type 9" in str(errors[3])
    assert entries[1].cert_der == leaves.decode_entry(0, LIVE40[5][1], LIVE40[5][2]).cert_der


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1,2]", b'{"entries": 5}', b'{"other": []}', b"\xff\xfe", b"[" * 100000],
)
def test_response_that_is_not_get_entries_raises(body: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        leaves.decode_get_entries(body, 0)
    assert info.value.index is None


def test_empty_batch() -> None:
    assert leaves.decode_get_entries(b'{"entries": []}', 10) == ([], [])


def test_base64_with_junk_is_rejected() -> None:
    _, li, ed = LIVE40[0]
    item = _item(li, ed)
    item["leaf_input"] = item["leaf_input"][:4] + "!" + item["leaf_input"][4:]
    entries, errors = leaves.decode_get_entries(_body([item]), 0)
    assert entries == [] and len(errors) == 1


def test_fixture_paths_are_inside_the_repo() -> None:
    assert INPUTS.is_dir()
    assert ROOT in INPUTS.parents
