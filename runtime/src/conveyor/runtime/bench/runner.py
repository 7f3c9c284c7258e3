"""`conveyor bench`: run every workload on every system, interleaved, with its ideal bound.

One run: the tool sidecar (tool cores), the search backend and the SQLite database come up
first; then `conveyor serve` and vLLM's own server start side by side (both pinned to the
engine cores; only one of them works at a time). Per workload: each call's tool time alone,
one unmeasured warm-up per server, then ``reps`` repetitions in which every system runs once,
in a fresh random order (seeded), and the ideal bound of that repetition is computed from its
own sequential run. The token counts of every run are checked against each other.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from conveyor.runtime.bench import database
from conveyor.runtime.bench.arrivals import CallDurations
from conveyor.runtime.bench.bound import (
    abort_skipped,
    repetition_bound,
    seen_in_runs,
    shortest_decode,
    tools_alone,
)
from conveyor.runtime.bench.load import measure_load
from conveyor.runtime.bench.search_backend import SearchBackend
from conveyor.runtime.bench.servers import Pinning, Server, plan_pinning, start_conveyor, start_vllm
from conveyor.runtime.bench.settings import Settings
from conveyor.runtime.bench.systems import (
    ClientLoopSystem,
    ConveyorSystem,
    Runner,
    RunRecord,
    server_of,
)
from conveyor.runtime.bench.tokens import RoundTokens, agreement, peer_logit_bias
from conveyor.runtime.bench.tools import tools_config
from conveyor.runtime.bench.workloads import Workload
from conveyor.runtime.sidecar_process import EmbeddedSidecar
from conveyor.tools.client import SidecarClient

log = logging.getLogger(__name__)
for _noisy in ("httpx", "httpx2", "openai"):  # one line per request drowns the bars
    logging.getLogger(_noisy).setLevel(logging.WARNING)

SEQUENTIAL, PARTIAL, PEER = "conveyor-sequential", "conveyor-partial", "vllm-client-loop"


@dataclass
class WorkloadResult:
    """Everything measured for one workload; ``runs[system][rep]``, ``bounds[rep]``..."""

    runs: dict[str, list[RunRecord]]
    bounds: list[dict[str, Any] | None] = field(default_factory=list)
    bound_errors: list[str] = field(default_factory=list)
    abort_skipped: list[float] = field(default_factory=list)
    tokens: dict[str, Any] = field(default_factory=dict)
    # Per repetition: the tool times its bound used (None: no bound).
    durations: list[list[list[CallDurations]] | None] = field(default_factory=list)


def _failed(error: BaseException) -> RunRecord:
    return RunRecord(0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, error=f"{type(error).__name__}: {error}")


async def _once(run: Runner, workload: Workload) -> RunRecord:
    try:
        return await run(workload)
    except Exception as error:  # one failed request is recorded, the benchmark goes on
        return _failed(error)


def _repetition_bound(
    workload: Workload,
    rep: dict[str, RunRecord],
    alone: list[list[CallDurations]] | None,
    specs: dict[str, dict[str, Any]],
    result: WorkloadResult,
) -> None:
    """The ideal of one repetition from its own runs; a system faster than it is an error."""
    if SEQUENTIAL not in rep or alone is None:
        return
    ok = {name: run for name, run in rep.items() if run.error is None}
    index = len(result.bounds)
    result.bounds.append(None)
    result.durations.append(None)
    if SEQUENTIAL not in ok:
        return
    try:
        durations = seen_in_runs(workload, alone, ok, specs)
        decode = shortest_decode(ok, len(workload.rounds))
        others = [run for name, run in ok.items() if name != SEQUENTIAL]
        bound = repetition_bound(workload, ok[SEQUENTIAL], decode, durations, specs, others)
    except ValueError as error:
        result.bound_errors.append(f"rep {index}: {error}")
        return
    result.bounds[index] = bound.as_dict()
    result.durations[index] = durations
    for name, run in ok.items():
        if run.latency < bound.latency:
            result.bound_errors.append(
                f"rep {index}: {name} took {run.latency:.3f} s, "
                f"below the ideal {bound.latency:.3f} s"
            )


async def measure_workload(
    workload: Workload,
    runners: dict[str, Runner],
    settings: Settings,
    sidecar: SidecarClient,
    specs: dict[str, dict[str, Any]],
    rng: random.Random,
    bar: tqdm,
) -> WorkloadResult:
    durations = None
    if SEQUENTIAL in runners:
        durations = await tools_alone(sidecar, specs, workload, settings.bound_reps)
    result = WorkloadResult({name: [] for name in runners})
    names = list(runners)
    # One unmeasured warm-up per server (prefix cache, imports, pooled workers): the conveyor
    # modes share theirs, so a second warm-up would warm nothing more.
    warm_ups = {server_of(name): name for name in rng.sample(names, len(names))}
    for name in warm_ups.values():
        await _once(runners[name], workload)
        bar.update()
    for _ in range(settings.reps):
        rep = {}
        for name in rng.sample(names, len(names)):
            rep[name] = await _once(runners[name], workload)
            bar.update()
        for name, run in rep.items():
            result.runs[name].append(run)
        _repetition_bound(workload, rep, durations, specs, result)
    counts = {
        name: [
            [RoundTokens(r.tokens, r.aborted) for r in run.round_log]
            for run in runs
            if run.error is None
        ]
        for name, runs in result.runs.items()
    }
    tokens = agreement(counts, len(workload.rounds))
    result.tokens = tokens.as_dict()
    if {SEQUENTIAL, PARTIAL} <= set(result.runs):
        reps = zip(result.runs[SEQUENTIAL], result.runs[PARTIAL], result.durations, strict=False)
        for sequential, partial, seen in reps:
            if seen is not None and partial.error is None:
                skipped = abort_skipped(sequential, partial, seen, tokens.planned)
                if skipped is not None:
                    result.abort_skipped.append(skipped)
    return result


def _pin_self(pinning: Pinning) -> None:
    if pinning.applied:
        os.sched_setaffinity(0, set(pinning.tools))


async def _start_servers(
    settings: Settings, pinning: Pinning, sidecar_url: str
) -> dict[str, Server]:
    """The servers the chosen systems need, started side by side (engine start ~30 s each)."""
    starts = {}
    if any(server_of(s) == "conveyor" for s in settings.systems):
        log_file = settings.out / "conveyor-serve.log"
        starts["conveyor"] = asyncio.to_thread(
            start_conveyor, settings.model, sidecar_url, pinning, log_file
        )
    if PEER in settings.systems:
        starts["vllm"] = asyncio.to_thread(
            start_vllm, settings.model, pinning, settings.out / "vllm-server.log"
        )
    print(
        f"starting {' and '.join(starts)} (engine start takes ~30 s; logs in {settings.out})",
        flush=True,
    )
    started = await asyncio.gather(*starts.values(), return_exceptions=True)
    servers = {k: s for k, s in zip(starts, started, strict=True) if isinstance(s, Server)}
    failed = [s for s in started if not isinstance(s, Server)]
    if failed:
        for server in servers.values():
            server.stop()
        raise failed[0]
    return servers


def _runners(
    settings: Settings, servers: dict[str, Server], sidecar: SidecarClient, specs: dict
) -> tuple[dict[str, Runner], list[Any]]:
    runners: dict[str, Runner] = {}
    clients: list[Any] = []
    if "conveyor" in servers:
        conveyor = ConveyorSystem(servers["conveyor"].base_url, settings.model)
        clients.append(conveyor)
        for name in settings.systems:
            if name.startswith("conveyor-"):
                mode = name.removeprefix("conveyor-")
                runners[name] = lambda w, mode=mode: conveyor.run(w, mode)
    if "vllm" in servers:
        bias = peer_logit_bias(settings.model)
        peer = ClientLoopSystem(servers["vllm"].base_url, settings.model, sidecar, specs, bias)
        clients.append(peer)
        runners[PEER] = peer.run
    return {name: runners[name] for name in settings.systems}, clients


@dataclass
class Measured:
    pinning: Pinning
    workloads: dict[str, WorkloadResult]
    load: dict[str, Any] | None
    database: Path
    wall: float


async def run_bench(settings: Settings) -> Measured:
    settings.out.mkdir(parents=True, exist_ok=True)
    pinning = plan_pinning()
    print(f"pinning: {pinning.describe()}", flush=True)
    started = time.perf_counter()
    db_path = database.cached(settings.rows)
    shared_db, share_dir = database.shareable(db_path)
    backend = SearchBackend(settings.search_latency)
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    sidecar_process = None
    servers: dict[str, Server] = {}
    try:
        _pin_self(pinning)  # the client, the search backend thread and the sidecar: tool cores
        backend.start()
        config = workdir / "tools.yaml"
        config.write_text(yaml.safe_dump(tools_config(shared_db, backend.endpoint)))
        sidecar_process = EmbeddedSidecar(
            config=config, cpus=set(pinning.tools) if pinning.applied else None
        )
        await asyncio.to_thread(sidecar_process.wait_ready)
        async with SidecarClient(sidecar_process.url) as sidecar:
            specs = {s["function"]["name"]: s for s in await sidecar.tools()}
            servers = await _start_servers(settings, pinning, sidecar_process.url)
            runners, clients = _runners(settings, servers, sidecar, specs)
            rng = random.Random(settings.seed)
            results: dict[str, WorkloadResult] = {}
            warm_ups = len({server_of(name) for name in runners})
            total = len(settings.workloads) * (settings.reps * len(runners) + warm_ups)
            with tqdm(total=total, desc="bench", unit="req") as bar:
                for workload in settings.workloads:
                    bar.set_postfix_str(workload.name)
                    results[workload.name] = await measure_workload(
                        workload, runners, settings, sidecar, specs, rng, bar
                    )
            load = None
            if settings.load is not None:
                load = await measure_load(settings.load, runners, rng)
            for client in clients:
                await client.close()
    finally:
        for server in servers.values():
            server.stop()
        if sidecar_process is not None:
            sidecar_process.stop()
        backend.stop()
        if share_dir is not None:
            for f in share_dir.iterdir():
                f.unlink()
            share_dir.rmdir()
    return Measured(pinning, results, load, db_path, time.perf_counter() - started)
