"""Shared handling of JSON-field units for the built-in tools."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from conveyor.tools.units import Field, Path, Unit, Whole


def top_level_fields(unit: Unit) -> Iterator[tuple[str, Any]]:
    """``(name, value)`` of each top-level argument a unit completes (a ``Whole`` gives all)."""
    if isinstance(unit, Field) and len(unit.path) == 1 and isinstance(unit.path[0], str):
        yield unit.path[0], unit.value
    elif isinstance(unit, Whole):
        yield from unit.arguments.items()


def scalar_leaves(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """The scalar leaves of a JSON value with their paths, in document order."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from scalar_leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from scalar_leaves(v, (*path, i))
    else:
        yield path, value
