"""What this installation runs on: whether the compiled ``_fast`` modules are in use.

A wheel built without a compiler, or a build whose extensions failed quietly, still works
on the pure-Python twins, only several times slower.  ``certstream --version`` and the
server's first lines say which it is, so such a build is seen at once.
"""

from __future__ import annotations

from certstream import _fast

__all__ = ["extension_status", "extensions_line"]


def extension_status() -> dict[str, bool]:
    """Accelerated module base name -> whether its compiled twin is the one in use."""
    for name in _fast.MODULES:
        _fast.load(name)
    return {name: _fast.COMPILED[name] for name in _fast.MODULES}


def extensions_line() -> str:
    """One line: ``compiled extensions: in use (6 of 6)``, or what runs instead and why."""
    status = extension_status()
    total = len(status)
    if all(status.values()):
        return f"compiled extensions: in use ({total} of {total})"
    if _fast.NO_EXTENSIONS:
        return ("compiled extensions: off, pure-Python twins in use "
                "(CERTSTREAM_NO_EXTENSIONS is set or the interpreter is not CPython)")
    missing = sorted(name for name, compiled in status.items() if not compiled)
    return (f"compiled extensions: NOT in use for {', '.join(missing)} "
            f"({total - len(missing)} of {total} compiled): this build fell back to the "
            "pure-Python twins, several times slower; reinstall with a C compiler present")
