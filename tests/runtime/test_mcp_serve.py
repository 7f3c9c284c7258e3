"""Hosted MCP tools end to end: `conveyor serve` with its embedded sidecar configured with two
real MCP servers written with the SDK (tests/tools/mcp_servers/srv.py): ``srv`` over stdio,
run inside the sandbox, and ``web`` over Streamable HTTP in a thread of this test, where
``srv.CALLS`` shows when each ``tools/call`` started and whether it was cancelled. Requests
come from the official `openai` client, with replayed hermes calls followed by more text in
the same turn, so the model is still decoding while the tool runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from chat_testkit import call, chat, tool_messages
from process_testkit import free_port, metric, wait_http

SERVERS = Path(__file__).resolve().parents[1] / "tools" / "mcp_servers"
sys.path.insert(0, str(SERVERS))
import srv  # noqa: E402 - the in-process HTTP server, next to the stdio one

pytestmark = pytest.mark.engine
MORE = "\nWhile that runs, let me think about the question a little more." * 12


@pytest.fixture(scope="module")
def mcp_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    http_port = free_port()
    web, thread = srv.http_server(http_port)
    config = tmp_path_factory.mktemp("mcp-serve") / "tools.yaml"
    servers = {
        "srv": {"transport": "stdio", "command": sys.executable, "args": [str(SERVERS / "srv.py")],
                "limits": {"wall_seconds": 20}},
        "web": {"transport": "streamable-http", "url": f"http://127.0.0.1:{http_port}/mcp"},
    }  # fmt: skip
    # Worker uids of its own (per test process): the session's server may be running too.
    isolation = {"uid_base": 3_000_000 + (os.getpid() % 4000) * 200}
    config.write_text(
        yaml.safe_dump({"tools": ["calculator"], "mcp_servers": servers, "isolation": isolation})
    )
    port = free_port()
    runtime = subprocess.Popen(
        [sys.executable, "-m", "conveyor.runtime.cli", "serve", "--model", str(tiny_model),
         "--tools-config", str(config), "--allow-replay", "--port", str(port),
         "--max-model-len", "4096", "--tool-timeout", "30"],
    )  # fmt: skip
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_http(f"{base_url}/ready", runtime, 600)
        yield base_url
    finally:
        runtime.terminate()
        runtime.wait(60)
        web.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def client(mcp_server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mcp_server}/v1", api_key="unused")


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


def test_an_mcp_tool_runs_while_the_turn_is_still_decoded(mcp_server, client, model) -> None:
    turn = call("srv.slow", {"query": "paris", "seconds": 1.0}) + MORE
    response = chat(client, model, [turn, "Paris it is."])
    (tool,) = tool_messages(response)
    assert "slow:paris" in tool["content"]
    assert response.choices[0].message.content.endswith("Paris it is.")
    assert response.usage.model_extra["conveyor"]["overlap_seconds"] > 0
    assert metric(mcp_server, "conveyor_tool_calls_total", tool="srv.slow") >= 1


def test_a_streamed_response_selects_an_mcp_server_and_shows_its_call(client, model) -> None:
    turn = call("web.slow", {"query": "lyon", "seconds": 0.5}) + MORE
    with client.responses.stream(
        model=model,
        input="go",
        tools=[{"type": "mcp", "server_label": "web", "require_approval": "never"}],
        extra_body={"conveyor": {"replay": [turn, "Lyon."]}},
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.mcp_call.completed" in events and events[-1] == "response.completed"
    (item,) = [i for i in final.output if i.type == "mcp_call"]
    assert (item.server_label, item.name) == ("web", "slow")
    assert "slow:lyon" in item.output
    assert final.output_text.endswith("Lyon.")
    assert final.usage.model_extra["conveyor"]["overlap_seconds"] > 0


def test_a_client_disconnect_cancels_the_mcp_call_on_its_server(mcp_server, model) -> None:
    turn = call("web.slow", {"query": "gone", "seconds": 60}) + "z" * 3000
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
        "conveyor": {"replay": [turn, "never"]},
    }
    url = f"{mcp_server}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        lines = response.iter_lines()  # held, so leaving the loop does not close the response
        for line in lines:
            if '"event":"tool_call"' in line:
                break
        deadline = time.monotonic() + 20
        while not any(k == "started" and q == "gone" for k, q, _ in list(srv.CALLS)):
            assert time.monotonic() < deadline, "tools/call never reached the server"
            time.sleep(0.05)
    deadline = time.monotonic() + 20  # the client is gone: notifications/cancelled follows
    while not any(k == "cancelled" and q == "gone" for k, q, _ in list(srv.CALLS)):
        assert time.monotonic() < deadline, f"the server never saw the cancel: {srv.CALLS}"
        time.sleep(0.05)
