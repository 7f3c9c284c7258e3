"""Conveyor's overhead when no tool is called, against bare vLLM ``AsyncLLM`` on the same model.

The same greedy requests (same prompt, same max_tokens), four ways, one after the other:

- ``bare AsyncLLM``: vLLM's engine in this process, nothing else;
- ``conveyor scheduler``: the same engine in this process driven by Conveyor's scheduler (chat
  template, tool-call parsing of every delta, round bookkeeping, metrics) — Conveyor's own cost;
- ``conveyor serve`` and ``vllm api_server``: the two OpenAI-compatible servers over HTTP with SSE
  streaming, so the HTTP layer is compared with vLLM's own, not with no HTTP at all.

Reports tokens/s and median time to first token at each concurrency, and the ratios.

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

from conveyor.runtime.chat_request import ServerPolicy, parse_request
from conveyor.runtime.engine import Engine, EngineOptions, sampling_params
from conveyor.runtime.model import DEFAULT_MODEL_DIR, build_tiny
from conveyor.runtime.scheduler import Scheduler
from conveyor.tools.client import SidecarClient

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


async def in_process(
    model: str, levels: list[int], requests: int, max_tokens: int, trials: int
) -> list[Run]:
    """Bare AsyncLLM and Conveyor's scheduler on ONE engine, interleaved ``trials`` times, so
    that neither engine restarts nor drift of the machine land on one side only."""
    engine = Engine.start(EngineOptions(model=model, max_model_len=4096))
    params = sampling_params(max_tokens)
    # No hosted tool: the sidecar client is never connected.
    runner = Scheduler(engine, SidecarClient("unix:/nonexistent"), {}, parser="hermes")
    chat = parse_request(
        {"messages": PROMPT, "max_tokens": max_tokens},
        ServerPolicy(hosted_tools={}, max_tokens=max_tokens),
    )

    async def bare() -> tuple[int, float]:
        started = time.perf_counter()
        prompt = engine.render(PROMPT)  # every server applies the chat template per request
        first, tokens = None, 0
        async for delta in engine.stream(prompt, params, uuid.uuid4().hex):
            first = first if first is not None else time.perf_counter() - started
            tokens += delta.tokens
        return tokens, first or 0.0

    async def scheduled() -> tuple[int, float]:
        started = time.perf_counter()
        first: list[float] = []

        async def emit(event: object) -> None:
            if not first:
                first.append(time.perf_counter() - started)

        completion = await runner.run(chat, uuid.uuid4().hex, emit)
        return completion.completion_tokens, first[0] if first else 0.0

    systems = {"bare AsyncLLM": bare, "conveyor scheduler": scheduled}
    runs: list[Run] = []
    try:
        for one in systems.values():
            await _drive(1, 2, one)  # warm-up
        for _ in range(trials):
            for level in levels:
                for name, one in systems.items():
                    runs.append(Run(name, level, *await _drive(level, requests, one)))
        return runs
    finally:
        engine.shutdown()


async def http(
    system: str, command: list[str], model: str, levels: list[int], requests: int,
    max_tokens: int, port: int,
) -> list[Run]:  # fmt: skip
    """An OpenAI-compatible server started with ``command``, driven with streaming requests."""
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
                    if (await client.get("/v1/models")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.returncode is not None:
                    raise RuntimeError(f"{system} did not become ready")
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
            return [Run(system, c, *await _drive(c, requests, one)) for c in levels]
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
    parser.add_argument("--trials", type=int, default=3, help="interleaved in-process trials")
    args = parser.parse_args()
    model = args.model or str(build_tiny(DEFAULT_MODEL_DIR))
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = str(cores[0])
        os.sched_setaffinity(0, cores[1:])  # inherited by the server; vLLM rebinds its worker
        print(f"pinning: engine threads on core {cores[0]}, clients/front ends on {cores[1:]}")
    runs = asyncio.run(
        in_process(model, args.concurrency, args.requests, args.max_tokens, args.trials)
    )
    port = str(args.port)
    servers = {
        "conveyor serve": ["-m", "conveyor.runtime.cli", "serve", "--model", model],
        "vllm api_server": ["-m", "vllm.entrypoints.openai.api_server", "--model", model,
                            "--enforce-eager", "--disable-uvicorn-access-log"],
    }  # fmt: skip
    for system, command in servers.items():
        command = [sys.executable, *command, "--port", port, "--max-model-len", "4096"]
        runs += asyncio.run(
            http(system, command, model, args.concurrency, args.requests, args.max_tokens,
                 args.port)
        )  # fmt: skip
    print(f"\n{'system':20} {'conc':>4} {'tokens/s':>10} {'TTFT p50 ms':>12}")
    for run in runs:
        print(f"{run.system:20} {run.concurrency:>4} {run.tokens_per_s:>10.1f} "
              f"{run.ttft_median_ms:>12.1f}")  # fmt: skip

    def ratio(system: str, baseline: str) -> None:
        """Median over trials of tokens/s and of median TTFT, as a ratio to the baseline."""
        print(f"\n{system} / {baseline} (median of trials):")
        for level in args.concurrency:
            a, b = (
                [r for r in runs if r.concurrency == level and r.system == name]
                for name in (system, baseline)
            )
            speed = statistics.median(r.tokens_per_s for r in a) / statistics.median(
                r.tokens_per_s for r in b
            )
            ttft = statistics.median(r.ttft_median_ms for r in a) / statistics.median(
                r.ttft_median_ms for r in b
            )
            print(f"  concurrency {level}: tokens/s x{speed:.3f}, TTFT x{ttft:.3f}")

    ratio("conveyor scheduler", "bare AsyncLLM")
    ratio("conveyor serve", "vllm api_server")
    ratio("conveyor serve", "bare AsyncLLM")


if __name__ == "__main__":
    main()
