"""Tools called by other tools (plan steps) run as invocations of their own, never in-process.

A planner in a worker may only call the tools that the request allows and the sidecar enables,
and each step must run under that tool's own limits and network setting — a ``python`` step of
a planner that may search still has no network. So a step is not run inside the planner's
worker: the worker asks the sidecar over its channel (:class:`StepCall`: ``step_open``,
``step_unit``, ``step_finish``, ``step_cancel``), the sidecar opens an ordinary job of that tool
in a worker of the tool's own profile, and its answer comes back as a :class:`StepResult`.

Worker side: :class:`StepRegistry`, handed to the tool in place of the full registry.
Sidecar side: :class:`StepBridge`, one per job.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from conveyor.tools._registry import ToolRegistry, UnknownToolError
from conveyor.tools._tool import Reject, Result, Tool
from conveyor.tools.protocol import ErrorFrame, Finish, Open, RejectFrame, ResultFrame, UnitFrame
from conveyor.tools.protocol.worker import StepCall, StepResult

if TYPE_CHECKING:
    from conveyor.tools.protocol import ServerFrame
    from conveyor.tools.sidecar.job import Job
    from conveyor.tools.units import Segmenter, Unit

    OpenJob = Callable[
        [Open, Callable[[ServerFrame], None], Callable[[Job, bool], None]], Job | ErrorFrame
    ]


def allowed_steps(
    requested: Iterable[str] | None, enabled: Iterable[str], caller: str
) -> list[str]:
    """What a tool may call: enabled, allowed by the request (all if it names none), not itself."""
    names = set(enabled) if requested is None else set(requested) & set(enabled)
    return sorted(names - {caller})


# -- worker side -------------------------------------------------------------------------------


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


# -- sidecar side ------------------------------------------------------------------------------


class StepBridge:
    """Turns one job's step calls into jobs of the steps' own tools."""

    def __init__(self, caller: Job, allowed: list[str], open_job: OpenJob) -> None:
        self.caller = caller
        self.allowed = allowed
        self._open_job = open_job
        self._steps: dict[int, Job] = {}

    def on_message(self, msg: StepCall) -> None:
        from conveyor.tools.sidecar.job import State

        step = msg.step
        if msg.type == "step_open":
            if msg.tool not in self.allowed:
                allowed = ", ".join(self.allowed) or "none"
                self._reply(step, f"tool {msg.tool!r} is not allowed here (allowed: {allowed})")
                return
            opened = self._open_job(
                Open(f"{self.caller.id}/${step}", msg.tool),
                lambda frame: self._answer(step, frame),
                lambda job, finished: self._forget(step),
            )
            if isinstance(opened, ErrorFrame):
                self._reply(step, opened.message)
                return
            self._steps[step] = opened
            opened.start()
            return
        job = self._steps.get(step)
        if job is None or job.state is State.DONE:
            return
        if msg.type == "step_unit" and msg.unit is not None:
            job.forward(_raw(UnitFrame(job.id, msg.unit)), unit=True)
        elif msg.type == "step_finish" and job.state is State.OPEN:
            job.forward(_raw(Finish(job.id)), unit=False)
        elif msg.type == "step_cancel":
            job.cancel("cancelled: the calling tool cancelled the step")

    def _forget(self, step: int) -> None:
        self._steps.pop(step, None)

    def _answer(self, step: int, frame: ServerFrame) -> None:
        if isinstance(frame, ResultFrame):
            self._reply(step, frame.content, frame.is_error, frame.data)
        elif isinstance(frame, RejectFrame):
            self._reply(step, f"rejected: {frame.reason}")
        elif isinstance(frame, ErrorFrame):
            self._reply(step, frame.message)

    def _reply(
        self, step: int, content: str, is_error: bool = True, data: dict[str, Any] | None = None
    ) -> None:
        worker = self.caller.worker
        if worker is not None:
            worker.send(StepResult(step, content, is_error, data))

    def close(self) -> None:
        """The caller ended: its steps end with it."""
        for job in list(self._steps.values()):
            job.cancel("cancelled: the calling tool ended")


def _raw(frame: UnitFrame | Finish) -> bytes:
    return json.dumps(frame.to_wire()).encode()
