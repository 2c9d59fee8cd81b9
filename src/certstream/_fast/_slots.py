"""Support for the compiled twins: filling frozen dataclasses without their ``__init__``.

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``, a
Python-level call per field, which costs more than the rest of a leaf decode or a certificate
walk.  The compiled modules fill the slots through their member descriptors' C setter
instead, which gives the same object (same fields, same frozen ``__setattr__``, same
``__eq__``) — but only when every field is a plain slot and nothing else runs at
construction; otherwise they call the constructor.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["slot_setters"]


def slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Any, ...] | None:
    """The member descriptors of ``names`` on ``cls``, or None when the fast path does not
    apply (the fields changed, or the class has a ``__post_init__`` or its own ``__new__``)."""
    if (
        tuple(f.name for f in dataclasses.fields(cls)) != names
        or hasattr(cls, "__post_init__")
        or cls.__new__ is not object.__new__  # type: ignore[comparison-overlap]
    ):
        return None
    descrs = []
    for name in names:
        d = cls.__dict__.get(name)
        if type(d).__name__ != "member_descriptor":
            return None
        descrs.append(d)
    return tuple(descrs)
