"""No dashboard panel or alert may read a metric that a real runtime and sidecar do not export.

Scrapes `/metrics` of the session's running `conveyor serve` (runtime, with vLLM's metrics) and of
its sidecar, and compares with every metric name in charts/conveyor/dashboards/*.json and in the
chart's PrometheusRule. The extraction itself is unit-tested in tests/chart/test_dashboards.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import chart  # noqa: E402
import dashboards  # noqa: E402
import promql  # noqa: E402

pytestmark = pytest.mark.engine

# Series Prometheus makes itself for every target; no exporter serves them.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def scrape(url: str) -> str:
    """GET <url>/metrics; `unix:/path` means the sidecar's Unix socket."""
    if url.startswith("unix:"):
        transport = httpx.HTTPTransport(uds=url.removeprefix("unix:"))
        with httpx.Client(transport=transport, base_url="http://sidecar", timeout=30) as client:
            response = client.get("/metrics")
    else:
        response = httpx.get(url.rstrip("/") + "/metrics", timeout=30)
    response.raise_for_status()
    return response.text


def wanted_names() -> dict[str, set[str]]:
    """Metric name -> where it is used (dashboard files and the alert rules)."""
    used: dict[str, set[str]] = {}
    for path in sorted((chart.CHART / "dashboards").glob("*.json")):
        board: dict[str, Any] = json.loads(path.read_text())
        for name in dashboards.dashboard_metric_names(board):
            used.setdefault(name, set()).add(path.name)
    fetch = chart.ROOT / "scripts" / "fetch_k8s_tools.py"
    subprocess.run([sys.executable, str(fetch)], check=True, timeout=120, cwd=chart.ROOT)
    rendered = chart.objects(chart.template(set_values=["prometheusRule.enabled=true"]))
    for expr in chart.alert_expressions(chart.only(rendered, "PrometheusRule")):
        for name in promql.metric_names(expr):
            used.setdefault(name, set()).add("PrometheusRule")
    return {name: where for name, where in used.items() if name not in SCRAPE_SERIES}


def test_every_plotted_metric_is_exported(conveyor_server: Any) -> None:
    exported = dashboards.exported_metric_names(scrape(conveyor_server.base_url))
    exported |= dashboards.exported_metric_names(scrape(conveyor_server.sidecar_url))
    used = wanted_names()
    assert any(name.startswith("vllm:") for name in exported), "the runtime serves no vLLM metrics"
    missing = {name: sorted(where) for name, where in used.items() if name not in exported}
    assert missing == {}
