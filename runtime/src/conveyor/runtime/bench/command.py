"""The `conveyor bench` command line."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys

from conveyor.runtime.bench.systems import SYSTEMS


def add_bench_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="codegen, search, planning, validation, calculator; 2 repetitions, 2 runs of "
        "each tool alone (about 3 minutes on 2 cores)",
    )
    parser.add_argument(
        "--workloads", help="comma-separated workloads (default: all; see docs/benchmark.md)"
    )
    parser.add_argument(
        "--workloads-dir",
        help="also load every *.yaml workload of this directory (it wins on a name collision)",
    )
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated systems to compare (default: {','.join(SYSTEMS)})",
    )
    parser.add_argument(
        "--reps",
        type=int,
        help="repetitions per workload; each runs every system once in a random order "
        "(default 10; --quick 2); one warm-up per server is added",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the random orders (default 1)")
    parser.add_argument(
        "--bound-reps", type=int, help="runs of each tool alone for the ideal bound (default 3)"
    )
    parser.add_argument(
        "--load",
        action="store_true",
        help="also run open-loop Poisson arrivals at increasing rates (load.png)",
    )
    parser.add_argument(
        "--load-rates", default="1,2,4,8,12", help="offered rates, requests/s (default 1,2,4,8,12)"
    )
    parser.add_argument(
        "--load-seconds", type=float, default=15.0, help="seconds of arrivals per rate (default 15)"
    )
    parser.add_argument(
        "--load-tool-share",
        type=float,
        default=0.5,
        help="share of requests that call a tool; the rest are plain answers (default 0.5)",
    )
    parser.add_argument(
        "--load-workload",
        default="calculator",
        help="the tool request under load (default calculator)",
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
    from conveyor.runtime.bench import plots, report, table
    from conveyor.runtime.bench.runner import run_bench
    from conveyor.runtime.bench.settings import settings_from_args
    from conveyor.runtime.bench.workloads import WorkloadError

    try:
        settings = settings_from_args(args, model, shlex.join(["conveyor", *sys.argv[1:]]))
    except WorkloadError as error:
        raise SystemExit(f"conveyor bench: {error}") from None
    measured = asyncio.run(run_bench(settings))
    result = report.assemble(settings, measured)
    path = report.write_json(result, settings.out)
    png = plots.latency(result, settings.out)
    load_png = plots.load(result, settings.out)
    print()
    print(table.latency_tables(result))
    print()
    print(table.targets_table(result))
    if result["load"]:
        print()
        print(table.load_table(result))
    print(
        f"\nraw figures: {path}\nplot: {png}" + (f"\nload curves: {load_png}" if load_png else "")
    )
    print(f"wall time: {result['wall_seconds']:.0f} s")
    problems = table.details(result)
    if problems:
        print("\nFAILED:", *problems, sep="\n  ", file=sys.stderr)
        raise SystemExit(1)
