"""The ideal bound of one repetition: a schedule no system can beat.

Inputs, all measured:

- the sequential run of the same repetition: per round, when decoding started and ended and
  when each unit of each call was complete, as `conveyor serve` reports it;
- the shortest decode of each round among the runs of that repetition that decoded it whole
  (every system decodes the same tokens); the sequential timeline is scaled onto it;
- each call's tool time alone on the sidecar, the least of ``--bound-reps`` runs (warm-up,
  each unit, finish; a plan step is the work of its own tool run alone with its resolved
  arguments).

``ideal`` then schedules it with zero dispatch cost (see ``ideal.py`` and docs/benchmark.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.runtime.bench.arrivals import (
    CallArrivals,
    CallDurations,
    call_arrivals,
    durations_from_busy,
    round_jobs,
)
from conveyor.runtime.bench.ideal import RoundTimeline, ideal_latency
from conveyor.runtime.bench.systems import RunRecord
from conveyor.runtime.bench.tools import run_call
from conveyor.runtime.bench.workloads import Round, Workload
from conveyor.runtime.calls import units_of
from conveyor.tools import default_registry
from conveyor.tools.builtin.planner import _arguments as step_arguments
from conveyor.tools.client import SidecarClient
from conveyor.tools.units import Step


async def _call_alone(
    sidecar: SidecarClient, specs: dict[str, dict[str, Any]], name: str, arguments: str
) -> CallDurations:
    run = await run_call(sidecar, specs, name, arguments, spacing=0.005)
    rejected = run.outcome.kind == "reject"
    durations = durations_from_busy(name, run.units, run.busy, rejected)
    steps = [u for u in run.units if isinstance(u, Step)]
    if not steps:
        return durations
    data = (run.outcome.data or {}).get("steps", {})
    outputs = {int(k): str(v.get("content", "")) for k, v in data.items()}
    registry = default_registry()
    times = []
    for step in steps:
        # The planner's own resolver: the arguments exactly as the planner gives its step.
        args = step_arguments(registry.create(step.tool), step.args, outputs)
        alone = await run_call(sidecar, specs, step.tool, json.dumps(args))
        # What the sidecar timed, as for any call, not the whole invocation (which adds the
        # dispatch of a call of its own). Inside the planner a step warms up while it waits for
        # its inputs: only a step that waits for none surely pays its warm-up.
        parts = durations_from_busy(
            step.tool, alone.units, alone.busy, alone.outcome.kind == "reject"
        )
        times.append((0.0 if step.deps else parts.start) + sum(parts.units) + parts.finish)
    # The planner's finish only waits for its steps, which run in the background.
    return CallDurations(durations.start, tuple(times), 0.0)


def least(runs: list[CallDurations]) -> CallDurations:
    """The least each part has been seen to take: a lower bound wants the fastest run."""
    return CallDurations(
        min(r.start for r in runs),
        tuple(min(u) for u in zip(*(r.units for r in runs), strict=True)),
        min(r.finish for r in runs),
        runs[0].rejected_at,
    )


async def tools_alone(
    sidecar: SidecarClient, specs: dict[str, dict[str, Any]], workload: Workload, reps: int
) -> list[list[CallDurations]]:
    """Per round, per call: the least tool time of ``reps`` runs alone."""
    durations: list[list[CallDurations]] = []
    for round_ in workload.rounds:
        row = []
        for call in round_.calls:
            arguments = json.dumps(call.arguments, ensure_ascii=False)
            row.append(
                least(
                    [await _call_alone(sidecar, specs, call.name, arguments) for _ in range(reps)]
                )
            )
        durations.append(row)
    return durations


@dataclass
class Bound:
    """The ideal latency of one repetition and what it was computed from."""

    latency: float
    decode: list[float]  # per round: the decode the timeline was scaled onto
    rounds: list[RoundTimeline]

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency": round(self.latency, 6),
            "decode": [round(d, 6) for d in self.decode],
            "rounds": [
                {
                    "decode_end": round(r.decode_end, 6),
                    "jobs": [
                        {
                            "label": j.label,
                            "arrival": round(j.arrival, 6),
                            "duration": round(j.duration, 6),
                            "after": list(j.after),
                            "rejects": j.rejects,
                        }
                        for j in r.jobs
                    ],
                }
                for r in self.rounds
            ],
        }


def seen_in_runs(
    workload: Workload,
    alone: Sequence[Sequence[CallDurations]],
    runs: Mapping[str, RunRecord],
    specs: dict[str, dict[str, Any]],
) -> list[list[CallDurations]]:
    """Per call, the least of its time alone and what the sidecar measured in ``runs``.

    Every run of a repetition ran the same tool work; the least time any of them saw is still
    a time the work took. (Plan steps run inside the planner: only their time alone is known.)
    """
    out = []
    for r, round_ in enumerate(workload.rounds):
        row = []
        for c, call in enumerate(round_.calls):
            seen = [alone[r][c]]
            units = units_of(specs[call.name], json.dumps(call.arguments, ensure_ascii=False))
            if not any(isinstance(u, Step) for u in units):
                for run in runs.values():
                    if r < len(run.round_log) and c < len(run.round_log[r].calls):
                        reported = run.round_log[r].calls[c]
                        rejected = reported.outcome == "rejected"
                        if reported.busy and rejected == (alone[r][c].rejected_at is not None):
                            seen.append(
                                durations_from_busy(call.name, units, reported.busy, rejected)
                            )
            row.append(least(seen))
        out.append(row)
    return out


def shortest_decode(runs: Mapping[str, RunRecord], rounds: int) -> list[float]:
    """Per round, the shortest decode among the runs that decoded that round whole.

    A round that every run cut short with an early abort takes the shortest of those.
    """
    out = []
    for r in range(rounds):
        logs = [run.round_log[r] for run in runs.values() if r < len(run.round_log)]
        whole = [log.decode for log in logs if not log.aborted] or [log.decode for log in logs]
        if not whole:
            raise ValueError(f"round {r}: no run decoded it")
        out.append(min(whole))
    return out


def _scaled_arrivals(
    run: RunRecord, r: int, round_: Round, decode: float, specs: dict[str, dict[str, Any]]
) -> list[CallArrivals]:
    record = run.round_log[r]
    whole = not record.aborted and record.decode > 0
    return call_arrivals(record, round_, specs, min(1.0, decode / record.decode) if whole else 1.0)


def _earliest(candidates: list[list[CallArrivals]]) -> list[CallArrivals]:
    """Per call, each moment at the earliest any run saw it."""
    out = []
    for calls in zip(*candidates, strict=True):
        first = calls[0]
        units = [
            (min(c.units[i][0] for c in calls), unit) for i, (_, unit) in enumerate(first.units)
        ]
        completes = [c.complete for c in calls if c.complete is not None]
        out.append(
            CallArrivals(
                first.name, min(c.started for c in calls), units, min(completes, default=None)
            )
        )
    return out


def repetition_bound(
    workload: Workload,
    sequential: RunRecord,
    decode: Sequence[float],
    durations: Sequence[Sequence[CallDurations]],
    specs: dict[str, dict[str, Any]],
    others: Sequence[RunRecord] = (),
) -> Bound:
    """The ideal latency of one repetition (pure): see the module docstring.

    ``others`` are the repetition's other Conveyor runs: where one of them saw a unit complete
    earlier than the sequential run did (its decoding ran faster there), the earlier moment counts.
    """
    if len(sequential.round_log) != len(workload.rounds):
        raise ValueError("the sequential run did not run every round")
    timelines = []
    for r, round_ in enumerate(workload.rounds):
        candidates = [_scaled_arrivals(sequential, r, round_, decode[r], specs)]
        for run in others:
            try:
                candidates.append(_scaled_arrivals(run, r, round_, decode[r], specs))
            except (ValueError, IndexError):
                continue  # an aborted round reports fewer units: it cannot say when the rest came
        calls = _earliest(candidates)
        timelines.append(RoundTimeline(decode[r], tuple(round_jobs(calls, durations[r]))))
    return Bound(ideal_latency(timelines), list(decode), timelines)


def abort_skipped(
    sequential: RunRecord,
    partial: RunRecord,
    durations: Sequence[Sequence[CallDurations]],
    planned: Sequence[int | None],
) -> float | None:
    """Share of the tokens left after the rejected unit that partial's early abort skipped.

    ``planned`` gives each round's tokens decoded whole (``tokens.agreement``); the sequential
    run says how many the turn had when the rejected unit was complete, and the partial run's
    tokens say where its decoding stopped.
    """
    for r, row in enumerate(durations):
        for c, times in enumerate(row):
            if times.rejected_at is None or r >= len(partial.round_log):
                continue
            if not partial.round_log[r].aborted:
                return 0.0
            whole = planned[r]
            if whole is None:
                return None
            at_reject = sequential.round_log[r].calls[c].units[times.rejected_at][1]
            left = whole - at_reject
            return (whole - partial.round_log[r].tokens) / left if left > 0 else None
    return None
