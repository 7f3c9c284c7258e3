"""One invocation on the sidecar side: its lifecycle, its worker, its limits, its one answer.

Lifecycle (checked): ``OPEN`` → ``FINISHING`` (the client sent ``finish``) → ``DONE``, or
``OPEN`` → ``DONE`` on reject, error or cancel. Exactly one terminal frame (``result``,
``reject`` or ``error``) is sent per id. Frames that arrive before a worker is attached wait in
a bounded backlog; afterwards they go straight to the worker's socket, and a tool that stops
reading is failed (``backpressure``) once ``max_pending_bytes`` queue up, so it never blocks
other ids nor grows memory without bound.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from conveyor.tools.sidecar.config import ToolSettings
from conveyor.tools.sidecar.protocol import error_frame, reject_frame, result_frame

if TYPE_CHECKING:
    from conveyor.tools.sidecar.pool import WorkerProcess
    from conveyor.tools.sidecar.service import Sidecar

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


class Conn(Protocol):
    def send(self, frame: str) -> None: ...

    def ended(self, id: str, finished: bool) -> None: ...


def short_reason(reason: str) -> str:
    return reason.split(":", 1)[0]


class Invocation:
    def __init__(
        self, id: str, tool: ToolSettings, session: Session | None, conn: Conn, hub: Sidecar
    ) -> None:
        self.id = id
        self.tool = tool
        self.session = session
        self.conn = conn
        self.hub = hub
        self.state = State.OPEN
        self.worker: WorkerProcess | None = None
        self.backlog: list[bytes] = []
        self.backlog_bytes = 0
        self.opened = time.time()
        self._timers: list[asyncio.TimerHandle] = []
        self._waiting: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def advance(self, new: State) -> None:
        if new not in _ALLOWED[self.state]:
            raise IllegalTransition(f"{self.state.value} → {new.value}")
        self.state = new

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.hub.metrics.in_flight.labels(tool=self.tool.name).inc()
        self._timers.append(
            loop.call_later(self.tool.limits.max_invocation_seconds, self._expire, "lifetime")
        )
        if self.session is not None:
            self.session.enqueue(self)
            return
        worker = self.hub.pool.take_nowait(self.tool.network)
        if worker is not None:
            self.hub.metrics.worker_wait_seconds.observe(0.0)
            self.attach(worker)
        else:
            self._waiting = loop.create_task(self._wait_for_worker())

    async def _wait_for_worker(self) -> None:
        t0 = time.perf_counter()
        worker = await self.hub.pool.take(self.tool.network)
        self.hub.metrics.worker_wait_seconds.observe(time.perf_counter() - t0)
        if self.state is State.DONE:
            worker.kill("recycled")  # unused but it may not go back: it was meant for this id
            return
        self.attach(worker)

    def attach(self, worker: WorkerProcess) -> None:
        self.worker = worker
        worker.owner = self
        worker.limits = self.tool.limits
        limits = self.tool.limits
        worker.send(
            {
                "type": "open",
                "id": self.id,
                "tool": self.tool.name,
                "config": self.tool.config,
                "session": self.session is not None,
                "opened": self.opened,
                "limits": {
                    "cpu_seconds": limits.cpu_seconds,
                    "session_cpu_seconds": limits.session_cpu_seconds,
                    "max_output": limits.max_output_bytes,
                },
            }
        )
        for raw in self.backlog:
            worker.send_raw(raw)
        self.backlog.clear()
        self.backlog_bytes = 0

    # -- frames from the client ----------------------------------------------------------------

    def forward(self, raw: bytes, unit: bool) -> None:
        """Pass a ``unit`` or ``finish`` frame on to the worker (or the backlog), in order."""
        limit = self.hub.config.server.max_pending_bytes
        worker = self.worker
        if worker is not None:
            if worker.pending_bytes() + len(raw) > limit:
                self.fail(
                    f"backpressure: the tool is not keeping up ({limit} bytes of units queued)"
                )
                return
            worker.send_raw(raw)
        else:
            if self.backlog_bytes + len(raw) > limit:
                self.fail(f"backpressure: {limit} bytes of units queued before a worker was free")
                return
            self.backlog.append(raw)
            self.backlog_bytes += len(raw)
        if unit:
            self.hub.metrics.units.labels(tool=self.tool.name).inc()
        else:
            self.advance(State.FINISHING)
            self._timers.append(
                asyncio.get_running_loop().call_later(
                    self.tool.limits.wall_seconds, self._expire, "wall"
                )
            )

    def cancel(self, message: str, reason: str = "cancelled") -> None:
        if self.state is State.DONE:
            return
        self._end(error_frame(self.id, message, reason), "cancelled", finished=False)
        worker = self.worker
        if self._waiting is not None:
            self._waiting.cancel()
        if worker is None:
            return  # a worker still on its way is recycled when it arrives
        if self.session is None:
            worker.expect_exit("cancelled")
        # Let the tool release what it holds; kill it if it does not answer in time.
        worker.send({"type": "cancel", "id": self.id, "session": self.session is not None})
        asyncio.get_running_loop().call_later(CANCEL_GRACE, self._cancel_deadline, worker)

    def _cancel_deadline(self, worker: WorkerProcess) -> None:
        if worker.owner is self and worker.exit_reason is None:
            worker.kill("cancelled")

    def fail(self, message: str) -> None:
        """End with an error (a protocol violation or backpressure on this id)."""
        if self.state is State.DONE:
            return
        self._end(error_frame(self.id, message, short_reason(message)), "error", finished=False)
        if self._waiting is not None:
            self._waiting.cancel()
        self._drop_worker(keep=False)

    # -- messages from the worker --------------------------------------------------------------

    def on_message(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if self.state is State.DONE:
            if kind == "cancelled" and self.session is not None:
                self._drop_worker(keep=True)
            return
        timing = msg.get("timing") if isinstance(msg.get("timing"), dict) else {}
        if kind == "result":
            data = msg.get("data")
            frame = result_frame(
                self.id,
                str(msg.get("content", "")),
                bool(msg.get("is_error", False)),
                data if isinstance(data, dict) else None,
                timing,
            )
            self._end(frame, "result", finished=True)
            self._drop_worker(keep=True)
        elif kind == "reject":
            self._end(reject_frame(self.id, str(msg.get("reason", "")), timing), "reject", False)
            self._drop_worker(keep=True)
        elif kind == "error":
            reason = str(msg.get("reason", "tool error"))
            self._end(error_frame(self.id, str(msg.get("message", "")), reason), "error", False)
            self._drop_worker(keep=reason != "memory limit")

    def on_exit(self, reason: str) -> None:
        self.worker = None
        if self.state is not State.DONE:
            message = reason
            if self.session is not None:
                message += " (the session's interpreter state is lost)"
            self._end(error_frame(self.id, message, short_reason(reason)), "error", False)
        if self.session is not None:
            self.session.done(self, keep_worker=False)

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
            self.worker.kill(why)  # the error follows from on_exit, with this reason
        else:
            self.fail(why)

    def _end(self, frame: str, outcome: str, finished: bool) -> None:
        self.advance(State.DONE)
        for timer in self._timers:
            timer.cancel()
        self.conn.send(frame)
        self.conn.ended(self.id, finished)
        self.hub.metrics.in_flight.labels(tool=self.tool.name).dec()
        self.hub.metrics.invocations.labels(tool=self.tool.name, outcome=outcome).inc()
        self.hub.invocation_ended()

    def _drop_worker(self, keep: bool) -> None:
        """After the answer: a session keeps its worker, anything else is recycled."""
        worker, self.worker = self.worker, None
        if worker is None:
            return
        worker.owner = None
        if self.session is not None and keep:
            self.session.done(self, keep_worker=True)
            return
        worker.kill("recycled")
        if self.session is not None:
            self.session.done(self, keep_worker=False)


class Session:
    """A worker that serves the invocations of one ``session`` key in turn, keeping its state."""

    def __init__(self, key: str, tool: ToolSettings, hub: Sidecar) -> None:
        self.key = key
        self.tool = tool
        self.hub = hub
        self.worker: WorkerProcess | None = None
        self.current: Invocation | None = None
        self.queue: deque[Invocation] = deque()
        self._idle: asyncio.TimerHandle | None = None
        self._taking: asyncio.Task[None] | None = None

    def enqueue(self, inv: Invocation) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.queue.append(inv)
        self._next()

    def _next(self) -> None:
        while self.current is None and self.queue:
            inv = self.queue.popleft()
            if inv.state is State.DONE:
                continue
            self.current = inv
            if self.worker is not None and self.worker.exit_reason is None:
                inv.attach(self.worker)
            else:
                self._taking = asyncio.get_running_loop().create_task(self._take(inv))
        if self.current is None and not self.queue:
            if self.worker is None:
                self.hub.drop_session(self)
            else:
                self._idle = asyncio.get_running_loop().call_later(
                    self.hub.config.pool.session_idle_seconds, self._expire
                )

    async def _take(self, inv: Invocation) -> None:
        worker = await self.hub.pool.take(self.tool.network)
        self.worker = worker
        if inv.state is State.DONE:
            self.current = None
            self._next()
            return
        inv.attach(worker)

    def done(self, inv: Invocation, keep_worker: bool) -> None:
        if self.current is not inv:
            return
        self.current = None
        if not keep_worker:
            if self.worker is not None:
                self.worker.owner = None
                self.worker.kill("recycled")
            self.worker = None
        self._next()

    def _expire(self) -> None:
        if self.current is None and not self.queue:
            if self.worker is not None:
                self.worker.kill("recycled: session idle")
                self.worker = None
            self.hub.drop_session(self)

    def close(self) -> None:
        if self._taking is not None:
            self._taking.cancel()
        if self._idle is not None:
            self._idle.cancel()
        if self.worker is not None:
            self.worker.kill("shutdown")
            self.worker = None
