"""Units: the smallest pieces of a call's input that a tool can act on, and the segmenter shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

PathPart = str | int
Path = tuple[PathPart, ...]


@dataclass(frozen=True, slots=True)
class Field:
    """A scalar JSON value that has closed, at its path (keys are str, array indices int)."""

    path: Path
    value: Any


@dataclass(frozen=True, slots=True)
class FieldDelta:
    """More decoded text of a string value that is still being written."""

    path: Path
    text: str


@dataclass(frozen=True, slots=True)
class Statement:
    """One complete top-level Python statement; ``first_line`` is 1-based within the code."""

    code: str
    first_line: int


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to the output of plan step ``id`` (written ``$id``)."""

    id: int


@dataclass(frozen=True, slots=True)
class Step:
    """One plan step ``$id = tool(args)``.

    ``args`` maps keyword names (str) and positional indices (int) to values; a value may be,
    or contain, a ``Ref``. ``deps`` are the step ids this step needs, in first-use order.
    """

    id: int
    tool: str
    args: dict[str | int, Any]
    deps: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Whole:
    """The complete arguments object, for tools that cannot use pieces."""

    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ParseError:
    """The input cannot be cut into units; nothing more comes from this segmenter."""

    message: str


Unit = Field | FieldDelta | Statement | Step | Whole | ParseError


@runtime_checkable
class Segmenter(Protocol):
    """Cuts a call's argument text into units.

    Every unit is returned by the very ``feed`` whose text completes it; ``close`` returns what
    only the end of input completes (or a ``ParseError`` for truncated input).
    """

    def feed(self, text: str) -> list[Unit]: ...

    def close(self) -> list[Unit]: ...

    def spec(self) -> dict[str, Any]: ...
