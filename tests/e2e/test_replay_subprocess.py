"""The replay CT log as its own process (``python -m conformance.replay``), driven over its HTTP
control endpoints, as the benchmarks and manual runs use it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from conformance.synth import make_test_signer
from tests.support.data import LIVE40, NAVIGLI, ROOT

from certstream.core.checkpoint import parse_checkpoint

ARGON_FIRST = 1111014090
ORIGIN = "replay.test/navigli2025h2"


@pytest.mark.slow
def test_subprocess_with_http_control() -> None:
    cmd = [
        sys.executable, "-m", "conformance.replay", "--port", "0", "--control",
        "--rfc6962", f"/argon/={LIVE40 / 'argon2026h2.get-entries.json'}:{ARGON_FIRST}",
        "--visible", "/argon/=5",
        "--static", f"/navigli/={NAVIGLI}", "--origin", f"/navigli/={ORIGIN}",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready: dict[str, Any] = json.loads(proc.stdout.readline())
        url = ready["url"]
        assert ready["logs"]["/navigli/"]["origin"] == ORIGIN
        assert ready["logs"]["/argon/"]["key"] == make_test_signer().key_b64

        def call(method: str, path: str) -> Any:
            req = urllib.request.Request(url + path, method=method)
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())

        assert call("GET", "/argon/ct/v1/get-sth")["tree_size"] == ARGON_FIRST + 5
        call("POST", "/_control/grow?log=/argon/&n=3")
        assert call("GET", "/argon/ct/v1/get-sth")["tree_size"] == ARGON_FIRST + 8
        call("POST", "/_control/inject?log=/argon/&kind=garbage_entry&count=1")
        call("GET", f"/argon/ct/v1/get-entries?start={ARGON_FIRST + 2}&end={ARGON_FIRST + 3}")
        assert call("GET", "/_control/garbage?log=/argon/") == [ARGON_FIRST + 2]
        served = call("GET", "/_control/requests?log=/argon/")
        assert ["POST", "/_control/grow?log=/argon/&n=3"] not in served
        assert served[-1][1].startswith("/argon/ct/v1/get-entries?start=")
        with urllib.request.urlopen(url + "/navigli/checkpoint", timeout=10) as resp:
            cp = resp.read()
        assert parse_checkpoint(cp).size == 1024
        with pytest.raises(urllib.error.HTTPError) as err:
            call("POST", "/_control/inject?log=/argon/&kind=partial_404")
        assert err.value.code == 400
        err.value.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
