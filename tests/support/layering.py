"""The layering of ``src/certstream``, checked from its source: which module may import which.

:func:`check` reads the import statements of every module of a package with ``ast`` (``.py``
files, and the Python-level ``import``/``from ... import`` lines of Cython ``.pyx`` files:
``cimport`` lines are C-level declarations, not imports), wherever they stand: at the top,
under ``if TYPE_CHECKING:``, inside functions. Constant-string ``importlib.import_module`` and
``__import__`` calls count as imports too. It reports, as :class:`Violation`:

* ``layer``: an import from a lower layer of :data:`LAYERS` to a higher one;
* ``unplaced``: a module that no layer names (a new module is placed deliberately);
* ``io``: a sans-IO module (:data:`SANS_IO`) importing the shell, the config, or an I/O
  module (:data:`IO_MODULES`);
* ``clock``: a sans-IO module reading a clock (:data:`CLOCKS`), however the clock function
  was imported or aliased (time is passed in);
* ``cycle``: modules that import each other, directly or around a circle;
* ``fast-cycle``: a ``_fast`` module importing a module that (transitively) imports ``_fast``.

It cannot see imports done by third-party packages at import time, nor names built at run
time (``import_module(f"...")``): ``tests/e2e/test_import_isolation.py`` imports each core
module in a fresh interpreter for that.

``python -m tests.support.layering [src/certstream]`` prints what it finds.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Layer:
    """Modules of one layer: those named in ``packages`` and everything below them, and
    those named in ``modules`` alone."""

    name: str
    packages: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()


#: Bottom to top: a module may import from its own layer and the layers below it, never up.
#: A module belongs to the layer that names it most specifically (``certstream.core.model``
#: is in the core floor although ``certstream.core`` covers the rest of the core).
LAYERS: tuple[Layer, ...] = (
    Layer("base", modules=("certstream._version", "certstream.errors")),
    Layer("core floor", packages=(
        "certstream.core.model",
        "certstream.core.oids",
        "certstream.core.names",
        "certstream.core.jsontext",
        "certstream.core.extformat",
        "certstream.core.signatures",
        "certstream.core.profiles",
        "certstream.core.streams",
        "certstream.core.derread",
        "certstream.core.easyssl",
    )),
    Layer("_fast", packages=("certstream._fast",)),
    Layer("core", packages=("certstream.core", "certstream.buildinfo")),
    Layer("config", packages=("certstream.config",)),
    Layer("shell", packages=("certstream.shell", "certstream.demo")),
    Layer("entry points", packages=("certstream.cli", "certstream.__main__"),
          modules=("certstream",)),
)

#: The layers that do no I/O and read no clock: everything below the config.
SANS_IO = frozenset({"base", "core floor", "_fast", "core"})
#: The layer of the compiled twins and their switch: nothing it imports may import it back.
FAST = "_fast"

#: What a sans-IO module must not import: the package's own I/O layers ...
IO_PACKAGES = ("certstream.shell", "certstream.config")
#: ... and these modules (and their submodules) of the standard library and gevent.
IO_MODULES = frozenset({
    "gevent", "socket", "_socket", "ssl", "_ssl", "threading", "_thread", "select",
    "selectors", "asyncio", "multiprocessing", "subprocess", "concurrent",
})

#: Functions that read a clock, whatever else they do.
CLOCKS = frozenset({
    "time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns", "time.perf_counter",
    "time.perf_counter_ns", "time.process_time", "time.process_time_ns", "time.thread_time",
    "time.thread_time_ns", "time.clock_gettime", "time.clock_gettime_ns",
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today",
    "datetime.date.today",
})
#: Functions that read the clock when called without the time to convert: how many
#: positional arguments they take before the time.
CLOCK_WITHOUT_TIME = {
    "time.localtime": 0, "time.gmtime": 0, "time.ctime": 0, "time.asctime": 0,
    "time.strftime": 1,
}
#: Modules whose Python-level import in a ``.pyx`` counts as a clock read (the Cython
#: source is not parsed, so its calls are not seen), and C headers that read clocks.
CLOCK_MODULES = frozenset({"time", "datetime"})
CLOCK_CIMPORTS = frozenset({"libc.time", "posix.time"})


@dataclass(frozen=True)
class Violation:
    rule: str
    modules: tuple[str, ...]  # the offending modules, the importer first
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


@dataclass(frozen=True)
class Import:
    module: str  # absolute name, as written (resolved against the package for relative ones)
    names: tuple[str, ...]  # for ``from module import names``; () for ``import module``
    line: int


@dataclass
class Module:
    name: str
    path: Path
    imports: list[Import] = field(default_factory=list)
    clock_reads: list[tuple[str, int]] = field(default_factory=list)


# -- reading the source ----------------------------------------------------------------------


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, node.module] if node.module else base)


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[Import]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            if target != "__future__":
                yield Import(target, tuple(a.name for a in node.names), node.lineno)
        elif isinstance(node, ast.Call) and node.args:
            called = _dotted(node.func)
            arg = node.args[0]
            if (called in ("importlib.import_module", "import_module", "__import__")
                    and isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                yield Import(arg.value, (), node.lineno)


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for an attribute chain on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _aliases(tree: ast.AST) -> dict[str, set[str]]:
    """What each local name may stand for, from every import in the module (scopes are not
    told apart: a name bound anywhere counts everywhere, which can only report more)."""
    names: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names.setdefault(alias.asname, set()).add(alias.name)
                else:
                    top = alias.name.split(".")[0]
                    names.setdefault(top, set()).add(top)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                qualified = f"{node.module}.{alias.name}"
                names.setdefault(alias.asname or alias.name, set()).add(qualified)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            # clock = importlib.import_module("time")
            call = node.value
            if (_dotted(call.func) in ("importlib.import_module", "import_module", "__import__")
                    and call.args and isinstance(call.args[0], ast.Constant)
                    and isinstance(call.args[0].value, str)):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        names.setdefault(target.id, set()).add(call.args[0].value)
    return names


def _qualified(dotted: str, aliases: Mapping[str, set[str]]) -> set[str]:
    head, _, rest = dotted.partition(".")
    return {f"{q}.{rest}" if rest else q for q in aliases.get(head, ())}


def _clock_reads(tree: ast.AST) -> Iterator[tuple[str, int]]:
    aliases = _aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in CLOCK_MODULES and any(
                a.name == "*" for a in node.names):
            yield f"from {node.module} import *", node.lineno
        if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
            dotted = _dotted(node)
            if dotted is not None:
                for q in _qualified(dotted, aliases) & CLOCKS:
                    yield q, node.lineno
        if isinstance(node, ast.Call):
            dotted = _dotted(node.func)
            if dotted is not None:
                for q in _qualified(dotted, aliases):
                    if q in CLOCK_WITHOUT_TIME and len(node.args) <= CLOCK_WITHOUT_TIME[q]:
                        yield f"{q}() without a time", node.lineno
            if (_dotted(node.func) == "getattr" and len(node.args) >= 2
                    and isinstance(node.args[0], ast.Name)
                    and isinstance(node.args[1], ast.Constant)
                    and isinstance(node.args[1].value, str)):
                for q in _qualified(f"{node.args[0].id}.{node.args[1].value}", aliases) & CLOCKS:
                    yield q, node.lineno


_PYX_IMPORT = re.compile(r"^\s*(?:import\s|cimport\s|from\s+\S+\s+c?import\b)")
_PYX_CIMPORT = re.compile(r"^\s*(?:cimport\s|from\s+\S+\s+cimport\b)")


def _pyx_statements(text: str) -> Iterator[tuple[str, int]]:
    """The import and cimport statements of a Cython source with their line numbers: whole
    logical lines (parentheses and backslashes joined, comments dropped), outside
    triple-quoted strings."""
    lines = text.splitlines()
    in_string: str | None = None
    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        i += 1
        if in_string is not None:
            if line.count(in_string) % 2:
                in_string = None
            continue
        opened = [q for q in ('"""', "'''") if line.count(q) % 2]
        if opened:
            in_string = opened[0]
            continue
        if not _PYX_IMPORT.match(line):
            continue
        statement = line.split("#", 1)[0].rstrip()
        while i < len(lines) and (statement.count("(") > statement.count(")")
                                  or statement.endswith("\\")):
            statement = statement.rstrip("\\") + " " + lines[i].split("#", 1)[0].strip()
            i += 1
        yield textwrap.dedent(statement), number


def _read_pyx(module: Module, is_package: bool) -> None:
    for statement, line in _pyx_statements(module.path.read_text()):
        if _PYX_CIMPORT.match(statement):
            # A C-level declaration, not an import; it matters only if it reaches a clock.
            python = re.sub(r"\bcimport\b", "import", statement, count=1)
            for imp in _imports(ast.parse(python), module.name, is_package):
                if imp.module in CLOCK_CIMPORTS:
                    module.clock_reads.append((f"cimport of {imp.module}", line))
            continue
        for imp in _imports(ast.parse(statement), module.name, is_package):
            module.imports.append(Import(imp.module, imp.names, line))
            if imp.module.split(".")[0] in CLOCK_MODULES:
                # The Cython source is not parsed, so what it calls is not seen.
                module.clock_reads.append((f"import of {imp.module} in Cython source", line))


def read_package(root: Path) -> dict[str, Module]:
    """Every module of the package in directory ``root``, with its imports resolved."""
    modules: dict[str, Module] = {}
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.pyx")]):
        if "__pycache__" in path.parts:
            continue
        name = _module_name(path, root)
        module = modules.setdefault(name, Module(name, path))
        is_package = path.stem == "__init__"
        if path.suffix == ".pyx":
            _read_pyx(module, is_package)
        else:
            tree = ast.parse(path.read_text(), str(path))
            module.imports.extend(_imports(tree, name, is_package))
            module.clock_reads.extend(_clock_reads(tree))
    return modules


# -- the rules -------------------------------------------------------------------------------


def layer_of(module: str, layers: Iterable[Layer] = LAYERS) -> tuple[int, Layer] | None:
    """The layer that names ``module`` most specifically, with its index (0 at the bottom)."""
    best: tuple[int, int, Layer] | None = None  # (length of the match, index, layer)
    for index, layer in enumerate(layers):
        for name in layer.packages:
            covers = module == name or module.startswith(name + ".")
            if covers and (best is None or len(name) > best[0]):
                best = (len(name), index, layer)
        for name in layer.modules:
            if module == name and (best is None or len(name) > best[0]):
                best = (len(name), index, layer)
    return None if best is None else (best[1], best[2])


def _targets(imp: Import, known: Mapping[str, Module]) -> set[str]:
    """The package's own modules an import loads: ``from a import b`` is module ``a.b`` when
    there is one, else (a name from) ``a``."""
    if not imp.names:
        return {imp.module}
    found = {f"{imp.module}.{n}" for n in imp.names if f"{imp.module}.{n}" in known}
    if len(found) < len(imp.names):
        found.add(imp.module)
    return found


def import_graph(modules: Mapping[str, Module], package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (external modules left out)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, module in modules.items():
        for imp in module.imports:
            if imp.module == package or imp.module.startswith(package + "."):
                graph[name] |= {t for t in _targets(imp, modules) if t != name}
    return graph


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return sorted(out)


def _path(graph: Mapping[str, set[str]], start: str, goal: set[str]) -> list[str] | None:
    """The shortest import chain from ``start`` to a module in ``goal`` (back to ``start``
    itself when it is in ``goal``), or None."""
    previous: dict[str, str | None] = {start: None}
    queue = [start]
    for node in queue:
        for child in sorted(graph.get(node, ())):
            if child in goal:
                chain = [child, node]
                while (back := previous[chain[-1]]) is not None:
                    chain.append(back)
                return chain[::-1]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    return None


def check(root: Path, layers: tuple[Layer, ...] = LAYERS) -> list[Violation]:
    """Every violation of the rules in the package whose directory is ``root``."""
    package = root.name
    modules = read_package(root)
    graph = import_graph(modules, package)
    out: list[Violation] = []
    fast = {name for name in modules if (placed := layer_of(name, layers)) is not None
            and placed[1].name == FAST}

    for name in sorted(modules):
        placed = layer_of(name, layers)
        if placed is None:
            out.append(Violation("unplaced", (name,),
                                 f"{name} is in no layer: place it in LAYERS"))
            continue
        rank, layer = placed
        for target in sorted(graph[name]):
            to = layer_of(target, layers)
            if to is not None and to[0] > rank:
                out.append(Violation(
                    "layer", (name, target),
                    f"{name} ({layer.name}) imports {target} ({to[1].name}), a higher layer"))
        if layer.name not in SANS_IO:
            continue
        for imp in modules[name].imports:
            loaded = {imp.module, *(f"{imp.module}.{n}" for n in imp.names)}
            bad = sorted(m for m in loaded if m.split(".")[0] in IO_MODULES or any(
                m == p or m.startswith(p + ".") for p in IO_PACKAGES))
            if bad:
                out.append(Violation(
                    "io", (name, bad[0]), f"{name} (sans-IO) imports {bad[0]} (line {imp.line})"))
        for what, line in modules[name].clock_reads:
            out.append(Violation("clock", (name,),
                                 f"{name} (sans-IO) reads a clock: {what} (line {line})"))

    for members in _cycles(graph):
        chain = _path(graph, members[0], {members[0]}) or members
        out.append(Violation("cycle", tuple(members), f"import cycle among {', '.join(members)}"
                             f" (one way round: {' -> '.join(chain)})"))

    reaches_fast = {name for name in modules if name not in fast
                    and _path(graph, name, fast) is not None}
    for name in sorted(fast):
        for target in sorted(graph[name] & reaches_fast):
            chain = _path(graph, target, fast) or [target]
            out.append(Violation(
                "fast-cycle", (name, target),
                f"{name} imports {target}, which imports _fast: " + " -> ".join(chain)))
    return out


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "src/certstream")
    violations = check(root)
    for violation in violations:
        print(violation)
    print(f"{len(violations)} violation(s) in {root}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
