"""A hosted MCP tool end to end: `conveyor serve` with its embedded sidecar configured with a
real stdio MCP server (tests/tools/mcp_servers/srv.py, run inside the sandbox), the official
`openai` client, a replayed hermes call to ``srv.slow`` followed by more text in the same turn.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from chat_testkit import call, chat, tool_messages
from process_testkit import free_port, metric, wait_http

pytestmark = pytest.mark.engine

SRV = Path(__file__).resolve().parents[1] / "tools" / "mcp_servers" / "srv.py"


@pytest.fixture(scope="module")
def mcp_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = tmp_path_factory.mktemp("mcp-serve") / "tools.yaml"
    server = {
        "transport": "stdio",
        "command": sys.executable,
        "args": [str(SRV)],
        "limits": {"wall_seconds": 20},
    }
    config.write_text(yaml.safe_dump({"tools": ["calculator"], "mcp_servers": {"srv": server}}))
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


def test_an_mcp_tool_runs_while_the_turn_is_still_decoded(mcp_server: str) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{mcp_server}/v1", api_key="unused")
    model = client.models.list().data[0].id
    # The call closes early in the turn; the text after it keeps the model decoding meanwhile.
    turn = call("srv.slow", {"query": "paris", "seconds": 1.0})
    turn += "\nWhile that runs, let me think about the question a little more." * 12
    response = chat(client, model, [turn, "Paris it is."])
    (tool,) = tool_messages(response)
    assert "slow:paris" in tool["content"]
    assert response.choices[0].message.content.endswith("Paris it is.")
    assert response.usage.model_extra["conveyor"]["overlap_seconds"] > 0
    assert metric(mcp_server, "conveyor_tool_calls_total", tool="srv.slow") >= 1
