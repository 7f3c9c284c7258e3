"""`conveyor soak`: hold a server under mixed traffic and report what was lost.

Against ``--url`` or a `conveyor serve` it starts itself (every built-in tool, a local search
backend, replay allowed; engine and tools on different cores as `conveyor serve` places them).
``concurrency`` clients each send one request after another until the time is up; a progress
line shows on stderr and the JSON summary goes to stdout. Exit status 1 when the run failed
(see ``report``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from conveyor.runtime.soak import report
from conveyor.runtime.soak.mix import Kind, kinds
from conveyor.runtime.soak.processes import ProcessSample, listening_pid, sample
from conveyor.runtime.soak.traffic import Record, run_one

_SETTLE_SECONDS = 20.0  # how long in-flight gauges may take to reach zero after the load


def add_soak_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a running server (default: start `conveyor serve`)")
    parser.add_argument("--model", help="model for the server it starts (default: the tiny model)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    parser.add_argument("--concurrency", type=int, default=32, help="clients at once")
    parser.add_argument(
        "--deadline", type=float, default=120.0, help="seconds before a request counts as hung"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        help="seconds before the memory baseline is taken (default: a fifth of the run, "
        "at most 60)",
    )
    parser.add_argument(
        "--kinds", help=f"comma-separated kinds (default: all: {', '.join(_kind_names())})"
    )
    parser.add_argument(
        "--pid",
        type=int,
        action="append",
        default=[],
        help="another server process to watch with its children (e.g. an external sidecar)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the traffic mix")
    parser.add_argument("--out", type=Path, help="also write the JSON summary here")


def _kind_names() -> list[str]:
    return [k.name for k in kinds()]


@dataclass(frozen=True)
class Settings:
    url: str
    minutes: float
    concurrency: int
    deadline: float
    warmup: float
    kinds: list[Kind]
    roots: set[int]
    seed: int

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "minutes": self.minutes,
            "concurrency": self.concurrency,
            "deadline_seconds": self.deadline,
            "warmup_seconds": self.warmup,
            "seed": self.seed,
            "watched_pids": sorted(self.roots),
        }


def metric_sum(text: str, name: str) -> float | None:
    """Sum of every sample of ``name`` in a Prometheus text page; None when it is absent."""
    total, found = 0.0, False
    for line in text.splitlines():
        match = re.fullmatch(r"([^{\s]+)(?:\{.*\})? (\S+)", line)
        if match and match.group(1) == name:
            total += float(match.group(2))
            found = True
    return total if found else None


class _Progress:
    """One line on stderr: rewritten in place on a terminal, every 15 s otherwise."""

    def __init__(self, total_seconds: float) -> None:
        self.total = total_seconds
        self.tty = sys.stderr.isatty()
        self.in_flight = 0

    def line(self, elapsed: float, records: list[Record]) -> str:
        counts = Counter(r.outcome for r in records)
        recent = sorted(r.seconds for r in records[-200:] if r.outcome == "ok")
        p50 = f"{recent[len(recent) // 2]:.2f} s" if recent else "-"
        return (
            f"soak {_clock(elapsed)}/{_clock(self.total)}  done {len(records)} "
            f"({len(records) / max(elapsed, 1e-9):.1f}/s)  in flight {self.in_flight}  "
            f"ok {counts['ok']}  disconnected {counts['disconnected']}  "
            f"unexpected {counts['unexpected']}  5xx {counts['server_error']}  "
            f"lost {counts['lost']}  hung {counts['hung']}  p50 {p50}"
        )

    async def run(self, t0: float, records: list[Record]) -> None:
        every = 1.0 if self.tty else 15.0
        while True:
            await asyncio.sleep(every)
            text = self.line(time.monotonic() - t0, records)
            print(f"\r{text}\x1b[K" if self.tty else text, end="" if self.tty else "\n",
                  file=sys.stderr, flush=True)  # fmt: skip


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60:02d}:{int(seconds) % 60:02d}"


async def _probe(
    client: httpx.AsyncClient, model: str, settings: Settings
) -> tuple[list[Kind], dict[str, str], list[Record]]:
    """One request of each kind: a kind the server cannot serve (its tool is not enabled, replay
    is off) is left out and reported; a 5xx, lost or hung probe is a failure like any other."""
    kept, skipped, failed = [], {}, []
    rng = random.Random(settings.seed)
    t0 = time.monotonic()
    for kind in settings.kinds:
        record = await run_one(client, kind, model, rng, t0=t0, deadline=settings.deadline)
        if record.outcome in ("ok", "disconnected"):
            kept.append(kind)
        elif record.outcome == "unexpected":
            skipped[kind.name] = record.detail or "unexpected answer"
        else:
            failed.append(record)
            kept.append(kind)
    return kept, skipped, failed


async def _after_run(client: httpx.AsyncClient) -> dict[str, float | None]:
    """The in-flight gauges once the load has stopped, given a little time to settle."""
    deadline = time.monotonic() + _SETTLE_SECONDS
    values: dict[str, float | None] = {}
    while True:
        with contextlib.suppress(httpx.HTTPError):
            text = (await client.get("/metrics")).text
            values = {name: metric_sum(text, name) for name in report.LEAK_METRICS}
        if time.monotonic() > deadline or (values and not any(values.values())):
            return values or {name: None for name in report.LEAK_METRICS}
        await asyncio.sleep(0.5)


async def soak(settings: Settings) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=settings.concurrency * 2)
    timeout = httpx.Timeout(settings.deadline, connect=10.0)
    async with httpx.AsyncClient(
        base_url=settings.url, limits=limits, timeout=timeout, trust_env=False
    ) as client:
        model = (await client.get("/v1/models")).json()["data"][0]["id"]
        mix, skipped, records = await _probe(client, model, settings)
        samples: dict[str, list[ProcessSample] | None] = {}
        watch = bool(settings.roots)
        samples["start"] = sample(settings.roots) if watch else None
        weights = [k.weight for k in mix]
        progress = _Progress(settings.minutes * 60)
        t0 = time.monotonic()
        stop_at = t0 + settings.minutes * 60

        async def client_loop(index: int) -> None:
            rng = random.Random(settings.seed * 10_000 + index)
            while time.monotonic() < stop_at:
                kind = rng.choices(mix, weights)[0]
                progress.in_flight += 1
                try:
                    records.append(
                        await run_one(client, kind, model, rng, t0=t0, deadline=settings.deadline)
                    )
                finally:
                    progress.in_flight -= 1

        async def sampler() -> None:
            await asyncio.sleep(settings.warmup)
            samples["after_warmup"] = await asyncio.to_thread(sample, settings.roots)
            await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
            samples["end"] = await asyncio.to_thread(sample, settings.roots)

        background = [asyncio.create_task(progress.run(t0, records))]
        if watch:
            background.append(asyncio.create_task(sampler()))
        await asyncio.gather(*(client_loop(i) for i in range(settings.concurrency)))
        load_seconds = time.monotonic() - t0
        if watch:
            await background[1]
        background[0].cancel()
        if progress.tty:
            print(file=sys.stderr)
        after_run = await _after_run(client)
    return report.build(
        records,
        settings=settings.describe(),
        wall_seconds=load_seconds,
        skipped=skipped,
        samples=samples,
        after_run=after_run,
    )


@contextlib.contextmanager
def started_server(model: str) -> Iterator[tuple[str, int]]:
    """`conveyor serve` with an embedded sidecar serving every built-in tool; yields its URL and
    pid. The search tool talks to the benchmark's local search backend (emulated latency)."""
    from conveyor.runtime.bench.search_backend import SearchBackend
    from conveyor.runtime.bench.servers import MAX_MODEL_LEN, Server, engine_env, plan_pinning
    from conveyor.runtime.bench.tools import tools_config

    with tempfile.TemporaryDirectory(prefix="conveyor-soak-") as tmp:
        root = Path(tmp)
        # Workers may run as another uid with a private /tmp: the database lives outside it.
        base = next((d for d in ("/run", "/var/lib") if os.access(d, os.W_OK)), None)
        share = Path(tempfile.mkdtemp(prefix="conveyor-soak-", dir=base))
        share.chmod(0o755)
        database = share / "orders.db"
        with contextlib.closing(sqlite3.connect(database)) as db:
            db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, city TEXT, total REAL)")
            db.execute("INSERT INTO orders (city, total) VALUES ('Lisbon', 42.0)")
            db.commit()
        database.chmod(0o644)
        search = SearchBackend(latency=0.05).start()
        config = root / "tools.yaml"
        config.write_text(yaml.safe_dump(tools_config(database, search.endpoint)))
        command = [
            sys.executable, "-m", "conveyor.runtime.cli", "serve", "--model", model,
            "--tools-config", str(config), "--allow-replay", "--max-model-len",
            str(MAX_MODEL_LEN), "--tool-timeout", "60",
        ]  # fmt: skip
        env = engine_env(plan_pinning())
        # `conveyor serve` splits the cores itself: the engine's threads and its sidecar apart.
        env.pop("VLLM_CPU_OMP_THREADS_BIND", None)
        print(f"starting conveyor serve (log: {root / 'serve.log'})", file=sys.stderr)
        server = Server(
            "conveyor serve", command, env, root / "serve.log", set(os.sched_getaffinity(0))
        )
        try:
            server.wait("/ready", timeout=900)  # a busy machine starts engines slowly
            yield server.base_url, server.process.pid
        finally:
            server.stop()
            search.stop()
            database.unlink(missing_ok=True)
            share.rmdir()


def _settings(args: argparse.Namespace) -> Settings:
    """The settings from the command line, checked before any server starts."""
    if args.minutes <= 0 or args.concurrency < 1 or args.deadline <= 0:
        raise SystemExit("conveyor soak: --minutes, --concurrency and --deadline must be positive")
    every = {k.name: k for k in kinds()}
    names = [n.strip() for n in args.kinds.split(",")] if args.kinds else list(every)
    unknown = [n for n in names if n not in every]
    if unknown:
        raise SystemExit(f"conveyor soak: unknown kind(s) {unknown} (known: {', '.join(every)})")
    warmup = args.warmup if args.warmup is not None else min(60.0, args.minutes * 60 / 5)
    return Settings(
        url=(args.url or "").rstrip("/"),
        minutes=args.minutes,
        concurrency=args.concurrency,
        deadline=args.deadline,
        warmup=min(warmup, args.minutes * 60),
        kinds=[every[n] for n in names],
        roots=set(args.pid),
        seed=args.seed,
    )


def run(args: argparse.Namespace, model: str | None) -> int:
    """Run the soak; returns the exit status."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    settings = _settings(args)
    with contextlib.ExitStack() as stack:
        if settings.url:
            found = listening_pid(settings.url)
            roots = {found} if found else set()
        else:
            assert model is not None
            url, pid = stack.enter_context(started_server(model))
            settings = dataclasses.replace(settings, url=url)
            roots = {pid}
        settings = dataclasses.replace(settings, roots=settings.roots | roots)
        summary = asyncio.run(soak(settings))
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    for failure in summary["failures"]:
        print(f"conveyor soak: FAILED: {failure}", file=sys.stderr)
    return 0 if summary["passed"] else 1
