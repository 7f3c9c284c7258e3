"""The tools a tool may call (plan steps), as it sees them inside a worker.

A planner in a worker may only call the tools that the request allows and the sidecar enables,
and each step must run under that tool's own limits and network setting — a ``python`` step of
a planner that may search still has no network. So a step never runs inside the caller's
worker: :class:`StepRegistry`, given to the tool in place of the full registry, holds only the
allowed tools, and each :class:`RemoteStep` asks the sidecar over the worker's channel
(:class:`StepCall`) to run the step as an invocation of its own (:mod:`.step_bridge`); the
answer comes back as a :class:`StepResult`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conveyor.tools._registry import ToolRegistry, UnknownToolError
from conveyor.tools._tool import Reject, Result, Tool
from conveyor.tools.protocol.worker import StepCall, StepResult

if TYPE_CHECKING:
    from conveyor.tools.units import Segmenter, Unit


class StepRegistry:
    """What a tool sees as its registry: only the allowed tools, each run by the sidecar."""

    def __init__(
        self, local: ToolRegistry, allowed: list[str], send: Callable[[StepCall], None]
    ) -> None:
        self._local = local
        self._allowed = allowed
        self._send = send
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Result]] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._allowed

    def names(self) -> list[str]:
        return list(self._allowed)

    def create(self, name: str, config: dict[str, Any] | None = None) -> Tool:
        if name not in self._allowed:
            raise UnknownToolError(name)
        # The local instance only describes the tool (parameters, segmenter); it never runs.
        return RemoteStep(self, next(self._ids), self._local.create(name, config))

    def on_result(self, msg: StepResult) -> None:
        future = self._waiting.pop(msg.step, None)
        if future is not None and not future.done():
            future.set_result(Result(msg.content, msg.is_error, msg.data))


class RemoteStep(Tool):
    """A step's tool as the planner drives it; the sidecar runs the real one elsewhere."""

    def __init__(self, registry: StepRegistry, step: int, local: Tool) -> None:
        super().__init__(config=local.config)
        self._steps = registry
        self._step = step
        self._local = local
        self.name = local.name  # type: ignore[misc]
        self.parameters = local.parameters  # type: ignore[misc]

    def segmenter(self) -> Segmenter:
        return self._local.segmenter()

    def _send(self, kind: str, tool: str = "", unit: dict[str, Any] | None = None) -> None:
        self._steps._send(StepCall(kind, self._step, tool, unit))

    async def start(self) -> None:
        self._steps._waiting[self._step] = asyncio.get_running_loop().create_future()
        self._send("step_open", tool=self.name)

    async def feed(self, unit: Unit) -> Reject | None:
        from conveyor.tools.units import unit_to_json

        self._send("step_unit", unit=unit_to_json(unit))
        return None  # a rejection arrives as the step's result

    async def finish(self) -> Result:
        future = self._steps._waiting.get(self._step)
        self._send("step_finish")
        if future is None:
            return Result("the step was never started", is_error=True)
        return await future

    async def cancel(self) -> None:
        future = self._steps._waiting.pop(self._step, None)
        if future is not None:
            future.cancel()
        self._send("step_cancel")
