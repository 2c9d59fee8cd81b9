"""Build the optional Cython accelerators in ``certstream._fast``.

Every ``_x.pyx`` has a pure-Python twin ``_x_py.py`` with the same API, so a build without
a compiler still gives a working package.  ``CERTSTREAM_NO_EXTENSIONS=1`` skips the build;
``CERTSTREAM_REQUIRE_EXTENSIONS=1`` (set by ``make``) turns a failed build into an error
instead of a silent fallback.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import Extension, setup

NO_EXTENSIONS = bool(os.environ.get("CERTSTREAM_NO_EXTENSIONS"))
REQUIRE = bool(os.environ.get("CERTSTREAM_REQUIRE_EXTENSIONS"))

FAST = Path("src/certstream/_fast")


def extensions() -> list[Extension]:
    if NO_EXTENSIONS:
        return []
    from Cython.Build import cythonize

    exts = [
        Extension(
            f"certstream._fast.{pyx.stem}",
            [str(pyx)],
            extra_compile_args=["-O2"],
            optional=not REQUIRE,
        )
        for pyx in sorted(FAST.glob("*.pyx"))
    ]
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={"embedsignature": True, "boundscheck": False, "wraparound": False},
    )


setup(ext_modules=extensions())
