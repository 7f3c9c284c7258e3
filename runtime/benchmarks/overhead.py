"""Conveyor's overhead when no tool is called, against bare vLLM ``AsyncLLM`` on the same model.

Runs the same greedy requests (same prompt, same max_tokens) two ways, one after the other:
bare ``AsyncLLM`` in this process, then `conveyor serve` over HTTP (SSE streaming, the official
wire format). Reports tokens/s and time to first token at each concurrency, and the ratios.

On the CPU build the engine's threads go to core 0 and everything else (this script, the
server's front end, the HTTP client) to the other cores, so the client never steals the
engine's core.

    .venv/bin/python runtime/benchmarks/overhead.py [--concurrency 1 32] [--requests 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import httpx

from conveyor.runtime.engine import Engine, EngineOptions, sampling_params
from conveyor.runtime.model import DEFAULT_MODEL_DIR, build_tiny

PROMPT = [{"role": "user", "content": "Write a long story about a robot."}]


@dataclass
class Run:
    system: str
    concurrency: int
    tokens: int
    seconds: float
    ttft: list[float]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def ttft_median_ms(self) -> float:
        return statistics.median(self.ttft) * 1000


async def _drive(concurrency: int, requests: int, one) -> tuple[int, float, list[float]]:
    """Run ``requests`` calls of ``one()`` with at most ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    ttft: list[float] = []

    async def guarded() -> int:
        async with gate:
            tokens, first = await one()
            ttft.append(first)
            return tokens

    started = time.perf_counter()
    counts = await asyncio.gather(*(guarded() for _ in range(requests)))
    return sum(counts), time.perf_counter() - started, ttft


async def bare(model: str, levels: list[int], requests: int, max_tokens: int) -> list[Run]:
    engine = Engine.start(EngineOptions(model=model, max_model_len=4096))
    prompt = engine.render(PROMPT)
    params = sampling_params(max_tokens)

    async def one() -> tuple[int, float]:
        started = time.perf_counter()
        first, tokens = None, 0
        async for delta in engine.stream(prompt, params, uuid.uuid4().hex):
            first = first if first is not None else time.perf_counter() - started
            tokens += delta.tokens
        return tokens, first or 0.0

    try:
        await _drive(1, 2, one)  # warm-up
        return [Run("bare AsyncLLM", c, *await _drive(c, requests, one)) for c in levels]
    finally:
        engine.shutdown()


async def conveyor(
    model: str, levels: list[int], requests: int, max_tokens: int, port: int
) -> list[Run]:
    command = [sys.executable, "-m", "conveyor.runtime.cli", "serve", "--model", model,
               "--port", str(port), "--max-model-len", "4096"]  # fmt: skip
    server = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    body = {"model": model, "messages": PROMPT, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=base, timeout=600, limits=httpx.Limits()) as client:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.returncode is not None:
                    raise RuntimeError("conveyor serve did not become ready")
                await asyncio.sleep(0.5)

            async def one() -> tuple[int, float]:
                started = time.perf_counter()
                first, tokens = None, 0
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    async for line in response.aiter_lines():
                        if not line.startswith("data: {"):
                            continue
                        chunk = json.loads(line[6:])
                        if first is None and chunk["choices"]:
                            first = time.perf_counter() - started
                        if chunk.get("usage"):
                            tokens = chunk["usage"]["completion_tokens"]
                return tokens, first or 0.0

            await _drive(1, 2, one)  # warm-up
            return [Run("conveyor serve", c, *await _drive(c, requests, one)) for c in levels]
    finally:
        server.terminate()
        await server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model directory (default: the tiny model)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--requests", type=int, default=64, help="requests per level")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--port", type=int, default=8093)
    args = parser.parse_args()
    model = args.model or str(build_tiny(DEFAULT_MODEL_DIR))
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = str(cores[0])
        os.sched_setaffinity(0, cores[1:])  # inherited by the server; vLLM rebinds its worker
        print(f"pinning: engine threads on core {cores[0]}, clients/front ends on {cores[1:]}")
    runs = asyncio.run(bare(model, args.concurrency, args.requests, args.max_tokens))
    runs += asyncio.run(
        conveyor(model, args.concurrency, args.requests, args.max_tokens, args.port)
    )
    print(f"\n{'system':16} {'conc':>4} {'tokens/s':>10} {'TTFT p50 ms':>12}")
    for run in runs:
        print(f"{run.system:16} {run.concurrency:>4} {run.tokens_per_s:>10.1f} "
              f"{run.ttft_median_ms:>12.1f}")  # fmt: skip
    print("\nconveyor / bare:")
    for level in args.concurrency:
        b, c = (next(r for r in runs if r.concurrency == level and r.system == s)
                for s in ("bare AsyncLLM", "conveyor serve"))  # fmt: skip
        print(f"  concurrency {level}: tokens/s x{c.tokens_per_s / b.tokens_per_s:.3f}, "
              f"TTFT x{c.ttft_median_ms / b.ttft_median_ms:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
