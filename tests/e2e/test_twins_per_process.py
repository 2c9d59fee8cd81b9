"""Each process loads only the compiled twins it uses: the gunicorn master none (it imports
the worker class but frames nothing) and no cryptography, a worker ``_frames`` alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support import RawWS, golden_payloads, run_server

from certstream._fast import MODULES, NO_EXTENSIONS

# What the gunicorn master imports: the app, the settings and, as gunicorn does in the
# master, the worker class.
_MASTER_IMPORTS = """
import sys
import certstream.shell.app
from certstream.config import load_settings
from gunicorn.util import load_class
load_class(certstream.shell.app.WORKER_CLASS)
load_settings({})
print(" ".join(sorted(m for m in sys.modules
                      if m.startswith(("certstream._fast.", "cryptography")))))
"""


@pytest.mark.slow
def test_the_master_imports_no_twin_and_no_cryptography(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _MASTER_IMPORTS], capture_output=True,
                         text=True, check=True, timeout=60, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items()
                              if not k.startswith("CERTSTREAM_")}).stdout.split()
    assert out == []


def _twins_mapped(pid: int) -> set[str]:
    """The compiled twins whose shared objects process ``pid`` has mapped."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name for name in MODULES if f"/_fast/{name}." in maps}


@pytest.mark.slow
@pytest.mark.skipif(NO_EXTENSIONS, reason="the pure twins are not shared objects")
def test_a_serving_worker_maps_the_frames_twin_alone() -> None:
    lite = golden_payloads("lite")[0]
    with run_server() as srv:
        ws = RawWS(srv.port, "/")
        try:
            srv.feed.wait_wanted(1)
            srv.feed.publish_one(lite=lite)
            assert ws.recv_data() == lite  # the worker has built a frame
        finally:
            ws.close()
        (worker,) = srv.worker_pids()
        assert _twins_mapped(worker) == {"_frames"}
        assert _twins_mapped(srv.proc.pid) == set()  # the gunicorn master
