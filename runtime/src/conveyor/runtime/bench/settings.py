"""What one `conveyor bench` run measures: the settings, from the command line."""

from __future__ import annotations

import argparse
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.runtime.bench.systems import SYSTEMS
from conveyor.runtime.bench.workloads import Workload, load_all

# --quick: the workloads with targets, to finish within 3 minutes on 2 cores.
QUICK_WORKLOADS = ("codegen", "search", "planning", "validation", "calculator")


@dataclass(frozen=True)
class LoadSettings:
    """`--load`: open-loop Poisson arrivals at each rate, a share of them calling a tool."""

    rates: list[float]
    seconds: float  # arrivals are generated for this long at each rate
    tool_share: float
    workload: Workload  # the tool request; a plain request is its final text alone


@dataclass(frozen=True)
class Settings:
    workloads: list[Workload]
    systems: list[str]
    reps: int
    bound_reps: int
    search_latency: float
    out: Path
    model: str
    rows: int
    seed: int
    command: str = ""
    commit: str | None = None  # of the checkout measured, taken when the run starts
    load: LoadSettings | None = None
    notes: list[str] = field(default_factory=list)  # said under the table (e.g. replaced names)


def checkout_commit() -> str | None:
    """The commit of the checkout this package runs from (``+dirty`` with local changes)."""
    here = str(Path(__file__).parent)
    try:
        head, dirty = (
            subprocess.run(
                ["git", "-C", here, *args], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            for args in (["rev-parse", "--short", "HEAD"], ["status", "--porcelain", "-uno"])
        )
    except (OSError, subprocess.SubprocessError):
        return None  # an installed package, not a checkout
    return head + ("+dirty" if dirty else "")


def _floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"conveyor bench: {flag} takes comma-separated numbers") from None
    if not values or any(v <= 0 for v in values):
        raise SystemExit(f"conveyor bench: {flag} takes positive numbers")
    return sorted(values)


def settings_from_args(args: argparse.Namespace, model: str, command: str = "") -> Settings:
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"conveyor bench: unknown system(s) {sorted(unknown)} (known: {SYSTEMS})")
    names = [w.strip() for w in args.workloads.split(",")] if args.workloads else None
    directory = Path(args.workloads_dir) if args.workloads_dir else None
    if names is None and args.quick and directory is None:
        names = list(QUICK_WORKLOADS)
    workloads, notes = load_all(names, directory)
    reps = args.reps if args.reps is not None else (2 if args.quick else 10)
    if reps < 1:
        raise SystemExit("conveyor bench: --reps must be at least 1")
    if not 0 <= args.load_tool_share <= 1:
        raise SystemExit("conveyor bench: --load-tool-share must be between 0 and 1")
    load = None
    if args.load:
        (tool_workload,), _ = load_all([args.load_workload], directory)
        load = LoadSettings(
            rates=_floats(args.load_rates, "--load-rates"),
            seconds=args.load_seconds,
            tool_share=args.load_tool_share,
            workload=tool_workload,
        )
    return Settings(
        workloads=workloads,
        systems=systems,
        reps=reps,
        # Two at least: the least of each part must not be a first, cold run.
        bound_reps=args.bound_reps or (2 if args.quick else 3),
        search_latency=args.search_latency,
        out=Path(args.out),
        model=model,
        rows=args.rows,
        seed=args.seed,
        command=command,
        commit=checkout_commit(),
        load=load,
        notes=notes,
    )
