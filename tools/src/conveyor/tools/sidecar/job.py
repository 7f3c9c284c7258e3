"""One invocation as the sidecar runs it: its lifecycle, its worker, its limits, its one answer.

Lifecycle (checked): ``OPEN`` → ``FINISHING`` (the client sent ``finish``) → ``DONE``, or
``OPEN`` → ``DONE`` on reject, error or cancel. Exactly one answer (``result``, ``reject`` or
``error``) is sent per id. Frames that arrive before a worker is attached wait in a bounded
backlog; afterwards they go straight to the worker's socket, and a tool that stops reading is
failed (``backpressure``) once ``max_pending_bytes`` queue up, so it never blocks other ids nor
grows memory without bound.

A job gets what it uses: a worker source (fresh workers, or a session's), the tool's settings
and limits, a sink for its answer, the metrics and a callback for when it is done.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from typing import Protocol

from conveyor.tools.protocol import ErrorFrame, Reason, RejectFrame, ResultFrame, ServerFrame
from conveyor.tools.protocol.worker import (
    CallError,
    CallLimits,
    CallReject,
    CallResult,
    CancelCall,
    Cancelled,
    FromWorker,
    StartCall,
    StepCall,
)
from conveyor.tools.sidecar.config import ToolSettings
from conveyor.tools.sidecar.metrics import SidecarMetrics
from conveyor.tools.sidecar.process import WorkerExit, WorkerProcess
from conveyor.tools.sidecar.sandbox import SandboxRefused

CANCEL_GRACE = 0.5  # seconds a worker gets to run the tool's cancel() before it is killed


class State(enum.Enum):
    OPEN = "open"
    FINISHING = "finishing"
    DONE = "done"


_ALLOWED = {
    State.OPEN: {State.FINISHING, State.DONE},
    State.FINISHING: {State.DONE},
    State.DONE: set(),
}


class IllegalTransition(Exception):
    pass


class WorkerSource(Protocol):
    """Where a job's worker comes from and where it goes back to after the answer."""

    @property
    def keeps_state(self) -> bool:
        """True for a session: the worker outlives the job and keeps the tool's state."""
        ...

    def acquire_nowait(self) -> WorkerProcess | None: ...

    async def acquire(self) -> WorkerProcess: ...

    def release(self, worker: WorkerProcess, keep: bool) -> None:
        """The job is done with ``worker``; ``keep``: it is healthy and may serve again."""
        ...


class Steps(Protocol):
    """The tools a job's tool may call in turn (plan steps): see :mod:`.step_bridge`."""

    allowed: list[str]

    def on_message(self, msg: StepCall) -> None: ...

    def close(self) -> None: ...


class Job:
    """One invocation on the sidecar (the client's ``Invocation`` on the other end)."""

    def __init__(
        self,
        id: str,
        tool: ToolSettings,
        workers: WorkerSource,
        send: Callable[[ServerFrame], None],
        metrics: SidecarMetrics,
        max_pending_bytes: int,
        on_done: Callable[[Job, bool], None],
    ) -> None:
        self.id = id
        self.tool = tool
        self.state = State.OPEN
        self.worker: WorkerProcess | None = None
        self._workers = workers
        self._send = send
        self._metrics = metrics
        self._max_pending = max_pending_bytes
        self._on_done = on_done
        self._backlog: list[bytes] = []
        self._backlog_bytes = 0
        self._opened = time.time()
        self._timers: list[asyncio.TimerHandle] = []
        self._waiting: asyncio.Task[None] | None = None
        self.steps: Steps | None = None  # the tools its tool may call (plan steps)

    # -- lifecycle -----------------------------------------------------------------------------

    def advance(self, new: State) -> None:
        if new not in _ALLOWED[self.state]:
            raise IllegalTransition(f"{self.state.value} → {new.value}")
        self.state = new

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._metrics.in_flight.labels(tool=self.tool.name).inc()
        self._timers.append(
            loop.call_later(self.tool.limits.max_invocation_seconds, self._expire, "lifetime")
        )
        worker = self._workers.acquire_nowait()
        if worker is not None:
            self._metrics.worker_wait_seconds.observe(0.0)
            self._attach(worker)
        else:
            self._waiting = loop.create_task(self._wait_for_worker())

    async def _wait_for_worker(self) -> None:
        t0 = time.perf_counter()
        try:
            worker = await self._workers.acquire()
        except SandboxRefused as e:  # refused while we waited: fail closed
            self.fail(f"unavailable: {e}", Reason.UNAVAILABLE)
            return
        self._metrics.worker_wait_seconds.observe(time.perf_counter() - t0)
        if self.state is State.DONE:
            self._workers.release(worker, keep=True)  # unused: it was meant for this id
            return
        self._attach(worker)

    def _attach(self, worker: WorkerProcess) -> None:
        self.worker = worker
        limits = self.tool.limits
        worker.assign(self, limits)
        worker.send(
            StartCall(
                id=self.id,
                tool=self.tool.runs or self.tool.name,
                config=self.tool.config,
                session=self._workers.keeps_state,
                opened=self._opened,
                limits=CallLimits(
                    cpu_seconds=limits.cpu_seconds,
                    session_cpu_seconds=limits.session_cpu_seconds,
                    max_output=limits.max_output_bytes,
                ),
                steps=self.steps.allowed if self.steps is not None else [],
            )
        )
        for raw in self._backlog:
            worker.send_raw(raw)
        self._backlog.clear()
        self._backlog_bytes = 0

    # -- frames from the client ----------------------------------------------------------------

    def forward(self, raw: bytes, unit: bool) -> None:
        """Pass a ``unit`` or ``finish`` frame on to the worker (or the backlog), in order."""
        limit = self._max_pending
        worker = self.worker
        if worker is not None:
            if worker.pending_bytes() + len(raw) > limit:
                self.fail(
                    f"backpressure: the tool is not keeping up ({limit} bytes of units queued)",
                    Reason.BACKPRESSURE,
                )
                return
            worker.send_raw(raw)
        else:
            if self._backlog_bytes + len(raw) > limit:
                self.fail(
                    f"backpressure: {limit} bytes of units queued before a worker was free",
                    Reason.BACKPRESSURE,
                )
                return
            self._backlog.append(raw)
            self._backlog_bytes += len(raw)
        if unit:
            self._metrics.units.labels(tool=self.tool.name).inc()
        else:
            self.advance(State.FINISHING)
            self._timers.append(
                asyncio.get_running_loop().call_later(
                    self.tool.limits.wall_seconds, self._expire, "wall"
                )
            )

    def cancel(self, message: str, reason: Reason = Reason.CANCELLED) -> None:
        if self.state is State.DONE:
            return
        self._end(ErrorFrame(self.id, message, reason), "cancelled", finished=False)
        worker = self.worker
        if self._waiting is not None:
            self._waiting.cancel()
        if worker is None:
            return  # a worker still on its way goes back when it arrives
        if not self._workers.keeps_state:
            worker.expect_exit(WorkerExit(Reason.CANCELLED, "cancelled"))
        # Let the tool release what it holds; kill it if it does not answer in time.
        worker.send(CancelCall(self.id))
        asyncio.get_running_loop().call_later(CANCEL_GRACE, self._cancel_deadline, worker)

    def _cancel_deadline(self, worker: WorkerProcess) -> None:
        if worker.owner is self and worker.exit is None:
            worker.kill(WorkerExit(Reason.CANCELLED, "cancelled"))

    def fail(self, message: str, reason: Reason) -> None:
        """End with an error (a protocol violation or backpressure on this id)."""
        if self.state is State.DONE:
            return
        self._end(ErrorFrame(self.id, message, reason), "error", finished=False)
        if self._waiting is not None:
            self._waiting.cancel()
        self._drop_worker(keep=False)

    # -- the worker ----------------------------------------------------------------------------

    def on_message(self, msg: FromWorker) -> None:
        if isinstance(msg, StepCall):
            if self.steps is not None and self.state is not State.DONE:
                self.steps.on_message(msg)
            return
        if self.state is State.DONE:
            if isinstance(msg, Cancelled):  # the tool has let go: the worker goes back now
                self._drop_worker(keep=True)
            return
        if isinstance(msg, CallResult):
            frame = ResultFrame(self.id, msg.content, msg.is_error, msg.data, msg.timing)
            self._end(frame, "result", finished=True)
            self._drop_worker(keep=True)
        elif isinstance(msg, CallReject):
            self._end(RejectFrame(self.id, msg.reason, msg.timing), "reject", finished=False)
            self._drop_worker(keep=True)
        elif isinstance(msg, CallError):
            self._end(ErrorFrame(self.id, msg.message, msg.reason), "error", finished=False)
            self._drop_worker(keep=msg.reason is not Reason.MEMORY_LIMIT)

    def on_exit(self, exit: WorkerExit) -> None:
        worker, self.worker = self.worker, None
        # Only an exit in the middle of an invocation is a crash or a limit at work.
        if exit.reason is Reason.CRASHED:
            self._metrics.worker_crashes.labels(tool=self.tool.name).inc()
        if exit.reason.limit is not None:
            self._metrics.limit_kills.labels(tool=self.tool.name, limit=exit.reason.limit).inc()
        if self.state is not State.DONE:
            message = exit.message
            if self._workers.keeps_state:
                message += " (the session's interpreter state is lost)"
            self._end(ErrorFrame(self.id, message, exit.reason), "error", finished=False)
        if worker is not None:
            self._workers.release(worker, keep=False)

    # -- ending --------------------------------------------------------------------------------

    def _expire(self, which: str) -> None:
        if self.state is State.DONE:
            return
        limits = self.tool.limits
        if which == "wall":
            why = f"timeout: no answer within {limits.wall_seconds:g} s of finish"
        else:
            why = f"timeout: open for more than {limits.max_invocation_seconds:g} s"
        if self.worker is not None:
            self.worker.kill(WorkerExit(Reason.TIMEOUT, why))  # on_exit answers, with this
        else:
            self.fail(why, Reason.TIMEOUT)

    def _end(self, frame: ServerFrame, outcome: str, finished: bool) -> None:
        self.advance(State.DONE)
        if self.steps is not None:
            self.steps.close()
        for timer in self._timers:
            timer.cancel()
        self._send(frame)
        self._metrics.in_flight.labels(tool=self.tool.name).dec()
        self._metrics.invocations.labels(tool=self.tool.name, outcome=outcome).inc()
        self._on_done(self, finished)

    def _drop_worker(self, keep: bool) -> None:
        """After the answer the worker goes back to its source (a session may keep it)."""
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.release()
            self._workers.release(worker, keep)
