"""Medians with 95 % bootstrap confidence intervals, alone and over paired repetitions. Pure.

Repetitions are paired: in repetition ``i`` every system ran once, in a random order, so a
statistic that compares systems resamples whole repetitions (the same indices for all), which
keeps the pairing and with it what the machine was doing at that moment.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence

RESAMPLES = 2000
SEED = 20_251_203  # fixed: the same data always gives the same interval


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def paired_ci(
    columns: Sequence[Sequence[float]],
    statistic: Callable[..., float | None],
    level: float = 0.95,
    resamples: int = RESAMPLES,
) -> tuple[float | None, list[float] | None]:
    """``statistic(*columns)`` and its percentile-bootstrap interval over paired rows.

    ``columns`` have one value per repetition each (equal lengths). A resample where the
    statistic is undefined (None) is skipped; no interval with fewer than 2 repetitions.
    """
    n = len(columns[0]) if columns else 0
    if any(len(c) != n for c in columns):
        raise ValueError("paired columns must have one value per repetition each")
    if n == 0:
        return None, None
    point = statistic(*columns)
    if point is None or n < 2:
        return point, None
    rng = random.Random(SEED)
    draws = []
    for _ in range(resamples):
        rows = [rng.randrange(n) for _ in range(n)]
        value = statistic(*([c[i] for i in rows] for c in columns))
        if value is not None and not math.isnan(value):
            draws.append(value)
    if len(draws) < resamples // 2:
        return point, None
    tail = (1 - level) / 2 * 100
    return point, [percentile(draws, tail), percentile(draws, 100 - tail)]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def median_ci(values: Sequence[float]) -> tuple[float | None, list[float] | None]:
    return paired_ci([values], median)


def reduction(sequential: Sequence[float], partial: Sequence[float]) -> float | None:
    """1 - median(partial) / median(sequential): the share of latency partial execution saves."""
    return 1 - statistics.median(partial) / statistics.median(sequential)


def speedup(peer: Sequence[float], partial: Sequence[float]) -> float | None:
    return statistics.median(peer) / statistics.median(partial)


def efficiency(
    sequential: Sequence[float], partial: Sequence[float], ideal: Sequence[float]
) -> float | None:
    """(seq - partial) / (seq - ideal) on medians: the share of the reachable gain obtained."""
    seq = statistics.median(sequential)
    reachable = seq - statistics.median(ideal)
    if reachable <= 1e-9:
        return None  # nothing to gain (no overlap possible)
    return (seq - statistics.median(partial)) / reachable


def clears(ci: Sequence[float] | None, target: float, above: bool = True) -> bool:
    """A target is met only when the whole interval is on its side."""
    if ci is None:
        return False
    return ci[0] >= target if above else ci[1] <= target
