"""`conveyor bench --live`: the real model writes its own code, in partial and sequential mode.

Nothing is replayed: SmolLM2 decodes freely at temperature 0 on fixed prompts with the ``code``
format, and its python runs on the sidecar. The comparison is fair only if both modes decode
the same tokens (the tool results, and so the later rounds, must not differ): every pair of runs
is checked round by round (text and token count), and the report says whether they matched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from conveyor.runtime.chat_request import Mode
from conveyor.runtime.live import Answer, LiveModel

PROMPTS = {
    "product": "Write Python code that prints the product of 12 and 34, then tell me the result.",
    "squares": "Compute the sum of the squares of the numbers from 1 to 10.",
    "fibonacci": "Write Python code that prints the first 10 Fibonacci numbers.",
}
MODES = (Mode.PARTIAL, Mode.SEQUENTIAL)


@dataclass(frozen=True)
class LiveRun:
    prompt: str
    mode: str
    latency: float
    decode: float
    tool_busy: float
    overlap: float
    exposed: float
    rounds: int
    tokens: int
    calls: int

    @classmethod
    def of(cls, name: str, mode: Mode, answer: Answer) -> LiveRun:
        timing = answer.completion.timing
        calls = sum(1 for m in answer.completion.messages if m.get("role") == "tool")
        return cls(
            name,
            mode.value,
            answer.finished - answer.started,
            timing.decode_seconds,
            timing.tool_busy_seconds,
            timing.overlap_seconds,
            timing.exposed_seconds,
            timing.rounds,
            answer.completion.completion_tokens,
            calls,
        )


def decoded(answer: Answer) -> list[tuple[str, int]]:
    """What the engine produced, round by round: the text and its token count."""
    return [(r.text, r.tokens) for r in answer.rounds]


def first_difference(a: Answer, b: Answer) -> str | None:
    """Where two answers' decodes part, in words; None when they are the same."""
    left, right = decoded(a), decoded(b)
    for index, (x, y) in enumerate(zip(left, right, strict=False)):
        if x != y:
            at = next((i for i, (p, q) in enumerate(zip(x[0], y[0], strict=False)) if p != q), None)
            where = f"character {at}" if at is not None else "the end of the shorter text"
            return f"round {index + 1}: {x[1]} vs {y[1]} tokens, texts part at {where}"
    if len(left) != len(right):
        return f"{len(left)} vs {len(right)} rounds"
    return None


async def run_live(model: str, reps: int, out=print) -> dict:
    started = time.perf_counter()
    live = await LiveModel.start(model)
    runs: list[LiveRun] = []
    mismatches: list[str] = []
    try:
        for rep in range(reps):
            for name, prompt in PROMPTS.items():
                # Alternate which mode goes first, so neither always runs on a warmer cache.
                order = MODES if rep % 2 == 0 else MODES[::-1]
                answers = {}
                for mode in order:
                    answers[mode] = await live.ask(prompt, mode=mode, max_tokens=250)
                    runs.append(LiveRun.of(name, mode, answers[mode]))
                    out(f"  {name:<10} {mode.value:<10} {runs[-1].latency:6.2f} s")
                difference = first_difference(answers[Mode.PARTIAL], answers[Mode.SEQUENTIAL])
                if difference is not None:
                    mismatches.append(f"{name} (repetition {rep + 1}): {difference}")
    finally:
        await live.stop()
    return {
        "model": model,
        "engine_start_seconds": live.engine_start_seconds,
        "reps": reps,
        "runs": [asdict(r) for r in runs],
        "same_tokens": not mismatches,
        "mismatches": mismatches,
        "wall_seconds": time.perf_counter() - started,
    }


def table(result: dict) -> str:
    rows = [
        f"{'prompt':<10} {'mode':<10} {'latency s':>9} {'decode s':>8} {'tool ms':>8} "
        f"{'overlap ms':>10} {'exposed ms':>10} {'rounds':>6} {'tokens':>6} {'calls':>5}"
    ]
    keys = sorted({(r["prompt"], r["mode"]) for r in result["runs"]})
    for prompt, mode in keys:
        mine = [r for r in result["runs"] if r["prompt"] == prompt and r["mode"] == mode]

        def median(field: str, runs: list[dict] = mine) -> float:
            return statistics.median(r[field] for r in runs)

        rows.append(
            f"{prompt:<10} {mode:<10} {median('latency'):9.2f} {median('decode'):8.2f} "
            f"{median('tool_busy') * 1e3:8.1f} {median('overlap') * 1e3:10.1f} "
            f"{median('exposed') * 1e3:10.1f} {median('rounds'):6.0f} {median('tokens'):6.0f} "
            f"{median('calls'):5.0f}"
        )
    verdict = (
        "partial and sequential decoded the same tokens in every pair"
        if result["same_tokens"]
        else "DIFFERENT decodes: " + "; ".join(result["mismatches"])
    )
    return "\n".join(rows) + f"\n{verdict} (medians of {result['reps']} repetition(s))"


def run(args: argparse.Namespace, model: str) -> None:
    reps = args.reps or 1
    print(f"live workloads on {model}: {', '.join(PROMPTS)}; {reps} repetition(s)")
    result = asyncio.run(run_live(model, reps))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "live.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(result))
    print(f"\nraw figures: {path}\nwall time: {result['wall_seconds']:.0f} s")
    if not result["same_tokens"]:
        raise SystemExit(1)
