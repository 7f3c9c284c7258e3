"""OpenAI chat-completion objects: the final response, and the stream's chunks. Pure."""

from __future__ import annotations

from typing import Any

from conveyor.runtime.completion import Completion
from conveyor.runtime.events import (
    ClientCallDelta,
    ContentDelta,
    Event,
    HostedCallWritten,
    ToolResult,
)


def _usage(completion: Completion) -> dict[str, Any]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
        "conveyor": {"mode": completion.mode.value, **completion.timing.as_dict()},
    }


def chat_completion(completion: Completion, *, id: str, model: str, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.content or None}
    if completion.client_calls:
        message["tool_calls"] = [call.as_openai() for call in completion.client_calls]
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": completion.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": _usage(completion),
        "conveyor": {"messages": completion.messages},
    }


class ChunkWriter:
    """Builds the ``chat.completion.chunk`` objects of one streamed response."""

    def __init__(self, *, id: str, model: str, created: int) -> None:
        self._head = {"id": id, "object": "chat.completion.chunk", "created": created}
        self._model = model

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**self._head, "model": self._model, "choices": choices, **extra}

    def _delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return self._chunk([choice])

    def start(self) -> dict[str, Any]:
        return self._delta({"role": "assistant", "content": ""})

    def event(self, event: Event) -> dict[str, Any]:
        if isinstance(event, ContentDelta):
            return self._delta({"content": event.text})
        if isinstance(event, ClientCallDelta):
            piece: dict[str, Any] = {
                "index": event.index,
                "function": {"arguments": event.arguments},
            }
            if event.call_id is not None:
                piece |= {"id": event.call_id, "type": "function"}
                piece["function"]["name"] = event.name
            return self._delta({"tool_calls": [piece]})
        # Server-side tool activity rides in chunks without choices, so clients that do not
        # know Conveyor skip it and never mistake a hosted call for one they must run.
        if isinstance(event, HostedCallWritten):
            info: dict[str, Any] = {
                "event": "tool_call",
                "round": event.round,
                "id": event.call_id,
                "name": event.name,
                "arguments": event.arguments,
            }
        else:
            assert isinstance(event, ToolResult)
            info = {
                "event": "tool_result",
                "round": event.round,
                "id": event.call_id,
                "name": event.name,
                "content": event.content,
                "outcome": event.outcome,
            }
        return self._chunk([], conveyor=info)

    def finish(self, completion: Completion) -> dict[str, Any]:
        return self._delta({}, completion.finish_reason)

    def usage(self, completion: Completion) -> dict[str, Any]:
        return self._chunk([], usage=_usage(completion))
