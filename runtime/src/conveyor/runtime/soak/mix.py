"""The soak's traffic mix: each kind of request, and the answer it must get. Pure.

A kind builds one request body and checks what came back. Hosted tool calls are replayed
(``conveyor.replay``, the server needs ``--allow-replay``) in the hermes ``<tool_call>`` format,
so a random model makes exactly the calls the mix checks. ``check`` returns None when the
answer is what the kind expects, else what is wrong with it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Body = dict[str, Any] | bytes  # bytes: sent as-is (a malformed body)


@dataclass(frozen=True)
class Answer:
    """What one request got: an HTTP status with a JSON body, or a whole SSE stream."""

    status: int
    body: dict[str, Any] | None = None
    chunks: tuple[dict[str, Any], ...] = ()  # streamed: every ``data:`` object before [DONE]


@dataclass(frozen=True)
class Kind:
    name: str
    weight: float
    build: Callable[[random.Random], Body]
    check: Callable[[Answer], str | None]
    stream: bool = False
    disconnect: bool = False  # the client hangs up mid-stream on purpose
    tool: str | None = None  # the hosted tool it needs


def tool_call(name: str, arguments: dict[str, Any]) -> str:
    """A hermes-format tool call, as the model would write it."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def _chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], **extra}


def _replayed(turns: list[str], **extra: Any) -> dict[str, Any]:
    return _chat("go", conveyor={"replay": turns}, **extra)


def _tool_messages(answer: Answer) -> list[dict[str, Any]]:
    messages = ((answer.body or {}).get("conveyor") or {}).get("messages") or []
    return [m for m in messages if m.get("role") == "tool"]


def _choice(answer: Answer) -> dict[str, Any] | str:
    """The one choice of a 200 answer, or what is wrong with the answer."""
    if answer.status != 200 or answer.body is None:
        return f"HTTP {answer.status}"
    choices = answer.body.get("choices") or []
    if len(choices) != 1 or "message" not in choices[0]:
        return "no choice in the response"
    choice: dict[str, Any] = choices[0]
    return choice


def _tool_result(expect: Callable[[str], bool], what: str) -> Callable[[Answer], str | None]:
    """A replayed hosted call whose single tool message must satisfy ``expect``."""

    def check(answer: Answer) -> str | None:
        choice = _choice(answer)
        if isinstance(choice, str):
            return choice
        tools = _tool_messages(answer)
        if len(tools) != 1:
            return f"{len(tools)} tool messages, expected 1"
        content = str(tools[0].get("content", ""))
        if not expect(content):
            return f"tool result is not {what}: {content[:200]!r}"
        if choice["message"].get("content") != "done":
            return "the final round is not the replayed text"
        return None

    return check


def _plain_check(answer: Answer) -> str | None:
    choice = _choice(answer)
    if isinstance(choice, str):
        return choice
    finish = choice.get("finish_reason")
    return None if finish in ("stop", "length") else f"finish_reason {finish!r}"


def _streamed_check(answer: Answer) -> str | None:
    if answer.status != 200:
        return f"HTTP {answer.status}"
    errors = [c for c in answer.chunks if "error" in c]
    if errors:
        return f"error in the stream: {errors[0]['error']}"
    finishes = [
        choice.get("finish_reason")
        for chunk in answer.chunks
        for choice in chunk.get("choices") or []
        if choice.get("finish_reason")
    ]
    if finishes not in (["stop"], ["length"]):
        return f"finish reasons {finishes}"
    if not any(chunk.get("usage") for chunk in answer.chunks):
        return "no usage chunk"
    return None


def _client_tool_check(answer: Answer) -> str | None:
    choice = _choice(answer)
    if isinstance(choice, str):
        return choice
    calls = choice["message"].get("tool_calls") or []
    if choice.get("finish_reason") != "tool_calls" or len(calls) != 1:
        return f"finish_reason {choice.get('finish_reason')!r} with {len(calls)} tool calls"
    function = calls[0].get("function") or {}
    if function.get("name") != "get_weather" or json.loads(function["arguments"]) != {
        "city": "Lisbon"
    }:
        return f"unexpected client call {function}"
    return None


def _client_error(answer: Answer) -> str | None:
    """A malformed request: a 400 with an OpenAI error body, never a 5xx or a 200."""
    error = (answer.body or {}).get("error")
    if answer.status != 400 or not isinstance(error, dict) or not error.get("message"):
        return f"HTTP {answer.status} {answer.body}"
    return None


_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

_MALFORMED: list[Body] = [
    b'{"messages": [',
    b"\xff\xfe not json",
    {"messages": []},
    {"messages": [{"role": "robot", "content": "hi"}]},
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": "ten"},
    {"messages": [{"role": "user", "content": "hi"}], "conveyor": {"replay": "not a list"}},
    {"messages": [{"role": "user", "content": "hi"}], "conveyor": {"warp": 9}},
    {"messages": [{"role": "user", "content": "hi"}], "tool_choice": "sometimes"},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]},
    {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"},
]


# Replayed texts vary over a few values only: the engine compiles each forced text's grammar once
# and caches it (vLLM's xgrammar cache, up to 512 MB), so endless distinct texts would grow the
# engine's memory until that cache is full, which a soak would mistake for a leak.
_PADDING = (1500, 2000, 2500, 3000)
_SLEEPS = (0.5, 1.0, 2.0, 3.0)


def _early_abort(rng: random.Random) -> Body:
    # The validated calculator refuses a number where the expression string belongs the moment
    # the field closes; the long note after it is never decoded.
    turn = '<tool_call>\n{"name": "calculator", "arguments": {"expression": 12345, "note": "'
    turn += "x" * rng.choice(_PADDING) + '"}}\n</tool_call>'
    return _replayed([turn, "done"])


def _disconnecting(rng: random.Random) -> Body:
    code = f"import time\ntime.sleep({rng.choice(_SLEEPS)})\nprint('late')\n"
    turn = tool_call("python", {"code": code}) + "z" * rng.choice(_PADDING)
    return _replayed([turn, "never seen"], stream=True, stream_options={"include_usage": True})


def _hosted(name: str, arguments: dict[str, Any]) -> Callable[[random.Random], Body]:
    return lambda rng: _replayed([tool_call(name, arguments), "done"])


def kinds() -> list[Kind]:
    """Every kind of request the soak sends, with its share of the traffic."""
    user = "Tell me about conveyor belts."
    return [
        Kind("plain", 2, lambda rng: _chat(user, max_tokens=rng.randint(8, 64)), _plain_check),
        Kind(
            "streamed",
            2,
            lambda rng: _chat(
                user,
                max_tokens=rng.randint(8, 64),
                stream=True,
                stream_options={"include_usage": True},
            ),
            _streamed_check,
            stream=True,
        ),
        Kind(
            "tool:python",
            1,
            _hosted("python", {"code": "x = 6 * 7\nprint(x)\n"}),
            _tool_result(lambda c: c.strip() == "42", "42"),
            tool="python",
        ),
        Kind(
            "tool:calculator",
            1,
            _hosted("calculator", {"expression": "6 * 7"}),
            _tool_result(lambda c: c.strip() == "42", "42"),
            tool="calculator",
        ),
        Kind(
            "tool:sqlite",
            1,
            _hosted("sqlite", {"query": "SELECT 6 * 7 AS answer"}),
            _tool_result(lambda c: "42" in c and not c.startswith("error"), "a row with 42"),
            tool="sqlite",
        ),
        Kind(
            "tool:search",
            1,
            _hosted("search", {"query": "conveyor belt maintenance"}),
            _tool_result(lambda c: c.startswith("1. "), "a list of results"),
            tool="search",
        ),
        Kind(
            "tool:planner",
            1,
            _hosted("planner", {"plan": '$1 = calculator("6 * 7")\n$2 = python("print($1 + 1)")'}),
            _tool_result(lambda c: "$2 = python: 43" in c, "a plan whose step 2 printed 43"),
            tool="planner",
        ),
        Kind(
            "client_tool",
            1,
            lambda rng: _replayed(
                [tool_call("get_weather", {"city": "Lisbon"})], tools=[_WEATHER_TOOL]
            ),
            _client_tool_check,
        ),
        Kind(
            "early_abort",
            1,
            _early_abort,
            _tool_result(lambda c: c.startswith("rejected:"), "a rejection"),
            tool="calculator",
        ),
        Kind(
            "disconnect",
            1,
            _disconnecting,
            _streamed_check,  # should the stream end before the client hangs up
            stream=True,
            disconnect=True,
            tool="python",
        ),
        Kind("malformed", 1, lambda rng: rng.choice(_MALFORMED), _client_error),
        Kind(
            "malformed_call",
            0.5,
            lambda rng: _replayed(
                ['<tool_call>\n{"name": "python", "arguments": {"code": 12\n</tool_call>', "done"]
            ),
            _tool_result(lambda c: c.startswith("error: malformed"), "a malformed-call error"),
        ),
    ]


def body_bytes(body: Body, model: str) -> bytes:
    """The request as sent; JSON bodies name the served model."""
    if isinstance(body, bytes):
        return body
    return json.dumps({"model": model, **body}).encode()
