"""Partial execution, early aborts and everything that can go wrong with a tool call, through
a real `conveyor serve` (real vLLM, real sidecar), with the official `openai` client."""

from __future__ import annotations

import time

import httpx
import pytest
from chat_testkit import SLEEPING_TURN, call, chat, leave_while_python_runs, tool_messages
from process_testkit import metric

pytestmark = pytest.mark.engine

# Each statement does a little work, so the first runs while later lines are still decoded; 48
# of them take over a second to decode here, more than a sidecar needs to answer on a busy machine.
CODE = "".join(f"v{i} = sum(range({i} * 1000))\n" for i in range(48)) + "print(v47)\n"
DESIGN_METRICS = [
    "conveyor_request_duration_seconds",
    "conveyor_tool_calls_total",
    "conveyor_tool_execution_seconds",
    "conveyor_tool_overlap_seconds",
    "conveyor_tool_exposed_seconds",
    "conveyor_tool_units_total",
    "conveyor_early_aborts_total",
    "conveyor_decode_tokens_saved_total",
]


@pytest.mark.parametrize("mode", ["partial", "sequential"])
def test_partial_starts_the_tool_while_the_call_is_written(client, model, mode) -> None:
    response = chat(client, model, [call("python", {"code": CODE}), "ok"], conveyor={"mode": mode})
    (tool,) = tool_messages(response)
    timing = tool["timing"]
    assert tool["content"].strip() == str(sum(range(47000)))
    first_busy = timing["busy"][0][0]
    if mode == "partial":
        assert first_busy < timing["call_complete"], (
            f"statement 1 ran after the call was written: {timing}"
        )
        assert response.usage.model_extra["conveyor"]["overlap_seconds"] > 0
    else:
        assert first_busy >= timing["call_complete"], "sequential waits for the whole call"
    assert response.usage.model_extra["conveyor"]["mode"] == mode


def test_a_rejected_field_aborts_decoding_early(client, model) -> None:
    # calculator runs with schema validation: a number where a string belongs is refused at once.
    padding = "x" * 3000
    turn = '<tool_call>\n{"name": "calculator", "arguments": {"expression": 12345, "note": "'
    turn += padding + '"}}\n</tool_call>'
    response = chat(client, model, [turn, "Sorry."])
    usage = response.usage.model_extra["conveyor"]
    (tool,) = tool_messages(response)
    assert usage["early_aborts"] == 1 and usage["tokens_saved"] > 0, (usage, tool)
    assert tool["content"].startswith("rejected:") and "expression" in tool["content"]
    # The whole turn would take thousands of tokens; far fewer were decoded (the margin allows
    # for a worker that must boot before it can reject).
    assert response.usage.completion_tokens < len(padding) / 2
    assert response.choices[0].message.content == "Sorry."


def test_python_calls_of_one_request_share_their_names(client, model) -> None:
    """One tool session per request: a later python call sees what an earlier one defined."""
    first = call("python", {"code": "x = 41\n"})
    second = call("python", {"code": "print(x + 1)\n"})
    response = chat(client, model, [first, second, "ok"])
    assert [m["content"].strip() for m in tool_messages(response)] == ["", "42"]
    # Another request is another session: nothing of the first is left.
    response = chat(client, model, [call("python", {"code": "print('x' in globals())\n"}), "ok"])
    assert [m["content"].strip() for m in tool_messages(response)] == ["False"]


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        ('<tool_call>\n{"name": "python", "arguments": {"code": 12\n</tool_call>', "malformed"),
        (call("teleport", {"to": "Mars"}), "unknown tool 'teleport'"),
        (call("python", {"code": "1 / 0\n"}), "ZeroDivisionError"),
        (call("sqlite", {"query": "DROP TABLE orders"}), "error"),
    ],
    ids=["malformed", "unknown-tool", "tool-raises", "read-only-db"],
)
def test_bad_calls_become_error_results_for_the_model(client, model, turn, expected) -> None:
    response = chat(client, model, [turn, "Recovered."])
    (tool,) = tool_messages(response)
    assert expected in tool["content"]
    assert response.choices[0].message.content == "Recovered."


def test_a_client_disconnect_cancels_engine_and_tools(conveyor_server, model) -> None:
    base = conveyor_server.base_url
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
        "conveyor": {"replay": [SLEEPING_TURN, "never"]},
    }
    leave_while_python_runs(base, "/v1/chat/completions", body, '"event":"tool_call"')
    assert metric(base, "conveyor_tool_calls_total", tool="python", outcome="cancelled") >= 1


def test_metrics_hold_every_designmetric(conveyor_server, client, model) -> None:
    chat(client, model, [call("python", {"code": "print(1)\n"}), "ok"])
    text = httpx.get(f"{conveyor_server.base_url}/metrics").text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    for name in DESIGN_METRICS:
        assert any(n == name or n.startswith(name + "_") for n in names), name
    assert any(n.startswith("vllm:") for n in names)
    assert any(n.startswith("conveyor_sidecar_") for n in names)


def test_a_sidecar_that_goes_away_gives_error_results_then_comes_back(
    conveyor_server, client, model
) -> None:
    base = conveyor_server.base_url
    conveyor_server.sidecar.stop()
    try:
        assert httpx.get(f"{base}/ready").status_code == 503
        response = chat(client, model, [call("python", {"code": "print(1)\n"}), "Carry on."])
        (tool,) = tool_messages(response)
        assert tool["content"].startswith("error:") and "sidecar" in tool["content"]
        assert response.choices[0].message.content == "Carry on."
    finally:
        conveyor_server.sidecar.start()
    deadline = time.monotonic() + 30  # the runtime's client reconnects with backoff
    while httpx.get(f"{base}/ready").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    response = chat(client, model, [call("python", {"code": "print(2)\n"}), "Back."])
    assert tool_messages(response)[0]["content"].strip() == "2"
