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


def conveyor_usage(completions: list[Completion]) -> dict[str, Any]:
    """Conveyor's timing, summed over the choices (logs concatenated): ``usage.conveyor``."""
    timing: dict[str, Any] = {}
    for completion in completions:
        for key, value in completion.timing.as_dict().items():
            if isinstance(value, list):
                timing[key] = [*timing.get(key, []), *value]
            else:
                timing[key] = round(timing.get(key, 0) + value, 6)
    return {"mode": completions[0].mode.value, **timing}


def _usage(completions: list[Completion]) -> dict[str, Any]:
    prompt = sum(c.prompt_tokens for c in completions)
    generated = sum(c.completion_tokens for c in completions)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": generated,
        "total_tokens": prompt + generated,
        "conveyor": conveyor_usage(completions),
    }


def _logprobs(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return None if entries is None else {"content": entries}


def chat_completion(
    completions: list[Completion], *, id: str, model: str, created: int
) -> dict[str, Any]:
    choices = []
    for index, completion in enumerate(completions):
        # As vLLM's server: empty text is "" in a plain answer, null beside tool calls.
        content = completion.content or None if completion.client_calls else completion.content
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if completion.client_calls:
            message["tool_calls"] = [call.as_openai() for call in completion.client_calls]
        choices.append(
            {
                "index": index,
                "message": message,
                "finish_reason": completion.finish_reason,
                "logprobs": _logprobs(completion.logprobs),
            }
        )
    shown = [c.messages for c in completions]
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": _usage(completions),
        "conveyor": {"messages": shown[0]} if len(shown) == 1 else {"choices": shown},
    }


class ChunkWriter:
    """Builds the ``chat.completion.chunk`` objects of one streamed response."""

    def __init__(self, *, id: str, model: str, created: int) -> None:
        self._head = {"id": id, "object": "chat.completion.chunk", "created": created}
        self._model = model

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**self._head, "model": self._model, "choices": choices, **extra}

    def _delta(
        self,
        index: int,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        logprobs: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        choice = {
            "index": index,
            "delta": delta,
            "finish_reason": finish_reason,
            "logprobs": _logprobs(logprobs),
        }
        return self._chunk([choice])

    def start(self, index: int = 0) -> dict[str, Any]:
        return self._delta(index, {"role": "assistant", "content": ""})

    def event(self, event: Event, index: int = 0) -> dict[str, Any]:
        if isinstance(event, ContentDelta):
            return self._delta(index, {"content": event.text}, logprobs=event.logprobs)
        if isinstance(event, ClientCallDelta):
            piece: dict[str, Any] = {
                "index": event.index,
                "function": {"arguments": event.arguments},
            }
            if event.call_id is not None:
                piece |= {"id": event.call_id, "type": "function"}
                piece["function"]["name"] = event.name
            return self._delta(index, {"tool_calls": [piece]})
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
                "cut_chars": event.cut_chars,
            }
        if index:
            info["choice"] = index
        return self._chunk([], conveyor=info)

    def finish(self, completion: Completion, index: int = 0) -> dict[str, Any]:
        return self._delta(index, {}, completion.finish_reason)

    def usage(self, completions: list[Completion]) -> dict[str, Any]:
        return self._chunk([], usage=_usage(completions))
