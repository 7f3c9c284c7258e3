"""When each unit of a round is complete, from the round's decode timeline; and the ideal jobs.

Pure. A decode timeline is the round's text as it streamed, ``(seconds since the request was
sent, text delta)`` per chunk, measured with no tool running. Replaying it through the same
``ToolCallStream`` and the tools' own segmenters as the runtime gives the moment each call is
recognised, each unit completes and each call is complete. ``round_jobs`` turns those moments
and the tool times measured alone into the jobs of the ideal bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.runtime.bench.ideal import Job, RoundTimeline
from conveyor.tools.parsing import ArgumentsDelta, CallFinished, CallStarted, ToolCallStream
from conveyor.tools.units import Field, Step, Unit, segmenter_from_spec

Chunk = tuple[float, str]

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
    chunks: Sequence[Chunk], specs: dict[str, dict[str, Any]], parser: str = "hermes"
) -> list[CallArrivals]:
    """Every call of the round with the moment each of its units is complete."""
    stream = ToolCallStream(parser)
    calls: dict[str, CallArrivals] = {}
    segmenters: dict[str, Any] = {}

    def on(events: list[Any], at: float) -> None:
        for event in events:
            if isinstance(event, CallStarted):
                calls[event.call_id] = CallArrivals(event.name, at)
                spec = specs[event.name]["x-conveyor"]["segmenter"]
                segmenters[event.call_id] = segmenter_from_spec(spec)
            elif isinstance(event, ArgumentsDelta) and event.call_id in segmenters:
                units = segmenters[event.call_id].feed(event.text)
                calls[event.call_id].units += [(at, u) for u in units]
            elif isinstance(event, CallFinished) and event.call_id in segmenters:
                units = segmenters[event.call_id].close()
                calls[event.call_id].units += [(at, u) for u in units]
                calls[event.call_id].complete = at

    last = 0.0
    for at, text in chunks:
        on(stream.feed(text), at)
        last = at
    on(stream.close(), last)
    return list(calls.values())


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


def round_timeline(
    chunks: Sequence[Chunk],
    specs: dict[str, dict[str, Any]],
    durations: Sequence[CallDurations],
) -> RoundTimeline:
    calls = call_arrivals(chunks, specs)
    decode_end = chunks[-1][0] if chunks else 0.0
    return RoundTimeline(decode_end, tuple(round_jobs(calls, durations)))
