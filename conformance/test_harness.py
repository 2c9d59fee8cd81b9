"""``python -m conformance`` run as a user runs it, against real server processes.

* our ``certstream`` command in each profile passes its peer's goldens (every shipped set),
  over WebSocket and SSE in one server run;
* forced to the wrong profile it fails with exit 1 and names a differing key path;
* ``record`` then ``run`` on the recording round-trips with 0 differences;
* a relay that drops, repeats and reorders entries of our server is caught in those words;
* a server that cannot start gives exit 2 and why;
* certstream-server-go itself, when its binary is found, passes its own goldens with the
  config the harness writes in its format (the strongest check that the harness is right).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import compare
from conformance.filterref import FilterQuery

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OURS = f"{BIN / 'certstream'} --config {{config}}"
GO_BINARY = Path(
    os.environ.get("CERTSTREAM_GO_SERVER")
    or REPO.parent / "shared" / "peers" / "certstream-server-go"
)
CLEAN = "0 missing, 0 extra, 0 repeated, 0 out of order, 0 differing"


def harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args[:1], "--quiet", "0.5", *args[1:]],
        cwd=REPO, env={**base, **(env or {})}, capture_output=True, text=True, timeout=240,
        check=False,
    )


def _golden_count(peer: str, set_name: str, root: Path = compare.DATA) -> int:
    return len(compare.load_golden(peer, set_name, root).frames["lite"])


def _stream_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(r"  (ws |sse) ", line)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("peer", "set_name"),
    [("go", "live40"), ("go", "synth11"), ("go", "synth11-tiled"),
     ("calidog", "live40"), ("calidog", "synth11"), ("rust", "live40")],
)
def test_our_server_passes_each_profile_over_websocket_and_sse(peer: str, set_name: str) -> None:
    run = harness("run", "--server-cmd", OURS, "--config-style", "certstream",
                  "--peer", peer, "--set", set_name, "--transport", "both")
    assert run.returncode == 0, run.stdout + run.stderr
    n = 6 * _golden_count(peer, set_name)
    assert run.stdout.splitlines()[-1] == f"{peer}/{set_name}: {n}/{n} frames match"
    lines = _stream_lines(run.stdout)
    assert [line.split()[:2] for line in lines] == [
        [t, s] for t in ("ws", "sse") for s in ("lite", "full", "domains")
    ]
    assert all(CLEAN in line for line in lines), run.stdout


@pytest.mark.slow
def test_the_wrong_profile_fails_and_names_a_key_path() -> None:
    run = harness("run", "--server-cmd", OURS, "--peer", "go", "--set", "synth11",
                  env={"CERTSTREAM_OUTPUT_PROFILE": "calidog"})
    assert run.returncode == 1, run.stdout + run.stderr
    differs = [line.strip() for line in run.stdout.splitlines() if "differs " in line]
    assert differs, run.stdout
    # "differs /rfc6962 #0: .data.leaf_cert: keys server [...] golden [...]"
    assert all(re.match(r"differs /rfc6962 #\d+: \.data[\w.\[\]]*: ", d) for d in differs), differs
    last = run.stdout.splitlines()[-1]
    verdict = re.fullmatch(r"go/synth11: (\d+)/(\d+) frames match", last)
    assert verdict is not None, last
    matched, total = map(int, verdict.groups())
    assert total == 33 and matched < total


@pytest.mark.slow
def test_record_then_run_round_trips(tmp_path: Path) -> None:
    rec = harness("record", "--server-cmd", OURS, "--peer", "mine", "--set", "synth11",
                  "--out", str(tmp_path), env={"CERTSTREAM_OUTPUT_PROFILE": "rust"})
    assert rec.returncode == 0, rec.stdout + rec.stderr
    folder = tmp_path / "golden" / "mine" / "synth11"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["frames"] == {"lite": 11, "full": 11, "domains": 11}
    assert meta["missing_indices"] == meta["duplicate_indices"] == []
    assert meta["base_url"].startswith("http://127.0.0.1:")
    first = json.loads((folder / "lite.jsonl").read_text().splitlines()[0])
    assert '"submission_timestamp"' in first  # the rust profile, as the environment chose
    assert (tmp_path / "inputs" / "synth11" / "manifest.json").is_file()

    run = harness("run", "--server-cmd", OURS, "--root", str(tmp_path), "--peer", "mine",
                  "--transport", "both", env={"CERTSTREAM_OUTPUT_PROFILE": "rust"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "mine/synth11: 66/66 frames match"
    assert all(CLEAN in line for line in _stream_lines(run.stdout))


@pytest.mark.slow
def test_a_relay_that_drops_repeats_and_reorders_is_caught_in_those_words() -> None:
    relay = (f"{sys.executable} {REPO / 'conformance' / 'faulty_relay.py'} --port {{port}} "
             f"--drop 2 --repeat 4 --swap 7 -- {BIN / 'certstream'} --config {{config}} "
             "--port {upstream}")
    run = harness("run", "--server-cmd", relay, "--peer", "go", "--set", "synth11")
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout
    for stream in ("lite", "full", "domains"):
        line = next(line for line in _stream_lines(out) if line.split()[1] == stream)
        assert "10/11 matched, 1 missing, 0 extra, 1 repeated, 1 out of order, 0 differing" in line
    assert out.count("missing /rfc6962 #2") == 3
    assert out.count("repeated /rfc6962 #4: 2 copies") == 3
    assert out.count("out of order /rfc6962 #7: came after #8") == 3
    assert out.splitlines()[-1] == "go/synth11: 30/33 frames match"


@pytest.mark.slow
def test_a_server_that_cannot_start_exits_2_with_why() -> None:
    cmd = f"{sys.executable} -c \"import sys; print('bad config'); sys.exit(3)\""
    run = harness("run", "--server-cmd", cmd, "--set", "synth11")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "the server exited with status 3 before it listened" in run.stderr
    assert "bad config" in run.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    not os.access(GO_BINARY, os.X_OK),
    reason=f"no certstream-server-go binary at {GO_BINARY} (set CERTSTREAM_GO_SERVER)",
)
@pytest.mark.parametrize("set_name", ["live40", "synth11", "synth11-tiled"])
def test_certstream_server_go_passes_its_own_goldens(set_name: str) -> None:
    run = harness("run", "--server-cmd", f"{GO_BINARY} -c {{config}}", "--config-style", "go",
                  "--peer", "go", "--set", set_name)
    assert run.returncode == 0, run.stdout + run.stderr
    n = 3 * _golden_count("go", set_name)
    assert run.stdout.splitlines()[-1] == f"go/{set_name}: {n}/{n} frames match"
    # Exactly its own frames: no allowed deviation was needed.
    assert "allowed" not in run.stdout, run.stdout


# Server-side filters, as the issue states them and more: each kind alone, repeated values,
# the kinds combined (all four; domain= and domain_re= are two kinds, so both must match),
# case-insensitive patterns, and two that match nothing.
FILTERS = (
    "domain=*.myfritz.net&domain=*workday*&domain=*.AWS.dev",
    r"domain_re=^i-[0-9a-f]{17}\.prd\.workdaysuv\.com$&domain_re=\.sslip\.IO$"
    r"&domain_re=^\*\.[a-z]+\.com$",
    "issuer=let%27s%20encrypt",
    "issuer=ZeroSSL&issuer=amazon",
    "log=nimbus2026",
    "domain=*workday*&issuer=E8",
    "domain_re=update&log=Nimbus&issuer=R13",
    "domain=*workday*&domain_re=^i-0&issuer=encrypt&log=nimbus",
    "domain=*workday*&domain_re=sslip",  # each alone matches some, together none
    "domain=*.example.invalid",
)
NOTHING = FILTERS[-2:]


def _filtered_counts(peer: str, set_name: str) -> dict[str, int]:
    golden = compare.load_golden(peer, set_name)
    return {q: sum(map(FilterQuery.parse(q).matches_text, golden.frames["lite"]))
            for q in FILTERS}


def test_the_filters_select_some_records_and_not_others() -> None:
    counts = _filtered_counts("go", "live40")
    assert [counts[q] for q in NOTHING] == [0, 0]
    assert all(0 < n < 40 for q, n in counts.items() if q not in NOTHING), counts
    # The filter, counted a third way (fnmatch, on the raw golden lines).
    golden = compare.load_golden("go", "live40").frames["lite"]
    names = [json.loads(t)["data"]["leaf_cert"]["all_domains"] for t in golden]
    globs = ("*.myfritz.net", "*workday*", "*.aws.dev")
    assert counts[FILTERS[0]] == sum(
        any(fnmatch.fnmatchcase(n.lower(), g) for g in globs for n in ns) for ns in names) == 10


@pytest.mark.slow
@pytest.mark.parametrize(("peer", "filters"), [("go", FILTERS), ("calidog", FILTERS[:3])])
def test_each_filtered_client_gets_exactly_its_golden_frames(
    peer: str, filters: tuple[str, ...]
) -> None:
    """Every filter on the three WebSocket paths and the three SSE paths, each client beside
    the unfiltered ones, in one server run: exactly the golden frames the filter selects
    (byte for byte, nothing missing, nothing else) and the unfiltered clients everything."""
    args = [a for q in filters for a in ("--filter", q)]
    run = harness("run", "--server-cmd", OURS, "--peer", peer, "--set", "live40",
                  "--transport", "both", *args)
    assert run.returncode == 0, run.stdout + run.stderr
    counts = _filtered_counts(peer, "live40")
    verdicts = [line for line in run.stdout.splitlines() if line.endswith("frames match")]
    assert verdicts == [
        *(f"{peer}/live40?{q}: {6 * counts[q]}/{6 * counts[q]} frames match" for q in filters),
        f"{peer}/live40: 240/240 frames match",
    ]
    lines = _stream_lines(run.stdout)
    assert len(lines) == 6 * (len(filters) + 1)
    assert all(CLEAN in line for line in lines), run.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    not os.access(GO_BINARY, os.X_OK),
    reason=f"no certstream-server-go binary at {GO_BINARY} (set CERTSTREAM_GO_SERVER)",
)
def test_a_server_that_ignores_filters_fails_with_its_extra_frames() -> None:
    # certstream-server-go has no server-side filters: its "filtered" clients get everything.
    run = harness("run", "--server-cmd", f"{GO_BINARY} -c {{config}}", "--config-style", "go",
                  "--peer", "go", "--set", "live40", "--filter", "domain=*workday*")
    assert run.returncode == 1, run.stdout + run.stderr
    golden = compare.load_golden("go", "live40").frames["lite"]
    n = sum(map(FilterQuery.parse("domain=*workday*").matches_text, golden))
    assert n == 6
    assert f"go/live40?domain=*workday*: {3 * n}/{3 * n} frames match, {3 * (40 - n)} extra" in (
        run.stdout), run.stdout
    assert run.stdout.splitlines()[-1] == "go/live40: 120/120 frames match"
