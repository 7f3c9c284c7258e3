"""`conveyor bench`: run every workload on every system, measure the ideal bound, report.

One run: the tool sidecar (tool cores), the search backend and the SQLite database come up
first; then `conveyor serve` measures the ideal bound's decode timelines and both of its modes;
then it stops and vLLM's own server runs the peer. Requests of a repetition go out in turns
(partial, then sequential) so slow drifts of the machine hit both alike; warm-up requests are
not counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from tqdm import tqdm

from conveyor.runtime.bench import database, report
from conveyor.runtime.bench.bound import Bound, measure_bound
from conveyor.runtime.bench.search_backend import SearchBackend
from conveyor.runtime.bench.servers import Pinning, plan_pinning, start_conveyor, start_vllm
from conveyor.runtime.bench.settings import Settings
from conveyor.runtime.bench.systems import ClientLoopSystem, ConveyorSystem, RunRecord
from conveyor.runtime.bench.tools import tools_config
from conveyor.runtime.bench.workloads import Workload
from conveyor.runtime.sidecar_process import EmbeddedSidecar
from conveyor.tools.client import SidecarClient

log = logging.getLogger(__name__)
for _noisy in ("httpx", "httpx2", "openai"):  # one line per request drowns the bars
    logging.getLogger(_noisy).setLevel(logging.WARNING)


Runner = Callable[[Workload], Awaitable[RunRecord]]


async def _batch(run: Runner, workload: Workload, size: int) -> dict[str, Any]:
    started = time.perf_counter()
    records = await asyncio.gather(*(run(workload) for _ in range(size)))
    makespan = time.perf_counter() - started
    return {
        "makespan": makespan,
        "throughput_rps": size / makespan,
        "runs": [r.as_dict() for r in records],
    }


async def measure_systems(
    runners: dict[str, Runner], settings: Settings, bar: tqdm
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per workload, per system: concurrency-1 repetitions, then batches at higher concurrency."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for workload in settings.workloads:
        per_system: dict[str, dict[str, Any]] = {name: {"runs": []} for name in runners}
        bar.set_postfix_str(workload.name)
        for run in runners.values():
            await run(workload)  # warm-up: caches, pooled workers, imports
            bar.update()
        for _ in range(settings.reps):
            for name, run in runners.items():
                per_system[name]["runs"].append((await run(workload)).as_dict())
                bar.update()
        for size in settings.concurrency:
            if size == 1 or not _concurrent(settings, workload):
                continue
            for name, run in runners.items():
                batches = []
                for _ in range(settings.batches):
                    batches.append(await _batch(run, workload, size))
                    bar.update()
                per_system[name][f"concurrency_{size}"] = batches
        results[workload.name] = per_system
    return results


def _concurrent(settings: Settings, workload: Workload) -> bool:
    chosen = settings.concurrent_workloads
    return chosen is None or workload.name in chosen


def _bar_total(settings: Settings, systems: int) -> int:
    extra = sum(settings.batches for c in settings.concurrency if c != 1)
    concurrent = sum(_concurrent(settings, w) for w in settings.workloads)
    return systems * (len(settings.workloads) * (1 + settings.reps) + concurrent * extra)


def _mode_runner(system: ConveyorSystem, name: str) -> Runner:
    mode = name.removeprefix("conveyor-")
    return lambda workload: system.run(workload, mode)


def _pin_self(pinning: Pinning) -> None:
    if pinning.applied:
        os.sched_setaffinity(0, set(pinning.tools))


async def _conveyor_phase(
    settings: Settings, pinning: Pinning, sidecar_url: str, sidecar: SidecarClient, specs: dict
) -> tuple[dict[str, Bound], dict[str, Any]]:
    modes = [s for s in settings.systems if s.startswith("conveyor-")]
    log_file = settings.out / "conveyor-serve.log"
    print(f"starting conveyor serve (engine start takes ~30 s; log: {log_file})", flush=True)
    server = start_conveyor(settings.model, sidecar_url, pinning, log_file)
    try:
        model = settings.model
        bounds: dict[str, Bound] = {}
        async with httpx.AsyncClient(base_url=server.base_url, timeout=600.0) as http:
            for workload in tqdm(settings.workloads, desc="ideal bound", unit="workload"):
                bounds[workload.name] = await measure_bound(
                    http,
                    model,
                    sidecar,
                    specs,
                    workload,
                    settings.bound_reps,
                    settings.bound_warmup,
                )
        results: dict[str, Any] = {}
        if modes:
            system = ConveyorSystem(server.base_url, model)
            runners: dict[str, Runner] = {name: _mode_runner(system, name) for name in modes}
            with tqdm(total=_bar_total(settings, len(modes)), desc="conveyor", unit="req") as bar:
                results = await measure_systems(runners, settings, bar)
            await system.close()
        return bounds, results
    finally:
        server.stop()


async def _peer_phase(
    settings: Settings, pinning: Pinning, sidecar: SidecarClient, specs: dict
) -> dict[str, Any]:
    log_file = settings.out / "vllm-server.log"
    print(f"starting vLLM's OpenAI server (the peer; log: {log_file})", flush=True)
    server = start_vllm(settings.model, pinning, log_file)
    try:
        system = ClientLoopSystem(server.base_url, settings.model, sidecar, specs)
        runners: dict[str, Runner] = {"vllm-client-loop": system.run}
        with tqdm(total=_bar_total(settings, 1), desc="vllm-client-loop", unit="req") as bar:
            results = await measure_systems(runners, settings, bar)
        await system.close()
        return results
    finally:
        server.stop()


async def run_bench(settings: Settings) -> dict[str, Any]:
    settings.out.mkdir(parents=True, exist_ok=True)
    pinning = plan_pinning()
    print(f"pinning: {pinning.describe()}", flush=True)
    started = time.perf_counter()
    db_path = database.cached(settings.rows)
    shared_db, share_dir = database.shareable(db_path)
    backend = SearchBackend(settings.search_latency)
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    sidecar_process = None
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
            bounds: dict[str, Bound] = {}
            results: dict[str, Any] = {}
            if any(s.startswith("conveyor-") for s in settings.systems):
                # The ideal bound's decode timelines come from `conveyor serve` too.
                bounds, results = await _conveyor_phase(
                    settings, pinning, sidecar_process.url, sidecar, specs
                )
            if "vllm-client-loop" in settings.systems:
                peer = await _peer_phase(settings, pinning, sidecar, specs)
                for name, systems in peer.items():
                    results.setdefault(name, {}).update(systems)
    finally:
        if sidecar_process is not None:
            sidecar_process.stop()
        backend.stop()
        if share_dir is not None:
            for f in share_dir.iterdir():
                f.unlink()
            share_dir.rmdir()
    return report.assemble(
        settings, pinning, bounds, results, db_path, time.perf_counter() - started
    )
