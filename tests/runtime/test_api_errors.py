"""Malformed requests against the real `conveyor serve`: each gets the right 4xx in OpenAI's error
shape, and the server keeps serving. Raw HTTP (httpx), since the `openai` client refuses to send
much of this."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.engine

HELLO = [{"role": "user", "content": "hi"}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
MAX_MODEL_LEN = 4096  # as the session server is started


@dataclass
class Case:
    id: str
    body: Any = None  # JSON-encoded unless ``raw`` is set
    status: int = 400
    param: str | None = None
    code: str | None = None
    says: str | None = None  # a piece of the message
    raw: bytes | None = None
    method: str = "POST"
    path: str = "/v1/chat/completions"
    headers: dict[str, str] = field(default_factory=dict)


def chat(**fields: Any) -> dict[str, Any]:
    return {"messages": HELLO, "max_tokens": 4, **fields}


CASES = [
    Case("deep-json", raw=b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    Case("deep-json-moderate", raw=b'{"messages": ' + b"[" * 200 + b"]" * 200 + b"}"),
    Case(
        "tool-name-is-a-list",
        chat(tools=[{"type": "function", "function": {"name": ["a"]}}]),
        param="tools[0].function.name",
    ),
    Case(
        "tool-call-without-arguments",
        chat(
            messages=[
                *HELLO,
                {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "weather"}}]},
            ],
            tools=[WEATHER],
        ),
        param="messages[1].tool_calls[0].function.arguments",
        code="missing_required_parameter",
    ),
    Case(
        "lone-surrogate",
        raw=b'{"messages": [{"role": "user", "content": "bad \\ud800 text"}]}',
        param="messages[0].content",
        says="surrogate",
    ),
    Case(
        "prompt-longer-than-context",
        chat(messages=[{"role": "user", "content": "word " * 20_000}]),
        code="context_length_exceeded",
        says=str(MAX_MODEL_LEN),
    ),
    Case(
        "prompt-longer-than-context-streamed",
        chat(messages=[{"role": "user", "content": "word " * 20_000}], stream=True),
        code="context_length_exceeded",
    ),
    Case("max-tokens-1e20", chat(max_tokens=1e20), param="max_tokens"),
    Case("max-tokens-beyond-context", chat(max_tokens=MAX_MODEL_LEN + 1), param="max_tokens"),
    Case("max-tokens-negative", chat(max_tokens=-1), says="max_tokens"),
    Case(
        "seed-2-80",
        raw=b'{"messages": [{"role": "user", "content": "x"}], "seed": '
        + str(2**80).encode()
        + b"}",
        param="seed",
    ),  # fmt: skip
    Case(
        "max-rounds-above-cap",
        chat(conveyor={"max_rounds": 10**9}),
        param="conveyor.max_rounds",
        says="cap of 8",
    ),  # fmt: skip
    Case("max-rounds-zero", chat(conveyor={"max_rounds": 0}), param="conveyor.max_rounds"),
    Case("unknown-model", chat(model="gpt-17"), status=404, param="model", code="model_not_found"),
    Case("wrong-method", None, status=405, method="GET"),
    Case("unknown-path", chat(), status=404, path="/v1/chat/complete"),
    Case("not-json", raw=b"{nope", says="not valid JSON"),
    Case("not-an-object", raw=b"[1, 2]", says="JSON object"),
    Case("nan", raw=b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}'),
    Case(
        "messages-missing", {"max_tokens": 3}, param="messages", code="missing_required_parameter"
    ),  # fmt: skip
    Case("messages-empty", chat(messages=[]), param="messages"),
    Case("messages-not-a-list", chat(messages="hi"), param="messages"),
    Case(
        "unknown-role",
        chat(messages=[{"role": "wizard", "content": "x"}]),
        param="messages[0].role",
    ),  # fmt: skip
    Case(
        "content-wrong-type",
        chat(messages=[{"role": "user", "content": 5}]),
        param="messages[0].content",
    ),  # fmt: skip
    Case(
        "tool-message-without-call",
        chat(messages=[*HELLO, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]),
        param="messages[1].tool_call_id",
    ),
    Case(
        "duplicate-tool-call-ids",
        chat(messages=[*HELLO, {"role": "assistant", "tool_calls": [CALL, CALL]}], tools=[WEATHER]),
        param="messages[1].tool_calls[1].id",
    ),
    Case("stream-not-bool", chat(stream="yes"), param="stream"),
    Case(
        "stream-options-without-stream",
        chat(stream_options={"include_usage": True}),
        param="stream_options",
    ),  # fmt: skip
    Case("huge-n", chat(n=100_000), param="n"),
    Case("negative-top-logprobs", chat(logprobs=True, top_logprobs=-3), param="top_logprobs"),
    Case("top-logprobs-without-logprobs", chat(top_logprobs=2), param="top_logprobs"),
    Case("temperature-string", chat(temperature="hot"), param="temperature"),
    Case("temperature-negative", chat(temperature=-1), says="temperature"),
    Case("top-p-zero", chat(top_p=0), says="top_p"),
    Case("max-tokens-string", chat(max_tokens="5"), param="max_tokens"),
    Case("logit-bias-not-a-number", chat(logit_bias={"5": "lots"}), param="logit_bias.5"),
    Case("logit-bias-unknown-token", chat(logit_bias={"99999999": 1}), says="99999999"),
    Case("stop-wrong-type", chat(stop=5), param="stop"),
    Case("stop-token-ids-wrong-type", chat(stop_token_ids="7"), param="stop_token_ids"),
    Case("tools-not-a-list", chat(tools={"a": 1}), param="tools"),
    Case("tools-empty", chat(tools=[]), param="tools"),
    Case(
        "tool-choice-unknown-tool",
        chat(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}),
        param="tool_choice",
    ),  # fmt: skip
    Case("tool-choice-bad-value", chat(tool_choice="sometimes"), param="tool_choice"),
    Case(
        "tool-choice-required-without-tools",
        chat(tool_choice="required", conveyor={"tools": []}),
        param="tool_choice",
    ),
    Case(
        "parallel-tool-calls-not-bool", chat(parallel_tool_calls="no"), param="parallel_tool_calls"
    ),  # fmt: skip
    Case(
        "response-format-without-schema",
        chat(response_format={"type": "json_schema"}),
        param="response_format",
    ),  # fmt: skip
    Case(
        "response-format-unknown-type",
        chat(response_format={"type": "yaml"}),
        param="response_format.type",
    ),  # fmt: skip
    Case("user-not-a-string", chat(user=5), param="user"),
    Case("min-tokens-wrong-type", chat(min_tokens=[1]), param="min_tokens"),
    Case("conveyor-mode-unknown", chat(conveyor={"mode": "fast"}), param="conveyor.mode"),
    Case("conveyor-unknown-option", chat(conveyor={"speed": 1}), param="conveyor.speed"),
    Case(
        "conveyor-unknown-hosted-tool", chat(conveyor={"tools": ["nope"]}), param="conveyor.tools"
    ),  # fmt: skip
    Case("refused-echo", chat(echo=True), param="echo", code="unsupported_parameter"),
    Case("refused-functions", chat(functions=[]), param="functions"),
    Case("unknown-field", chat(frobnicate=1), param="frobnicate", code="unknown_parameter"),
]


def send(client: httpx.Client, case: Case) -> httpx.Response:
    content = case.raw if case.raw is not None else json.dumps(case.body).encode()
    headers = {"content-type": "application/json", **case.headers}
    if case.method == "GET":
        return client.get(case.path)
    return client.request(case.method, case.path, content=content, headers=headers)


@pytest.fixture(scope="module")
def http(conveyor_server):
    with httpx.Client(base_url=conveyor_server.base_url, timeout=120) as client:
        yield client


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_there_are_many_cases() -> None:
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_malformed_request_gets_its_4xx(http: httpx.Client, case: Case) -> None:
    error = assert_openai_error(send(http, case), case.status)
    if case.param is not None:
        assert error["param"] == case.param, error
    if case.code is not None:
        assert error["code"] == case.code, error
    if case.says is not None:
        assert case.says in error["message"], error
    assert http.get("/health").status_code == 200


def test_oversized_body_is_refused_before_it_is_read(http: httpx.Client) -> None:
    big = b'{"messages": "' + b"x" * (8 * 1024 * 1024) + b'"}'
    assert_openai_error(send(http, Case("8mib", raw=big)), 413)

    def chunks():  # no Content-Length: the size is counted as the body streams in
        for _ in range(8):
            yield b" " * (1024 * 1024)

    response = http.post(
        "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert assert_openai_error(response, 413)["code"] == "request_too_large"


def test_health_answers_while_a_maximal_request_runs(http: httpx.Client, conveyor_server) -> None:
    """A body just under the limit (padding is legal JSON whitespace) that really decodes; /health
    must answer while it is in progress. How fast is measured by benchmarks/event_loop.py."""
    head = json.dumps(
        chat(max_tokens=120, ignore_eos=True, temperature=0, conveyor={"tools": []})
    ).encode()
    body = head[:-1] + b" " * (4 * 1024 * 1024 - len(head) - 64) + b"}"
    span: dict[str, float] = {}

    def big() -> None:
        span["start"] = time.monotonic()
        with httpx.Client(base_url=conveyor_server.base_url, timeout=300) as client:
            span["status"] = client.post("/v1/chat/completions", content=body).status_code
        span["end"] = time.monotonic()

    thread = threading.Thread(target=big)
    thread.start()
    answered: list[tuple[float, float]] = []
    while thread.is_alive():
        asked = time.monotonic()
        assert http.get("/health").status_code == 200
        answered.append((asked, time.monotonic()))
    thread.join()
    assert span["status"] == 200
    during = [a for a in answered if a[0] > span["start"] and a[1] < span["end"]]
    assert during, "no /health answer while the maximal request ran"


def test_the_server_still_serves_after_all_that(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        json=chat(conveyor={"replay": ["Still here."]}),
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Still here."
