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
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from conveyor.runtime import metrics
from conveyor.runtime.calls import Call, CallKind, CallState, error_outcome
from conveyor.runtime.engine import Engine, sampling_params
from conveyor.runtime.events import (
    ClientCallDelta,
    ContentDelta,
    Event,
    HostedCallWritten,
    ToolResult,
)
from conveyor.runtime.plan import Mode, RequestPlan
from conveyor.runtime.timeline import Interval, busy_intervals, overlap, total
from conveyor.tools.client import SidecarClient
from conveyor.tools.parsing import (
    ArgumentsDelta,
    CallFinished,
    CallStarted,
    ParseError,
    Text,
    ToolCallStream,
)
from conveyor.tools.units import segmenter_from_spec

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


@dataclass
class Timing:
    """Per-request timing, reported in ``usage.conveyor``."""

    decode_seconds: float = 0.0
    tool_busy_seconds: float = 0.0
    overlap_seconds: float = 0.0
    exposed_seconds: float = 0.0
    rounds: int = 0
    early_aborts: int = 0
    tokens_saved: int = 0
    # Per round: decoding's start and end (server clock), its tokens, whether it was aborted.
    round_log: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in vars(self).items()}


@dataclass
class Completion:
    """What a finished request returns."""

    content: str
    client_calls: list[Call]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    messages: list[dict[str, Any]]  # intermediate assistant turns and tool results
    timing: Timing
    mode: Mode


@dataclass
class Turn:
    """One assistant turn as it is decoded."""

    index: int
    request_id: str
    forced: str | None
    text: str = ""
    content: str = ""
    tokens: int = 0
    finish_reason: str | None = None
    calls: dict[str, Call] = field(default_factory=dict)
    rejected_by: Call | None = None
    decoding: bool = True
    decode: Interval = (0.0, 0.0)
    last_delta_at: float = 0.0


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
        self._abort_tasks: set[asyncio.Task[None]] = set()

    async def run(self, plan: RequestPlan, request_id: str, emit: Emit = _ignore) -> Completion:
        started = time.perf_counter()
        messages = list(plan.messages)
        intermediate: list[dict[str, Any]] = []
        timing = Timing()
        content: list[str] = []
        prompt_tokens = completion_tokens = 0
        phase = Phase.DECODING
        decode_spans: list[Interval] = []
        busy: list[Interval] = []
        index = 0
        while True:
            turn = Turn(index, f"{request_id}-{index}", plan.forced_text(index))
            prompt_ids = self.engine.render(messages, plan.prompt_tools)
            prompt_tokens += len(prompt_ids)
            try:
                await self._decode(plan, turn, prompt_ids, emit)
                phase = phase.to(Phase.AWAITING_TOOLS)
                tools_done = await self._collect(turn, emit)
            except BaseException:
                # Client gone or server stopping: nothing of this request may keep running.
                # Shielded, so a second cancellation cannot cut the clean-up short.
                for call in turn.calls.values():
                    if call.kind is CallKind.HOSTED:
                        metrics.TOOL_CALLS.labels(call.name, call.outcome_label()).inc()
                await asyncio.shield(asyncio.gather(*(c.cancel() for c in turn.calls.values())))
                raise
            completion_tokens += turn.tokens
            content.append(turn.content)
            decode_spans.append(turn.decode)
            timing.rounds += 1
            timing.round_log.append(
                {
                    "decode": list(turn.decode),
                    "tokens": turn.tokens,
                    "aborted": turn.rejected_by is not None,
                }
            )
            timing.exposed_seconds += max(0.0, tools_done - turn.decode[1])
            for call in turn.calls.values():
                busy.extend(busy_intervals(call.busy()))
            self._account(turn, timing)

            client_calls = [c for c in turn.calls.values() if c.kind is CallKind.CLIENT]
            tool_messages = [
                {
                    "role": "tool",
                    "tool_call_id": c.call_id,
                    "name": c.name,
                    "content": c.result_text(),
                }
                for c in _server_calls(turn)
            ]
            # What the client sees also says when each tool worked against the decode.
            shown = [_assistant_message(turn)] + [
                {**message, "outcome": call.outcome_label(), "timing": call.timing(turn.decode[1])}
                for message, call in zip(tool_messages, _server_calls(turn), strict=True)
            ]
            if tool_messages:
                intermediate += shown
            if client_calls or not tool_messages or not plan.more_rounds(index + 1):
                phase = phase.to(Phase.FINISHED)
                finish = "tool_calls" if client_calls else turn.finish_reason or "stop"
                if finish == "abort":
                    finish = "stop"
                break
            # The raw turn text goes back verbatim so the next prompt shares its prefix (cache).
            messages += [{"role": "assistant", "content": turn.text}, *tool_messages]
            phase = phase.to(Phase.DECODING)
            index += 1

        timing.decode_seconds = total(decode_spans)
        timing.tool_busy_seconds = total(busy)
        timing.overlap_seconds = overlap(busy, decode_spans)
        metrics.REQUEST_DURATION.labels(plan.mode.value).observe(time.perf_counter() - started)
        return Completion(
            content="".join(content),
            client_calls=client_calls,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            messages=intermediate,
            timing=timing,
            mode=plan.mode,
        )

    # -- one round -----------------------------------------------------------------------------

    async def _decode(
        self, plan: RequestPlan, turn: Turn, prompt_ids: list[int], emit: Emit
    ) -> None:
        params = sampling_params(
            plan.max_tokens,
            force=turn.forced,
            temperature=plan.temperature,
            seed=plan.seed,
            top_p=plan.top_p,
            token_bias=self.engine.replay_bias if turn.forced is not None else None,
        )
        stream = (
            ToolCallStream(self.parser, id_prefix=f"call_{turn.request_id}_")
            if plan.parse_calls
            else _PlainText()
        )
        start = time.time()
        end = turn.last_delta_at = start
        async with contextlib.aclosing(
            self.engine.stream(prompt_ids, params, turn.request_id)
        ) as deltas:
            async for delta in deltas:
                turn.text += delta.text
                turn.tokens += delta.tokens
                end = turn.last_delta_at = delta.at
                if delta.finish_reason is not None:
                    turn.finish_reason = delta.finish_reason
                for event in stream.feed(delta.text):
                    await self._on_event(plan, turn, event, emit)
        turn.decoding = False
        turn.decode = (start, end)
        for event in stream.close():
            await self._on_event(plan, turn, event, emit)

    async def _on_event(self, plan: RequestPlan, turn: Turn, event: object, emit: Emit) -> None:
        if isinstance(event, Text):
            turn.content += event.text
            await emit(ContentDelta(event.text))
        elif isinstance(event, CallStarted):
            call = self._new_call(plan, turn, event)
            turn.calls[call.call_id] = call
            if call.kind is CallKind.CLIENT:
                index = sum(c.kind is CallKind.CLIENT for c in turn.calls.values()) - 1
                call.index = index
                await emit(ClientCallDelta(index, call.call_id, call.name, ""))
            elif call.kind is CallKind.HOSTED and plan.mode is Mode.PARTIAL:
                await call.open(self.sidecar, lambda c: self._on_outcome(turn, c))
        elif isinstance(event, ArgumentsDelta):
            call = turn.calls.get(event.call_id)
            if call is None or call.outcome is not None and call.kind is not CallKind.CLIENT:
                return
            call.arguments_text += event.text
            if call.kind is CallKind.CLIENT:
                await emit(ClientCallDelta(call.index, None, None, event.text))
            elif call.segmenter is not None:
                units = call.segmenter.feed(event.text)
                await call.send(call.arrived(units, turn.last_delta_at, turn.tokens))
        elif isinstance(event, CallFinished):
            await self._on_call_finished(plan, turn, event, emit)
        elif isinstance(event, ParseError):
            await self._on_parse_error(turn, event)

    def _new_call(self, plan: RequestPlan, turn: Turn, event: CallStarted) -> Call:
        index = len(turn.calls)
        if event.name in plan.hosted:
            spec = self.tool_specs[event.name]["x-conveyor"]["segmenter"]
            return Call(
                event.call_id, event.name, CallKind.HOSTED, index, segmenter_from_spec(spec)
            )
        if event.name in plan.client_tools:
            return Call(event.call_id, event.name, CallKind.CLIENT, index)
        return Call(event.call_id, event.name, CallKind.INVALID, index)

    async def _on_call_finished(
        self, plan: RequestPlan, turn: Turn, event: CallFinished, emit: Emit
    ) -> None:
        call = turn.calls.get(event.call_id)
        if call is None:
            return
        call.arguments = event.arguments
        call.complete()
        if call.kind is CallKind.INVALID:
            known = ", ".join(sorted(plan.hosted | plan.client_tools)) or "none"
            call.end(error_outcome(f"unknown tool {call.name!r} (available: {known})"))
        elif call.outcome is None and call.segmenter is not None:
            units = call.arrived(call.segmenter.close(), turn.last_delta_at, turn.tokens)
            if await call.send(units):
                if not call.opened and plan.mode is Mode.SEQUENTIAL:
                    await call.open(self.sidecar, lambda c: self._on_outcome(turn, c))
                    await call.release_held()
                await call.finish()
        if call.kind is not CallKind.CLIENT:
            await emit(HostedCallWritten(turn.index, call.call_id, call.name, event.arguments))

    async def _on_parse_error(self, turn: Turn, event: ParseError) -> None:
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
        if not turn.decoding:
            return  # nothing left to save
        turn.rejected_by = call
        task = asyncio.ensure_future(self.engine.abort(turn.request_id))
        self._abort_tasks.add(task)
        task.add_done_callback(self._abort_tasks.discard)

    async def _collect(self, turn: Turn, emit: Emit) -> float:
        """Settle every call of the turn; returns when the last tool result arrived."""
        for call in turn.calls.values():
            if call.kind is CallKind.HOSTED and call.outcome is None:
                if call.state is CallState.WRITING:
                    cut = "decoding stopped" if turn.rejected_by else "the turn ended"
                    await call.fail(f"the call to {call.name} was cut off ({cut}) before complete")
        await asyncio.gather(*(c.wait(self.tool_timeout) for c in turn.calls.values()))
        done = turn.decode[1]
        for call in turn.calls.values():
            if call.kind is CallKind.CLIENT:
                continue
            if call.ended_at is not None and call.kind is CallKind.HOSTED:
                done = max(done, call.ended_at)
            await emit(
                ToolResult(
                    turn.index, call.call_id, call.name, call.result_text(), call.outcome_label()
                )
            )
        return done

    def _account(self, turn: Turn, timing: Timing) -> None:
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
            metrics.EARLY_ABORTS.labels(turn.rejected_by.name).inc()
            if turn.forced is not None:
                saved = max(0, len(self.engine.encode(turn.forced)) - turn.tokens)
                timing.tokens_saved += saved
                metrics.TOKENS_SAVED.inc(saved)


class _PlainText:
    """Stands in for the parser when the request asked for no tool calls."""

    def feed(self, delta: str) -> list[Text]:
        return [Text(delta)] if delta else []

    def close(self) -> list[Text]:
        return []


def _server_calls(turn: Turn) -> list[Call]:
    return [c for c in turn.calls.values() if c.kind is not CallKind.CLIENT]


def _assistant_message(turn: Turn) -> dict[str, Any]:
    """The turn as an OpenAI assistant message with structured ``tool_calls``."""
    message: dict[str, Any] = {"role": "assistant", "content": turn.content or None}
    calls = [c.as_openai() for c in turn.calls.values()]
    if calls:
        message["tool_calls"] = calls
    return message
