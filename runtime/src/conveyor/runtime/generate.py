"""`conveyor generate`: stream one completion from the engine and report its speed."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass

from conveyor.runtime.engine import Engine, EngineOptions, sampling_params
from conveyor.runtime.replay import longest_match_bias


@dataclass(frozen=True)
class GenerationStats:
    tokens: int
    first_token_s: float
    total_s: float

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens after the first one per second of decoding (prefill excluded)."""
        decode_s = self.total_s - self.first_token_s
        return (self.tokens - 1) / decode_s if self.tokens > 1 and decode_s > 0 else 0.0


async def generate(
    engine: Engine,
    prompt: str,
    *,
    max_tokens: int,
    force: str | None = None,
    raw: bool = False,
    temperature: float = 0.8,
    out=sys.stdout,
) -> GenerationStats:
    """Stream a completion of ``prompt`` to ``out`` as it is decoded."""
    prompt_ids = (
        engine.encode(prompt) if raw else engine.render([{"role": "user", "content": prompt}])
    )
    bias = longest_match_bias(engine.tokenizer) if force is not None else None
    params = sampling_params(max_tokens, force=force, temperature=temperature, token_bias=bias)
    started = time.perf_counter()
    first = None
    tokens = 0
    async for delta in engine.stream(prompt_ids, params, f"generate-{uuid.uuid4().hex}"):
        if first is None:
            first = time.perf_counter() - started
        tokens += delta.tokens
        out.write(delta.text)
        out.flush()
    out.write("\n")
    return GenerationStats(tokens, first or 0.0, time.perf_counter() - started)


def run(
    options: EngineOptions,
    prompt: str,
    max_tokens: int,
    force: str | None,
    raw: bool,
    temperature: float = 0.8,
) -> None:
    async def main() -> GenerationStats:
        engine = Engine.start(options)
        try:
            return await generate(
                engine,
                prompt,
                max_tokens=max_tokens,
                force=force,
                raw=raw,
                temperature=temperature,
            )
        finally:
            engine.shutdown()

    stats = asyncio.run(main())
    print(
        f"{stats.tokens} tokens in {stats.total_s:.2f} s; time to first token "
        f"{stats.first_token_s * 1000:.0f} ms; decode {stats.decode_tokens_per_s:.0f} tokens/s",
        file=sys.stderr,
    )
