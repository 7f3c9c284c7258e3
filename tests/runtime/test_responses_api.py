"""`POST /v1/responses` through a real `conveyor serve` (real vLLM, real sidecar, replayed text)
with the official `openai` client: plain, streamed both ways, a hosted tool, a client function
tool continued with `previous_response_id`, the store, the refusals and a disconnect."""

from __future__ import annotations

import httpx
import openai
import pytest
from chat_testkit import SLEEPING_TURN, call, leave_while_python_runs

pytestmark = pytest.mark.engine

WEATHER = {
    "type": "function",
    "name": "weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}
TEXT_EVENTS = [
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


def respond(client, model: str, replay: list[str], **extra):
    conveyor = {"replay": replay, **extra.pop("conveyor", {})}
    return client.responses.create(
        model=model, input=extra.pop("input", "go"), extra_body={"conveyor": conveyor}, **extra
    )


def squeeze(types: list[str]) -> list[str]:
    """The event types with runs of deltas folded into one."""
    return [t for i, t in enumerate(types) if not (t.endswith(".delta") and types[i - 1] == t)]


def test_a_plain_response(client, model) -> None:
    response = respond(client, model, ["Hello there."], instructions="Be brief.")
    assert response.status == "completed" and response.output_text == "Hello there."
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.model_extra["conveyor"]["rounds"] == 1
    assert response.instructions == "Be brief." and response.store is True
    assert client.responses.retrieve(response.id).output_text == "Hello there."


def test_a_hosted_tool_call_and_its_result_are_output_items(client, model) -> None:
    code = "".join(f"v{i} = sum(range({i} * 1000))\n" for i in range(8)) + "print(6 * 7)\n"
    # Named as a function tool, python is the hosted one; weather stays the client's.
    python = {"type": "function", "name": "python", "parameters": {}, "strict": False}
    turns = ["Let me compute. " + call("python", {"code": code}), "42."]
    response = respond(client, model, turns, tools=[python, WEATHER])
    kinds = [item.type for item in response.output]
    assert kinds == ["message", "mcp_call", "message"], kinds
    tool = response.output[1]
    assert (tool.server_label, tool.name, tool.status) == ("conveyor", "python", "completed")
    assert tool.output.strip() == "42" and tool.error is None
    extra = tool.model_extra["conveyor"]
    assert extra["tool"] == "python" and extra["outcome"] == "ok" and extra["timing"]["busy"]
    timing = response.usage.model_extra["conveyor"]
    assert timing["rounds"] == 2 and timing["tool_busy_seconds"] > 0
    assert {"decode_seconds", "overlap_seconds", "exposed_seconds"} <= timing.keys()
    assert response.output_text == "Let me compute. 42."
    # The output goes back as input as it is, or through the store: the same conversation.
    again = [
        {"role": "user", "content": "go"},
        *response.output,
        {"role": "user", "content": "thanks"},
    ]
    sent_back = respond(client, model, ["Welcome."], input=again)
    stored = respond(client, model, ["Welcome."], input="thanks", previous_response_id=response.id)
    assert sent_back.output_text == stored.output_text == "Welcome."
    assert sent_back.usage.input_tokens == stored.usage.input_tokens


def test_the_stream_helper_accumulates_our_events_into_the_response(client, model) -> None:
    with client.responses.stream(
        model=model,
        input="go",
        extra_body={"conveyor": {"replay": ["Hi " + call("python", {"code": "print(2)\n"}), "2"]}},
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert squeeze([e.type for e in events]) == [
        "response.created",
        "response.in_progress",
        *TEXT_EVENTS,
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.output_item.done",
        *TEXT_EVENTS,
        "response.completed",
    ]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.output_text == deltas == "Hi 2"
    assert final.output[1].output.strip() == "2"
    assert final.usage.output_tokens > 0
    assert "overlap_seconds" in final.usage.model_extra["conveyor"]


def test_a_client_function_call_streams_then_continues_with_its_output(client, model) -> None:
    stream = client.responses.create(
        model=model,
        input="weather in Paris?",
        tools=[WEATHER],
        stream=True,
        extra_body={"conveyor": {"replay": [call("weather", {"city": "Paris"})]}},
    )
    events = list(stream)
    assert squeeze([e.type for e in events]) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    first = events[-1].response
    (function_call,) = first.output
    assert function_call.type == "function_call" and function_call.name == "weather"
    assert function_call.arguments == '{"city": "Paris"}'
    answer = [{"type": "function_call_output", "call_id": function_call.call_id, "output": "sun"}]
    second = respond(
        client, model, ["Sunny."], input=answer, tools=[WEATHER], previous_response_id=first.id
    )
    assert second.output_text == "Sunny." and second.previous_response_id == first.id
    # The engine's prompt held the earlier turn: longer than the first prompt and its call.
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    # Alone, the output answers no call: the conversation came from the store.
    with pytest.raises(openai.BadRequestError) as refused:
        respond(client, model, ["x"], input=answer, tools=[WEATHER])
    assert "must answer a call" in refused.value.message


def test_unknown_and_unstored_responses_cannot_be_continued(client, model) -> None:
    unstored = respond(client, model, ["Hi."], store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    for previous in (unstored.id, "resp_unknown"):
        with pytest.raises(openai.BadRequestError) as refused:
            respond(client, model, ["x"], previous_response_id=previous)
        assert refused.value.body["param"] == "previous_response_id"
        assert previous in refused.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"truncation": "auto"}, "truncation"),
        ({"reasoning": {"summary": "auto"}}, "reasoning.summary"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "mcp", "server_label": "files", "server_url": "https://x"}]},
         "tools[0].server_url"),
        ({"tools": [{"type": "mcp", "server_label": "files"}]}, "tools[0].server_label"),
        ({"input": [{"type": "function_call_output", "call_id": 3, "output": "x"}]},
         "input[0].call_id"),
        ({"max_output_tokens": 1 << 20}, "max_output_tokens"),
        ({"unheard_of": 1}, "unheard_of"),
    ],
)  # fmt: skip
def test_what_is_not_supported_is_a_400_naming_the_field(conveyor_server, model, body, param):
    response = httpx.post(
        f"{conveyor_server.base_url}/v1/responses",
        json={"model": model, "input": "hi", **body},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_a_client_disconnect_mid_stream_cancels_engine_and_tools(conveyor_server, model) -> None:
    body = {
        "model": model,
        "input": "go",
        "stream": True,
        "conveyor": {"replay": [SLEEPING_TURN, "never"]},
    }
    leave_while_python_runs(
        conveyor_server.base_url, "/v1/responses", body, "response.mcp_call.in_progress"
    )


def test_a_failure_mid_stream_ends_with_an_error_event_and_response_failed(client, model):
    # A long prompt, then a turn that calls python and writes until the context is full: the
    # second round's prompt cannot fit, which is only known once the first turn has streamed.
    turn = call("python", {"code": "print(1)\n"}) + " z" * 4000
    stream = client.responses.create(
        model=model,
        input=" z" * 1400,
        stream=True,
        extra_body={"conveyor": {"replay": [turn, "x"]}},
    )
    events = list(stream)
    types = [e.type for e in events]
    assert "response.output_text.delta" in types and types[-2:] == ["error", "response.failed"]
    assert events[-2].code == "context_length_exceeded"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "invalid_prompt"
