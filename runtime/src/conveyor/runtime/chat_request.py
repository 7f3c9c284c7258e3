"""A chat request, validated: what to render, which tools run where, and how to decode.

``parse_request`` is pure: it turns the JSON body into a ``ChatRequest`` or raises
``BadRequest`` with a message for the client. Options under ``conveyor`` that an extension
registered with the server handles (``ServerPolicy.extensions``) become the request's
``DecodePolicy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conveyor.runtime.decode_policy import LIVE, DecodePolicy, RequestExtension
from conveyor.runtime.errors import BadRequest


class Mode(StrEnum):
    PARTIAL = "partial"  # tools act on units while the model writes the call
    SEQUENTIAL = "sequential"  # baseline: a tool starts once its call is complete


@dataclass(frozen=True)
class ServerPolicy:
    """What the server allows; fixed at start."""

    hosted_tools: dict[str, dict[str, Any]]  # name -> OpenAI tool schema
    mode: Mode = Mode.PARTIAL
    max_rounds: int = 8
    max_tokens: int = 1024
    model_names: tuple[str, ...] = ()
    extensions: Mapping[str, RequestExtension] = field(default_factory=dict)  # by option
    # Options an extension would handle that this server did not register: why, for the client.
    refused_options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    prompt_tools: list[dict[str, Any]] | None
    hosted: frozenset[str]
    client_tools: frozenset[str]
    mode: Mode
    max_rounds: int
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stream: bool
    include_usage: bool
    parse_calls: bool = True  # False for tool_choice "none": whatever the model writes is text
    decoding: DecodePolicy = LIVE

    def allows_round(self, index: int) -> bool:
        """Whether round ``index`` (from 0) may run."""
        return index < self.max_rounds and self.decoding.allows(index)


_ROLES = {"system", "developer", "user", "assistant", "tool"}
_CONVEYOR_KEYS = {"mode", "tools", "max_rounds"}


def _content_text(content: Any, where: str) -> str:
    """OpenAI content: a string or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BadRequest(f"{where}: only text content parts are supported")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise BadRequest(f"{where}: content must be a string or a list of text parts")


def _messages(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages: must be a non-empty list")
    messages = []
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise BadRequest(f"{where}: must be an object")
        role = message.get("role")
        if role not in _ROLES:
            raise BadRequest(f"{where}.role: must be one of {', '.join(sorted(_ROLES))}")
        clean: dict[str, Any] = {
            "role": "system" if role == "developer" else role,
            "content": _content_text(message.get("content"), f"{where}.content"),
        }
        if role == "assistant" and message.get("tool_calls"):
            calls = message["tool_calls"]
            if not isinstance(calls, list) or not all(
                isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls
            ):
                raise BadRequest(f"{where}.tool_calls: must be a list of function calls")
            clean["tool_calls"] = calls
        if role == "tool":
            clean["tool_call_id"] = message.get("tool_call_id")
        messages.append(clean)
    return messages


def _tool_names(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise BadRequest("tools: must be a list")
    names = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not name:
            raise BadRequest(f"tools[{i}]: must be {{'type': 'function', 'function': {{name...}}}}")
        names.append(name)
    return names


def _number(body: dict[str, Any], key: str, default: Any, low: float, high: float) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"{key}: must be a number between {low} and {high}")
    return value


def _decoding(options: dict[str, Any], policy: ServerPolicy) -> DecodePolicy:
    """The policy of the one extension option the request uses, if any."""
    used = sorted(
        key for key in options if key in policy.extensions or key in policy.refused_options
    )
    for key in used:
        if key in policy.refused_options:
            raise BadRequest(f"conveyor.{key}: {policy.refused_options[key]}")
    if len(used) > 1:
        raise BadRequest(f"conveyor: the options {', '.join(used)} cannot be combined")
    return policy.extensions[used[0]].parse(options[used[0]]) if used else LIVE


def parse_request(body: Any, policy: ServerPolicy) -> ChatRequest:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if policy.model_names and model not in policy.model_names:
        raise BadRequest(f"model: {model!r} is not served here (try {policy.model_names[0]!r})")
    if body.get("n", 1) != 1:
        raise BadRequest("n: only 1 is supported")
    messages = _messages(body.get("messages"))

    options = body.get("conveyor") or {}
    if not isinstance(options, dict):
        raise BadRequest("conveyor: must be an object")
    unknown = set(options) - _CONVEYOR_KEYS - set(policy.extensions) - set(policy.refused_options)
    if unknown:
        raise BadRequest(f"conveyor: unknown option(s) {', '.join(sorted(unknown))}")
    try:
        mode = Mode(options.get("mode", policy.mode))
    except ValueError:
        raise BadRequest("conveyor.mode: must be 'partial' or 'sequential'") from None
    decoding = _decoding(options, policy)
    max_rounds = options.get("max_rounds", policy.max_rounds)
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise BadRequest("conveyor.max_rounds: must be a positive integer")

    request_tools = _tool_names(body.get("tools"))
    selected = options.get("tools")
    if selected is not None:
        if not isinstance(selected, list) or not all(isinstance(n, str) for n in selected):
            raise BadRequest("conveyor.tools: must be a list of hosted tool names")
        missing = [n for n in selected if n not in policy.hosted_tools]
        if missing:
            known = ", ".join(sorted(policy.hosted_tools)) or "none"
            raise BadRequest(f"conveyor.tools: unknown hosted tool(s) {missing} (hosted: {known})")
        hosted = frozenset(selected)
    elif request_tools:
        hosted = frozenset(n for n in request_tools if n in policy.hosted_tools)
    else:
        hosted = frozenset(policy.hosted_tools)

    tool_choice = body.get("tool_choice", "auto")
    if tool_choice not in ("auto", "none"):
        raise BadRequest("tool_choice: only 'auto' and 'none' are supported")
    client_tools = frozenset(n for n in request_tools if n not in hosted)
    prompt_tools = [t for t in body.get("tools") or [] if t["function"]["name"] in client_tools]
    prompt_tools = [policy.hosted_tools[n] for n in sorted(hosted)] + prompt_tools
    parse_calls = tool_choice != "none"
    if not parse_calls:
        hosted, client_tools, prompt_tools = frozenset(), frozenset(), []

    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = policy.max_tokens
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequest("max_tokens: must be a positive integer")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest("seed: must be an integer")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise BadRequest("stream_options: must be an object")
    return ChatRequest(
        messages=messages,
        prompt_tools=prompt_tools or None,
        hosted=hosted,
        client_tools=client_tools,
        mode=mode,
        max_rounds=max_rounds,
        max_tokens=max_tokens,
        temperature=float(_number(body, "temperature", 0.0, 0, 2)),
        top_p=float(_number(body, "top_p", 1.0, 0.0001, 1)),
        seed=seed,
        stream=bool(body.get("stream", False)),
        include_usage=bool(stream_options.get("include_usage", False)),
        parse_calls=parse_calls,
        decoding=decoding,
    )
