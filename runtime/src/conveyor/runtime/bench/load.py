"""`conveyor bench --load`: open-loop Poisson arrivals at increasing rates, per system.

At each offered rate, requests arrive as a Poisson process (exponential gaps, seeded) for
``seconds``, each sent at its arrival whatever is still running (open loop: a slow system
builds a queue, as under real traffic). A share of them is the tool workload, the rest its
final answer alone with no tool. Each system gets the same arrival times, one system at a time.
A system saturates at the first rate it cannot keep up with: it completes fewer than 90 % of
the offered requests per second, or its median latency passes 3x its median at the lowest rate.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from conveyor.runtime.bench.settings import LoadSettings
from conveyor.runtime.bench.stats import percentile
from conveyor.runtime.bench.systems import Runner, RunRecord
from conveyor.runtime.bench.workloads import Workload

KEEP_UP = 0.9  # completed / offered below this: saturated
QUEUE_GROWTH = 3.0  # median latency above this multiple of the lowest rate's: saturated


def arrivals(
    rate: float, seconds: float, tool_share: float, rng: random.Random
) -> list[tuple[float, bool]]:
    """(seconds from the start, calls a tool) for each request of one rate."""
    out = []
    at = rng.expovariate(rate)
    while at < seconds:
        out.append((at, rng.random() < tool_share))
        at += rng.expovariate(rate)
    return out


async def _open_loop(
    run: Runner, schedule: list[tuple[float, bool]], tool: Workload, plain: Workload
) -> dict[str, Any]:
    async def one(at: float, with_tool: bool) -> tuple[bool, RunRecord | BaseException, float]:
        await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
        try:
            record = await run(tool if with_tool else plain)
        except Exception as error:  # recorded: an overloaded system may refuse requests
            return with_tool, error, time.perf_counter()
        return with_tool, record, time.perf_counter()

    start = time.perf_counter()
    done = await asyncio.gather(*(one(at, t) for at, t in schedule))
    ok = [(t, r) for t, r, _ in done if isinstance(r, RunRecord) and r.error is None]
    latencies = [r.latency for _, r in ok]
    end = max((e for *_, e in done), default=start)
    return {
        "requests": len(schedule),
        "completed": len(ok),
        "errors": len(schedule) - len(ok),
        "duration": end - start,
        "throughput_rps": len(ok) / (end - start) if end > start else 0.0,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "p50_tool": percentile([r.latency for t, r in ok if t], 50),
        "p50_plain": percentile([r.latency for t, r in ok if not t], 50),
    }


def saturation(points: list[dict[str, Any]]) -> float | None:
    """The first offered rate a system could not keep up with (None: it kept up)."""
    base = points[0]["p50"] if points else None
    for point in points:
        offered = point["requests"] / max(point["seconds"], 1e-9)
        slow = base is not None and point["p50"] > QUEUE_GROWTH * base
        if point["completed"] / max(point["duration"], 1e-9) < KEEP_UP * offered or slow:
            return point["rate"]
    return None


async def measure_load(
    settings: LoadSettings, runners: dict[str, Runner], rng: random.Random
) -> dict[str, Any]:
    tool, plain = settings.workload, settings.workload.plain()
    curves: dict[str, list[dict[str, Any]]] = {name: [] for name in runners}
    for run in runners.values():  # warm both kinds of request once, unmeasured
        await run(tool)
        await run(plain)
    for rate in settings.rates:
        schedule = arrivals(rate, settings.seconds, settings.tool_share, rng)
        names = list(runners)
        for name in rng.sample(names, len(names)):
            print(f"load: {name} at {rate:g} req/s ({len(schedule)} requests)", flush=True)
            point = await _open_loop(runners[name], schedule, tool, plain)
            curves[name].append({"rate": rate, "seconds": settings.seconds, **point})
    return {
        "workload": tool.name,
        "tool_share": settings.tool_share,
        "seconds_per_rate": settings.seconds,
        "rates": settings.rates,
        "curves": curves,
        "saturation_rps": {name: saturation(points) for name, points in curves.items()},
    }
