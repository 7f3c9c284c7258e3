"""The benchmark's tables, as Markdown, from a ``bench.json`` result alone. Pure.

The docs publish these tables verbatim; a test regenerates them from the committed JSON.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

SYSTEM_COLUMNS = (("conveyor-partial", "partial"), ("conveyor-sequential", "sequential"),
                  ("vllm-client-loop", "vllm-loop"))  # fmt: skip


def _num(value: float | None, pattern: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pattern.format(value)


def _with_ci(figure: dict[str, Any] | None, pattern: str, scale: float = 1.0) -> str:
    if not figure or figure.get("value", figure.get("median")) is None:
        return "-"
    value = figure.get("value", figure.get("median"))
    text = _num(value * scale, pattern)
    ci = figure.get("ci95")
    if ci:
        text += f" [{_num(ci[0] * scale, pattern)}, {_num(ci[1] * scale, pattern)}]"
    return text


def _tokens(w: dict[str, Any]) -> str:
    tokens = w["tokens"]
    if tokens.get("errors"):
        return "**differ**"
    planned = [p for p in tokens.get("planned", []) if p is not None]
    text = "+".join(map(str, planned)) or "-"
    missing = tokens.get("not_decoded", {}).get("conveyor-partial", [])
    if missing and statistics.median(missing) > 0:
        text += f" (partial: {statistics.median(missing):g} not decoded)"
    return text


def _errors(w: dict[str, Any]) -> str:
    parts = []
    failed = sum(s["summary"]["errors"] for s in w["systems"].values())
    if failed:
        parts.append(f"**{failed} run(s) failed**")
    if w["bound"]["errors"]:
        parts.append(f"**ideal broken {len(w['bound']['errors'])}x**")
    if w["tokens"].get("errors"):
        parts.append("**tokens differ**")
    return ", ".join(parts) or "none"


def _row(name: str, w: dict[str, Any]) -> str:
    d = w["derived"]
    cells = [
        name + ("\\*" if w.get("emulated") else "") + ("†" if w.get("source") != "shipped" else "")
    ]
    for system, _ in SYSTEM_COLUMNS:
        summary = w["systems"].get(system, {}).get("summary")
        cells.append(_with_ci(summary and summary["latency"], "{:.3f}"))
    cells += [
        _with_ci(d.get("ideal"), "{:.3f}"),
        _with_ci(d.get("reduction_vs_sequential"), "{:+.1f}", 100),
        _with_ci(d.get("speedup_vs_peer"), "{:.2f}"),
        _with_ci(d.get("efficiency"), "{:.2f}"),
        _tokens(w),
        _errors(w),
    ]
    return "| " + " | ".join(cells) + " |"


HEAD = (
    "| workload | partial (s) | sequential (s) | vllm-loop (s) | ideal (s) | vs seq (%) "
    "| vs peer (x) | efficiency | tokens | errors |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def latency_tables(result: dict[str, Any]) -> str:
    """The favourable and the unfavourable workloads, each a table, and what the cells mean."""
    workloads = result["workloads"]
    main = [n for n, w in workloads.items() if not w.get("unfavourable")]
    adverse = [n for n, w in workloads.items() if w.get("unfavourable")]
    lines = ["Workloads where partial execution can help:", "", HEAD]
    lines += [_row(n, workloads[n]) for n in main]
    if adverse:
        lines += ["", "Unfavourable workloads (where partial execution can gain little):", "", HEAD]
        lines += [_row(n, workloads[n]) for n in adverse]
        lines += [""] + [f"- {n}: {workloads[n]['unfavourable']}" for n in adverse]
    for n, w in workloads.items():
        skipped = w["derived"].get("abort_skipped_fraction")
        if skipped:
            lines.append(
                f"- {n}: the early abort skipped {_with_ci(skipped, '{:.0f}', 100)} % of the "
                "tokens left after the rejected field"
            )
    s = result["settings"]
    lines += [
        "",
        f"Medians over {s['repetitions']} repetitions (warm-up excluded), each system once per "
        "repetition in a random order; [95 % bootstrap interval]. 'vs seq' = 1 - partial / "
        "sequential; 'vs peer' = vllm-loop / partial; 'efficiency' = (sequential - partial) / "
        "(sequential - ideal), paired by repetition; 'ideal' = the lower bound computed per "
        "repetition; 'tokens' = completion tokens per round, equal in every run of every system.",
    ]
    if any(w.get("emulated") for w in workloads.values()):
        lines.append(
            "\\* emulated: the search backend is local and waits "
            f"{s['search_latency_seconds']:.3f} s per query to stand in for a remote API."
        )
    lines += [f"† {note}" for note in result.get("notes", [])]
    m = result["machine"]
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores; {m['pinning']}.")
    return "\n".join(lines)


def targets_table(result: dict[str, Any]) -> str:
    lines = [
        "| target | workload | measured [95 % CI] | met (whole CI clears) |",
        "| --- | --- | --- | --- |",
    ]
    for t in result["targets"]:
        scale, pattern = (
            (100, "{:.1f} %")
            if t["bound"] < 1 and "efficiency" not in t["target"]
            else (1, "{:.2f}")
        )
        figure = None if t["value"] is None else {"value": t["value"], "ci95": t["ci95"]}
        lines.append(
            f"| {t['target']} | {t['workload']} | {_with_ci(figure, pattern, scale)} "
            f"| {'met' if t['met'] else '**not met**'} |"
        )
    return "\n".join(lines)


def details(result: dict[str, Any]) -> list[str]:
    """Every failure behind the errors column, one line each."""
    out = []
    for name, w in result["workloads"].items():
        out += [f"{name}: tokens: {e}" for e in w["tokens"].get("errors", [])]
        out += [f"{name}: ideal bound: {e}" for e in w["bound"]["errors"]]
        for system, data in w["systems"].items():
            out += [f"{name}: {system}: {e}" for e in data["summary"]["error_messages"]]
    return out


def load_table(result: dict[str, Any]) -> str:
    load = result.get("load")
    if not load:
        return ""
    lines = [
        f"Open-loop Poisson load, {load['tool_share']:.0%} `{load['workload']}` tool requests and "
        f"the rest its plain answer, {load['seconds_per_rate']:g} s of arrivals per rate:",
        "",
        "| system | offered (req/s) | completed (req/s) | p50 (s) | p99 (s) | errors |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for system, points in load["curves"].items():
        for p in points:
            lines.append(
                f"| {system} | {p['rate']:g} | {p['throughput_rps']:.2f} "
                f"| {_num(p['p50'], '{:.3f}')} | {_num(p['p99'], '{:.3f}')} | {p['errors']} |"
            )
    lines.append("")
    for system, rate in load["saturation_rps"].items():
        lines.append(
            f"- {system}: " + (f"saturates at {rate:g} req/s" if rate else "kept up at every rate")
        )
    return "\n".join(lines)
