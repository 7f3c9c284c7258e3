"""What the replay's full-vocabulary logit bias costs vLLM's own server under concurrency.

The benchmark gives every system the same length bias (``longest_match_bias``, one entry per
token of the vocabulary). vLLM rebuilds its logit-bias tensors from Python lists whenever the batch
changes, so short requests at high concurrency pay for it. This sends batches of ``--concurrency``
identical forced requests (the calculator workload's two turns as plain text) to one vLLM
server, alternating with and without ``logit_bias``, and reports requests/s for each.

    .venv/bin/python runtime/benchmarks/logit_bias_cost.py --model ~/.cache/conveyor/models/tiny
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import openai

from conveyor.runtime.bench.servers import plan_pinning, start_vllm
from conveyor.runtime.bench.tokens import peer_logit_bias
from conveyor.runtime.bench.workloads import load_all
from conveyor.runtime.engine import literal_regex


async def batch(client: openai.AsyncOpenAI, model: str, texts: list[str], size: int, bias) -> float:
    async def one() -> None:
        for text in texts:
            await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "What is 1250 * 12 * 1.07?"}],
                max_tokens=len(text.encode()) + 2,
                temperature=0.0,
                logit_bias=bias,
                extra_body={"structured_outputs": {"regex": literal_regex(text)}},
            )

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(size)))
    return size / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batches", type=int, default=6)
    args = parser.parse_args()
    (calculator,), _ = load_all(["calculator"])
    texts = calculator.texts()
    bias = peer_logit_bias(args.model)
    log = Path(tempfile.mkdtemp()) / "vllm.log"
    server = await asyncio.to_thread(start_vllm, args.model, plan_pinning(), log)
    client = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="unused")
    rates: dict[str, list[float]] = {"with logit_bias": [], "without": []}
    try:
        await batch(client, args.model, texts, args.concurrency, bias)  # warm-up
        for _ in range(args.batches):
            rates["with logit_bias"].append(
                await batch(client, args.model, texts, args.concurrency, bias)
            )
            rates["without"].append(await batch(client, args.model, texts, args.concurrency, None))
    finally:
        await client.close()
        server.stop()
    for name, values in rates.items():
        print(
            f"{name:>16}: median {statistics.median(values):.2f} req/s over {len(values)} batches"
        )


if __name__ == "__main__":
    asyncio.run(main())
