"""Request validation: every malformed body is a 400 with a message that names the field."""

from __future__ import annotations

import pytest

from conveyor.runtime.chat_request import Mode, ServerPolicy, parse_request
from conveyor.runtime.decode_policy import LIVE
from conveyor.runtime.errors import BadRequest

PYTHON = {"type": "function", "function": {"name": "python", "parameters": {"type": "object"}}}
SQLITE = {"type": "function", "function": {"name": "sqlite", "parameters": {"type": "object"}}}
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
POLICY = ServerPolicy(hosted_tools={"python": PYTHON, "sqlite": SQLITE}, model_names=("tiny",))
HELLO = [{"role": "user", "content": "hi"}]


def body(**extra):
    return {"model": "tiny", "messages": HELLO, **extra}


def test_no_tools_named_means_every_hosted_tool() -> None:
    chat = parse_request(body(), POLICY)
    assert chat.hosted == {"python", "sqlite"} and not chat.client_tools
    assert [t["function"]["name"] for t in chat.prompt_tools] == ["python", "sqlite"]
    assert chat.mode is Mode.PARTIAL and chat.decoding is LIVE


def test_request_tools_split_into_hosted_and_client() -> None:
    chat = parse_request(body(tools=[PYTHON, WEATHER]), POLICY)
    assert chat.hosted == {"python"} and chat.client_tools == {"weather"}
    assert [t["function"]["name"] for t in chat.prompt_tools] == ["python", "weather"]


def test_per_request_mode_and_content_parts() -> None:
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    chat = parse_request(body(messages=parts, conveyor={"mode": "sequential"}), POLICY)
    assert chat.mode is Mode.SEQUENTIAL and chat.messages[0]["content"] == "ab"


def test_max_rounds_bounds_the_rounds() -> None:
    chat = parse_request(body(conveyor={"max_rounds": 2}), POLICY)
    assert chat.allows_round(1) and not chat.allows_round(2)


def test_tool_choice_none_disables_tools() -> None:
    chat = parse_request(body(tool_choice="none"), POLICY)
    assert not chat.hosted and not chat.prompt_tools and not chat.parse_calls


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "JSON object"),
        ({"model": "tiny"}, "messages: must be a non-empty list"),
        (body(messages=[{"role": "wizard", "content": "x"}]), r"messages\[0\].role"),
        (body(messages=[{"role": "user", "content": 3}]), r"messages\[0\].content"),
        (body(model="gpt-9"), "not served here"),
        (body(n=2), "n: only 1"),
        (body(tools=[{"type": "function"}]), r"tools\[0\]"),
        (body(conveyor={"mode": "eager"}), "conveyor.mode"),
        (body(conveyor={"speed": 1}), "unknown option"),
        (body(conveyor={"tools": ["pythn"]}), "unknown hosted tool"),
        (body(conveyor={"max_rounds": 0}), "max_rounds"),
        (body(max_tokens=0), "max_tokens"),
        (body(temperature=5), "temperature"),
        (body(tool_choice="required"), "tool_choice"),
        (body(seed="x"), "seed"),
    ],
)
def test_malformed_requests_are_refused(bad, message) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_request(bad, POLICY)
