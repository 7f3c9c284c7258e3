"""Helpers for the API tests: scripted tool calls and replayed chat requests."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from process_testkit import metric


def call(name: str, arguments: dict[str, Any]) -> str:
    """A hermes-format tool call, as the model would write it."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def chat(client, model: str, replay: list[str], messages=None, conveyor=None, **extra):
    """A chat request whose assistant rounds are replayed through the real engine."""
    return client.chat.completions.create(
        model=model,
        messages=messages or [{"role": "user", "content": "go"}],
        extra_body={"conveyor": {"replay": replay, **(conveyor or {})}},
        **extra,
    )


def tool_messages(response) -> list[dict[str, Any]]:
    """The hosted tools' results the response shows."""
    return [m for m in response.model_extra["conveyor"]["messages"] if m["role"] == "tool"]


def leave_while_python_runs(base_url: str, path: str, body: dict[str, Any], started: str) -> None:
    """Stream ``body`` (whose replayed turn calls python to sleep 25 s, then writes on) and go
    away once a line holding ``started`` shows the call began; then engine and tools must stop.
    """
    with httpx.stream("POST", f"{base_url}{path}", json=body, timeout=60) as response:
        lines = response.iter_lines()  # held, so leaving the loop does not close the response
        for line in lines:
            if started in line:
                break
        time.sleep(0.5)  # the sleep statement is running now, and decoding goes on
        assert metric(base_url, "vllm:num_requests_running") >= 1
        assert metric(base_url, "conveyor_sidecar_invocations_in_flight", tool="python") >= 1
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        running = metric(base_url, "vllm:num_requests_running")
        in_flight = metric(base_url, "conveyor_sidecar_invocations_in_flight", tool="python")
        if running == 0 and in_flight == 0:
            break
        time.sleep(0.2)
    assert (running, in_flight) == (0, 0)


# A python call that runs 25 s, then more text: the engine decodes while the tool runs.
SLEEPING_TURN = call("python", {"code": "import time\ntime.sleep(25)\n"}) + "z" * 3000
