"""Sampling parameters for forced outputs, without an engine."""

from __future__ import annotations

import re

from conveyor.runtime.engine import literal_regex, sampling_params

TEXTS = ["a b", 'x.*?(y)|z^ $1 {2} [3] back\\slash\nnew line "q"', "é 東京 🚀"]


def test_literal_regex_matches_exactly_the_text() -> None:
    for text in TEXTS:
        assert re.fullmatch(literal_regex(text), text)
        assert not re.fullmatch(literal_regex(text), text + "x")
    assert literal_regex("a b") == "a b"


def test_forced_params_leave_room_for_every_byte() -> None:
    params = sampling_params(1, force="東京")
    assert params.max_tokens >= len("東京".encode())
    assert params.structured_outputs is not None
