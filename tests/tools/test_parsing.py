"""The tool-call stream parsers: golden replies, any chunking, any input."""

from __future__ import annotations

import json
import keyword

import pytest
from golden_streams import GOLDEN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tools_harness import (
    Golden,
    assert_matches,
    check_invariants,
    merge_events,
    pieces,
    replay,
)

from conveyor.tools.parsing import CallFinished, ToolCallStream, formats

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_every_format_has_golden_streams() -> None:
    assert {g.fmt for g in GOLDEN} == set(formats())


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g.id)
def test_golden_whole(golden: Golden) -> None:
    events = replay(golden.fmt, [golden.text])
    check_invariants(events)
    assert_matches(events, golden.expected)


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g.id)
@FAST
@given(data=st.data())
def test_golden_in_random_chunks(golden: Golden, data: st.DataObject) -> None:
    n = len(golden.text)
    cuts = data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=n))
    events = replay(golden.fmt, pieces(golden.text, cuts))
    check_invariants(events)
    assert_matches(events, golden.expected)


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g.id)
def test_golden_one_character_at_a_time(golden: Golden) -> None:
    assert_matches(replay(golden.fmt, list(golden.text)), golden.expected)


# Fragments that matter to some format, so random replies hit every state of every parser.
FRAGMENTS = [
    "<tool_call>", "</tool_call>", "<tool_", "{", "}", "[", "]", "(", ")", '"', "'", "'''", "\\",
    ":", ",", ";", "=", " ", "\n", "\t", '"name"', '"arguments"', '"parameters"', '"x"', "name",
    "1", "-2.5e3", "true", "null", "é", "😀", "\\u00e9", "\\ud83d", "```python\n", "```", "```py",
    ">>>\n", "<<<", ">>", "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "<|python_tag|>", "f(", "a=",
    '$1 = search("x")\n', "print(1)\n",
]  # fmt: skip
replies = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=3)), max_size=40).map(
    "".join
)


@pytest.mark.parametrize("fmt", formats())
@FAST
@given(text=replies, data=st.data())
def test_any_reply_any_chunking_same_events(fmt: str, text: str, data: st.DataObject) -> None:
    whole = replay(fmt, [text])
    check_invariants(whole)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=len(text)))
    chunked = replay(fmt, pieces(text, cuts))
    check_invariants(chunked)
    assert merge_events(chunked) == merge_events(whole)


@pytest.mark.parametrize("fmt", formats())
@settings(max_examples=30, deadline=None)
@given(raw=st.binary(max_size=200))
def test_random_bytes_never_raise(fmt: str, raw: bytes) -> None:
    text = raw.decode("utf-8", errors="replace")
    stream = ToolCallStream(fmt)
    events = [e for ch in text for e in stream.feed(ch)] + stream.close()
    check_invariants(events)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tool-call format"):
        ToolCallStream("klingon")


# Well-formed calls rendered in each JSON-ish format must come back exactly.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and s not in ("True", "False", "None")
)
calls = st.lists(
    st.tuples(identifiers, st.dictionaries(identifiers, json_values, max_size=4)),
    min_size=1,
    max_size=3,
)


def render(fmt: str, cs: list[tuple[str, dict[str, object]]]) -> str:
    if fmt == "hermes":
        return "\n".join(
            f"<tool_call>\n{json.dumps({'name': n, 'arguments': a})}\n</tool_call>" for n, a in cs
        )
    if fmt == "llama3_json":
        return "<|python_tag|>" + "; ".join(
            json.dumps({"name": n, "parameters": a}, ensure_ascii=False) for n, a in cs
        )
    if fmt == "mistral":
        return "[TOOL_CALLS]" + json.dumps([{"name": n, "arguments": a} for n, a in cs])
    assert fmt == "pythonic"
    return (
        "["
        + ", ".join(f"{n}({', '.join(f'{k}={v!r}' for k, v in a.items())})" for n, a in cs)
        + "]"
    )


@pytest.mark.parametrize("fmt", ["hermes", "llama3_json", "mistral", "pythonic"])
@FAST
@given(cs=calls, data=st.data())
def test_well_formed_calls_come_back_exactly(fmt: str, cs: list, data: st.DataObject) -> None:
    text = render(fmt, cs)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=30))
    events = replay(fmt, pieces(text, cuts))
    check_invariants(events)
    finished = [(e.name, e.arguments) for e in events if isinstance(e, CallFinished)]
    assert finished == [(n, json.loads(json.dumps(a))) for n, a in cs]


@FAST
@given(
    code=st.text(alphabet=st.sampled_from(list("ab =()'\"\\\n\t`é{}")), max_size=60), data=st.data()
)
def test_code_blocks_carry_any_code(code: str, data: st.DataObject) -> None:
    lines = code.split("\n")
    code = "\n".join(ln for ln in lines if not ln.lstrip(" ").startswith("`"))
    code = code if code.endswith("\n") or not code else code + "\n"
    text = f"Run:\n```python\n{code}```\nok"
    cuts = data.draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=30))
    events = replay("code", pieces(text, cuts))
    check_invariants(events)
    assert [e.arguments for e in events if isinstance(e, CallFinished)] == [{"code": code}]


def test_call_starts_before_its_arguments_are_complete() -> None:
    stream = ToolCallStream("hermes")
    events = stream.feed('<tool_call>{"name": "search", "arguments": {"query": "wea')
    assert [type(e).__name__ for e in events] == ["CallStarted", "ArgumentsDelta"]
    assert events[1].text == '{"query": "wea'  # type: ignore[union-attr]
    assert [e.text for e in stream.feed("ther")] == ["ther"]  # type: ignore[union-attr]
