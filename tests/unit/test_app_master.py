"""The master's preparation, in-process: the settings and private directories it hands down
to its children, and the options it gives gunicorn (the real processes are
tests/e2e/test_process_model.py)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from certstream.config import Settings, load_settings
from certstream.shell import app


@pytest.fixture
def fresh_master(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("CERTSTREAM_") or key == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(key)
    monkeypatch.setattr(app._Master, "settings", None)
    monkeypatch.setattr(app._Master, "own_dirs", [])
    saved = dict(os.environ)
    yield
    app._remove_own_dirs()
    # prepare_master writes os.environ directly: nothing of it may leak into other tests.
    os.environ.clear()
    os.environ.update(saved)


def test_prepare_master_hands_everything_down(fresh_master: None, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CERTSTREAM_PORT", "9321")
    stale = tmp_path / "prom"
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"old")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(stale))
    s = app.prepare_master()
    assert s.port == 9321
    feed = Path(s.feed_socket)
    assert feed.parent.is_dir() and feed.parent.stat().st_mode & 0o077 == 0
    assert list(stale.iterdir()) == []  # a previous run's values would be summed in
    assert os.environ["CERTSTREAM_MASTER_PID"] == str(os.getpid())
    # What a child process will load, whatever else its environment says.
    monkeypatch.setenv("CERTSTREAM_PORT", "1")
    assert load_settings() == s
    assert app.prepare_master() is s  # idempotent: the CLI and gunicorn.conf.py both call it
    app._remove_own_dirs()
    assert not feed.parent.exists()


def test_gunicorn_options() -> None:
    opts = app.gunicorn_options(Settings(host="::1", port=8443, workers=3, log_level="warn",
                                         tls_cert="c.pem", tls_key="k.pem"))
    assert opts["bind"] == ["[::1]:8443"]
    assert opts["workers"] == 3 and opts["worker_class"] == app.WORKER_CLASS
    assert opts["worker_connections"] >= 10000 and opts["max_requests"] == 0
    assert opts["loglevel"] == "warning"
    assert (opts["certfile"], opts["keyfile"]) == ("c.pem", "k.pem")
    assert opts["when_ready"] is app.when_ready and opts["on_exit"] is app.on_exit
    assert opts["pre_fork"] is app.pre_fork
    assert app.gunicorn_options(Settings())["bind"] == ["0.0.0.0:8080"]
    assert "certfile" not in app.gunicorn_options(Settings())


def test_pre_fork_freezes_what_the_master_holds() -> None:
    # Frozen objects are never walked by a collection, in the master or in the forked worker
    # (whose pages they share): the worker's collections must not copy those pages.
    assert gc.get_freeze_count() == 0
    try:
        app.pre_fork(None, None)
        assert gc.get_freeze_count() > 1000  # this interpreter holds far more than that
    finally:
        gc.unfreeze()


def test_a_worker_accepts_as_many_connections_as_it_may_open_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resource  # noqa: PLC0415 - this test only

    for soft, want in ((1024, 20000), (65536, 65536), (resource.RLIM_INFINITY, 20000)):
        monkeypatch.setattr(resource, "getrlimit", lambda _what, s=soft: (s, s))
        assert app.worker_connections() == want
