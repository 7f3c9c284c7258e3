"""The ideal bound and the unit arrivals on hand-made timelines (pure, no servers)."""

from __future__ import annotations

import json

import pytest

from conveyor.runtime.bench.arrivals import (
    CallDurations,
    call_arrivals,
    durations_from_busy,
    round_jobs,
)
from conveyor.runtime.bench.bound import align, step_arguments
from conveyor.runtime.bench.ideal import Job, RoundTimeline, efficiency, ideal_latency, round_bound
from conveyor.tools import default_registry
from conveyor.tools.units import Field, Ref, Step

SPECS = {s["function"]["name"]: s for s in default_registry().specs()}


def test_units_start_when_they_arrive_or_when_the_previous_unit_ends() -> None:
    jobs = (
        Job(0.0, 0.1),  # warm-up
        Job(0.2, 0.5, (0,)),  # runs 0.2-0.7
        Job(0.3, 0.4, (1,)),  # waits for unit 1: 0.7-1.1
        Job(1.5, 0.2, (2,)),  # arrives after: 1.5-1.7
    )
    bound = round_bound(RoundTimeline(1.6, jobs))
    assert bound.job_ends == pytest.approx((0.1, 0.7, 1.1, 1.7))
    assert bound.end == pytest.approx(1.7)  # the last tool, not the decode, ends the round


def test_the_round_ends_with_decoding_when_the_tools_are_done_first() -> None:
    assert round_bound(RoundTimeline(2.0, (Job(0.1, 0.5),))).end == pytest.approx(2.0)


def test_plan_steps_wait_only_for_their_dependencies() -> None:
    jobs = (
        Job(0.0, 0.0),  # planner start
        Job(0.1, 0.8, (0,)),  # $1 search: 0.1-0.9
        Job(0.2, 0.8, (0,)),  # $2 search, in parallel: 0.2-1.0
        Job(0.3, 0.1, (0, 1, 2)),  # $3 needs both: 1.0-1.1
        Job(0.4, 0.05, (0, 3)),  # $4 needs $3: 1.1-1.15
        Job(0.5, 0.0, (1, 2, 3, 4)),  # finish
    )
    assert round_bound(RoundTimeline(0.5, jobs)).end == pytest.approx(1.15)


def test_a_reject_stops_decoding_and_drops_what_was_not_written_yet() -> None:
    jobs = (Job(0.0, 0.0), Job(0.3, 0.01, (0,), rejects=True), Job(2.0, 0.5, (1,)))
    bound = round_bound(RoundTimeline(3.0, jobs))
    assert bound.decode_end == pytest.approx(0.31)
    assert bound.job_ends[2] is None
    assert bound.end == pytest.approx(0.31)


def test_rounds_run_one_after_the_other() -> None:
    rounds = [RoundTimeline(1.0, (Job(0.5, 1.0),)), RoundTimeline(0.25)]
    assert ideal_latency(rounds) == pytest.approx(1.5 + 0.25)


def test_a_job_cannot_wait_for_a_later_one() -> None:
    with pytest.raises(ValueError):
        round_bound(RoundTimeline(1.0, (Job(0.0, 0.1, (1,)), Job(0.0, 0.1))))


def test_efficiency() -> None:
    assert efficiency(10.0, 7.0, 6.0) == pytest.approx(0.75)
    assert efficiency(5.0, 5.1, 5.0) is None  # nothing to gain: no ratio


def _chunks(text: str, size: int = 3, step: float = 0.01) -> list[tuple[float, str]]:
    return [((i // size + 1) * step, text[i : i + size]) for i in range(0, len(text), size)]


def test_arrivals_follow_the_decode_timeline() -> None:
    code = "a = 1\nb = 2\nprint(a + b)\n"
    text = (
        "<tool_call>\n"
        + json.dumps({"name": "python", "arguments": {"code": code}})
        + "\n</tool_call>"
    )
    (call,) = call_arrivals(_chunks(text), SPECS)
    assert call.name == "python"
    times = [at for at, _ in call.units]
    assert len(call.units) == 3 and times == sorted(times)
    # `a = 1` is complete once `b` starts, long before the call is.
    assert times[0] < times[-1] <= call.complete


def test_search_work_belongs_to_its_query_unit() -> None:
    units = [Field(("query",), "x"), Field(("purpose",), "why")]
    busy = [(0.0, 0.05), (0.1, 0.1), (0.2, 0.2), (0.2, 1.0)]  # start, query, purpose, finish
    durations = durations_from_busy("search", units, busy, rejected=False)
    assert durations.units[0] == pytest.approx(0.9) and durations.finish == 0.0
    text = (
        "<tool_call>\n"
        + json.dumps({"name": "search", "arguments": {"query": "x", "purpose": "why " * 40}})
        + "\n</tool_call>"
    )
    chunks = _chunks(text, size=2)
    jobs = round_jobs(call_arrivals(chunks, SPECS), [durations])
    end = round_bound(RoundTimeline(chunks[-1][0], tuple(jobs))).end
    query_arrival = jobs[1].arrival
    assert end == pytest.approx(max(chunks[-1][0], query_arrival + 0.9))


def test_a_rejected_unit_is_marked() -> None:
    units = [Field(("a",), 1), Field(("b",), 2), Field(("c",), 3)]
    durations = durations_from_busy("calculator", units, [(0, 0), (1, 1), (2, 2.5)], rejected=True)
    assert durations.rejected_at == 1 and durations.units == (0, 0.5, 0.0)


def test_plan_step_jobs_carry_their_dependencies() -> None:
    plan = '$1 = search("a")\n$2 = search("b")\n$3 = calculator("$1 + $2")\n'
    text = (
        "<tool_call>\n"
        + json.dumps({"name": "planner", "arguments": {"plan": plan}})
        + "\n</tool_call>"
    )
    calls = call_arrivals(_chunks(text), SPECS)
    jobs = round_jobs(calls, [CallDurations(0.0, (0.8, 0.8, 0.1), 0.0)])
    assert [j.after for j in jobs[1:4]] == [(0,), (0,), (0, 1, 2)]


def test_step_arguments_resolve_references() -> None:
    step = Step(3, "calculator", {0: "$1 + 1"}, (1,))
    assert step_arguments(step, SPECS["calculator"], {1: "41"}) == {"expression": "41 + 1"}
    step = Step(2, "python", {"code": Ref(1)}, (1,))
    assert step_arguments(step, SPECS["python"], {1: "print(1)"}) == {"code": "print(1)"}


def test_align_gives_a_dropped_token_to_the_next_chunk() -> None:
    text = "hi\n<tool_call>\n{}"
    chunks = [(0.1, "hi\n"), (0.3, "\n{"), (0.4, "}")]
    assert align(chunks, text) == [(0.1, "hi\n"), (0.3, "<tool_call>\n{"), (0.4, "}")]
    with pytest.raises(RuntimeError):
        align([(0.1, "other text entirely")], text)
