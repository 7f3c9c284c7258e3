"""Property: whatever body arrives, the server answers it without a 5xx and keeps answering.

Bodies are drawn from the JSON schema of vLLM's own ``ChatCompletionRequest`` (the model the
server validates with): valid values of each field, and mutated ones (a field set to any JSON
value, a message or the whole body replaced). Generation stays short (``max_completion_tokens``
is always small) so that the examples cost the engine little.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.engine

# Fields whose valid values would make a request long or heavy, not more interesting.
_SKIPPED = {"max_tokens", "max_completion_tokens", "messages", "n", "stream_interval"}

any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def from_schema(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> st.SearchStrategy:
    """Values that a JSON schema describes (the subset pydantic writes), bounded in size."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].split("/")[-1]], defs, depth)
    if depth > 5:
        return st.none()
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, defs, depth + 1) for s in schema[key]])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low, high = schema.get("minimum", -(2**63)), schema.get("maximum", 2**63 - 1)
        return st.integers(max(low, -1000), min(high, 1000)) | st.integers(low, high)
    if kind == "number":
        return st.floats(-10, 10, allow_nan=False)
    if kind == "string":
        return st.text(max_size=16)
    if kind == "array":
        items = schema.get("items", {})
        return st.lists(from_schema(items, defs, depth + 1), max_size=3)
    if kind == "object" and "properties" in schema:
        required = set(schema.get("required", ()))
        fields = {k: from_schema(v, defs, depth + 1) for k, v in schema["properties"].items()}
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
    if kind == "object":
        return st.dictionaries(st.text(max_size=8), any_json, max_size=3)
    return any_json


def _schema() -> tuple[dict[str, Any], dict[str, Any]]:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    schema = ChatCompletionRequest.model_json_schema()
    return schema, schema.get("$defs", {})


SCHEMA, DEFS = _schema()
PROPERTIES = {k: v for k, v in SCHEMA["properties"].items() if k not in _SKIPPED}
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "developer"]), "content": st.text(max_size=40)}
    ),
    min_size=1,
    max_size=3,
)


@st.composite
def bodies(draw: st.DrawFn) -> Any:
    body: dict[str, Any] = {
        "messages": draw(messages),
        "max_completion_tokens": draw(st.integers(1, 4)),
        "conveyor": {"tools": []},
    }
    for name in draw(st.lists(st.sampled_from(sorted(PROPERTIES)), max_size=4, unique=True)):
        body[name] = draw(from_schema(PROPERTIES[name], DEFS))
    mutation = draw(st.sampled_from(["none", "field", "message", "conveyor", "body"]))
    if mutation == "field":
        body[draw(st.sampled_from(sorted(PROPERTIES) + ["n", "messages"]))] = draw(any_json)
    elif mutation == "message":
        body["messages"][0] = draw(any_json)
    elif mutation == "conveyor":
        body["conveyor"] = draw(any_json)
    elif mutation == "body":
        return draw(any_json)
    return body


@pytest.fixture(scope="module")
def http(conveyor_server):
    with httpx.Client(base_url=conveyor_server.base_url, timeout=120) as client:
        yield client


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies())
def test_no_body_gets_a_5xx(http: httpx.Client, body: Any) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code < 500, (body, response.text[:500])
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert http.get("/health").status_code == 200
