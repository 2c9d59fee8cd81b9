"""The line that says whether the compiled extensions are in use."""

from __future__ import annotations

from types import ModuleType

import pytest

from certstream import _fast, buildinfo


def test_all_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(name: str) -> ModuleType:
        _fast.COMPILED[name] = True
        return ModuleType(name)

    monkeypatch.setattr(_fast, "load", load)
    monkeypatch.setattr(_fast, "COMPILED", {})
    n = len(_fast.MODULES)
    assert buildinfo.extensions_line() == f"compiled extensions: in use ({n} of {n})"


def test_a_silent_fallback_names_the_missing_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(name: str) -> ModuleType:
        _fast.COMPILED[name] = name not in ("_der", "_json")
        return ModuleType(name)

    monkeypatch.setattr(_fast, "load", load)
    monkeypatch.setattr(_fast, "COMPILED", {})
    monkeypatch.setattr(_fast, "NO_EXTENSIONS", False)
    line = buildinfo.extensions_line()
    n = len(_fast.MODULES)
    assert line.startswith(
        f"compiled extensions: NOT in use for _der, _json ({n - 2} of {n} compiled)")
    assert buildinfo.extension_status() == {
        "_der": False, "_leaf": True, "_dedup": True, "_frames": True, "_json": False,
        "_heap": True}


def test_switched_off_on_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(name: str) -> ModuleType:
        _fast.COMPILED[name] = False
        return ModuleType(name)

    monkeypatch.setattr(_fast, "load", load)
    monkeypatch.setattr(_fast, "COMPILED", {})
    monkeypatch.setattr(_fast, "NO_EXTENSIONS", True)
    assert "off, pure-Python twins in use" in buildinfo.extensions_line()


def test_this_build_reports_what_really_loaded() -> None:
    status = buildinfo.extension_status()
    assert set(status) == set(_fast.MODULES)
    if _fast.NO_EXTENSIONS:
        assert not any(status.values())
    else:  # make builds the extensions (CERTSTREAM_REQUIRE_EXTENSIONS)
        assert all(status.values()), buildinfo.extensions_line()
