"""The sidecar's end of plan steps: each step a tool asks for becomes a job of its own tool.

The caller's worker sends :class:`StepCall` messages (see :mod:`.step_registry`); a step is
opened like a client's ``open`` — checked against what the request allows and the sidecar
enables, then run in a worker of the step's own tool, with that tool's limits, network setting
and config — and its answer goes back to the caller's worker as a :class:`StepResult`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from conveyor.tools.protocol import ErrorFrame, Finish, Open, RejectFrame, ResultFrame, UnitFrame
from conveyor.tools.protocol.worker import StepCall, StepResult
from conveyor.tools.sidecar.job import Job, State

if TYPE_CHECKING:
    from conveyor.tools.protocol import ServerFrame

    OpenJob = Callable[
        [Open, Callable[[ServerFrame], None], Callable[[Job, bool], None]], Job | ErrorFrame
    ]


def allowed_steps(
    requested: Iterable[str] | None, enabled: Iterable[str], caller: str
) -> list[str]:
    """What a tool may call: enabled, allowed by the request (all if it names none), not itself."""
    names = set(enabled) if requested is None else set(requested) & set(enabled)
    return sorted(names - {caller})


class StepBridge:
    """Turns one job's step calls into jobs of the steps' own tools."""

    def __init__(self, caller: Job, allowed: list[str], open_job: OpenJob) -> None:
        self.caller = caller
        self.allowed = allowed
        self._open_job = open_job
        self._steps: dict[int, Job] = {}

    def on_message(self, msg: StepCall) -> None:
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
