"""The embedded default model: deterministic, checked, and refused clearly when broken."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.runtime.model import (
    MANIFEST_NAME,
    ModelError,
    TinyModelSpec,
    build_tiny,
    check_model,
)


def test_two_builds_are_byte_identical(tiny_model: Path, tmp_path: Path) -> None:
    again = build_tiny(tmp_path / "again")
    names = sorted(p.name for p in tiny_model.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert MANIFEST_NAME in names and "model.safetensors" in names
    for name in names:
        assert (tiny_model / name).read_bytes() == (again / name).read_bytes(), name


def test_a_model_of_another_recipe_is_rebuilt(tiny_model: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    old = build_tiny(tmp_path / "old", replace(TinyModelSpec(), recipe=1))
    assert build_tiny(old) == old
    assert (old / "model.safetensors").read_bytes() == (
        tiny_model / "model.safetensors"
    ).read_bytes()
    assert json.loads((old / MANIFEST_NAME).read_text())["spec"]["recipe"] == TinyModelSpec().recipe


def test_an_intact_model_is_reused(tiny_model: Path) -> None:
    before = (tiny_model / "model.safetensors").stat().st_mtime_ns
    assert build_tiny(tiny_model) == tiny_model
    assert (tiny_model / "model.safetensors").stat().st_mtime_ns == before


def test_the_tokenizer_keeps_tool_markers_whole(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for marker in ["<tool_call>", "</tool_call>", "<tool_response>", "[TOOL_CALLS]"]:
        ids = tokenizer.encode(marker, add_special_tokens=False)
        # One token, and not a special one: it must survive skip_special_tokens.
        assert len(ids) == 1 and tokenizer.decode(ids, skip_special_tokens=True) == marker


def test_the_chat_template_renders_tools_calls_and_results(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    call = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
    messages = [
        {"role": "user", "content": "one plus one"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "2"},
    ]
    text = tokenizer.apply_chat_template(
        messages, tools=[tool], tokenize=False, add_generation_prompt=True
    )
    assert '"name": "add"' in text.split("\n</tools>")[0]
    assert '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>' in text
    assert "<tool_response>\n2\n</tool_response>" in text
    assert text.endswith("<|im_start|>assistant\n")


@pytest.fixture
def corrupt_model(tiny_model: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "corrupt"
    shutil.copytree(tiny_model, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    return copy


def test_check_model_finds_a_corrupt_file(corrupt_model: Path) -> None:
    with pytest.raises(ModelError, match="model.safetensors does not match its checksum"):
        check_model(corrupt_model)


def test_a_corrupt_model_is_rebuilt(corrupt_model: Path, tiny_model: Path) -> None:
    build_tiny(corrupt_model)
    check_model(corrupt_model)
    weights = (corrupt_model / "model.safetensors").read_bytes()
    assert weights == (tiny_model / "model.safetensors").read_bytes()


def _conveyor(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "conveyor.runtime.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root, model: root / "missing", "does not exist"),
        (lambda root, model: (root / "file").write_text("x") and root / "file", "not a directory"),
        (lambda root, model: (root / "empty").mkdir() or root / "empty", "config.json is missing"),
        (lambda root, model: model, "does not match its checksum"),
    ],
    ids=["missing", "file", "empty-dir", "corrupt"],
)
def test_a_bad_model_path_is_one_clear_line(make, message, tmp_path, corrupt_model) -> None:
    done = _conveyor("generate", "hello", "--model", str(make(tmp_path, corrupt_model)))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("conveyor: error: ") and message in lines[0]
