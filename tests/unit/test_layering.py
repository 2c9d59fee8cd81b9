"""The layering checker (tests/support/layering.py) on tiny fake packages, one per rule, and
then on the real source tree.

Each fake package is a clean ``certstream`` in ``tmp_path`` with one file changed; the test
asserts that exactly that change is reported, naming the modules involved. The clean package
itself passes, though it holds what must not be mistaken for a violation: cimports, an import
in a docstring of a Cython file, clock reads in the shell, time conversions in the core.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tests.support.data import ROOT
from tests.support.layering import LAYERS, Violation, check, layer_of

CLEAN: dict[str, str] = {
    "__init__.py": "from certstream.errors import DecodeError\n",
    "__main__.py": "from certstream.cli import main\n\nmain()\n",
    "_version.py": "VERSION = '0'\n",
    "errors.py": "from certstream._version import VERSION\n\n\nclass DecodeError(Exception):\n"
                 "    pass\n",
    "cli.py": "from certstream.shell import hub\n\n\ndef main() -> None:\n    hub.run()\n",
    "config.py": "import os\n\nfrom certstream.core import leaves\n",
    "core/__init__.py": "",
    "core/model.py": "from dataclasses import dataclass\n\n"
                     "from certstream.errors import DecodeError\n",
    "core/streams.py": "LITE, FULL = 1, 2\n",
    "core/leaves.py": """\
        import time
        from datetime import datetime, timezone
        from typing import TYPE_CHECKING

        from certstream._fast import NO_EXTENSIONS
        from certstream.core import model
        from certstream.core.streams import LITE

        if TYPE_CHECKING or NO_EXTENSIONS:
            from certstream._fast._leaf_py import decode
        else:
            from certstream._fast._leaf import decode


        def stamp(seconds: float) -> str:
            # Conversions of a time passed in are no clock reads.
            return time.strftime("%Y", time.gmtime(seconds)) + str(
                datetime.fromtimestamp(seconds, timezone.utc))
        """,
    "_fast/__init__.py": "import os\n\nNO_EXTENSIONS = bool(os.environ.get('NO_EXT'))\n",
    "_fast/_leaf_py.py": "from certstream.core.model import dataclass\n\n\ndef decode(): ...\n",
    "_fast/_leaf.pyx": '''\
        # cython: language_level=3
        """The compiled twin. A docstring line that reads like an import is none:
        from certstream.shell import hub
        """
        from libc.string cimport memcpy
        from cpython.bytes cimport (
            PyBytes_AS_STRING,
            PyBytes_GET_SIZE,
        )
        cimport cython

        from certstream.core.model import (  # the shared types, from below
            dataclass,
        )
        from certstream._fast._leaf_py import \\
            decode as _decode_py

        cdef int decode(int x):
            return x
        ''',
    "shell/__init__.py": "",
    "shell/hub.py": """\
        import socket
        import time

        import gevent

        from certstream.config import leaves
        from certstream.core.streams import FULL

        STARTED = time.monotonic()  # the shell may read clocks


        def run() -> None:
            gevent.sleep(0)
        """,
}


def make_package(root: Path, changes: dict[str, str | None] | None = None) -> Path:
    """The clean fake package under ``root``, with ``changes`` (path -> text, None to
    delete) applied; returns the package directory."""
    files: dict[str, str | None] = {**CLEAN, **(changes or {})}
    package = root / "certstream"
    for name, text in files.items():
        if text is None:
            continue
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return package


def violations(tmp_path: Path, changes: dict[str, str | None]) -> list[Violation]:
    return check(make_package(tmp_path, changes))


def only(found: list[Violation], rule: str) -> list[tuple[str, ...]]:
    """The modules of each violation of ``rule``, after checking there is no other rule."""
    assert {v.rule for v in found} == {rule}, "\n".join(map(str, found))
    return [v.modules for v in found]


def test_the_clean_fake_package_passes(tmp_path: Path) -> None:
    assert check(make_package(tmp_path)) == []


def test_layers_are_matched_by_the_most_specific_name() -> None:
    names = {layer.name: i for i, layer in enumerate(LAYERS)}
    assert layer_of("certstream.errors") == (names["base"], LAYERS[names["base"]])
    assert layer_of("certstream.core.model") == (names["core floor"], LAYERS[names["core floor"]])
    assert layer_of("certstream.core.model.sub") == (names["core floor"],
                                                     LAYERS[names["core floor"]])
    assert layer_of("certstream.core.leaves") == (names["core"], LAYERS[names["core"]])
    assert layer_of("certstream.core") == (names["core"], LAYERS[names["core"]])
    assert layer_of("certstream._fast._der") == (names["_fast"], LAYERS[names["_fast"]])
    assert layer_of("certstream") == (names["entry points"], LAYERS[names["entry points"]])
    assert layer_of("certstream.corex") is None
    assert layer_of("certstream.newmodule") is None


# -- an import from a lower layer to a higher one ---------------------------------------------


@pytest.mark.parametrize(("path", "text", "pair"), [
    ("core/model.py", "from certstream.core import leaves\n",
     ("certstream.core.model", "certstream.core.leaves")),
    ("core/model.py", "from . import leaves\n",  # relative
     ("certstream.core.model", "certstream.core.leaves")),
    ("errors.py", "import certstream.cli\n", ("certstream.errors", "certstream.cli")),
    ("config.py", "from certstream import __version__\n", ("certstream.config", "certstream")),
    ("shell/hub.py", "def run() -> None:\n    from certstream.cli import main\n",  # in a function
     ("certstream.shell.hub", "certstream.cli")),
    ("config.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
     "    from certstream.shell.hub import run\n", ("certstream.config", "certstream.shell.hub")),
    ("config.py", "import importlib\n\nHUB = importlib.import_module('certstream.shell.hub')\n",
     ("certstream.config", "certstream.shell.hub")),
    ("_fast/_leaf.pyx", "from libc.string cimport memcpy\nfrom certstream.core import (\n"
     "    leaves,\n)\n", ("certstream._fast._leaf", "certstream.core.leaves")),
], ids=["floor-to-core", "relative", "base-to-cli", "config-to-package", "in-function",
        "type-checking", "import_module", "pyx"])
def test_an_import_to_a_higher_layer_is_reported(
    tmp_path: Path, path: str, text: str, pair: tuple[str, str]
) -> None:
    found = violations(tmp_path, {path: text})
    layer = [v.modules for v in found if v.rule == "layer"]
    assert layer == [pair], "\n".join(map(str, found))


def test_a_module_in_no_layer_is_reported(tmp_path: Path) -> None:
    found = violations(tmp_path, {"newmodule.py": "", "corex/__init__.py": "",
                                  "corex/part.py": "from certstream.errors import DecodeError\n"})
    assert sorted(only(found, "unplaced")) == [
        ("certstream.corex",), ("certstream.corex.part",), ("certstream.newmodule",)]


# -- the sans-IO layers import no I/O ----------------------------------------------------------


@pytest.mark.parametrize(("path", "text", "pair"), [
    # The change that left the old sys.modules test green.
    ("core/backoff.py", "import certstream.shell.state\n",
     ("certstream.core.backoff", "certstream.shell.state")),
    ("core/backoff.py", "from certstream import config\n", ("certstream.core.backoff",
                                                             "certstream.config")),
    ("core/leaves.py", "from gevent import sleep\n", ("certstream.core.leaves", "gevent")),
    ("core/leaves.py", "import gevent.socket as gs\n",
     ("certstream.core.leaves", "gevent.socket")),
    ("core/leaves.py", "import socket\n", ("certstream.core.leaves", "socket")),
    ("core/leaves.py", "def f():\n    import ssl\n", ("certstream.core.leaves", "ssl")),
    ("core/leaves.py", "from threading import Lock\n", ("certstream.core.leaves", "threading")),
    ("_fast/_leaf_py.py", "import select\n", ("certstream._fast._leaf_py", "select")),
    ("_fast/__init__.py", "import selectors\n", ("certstream._fast", "selectors")),
    ("errors.py", "import asyncio\n", ("certstream.errors", "asyncio")),
    ("_fast/_leaf.pyx", "import socket\n", ("certstream._fast._leaf", "socket")),
], ids=["shell", "config", "gevent", "gevent.socket", "socket", "ssl-in-function", "threading",
        "select", "selectors", "asyncio", "pyx"])
def test_a_sans_io_module_importing_io_is_reported(
    tmp_path: Path, path: str, text: str, pair: tuple[str, str]
) -> None:
    found = violations(tmp_path, {path: text})
    assert [v.modules for v in found if v.rule == "io"] == [pair], "\n".join(map(str, found))
    # Importing the shell or the config from the core is a layer violation as well.
    assert {v.rule for v in found} <= {"io", "layer"}


def test_cimport_lines_are_not_imports(tmp_path: Path) -> None:
    pyx = "from certstream.shell cimport hub\ncimport certstream.config\nfrom gevent cimport x\n"
    assert violations(tmp_path, {"_fast/_leaf.pyx": pyx}) == []


# -- the sans-IO layers read no clock ----------------------------------------------------------


@pytest.mark.parametrize("text", [
    "import time\n\n\ndef f() -> float:\n    return time.time()\n",
    "import time as t\n\nNOW = t.monotonic()\n",
    "from time import perf_counter as pc\n\n\ndef f() -> float:\n    return pc()\n",
    "from time import process_time\n\nclock = process_time  # a reference is enough\n",
    "import time\n\n\ndef f(now=time.monotonic_ns):\n    return now()\n",
    "import datetime\n\n\ndef f():\n    return datetime.datetime.now()\n",
    "from datetime import datetime as dt\n\n\ndef f():\n    return dt.utcnow()\n",
    "from datetime import date\n\n\ndef f():\n    return date.today()\n",
    "import importlib\n\nt = importlib.import_module('time')\nNOW = t.time()\n",
    "import time\n\nclock = getattr(time, 'perf_counter')\n",
    "import time\n\nYEAR = time.strftime('%Y')  # formats the current time\n",
    "import time\n\nNOW = time.localtime()\n",
    "from time import *\n",
], ids=["time.time", "alias", "from-alias", "reference", "default-argument", "datetime.now",
        "dt.utcnow", "date.today", "import_module", "getattr", "strftime", "localtime", "star"])
def test_a_sans_io_module_reading_a_clock_is_reported(tmp_path: Path, text: str) -> None:
    found = violations(tmp_path, {"core/model.py": text})
    assert only(found, "clock") and all(m == ("certstream.core.model",)
                                        for m in only(found, "clock"))


@pytest.mark.parametrize("text", ["import time\n", "from libc.time cimport time\n"],
                         ids=["python-import", "cimport"])
def test_a_cython_module_that_can_read_a_clock_is_reported(tmp_path: Path, text: str) -> None:
    found = violations(tmp_path, {"_fast/_leaf.pyx": text})
    assert only(found, "clock") == [("certstream._fast._leaf",)]


# -- no import cycles ---------------------------------------------------------------------------


def test_an_import_cycle_is_reported_with_its_members(tmp_path: Path) -> None:
    found = violations(tmp_path, {
        "shell/a.py": "from certstream.shell import b\n",
        "shell/b.py": "from certstream.shell.c import x\n",
        "shell/c.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                      "    from certstream.shell.a import y\n",
    })
    assert only(found, "cycle") == [("certstream.shell.a", "certstream.shell.b",
                                     "certstream.shell.c")]
    assert "certstream.shell.a -> certstream.shell.b -> certstream.shell.c -> " \
           "certstream.shell.a" in found[0].message


def test_a_package_and_its_module_importing_each_other_is_a_cycle(tmp_path: Path) -> None:
    found = violations(tmp_path, {
        "shell/__init__.py": "from certstream.shell.hub import run\n",
        "shell/hub.py": "from certstream.shell import ANSWER\n\n\ndef run() -> None: ...\n",
    })
    assert only(found, "cycle") == [("certstream.shell", "certstream.shell.hub")]


# -- _fast imports nothing that imports _fast ---------------------------------------------------


def test_fast_importing_a_module_that_imports_fast_is_reported(tmp_path: Path) -> None:
    found = violations(tmp_path, {
        # the floor reaches _fast through another floor module
        "core/model.py": "from certstream.core.streams import LITE\n",
        "core/streams.py": "from certstream._fast import NO_EXTENSIONS\nLITE = 1\n",
    })
    fast = [v for v in found if v.rule == "fast-cycle"]
    assert [v.modules for v in fast] == [("certstream._fast._leaf", "certstream.core.model"),
                                         ("certstream._fast._leaf_py", "certstream.core.model")]
    assert "certstream.core.model -> certstream.core.streams -> certstream._fast" \
        in fast[0].message
    # The floor importing _fast is also an import up a layer; nothing else is reported.
    assert {v.rule for v in found} == {"fast-cycle", "layer"}
    assert [v.modules for v in found if v.rule == "layer"] == [
        ("certstream.core.streams", "certstream._fast")]


# -- the real tree ------------------------------------------------------------------------------


def test_the_source_tree_keeps_its_layers() -> None:
    found = check(ROOT / "src" / "certstream")
    assert not found, "\n".join(map(str, found))
