"""The Grafana dashboards load, have unique panel ids and well-formed PromQL; checks can fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chart
import dashboards
import pytest
from promql import check, metric_names

DASHBOARDS = sorted((chart.CHART / "dashboards").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_there_is_a_conveyor_dashboard() -> None:
    assert [path.name for path in DASHBOARDS] == ["conveyor.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_has_no_problems(path: Path) -> None:
    assert dashboards.problems(load(path)) == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_panel_uses_the_datasource_variable(path: Path) -> None:
    for panel in dashboards.panels(load(path)):
        if panel.get("targets"):
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_the_dashboard_plots_what_the_issue_asks_for() -> None:
    board = load(chart.CHART / "dashboards" / "conveyor.json")
    names = dashboards.dashboard_metric_names(board)
    for wanted in [
        "conveyor_request_duration_seconds_bucket",
        "conveyor_tool_overlap_seconds_sum",
        "conveyor_tool_execution_seconds_sum",
        "conveyor_tool_exposed_seconds_bucket",
        "conveyor_tool_calls_total",
        "conveyor_early_aborts_total",
        "conveyor_decode_tokens_saved_total",
        "conveyor_sidecar_invocations_in_flight",
        "conveyor_sidecar_worker_crashes_total",
        "conveyor_sidecar_limit_kills_total",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:generation_tokens_total",
    ]:
        assert wanted in names
    latency = next(p for p in dashboards.panels(board) if p["title"].startswith("Request latency"))
    exprs = " ".join(t["expr"] for t in latency["targets"])
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.95," in exprs
    assert "by (le, mode)" in exprs


def test_duplicate_panel_ids_and_missing_variables_are_found() -> None:
    board = {
        "panels": [
            {"id": 1, "title": "a", "targets": [{"expr": "up"}]},
            {"id": 2, "title": "row", "panels": [{"id": 1, "title": "b"}]},
        ],
        "templating": {"list": [{"name": "datasource", "type": "datasource"}]},
    }
    found = dashboards.problems(board)
    assert "panel id 1 is used twice" in found
    assert "template variable `tool` is missing" in found


def test_a_broken_query_in_a_panel_or_a_variable_is_found() -> None:
    board = {
        "panels": [{"id": 1, "title": "a", "targets": [{"expr": "sum(rate(x[5m])"}]}],
        "templating": {
            "list": [
                {"name": n, "type": "query", "query": {"query": f"label_values(y{{a=b}}, {n})"}}
                for n in dashboards.REQUIRED_VARIABLES
            ]
        },
    }
    found = dashboards.problems(board)
    assert any("unclosed '('" in problem for problem in found)
    assert any("malformed label matcher `a = b`" in problem for problem in found)


@pytest.mark.parametrize(
    ("expr", "error"),
    [
        ("rate(x[5m]", "unclosed '('"),
        ("rate(x[5m]))", "unbalanced ')'"),
        ("sum(rat(x[5m]))", "unknown function `rat`"),
        ('x{a="1" b="2"}', "malformed label matcher"),
        ('x{a=="1"}', "malformed label matcher"),
        ("x{a=1}", "malformed label matcher"),
        ("rate(x[5 m])", "malformed range"),
        ("rate(x[5q])", "malformed range"),
        ("x # y", "unexpected character"),
        ("", "empty expression"),
    ],
)
def test_the_promql_check_finds_typos(expr: str, error: str) -> None:
    assert any(error in problem for problem in check(expr)), check(expr)


@pytest.mark.parametrize(
    "expr",
    [
        'histogram_quantile(0.95, sum by (le, mode) (rate(a_bucket{ns=~"$ns"}[$__rate_interval])))',
        "sum(x) without (a) * on (b) group_left (c) y",
        "rate(x[1h:5m]) > bool 0.5 unless z offset 5m",
        'max_over_time(x[${window}]) or vector(0) and {"name.with.dots", a!~".+"}',
        "-1 + 2e3 * 0x1f / count(up)",
    ],
)
def test_the_promql_check_accepts_valid_queries(expr: str) -> None:
    assert check(expr) == []


def test_metric_names_skip_functions_labels_and_keywords() -> None:
    expr = (
        'sum by (tool) (rate(a_total{tool=~"$tool", le="1"}[5m]))'
        " / on (tool) group_left (x) b_seconds_sum > bool Inf"
        ' or {"c.d"} or {__name__="e"} or vllm:num_requests_waiting offset 1h'
    )
    assert metric_names(expr) == {
        "a_total",
        "b_seconds_sum",
        "c.d",
        "e",
        "vllm:num_requests_waiting",
    }


def test_variable_queries_are_read_through_grafana_functions() -> None:
    board = {
        "templating": {
            "list": [
                {"name": "ns", "type": "query", "query": "label_values(m_count, namespace)"},
                {"name": "a", "type": "query", "query": {"query": "label_values(job)"}},
                {"name": "b", "type": "query", "query": "query_result(topk(3, n))"},
                {"name": "c", "type": "query", "query": "metrics(conveyor_.*)"},
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
            ]
        }
    }
    assert dashboards.dashboard_metric_names(board) == {"m_count", "n"}


def test_exported_names_follow_the_metric_type() -> None:
    exposition = "\n".join(
        [
            "# HELP conveyor_tool_calls_total Tool calls.",
            "# TYPE conveyor_tool_calls_total counter",
            "# TYPE conveyor_request_duration_seconds histogram",
            "# TYPE vllm:num_requests_running gauge",
            'vllm:num_requests_running{engine="0"} 0.0',
            "# TYPE legacy counter",
            'python_gc_objects_collected_total{generation="0"} 12.0',
        ]
    )
    assert dashboards.exported_metric_names(exposition) == {
        "conveyor_tool_calls_total",
        "conveyor_request_duration_seconds_bucket",
        "conveyor_request_duration_seconds_sum",
        "conveyor_request_duration_seconds_count",
        "vllm:num_requests_running",
        "legacy_total",
        "python_gc_objects_collected_total",
    }
