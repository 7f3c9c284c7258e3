"""The benchmark's figures: latency per workload and system, and the load curves."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

SYSTEMS = ("conveyor-partial", "conveyor-sequential", "vllm-client-loop")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def latency(result: dict[str, Any], out: Path) -> Path:
    """Median latency per workload and system with its 95 % interval; the ideal marked."""
    plt = _pyplot()
    names = list(result["workloads"])
    systems = [s for s in SYSTEMS if any(s in w["systems"] for w in result["workloads"].values())]
    width = 0.8 / max(1, len(systems))
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(names)), 4.5))
    for i, system in enumerate(systems):
        meds, low, high = [], [], []
        for name in names:
            lat = (
                result["workloads"][name]["systems"]
                .get(system, {})
                .get("summary", {})
                .get("latency", {})
            )
            m = lat.get("median") or math.nan
            ci = lat.get("ci95") or [m, m]
            meds.append(m)
            low.append(max(0.0, m - ci[0]))
            high.append(max(0.0, ci[1] - m))
        xs = [n + (i - (len(systems) - 1) / 2) * width for n in range(len(names))]
        ax.bar(xs, meds, width, yerr=[low, high], label=system, capsize=2)
    for n, name in enumerate(names):
        ideal = result["workloads"][name]["derived"].get("ideal")
        if ideal is not None:
            ax.hlines(ideal["value"], n - 0.45, n + 0.45, colors="black", linestyles="--",
                      label="ideal bound (median)" if n == 0 else None)  # fmt: skip
    labels = [n + (" *" if result["workloads"][n].get("emulated") else "") for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=25, ha="right")
    ax.set_ylabel("median latency (s), 95 % CI")
    latency = result["settings"]["search_latency_seconds"]
    ax.set_title(f"conveyor bench  (* search latency emulated: {latency:.2f} s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "bench.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def load(result: dict[str, Any], out: Path) -> Path | None:
    """p50 (solid) and p99 (dashed) latency against completed requests/s; saturation marked."""
    data = result.get("load")
    if not data:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (system, points) in enumerate(data["curves"].items()):
        color = f"C{i}"
        xs = [p["throughput_rps"] for p in points]
        ax.plot(xs, [p["p50"] for p in points], "o-", color=color, label=f"{system} p50")
        ax.plot(xs, [p["p99"] for p in points], "s--", color=color, label=f"{system} p99")
        rate = data["saturation_rps"].get(system)
        for p in points:
            if rate is not None and p["rate"] == rate:
                ax.plot([p["throughput_rps"]], [p["p99"]], "X", color=color, markersize=14,
                        label=f"{system} saturates ({rate:g} req/s offered)")  # fmt: skip
    ax.set_xlabel("completed requests/s")
    ax.set_ylabel("latency (s)")
    ax.set_yscale("log")
    ax.set_title(
        f"open-loop Poisson load: {data['tool_share']:.0%} {data['workload']} tool requests, "
        "the rest plain"
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "load.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
