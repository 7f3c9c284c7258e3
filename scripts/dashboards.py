"""What the Grafana dashboards ask Prometheus for, and whether they ask it well.

Pure functions over a dashboard's JSON: its PromQL expressions (panel targets and template
variable queries), the light PromQL check of each, unique panel ids, and the metric names it
plots — which tests/e2e compares with the `/metrics` pages of a real runtime and sidecar.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from promql import check, metric_names

# Grafana's Prometheus variable functions are not PromQL; their selector argument is.
_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)\s*$")
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.+)\)\s*$")
_LABEL_NAMES = re.compile(r"^\s*label_names\((?P<selector>.*)\)\s*$")
_METRICS = re.compile(r"^\s*metrics\((?P<regex>.*)\)\s*$")
REQUIRED_VARIABLES = ("datasource", "namespace", "service", "tool")


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _variable_expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        where = f"variable `{variable.get('name')}`"
        if match := _LABEL_VALUES.match(text):
            if match["selector"]:
                yield where, match["selector"]
        elif match := _QUERY_RESULT.match(text):
            yield where, match["expr"]
        elif match := _LABEL_NAMES.match(text):
            if match["selector"].strip():
                yield where, match["selector"]
        elif not _METRICS.match(text):
            yield where, text


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every query the dashboard sends to Prometheus."""
    found: list[tuple[str, str]] = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                found.append((f"panel {panel.get('id')} `{panel.get('title')}`", target["expr"]))
    found.extend(_variable_expressions(dashboard))
    return found


def problems(dashboard: dict[str, Any]) -> list[str]:
    """Everything wrong with a dashboard that can be seen without Prometheus."""
    found: list[str] = []
    seen: set[int] = set()
    for panel in panels(dashboard):
        panel_id = panel.get("id")
        if not isinstance(panel_id, int):
            found.append(f"panel `{panel.get('title')}` has no integer id")
        elif panel_id in seen:
            found.append(f"panel id {panel_id} is used twice")
        else:
            seen.add(panel_id)
    names = {v.get("name") for v in dashboard.get("templating", {}).get("list", [])}
    found.extend(
        f"template variable `{name}` is missing" for name in REQUIRED_VARIABLES if name not in names
    )
    for where, expr in expressions(dashboard):
        found.extend(f"{where}: {error} in `{expr}`" for error in check(expr))
    return found


def dashboard_metric_names(dashboard: dict[str, Any]) -> set[str]:
    """Every metric name the dashboard's queries read."""
    names: set[str] = set()
    for _, expr in expressions(dashboard):
        names |= metric_names(expr)
    return names


def exported_metric_names(exposition: str) -> set[str]:
    """The series names a Prometheus text page can produce, from its `# TYPE` lines and samples.

    A labelled metric that has not been observed yet shows only its `# TYPE` line, so the names
    it will export are derived from its type (a histogram's `_bucket`, `_sum`, `_count`).
    """
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
        "summary": ("", "_sum", "_count"),
        "gauge": ("",),
        "untyped": ("",),
        "unknown": ("",),
        "info": ("_info",),
        "stateset": ("",),
    }
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) < 4:
                continue
            family, kind = parts[2], parts[3]
            if kind == "counter" and family.endswith("_total"):
                family = family.removesuffix("_total")
            if kind == "info" and family.endswith("_info"):
                family = family.removesuffix("_info")
            names.update(family + suffix for suffix in suffixes.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names
