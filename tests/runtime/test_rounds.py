"""The end of a round, decided from the finished turn alone: no engine, no sidecar, no clock."""

from __future__ import annotations

import pytest

from conveyor.runtime.calls import Call, CallKind, UnitCutter, error_outcome
from conveyor.runtime.decode_policy import LIVE_ROUND
from conveyor.runtime.rounds import Turn, end_round
from conveyor.tools.client import Outcome

DECODE = (100.0, 110.0)


def turn(*calls: Call, text: str = "", finish: str | None = "stop", tokens: int = 40) -> Turn:
    t = Turn(0, "req-0", LIVE_ROUND, UnitCutter({}), text=text, content="Hi.", tokens=tokens)
    t.finish_reason = finish
    t.decode = DECODE
    t.calls = {c.call_id: c for c in calls}
    return t


def hosted(call_id: str, outcome: Outcome, ended_at: float) -> Call:
    call = Call(call_id, "python", CallKind.HOSTED, 0, arguments={"code": "1"})
    call.end(outcome)
    call.ended_at = ended_at
    return call


def result(content: str = "2") -> Outcome:
    return Outcome("result", content, False, timing={"busy": [[101.0, 102.0]]})


def test_a_hosted_result_goes_back_into_the_prompt_for_another_round() -> None:
    t = turn(hosted("c1", result("2"), 112.5), text="<tool_call>...</tool_call>")
    end = end_round(t, budget=1024, next_round_allowed=True)
    assert end.finish_reason is None and not end.client_calls
    assert end.prompt == [
        {"role": "assistant", "content": "<tool_call>...</tool_call>"},
        {"role": "tool", "tool_call_id": "c1", "name": "python", "content": "2"},
    ]
    assistant, tool = end.shown
    assert assistant["tool_calls"][0]["function"] == {
        "name": "python",
        "arguments": '{"code": "1"}',
    }
    assert tool["timing"]["decode_end"] == 110.0 and tool["timing"]["busy"] == [[101.0, 102.0]]
    assert end.exposed_seconds == pytest.approx(2.5)
    assert end.tokens_saved == 0


def test_no_round_past_the_limit_finishes_with_the_turns_reason() -> None:
    end = end_round(turn(hosted("c1", result(), 105.0)), budget=1024, next_round_allowed=False)
    assert end.finish_reason == "stop" and end.prompt == []
    assert len(end.shown) == 2, "the last round's tool results are still shown"
    assert end.exposed_seconds == 0.0, "the result arrived while decoding"


def test_a_client_call_ends_the_request_for_the_client_to_run() -> None:
    call = Call("c2", "weather", CallKind.CLIENT, 0)
    end = end_round(turn(call), budget=1024, next_round_allowed=True)
    assert end.finish_reason == "tool_calls" and end.client_calls == [call]
    assert end.prompt == [] and end.shown == []


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("stop", "stop"), ("length", "length"), ("abort", "stop"), (None, "stop")],
)
def test_a_turn_without_calls_finishes(reason, expected) -> None:
    end = end_round(turn(finish=reason), budget=1024, next_round_allowed=True)
    assert end.finish_reason == expected and end.shown == [] and end.exposed_seconds == 0.0


def test_an_invalid_call_becomes_an_error_result_for_the_model() -> None:
    call = Call("c3", "teleport", CallKind.INVALID, 0)
    call.end(error_outcome("unknown tool 'teleport'"))
    call.ended_at = 130.0  # not a tool's work: it adds no waiting time
    end = end_round(turn(call), budget=1024, next_round_allowed=True)
    assert end.finish_reason is None
    assert end.prompt[1]["content"] == "error: unknown tool 'teleport'"
    assert end.exposed_seconds == 0.0


def test_an_early_abort_saves_what_is_left_of_the_budget() -> None:
    rejecting = hosted("c4", Outcome("reject", "expression: not a string", False), 104.0)
    t = turn(rejecting, finish="abort", tokens=40)
    t.rejected_by = rejecting
    end = end_round(t, budget=300, next_round_allowed=True)
    assert end.tokens_saved == 260
    assert end.prompt[1]["content"] == "rejected: expression: not a string"
    assert end_round(t, budget=30, next_round_allowed=True).tokens_saved == 0
