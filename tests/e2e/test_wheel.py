"""The wheel works outside the repository, with its compiled extensions.

Both ways a user gets a wheel are built from a copy of exactly what the Dockerfile's build
stage copies: ``python -m build`` (the sdist, then the wheel built from the sdist: the
Dockerfile's own command, read from it) and ``pip wheel .``.  Each wheel must carry every
compiled ``_fast`` module and the demo corpus; each is installed with its declared
dependencies into a fresh venv, and ``certstream`` started there from an empty directory
(log lists off) must answer ``/health`` with the compiled modules in use.

The slow part is the two builds (each compiles five Cython modules); they run side by side,
as do the two installs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import free_port, http_get, wait_until
from tests.support.dockerfile import stages

from certstream._fast import MODULES

ROOT = Path(__file__).resolve().parents[2]
COMPILED_LINE = f"compiled extensions: in use ({len(MODULES)} of {len(MODULES)})"
IGNORE = shutil.ignore_patterns("__pycache__", "*.so", "*.c", "*.egg-info", "build", "dist")


def _clean_env(**extra: str) -> dict[str, str]:
    """No CERTSTREAM_* settings and nothing that points back into the repository."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CERTSTREAM_")
           and k not in ("PROMETHEUS_MULTIPROC_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _source_tree(dest: Path) -> Path:
    """A copy of what the Dockerfile's build stage copies into its build directory."""
    build_stage = stages()[0]
    dest.mkdir()
    for sources, target in build_stage.copies():
        for src in sources:
            to = dest / src if target.endswith("/") or target == "./" else dest / target
            if (ROOT / src).is_dir():
                shutil.copytree(ROOT / src, to, ignore=IGNORE)
            else:
                shutil.copy2(ROOT / src, to)
    return dest


def _start(argv: list[str], cwd: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env=_clean_env(**env))


def _finish(procs: list[subprocess.Popen[bytes]], logs: list[Path], timeout: float) -> None:
    for proc, log in zip(procs, logs, strict=True):
        rc = proc.wait(timeout)
        assert rc == 0, log.read_text()[-4000:]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"sdist": the sdist, "from-sdist": its wheel, "pip-wheel": the wheel of pip wheel .}"""
    tmp = tmp_path_factory.mktemp("wheels")
    build_stage = stages()[0]
    argv = build_stage.run_with("-m build")
    out_flag = argv.index("--outdir")
    dist_a, dist_b = tmp / "dist-build", tmp / "dist-pip"
    argv[out_flag + 1] = str(dist_a)
    argv[0] = sys.executable  # "python": the interpreter that has the build tool
    env = build_stage.env()
    tree_a, tree_b = _source_tree(tmp / "tree-build"), _source_tree(tmp / "tree-pip")
    logs = [tmp / "build.log", tmp / "pip-wheel.log"]
    procs = [
        _start(argv, tree_a, logs[0], **env),
        _start([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist_b), "."],
               tree_b, logs[1], **env),
    ]
    _finish(procs, logs, 900)
    (sdist,) = dist_a.glob("certstream-*.tar.gz")
    (from_sdist,) = dist_a.glob("certstream-*.whl")
    (pip_wheel,) = dist_b.glob("certstream-*.whl")
    return {"sdist": sdist, "from-sdist": from_sdist, "pip-wheel": pip_wheel}


@pytest.fixture(scope="module")
def venvs(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fresh venv per wheel, each wheel installed with its declared dependencies."""
    tmp = tmp_path_factory.mktemp("venvs")
    envs = {name: tmp / name for name in ("from-sdist", "pip-wheel")}
    for path in envs.values():
        # No pip of its own (ensurepip is slow): this pip installs into it.
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                       timeout=120)
    logs = [tmp / f"{name}.log" for name in envs]
    procs = [
        _start([sys.executable, "-m", "pip", "--python", str(path / "bin" / "python"),
                "install", "-q", str(wheels[name])], tmp, log)
        for (name, path), log in zip(envs.items(), logs, strict=True)
    ]
    _finish(procs, logs, 600)
    return envs


@pytest.mark.slow
def test_the_sdist_carries_the_cython_sources_not_generated_c(wheels: dict[str, Path]) -> None:
    with tarfile.open(wheels["sdist"]) as tar:
        names = tar.getnames()
    for module in MODULES:
        assert any(n.endswith(f"src/certstream/_fast/{module}.pyx") for n in names), module
    assert not any(n.endswith((".c", ".so")) for n in names)
    assert any(n.endswith("src/certstream/demo/data/corpus.json.gz") for n in names)
    assert any(n.endswith("/LICENSE") for n in names)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["from-sdist", "pip-wheel"])
def test_each_wheel_carries_every_compiled_module(wheels: dict[str, Path], kind: str) -> None:
    wheel = wheels[kind]
    assert "-none-any" not in wheel.name, f"{wheel.name} is a pure-Python wheel"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    for module in MODULES:
        assert any(n.startswith(f"certstream/_fast/{module}.") and n.endswith(".so")
                   for n in names), f"{kind}: no compiled {module}"
    assert "certstream/demo/data/corpus.json.gz" in names
    assert not any(n.endswith((".c", ".pyx")) for n in names)
    requires = [line.split(":", 1)[1].strip() for line in metadata.decode().splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    names_required = {r.split(">")[0].split("=")[0].split("<")[0].strip().lower()
                      for r in requires}
    assert {"packaging", "gevent", "gunicorn", "cryptography"} <= names_required
    assert "cython" not in names_required and "ujson" not in names_required


@contextlib.contextmanager
def _server(venv: Path, cwd: Path, *args: str) -> Iterator[tuple[int, Path]]:
    port = free_port()
    log = cwd.parent / f"{cwd.name}.log"
    proc = _start([str(venv / "bin" / "certstream"), "--host", "127.0.0.1", "--port",
                   str(port), *args], cwd, log, CERTSTREAM_CT_LOG_LOG_LIST_URLS="",
                  PYTHONUNBUFFERED="1")
    try:
        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(OSError):
                return http_get(port, "/health", timeout=2)[:3:2] == (200, b"OK")
            return False
        assert wait_until(up, 60), log.read_text()
        yield port, log
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["from-sdist", "pip-wheel"])
def test_installed_wheel_serves_health_with_the_compiled_modules(
        venvs: dict[str, Path], kind: str, tmp_path: Path) -> None:
    venv = venvs[kind]
    empty = tmp_path / "empty"
    empty.mkdir()
    version = subprocess.run([str(venv / "bin" / "certstream"), "--version"], cwd=empty,
                             env=_clean_env(), capture_output=True, text=True, timeout=60,
                             check=True).stdout
    assert COMPILED_LINE in version
    probe = ("import certstream, certstream._fast as f\n"
             "mods = [f.load(m) for m in f.MODULES]\n"
             "print(certstream.__file__)\n"
             "print('\\n'.join(getattr(m, '__file__', '') for m in mods))\n")
    files = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=empty,
                           env=_clean_env(), capture_output=True, text=True, timeout=60,
                           check=True).stdout.split()
    assert all(f.startswith(str(venv)) for f in files), files  # the wheel, not the repo
    assert all(f.endswith(".so") for f in files[1:]), files
    with _server(venv, empty) as (_, log):
        pass
    assert COMPILED_LINE in log.read_text()
    assert sorted(os.listdir(empty)) in ([], ["certstream_state.json"])


@pytest.mark.slow
def test_installed_wheel_runs_the_demo(venvs: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with _server(venvs["from-sdist"], empty, "--demo") as (port, _):
        def certificate() -> bool:
            status, _, body = http_get(port, "/example.json")
            return status == 200 and b'"certificate_update"' in body
        assert wait_until(certificate, 30, interval=0.5)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            body = http_get(port, "/health/deep")[2]
            if b'"logs_total":5' in body:
                break
            time.sleep(0.5)
        assert b'"logs_total":5' in body
