"""The Responses events built from the core's events, checked against the official `openai`
client's own event types and stream accumulator. Pure: no engine, no server."""

from __future__ import annotations

import pydantic
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from conveyor.runtime.calls import Call, CallKind
from conveyor.runtime.chat_request import Mode
from conveyor.runtime.completion import Completion, Timing
from conveyor.runtime.errors import EngineDead
from conveyor.runtime.events import ClientCallDelta, ContentDelta, HostedCallWritten, ToolResult
from conveyor.runtime.responses_stream import ResponseBuilder

EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
TOOL_TIMING = {"call_started": 1.0, "busy": [[1.0, 1.5]]}


def builder() -> ResponseBuilder:
    echo = {"tools": [], "tool_choice": "auto", "parallel_tool_calls": True}
    return ResponseBuilder(id="resp_1", model="tiny", created_at=1, store=True, echo=echo)


def completion(client_calls=(), finish_reason="stop") -> Completion:
    calls = [Call(call_id, "weather", CallKind.CLIENT, 0) for call_id in client_calls]
    tool = {"role": "tool", "tool_call_id": "call_0", "timing": TOOL_TIMING}
    return Completion("", calls, finish_reason, 10, 5, [tool], Timing(), Mode.PARTIAL)


def run(events, done: Completion | None) -> list[dict]:
    build = builder()
    out = build.start()
    for event in events:
        out += build.on(event)
    out += build.finish(done) if done else build.fail(EngineDead("the engine failed"))
    return out


SCRIPT = [
    ContentDelta("Let me "),
    ContentDelta("look."),
    HostedCallWritten(0, "call_0", "files.read", {"path": "a"}),
    ToolResult(0, "call_0", "files.read", "contents", "ok"),
    ToolResult(0, "call_1", "unknown", "error: malformed tool call", "error"),
    ContentDelta("Now "),
    ClientCallDelta(0, "call_2", "weather", ""),
    ClientCallDelta(0, None, None, '{"city": '),
    ClientCallDelta(0, None, None, '"Paris"}'),
]


def test_every_event_is_valid_and_the_client_accumulates_the_final_response() -> None:
    events = run(SCRIPT, completion(client_calls=["call_2"], finish_reason="tool_calls"))
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    state = ResponseStreamState(input_tools=[], text_format=omit)
    for event in events:
        state.handle_event(EVENT.validate_python(event))
    final = state._completed_response
    assert final is not None and final.status == "completed"
    kinds = [(item.type, item.status) for item in final.output]
    assert kinds == [
        ("message", "completed"),
        ("mcp_call", "completed"),
        ("mcp_call", "failed"),
        ("message", "completed"),
        ("function_call", "completed"),
    ]
    message, read, broken, _, call = final.output
    assert message.content[0].text == "Let me look."
    assert (read.server_label, read.name, read.output) == ("files", "read", "contents")
    assert read.model_extra["conveyor"]["timing"] == TOOL_TIMING
    assert broken.error.content == "error: malformed tool call"
    assert (call.call_id, call.arguments) == ("call_2", '{"city": "Paris"}')
    assert final.usage.input_tokens == 10
    assert "decode_seconds" in final.usage.model_extra["conveyor"]


def test_the_stream_of_a_text_answer_has_the_official_order() -> None:
    events = run([ContentDelta("Hi"), ContentDelta(" there")], completion())
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert Response.model_validate(events[-1]["response"]).output_text == "Hi there"


@pytest.mark.parametrize(
    ("done", "status", "last"),
    [
        (completion(), "completed", "response.completed"),
        (completion(finish_reason="length"), "incomplete", "response.incomplete"),
    ],
)
def test_nothing_written_is_one_empty_message(done, status, last) -> None:
    events = run([], done)
    response = Response.model_validate(events[-1]["response"])
    assert events[-1]["type"] == last and response.status == status
    assert response.output_text == "" and len(response.output) == 1


def test_a_failure_mid_stream_ends_with_error_then_response_failed() -> None:
    events = run([ContentDelta("Hi")], None)
    error, failed = events[-2:]
    assert EVENT.validate_python(error).type == "error"
    assert error["message"] == "the engine failed"
    response = EVENT.validate_python(failed).response
    assert response.status == "failed" and response.error.code == "server_error"


def test_the_text_after_a_rounds_results_is_a_message_of_its_own() -> None:
    """A call written first, text while it runs, then the next round's answer to its result."""
    script = [
        HostedCallWritten(0, "call_0", "web.slow", {"query": "lyon"}),
        ContentDelta("While that runs."),
        ToolResult(0, "call_0", "web.slow", "slow:lyon", "ok"),
        ContentDelta("Lyon."),
    ]
    final = Response.model_validate(run(script, completion())[-1]["response"])
    assert [item.type for item in final.output] == ["mcp_call", "message", "message"]
    assert [item.content[0].text for item in final.output[1:]] == ["While that runs.", "Lyon."]
