"""One tool call inside an assistant turn: its units, its sidecar invocation, its outcome.

A hosted call is cut into units by its tool's segmenter (``UnitCutter``). In partial mode every
unit goes to the sidecar the moment it is complete; in sequential mode the units are held and
the invocation opens only once the call is complete. Either way ``outcome`` is known at the end
of the turn. ``UnitCutter``, ``units_of``, ``result_text`` and ``outcome_label`` are shared with
the benchmark, so that it cuts calls and words results exactly as the scheduler does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from conveyor.tools.client import Invocation, Outcome, SidecarClient
from conveyor.tools.parsing import ArgumentsDelta, CallFinished, CallStarted
from conveyor.tools.units import ParseError as UnitParseError
from conveyor.tools.units import Segmenter, Unit, segmenter_from_spec

ToolSpecs = Mapping[str, Mapping[str, Any]]  # tool name -> sidecar spec (OpenAI + x-conveyor)


class CallKind(Enum):
    HOSTED = "hosted"  # runs on the sidecar
    CLIENT = "client"  # returned to the client, as in the OpenAI API
    INVALID = "invalid"  # unknown tool or malformed: an error result goes back to the model


class CallState(Enum):
    WRITING = "writing"  # the model is still writing the call
    COMPLETE = "complete"  # the whole call is written
    ENDED = "ended"  # the outcome is known

    def to(self, new: CallState) -> CallState:
        if new not in _CALL_TRANSITIONS[self]:
            raise RuntimeError(f"illegal call transition {self.value} -> {new.value}")
        return new


_CALL_TRANSITIONS = {
    CallState.WRITING: {CallState.COMPLETE, CallState.ENDED},
    CallState.COMPLETE: {CallState.ENDED},
    CallState.ENDED: set(),
}


def error_outcome(message: str) -> Outcome:
    """An error the runtime itself gives a call (the sidecar never saw it, or not in time)."""
    return Outcome("error", message, True)


def outcome_label(outcome: Outcome | None) -> str:
    """``ok``, ``error``, ``rejected`` or ``cancelled`` (None: the call never ended)."""
    if outcome is None or outcome.reason == "cancelled":
        return "cancelled"
    if outcome.kind == "reject":
        return "rejected"
    return "error" if outcome.is_error else "ok"


def result_text(outcome: Outcome | None) -> str:
    """What the model reads as a call's tool message."""
    if outcome is None:
        return "error: the tool call did not complete"
    if outcome.kind == "reject":
        return f"rejected: {outcome.content}"
    if outcome.kind == "error":
        return f"error: {outcome.content}"
    return outcome.content


def segmenter_for(spec: Mapping[str, Any]) -> Segmenter:
    """A fresh segmenter of the tool whose sidecar spec this is (``x-conveyor.segmenter``)."""
    return segmenter_from_spec(spec["x-conveyor"]["segmenter"])


def units_of(spec: Mapping[str, Any], arguments_text: str) -> list[Unit]:
    """Every unit of a complete call, as its tool's segmenter cuts them."""
    segmenter = segmenter_for(spec)
    return segmenter.feed(arguments_text) + segmenter.close()


class UnitCutter:
    """Cuts the calls of one turn into units, event by event, with each tool's own segmenter.

    Only calls of tools in ``specs`` are cut; the units of a call come out of the event that
    completes them: its ``ArgumentsDelta`` pieces, and at the end its ``CallFinished``.
    """

    def __init__(self, specs: ToolSpecs) -> None:
        self._specs = specs
        self._segmenters: dict[str, Segmenter] = {}

    def cut(self, event: object) -> list[Unit]:
        if isinstance(event, CallStarted):
            spec = self._specs.get(event.name)
            if spec is not None:
                self._segmenters[event.call_id] = segmenter_for(spec)
        elif isinstance(event, ArgumentsDelta):
            if (segmenter := self._segmenters.get(event.call_id)) is not None:
                return segmenter.feed(event.text)
        elif isinstance(event, CallFinished):
            if (segmenter := self._segmenters.pop(event.call_id, None)) is not None:
                return segmenter.close()
        return []


@dataclass
class Call:
    """A tool call as the model writes it."""

    call_id: str
    name: str
    kind: CallKind
    index: int  # position among the turn's calls
    allow: frozenset[str] = frozenset()  # hosted tools this call may call in turn (plan steps)
    arguments_text: str = ""
    arguments: dict[str, Any] | None = None
    state: CallState = CallState.WRITING
    started_at: float = field(default_factory=time.time)  # when its name was parsed
    complete_at: float | None = None  # when the model finished writing it
    units: int = 0
    # When each unit was complete (the engine delta's arrival) and the turn's tokens by then.
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    held: list[Unit] = field(default_factory=list)  # sequential mode: units not yet sent
    invocation: Invocation | None = None
    outcome: Outcome | None = None
    ended_at: float | None = None
    _waiter: asyncio.Future[Outcome] | None = None

    @property
    def opened(self) -> bool:
        return self.invocation is not None

    def end(self, outcome: Outcome) -> None:
        """Record the outcome (the first one wins)."""
        if self.outcome is None:
            self.outcome = outcome
            self.ended_at = time.time()
            self.state = self.state.to(CallState.ENDED)

    def outcome_label(self) -> str:
        """The ``outcome`` label of ``conveyor_tool_calls_total``."""
        return outcome_label(self.outcome)

    def result_text(self) -> str:
        """What the model reads as this call's tool message."""
        return result_text(self.outcome)

    def as_openai(self) -> dict[str, Any]:
        """The call in an assistant message's ``tool_calls``."""
        arguments = self.arguments_text if self.arguments is None else json.dumps(self.arguments)
        return {
            "id": self.call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": arguments},
        }

    def busy(self) -> dict[str, Any]:
        return self.outcome.timing if self.outcome is not None else {}

    # -- driving the sidecar -------------------------------------------------------------------

    async def open(
        self,
        sidecar: SidecarClient,
        on_outcome: Callable[[Call], None],
        session: str | None = None,
    ) -> None:
        """Open the invocation (in the tool ``session`` if given); ``on_outcome(call)`` runs the
        moment its outcome arrives."""
        if not sidecar.connected:
            self.end(error_outcome(f"the tool sidecar at {sidecar.url} is not reachable"))
            return
        try:
            self.invocation = await sidecar.open(
                self.name, session=session, allow=sorted(self.allow)
            )
        except (ConnectionError, OSError) as error:
            self.end(error_outcome(f"the tool sidecar could not start {self.name}: {error}"))
            return
        self._waiter = asyncio.ensure_future(self.invocation.outcome())
        self._waiter.add_done_callback(lambda _: self._arrived(on_outcome))

    def _arrived(self, on_outcome: Callable[[Call], None]) -> None:
        assert self._waiter is not None
        if self._waiter.cancelled():
            return
        self.end(self._waiter.result())
        on_outcome(self)

    def arrived(self, units: list[Unit], at: float, tokens: int) -> list[Unit]:
        """Note when ``units`` were complete; returns them."""
        self.arrivals += [(at, tokens)] * len(units)
        return units

    async def send(self, units: list[Unit]) -> bool:
        """Forward units now (partial) or hold them (not opened yet); False on malformed input."""
        for unit in units:
            if isinstance(unit, UnitParseError):
                await self.fail(f"malformed arguments for {self.name}: {unit.message}")
                return False
            self.units += 1
            if self.invocation is not None:
                await self.invocation.feed(unit)
            else:
                self.held.append(unit)
        return True

    async def release_held(self) -> None:
        """Sequential mode: send the held units once the invocation is open."""
        held, self.held = self.held, []
        if self.invocation is not None:
            for unit in held:
                await self.invocation.feed(unit)

    def complete(self) -> None:
        """The model has written the whole call."""
        self.complete_at = time.time()
        if self.state is CallState.WRITING:
            self.state = self.state.to(CallState.COMPLETE)

    def timing(self, decode_end: float) -> dict[str, Any]:
        """When the call was written and when its tool worked, in one clock."""
        return {
            "call_started": self.started_at,
            "call_complete": self.complete_at,
            "decode_end": decode_end,
            "units": self.arrivals,
            "busy": self.busy().get("busy", []),
            "result_at": self.ended_at,
        }

    async def finish(self) -> None:
        if self.invocation is not None and self.outcome is None:
            await self.invocation.finish()

    async def fail(self, message: str) -> None:
        """End the call with an error for the model; its invocation, if any, is cancelled."""
        self.end(error_outcome(message))
        if self.invocation is not None:
            await self.invocation.cancel()  # a no-op once the sidecar has answered

    async def cancel(self) -> None:
        """The request went away: release the invocation."""
        if self.invocation is not None and self.outcome is None:
            await self.invocation.cancel()
        if self._waiter is not None:
            self._waiter.cancel()

    async def wait(self, limit: float) -> None:
        """Wait for the outcome; past ``limit`` seconds, cancel it with an error."""
        if self._waiter is None or self.outcome is not None:
            return
        try:
            self.end(await asyncio.wait_for(asyncio.shield(self._waiter), limit))
        except TimeoutError:
            await self.fail(f"{self.name} did not answer within {limit:.0f} s")
