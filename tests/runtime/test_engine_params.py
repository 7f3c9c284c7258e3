"""Engine arguments and sampling parameters for forced outputs, without an engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conveyor.runtime.engine import EngineOptions, engine_overrides, literal_regex, sampling_params
from conveyor.runtime.model import MANIFEST_NAME

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


def test_a_model_we_built_runs_in_the_dtype_it_was_stored_in(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"spec": {"dtype": "float32"}, "files": {}}))
    assert EngineOptions(model=str(tmp_path)).engine_args().dtype == "float32"
    # The command line still wins; other models get vLLM's own choice.
    chosen = EngineOptions(model=str(tmp_path), extra=engine_overrides(["--dtype", "bfloat16"]))
    assert chosen.engine_args().dtype == "bfloat16"
    assert EngineOptions(model=str(tmp_path / "elsewhere")).engine_args().dtype == "auto"
