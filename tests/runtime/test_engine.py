"""The engine path end to end: real vLLM on the CPU, streamed deltas, exact forced outputs."""

from __future__ import annotations

import io

import pytest

from conveyor.runtime.engine import sampling_params
from conveyor.runtime.generate import generate
from conveyor.runtime.replay import longest_match_bias

pytestmark = [pytest.mark.engine, pytest.mark.asyncio(loop_scope="session")]

FORCED = [
    "plain words",
    'line one\nline two\n\t"quoted" {braces} [brackets] back\\slash $1 = x.*?(y)|z^',
    '<tool_call>\n{"name": "python", "arguments": {"code": "print(\\"hi\\")\\n"}}\n</tool_call>',
    "unicode: é ü 東京 🚀",
]


async def _collect(engine, prompt_ids, params, request_id):
    return [delta async for delta in engine.stream(prompt_ids, params, request_id)]


async def test_generates_exactly_n_tokens_as_deltas(engine) -> None:
    prompt = engine.render([{"role": "user", "content": "count to ten"}])
    deltas = await _collect(engine, prompt, sampling_params(24), "n-tokens")
    assert sum(d.tokens for d in deltas) == 24
    assert len(deltas) > 1, "DELTA output streams token by token"
    assert deltas[-1].finish_reason == "length"
    assert all(a.at <= b.at for a, b in zip(deltas, deltas[1:], strict=False))


@pytest.mark.parametrize("text", FORCED, ids=["plain", "escapes", "tool-call", "unicode"])
async def test_force_yields_exactly_the_text(engine, text: str) -> None:
    prompt = engine.render([{"role": "user", "content": "anything"}])
    deltas = await _collect(engine, prompt, sampling_params(8, force=text), f"force-{hash(text)}")
    assert "".join(d.text for d in deltas) == text
    assert deltas[-1].finish_reason == "stop"


async def test_generate_streams_and_reports_speed(engine) -> None:
    out = io.StringIO()
    stats = await generate(engine, "hello", max_tokens=16, force="Hello there, friend.", out=out)
    assert out.getvalue() == "Hello there, friend.\n"
    assert stats.tokens >= 3 and stats.decode_tokens_per_s > 0
    assert 0 < stats.first_token_s <= stats.total_s


async def test_replay_bias_makes_a_forced_text_cost_the_same_whatever_the_prompt(engine) -> None:
    text = FORCED[2]
    bias = longest_match_bias(engine.tokenizer)
    counts = []
    for i, prompt in enumerate(["a", "a much longer and rather different prompt " * 5]):
        ids = engine.render([{"role": "user", "content": prompt}])
        params = sampling_params(8, force=text, token_bias=bias)
        deltas = await _collect(engine, ids, params, f"bias-{i}")
        assert "".join(d.text for d in deltas) == text
        counts.append(sum(d.tokens for d in deltas))
    # Longest-match tokenization: the same steps for both prompts, and about what the tokenizer
    # itself makes of the text (plus the final EOS step).
    assert counts[0] == counts[1]
    assert counts[0] <= len(engine.encode(text)) + 1
