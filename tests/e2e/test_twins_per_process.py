"""Each process loads only what it uses: the gunicorn master no compiled twin and none of the
worker's or the ingest's stacks (it imports only a stand-in of the worker class, see
``certstream.shell.workerclass``), a serving worker the ``_frames`` twin alone."""

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
                      if (m.partition(".")[0] in HEAVY or m.startswith(CORE) or m in SHELL)
                      and m not in MASTER_CORE)))
"""
# The stacks a worker or the ingest needs and the master must not load (a top-level package
# name each), and the certstream modules that hold them.
_HEAVY = ("cryptography", "gevent", "greenlet", "h11", "wsproto", "prometheus_client")
_CORE = ("certstream._fast.", "certstream.core.")
_SHELL = ("certstream.shell.worker", "certstream.shell.hub", "certstream.shell.conn",
          "certstream.shell.ingest", "certstream.shell.feed", "certstream.shell.feedsub",
          "certstream.shell.metrics")
# The core modules the master does need, both plain standard-library code: the layout of
# the memory it maps for the workers' shared limits, and the size of a rate state in it.
_MASTER_CORE = ("certstream.core.slottable", "certstream.core.ratelimit")


@pytest.mark.slow
def test_the_master_imports_no_twin_and_no_worker_stack(tmp_path: Path) -> None:
    code = (f"HEAVY = {_HEAVY!r}\nCORE = {_CORE!r}\nSHELL = {_SHELL!r}\n"
            f"MASTER_CORE = {_MASTER_CORE!r}\n" + _MASTER_IMPORTS)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True, timeout=60, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items()
                              if not k.startswith("CERTSTREAM_")}).stdout.split()
    assert out == []


def _libraries_mapped(pid: int) -> set[str]:
    """The packages among ``_HEAVY`` whose shared objects process ``pid`` has mapped (gevent,
    greenlet and cryptography are C extensions; h11, wsproto and prometheus_client are pure
    Python and are checked by the import test above)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name for name in _HEAVY if f"/site-packages/{name}/" in maps}


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
        assert _libraries_mapped(worker) >= {"gevent", "greenlet"}  # the check can see them
        assert _twins_mapped(srv.proc.pid) == set()  # the gunicorn master
        assert _libraries_mapped(srv.proc.pid) == set()


# The ingest's and the worker's stacks without cryptography (~9 MiB a process) until a key is
# used: a server whose logs have no known key never loads it.
_LAZY_CRYPTOGRAPHY = """
import sys
import certstream.shell.ingest, certstream.shell.worker, certstream.shell.single
import certstream.shell.follow_rfc6962, certstream.shell.follow_static, certstream.shell.logselect
before = sorted(m for m in sys.modules if m.partition(".")[0] == "cryptography")
from certstream.core.sth import SignatureError, verify_digitally_signed
try:
    verify_digitally_signed(b"signed", b"\\x04\\x03\\x00\\x00", b"not a key")
except SignatureError:
    pass
print(len(before), "cryptography" in sys.modules)
"""


@pytest.mark.slow
def test_cryptography_is_loaded_only_when_a_key_is_used(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _LAZY_CRYPTOGRAPHY], capture_output=True,
                         text=True, check=True, timeout=60, cwd=tmp_path).stdout.split()
    assert out == ["0", "True"]
