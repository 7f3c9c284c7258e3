"""The `conveyor bench` command line."""

from __future__ import annotations

import argparse
import asyncio

from conveyor.runtime.bench.systems import SYSTEMS


def add_bench_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="codegen, search, planning, validation, calculator; 2 repetitions, 1 bound "
        "repetition, concurrency 8 on codegen only (under 3 minutes on 2 cores)",
    )
    parser.add_argument(
        "--workloads", help="comma-separated workloads (default: all; see docs/benchmark.md)"
    )
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated systems to compare (default: {','.join(SYSTEMS)})",
    )
    parser.add_argument(
        "--reps",
        type=int,
        help="measured repetitions per workload and system at concurrency 1 "
        "(default 5; --quick 2); one warm-up is added",
    )
    parser.add_argument(
        "--bound-reps", type=int, help="repetitions of the ideal-bound measurements (default 3)"
    )
    parser.add_argument("--concurrency", default="1,8", help="concurrency levels (default 1,8)")
    parser.add_argument(
        "--batches", type=int, help="batches per concurrency level above 1 (default 2; --quick 1)"
    )
    parser.add_argument(
        "--search-latency",
        type=float,
        default=0.8,
        help="EMULATED latency of the local search backend, seconds (default 0.8)",
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of the generated SQLite database"
    )
    parser.add_argument(
        "--out", default="bench-results", help="output directory (default bench-results/)"
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="instead: SmolLM2 writes its own code at temperature 0 on fixed prompts, partial "
        "vs sequential; checks that both modes decode the same tokens (--reps, default 1)",
    )


def run(args: argparse.Namespace, model: str) -> None:
    if args.live:
        from conveyor.runtime.bench.live import run as run_live

        run_live(args, model)
        return
    from conveyor.runtime.bench import report
    from conveyor.runtime.bench.runner import run_bench
    from conveyor.runtime.bench.settings import settings_from_args

    settings = settings_from_args(args, model)
    if settings.reps < 1 or (args.quick and settings.reps < 2):
        raise SystemExit("conveyor bench: --reps must be at least 2 with --quick, 1 otherwise")
    result = asyncio.run(run_bench(settings))
    path = report.write_json(result, settings.out)
    png = report.plot(result, settings.out)
    print()
    print(report.table(result))
    print(f"\nraw figures: {path}\nplot: {png}\nwall time: {result['wall_seconds']:.0f} s")
