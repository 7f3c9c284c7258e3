"""What a running request tells its client as it happens (streamed as SSE chunks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ContentDelta:
    """Assistant text outside tool calls."""

    text: str


@dataclass(frozen=True, slots=True)
class ClientCallDelta:
    """A call of a client-side tool, streamed as OpenAI ``delta.tool_calls`` pieces."""

    index: int
    call_id: str | None  # set on the first piece only, with the name
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class HostedCallWritten:
    """The model finished writing a call that the server runs itself."""

    round: int
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A server-side call's result, as the model will read it."""

    round: int
    call_id: str
    name: str
    content: str
    outcome: str  # ok, error, rejected, cancelled


Event = ContentDelta | ClientCallDelta | HostedCallWritten | ToolResult
