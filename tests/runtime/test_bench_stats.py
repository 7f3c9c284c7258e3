"""Confidence intervals, the target rule, and the token agreement check (pure)."""

from __future__ import annotations

import pytest

from conveyor.runtime.bench import stats
from conveyor.runtime.bench.tokens import RoundTokens, agreement


def test_the_interval_holds_the_median_and_narrows_with_more_repetitions() -> None:
    few = [1.0, 1.4, 0.9, 1.2, 1.1]
    many = few * 8
    median, ci = stats.median_ci(few)
    assert median == pytest.approx(1.1) and ci is not None and ci[0] <= median <= ci[1]
    _, ci_many = stats.median_ci(many)
    assert ci_many is not None and ci_many[1] - ci_many[0] <= ci[1] - ci[0]
    assert stats.median_ci([1.0]) == (1.0, None)  # one repetition: no interval


def test_paired_resampling_keeps_repetitions_together() -> None:
    # The machine got slower over the run: both systems slow down alike in each repetition.
    sequential = [2.0, 2.2, 2.4, 2.6, 2.8, 3.0]
    partial = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    value, ci = stats.paired_ci([sequential, partial], stats.reduction)
    assert value == pytest.approx(0.5)
    assert ci == pytest.approx([0.5, 0.5])  # paired: the drift cancels, the ratio is exact


def test_a_target_is_met_only_when_the_whole_interval_clears_it() -> None:
    assert stats.clears([0.41, 0.47], 0.40)
    assert not stats.clears([0.38, 0.47], 0.40)
    assert not stats.clears(None, 0.40)


def test_efficiency_is_undefined_where_nothing_can_be_gained() -> None:
    assert stats.efficiency([10.0], [7.0], [6.0]) == pytest.approx(0.75)
    assert stats.efficiency([5.0], [5.1], [5.0]) is None


def test_equal_token_counts_agree() -> None:
    run = [RoundTokens(40, False), RoundTokens(9, False)]
    result = agreement({"a": [run, run], "b": [run]}, 2)
    assert result.errors == [] and result.planned == [40, 9]
    assert result.not_decoded == {"a": [0, 0], "b": [0]}


def test_different_token_counts_fail_loudly() -> None:
    result = agreement({"a": [[RoundTokens(40, False)]], "b": [[RoundTokens(41, False)]]}, 1)
    assert len(result.errors) == 1 and "a run 0: 40" in result.errors[0]


def test_an_early_abort_may_only_decode_less_and_the_rest_is_reported() -> None:
    whole = [RoundTokens(100, False), RoundTokens(9, False)]
    cut = [RoundTokens(30, True), RoundTokens(9, False)]
    result = agreement({"sequential": [whole], "partial": [cut, cut]}, 2)
    assert result.errors == [] and result.not_decoded["partial"] == [70, 70]
    over = agreement({"sequential": [whole], "partial": [[RoundTokens(101, True)]]}, 2)
    assert over.errors and "more than the 100" in over.errors[0]
