"""Each round's prompt and sampling parameters, made by vLLM's own chat renderer.

vLLM's ``OnlineRenderer`` is what its OpenAI server runs: it renders the chat template and
tokenizes in a worker thread (the event loop stays free), refuses a prompt longer than the
context with the numbers, and for ``tool_choice`` "required" or a named function lets the
tool parser pin decoding to a valid call (a structural tag). Sampling parameters come from
``ChatCompletionRequest.to_sampling_params``, as in vLLM's server.

Conveyor adds the rounds: ``tool_choice`` forces only the first round (later rounds answer with
the tools' results), and a tool result too long for the rest of the context is cut to fit, with
a visible ``[... N characters cut ...]`` marker, before the next round is rendered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.runtime.chat_request import ChatRequest
from conveyor.runtime.decode_policy import RoundDecoding
from conveyor.runtime.engine import Engine, sampling_params
from conveyor.runtime.errors import BadRequest

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

# Conveyor's tool-call formats that vLLM also parses: there its parser supplies the grammar of
# a forced call. The code format calls python only, and a forced call is a fenced block; the
# plan format has no grammar for a forced call.
VLLM_TOOL_PARSERS = {
    "hermes": "hermes",
    "llama3_json": "llama3_json",
    "mistral": "mistral",
    "pythonic": "pythonic",
}
FENCED_PYTHON = r"```python\n(\n|[^`\n][^\n]*\n)+```"  # lines not starting with a backtick
CUT_MARKER = "[... {} characters cut ...]"
_FIT_ATTEMPTS = 4


def forces_call(request: ChatCompletionRequest) -> bool:
    """``tool_choice`` "required" or a named function (the only choice that is not a string)."""
    choice = request.tool_choice
    return choice == "required" or (choice is not None and not isinstance(choice, str))


@dataclass(frozen=True)
class Round:
    """One round's prompt, ready for the engine."""

    prompt: dict[str, Any]  # vLLM engine input: prompt_token_ids (and cache_salt)
    request: ChatCompletionRequest  # the round's request, as the tool parser adjusted it

    @property
    def prompt_ids(self) -> list[int]:
        return list(self.prompt["prompt_token_ids"])


class Prompts:
    """Renders the rounds of every request of one engine."""

    def __init__(self, engine: Engine, parser: str) -> None:
        from vllm.renderers.online_renderer import OnlineRenderer

        llm = engine.llm
        assert llm is not None
        self.engine = engine
        self.parser = parser
        self.max_model_len: int = llm.model_config.max_model_len
        self.defaults: dict[str, Any] = llm.model_config.get_diff_sampling_param()
        self._chars_per_token: int = llm.renderer.tokenizer.max_chars_per_token
        self._online = OnlineRenderer(
            llm.model_config,
            llm.renderer,
            request_logger=None,
            chat_template=engine.chat_template,  # --chat-template, else the model's
            chat_template_content_format="auto",
            enable_auto_tools=True,
            tool_parser=VLLM_TOOL_PARSERS.get(parser),
        )

    def check(self, chat: ChatRequest) -> None:
        """Refuse what this server's tool-call format cannot do (before anything runs)."""
        request = chat.openai
        if self.parser in VLLM_TOOL_PARSERS:
            return
        if forces_call(request) and not self._forces_python(request):
            raise BadRequest(
                f"tool_choice: forcing a call needs a tool-call format with a grammar "
                f"({', '.join(VLLM_TOOL_PARSERS)}), or the code format and python; this "
                f"server uses {self.parser!r}",
                param="tool_choice",
                code="unsupported_parameter",
            )
        if request.parallel_tool_calls is False and request.tools:
            raise BadRequest(
                f"parallel_tool_calls: false needs a tool-call format with a grammar "
                f"({', '.join(VLLM_TOOL_PARSERS)}); this server uses {self.parser!r}",
                param="parallel_tool_calls",
                code="unsupported_parameter",
            )

    async def render(self, chat: ChatRequest, messages: list[dict[str, Any]], index: int) -> Round:
        """Round ``index``'s prompt; only the first round obeys a forcing ``tool_choice``."""
        update: dict[str, Any] = {"messages": messages}
        forced_python = index == 0 and self._forces_python(chat.openai)
        if forces_call(chat.openai) and (index > 0 or forced_python):
            update["tool_choice"] = "auto"  # vLLM has no parser for the code format
        request = chat.openai.model_copy(update=update)
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse

        result = await self._online.render_chat(request)
        if isinstance(result, ErrorResponse):
            raise BadRequest(result.error.message, param=result.error.param)
        _, (engine_input,) = result
        if forced_python:
            from vllm.sampling_params import StructuredOutputsParams

            request.structured_outputs = StructuredOutputsParams(regex=FENCED_PYTHON)
            request.response_format = None
        return Round(dict(engine_input), request)

    def _forces_python(self, request: ChatCompletionRequest) -> bool:
        """The code format can force a call of python (its only tool): a fenced block."""
        if self.parser != "code" or not forces_call(request):
            return False
        offered = {t.function.name for t in request.tools or ()}
        choice = request.tool_choice
        named = None if isinstance(choice, str) or choice is None else choice.function.name
        return "python" in offered and named in (None, "python")

    def sampling(self, chat: ChatRequest, round_: Round, decoding: RoundDecoding) -> SamplingParams:
        """vLLM's sampling parameters for the round; an extension may pin the round's text."""
        from vllm.entrypoints.serve.utils.api_utils import get_max_tokens
        from vllm.sampling_params import RequestOutputKind

        request = round_.request
        requested = request.max_completion_tokens
        if requested is None:
            requested = request.max_tokens
        max_tokens = get_max_tokens(
            self.max_model_len,
            requested,
            len(round_.prompt_ids),
            {**self.defaults, "max_tokens": chat.default_max_tokens},
        )
        if decoding.force is not None:
            params = sampling_params(
                max_tokens,
                force=decoding.force,
                temperature=0.0,
                seed=request.seed,
                token_bias=decoding.token_bias,
            )
            params.logprobs = request.top_logprobs if request.logprobs else None
            return params
        params = request.to_sampling_params(max_tokens, self.defaults)
        params.output_kind = RequestOutputKind.DELTA
        return params

    def reserve(self, chat: ChatRequest) -> int:
        """Context kept free for the next round's answer when tool results are cut to fit."""
        return max(1, min(chat.max_tokens, self.max_model_len // 4))

    async def fit(
        self, chat: ChatRequest, messages: list[dict[str, Any]], results: list[dict[str, Any]]
    ) -> list[int]:
        """Cut the tool ``results`` (appended after ``messages``) so the next prompt fits.

        Returns the characters cut from each. Each result keeps its head and gets the marker;
        the room left is shared fairly, so a short result is never cut for a long one.
        """
        budget = self.max_model_len - self.reserve(chat)
        originals = [r["content"] for r in results]
        cuts = [0] * len(results)
        if await self._length(chat, messages + results) <= budget:
            return cuts
        empty = [{**r, "content": CUT_MARKER.format(len(r["content"]))} for r in results]
        room = budget - await self._length(chat, messages + empty)
        for attempt in range(_FIT_ATTEMPTS):
            shares = _fair_shares(
                [await self._tokens(c, room) for c in originals], int(room * 0.9**attempt)
            )
            for i, (content, share) in enumerate(zip(originals, shares, strict=True)):
                kept = await self._head(content, share)
                cuts[i] = len(content) - len(kept)
                results[i]["content"] = (
                    content if not cuts[i] else f"{kept}\n{CUT_MARKER.format(cuts[i])}"
                )
            if await self._length(chat, messages + results) <= budget:
                return cuts
        for i, r in enumerate(results):  # nothing of the results fits: markers only
            cuts[i] = len(originals[i])
            r["content"] = CUT_MARKER.format(cuts[i])
        return cuts

    async def _length(self, chat: ChatRequest, messages: list[dict[str, Any]]) -> int:
        from vllm.exceptions import VLLMValidationError

        try:
            return len((await self.render(chat, messages, 1)).prompt_ids)
        except (BadRequest, VLLMValidationError):
            return self.max_model_len + 1  # longer than the context can hold

    async def _tokens(self, text: str, room: int) -> int:
        """Tokens in ``text``, counted up to a little past ``room`` (no need to count more)."""
        head = text[: (max(room, 0) + 1) * self._chars_per_token]
        count = len(await asyncio.to_thread(self.engine.encode, head))
        return count + (1 if len(head) < len(text) else 0)

    async def _head(self, text: str, tokens: int) -> str:
        """The longest head of ``text`` that is at most ``tokens`` tokens."""
        if tokens <= 0:
            return ""
        head = text[: (tokens + 1) * self._chars_per_token]
        ids = await asyncio.to_thread(self.engine.encode, head)
        if len(ids) <= tokens and len(head) == len(text):
            return text
        kept = await asyncio.to_thread(self.engine.tokenizer.decode, ids[:tokens])
        return kept if text.startswith(kept) else text[: len(kept)]


def _fair_shares(sizes: list[int], room: int) -> list[int]:
    """Split ``room`` tokens: the small get all they need, the large share the rest equally."""
    shares = [0] * len(sizes)
    left = max(room, 0)
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    for k, i in enumerate(order):
        shares[i] = min(sizes[i], left // (len(sizes) - k))
        left -= shares[i]
    return shares
