"""Events of a tool-call stream: what the model wrote, cut into text and tool calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Text:
    """Ordinary content, outside any tool call."""

    text: str


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A tool call's name is known (its arguments may not have begun)."""

    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ArgumentsDelta:
    """More argument text; a call's deltas concatenate to the JSON text of its arguments."""

    call_id: str
    text: str


@dataclass(frozen=True, slots=True)
class CallFinished:
    """The call is complete and well formed."""

    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallMalformed:
    """The call ``call_id`` is malformed or truncated; it will not finish. The stream goes on."""

    call_id: str
    message: str


Event = Text | CallStarted | ArgumentsDelta | CallFinished | CallMalformed
