"""`conveyor demo`: SmolLM2 answers a few prompts live, its python running while it writes.

Each answer streams to the terminal as it is decoded; after it, a timeline per python call says
when the model finished writing each statement and when the sidecar ran it, and the request's
overlap (tool time while the model was still decoding) and exposed time (waiting on tools after
decoding). The prompts are ones this 135M model handles at temperature 0: a fact it knows, and
computations it solves by writing a short program (it is not reliable beyond that).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any, TextIO

from conveyor.runtime.chat_request import Mode
from conveyor.runtime.events import Event, ToolResult
from conveyor.runtime.live import Answer, LiveModel

PROMPTS = (
    "What is the capital of France?",
    "Write Python code that prints the product of 12 and 34, then tell me the result.",
    "Compute the sum of the squares of the numbers from 1 to 10.",
)


def add_demo_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prompt",
        action="append",
        help="a prompt to answer (repeatable; default: three that this model handles)",
    )
    parser.add_argument("--max-tokens", type=int, default=200, help="tokens per round (200)")
    parser.add_argument("--max-rounds", type=int, default=2, help="tool rounds per prompt (2)")
    parser.add_argument(
        "--mode", choices=[m.value for m in Mode], default="partial", help="execution mode"
    )


def _short(code: str, width: int = 44) -> str:
    line = code.strip().splitlines()[0] if code.strip() else ""
    more = len(code.strip().splitlines()) > 1
    text = line + (" …" if more else "")
    return text if len(text) <= width else text[: width - 1] + "…"


def timeline(answer: Answer, written: list[list[tuple[float, str]]]) -> list[str]:
    """The per-call timeline and the request's figures, as lines; times from the request start.

    ``written`` is ``LiveModel.statements_written(answer)``. Pure, so it is tested without a model.
    """
    t0 = answer.started
    completion = answer.completion
    tool_messages = [m for m in completion.messages if m.get("role") == "tool"]
    lines: list[str] = []
    for number, (message, statements) in enumerate(
        zip(tool_messages, written, strict=False), start=1
    ):
        timing: dict[str, Any] = message.get("timing") or {}
        busy = timing.get("busy") or []
        # The sidecar times start(), then one span per statement, then finish().
        runs = busy[1:-1] if len(busy) == len(statements) + 2 else [None] * len(statements)
        lines.append(f"  python call {number}: {len(statements)} statement(s)")
        lines.append(f"    {'written':>8}  {'ran':>8}  {'took':>7}  statement")
        for (at, code), run in zip(statements, runs, strict=True):
            ran = f"+{run[0] - t0:6.2f} s" if run else f"{'?':>8}"
            took = f"{(run[1] - run[0]) * 1000:5.1f} ms" if run else f"{'':>7}"
            lines.append(f"    +{at - t0:6.2f} s  {ran}  {took}  {_short(code)}")
        marks = []
        if timing.get("call_complete"):
            marks.append(f"block closed +{timing['call_complete'] - t0:.2f} s")
        if timing.get("result_at"):
            marks.append(f"result ready +{timing['result_at'] - t0:.2f} s")
        if timing.get("decode_end"):
            marks.append(f"decoding of that round ended +{timing['decode_end'] - t0:.2f} s")
        lines.append("    " + " · ".join(marks))
        lines.append(f"    output: {_short(message.get('content') or '', 60)}")
    figures = completion.timing
    tokens = completion.completion_tokens
    rate = tokens / figures.decode_seconds if figures.decode_seconds else 0.0
    lines.append(
        f"  {figures.rounds} round(s), {tokens} tokens decoded in {figures.decode_seconds:.1f} s "
        f"({rate:.0f} tokens/s); tool busy {figures.tool_busy_seconds * 1000:.1f} ms, overlap "
        f"{figures.overlap_seconds * 1000:.1f} ms, exposed {figures.exposed_seconds * 1000:.1f} "
        f"ms; {answer.finished - t0:.1f} s in all"
    )
    return lines


def final_answer(answer: Answer) -> str:
    """What the model said in its last round (earlier rounds held the code)."""
    return answer.rounds[-1].text.strip() if answer.rounds else ""


async def show(live: LiveModel, prompt: str, args: argparse.Namespace, out: TextIO) -> Answer:
    out.write(f"\n> {prompt}\n  ")

    def on_text(text: str) -> None:
        out.write(text.replace("\n", "\n  "))
        out.flush()

    def on_event(event: Event) -> None:
        if isinstance(event, ToolResult):
            result = event.content.strip().replace("\n", " | ")
            out.write(f"\n  [{event.name} {event.outcome}: {result[:100]}]\n  ")

    answer = await live.ask(
        prompt,
        mode=Mode(args.mode),
        max_tokens=args.max_tokens,
        max_rounds=args.max_rounds,
        on_text=on_text,
        on_event=on_event,
    )
    out.write("\n\n")
    for line in timeline(answer, live.statements_written(answer)):
        out.write(line + "\n")
    out.write(f"  answer: {final_answer(answer)}\n")
    out.flush()
    return answer


def run(args: argparse.Namespace, model: str, out: TextIO = sys.stdout) -> None:
    async def main() -> None:
        started = time.perf_counter()
        out.write(f"starting SmolLM2-135M-Instruct ({model}) with the python tool…\n")
        out.flush()
        live = await LiveModel.start(model)
        out.write(f"engine ready in {live.engine_start_seconds:.0f} s; mode {args.mode}\n")
        try:
            for prompt in args.prompt or PROMPTS:
                await show(live, prompt, args, out)
        finally:
            await live.stop()
        out.write(f"\nlive part: {time.perf_counter() - started:.0f} s\n")

    asyncio.run(main())
