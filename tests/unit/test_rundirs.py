"""Run directories: named for their maker, and swept when the maker is gone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from certstream.shell import rundirs


def _dead_pid() -> int:
    # Above the kernel's largest pid: no process can have it.
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


def test_private_dirs_are_named_for_their_maker_and_private(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    path = Path(rundirs.private_dir("run"))
    assert path.parent == tmp_path
    assert path.name.startswith(f"certstream-run-{os.getpid()}-")
    assert path.stat().st_mode & 0o777 == 0o700
    with pytest.raises(ValueError, match="kind"):
        rundirs.private_dir("other")


def test_sweep_removes_only_this_users_dirs_of_dead_makers(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = [tmp_path / f"certstream-{kind}-{dead}-abc123" for kind in rundirs.KINDS]
    for path in stale:
        path.mkdir()
        (path / "feed.sock").write_text("")
    keep = [
        tmp_path / f"certstream-run-{os.getpid()}-mine",  # this process's own
        tmp_path / f"certstream-metrics-{os.getppid()}-live",  # a live maker
        tmp_path / "certstream-run-old8xyz",  # the old naming: no maker known
        tmp_path / "certstream-test-12345",  # someone else's kind of directory
        tmp_path / f"certstream-bench-{dead}-x",
    ]
    for path in keep:
        path.mkdir()
    not_a_dir = tmp_path / f"certstream-run-{dead}-file"
    not_a_dir.write_text("")
    other_user = tmp_path / f"certstream-demo-{dead}-theirs"
    if os.getuid() == 0:  # only root can make a directory another user owns
        other_user.mkdir()
        os.chown(other_user, 54321, 54321)
    removed = rundirs.sweep_stale(str(tmp_path))
    assert sorted(removed) == sorted(str(p) for p in stale)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)
    assert not_a_dir.exists()
    if os.getuid() == 0:
        assert other_user.exists()


def test_sweep_of_a_missing_directory_is_a_no_op(tmp_path: Path) -> None:
    assert rundirs.sweep_stale(str(tmp_path / "nope")) == []
