"""The demo's timeline and the live benchmark's same-tokens check, on hand-made answers."""

from __future__ import annotations

from conveyor.runtime.bench.live import first_difference
from conveyor.runtime.chat_request import Mode
from conveyor.runtime.completion import Completion, Timing
from conveyor.runtime.demo import final_answer, timeline
from conveyor.runtime.live import Answer, Round

T0 = 1000.0


def answer(rounds: list[Round], messages: list[dict] | None = None) -> Answer:
    timing = Timing(decode_seconds=4.0, tool_busy_seconds=0.003, overlap_seconds=0.002, rounds=2)
    completion = Completion("", [], "stop", 50, 80, messages or [], timing, Mode.PARTIAL)
    return Answer("prompt", T0, T0 + 5.0, completion, rounds)


def test_the_timeline_pairs_each_statement_with_its_run() -> None:
    tool = {
        "role": "tool",
        "content": "408\n",
        "timing": {
            "call_started": T0 + 0.5,
            "call_complete": T0 + 2.0,
            "decode_end": T0 + 3.0,
            # start(), one span per statement, finish()
            "busy": [
                [T0 + 0.5, T0 + 0.51],
                [T0 + 1.0, T0 + 1.001],
                [T0 + 1.8, T0 + 1.802],
                [T0 + 2.0, T0 + 2.0],
            ],  # fmt: skip
            "result_at": T0 + 2.01,
        },
    }
    written = [[(T0 + 0.99, "x = 12 * 34"), (T0 + 1.79, "print(x)")]]
    lines = timeline(answer([], [{"role": "assistant"}, tool]), written)
    text = "\n".join(lines)
    assert "python call 1: 2 statement(s)" in text
    assert "+  0.99 s  +  1.00 s    1.0 ms  x = 12 * 34" in text
    assert "+  1.79 s  +  1.80 s    2.0 ms  print(x)" in text
    assert "result ready +2.01 s" in text and "ended +3.00 s" in text
    assert "overlap 2.0 ms, exposed 0.0 ms" in lines[-1]


def test_the_final_answer_is_the_last_round() -> None:
    rounds = [Round("```python\nprint(408)\n```", 9), Round(" It is 408. ", 5)]
    assert final_answer(answer(rounds)) == "It is 408."


def test_same_decodes_match_and_different_ones_say_where() -> None:
    a = answer([Round("```python\nprint(1)\n```", 9), Round("one", 1)])
    assert first_difference(a, answer([Round(r.text, r.tokens) for r in a.rounds])) is None
    b = answer([Round("```python\nprint(1)\n```", 9), Round("two", 1)])
    assert first_difference(a, b) == "round 2: 1 vs 1 tokens, texts part at character 0"
    assert first_difference(a, answer(a.rounds[:1])) == "2 vs 1 rounds"
