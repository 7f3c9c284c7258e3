"""Dispatch latency of the sidecar: ``SidecarClient.feed`` → the tool's ``feed`` being called.

Not a test: it starts a real ``conveyor-tools serve`` (calculator only, a warm pool big enough
for every concurrent invocation), then

* dispatch: N invocations at once, each feeding ``--units`` units one every ``--interval`` s (a
  model writing its call); the latency of a unit is the tool's busy-interval start (taken in the
  worker with ``time.time()``, reported in the result's ``timing.busy``) minus the client's
  ``time.time()`` just before ``await inv.feed(unit)``; same host, same clock.
* open→start: ``timing.started`` minus the client's time just before ``client.open`` with a
  warm pool (one open at a time, the pool refilled in between).

    .venv/bin/python tools/benchmarks/dispatch_latency.py --sidecar-cpu 0 --client-cpu 1

``--sidecar-cpu`` / ``--client-cpu`` pin the sidecar (and its workers) and this client to
different cores with ``taskset`` / ``sched_setaffinity``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from conveyor.tools.client import SidecarClient
from conveyor.tools.units import Field


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _start_sidecar(workers: int, cpu: str | None) -> tuple[subprocess.Popen[bytes], str]:
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    config = workdir / "tools.yaml"
    config.write_text(
        "tools: [calculator]\n"
        f"pool: {{warm_workers: {workers}, max_workers: {2 * workers + 8}}}\n"
        "server: {max_invocations_per_connection: 4096}\n"
    )
    port = _free_port()
    exe = str(Path(sys.executable).with_name("conveyor-tools"))
    cmd = [exe, "serve", "--port", str(port), "--config", str(config), "--log-level", "warning"]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_warm(url, workers)
    except BaseException:
        proc.kill()
        raise
    return proc, url


def _wait_warm(url: str, workers: int) -> None:
    """Until the pool holds ``workers`` ready workers (measure a warm pool, not a refill)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            text = httpx.get(url + "/metrics", trust_env=False).text
            ready = [
                ln for ln in text.splitlines() if ln.startswith("conveyor_sidecar_workers_ready")
            ]
            if ready and float(ready[0].split()[-1]) >= workers:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the sidecar's pool did not warm up")


async def _one(client: SidecarClient, units: int, interval: float) -> list[float]:
    inv = await client.open("calculator")
    sent: list[float] = []
    for n in range(units):
        await asyncio.sleep(interval * (0.5 + random.random()))
        unit = Field(("note", n), "x")
        sent.append(time.time())
        await inv.feed(unit)
    await inv.finish()
    outcome = await inv.outcome()
    assert outcome.kind == "result", outcome
    busy = outcome.timing["busy"][1 : 1 + units]  # [0] is start(), the last is finish()
    return [b[0] - s for b, s in zip(busy, sent, strict=True)]


async def _dispatch(url: str, concurrency: int, units: int, interval: float) -> list[float]:
    async with SidecarClient(url) as client:
        results = await asyncio.gather(*(_one(client, units, interval) for _ in range(concurrency)))
    return [x for r in results for x in r]


async def _open_to_start(url: str, opens: int) -> list[float]:
    out = []
    async with SidecarClient(url) as client:
        for _ in range(opens):
            await asyncio.sleep(0.25)  # let the pool refill: this measures a warm pool
            t0 = time.time()
            inv = await client.open("calculator")
            await inv.finish()
            outcome = await inv.outcome()
            out.append(outcome.timing["started"] - t0)
    return out


def _report(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(
        f"{name:<34} n={len(ms):<6} p50={statistics.median(ms):7.3f} ms  "
        f"p99={_percentile(ms, 0.99):7.3f} ms  max={max(ms):7.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=100, help="units per invocation")
    parser.add_argument("--interval", type=float, default=0.01, help="mean s between units")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--opens", type=int, default=50)
    parser.add_argument("--sidecar-cpu", help="taskset -c list for the sidecar and its workers")
    parser.add_argument("--client-cpu", type=int, help="pin this client to one core")
    args = parser.parse_args()
    if args.client_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})
    proc, url = _start_sidecar(max(args.concurrency), args.sidecar_cpu)
    try:
        for n in args.concurrency:
            asyncio.run(_dispatch(url, n, 10, args.interval))  # warm both ends up
            _wait_warm(url, max(args.concurrency))
            lat = asyncio.run(_dispatch(url, n, args.units, args.interval))
            _report(f"dispatch, {n} concurrent", lat)
            _wait_warm(url, max(args.concurrency))
        _report("open -> start (warm pool)", asyncio.run(_open_to_start(url, args.opens)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


if __name__ == "__main__":
    main()
