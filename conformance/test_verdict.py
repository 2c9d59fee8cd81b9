"""The harness's judgement, on captures made from the goldens themselves (no processes).

A capture equal to the goldens matches; each fault a server can have (a dropped, repeated or
reordered entry, a changed value, a frame that is not an update) is named in the words the
harness prints; our own builder's frames pass with exactly the documented deviations; the
dedup and ``calidog-2`` rules excuse what they allow and nothing more.  The config writers
are checked here too (ours by our own config loader).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certstream.config import load_settings
from conformance import compare, verdict
from conformance.harness import Capture, set_names
from conformance.serverconfig import ServedLog, write_config
from conformance.synth import make_test_signer

BASE = "http://127.0.0.1:9"


def _golden_capture(peer: str, set_name: str, transport: str = "ws") -> Capture:
    golden = compare.load_golden(peer, set_name, compare.DATA, BASE)
    frames = {
        (transport, s): [t.rstrip("\n") if transport == "sse" else t for t in texts]
        for s, texts in golden.frames.items()
    }
    return Capture(BASE, frames, "")


def _apply(cap: Capture, change: object) -> Capture:
    """The same change (a function of a frame list) on every stream, as one broadcast."""
    assert callable(change)
    return Capture(cap.base_url, {k: change(list(v)) for k, v in cap.frames.items()}, "")


def _report(cap: Capture, peer: str = "go", set_name: str = "synth11") -> tuple[bool, str]:
    v = verdict.judge(peer, set_name, cap)
    return v.ok, verdict.format_verdict(v)


@pytest.mark.parametrize(("peer", "set_name"), [("go", "live40"), ("calidog", "synth11"),
                                                ("rust", "live40"), ("go", "synth11-tiled")])
@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_the_goldens_themselves_match(peer: str, set_name: str, transport: str) -> None:
    ok, report = _report(_golden_capture(peer, set_name, transport), peer, set_name)
    n = 3 * len(compare.load_golden(peer, set_name).frames["lite"])
    assert ok, report
    assert report.splitlines()[-1] == f"{peer}/{set_name}: {n}/{n} frames match"


def test_every_shipped_set_is_offered() -> None:
    assert set_names(compare.DATA, "go") == ["live40", "synth11", "synth11-tiled"]
    assert set_names(compare.DATA, "calidog") == ["live40", "synth11"]
    assert set_names(compare.DATA, "nobody") == []


def test_a_dropped_entry_is_missing() -> None:
    ok, report = _report(_apply(_golden_capture("go", "synth11"), lambda f: f[:2] + f[3:]))
    assert not ok
    assert report.count("missing /rfc6962 #2") == 3, report
    assert report.splitlines()[-1] == "go/synth11: 30/33 frames match"


def test_a_repeated_entry_is_repeated() -> None:
    ok, report = _report(_apply(_golden_capture("go", "synth11"), lambda f: f[:5] + f[4:]))
    assert not ok
    assert report.count("repeated /rfc6962 #4: 2 copies") == 3, report
    assert "missing" not in report.replace("0 missing", "")
    assert report.splitlines()[-1] == "go/synth11: 33/33 frames match"


def test_a_reordered_log_is_out_of_order() -> None:
    def swap(f: list[str]) -> list[str]:
        return [*f[:7], f[8], f[7], *f[9:]]

    ok, report = _report(_apply(_golden_capture("go", "synth11"), swap))
    assert not ok
    assert report.count("out of order /rfc6962 #7: came after #8") == 3, report


def test_order_across_logs_is_free() -> None:
    # live40 goldens hold all of Argon, then all of Nimbus; interleaved is just as right.
    def interleave(f: list[str]) -> list[str]:
        return [t for pair in zip(f[:20], f[20:], strict=True) for t in pair]

    ok, report = _report(_apply(_golden_capture("rust", "live40"), interleave), "rust", "live40")
    assert ok, report


def test_a_changed_value_names_its_key_path_and_both_values() -> None:
    cap = _golden_capture("go", "synth11")
    lite = cap.frames[("ws", "lite")]
    assert '"is_ca":false' in lite[5]
    lite[5] = lite[5].replace('"is_ca":false', '"is_ca":true', 1)
    ok, report = _report(cap)
    assert not ok
    assert "differs /rfc6962 #5: .data.leaf_cert.is_ca: server true golden false" in report
    assert report.splitlines()[-1] == "go/synth11: 32/33 frames match"


def test_an_unknown_frame_is_extra() -> None:
    cap = _golden_capture("go", "synth11")
    cap.frames[("ws", "full")].append('{"message_type":"heartbeat","timestamp":1}')
    ok, report = _report(cap)
    assert not ok
    assert "extra (no index): not a certificate_update frame" in report


def test_our_builder_passes_with_the_documented_deviations_only() -> None:
    logs = compare.load_set("live40", compare.DATA, BASE)
    ours = compare.OurFrames("go", "live40", logs)
    frames = {("ws", s): [f[s] for f in ours.frames.values()] for s in compare.STREAMS}
    v = verdict.judge("go", "live40", Capture(BASE, frames, ""))
    assert v.ok, verdict.format_verdict(v)
    by_stream = {s.stream: dict(s.deviations) for s in v.streams}
    assert by_stream == {"lite": {"go-1": 1}, "full": {"go-1": 5}, "domains": {}}


def test_a_deviation_label_does_not_excuse_another_change() -> None:
    logs = compare.load_set("live40", compare.DATA, BASE)
    ours = compare.OurFrames("go", "live40", logs)
    frames = {("ws", s): [f[s] for f in ours.frames.values()] for s in compare.STREAMS}
    key = next(k for k in ours.frames if k[1] == 1111014098)  # the go-1 frame
    position = list(ours.frames).index(key)
    lite = frames[("ws", "lite")]
    lite[position] = lite[position].replace('"is_ca":false', '"is_ca":true', 1)
    v = verdict.judge("go", "live40", Capture(BASE, frames, ""))
    assert not v.ok
    lite_verdict = v.streams[0]
    # Judged against the golden, the first difference is the deviation's own key path; what
    # matters is that the frame is not excused.
    assert [k[1] for k, _ in lite_verdict.differing] == [1111014098]
    assert "go-1" not in lite_verdict.deviations


def test_calidog_failed_entry_and_go_tiled_skip_are_allowed_extras() -> None:
    for peer, set_name, label in (("calidog", "synth11", "calidog-1"),
                                  ("go", "synth11-tiled", "go-3")):
        logs = compare.load_set(set_name, compare.DATA, BASE)
        ours = compare.OurFrames(peer, set_name, logs)
        frames = {("ws", s): [f[s] for f in ours.frames.values()] for s in compare.STREAMS}
        v = verdict.judge(peer, set_name, Capture(BASE, frames, ""))
        assert v.ok, verdict.format_verdict(v)
        assert all(s.deviations[label] >= 1 for s in v.streams)


def _stream(received: list[tuple[str, tuple[str, int]]], goldens: list[tuple[str, tuple[str, int]]],
            cert_of: dict[tuple[str, int], bytes]) -> verdict.StreamVerdict:
    return verdict._judge_stream(
        ("ws", "lite"), [(t, k) for t, k in received], [(t, k) for t, k in goldens],
        ours=None, cert_of=cert_of, allowed_extra={},
    )


def test_a_repeat_of_a_sent_certificate_may_be_left_out() -> None:
    a, b, c = ("http://x/a", 1), ("http://x/b", 7), ("http://x/b", 8)
    frames = {k: json.dumps({"data": {"k": list(k)}}) for k in (a, b, c)}
    goldens = [(frames[a], a), (frames[b], b), (frames[c], c)]
    # b carries the certificate a carried: leaving it out is the dedup rule.
    v = _stream([(frames[a], a), (frames[c], c)], goldens,
                {a: b"cert-1", b: b"cert-1", c: b"cert-2"})
    assert v.ok and v.deviations["dedup"] == 1 and v.matched == 3
    # A certificate never sent may not be left out.
    v = _stream([(frames[a], a), (frames[c], c)], goldens,
                {a: b"cert-1", b: b"cert-3", c: b"cert-2"})
    assert not v.ok and v.missing == [b]


def _domains_frame(names: list[str]) -> str:
    return json.dumps({"data": names, "message_type": "dns_entries"}, separators=(",", ":"))


def test_calidog_order_above_32_names_is_allowed_and_nothing_else() -> None:
    ours = compare.OurFrames("calidog", "synth11", compare.load_set("synth11"))
    key = next(iter(ours.frames))
    many = [f"n{i:02d}.example" for i in range(40)]
    golden = _domains_frame(many)
    shuffled = _domains_frame(many[::-1])
    result = compare.classify(key, "domains", shuffled, golden, ours)
    assert (result.status, result.deviations) == ("deviation", ("calidog-2",))
    few = many[:32]
    result = compare.classify(key, "domains", _domains_frame(few[::-1]), _domains_frame(few), ours)
    assert result.status == "mismatch"
    other = _domains_frame([*many[::-1][:-1], "other.example"])
    assert compare.classify(key, "domains", other, golden, ours).status == "mismatch"
    rust = compare.OurFrames("rust", "synth11", compare.load_set("synth11"))
    assert compare.classify(key, "domains", shuffled, golden, rust).status == "mismatch"


# --- config files ---------------------------------------------------------------------------

KEY = make_test_signer().key_b64
LOGS = [
    ServedLog("Log A", "http://127.0.0.1:5/a/", "rfc6962", 100, "Op", KEY, ""),
    ServedLog("Tiles", "http://127.0.0.1:5/t/", "static", 0, "Op", KEY, "127.0.0.1:5/t"),
]


def test_our_config_style_is_a_valid_config_of_ours(tmp_path: Path) -> None:
    path = write_config("certstream", tmp_path / "config.yaml", 4321, LOGS, peer="calidog")
    settings = load_settings({}, path=str(path))
    assert settings.port == 4321
    assert settings.output.profile == "calidog"
    assert settings.ct_log.log_list_urls == ()


def test_go_config_style_has_go_keys_and_its_index_file(tmp_path: Path) -> None:
    import yaml  # noqa: PLC0415

    path = write_config("go", tmp_path / "config.yaml", 4321, LOGS, peer="go")
    doc = yaml.safe_load(path.read_text())
    assert doc["webserver"]["listen_port"] == doc["prometheus"]["listen_port"] == 4321
    general = doc["general"]
    assert general["disable_default_logs"] is True
    assert general["additional_logs"] == [
        {"url": "http://127.0.0.1:5/a", "operator": "Op", "description": "Log A"}
    ]
    assert general["additional_tiled_logs"][0]["url"] == "http://127.0.0.1:5/t"
    index_file = Path(general["recovery"]["ct_index_file"])
    assert general["recovery"]["enabled"] is True
    assert index_file == tmp_path / "ct_index.json"
    assert json.loads(index_file.read_text()) == {"127.0.0.1:5/a": 100, "127.0.0.1:5/t": 0}


def test_a_template_gets_port_config_and_logs(tmp_path: Path) -> None:
    template = tmp_path / "server.toml.in"
    template.write_text("port = {port}\nself = '{config}'\nlogs = '{logs_json}'\n")
    path = write_config("certstream", tmp_path / "config.toml", 77, LOGS, peer="x",
                        template=template)
    lines = path.read_text().splitlines()
    assert lines[0] == "port = 77"
    assert lines[1] == f"self = '{path}'"
    logs = json.loads(lines[2].split("'")[1])
    assert logs[1] == {"name": "Tiles", "url": "http://127.0.0.1:5/t/", "kind": "static",
                       "first_index": 0, "operator": "Op", "key": KEY,
                       "origin": "127.0.0.1:5/t"}
