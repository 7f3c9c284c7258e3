"""A client that hangs up in each phase of a request: the engine request is aborted, the tool
cancelled, and nothing stays in flight. On the session's shared server (tests/conftest.py).

(A hang-up while a tool runs *during* decoding is tests/runtime's disconnect test.)
"""

from __future__ import annotations

import httpx
import pytest
from reliability_kit import metric, nothing_in_flight, python_call, replayed, wait_until

pytestmark = pytest.mark.engine

LONG_PROMPT = " ".join(f"item{i}" for i in range(300))  # with the reply, within the context


def _completed(base: str) -> float:
    """Engine requests that ran to their end (vLLM does not count the ones aborted)."""
    return metric(base, "vllm:request_success_total")


def _cancelled(base: str) -> float:
    return metric(base, "conveyor_tool_calls_total", tool="python", outcome="cancelled")


def _hang_up_when(base: str, body: dict, moment) -> None:
    """Stream ``body`` and close the connection at the first chunk for which ``moment`` holds."""
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and moment(line):
                return
    raise AssertionError("the stream ended before the moment to hang up came")


@pytest.fixture(scope="module")
def base(conveyor_server) -> str:
    return conveyor_server.base_url


@pytest.fixture(scope="module")
def model(base) -> str:
    return httpx.get(f"{base}/v1/models").json()["data"][0]["id"]


def test_hang_up_while_the_prompt_is_read(base, model) -> None:
    completed = _completed(base)
    body = replayed(model, ["z" * 2000], stream=True)
    body["messages"] = [{"role": "user", "content": LONG_PROMPT}]
    _hang_up_when(base, body, lambda line: True)  # the first chunk comes before any token
    wait_until(lambda: nothing_in_flight(base), 30, "nothing in flight")
    # Aborted in the engine, or never submitted: either way it did not run on to its end.
    assert _completed(base) == completed


def test_hang_up_while_decoding(base, model) -> None:
    completed = _completed(base)
    chunks = iter(range(1, 10**6))
    body = replayed(model, ["z" * 3000], stream=True)
    _hang_up_when(base, body, lambda line: '"content":"z' in line and next(chunks) >= 5)
    wait_until(lambda: nothing_in_flight(base), 30, "nothing in flight")
    assert _completed(base) == completed  # aborted: it did not decode on to its end


def test_hang_up_while_a_tool_runs_after_decoding(base, model) -> None:
    cancelled = _cancelled(base)
    turn = python_call("import time\ntime.sleep(25)\n")
    body = replayed(model, [turn, "never"], stream=True)

    def tool_running(line: str) -> bool:
        if '"event":"tool_call"' not in line:
            return False
        # Decoding of the turn has ended; the request waits on the running tool alone.
        return wait_until(
            lambda: metric(base, "conveyor_sidecar_invocations_in_flight", tool="python") >= 1,
            30,
            "the tool runs",
        )

    _hang_up_when(base, body, tool_running)
    wait_until(lambda: nothing_in_flight(base), 30, "nothing in flight")
    assert _cancelled(base) > cancelled


def test_hang_up_between_rounds(base, model) -> None:
    completed = _completed(base)
    body = replayed(model, [python_call("print(1)\n"), "z" * 3000], stream=True)
    # The tool's result is sent as the next round is prepared.
    _hang_up_when(base, body, lambda line: '"event":"tool_result"' in line)
    wait_until(lambda: nothing_in_flight(base), 30, "nothing in flight")
    # Only the first round ran to its end; the next was aborted or never submitted.
    assert _completed(base) == completed + 1
    response = httpx.post(
        f"{base}/v1/chat/completions", json=replayed(model, ["still serving"]), timeout=60
    )
    assert response.json()["choices"][0]["message"]["content"] == "still serving"
