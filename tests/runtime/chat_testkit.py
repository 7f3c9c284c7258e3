"""Helpers for the API tests: scripted tool calls and replayed chat requests."""

from __future__ import annotations

import json
from typing import Any


def call(name: str, arguments: dict[str, Any]) -> str:
    """A hermes-format tool call, as the model would write it."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def chat(client, model: str, replay: list[str], messages=None, conveyor=None, **extra):
    """A chat request whose assistant rounds are replayed through the real engine."""
    return client.chat.completions.create(
        model=model,
        messages=messages or [{"role": "user", "content": "go"}],
        extra_body={"conveyor": {"replay": replay, **(conveyor or {})}},
        **extra,
    )


def tool_messages(response) -> list[dict[str, Any]]:
    """The hosted tools' results the response shows."""
    return [m for m in response.model_extra["conveyor"]["messages"] if m["role"] == "tool"]
