"""What a running request tells its client as it happens (streamed as SSE chunks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ContentDelta:
    """Assistant text outside tool calls, with the logprobs of the tokens decoded since the last
    one when the request asked for them (tokens of tool calls included)."""

    text: str
    logprobs: list[dict[str, Any]] | None = None


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
    cut_chars: int = 0  # characters cut so the result fits the next prompt


Event = ContentDelta | ClientCallDelta | HostedCallWritten | ToolResult
