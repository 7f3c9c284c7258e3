"""Parser + segmenter cost per token on realistic tool-calling replies (a benchmark, not a test).

Each reply is cut into ~4-character tokens (the average length of a BPE token in English text
and code) and fed as the runtime does: ``ToolCallStream.feed(token)``, then every
``ArgumentsDelta`` into the called tool's own segmenter. Prints the median and p99 time per
token, per format and over all.

    .venv/bin/python tools/benchmarks/parse_speed.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from conveyor.tools import default_registry
from conveyor.tools.parsing import ArgumentsDelta, CallStarted, ToolCallStream
from conveyor.tools.units import Segmenter, segmenter_from_spec

CODE = '''import math
import statistics

def summarize(values):
    """Mean, spread and the outliers of a list of numbers."""
    mean = statistics.mean(values)
    sd = statistics.pstdev(values)
    outliers = [v for v in values if abs(v - mean) > 2 * sd]
    return {"mean": round(mean, 3), "sd": round(sd, 3), "outliers": outliers}

data = [math.sin(i / 3) * 10 + (i % 7) for i in range(200)]
result = summarize(data)
print(f"mean={result['mean']} sd={result['sd']} n_out={len(result['outliers'])}")
for threshold in (1, 2, 3):
    print(threshold, sum(1 for v in data if v > threshold))
'''
PLAN = (
    '$1 = search("Microsoft market capitalization 2024")\n'
    '$2 = search("Apple market capitalization 2024")\n'
    '$3 = calculator(expression="$1 / $2")\n'
    '$4 = python(code="print(round($3, 2))")\n'
)
PROSE = "Let me work this out step by step, using the tools where that is faster. "

REPLIES = {
    "hermes": PROSE + "<tool_call>\n" + json.dumps({"name": "python", "arguments": {"code": CODE}})
    + "\n</tool_call>\n<tool_call>\n"
    + json.dumps({"name": "search", "arguments": {"query": "Ünïcode normalisation NFC vs NFD"}})
    + "\n</tool_call>",
    "llama3_json": "<|python_tag|>"
    + json.dumps({"name": "python", "parameters": {"code": CODE}})
    + "; "
    + json.dumps({"name": "sqlite", "parameters": {"query": "SELECT name, price FROM items "
                                                             "WHERE price > 2 ORDER BY price"}}),
    "mistral": PROSE + "[TOOL_CALLS]" + json.dumps(
        [{"name": "python", "arguments": {"code": CODE}}, {"name": "calculator",
          "arguments": {"expression": "(1234.5 * 3 - 17) / 2 ** 4"}}]
    ),
    "pythonic": PROSE + "[" + f"python(code={CODE!r}), search(query='conveyor belts', k=5)" + "]",
    "code": PROSE + "\n```python\n" + CODE + "```\nThat prints the summary.",
    "plan": PROSE + "\n>>>\n" + PLAN + "<<<\nThe plan runs now.",
}  # fmt: skip


def tokens(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def run_once(fmt: str, toks: list[str], segmenters: dict[str, dict]) -> tuple[list[int], int]:
    """Feed one reply; returns the ns spent on each token and the number of units made."""
    stream = ToolCallStream(fmt)
    open_calls: dict[str, Segmenter] = {}
    per_token: list[int] = []
    units = 0
    clock = time.perf_counter_ns
    for tok in toks:
        t0 = clock()
        for ev in stream.feed(tok):
            if isinstance(ev, CallStarted):
                open_calls[ev.call_id] = segmenter_from_spec(segmenters[ev.name])
            elif isinstance(ev, ArgumentsDelta):
                units += len(open_calls[ev.call_id].feed(ev.text))
        per_token.append(clock() - t0)
    for ev in stream.close():
        if isinstance(ev, ArgumentsDelta):
            units += len(open_calls[ev.call_id].feed(ev.text))
    for seg in open_calls.values():
        units += len(seg.close())
    return per_token, units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--token-chars", type=int, default=4)
    args = parser.parse_args()
    segmenters = {s["function"]["name"]: s["x-conveyor"]["segmenter"]
                  for s in default_registry().specs()}  # fmt: skip
    everything: list[float] = []
    print(f"{'format':<12} {'tokens':>6} {'units':>5} {'median µs/tok':>14} {'p99 µs/tok':>11}")
    for fmt, reply in REPLIES.items():
        toks = tokens(reply, args.token_chars)
        samples: list[float] = []
        units = 0
        run_once(fmt, toks, segmenters)  # warm-up: imports, regex caches
        for _ in range(args.rounds):
            per_token, units = run_once(fmt, toks, segmenters)
            samples += [ns / 1000 for ns in per_token]
        everything += samples
        q = statistics.quantiles(samples, n=100)
        median = statistics.median(samples)
        print(f"{fmt:<12} {len(toks):>6} {units:>5} {median:>14.2f} {q[98]:>11.2f}")
    q = statistics.quantiles(everything, n=100)
    print(f"{'all':<12} {'':>6} {'':>5} {statistics.median(everything):>14.2f} {q[98]:>11.2f}")


if __name__ == "__main__":
    main()
