"""When each unit of a round was complete, and the jobs of the ideal bound. Pure.

`conveyor serve` reports, for each call of a round, when the call was recognised, when each of
its units was complete and when the call was complete (the moments its own parser and the
tool's segmenter saw them, against the start of the round's decoding). ``round_jobs`` turns
those moments and the tool times measured alone into the jobs of the ideal bound.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.runtime.bench.ideal import Job
from conveyor.runtime.bench.systems import RoundRecord
from conveyor.runtime.bench.workloads import Round
from conveyor.runtime.calls import units_of
from conveyor.tools.units import Field, Step, Unit

# Tools whose work runs in the background of the unit that starts it (the search request starts
# when ``query`` closes; later fields and ``finish`` only wait for it).
BACKGROUND_TRIGGER = {"search": ("query",)}


@dataclass
class CallArrivals:
    name: str
    started: float
    units: list[tuple[float, Unit]] = field(default_factory=list)
    complete: float | None = None


def call_arrivals(
    record: RoundRecord, round_: Round, specs: dict[str, dict[str, Any]], scale: float = 1.0
) -> list[CallArrivals]:
    """The calls of one round as `conveyor serve` reported them, times multiplied by ``scale``.

    The server notes when each unit was complete; which unit it was (a plan step and what it
    waits for) comes from cutting the scripted arguments with the tool's own segmenter.
    """
    if len(record.calls) != len(round_.calls):
        raise ValueError(
            f"the server reported {len(record.calls)} call(s), the round has {len(round_.calls)}"
        )
    out = []
    for reported, call in zip(record.calls, round_.calls, strict=True):
        units = units_of(specs[call.name], json.dumps(call.arguments, ensure_ascii=False))
        if len(units) != len(reported.units) or reported.started is None:
            raise ValueError(
                f"{call.name}: the server reported {len(reported.units)} unit(s), its segmenter "
                f"cuts {len(units)}"
            )
        arrivals = CallArrivals(call.name, reported.started * scale)
        arrivals.units = [
            (at * scale, unit) for (at, _), unit in zip(reported.units, units, strict=True)
        ]
        if reported.complete is not None:
            arrivals.complete = reported.complete * scale
        out.append(arrivals)
    return out


@dataclass(frozen=True)
class CallDurations:
    """Tool time measured alone for one call: warm-up, each unit, finish (seconds).

    For plan steps ``units`` holds each step's own tool time; ``rejected_at`` is the index of
    the unit the tool refused, if any.
    """

    start: float
    units: tuple[float, ...]
    finish: float
    rejected_at: int | None = None


def durations_from_busy(
    name: str, units: Sequence[Unit], busy: Sequence[tuple[float, float]], rejected: bool
) -> CallDurations:
    """Split a sidecar ``timing.busy`` list (start, each unit, finish) into a call's durations."""
    spans = [b - a for a, b in busy]
    start = spans[0] if spans else 0.0
    fed = spans[1 : 1 + len(units)]
    finish = 0.0 if rejected else (spans[1 + len(units)] if len(spans) > 1 + len(units) else 0.0)
    unit_times = [*fed, *[0.0] * (len(units) - len(fed))]
    trigger = BACKGROUND_TRIGGER.get(name)
    if trigger is not None and busy:
        for i, unit in enumerate(units):
            if isinstance(unit, Field) and unit.path == trigger and i + 1 < len(busy):
                # Its background request lasts until the result is ready at the end of `finish`.
                unit_times[i] = busy[-1][1] - busy[i + 1][0]
                finish = 0.0
                break
    rejected_at = len(fed) - 1 if rejected and fed else None
    return CallDurations(start, tuple(unit_times), finish, rejected_at)


def round_jobs(calls: Sequence[CallArrivals], durations: Sequence[CallDurations]) -> list[Job]:
    """The ideal-bound jobs of a round, in the order their arrival is known."""
    jobs: list[Job] = []
    for call, times in zip(calls, durations, strict=True):
        start = len(jobs)
        jobs.append(Job(call.started, times.start, (), label=f"{call.name} start"))
        background = call.name in BACKGROUND_TRIGGER
        steps: dict[int, int] = {}
        unit_jobs: list[int] = []
        for i, (at, unit) in enumerate(call.units):
            if isinstance(unit, Step):
                after = (start, *(steps[d] for d in unit.deps if d in steps))
                steps[unit.id] = len(jobs)
            elif background:
                after = (start,)
            else:
                after = (len(jobs) - 1,)
            duration = times.units[i] if i < len(times.units) else 0.0
            rejects = times.rejected_at == i
            unit_jobs.append(len(jobs))
            jobs.append(Job(at, duration, after, rejects, f"{call.name} unit {i}"))
        if call.complete is not None and times.rejected_at is None:
            after = tuple(unit_jobs) or (start,)
            jobs.append(Job(call.complete, times.finish, after, label=f"{call.name} finish"))
    return jobs
