"""What one `conveyor bench` run measures: the settings, from the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from conveyor.runtime.bench.systems import SYSTEMS
from conveyor.runtime.bench.workloads import Workload, load_all

# --quick: the workloads with targets, to finish within 3 minutes on 2 cores.
QUICK_WORKLOADS = ("codegen", "search", "planning", "validation", "calculator")


@dataclass(frozen=True)
class Settings:
    workloads: list[Workload]
    systems: list[str]
    reps: int
    bound_reps: int
    concurrency: list[int]
    batches: int
    search_latency: float
    out: Path
    model: str
    rows: int
    # Workloads measured at concurrency above 1 (None: all); --quick keeps one, for time.
    concurrent_workloads: frozenset[str] | None = None
    bound_warmup: bool = True  # one unmeasured stream per round first (a cold prefix is slow)


def settings_from_args(args: argparse.Namespace, model: str) -> Settings:
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"conveyor bench: unknown system(s) {sorted(unknown)} (known: {SYSTEMS})")
    names = [w.strip() for w in args.workloads.split(",")] if args.workloads else None
    if names is None and args.quick:
        names = list(QUICK_WORKLOADS)
    reps = args.reps or (2 if args.quick else 5)
    concurrency = sorted({int(c) for c in args.concurrency.split(",")})
    return Settings(
        workloads=load_all(names),
        systems=systems,
        reps=reps,
        bound_reps=args.bound_reps or (1 if args.quick else 3),
        concurrency=concurrency,
        batches=args.batches or (1 if args.quick else 2),
        search_latency=args.search_latency,
        out=Path(args.out),
        model=model,
        rows=args.rows,
        concurrent_workloads=frozenset({"codegen"}) if args.quick else None,
    )
