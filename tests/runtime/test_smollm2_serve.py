"""SmolLM2, a real instruction-tuned model, through `conveyor generate` and `conveyor serve`.

Greedy decoding (temperature 0) of a fixed checkpoint is deterministic, so the tests can say
what the model answers. One server for the module: `conveyor serve` with the code format (fenced
python blocks) and its embedded sidecar hosting the python tool.
"""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

pytestmark = pytest.mark.engine

FACT = "What is the capital of France?"
SQUARES = "Compute the sum of the squares of the numbers from 1 to 10."
PRODUCT = "Write Python code that prints the product of 12 and 34, then tell me the result."


@pytest.fixture(scope="module")
def client(smollm2_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    config = tmp_path_factory.mktemp("smollm2") / "tools.yaml"
    # Workers under their own uids, apart from other sidecars that may run on this machine.
    config.write_text(yaml.safe_dump({"tools": {"python": {}}, "isolation": {"uid_base": 64000}}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "conveyor.runtime.cli", "serve", "--model", str(smollm2_model),
         "--tool-call-parser", "code", "--tools-config", str(config), "--port", str(port),
         "--max-model-len", "4096", "--tool-timeout", "30", "--drain-seconds", "5"],
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # engine start: 20 s here when quiet, minutes when not
        while True:
            assert server.poll() is None, "conveyor serve exited"
            assert time.monotonic() < deadline, "conveyor serve not ready in 600 s"
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        with openai.OpenAI(base_url=f"{base}/v1", api_key="unused") as client:
            yield client
    finally:
        server.terminate()
        try:
            server.wait(120)  # the engine's shutdown takes a while on a busy machine
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def ask(client: openai.OpenAI, prompt: str, mode: str = "partial", **extra) -> dict:
    response = client.chat.completions.create(
        model=client.models.list().data[0].id,
        messages=[{"role": "user", "content": prompt}],
        temperature=0,
        max_tokens=200,
        extra_body={"conveyor": {"max_rounds": 2, "mode": mode}},
        **extra,
    )
    return response.model_dump()


def test_generate_answers_a_fact(smollm2_model: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "conveyor.runtime.cli", "generate", FACT,
         "--model", str(smollm2_model), "--temperature", "0", "--max-tokens", "20"],
        capture_output=True, text=True, timeout=590,  # an engine start: minutes on a busy machine
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "The capital of France is Paris." in done.stdout


def test_the_server_answers_a_fact(client: openai.OpenAI) -> None:
    response = ask(client, FACT)
    assert response["choices"][0]["message"]["content"] == "The capital of France is Paris."
    assert response["usage"]["conveyor"]["rounds"] == 1


def test_a_computation_runs_the_python_it_writes_while_it_writes(client: openai.OpenAI) -> None:
    response = ask(client, SQUARES)
    messages = response["conveyor"]["messages"]
    (call,) = messages[0]["tool_calls"]
    code = json.loads(call["function"]["arguments"])["code"]
    (result,) = [m for m in messages if m["role"] == "tool"]
    assert "385" in result["content"]  # the sum of the squares of 1..10, printed by its code
    statements = len(ast.parse(code).body)
    assert statements > 1
    # Earlier statements ran while the model was still writing.
    assert response["usage"]["conveyor"]["overlap_seconds"] > 0
    assert "385" in response["choices"][0]["message"]["content"]


def test_tool_choice_python_forces_a_call_that_parses_and_runs(client: openai.OpenAI) -> None:
    response = ask(
        client, "What is 6 * 7?", tool_choice={"type": "function", "function": {"name": "python"}}
    )
    first, result = response["conveyor"]["messages"][:2]
    assert first["content"] is None  # the first round is the call and nothing else
    (call,) = first["tool_calls"]
    assert call["function"]["name"] == "python"
    code = json.loads(call["function"]["arguments"])["code"]
    ast.parse(code)
    assert result["role"] == "tool" and result["tool_call_id"] == call["id"]
    assert result["content"].strip() and not result["content"].startswith("error")


def test_partial_and_sequential_decode_the_same_tokens(client: openai.OpenAI) -> None:
    partial = ask(client, PRODUCT, mode="partial")
    sequential = ask(client, PRODUCT, mode="sequential")

    def decoded(response: dict) -> tuple:
        turns = [(m["content"], [c["function"] for c in m.get("tool_calls") or []])
                 for m in response["conveyor"]["messages"] if m["role"] == "assistant"]  # fmt: skip
        return (turns, response["choices"][0]["message"]["content"],
                response["usage"]["completion_tokens"])  # fmt: skip

    assert decoded(partial) == decoded(sequential)
    assert "408" in partial["choices"][0]["message"]["content"]
