"""Measuring the inputs of the ideal bound: each unit's tool time alone, each round's decode.

Tool time: every call of the workload runs alone on the sidecar (all units at once, then
finish); its ``timing.busy`` gives the warm-up, each unit and the finish. A plan step's time is
its own tool run alone with its resolved arguments. Decode: each round is streamed from
`conveyor serve` with ``tool_choice: "none"`` (plain text, no tool runs) and every chunk is
timestamped on arrival. Medians over the repetitions go into ``arrivals``/``ideal``.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from dataclasses import dataclass
from typing import Any

import httpx

from conveyor.runtime.bench.arrivals import (
    CallDurations,
    Chunk,
    durations_from_busy,
    round_timeline,
)
from conveyor.runtime.bench.ideal import RoundTimeline, ideal_latency, round_bound
from conveyor.runtime.bench.tools import result_text, run_call
from conveyor.runtime.bench.workloads import Workload
from conveyor.tools.client import SidecarClient
from conveyor.tools.units import Ref, Step

_TEXT_REF = re.compile(r"\$(\d+)")


def _resolve(value: Any, outputs: dict[int, str]) -> Any:
    if isinstance(value, Ref):
        return outputs.get(value.id, "")
    if isinstance(value, str):
        return _TEXT_REF.sub(lambda m: outputs.get(int(m.group(1)), m.group(0)), value)
    if isinstance(value, list):
        return [_resolve(v, outputs) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, outputs) for k, v in value.items()}
    return value


def step_arguments(step: Step, spec: dict[str, Any], outputs: dict[int, str]) -> dict[str, Any]:
    """A plan step's arguments as the planner gives them to its tool (names and substitutions)."""
    names = list(spec["function"]["parameters"].get("properties", {}))
    out: dict[str, Any] = {}
    for key, value in step.args.items():
        if isinstance(key, int):
            key = names[key] if key < len(names) else f"arg{key}"
        out[key] = _resolve(value, outputs)
    return out


async def _call_alone(
    sidecar: SidecarClient, specs: dict[str, dict[str, Any]], name: str, arguments: str
) -> tuple[CallDurations, str]:
    run = await run_call(sidecar, specs, name, arguments, spacing=0.005)
    rejected = run.outcome.kind == "reject"
    durations = durations_from_busy(name, run.units, run.busy, rejected)
    steps = [u for u in run.units if isinstance(u, Step)]
    if steps:
        data = (run.outcome.data or {}).get("steps", {})
        outputs = {int(k): str(v.get("content", "")) for k, v in data.items()}
        times = []
        for step in steps:
            args = step_arguments(step, specs[step.tool], outputs)
            alone = await run_call(sidecar, specs, step.tool, json.dumps(args))
            timing = alone.outcome.timing
            times.append(float(timing.get("finished", 0.0)) - float(timing.get("started", 0.0)))
        # The planner's finish only waits for its steps, which run in the background.
        durations = CallDurations(durations.start, tuple(times), 0.0)
    return durations, result_text(run.outcome)


def _median_durations(runs: list[CallDurations]) -> CallDurations:
    return CallDurations(
        statistics.median(r.start for r in runs),
        tuple(statistics.median(u) for u in zip(*(r.units for r in runs), strict=True)),
        statistics.median(r.finish for r in runs),
        runs[0].rejected_at,
    )


async def tools_alone(
    sidecar: SidecarClient, specs: dict[str, dict[str, Any]], workload: Workload, reps: int
) -> tuple[list[list[CallDurations]], list[list[str]]]:
    """Per round, per call: median durations; and the tool messages' contents (first run)."""
    durations: list[list[CallDurations]] = []
    contents: list[list[str]] = []
    for round_ in workload.rounds:
        round_durations, round_contents = [], []
        for call in round_.calls:
            runs = []
            for _ in range(reps):
                times, content = await _call_alone(
                    sidecar, specs, call.name, json.dumps(call.arguments, ensure_ascii=False)
                )
                runs.append(times)
            round_durations.append(_median_durations(runs))
            round_contents.append(content)
        durations.append(round_durations)
        contents.append(round_contents)
    return durations, contents


def round_messages(workload: Workload, contents: list[list[str]], index: int) -> list[dict]:
    """The prompt of round ``index``, as the runtime builds it (raw turn text, tool results)."""
    messages = list(workload.messages)
    for r in range(index):
        round_ = workload.rounds[r]
        messages.append({"role": "assistant", "content": round_.text()})
        for n, (call, content) in enumerate(zip(round_.calls, contents[r], strict=True)):
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": f"call_{r}_{n}",
                    "name": call.name,
                    "content": content,
                }
            )
    return messages


async def decode_timeline(
    http: httpx.AsyncClient, model: str, messages: list[dict], text: str
) -> list[Chunk]:
    """Stream one round with no tool running; each content chunk with its arrival time."""
    body = {
        "model": model,
        "messages": messages,
        "stream": True,
        "tool_choice": "none",
        "temperature": 0.0,
        "conveyor": {"replay": [text]},
    }
    chunks: list[Chunk] = []
    sent = time.perf_counter()
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            at = time.perf_counter() - sent
            payload = json.loads(line[len("data: ") :])
            for choice in payload.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    chunks.append((at, piece))
    return align(chunks, text)


async def plain_duration(
    http: httpx.AsyncClient, model: str, messages: list[dict], text: str
) -> float:
    """Seconds one round takes unstreamed with no tool running (as the systems are called)."""
    body = {
        "model": model,
        "messages": messages,
        "tool_choice": "none",
        "temperature": 0.0,
        "conveyor": {"replay": [text]},
    }
    sent = time.perf_counter()
    response = await http.post("/v1/chat/completions", json=body)
    response.raise_for_status()
    return time.perf_counter() - sent


def align(chunks: list[Chunk], text: str, slack: int = 16) -> list[Chunk]:
    """Re-cut streamed chunks onto the forced text.

    As plain text the detokenizer drops the added ``<tool_call>`` token (its step streams an
    empty delta), so such a gap is given to the next chunk: the call is seen one token late.
    """
    out: list[Chunk] = []
    pos = 0
    for at, piece in chunks:
        found = text.find(piece, pos, pos + slack + len(piece))
        if found < 0:
            raise RuntimeError(f"streamed text {piece!r} is not the forced text at {pos}")
        out.append((at, text[pos : found + len(piece)]))
        pos = found + len(piece)
    if pos < len(text):
        if len(text) - pos > slack or not out:
            raise RuntimeError(f"the stream ended {len(text) - pos} characters early")
        out[-1] = (out[-1][0], out[-1][1] + text[pos:])
    return out


@dataclass
class Bound:
    latency: float
    rounds: list[RoundTimeline]
    decode_ends: list[float]
    abort_decode_ends: list[float]
    # Per round: chunks (about one token each) decoded after the rejected unit was complete.
    tokens_after_reject: list[int | None]
    stream_scales: list[float]  # unstreamed / streamed duration of each round


async def measure_bound(
    http: httpx.AsyncClient,
    model: str,
    sidecar: SidecarClient,
    specs: dict[str, dict[str, Any]],
    workload: Workload,
    reps: int,
    warmup: bool = True,
) -> Bound:
    durations, contents = await tools_alone(sidecar, specs, workload, reps)
    rounds = []
    scales: list[float] = []
    after_reject: list[int | None] = []
    for index, round_ in enumerate(workload.rounds):
        messages = round_messages(workload, contents, index)
        if warmup:  # the prefix cache, as the systems' warm-up requests have it
            await decode_timeline(http, model, messages, round_.text())
        runs = [await decode_timeline(http, model, messages, round_.text()) for _ in range(reps)]
        chunks = sorted(runs, key=lambda c: c[-1][0])[len(runs) // 2]  # the median run
        # Streaming every token costs the serving process CPU on the engine's core, which slows
        # decoding; the same round unstreamed sets the clock, the stream only the proportions.
        plain = statistics.median(
            [await plain_duration(http, model, messages, round_.text()) for _ in range(reps)]
        )
        scale = plain / chunks[-1][0]
        scales.append(scale)
        chunks = [(at * scale, piece) for at, piece in chunks]
        rounds.append(round_timeline(chunks, specs, durations[index]))
        rejects = [j.arrival for j in rounds[-1].jobs if j.rejects]
        after_reject.append(sum(at > rejects[0] for at, _ in chunks) if rejects else None)
    bounds = [round_bound(r) for r in rounds]
    return Bound(
        ideal_latency(rounds),
        rounds,
        [r.decode_end for r in rounds],
        [b.decode_end for b in bounds],
        after_reject,
        scales,
    )
