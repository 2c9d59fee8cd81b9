"""Read the repository's Dockerfile: its stages and their instructions.

No Docker daemon runs where the tests do, so the image is never built here; instead the
tests check the Dockerfile's contents, and the wheel test runs the build stage's own steps
(its COPY sources and its ``python -m build`` command, with its ENV) from this reading, so
the two cannot drift apart.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for arg in self.all("ENV"):
            for item in shlex.split(arg):
                key, sep, value = item.partition("=")
                if sep:
                    out[key] = value
        return out

    def copies(self) -> list[tuple[list[str], str]]:
        """``(sources, destination)`` of each COPY from the build context."""
        out = []
        for arg in self.all("COPY"):
            if arg.startswith("--from="):
                continue
            *sources, dest = shlex.split(arg)
            out.append((sources, dest))
        return out

    def run_with(self, needle: str) -> list[str]:
        """The argv of the one RUN whose command contains ``needle``."""
        (cmd,) = [arg for arg in self.all("RUN") if needle in arg]
        return shlex.split(cmd)


def instructions(text: str) -> list[tuple[str, str]]:
    """``(KEYWORD, arguments)`` pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arg = line.partition(" ")
        out.append((keyword.upper(), " ".join(arg.split())))
    return out


def stages(path: Path = DOCKERFILE) -> list[Stage]:
    result: list[Stage] = []
    for keyword, arg in instructions(path.read_text()):
        if keyword == "FROM":
            parts = arg.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            result.append(Stage(parts[0], name))
        elif result:
            result[-1].instructions.append((keyword, arg))
    return result


def exec_form(arg: str) -> list[str]:
    """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD argument."""
    value = json.loads(arg)
    assert isinstance(value, list)
    return [str(v) for v in value]
