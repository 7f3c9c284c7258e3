"""The conversation of a Responses request as items, in one normalized form, and as chat messages.

Input items (messages, ``function_call``, ``function_call_output``, and the ``mcp_call`` items
of an earlier response sent back) and a response's own output items are checked and
normalized by ``item``; ``messages`` turns a conversation of items into the chat messages the
core renders. The response store keeps conversations in this form. Pure.
"""

from __future__ import annotations

import json
from typing import Any

from conveyor.runtime.errors import BadRequest

# Output items of a hosted tool whose name has no server part: ``server_label`` is this.
BUILTIN_LABEL = "conveyor"
_ROLES = ("user", "system", "developer", "assistant")
_TEXT_PARTS = ("input_text", "output_text", "text")

# A conversation item in normalized form: {"type": "message", "role", "content": str},
# {"type": "function_call", "call_id", "name", "arguments": str},
# {"type": "function_call_output", "call_id", "output": str}, or
# {"type": "hosted_call", "call_id", "name", "arguments": str, "output": str}: a call the
# server ran, with its result as the model read it.
Item = dict[str, Any]


def bad(param: str, message: str, code: str | None = None) -> BadRequest:
    return BadRequest(f"{param}: {message}", param=param, code=code)


def unsupported(param: str, why: str) -> BadRequest:
    return bad(param, f"not supported by Conveyor ({why})", "unsupported_parameter")


def string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise bad(param, "must be a string")
    return value


def mapping(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(param, "must be an object")
    return value


def _text(content: Any, param: str) -> str:
    """A message's text: a string, or a list of text parts (joined)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad(param, "must be a string or a list of content parts")
    texts = []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        kind = mapping(part, where).get("type")
        if kind not in _TEXT_PARTS:
            raise unsupported(f"{where}.type", f"{kind!r}: Conveyor serves text models")
        texts.append(string(part.get("text"), f"{where}.text"))
    return "".join(texts)


def _arguments(value: Any, param: str) -> str:
    text = string(value, param)
    try:
        json.loads(text)
    except ValueError:
        raise bad(param, "must be a JSON text (the call's arguments)") from None
    return text


def hosted_name(item: dict[str, Any], param: str) -> str:
    label = string(item.get("server_label"), f"{param}.server_label")
    name = string(item.get("name"), f"{param}.name")
    return name if label == BUILTIN_LABEL else f"{label}.{name}"


def item(raw: Any, param: str) -> Item:
    """One item, normalized; a 400 naming ``param`` (its place) when malformed."""
    fields = mapping(raw, param)
    kind = fields.get("type", "message")
    if kind == "message":
        role = fields.get("role")
        if role not in _ROLES:
            raise bad(f"{param}.role", f"{role!r} is not one of {', '.join(_ROLES)}")
        return {
            "type": "message",
            "role": role,
            "content": _text(fields.get("content"), f"{param}.content"),
        }
    if kind == "function_call":
        return {
            "type": "function_call",
            "call_id": string(fields.get("call_id"), f"{param}.call_id"),
            "name": string(fields.get("name"), f"{param}.name"),
            "arguments": _arguments(fields.get("arguments"), f"{param}.arguments"),
        }
    if kind == "function_call_output":
        return {
            "type": "function_call_output",
            "call_id": string(fields.get("call_id"), f"{param}.call_id"),
            "output": _text(fields.get("output"), f"{param}.output"),
        }
    if kind == "mcp_call":  # a hosted call from an earlier response, sent back as input
        error = fields.get("error")
        output = fields.get("output")
        if output is None and isinstance(error, dict):
            output = error.get("content") or error.get("message")  # as the model read it
        return {
            "type": "hosted_call",
            "call_id": string(fields.get("id"), f"{param}.id"),
            "name": hosted_name(fields, param),
            "arguments": _arguments(fields.get("arguments"), f"{param}.arguments"),
            "output": string(output if output is not None else "", f"{param}.output"),
        }
    raise unsupported(
        f"{param}.type",
        f"{kind!r}: input items are messages, function_call, function_call_output and mcp_call",
    )


def input_items(value: Any) -> list[Item]:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise bad("input", "must be a string or a non-empty list of items")
    return [item(raw, f"input[{i}]") for i, raw in enumerate(value)]


def output_items(output: list[dict[str, Any]]) -> list[Item]:
    """A response's output items in normalized form, for the conversation that continues it."""
    return [item(raw, f"output[{i}]") for i, raw in enumerate(output)]


def messages(items: list[Item]) -> list[dict[str, Any]]:
    """Chat messages for a conversation of items. Calls join the assistant message before them
    (one turn); a hosted call's result follows its turn, as the model read it then."""
    out: list[dict[str, Any]] = []
    turn: dict[str, Any] | None = None
    results: list[dict[str, Any]] = []

    def close() -> None:
        nonlocal turn
        if turn is not None:
            out.append(turn)
            out.extend(results)
            results.clear()
            turn = None

    for item in items:
        kind = item["type"]
        if kind == "message":
            close()
            if item["role"] == "assistant":
                turn = {"role": "assistant", "content": item["content"]}
            else:
                out.append({"role": item["role"], "content": item["content"]})
        elif kind in ("function_call", "hosted_call"):
            if turn is None:
                turn = {"role": "assistant", "content": None}
            function = {"name": item["name"], "arguments": item["arguments"]}
            call = {"id": item["call_id"], "type": "function", "function": function}
            turn.setdefault("tool_calls", []).append(call)
            if kind == "hosted_call":
                results.append(
                    {"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]}
                )
        else:
            close()
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    close()
    return out
