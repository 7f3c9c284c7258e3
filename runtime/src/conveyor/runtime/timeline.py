"""Interval arithmetic for the timing of a request: decode, tool busy time, overlap, exposure.

Pure functions over ``(start, end)`` pairs in one clock (``time.time()`` seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Interval = tuple[float, float]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping intervals covering the same time; empty ones dropped."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def total(intervals: Iterable[Interval]) -> float:
    """Seconds covered by at least one interval."""
    return sum(end - start for start, end in merge(intervals))


def overlap(a: Iterable[Interval], b: Iterable[Interval]) -> float:
    """Seconds covered by both ``a`` and ``b``."""
    left, right = merge(a), merge(b)
    i = j = 0
    covered = 0.0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(left[i][1], right[j][1])
        covered += max(0.0, end - start)
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return covered


def busy_intervals(timing: Mapping[str, Any]) -> list[Interval]:
    """The ``busy`` intervals of a sidecar ``timing`` dict, tolerating missing or bad entries."""
    busy: Sequence[Any] = timing.get("busy") or ()
    out = []
    for pair in busy:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            start, end = pair
            if isinstance(start, int | float) and isinstance(end, int | float) and end >= start:
                out.append((float(start), float(end)))
    return out
