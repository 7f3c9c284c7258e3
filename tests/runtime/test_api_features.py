"""OpenAI fields through the tool loop, against the real `conveyor serve`: n choices (streamed),
a forced call of a hosted tool (constrained decoding feeding the same partial-execution path),
and tool results too long for the context, cut to fit."""

from __future__ import annotations

import json

import pytest
from chat_testkit import call, chat, tool_messages

pytestmark = pytest.mark.engine

NO_TOOLS = {"conveyor": {"tools": []}}


def test_n_choices_stream_with_their_own_index(client, model) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=6,
        temperature=1.0,
        seed=3,
        n=2,
        stream=True,
        extra_body=NO_TOOLS,
    )
    texts = {0: "", 1: ""}
    finished = set()
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            if c.finish_reason:
                finished.add(c.index)
    assert finished == {0, 1} and texts[0] != texts[1]
    whole = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=6,
        temperature=1.0,
        seed=3,
        n=2,
        extra_body=NO_TOOLS,
    )
    assert [c.message.content for c in whole.choices] == [texts[0], texts[1]]


def test_each_choice_runs_its_own_tool_loop(client, model) -> None:
    replay = [call("python", {"code": "print(6 * 7)\n"}), "42 it is."]
    response = chat(client, model, replay, n=2)
    assert [c.message.content for c in response.choices] == ["42 it is.", "42 it is."]
    shown = response.model_extra["conveyor"]["choices"]
    assert [[m["content"].strip() for m in s if m["role"] == "tool"] for s in shown] == [
        ["42"],
        ["42"],
    ]
    assert response.usage.model_extra["conveyor"]["rounds"] == 4


def test_forced_call_of_a_hosted_tool_runs_it_while_it_is_written(client, model) -> None:
    response = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "compute"}],
        max_tokens=40,
        temperature=1.0,
        seed=11,
        tool_choice={"type": "function", "function": {"name": "calculator"}},
        extra_body={"conveyor": {"tools": ["calculator"], "max_rounds": 2}},
    )
    first, result = response.model_extra["conveyor"]["messages"][:2]
    (written,) = first["tool_calls"]
    assert written["function"]["name"] == "calculator"
    assert result["role"] == "tool" and result["name"] == "calculator"
    # The sidecar saw the call while the turn was still being decoded.
    assert result["timing"]["call_started"] < result["timing"]["decode_end"]


def test_a_tool_result_too_long_for_the_context_is_cut_to_fit(client, model) -> None:
    replay = [call("python", {"code": "print('ab' * 600000)\n"}), "Done."]
    chunks = list(chat(client, model, replay, stream=True, stream_options={"include_usage": True}))
    events = [c.model_extra["conveyor"] for c in chunks if "conveyor" in (c.model_extra or {})]
    result = next(e for e in events if e["event"] == "tool_result")
    assert result["cut_chars"] > 1_000_000
    assert result["content"].endswith(f"[... {result['cut_chars']} characters cut ...]")
    assert chunks[-1].usage.model_extra["conveyor"]["tool_chars_cut"] == result["cut_chars"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Done."

    whole = chat(client, model, replay)
    (message,) = tool_messages(whole)
    assert "characters cut ...]" in message["content"] and len(message["content"]) < 20_000


def test_logprobs_cover_every_round(client, model) -> None:
    replay = [call("python", {"code": "print(1)\n"}), "One."]
    response = chat(client, model, replay, logprobs=True, top_logprobs=1)
    entries = response.choices[0].logprobs.content
    assert len(entries) == response.usage.completion_tokens
    assert "".join(e.token for e in entries).startswith("<tool_call>")
    assert "One." in "".join(e.token for e in entries)  # the last round too
    assert json.loads(json.dumps([e.model_dump() for e in entries]))  # plain JSON all through
