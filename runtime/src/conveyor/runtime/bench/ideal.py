"""The ideal bound: the latency of a perfect partial executor with zero dispatch cost.

Pure functions over one request's rounds. Each round has the time its decoding ends (measured
with no tool running) and its *jobs*: the warm-up of each call (at the moment the call is
recognised), each unit (at the moment the decoder completes it), and each call's finish (at the
moment the call is complete), with the tool time each takes when run alone. A job starts at the
later of its arrival and the end of the jobs it waits for (by default the previous job of the
same call; plan steps wait for the steps they reference). A job that rejects stops decoding the
moment it ends; jobs that would have arrived later are never written. A round ends at the later
of its last job and its decoding; the next round starts then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Job:
    arrival: float  # seconds from the start of its round
    duration: float  # tool time, measured alone
    after: tuple[int, ...] = ()  # indices of earlier jobs of the same round it waits for
    rejects: bool = False  # the tool refuses the call here: decoding stops when this job ends
    label: str = ""


@dataclass(frozen=True)
class RoundTimeline:
    decode_end: float  # seconds from the start of the round
    jobs: tuple[Job, ...] = ()


@dataclass(frozen=True)
class RoundBound:
    end: float  # when the round is over, from its start
    decode_end: float  # when decoding stops (earlier than measured after an early abort)
    job_ends: tuple[float | None, ...] = field(default_factory=tuple)  # None: never written


def round_bound(timeline: RoundTimeline) -> RoundBound:
    """The end of one round under the perfect executor."""
    ends: list[float] = []
    for i, job in enumerate(timeline.jobs):
        if any(a >= i for a in job.after):
            raise ValueError(f"job {i} ({job.label}) waits for a later job")
        start = max([job.arrival, *(ends[a] for a in job.after)])
        ends.append(start + job.duration)
    decode_end = timeline.decode_end
    for job, end in zip(timeline.jobs, ends, strict=True):
        if job.rejects and job.arrival <= decode_end:
            decode_end = min(decode_end, end)
    kept: list[float | None] = [
        end if job.arrival <= decode_end else None
        for job, end in zip(timeline.jobs, ends, strict=True)
    ]
    last = max([decode_end, *(e for e in kept if e is not None)])
    return RoundBound(last, decode_end, tuple(kept))


def ideal_latency(rounds: Sequence[RoundTimeline]) -> float:
    """The latency of the whole request: its rounds one after the other."""
    return sum(round_bound(r).end for r in rounds)
