"""Interval arithmetic behind the overlap and exposure figures."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conveyor.runtime.timeline import busy_intervals, merge, overlap, total

intervals = st.lists(
    st.tuples(st.integers(0, 50), st.integers(0, 50)).map(lambda p: (float(min(p)), float(max(p)))),
    max_size=8,
)


def test_merge_and_total() -> None:
    assert merge([(3, 4), (0, 1), (0.5, 2), (2, 2)]) == [(0, 2), (3, 4)]
    assert total([(0, 1), (0.5, 2), (3, 4)]) == 3


def test_overlap_of_tool_and_decode() -> None:
    decode = [(0.0, 10.0), (12.0, 15.0)]
    busy = [(2.0, 4.0), (9.0, 13.0), (16.0, 17.0)]
    assert overlap(busy, decode) == 2 + 1 + 1


@given(intervals, intervals)
def test_overlap_matches_a_unit_grid(a, b) -> None:
    covered = lambda xs, t: any(s <= t < e for s, e in xs)  # noqa: E731
    expected = sum(covered(a, t) and covered(b, t) for t in range(50))
    assert overlap(a, b) == expected == overlap(b, a)
    assert overlap(a, a) == total(a)


def test_busy_intervals_ignore_garbage() -> None:
    timing = {"busy": [[1, 2], [3], "x", [5, 4], [6.5, 7]]}
    assert busy_intervals(timing) == [(1.0, 2.0), (6.5, 7.0)]
    assert busy_intervals({}) == []
