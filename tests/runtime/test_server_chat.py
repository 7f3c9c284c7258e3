"""The OpenAI-compatible API with the official `openai` client, against a real `conveyor serve`
(real vLLM on the CPU, real sidecar process). Assistant turns are replayed through the engine."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from chat_testkit import call, chat

pytestmark = pytest.mark.engine

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_plain_chat(client, model) -> None:
    response = chat(client, model, ["Hello, world!"])
    assert response.choices[0].message.content == "Hello, world!"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.completion_tokens > 0
    assert response.usage.model_extra["conveyor"]["rounds"] == 1


def test_plain_chat_streamed(client, model) -> None:
    chunks = list(chat(client, model, ["Streaming {works}."], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Streaming {works}."
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_hosted_python_call_over_two_rounds(client, model) -> None:
    code = "x = 6 * 7\nprint(x)\n"
    response = chat(client, model, [call("python", {"code": code}), "The answer is 42."])
    message = response.choices[0].message
    assert message.content == "The answer is 42."
    assert response.choices[0].finish_reason == "stop"
    shown = response.model_extra["conveyor"]["messages"]
    assert shown[0]["tool_calls"][0]["function"]["name"] == "python"
    assert shown[1]["role"] == "tool" and shown[1]["content"].strip() == "42"
    assert response.usage.model_extra["conveyor"]["rounds"] == 2


def test_hosted_call_events_are_streamed_as_they_happen(client, model) -> None:
    replay = [call("python", {"code": "print('hi')\n"}), "Done."]
    chunks = list(chat(client, model, replay, stream=True, stream_options={"include_usage": True}))
    events = [c.model_extra["conveyor"] for c in chunks if "conveyor" in (c.model_extra or {})]
    assert [e["event"] for e in events] == ["tool_call", "tool_result"]
    assert events[1]["content"].strip() == "hi" and events[1]["outcome"] == "ok"
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    assert chunks[-1].usage.model_extra["conveyor"]["rounds"] == 2


def test_tool_choice_none_returns_calls_as_plain_text(client, model) -> None:
    text = call("python", {"code": "print(1)\n"})
    response = chat(client, model, [text], tool_choice="none")
    assert response.choices[0].message.content == text
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.model_extra["conveyor"]["rounds"] == 1


def test_client_side_tool_round_trip(client, model) -> None:
    first = chat(client, model, [call("weather", {"city": "Paris"})], tools=[WEATHER])
    assert first.choices[0].finish_reason == "tool_calls"
    (tool_call,) = first.choices[0].message.tool_calls
    assert tool_call.function.name == "weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}
    messages = [
        {"role": "user", "content": "weather in Paris?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 21 C"},
    ]
    second = chat(client, model, ["It is sunny."], messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "It is sunny."


def test_client_side_tool_call_streamed(client, model) -> None:
    chunks = list(chat(client, model, [call("weather", {"city": "Oslo"})], tools=[WEATHER],
                       stream=True))  # fmt: skip
    pieces = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert pieces[0].function.name == "weather" and pieces[0].id
    assert json.loads("".join(p.function.arguments for p in pieces)) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_parallel_calls_in_one_turn(client, model, conveyor_server) -> None:
    turn = "\n".join(
        [
            call("sqlite", {"query": "SELECT SUM(total) FROM orders WHERE city = 'Berlin'"}),
            call("calculator", {"expression": "2 ** 10"}),
        ]
    )
    response = chat(client, model, [turn, "Both done."])
    tools = [m for m in response.model_extra["conveyor"]["messages"] if m["role"] == "tool"]
    assert [t["name"] for t in tools] == ["sqlite", "calculator"]
    assert "14.5" in tools[0]["content"] and "1024" in tools[1]["content"]
    # Both ran while the turn was still being decoded: the second call started before the
    # first one's result was needed.
    assert all(t["timing"]["busy"] for t in tools)


def test_many_concurrent_requests_share_the_engine(client, model) -> None:
    def one(i: int) -> str:
        replay = [call("calculator", {"expression": f"{i} * 3"}), f"Result {i}."]
        return chat(client, model, replay).choices[0].message.content

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(8))) == [f"Result {i}." for i in range(8)]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"conveyor": {"tools": ["pythn"]}}, "unknown hosted tool"),
        ({"conveyor": {"mode": "eager"}}, "conveyor.mode"),
        ({"messages": []}, "messages"),
    ],
)
def test_bad_requests_are_openai_errors(client, model, extra, message) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    conveyor = extra.pop("conveyor", None)
    with pytest.raises(openai.BadRequestError, match=message) as error:
        client.chat.completions.create(
            **(body | extra), extra_body={"conveyor": conveyor} if conveyor else None
        )
    assert error.value.status_code == 400
    assert error.value.body["type"] == "invalid_request_error"


def test_malformed_json_body(conveyor_server) -> None:
    response = httpx.post(f"{conveyor_server.base_url}/v1/chat/completions", content=b"{nope")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_probes_and_models(conveyor_server, model) -> None:
    base = conveyor_server.base_url
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    assert httpx.get(f"{base}/ready").json() == {"status": "ready", "unavailable_tools": {}}
    assert httpx.get(f"{base}/v1/models").json()["data"][0]["id"] == model
