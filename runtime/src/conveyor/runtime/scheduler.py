"""The tool-aware scheduler: the rounds of one request, decoding and hosted tools side by side.

Each round renders the conversation, streams the engine's deltas through a ``ToolCallStream``,
and drives every hosted call on the sidecar as its units complete; decoding never waits for a
tool. A tool's ``reject`` aborts the round's decoding at once. At the end of a round the
results are awaited (most are done already) and appended, and the next round starts, until a
turn calls no hosted tool or ``max_rounds`` is reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from conveyor.runtime import logprobs, metrics
from conveyor.runtime.calls import Call, CallKind, CallState, UnitCutter, error_outcome
from conveyor.runtime.chat_request import ChatRequest, Mode
from conveyor.runtime.completion import Completion, Timing
from conveyor.runtime.engine import Engine
from conveyor.runtime.events import (
    ClientCallDelta,
    ContentDelta,
    Event,
    HostedCallWritten,
    ToolResult,
)
from conveyor.runtime.prompt import Prompts, Round
from conveyor.runtime.rounds import RoundEnd, Turn, end_round
from conveyor.runtime.timeline import Interval, busy_intervals, overlap, total
from conveyor.tools.client import SidecarClient
from conveyor.tools.parsing import (
    ArgumentsDelta,
    CallFinished,
    CallMalformed,
    CallStarted,
    Text,
    ToolCallStream,
)

log = logging.getLogger(__name__)

Emit = Callable[[Event], Awaitable[None]]


class Phase(Enum):
    """Where a request is; transitions are checked."""

    DECODING = "decoding"
    AWAITING_TOOLS = "awaiting_tools"
    FINISHED = "finished"

    def to(self, new: Phase) -> Phase:
        if new not in _PHASES[self]:
            raise RuntimeError(f"illegal request transition {self.value} -> {new.value}")
        return new


_PHASES = {
    Phase.DECODING: {Phase.AWAITING_TOOLS, Phase.FINISHED},
    Phase.AWAITING_TOOLS: {Phase.DECODING, Phase.FINISHED},
    Phase.FINISHED: set(),
}


async def _ignore(_: Event) -> None:
    return None


class Scheduler:
    """Runs requests on one engine and one sidecar; shared by all requests of the server."""

    def __init__(
        self,
        engine: Engine,
        sidecar: SidecarClient,
        tool_specs: dict[str, dict[str, Any]],
        *,
        parser: str = "hermes",
        tool_timeout: float = 300.0,
    ) -> None:
        self.engine = engine
        self.sidecar = sidecar
        self.tool_specs = tool_specs  # name -> sidecar spec (OpenAI tool + x-conveyor)
        self.parser = parser
        self.tool_timeout = tool_timeout
        self.prompts = Prompts(engine, parser)
        self._abort_tasks: set[asyncio.Task[None]] = set()

    async def run(self, request: ChatRequest, request_id: str, emit: Emit = _ignore) -> Completion:
        # One tool session per request: a python call sees the names that the request's earlier
        # python calls defined, as a notebook's cells do.
        async with self.sidecar.session() as session:
            return await self._run(request, request_id, emit, session.key)

    async def _run(
        self, request: ChatRequest, request_id: str, emit: Emit, tool_session: str
    ) -> Completion:
        started = time.perf_counter()
        messages = list(request.messages)
        intermediate: list[dict[str, Any]] = []
        timing = Timing()
        content: list[str] = []
        prompt_tokens = completion_tokens = 0
        phase = Phase.DECODING
        decode_spans: list[Interval] = []
        busy: list[Interval] = []
        hosted_specs = {name: self.tool_specs[name] for name in request.hosted}
        all_logprobs: list[dict[str, Any]] = []
        index = 0
        while True:
            decoding = request.decoding.round(index)
            turn = Turn(
                index,
                f"{request_id}-{index}",
                decoding,
                UnitCutter(hosted_specs),
                tool_session=tool_session,
            )
            round_ = await self.prompts.render(request, messages, index)
            prompt_tokens += len(round_.prompt_ids)
            try:
                await self._decode(request, turn, round_, emit)
                phase = phase.to(Phase.AWAITING_TOOLS)
                await self._collect(turn)
            except BaseException:
                # Client gone or server stopping: nothing of this request may keep running.
                # Shielded, so a second cancellation cannot cut the clean-up short.
                for call in turn.calls.values():
                    if call.kind is CallKind.HOSTED:
                        metrics.TOOL_CALLS.labels(call.name, call.outcome_label()).inc()
                await asyncio.shield(asyncio.gather(*(c.cancel() for c in turn.calls.values())))
                raise
            end = end_round(
                turn,
                budget=request.max_tokens if decoding.budget is None else decoding.budget,
                next_round_allowed=request.allows_round(index + 1),
            )
            cuts = await self._fit(request, messages, end) if end.finish_reason is None else {}
            timing.tool_chars_cut += sum(cuts.values())
            await self._tell_results(turn, end, cuts, emit)
            completion_tokens += turn.tokens
            all_logprobs += turn.logprobs
            content.append(turn.content)
            decode_spans.append(turn.decode)
            intermediate += end.shown
            timing.rounds += 1
            timing.round_log.append(
                {
                    "decode": list(turn.decode),
                    "tokens": turn.tokens,
                    "aborted": turn.rejected_by is not None,
                }
            )
            timing.exposed_seconds += end.exposed_seconds
            for call in turn.calls.values():
                busy.extend(busy_intervals(call.busy()))
            self._account(turn, end.tokens_saved, timing)
            if end.finish_reason is not None:
                phase = phase.to(Phase.FINISHED)
                finish = end.finish_reason
                break
            messages += end.prompt
            phase = phase.to(Phase.DECODING)
            index += 1

        timing.decode_seconds = total(decode_spans)
        timing.tool_busy_seconds = total(busy)
        timing.overlap_seconds = overlap(busy, decode_spans)
        metrics.REQUEST_DURATION.labels(request.mode.value).observe(time.perf_counter() - started)
        return Completion(
            content="".join(content),
            client_calls=end.client_calls,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            messages=intermediate,
            timing=timing,
            mode=request.mode,
            logprobs=all_logprobs if request.logprobs else None,
        )

    # -- one round -----------------------------------------------------------------------------

    async def _fit(
        self, request: ChatRequest, messages: list[dict[str, Any]], end: RoundEnd
    ) -> dict[str, int]:
        """Cut the tool results going into the next prompt to fit the context; the client is
        shown what the model reads. Returns the characters cut, by call id."""
        assistant, *results = end.prompt
        cuts = await self.prompts.fit(request, [*messages, assistant], results)
        shown = {m["tool_call_id"]: m for m in end.shown if m["role"] == "tool"}
        for result in results:
            shown[result["tool_call_id"]]["content"] = result["content"]
        return {r["tool_call_id"]: cut for r, cut in zip(results, cuts, strict=True)}

    async def _tell_results(
        self, turn: Turn, end: RoundEnd, cuts: dict[str, int], emit: Emit
    ) -> None:
        """Tell the client each server-side result, as the model will read it."""
        for message in end.shown:
            if message["role"] != "tool":
                continue
            call = turn.calls[message["tool_call_id"]]
            cut = cuts.get(call.call_id, 0)
            await emit(
                ToolResult(
                    turn.index, call.call_id, call.name, message["content"],
                    call.outcome_label(), cut,
                )
            )  # fmt: skip

    async def _decode(self, request: ChatRequest, turn: Turn, round_: Round, emit: Emit) -> None:
        params = self.prompts.sampling(request, round_, turn.decoding)
        stream: ToolCallStream | _PlainText = (
            ToolCallStream(self.parser, id_prefix=f"call_{turn.request_id}_")
            if request.parse_calls
            else _PlainText()
        )
        start = time.time()
        end = turn.last_delta_at = start
        async with contextlib.aclosing(
            self.engine.stream(round_.prompt, params, turn.request_id)
        ) as deltas:
            async for delta in deltas:
                turn.text += delta.text
                turn.tokens += delta.tokens
                if request.logprobs and delta.logprobs is not None:
                    self._add_logprobs(request, turn, delta.token_ids, delta.logprobs)
                end = turn.last_delta_at = delta.at
                if delta.finish_reason is not None:
                    turn.finish_reason = delta.finish_reason
                for event in stream.feed(delta.text):
                    await self._on_event(request, turn, event, emit)
        turn.still_decoding = False
        turn.decode = (start, end)
        for event in stream.close():
            await self._on_event(request, turn, event, emit)
        if turn.unsent_logprobs:  # tokens of tool calls: no text of their own to ride on
            await emit(ContentDelta("", turn.unsent_logprobs))
            turn.unsent_logprobs = []

    def _add_logprobs(
        self, request: ChatRequest, turn: Turn, token_ids: tuple[int, ...], steps: list[Any]
    ) -> None:
        top = request.openai.top_logprobs
        new = logprobs.entries(token_ids, steps, top, self.engine.tokenizer.decode)
        turn.logprobs += new
        turn.unsent_logprobs += new

    async def _on_event(self, request: ChatRequest, turn: Turn, event: object, emit: Emit) -> None:
        if isinstance(event, Text):
            turn.content += event.text
            sent, turn.unsent_logprobs = turn.unsent_logprobs or None, []
            await emit(ContentDelta(event.text, sent))
        elif isinstance(event, CallStarted):
            call = self._new_call(request, turn, event)
            turn.calls[call.call_id] = call
            turn.units.cut(event)
            if call.kind is CallKind.CLIENT:
                index = sum(c.kind is CallKind.CLIENT for c in turn.calls.values()) - 1
                call.index = index
                await emit(ClientCallDelta(index, call.call_id, call.name, ""))
            elif call.kind is CallKind.HOSTED and request.mode is Mode.PARTIAL:
                await call.open(
                    self.sidecar, lambda c: self._on_outcome(turn, c), turn.tool_session
                )
        elif isinstance(event, ArgumentsDelta):
            await self._on_arguments(turn, event, emit)
        elif isinstance(event, CallFinished):
            await self._on_call_finished(request, turn, event, emit)
        elif isinstance(event, CallMalformed):
            await self._on_parse_error(turn, event)

    async def _on_arguments(self, turn: Turn, event: ArgumentsDelta, emit: Emit) -> None:
        call = turn.calls.get(event.call_id)
        if call is None or call.outcome is not None and call.kind is not CallKind.CLIENT:
            return
        call.arguments_text += event.text
        if call.kind is CallKind.CLIENT:
            await emit(ClientCallDelta(call.index, None, None, event.text))
        elif call.kind is CallKind.HOSTED:
            await call.send(call.arrived(turn.units.cut(event), turn.last_delta_at, turn.tokens))

    def _new_call(self, request: ChatRequest, turn: Turn, event: CallStarted) -> Call:
        index = len(turn.calls)
        if event.name in request.hosted:
            return Call(event.call_id, event.name, CallKind.HOSTED, index, allow=request.hosted)
        if event.name in request.client_tools:
            return Call(event.call_id, event.name, CallKind.CLIENT, index)
        return Call(event.call_id, event.name, CallKind.INVALID, index)

    async def _on_call_finished(
        self, request: ChatRequest, turn: Turn, event: CallFinished, emit: Emit
    ) -> None:
        call = turn.calls.get(event.call_id)
        if call is None:
            return
        call.arguments = event.arguments
        call.complete()
        if call.kind is CallKind.INVALID:
            known = ", ".join(sorted(request.hosted | request.client_tools)) or "none"
            call.end(error_outcome(f"unknown tool {call.name!r} (available: {known})"))
        elif call.outcome is None and call.kind is CallKind.HOSTED:
            units = call.arrived(turn.units.cut(event), turn.last_delta_at, turn.tokens)
            if await call.send(units):
                if not call.opened and request.mode is Mode.SEQUENTIAL:
                    await call.open(
                        self.sidecar, lambda c: self._on_outcome(turn, c), turn.tool_session
                    )
                    await call.release_held()
                await call.finish()
        if call.kind is not CallKind.CLIENT:
            await emit(HostedCallWritten(turn.index, call.call_id, call.name, event.arguments))

    async def _on_parse_error(self, turn: Turn, event: CallMalformed) -> None:
        call = turn.calls.get(event.call_id)
        if call is None:
            call = Call(event.call_id, "unknown", CallKind.INVALID, len(turn.calls))
            turn.calls[call.call_id] = call
        elif call.kind is CallKind.CLIENT:
            call.kind = CallKind.INVALID  # a broken call cannot go to the client
        await call.fail(f"malformed tool call: {event.message}")

    def _on_outcome(self, turn: Turn, call: Call) -> None:
        """Runs the moment an outcome arrives; a reject stops this turn's decoding at once."""
        outcome = call.outcome
        if outcome is None or outcome.kind != "reject" or turn.rejected_by is not None:
            return
        if not turn.still_decoding:
            return  # nothing left to save
        turn.rejected_by = call
        task = asyncio.ensure_future(self.engine.abort(turn.request_id))
        self._abort_tasks.add(task)
        task.add_done_callback(self._abort_tasks.discard)

    async def _collect(self, turn: Turn) -> None:
        """Settle every call of the turn."""
        for call in turn.calls.values():
            if call.kind is CallKind.HOSTED and call.outcome is None:
                if call.state is CallState.WRITING:
                    cut = "decoding stopped" if turn.rejected_by else "the turn ended"
                    await call.fail(f"the call to {call.name} was cut off ({cut}) before complete")
        await asyncio.gather(*(c.wait(self.tool_timeout) for c in turn.calls.values()))

    def _account(self, turn: Turn, tokens_saved: int, timing: Timing) -> None:
        decode = [turn.decode]
        for call in turn.calls.values():
            if call.kind is not CallKind.HOSTED:
                continue
            spans = busy_intervals(call.busy())
            metrics.TOOL_CALLS.labels(call.name, call.outcome_label()).inc()
            metrics.TOOL_UNITS.labels(call.name).inc(call.units)
            metrics.TOOL_EXECUTION.labels(call.name).observe(total(spans))
            metrics.TOOL_OVERLAP.labels(call.name).observe(overlap(spans, decode))
            exposed = max(0.0, (call.ended_at or turn.decode[1]) - turn.decode[1])
            metrics.TOOL_EXPOSED.labels(call.name).observe(exposed)
        if turn.rejected_by is not None:
            timing.early_aborts += 1
            timing.tokens_saved += tokens_saved
            metrics.EARLY_ABORTS.labels(turn.rejected_by.name).inc()
            metrics.TOKENS_SAVED.inc(tokens_saved)


class _PlainText:
    """Stands in for the parser when the request asked for no tool calls."""

    def feed(self, delta: str) -> list[Text]:
        return [Text(delta)] if delta else []

    def close(self) -> list[Text]:
        return []
