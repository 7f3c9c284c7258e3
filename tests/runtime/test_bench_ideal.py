"""The ideal bound on hand-made timelines and runs (pure, no servers).

``test_the_worked_example_of_docs_benchmark_md`` is the example the docs derive by hand.
"""

from __future__ import annotations

import pytest

from conveyor.runtime.bench.arrivals import CallDurations, durations_from_busy
from conveyor.runtime.bench.bound import (
    abort_skipped,
    repetition_bound,
    seen_in_runs,
    shortest_decode,
)
from conveyor.runtime.bench.ideal import Job, RoundTimeline, ideal_latency, round_bound
from conveyor.runtime.bench.systems import CallRecord, RoundRecord, RunRecord
from conveyor.runtime.bench.workloads import parse_workload
from conveyor.tools import default_registry
from conveyor.tools.units import Field

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


def test_search_work_belongs_to_its_query_unit() -> None:
    units = [Field(("query",), "x"), Field(("k",), 3)]
    busy = [(0.0, 0.05), (0.1, 0.1), (0.2, 0.2), (0.2, 1.0)]  # start, query, k, finish
    durations = durations_from_busy("search", units, busy, rejected=False)
    assert durations.units[0] == pytest.approx(0.9) and durations.finish == 0.0


def test_a_rejected_unit_is_marked() -> None:
    units = [Field(("a",), 1), Field(("b",), 2), Field(("c",), 3)]
    durations = durations_from_busy("calculator", units, [(0, 0), (1, 1), (2, 2.5)], rejected=True)
    assert durations.rejected_at == 1 and durations.units == (0, 0.5, 0.0)


SEARCH_THEN_TEXT = parse_workload(
    {
        "name": "example",
        "summary": "a search, more text in the same turn, then the answer",
        "tools": ["search"],
        "messages": [{"role": "user", "content": "q"}],
        "rounds": [
            [{"call": {"name": "search", "arguments": {"query": "x"}}}, {"text": "more"}],
            [{"text": "answer"}],
        ],
    },
    "example.yaml",
)


def _run(latency: float, rounds: list[RoundRecord]) -> RunRecord:
    return RunRecord(
        latency, 0, 0, 0, 0, len(rounds), sum(r.tokens for r in rounds), round_log=rounds
    )


def test_the_worked_example_of_docs_benchmark_md() -> None:
    # The sequential run: round 0 decodes for 1.0 s; `search` is recognised at 0.05 s, its
    # `query` unit is complete at 0.30 s (20 tokens in), the call at 0.35 s.
    search = CallRecord("search", "ok", 0.05, [(0.30, 20)], 0.35)
    sequential = _run(2.40, [RoundRecord(1.0, 60, calls=[search]), RoundRecord(0.5, 20)])
    partial = _run(1.70, [RoundRecord(0.9, 60), RoundRecord(0.6, 20)])
    peer = _run(2.60, [RoundRecord(1.2, 60), RoundRecord(0.55, 20)])
    runs = {"conveyor-sequential": sequential, "conveyor-partial": partial, "peer": peer}
    # The shortest whole decode of each round in this repetition: partial's, then sequential's.
    decode = shortest_decode(runs, 2)
    assert decode == [0.9, 0.5]
    # Alone, the search takes 0.01 s to start and 0.8 s from `query` to its result.
    durations = [[CallDurations(0.01, (0.8,), 0.0)], []]
    specs = {s["function"]["name"]: s for s in default_registry().specs()}
    bound = repetition_bound(SEARCH_THEN_TEXT, sequential, decode, durations, specs)
    # Round 0 is scaled by 0.9: `query` arrives at 0.27 s and its result is ready at 1.07 s,
    # after the 0.9 s of decoding; round 1 is 0.5 s of decoding: 1.57 s in all.
    start, query, finish = bound.rounds[0].jobs
    assert (start.arrival, query.arrival, finish.arrival) == pytest.approx((0.045, 0.27, 0.315))
    assert bound.latency == pytest.approx(1.07 + 0.5)
    assert all(bound.latency <= run.latency for run in runs.values())


def test_an_aborted_round_does_not_set_the_decode_and_the_skip_is_counted_in_tokens() -> None:
    calc = CallRecord("calculator", "rejected", 0.01, [(0.1, 20)], 0.12)
    # Sequential aborts too (after the whole call), the peer decodes the whole turn.
    sequential = _run(0.6, [RoundRecord(0.3, 30, True, calls=[calc]), RoundRecord(0.2, 10)])
    partial = _run(0.5, [RoundRecord(0.25, 25, aborted=True), RoundRecord(0.2, 10)])
    peer = _run(1.5, [RoundRecord(1.0, 100), RoundRecord(0.3, 10)])
    runs = {"conveyor-sequential": sequential, "conveyor-partial": partial, "peer": peer}
    assert shortest_decode(runs, 2) == [1.0, 0.2]
    both = {"conveyor-sequential": sequential, "conveyor-partial": partial}
    assert shortest_decode(both, 2) == [0.25, 0.2]  # no whole run: the shortest that ran
    durations = [[CallDurations(0.0, (0.01,), 0.0, rejected_at=0)], []]
    workload = parse_workload(
        {
            "name": "v", "summary": "", "tools": ["calculator"], "messages": [],
            "rounds": [[{"call": {"name": "calculator", "arguments": {"expression": 1}}},
                        {"text": "long working"}], [{"text": "end"}]],
        },
        "v.yaml",
    )  # fmt: skip
    # 100 tokens in all, 20 of them by the rejected field: partial left 75 of the 80 undecoded.
    assert abort_skipped(sequential, partial, durations, [100, 10]) == pytest.approx(75 / 80)
    specs = {s["function"]["name"]: s for s in default_registry().specs()}
    bound = repetition_bound(workload, sequential, [1.0, 0.2], durations, specs)
    assert bound.rounds[0].decode_end == pytest.approx(1.0)
    # Scaled by at most 1: the field arrives at 0.1 s, the reject lands 0.01 s later.
    assert bound.latency == pytest.approx(0.11 + 0.2)
    assert all(bound.latency <= run.latency for run in runs.values())


def test_a_server_report_that_does_not_match_the_segmenter_is_an_error() -> None:
    wrong = CallRecord("search", "ok", 0.05, [(0.1, 5), (0.2, 9)], 0.35)  # two units, not one
    sequential = _run(2.0, [RoundRecord(1.0, 60, calls=[wrong]), RoundRecord(0.5, 20)])
    specs = {s["function"]["name"]: s for s in default_registry().specs()}
    durations = [[CallDurations(0.01, (0.8,), 0.0)], []]
    with pytest.raises(ValueError, match="unit"):
        repetition_bound(SEARCH_THEN_TEXT, sequential, [1.0, 0.5], durations, specs)


def test_tool_times_are_the_least_seen_alone_or_in_the_repetition() -> None:
    specs = {s["function"]["name"]: s for s in default_registry().specs()}
    # Alone, the warm-up was slow (a busy moment); the partial run of the repetition saw it fast.
    alone = [[CallDurations(0.45, (0.8,), 0.0)], []]
    busy = [(10.0, 10.05), (10.2, 10.2), (10.3, 10.9)]  # start, query, finish (result ready)
    search = CallRecord("search", "ok", 0.05, [(0.3, 20)], 0.35, busy)
    runs = {"conveyor-partial": _run(1.7, [RoundRecord(0.9, 60, calls=[search])])}
    (row, _) = seen_in_runs(SEARCH_THEN_TEXT, alone, runs, specs)
    assert row[0].start == pytest.approx(0.05) and row[0].units == pytest.approx((0.7,))


def test_a_unit_counts_from_the_earliest_run_that_saw_it() -> None:
    specs = {s["function"]["name"]: s for s in default_registry().specs()}
    search = CallRecord("search", "ok", 0.05, [(0.30, 20)], 0.35)
    faster = CallRecord("search", "ok", 0.04, [(0.20, 20)], 0.25)  # partial decoded faster here
    sequential = _run(2.4, [RoundRecord(1.0, 60, calls=[search]), RoundRecord(0.5, 20)])
    partial = _run(1.6, [RoundRecord(1.0, 60, calls=[faster]), RoundRecord(0.5, 20)])
    durations = [[CallDurations(0.0, (0.8,), 0.0)], []]
    alone = repetition_bound(SEARCH_THEN_TEXT, sequential, [1.0, 0.5], durations, specs)
    both = repetition_bound(SEARCH_THEN_TEXT, sequential, [1.0, 0.5], durations, specs, [partial])
    assert alone.latency == pytest.approx(0.30 + 0.8 + 0.5)
    assert both.latency == pytest.approx(0.20 + 0.8 + 0.5) and both.latency <= partial.latency
